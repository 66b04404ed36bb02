"""Every configuration key described from the schema itself: type, default, valid range and docstring.

The description is read from whatever dataclasses ``evoticket.config.schema.all_sections()`` holds when it is asked
for, so a section added later, or registered by a plugin at run time, is described with no change here:

- the type, from the field's annotation, in TOML terms (``integer``, ``number``, ``string``, ``boolean``,
  ``list of integers``, ``table of numbers``, ...);
- the default, from the field's default (or default factory), also written as TOML text;
- the valid range, from ``field.metadata["valid"]`` (kept by the range-check helpers of
  :mod:`evoticket.config.schema`), or else the choices of a ``typing.Literal`` annotation;
- the docstring, the string literal right after the field in the class's source. Python keeps no such
  attribute docstring at run time, so it is read from ``inspect.getsource(cls)`` with :mod:`ast`.

A top-level key of ``evoticket.config.schema.TOP_LEVEL`` (``method``) is described from the field of the same
name of :class:`evoticket.config.CampaignConfig`: its attribute docstring, or else its entry in the
``Attributes`` section of the class docstring.

``evoticket config [KEY]`` prints :func:`format_keys` of :func:`describe_keys`, and ``evoticket config --toml``
prints :func:`format_toml`: a complete, commented configuration file that ``evoticket run FILE`` accepts.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import math
import re
import textwrap
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from evoticket.config import schema
from evoticket.config.overrides import unknown_key
from evoticket.core.errors import ConfigError


@dataclass(frozen=True)
class ConfigKey:
    """One configuration key, described.

    Attributes:
        key: the dotted key, e.g. ``"ga.population"``, or a top-level key such as ``"method"``.
        section: the key's section, e.g. ``"ga"``; ``""`` for a top-level key.
        type: the type in TOML terms, e.g. ``"integer"``, ``"list of strings"``, ``"table of numbers"``.
        default: the default as plain data (lists, dicts, numbers, strings); ``None`` if there is none.
        default_toml: the default as TOML text, e.g. ``8``, ``"lamarckian"`` or ``["accuracy"]``; ``""`` if
            there is none (or TOML cannot write it).
        valid: what a value must be beyond its type, e.g. ``"must be >= 2"``; ``""`` if only the type
            restricts it.
        doc: the key's docstring (cleaned, paragraphs kept); ``""`` if it has none.
        section_doc: the first paragraph of the section's class docstring, on one line; ``""`` for a
            top-level key.
    """

    key: str
    section: str
    type: str
    default: Any
    default_toml: str
    valid: str
    doc: str
    section_doc: str = ""


def describe_keys(key: str | None = None) -> list[ConfigKey]:
    """Describe every configuration key, the keys of one section, or one key.

    Args:
        key: ``None`` for every key (the top-level keys first, then each section's, in the order of the
            schema); a section name (``"ga"``) for its keys; a dotted key (``"ga.population"``) or a top-level
            key (``"method"``) for that key alone.

    Returns:
        The keys' descriptions, in the order of the schema.

    Raises:
        ConfigError: naming ``key``, with a "did you mean" and the valid names, if it is no section and no key.
    """
    sections, top_level = schema.all_sections(), schema.TOP_LEVEL
    if key is None:
        return [*(_top_level_key(name) for name in top_level), *(e for s in sections for e in _section_keys(s))]
    if key in schema.MOVED:  # a key of evoticket 0.2 that lives elsewhere now: describe it where it is
        return describe_keys(schema.MOVED[key])
    section, dot, _ = key.partition(".")
    if not dot:
        if key in top_level:
            return [_top_level_key(key)]
        if key in sections:
            return _section_keys(key)
        # a key given without its section ("population") is offered with it ("ga.population")
        names = {f"{s}.{f.name}": f.name for s, cls in sections.items() for f in dataclasses.fields(cls)}
        close = difflib.get_close_matches(key, set(names.values()), n=1)
        in_sections = [dotted for dotted, name in names.items() if name in close]
        raise ConfigError(unknown_key(key, [*top_level, *sections, *in_sections], "key or section"))
    if section in top_level:
        raise ConfigError(unknown_key(key, [section]))
    if section not in sections:
        raise ConfigError(unknown_key(section, [*top_level, *sections], "section"))
    entries = _section_keys(section)
    for entry in entries:
        if entry.key == key:
            return [entry]
    raise ConfigError(unknown_key(key, [e.key for e in entries]))


def field_docstrings(cls: type) -> dict[str, str]:
    """The attribute docstrings of a class: the string literal right after each annotated attribute.

    Read with :mod:`ast` from the source of the class and of its base classes (a subclass's docstring of an
    attribute wins). A class whose source cannot be found (one made by ``dataclasses.make_dataclass`` or typed
    into an interactive session) has none.

    Args:
        cls: a class, typically a dataclass of ``evoticket.config.schema.SECTIONS``.

    Returns:
        Attribute name -> its docstring, cleaned by ``inspect.cleandoc``; attributes without one are left out.
    """
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is not object:
            docs.update(_own_docstrings(klass))
    return docs


def format_keys(entries: Sequence[ConfigKey], *, headers: bool = True, width: int = 100) -> str:
    """Render key descriptions as text for a terminal, one block per key.

    A block's first line starts with the dotted key, so that ``grep`` finds it:
    ``ga.population = 8  (integer, >= 2)``; the docstring follows, wrapped and indented by four spaces.
    Blocks are separated by a blank line.

    Args:
        entries: the keys, e.g. from :func:`describe_keys`.
        headers: start each section with a ``[SECTION]`` line and the summary of its class docstring.
        width: the longest line of a wrapped docstring (characters).

    Returns:
        The text, ending with a newline; empty without entries.
    """
    blocks: list[str] = []
    section = None
    for entry in entries:
        if headers and entry.section and entry.section != section:
            summary = _wrap(_plain_text(entry.section_doc), width, "# ")
            blocks.append("\n".join([f"[{entry.section}]", *summary]))
        section = entry.section
        details = ", ".join(part for part in (entry.type, _short_valid(entry.valid)) if part)
        default = f" = {entry.default_toml}" if entry.default_toml else " (no default)"
        lines = [f"{entry.key}{default}  ({details})"]
        for i, paragraph in enumerate(_paragraphs(entry.doc)):
            lines += [""] * (i > 0) + _wrap(paragraph, width, "    ")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n" if blocks else ""


def format_toml(entries: Sequence[ConfigKey], *, width: int = 100) -> str:
    """Render key descriptions as a commented TOML configuration file, every key at its default.

    Each key is one ``KEY = DEFAULT  # TYPE, VALID`` line under its docstring as comment lines; top-level keys
    come first, then one ``[SECTION]`` table per section (in the order the sections first appear in
    ``entries``). Of every key (``describe_keys()``) it is a complete
    configuration file that ``evoticket run FILE`` accepts unchanged: read back, it equals
    ``CampaignConfig().to_dict()``. A key without a default TOML can write is left commented out.

    Args:
        entries: the keys, e.g. from :func:`describe_keys`.
        width: the longest comment line (characters).

    Returns:
        The TOML text, ending with a newline.
    """
    lines = [
        "# An evoticket configuration with every key at its default (`evoticket config --toml`).",
        "# Every key is optional: keep only those you change. `evoticket config KEY` describes one.",
    ]
    first = {e.section: i for i, e in reversed(list(enumerate(entries)))}
    section = ""
    for entry in sorted(entries, key=lambda e: (bool(e.section), first[e.section])):  # top level, then tables
        if entry.section != section:
            lines += ["", "", f"[{_toml_key(entry.section)}]", *_wrap(_plain_text(entry.section_doc), width, "# ")]
            section = entry.section
        lines.append("")
        for i, paragraph in enumerate(_paragraphs(entry.doc)):
            lines += ["#"] * (i > 0) + _wrap(paragraph, width, "# ")
        name = _toml_key(entry.key[len(entry.section) + 1 :] if entry.section else entry.key)
        details = _comment(", ".join(part for part in (entry.type, _short_valid(entry.valid)) if part))
        if entry.default_toml:
            lines.append(f"{name} = {entry.default_toml}  # {details}")
        else:
            lines.append(f"# {name} =   ({details}; no default)")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# reading the schema


def _section_keys(section: str) -> list[ConfigKey]:
    """The keys of ``SECTIONS[section]``, in the order of its fields."""
    cls = schema.all_sections()[section]
    docs = field_docstrings(cls)
    hints = _hints(cls)
    summary = _class_summary(cls)
    return [
        _entry(f"{section}.{f.name}", section, f, hints.get(f.name, f.type), docs.get(f.name, ""), summary)
        for f in dataclasses.fields(cls)
    ]


def _top_level_key(name: str) -> ConfigKey:
    """A top-level key, from the :class:`CampaignConfig` field of its name (or from ``TOP_LEVEL`` alone)."""
    cls = schema.CampaignConfig
    fields = {f.name: f for f in dataclasses.fields(cls)}
    default = schema.TOP_LEVEL[name]
    doc = field_docstrings(cls).get(name) or _attribute_entry(cls.__doc__ or "", name)
    hint = _hints(cls).get(name, type(default))
    if name in fields:
        return _entry(name, "", fields[name], hint, doc, "", default=default)
    plain = _plain(default)
    return ConfigKey(name, "", _toml_type(hint), plain, _toml_value_or_empty(plain), "", doc)


_NO_DEFAULT = object()


def _entry(
    key: str, section: str, f: dataclasses.Field, hint: Any, doc: str, summary: str, default: Any = _NO_DEFAULT
) -> ConfigKey:
    if default is _NO_DEFAULT:
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
    if hint is float and isinstance(default, int) and not isinstance(default, bool):
        default = float(default)  # as the configuration holds it once built
    plain = _plain(default)
    valid = f.metadata.get("valid") or _literal_choices(hint)
    return ConfigKey(key, section, _toml_type(hint), plain, _toml_value_or_empty(plain), str(valid), doc, summary)


def _hints(cls: type) -> dict[str, Any]:
    """The resolved annotations of ``cls``; {} if they do not resolve (the raw ``field.type`` is used then)."""
    try:
        return typing.get_type_hints(cls)
    except Exception:  # a name the annotation's module does not define, e.g. a class local to a function
        return {}


def _own_docstrings(cls: type) -> dict[str, str]:
    """The attribute docstrings written in the body of ``cls`` itself."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):  # no source file: built at run time, or typed into a REPL
        return {}
    if source[:1].isspace():  # a class nested in a function or class: parse its indented source as a block
        source = "if True:\n" + source
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    node = next((n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == cls.__name__), None)
    if node is None:
        return {}
    docs = {}
    for stmt, after in zip(node.body, node.body[1:], strict=False):
        if (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[stmt.target.id] = inspect.cleandoc(after.value.value)
    return docs


def _class_summary(cls: type) -> str:
    """The first paragraph of the class docstring on one line; "" for none (or dataclass's made-up one)."""
    doc = cls.__doc__ or ""
    if doc.startswith(f"{cls.__name__}("):  # dataclass writes the signature when the class has no docstring
        return ""
    paragraphs = _paragraphs(inspect.cleandoc(doc))
    return paragraphs[0] if paragraphs else ""


def _attribute_entry(docstring: str, name: str) -> str:
    """The text of ``name``'s entry in a Google-style ``Attributes:`` section, on one line and capitalised; "" if
    none."""
    lines = inspect.cleandoc(docstring).splitlines()
    if "Attributes:" not in lines:
        return ""
    body: list[str] = []
    for line in lines[lines.index("Attributes:") + 1 :]:
        if line.strip() and not line[0].isspace():
            break
        body.append(line)
    indents = [len(line) - len(line.lstrip()) for line in body if line.strip()]
    found: list[str] | None = None
    for line in body:
        if line.strip() and len(line) - len(line.lstrip()) == min(indents):
            if found is not None:
                break
            match = re.fullmatch(rf"{re.escape(name)}(?:\s*\([^)]*\))?:\s*(.*)", line.strip())
            found = [match.group(1)] if match else None
        elif found is not None and line.strip():
            found.append(line.strip())
    text = " ".join(found).strip() if found else ""
    return text[:1].upper() + text[1:]


# ---------------------------------------------------------------------------
# TOML terms

_SCALARS: dict[Any, tuple[str, str]] = {
    bool: ("boolean", "booleans"),
    int: ("integer", "integers"),
    float: ("number", "numbers"),
    str: ("string", "strings"),
}
_SCALAR_NAMES = {"bool": bool, "int": int, "float": float, "str": str}


def _toml_type(hint: Any, plural: bool = False) -> str:
    """A type annotation in TOML terms: ``tuple[int, ...]`` -> ``list of integers``."""
    if isinstance(hint, str):  # an annotation that did not resolve
        hint = _SCALAR_NAMES.get(hint, hint)
        if isinstance(hint, str):
            return hint
    if hint in _SCALARS:
        return _SCALARS[hint][plural]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in (list, tuple, set, frozenset) or origin in (list, tuple, set, frozenset, Sequence):
        items = {a for a in args if a is not Ellipsis}
        what = " of " + _toml_type(items.pop(), True) if len(items) == 1 else ""
        return ("lists" if plural else "list") + what
    if hint is dict or origin in (dict, Mapping):
        what = " of " + _toml_type(args[1], True) if len(args) == 2 else ""
        return ("tables" if plural else "table") + what
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_toml_type(a, plural) for a in args if a is not type(None))
    if origin is typing.Literal:
        kinds = list(dict.fromkeys(_toml_type(type(a), plural) for a in args))
        return " or ".join(kinds)
    if hint is Any:
        return "values" if plural else "value"
    return getattr(hint, "__name__", str(hint))


