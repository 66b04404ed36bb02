"""Tests of the configuration keys' descriptions (``evoticket.config.describe``), read from the schema itself.

Every key of the default configuration is described with its type, its default (as TOML that reads back
to the same value), its range and a docstring; a section put into ``SECTIONS`` at run time is described
with no change to the describing code; the commented TOML file of every key is the default configuration.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field

import pytest

from evoticket.config import (
    TOP_LEVEL,
    CampaignConfig,
    describe_keys,
    field_docstrings,
    format_keys,
    format_toml,
    load_config,
    schema,
)
from evoticket.config.describe import _toml_value
from evoticket.core.errors import ConfigError

DEFAULTS = CampaignConfig().flat()


def test_every_key_is_described_once_in_the_schemas_order():
    keys = [e.key for e in describe_keys()]
    assert keys == list(DEFAULTS)


@pytest.mark.parametrize("key", sorted(DEFAULTS))
def test_every_key_has_a_docstring_a_toml_type_and_its_default(key):
    (entry,) = describe_keys(key)
    assert entry.key == key
    assert entry.doc.strip(), f"{key} has no docstring: write one right after the field in config/schema.py"
    assert entry.type.split()[0] in {"integer", "number", "string", "boolean", "list", "table"}, entry.type
    assert entry.default == DEFAULTS[key]
    assert tomllib.loads(f"v = {entry.default_toml}")["v"] == DEFAULTS[key]


def test_a_checked_key_carries_the_text_of_its_check():
    (population,) = describe_keys("ga.population")
    assert (population.type, population.default, population.default_toml) == ("integer", 8, "8")
    assert population.valid == "must be >= 2"
    assert population.doc == "Population size mu; >= 2."
    assert population.section == "ga" and population.section_doc == "The (mu + lambda) genetic algorithm."
    (mode,) = describe_keys("finetune.mode")
    assert mode.valid == "must be one of 'baldwinian', 'lamarckian'"
    assert mode.default_toml == '"lamarckian"'


@pytest.mark.parametrize(
    ("metadata", "bad", "valid"),
    [
        (schema._check(lambda v: v < 3, "must be < 3"), 3, "must be < 3"),
        (schema._choice("a", "b"), "c", "must be one of 'a', 'b'"),
        (schema._at_least(2), 1, "must be >= 2"),
        (schema._positive(), 0.0, "must be a finite number > 0"),
        (schema._probability(), 1.5, "must be in [0, 1]"),
    ],
)
def test_check_helpers_keep_the_text_their_check_reports(metadata, bad, valid):
    assert metadata["valid"] == valid
    assert metadata["check"](bad) == valid


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("ga.mutations", "list of strings"),
        ("ga.reevaluate", "boolean"),
        ("optimizer.lr", "number"),
        ("model.hidden", "list of integers"),
        ("ticket.layer_densities", "table of numbers"),
        ("ga.operator_args", "table of tables of numbers or strings"),
    ],
)
def test_types_in_toml_terms(key, expected):
    assert describe_keys(key)[0].type == expected


def test_top_level_key_from_the_campaign_config():
    (method,) = describe_keys("method")
    assert (method.key, method.section, method.type, method.default) == ("method", "", "string", TOP_LEVEL["method"])
    assert method.doc.startswith("The method that finds tickets")


def test_a_section_gives_its_keys_only():
    entries = describe_keys("ga")
    assert [e.key for e in entries] == [k for k in DEFAULTS if k.startswith("ga.")]


@pytest.mark.parametrize(
    ("key", "fragments"),
    [
        ("ga.populaton", ["ga.populaton: unknown key", "did you mean 'ga.population'?", "ga.elitism"]),
        ("gaa", ["gaa: unknown key or section", "did you mean 'ga'?", "method"]),
        ("populaton", ["populaton: unknown key or section", "did you mean 'ga.population'?"]),
        ("gaa.population", ["gaa: unknown section", "did you mean 'ga'?"]),
        ("method.name", ["method.name: unknown key", "'method'"]),
        ("ga.operator_args.mutMaskSwap", ["unknown key", "did you mean 'ga.operator_args'?"]),
        ("", ["unknown key or section"]),
    ],
)
def test_unknown_key_names_it_with_a_suggestion(key, fragments):
    with pytest.raises(ConfigError) as info:
        describe_keys(key)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


@dataclass(frozen=True)
class _Base:
    inherited: int = 1
    """A field of the base class; >= 1."""


@dataclass(frozen=True)
class _Child(_Base):
    """A subclass."""

    own: str = "x"
    """A field of its own."""
    undocumented: bool = False
    plain_string_after_a_method: int = 0

    def method(self) -> None:
        """Not a field's docstring."""


def test_field_docstrings_reads_attribute_docstrings_of_the_class_and_its_bases():
    assert field_docstrings(_Child) == {"inherited": "A field of the base class; >= 1.", "own": "A field of its own."}