def _literal_choices(hint: Any) -> str:
    if typing.get_origin(hint) is typing.Literal:
        return "must be one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    return ""


def _plain(value: Any) -> Any:
    """Tuples as lists, recursively: the value as TOML reads it back."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = (_ESCAPES.get(c) or (f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F else c) for c in text)
    return '"' + "".join(out) + '"'


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def _toml_value(value: Any) -> str:
    """A plain value as TOML text on one line (tables inline).

    Raises:
        TypeError: for a value TOML cannot write (``None``, an object).
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML value for {type(value).__name__} {value!r}")


def _toml_value_or_empty(value: Any) -> str:
    try:
        return _toml_value(value)
    except TypeError:
        return ""


# ---------------------------------------------------------------------------
# text


def _paragraphs(doc: str) -> list[str]:
    """The paragraphs of a docstring (split at blank lines), each on one line, in plain text."""
    blocks = re.split(r"\n\s*\n", doc.strip())
    return [_plain_text(" ".join(block.split())) for block in blocks if block.strip()]


def _plain_text(text: str) -> str:
    """Docstring markup for a terminal and a TOML comment: double backticks become single ones."""
    return re.sub(r"``(.+?)``", r"`\1`", text)


def _short_valid(valid: str) -> str:
    """``"must be >= 2"`` -> ``">= 2"``: the range as shown next to the type."""
    return valid.removeprefix("must be ")


def _comment(text: str) -> str:
    """Text safe in a TOML comment: control characters other than tab become spaces."""
    return "".join(" " if (ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F else c for c in text)


def _wrap(text: str, width: int, prefix: str) -> list[str]:
    """``text`` wrapped to ``width`` characters, each line starting with ``prefix``; no line for no text."""
    if not text.strip():
        return []
    return textwrap.wrap(
        _comment(text),
        width=max(width, len(prefix) + 20),
        initial_indent=prefix,
        subsequent_indent=prefix,
        break_long_words=False,
        break_on_hyphens=False,
    )