def test_a_class_without_source_is_described_without_docstrings(monkeypatch):
    made = dataclasses.make_dataclass("Made", [("size", int, field(default=3, metadata=schema._at_least(1)))])
    assert field_docstrings(made) == {}
    monkeypatch.setitem(schema.SECTIONS, "made", made)
    (size,) = describe_keys("made.size")
    assert (size.type, size.default_toml, size.valid, size.doc, size.section_doc) == (
        "integer",
        "3",
        "must be >= 1",
        "",
        "",
    )
    assert format_keys([size]) == "[made]\n\nmade.size = 3  (integer, >= 1)\n"


def test_a_section_registered_at_run_time_is_described(monkeypatch):
    @dataclass(frozen=True)
    class ToyConfig:
        """A toy section, registered by a plugin.

        Its second paragraph is not the summary.
        """

        width: int = field(default=4, metadata=schema._at_least(3))
        """Width of the toy (units); >= 3."""
        names: tuple[str, ...] = ("a", "b")
        """Names of the toy's parts.

        A second paragraph."""
        weights: dict[str, float] = field(default_factory=lambda: {"fc1.weight": 0.5})
        """Layer name -> weight."""
        scale: float = field(default=1, metadata=schema._choice(1, 2))
        """Scale factor: 1 or 2."""

    monkeypatch.setitem(schema.SECTIONS, "toy", ToyConfig)
    entries = describe_keys("toy")
    assert [e.key for e in entries] == ["toy.width", "toy.names", "toy.weights", "toy.scale"]
    width, names, weights, scale = entries
    assert (width.type, width.default_toml, width.valid) == ("integer", "4", "must be >= 3")
    assert width.doc == "Width of the toy (units); >= 3."
    assert width.section_doc == "A toy section, registered by a plugin."
    assert (names.type, names.default, names.default_toml) == ("list of strings", ["a", "b"], '["a", "b"]')
    assert names.doc == "Names of the toy's parts.\n\nA second paragraph."
    assert (weights.type, weights.default_toml) == ("table of numbers", '{"fc1.weight" = 0.5}')
    assert (scale.type, scale.default, scale.default_toml) == ("number", 1.0, "1.0")
    assert [e.key for e in describe_keys()][-4:] == ["toy.width", "toy.names", "toy.weights", "toy.scale"]
    assert describe_keys("toy.width") == [width]

    text = format_keys(entries)
    assert text.startswith("[toy]\n# A toy section, registered by a plugin.\n\ntoy.width = 4  (integer, >= 3)\n")
    assert "    Width of the toy (units); >= 3.\n" in text
    assert tomllib.loads(format_toml(entries)) == {
        "toy": {"width": 4, "names": ["a", "b"], "weights": {"fc1.weight": 0.5}, "scale": 1.0}
    }


def test_format_keys_starts_each_key_line_with_the_dotted_key():
    text = format_keys(describe_keys(), width=72)
    key_lines = [line for line in text.splitlines() if line and not line[0].isspace() and line[0] not in "[#"]
    assert [line.split(" ", 1)[0] for line in key_lines] == list(DEFAULTS)
    for line, (key, value) in zip(key_lines, DEFAULTS.items(), strict=True):
        shown = line.removeprefix(f"{key} = ").rsplit("  (", 1)[0]
        assert tomllib.loads(f"v = {shown}")["v"] == value, line
    assert max(len(line) for line in text.splitlines() if line.startswith("    ")) <= 72
    assert "ga.population = 8  (integer, >= 2)\n    Population size mu; >= 2.\n" in text


def test_format_keys_without_headers_and_of_nothing():
    assert format_keys(describe_keys("ga.population"), headers=False) == (
        "ga.population = 8  (integer, >= 2)\n    Population size mu; >= 2.\n"
    )
    assert format_keys([]) == ""


def test_the_commented_toml_file_is_the_default_configuration(tmp_path):
    text = format_toml(describe_keys())
    assert tomllib.loads(text) == CampaignConfig().to_dict()
    path = tmp_path / "defaults.toml"
    path.write_text(text, encoding="utf-8")
    assert load_config(path) == CampaignConfig()
    assert "# Population size mu; >= 2.\npopulation = 8  # integer, >= 2\n" in text


def test_the_toml_file_of_one_section_or_key_is_a_partial_configuration():
    assert tomllib.loads(format_toml(describe_keys("ga"))) == {"ga": CampaignConfig().to_dict()["ga"]}
    assert tomllib.loads(format_toml(describe_keys("ga.population"))) == {"ga": {"population": 8}}
    assert tomllib.loads(format_toml(describe_keys("method"))) == {"method": "ga"}
    mixed = [*describe_keys("ga.population"), *describe_keys("method"), *describe_keys("imp.rate")]
    mixed += describe_keys("ga.elitism")
    assert tomllib.loads(format_toml(mixed)) == {
        "method": "ga",
        "ga": {"population": 8, "elitism": 2},
        "imp": {"rate": 0.2},
    }


@pytest.mark.parametrize(
    "value",
    [
        'quote " backslash \\ tab \t newline \n del \x7f nul \x00 é',
        1e-05,
        -0.0,
        2**63 - 1,
        float("inf"),
        [[1, 2], ["a"]],
        {"a.b": {"c d": 1.5}, "": True},
    ],
)
def test_toml_values_read_back(value):
    assert tomllib.loads(f"v = {_toml_value(value)}")["v"] == value
