"""Tests of the ``evoticket`` command line and of the ticket files a run leaves behind.

A user mistake must end with exit status 2, exactly one stderr line
``evoticket: error: ...`` naming the offending key or file, no traceback, and
nothing written under the runs and plots directories. One tiny campaign runs
end to end in a subprocess; its files are then checked, reloaded and protected
from being overwritten without ``--force``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch

import evoticket
from evoticket import cli, load_ticket
from evoticket.config import CampaignConfig, load_config
from evoticket.core.errors import EvoticketError
from evoticket.genome.files import read_ticket_file

FAST_SETS = [
    "ga.population=4",
    "ga.offspring=4",
    "ga.generations=1",
    "finetune.steps=5",
    "campaign.final_steps=10",
    "campaign.final_seeds=1",
    "campaign.final_eval_every=5",
    "model.hidden=[16]",
    "campaign.plots=fitness",
]
FAST = [arg for s in FAST_SETS for arg in ("--set", s)] + ["--no-progress"]
"""A campaign of a few seconds: 4 + 4 individuals, 5 fine-tuning steps, 10 final steps."""

CONTROL_ROWS = {
    "ticket": ("ticket's", "ticket's"),
    "dense": ("ticket's", "none"),
    "random": ("ticket's", "random"),
    "reinit": ("fresh init", "ticket's"),
    "dense_scratch": ("fresh init", "none"),
    "random_scratch": ("fresh init", "random"),
}
RUN_FILES = ("config.toml", "generations.csv", "individuals.jsonl", "best_ticket.pt", "summary.json")


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``python -m evoticket.cli ARGS`` in ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "evoticket.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


def dirs(root: Path) -> list[str]:
    """``--runs-dir`` and ``--plots-dir`` under ``root``."""
    return ["--runs-dir", str(root / "runs"), "--plots-dir", str(root / "plots")]


def snapshot(*roots: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under ``roots``."""
    return {
        str(p.relative_to(root.parent)): hashlib.sha256(p.read_bytes()).hexdigest()
        for root in roots
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def assert_user_error(code: int, stderr: str, *fragments: str) -> str:
    """Exit status 2 and one stderr line ``evoticket: error: ...`` holding every fragment."""
    assert code == 2, stderr
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("evoticket: error: "), stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def assert_nothing_written(root: Path) -> None:
    for name in ("runs", "plots"):
        assert not (root / name).exists(), f"{name}/ was created: {sorted((root / name).rglob('*'))}"


# ---------------------------------------------------------------------------
# user mistakes: one line, status 2, nothing written


def _bad_toml(root: Path) -> str:
    path = root / "bad.toml"
    path.write_text("[ga\npopulation = 4\n", encoding="utf-8")
    return str(path)


def _empty_dir(root: Path) -> str:
    path = root / "empty"
    path.mkdir()
    return str(path)


ERROR_CASES = {
    "unknown key": (lambda root: ["--set", "ga.populaton=4"], ["ga.populaton: unknown key", "'ga.population'"]),
    "bad value": (lambda root: ["--set", "ga.population=0"], ["ga.population: must be >= 2, got 0"]),
    "wrong type": (lambda root: ["--set", "optimizer.lr=fast"], ["optimizer.lr: must be a number"]),
    "bad choice": (lambda root: ["--set", "finetune.mode=darwinian"], ["finetune.mode:", "'lamarckian'"]),
    "bad operator argument": (
        lambda root: ["--set", "ga.operator_args.mutMaskSwap.indpb=5"],
        ["ga.operator_args.mutMaskSwap.indpb: must be in [0, 1]"],
    ),
    "malformed override": (lambda root: ["--set", "ga.population"], ["ga.population", "section.key=value"]),
    "newline in a key": (lambda root: ["--set", "ga.popu\nlation=4"], ["unknown key"]),
    "malformed TOML": (lambda root: [_bad_toml(root)], ["bad.toml: not valid TOML"]),
    "missing config file": (lambda root: [str(root / "nope.toml")], ["nope.toml: no such configuration file"]),
    "unknown data set": (lambda root: ["--set", "data.name=mnsit"], ["data.name:", "'mnsit'", "'mnist'"]),
    "mnist without files": (
        lambda root: ["--set", "data.name=mnist", "--set", f"data.root={_empty_dir(root)}"],
        ["mnist", "train-images-idx3-ubyte", "empty"],
    ),
    "npz file missing": (
        lambda root: ["--set", "data.name=npz", "--set", "data.root=missing.npz"],
        ["data.root: missing.npz: no such file", "x_train, y_train, x_test, y_test"],
    ),
    "cifar10 without batches": (
        lambda root: ["--set", "data.name=cifar10", "--set", f"data.root={_empty_dir(root)}"],
        ["cifar10", "cifar-10-batches-py/", "data_batch_1", "test_batch"],
    ),
    "factory that does not import": (
        # --name: the default run name would start with data.name, whose ':' a run name cannot hold
        lambda root: ["--set", "data.name=evoticket_no_such_module:make", "--name", "mine"],
        ["data.name: cannot import 'evoticket_no_such_module:make'"],
    ),
    "augment on flat inputs": (
        lambda root: ["--set", "data.name=digits", "--set", "data.augment=crop_flip"],
        ["data.augment: 'crop_flip' needs images", "data.layout = 'image'"],
    ),
    "unknown layer": (
        lambda root: ["--set", "ticket.layer_densities.fc9.weight=0.5"],
        ["ticket.layer_densities.fc9.weight", "fc1.weight"],
    ),
    "bad name": (lambda root: ["--name", "../x"], ["--name '../x'"]),
    "name with a slash": (lambda root: ["--name", "a/b"], ["--name 'a/b'"]),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_user_mistake_in_process(case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    make_args, fragments = ERROR_CASES[case]
    args = make_args(tmp_path)
    # FAST first, so that a missing check runs a short campaign instead of the default one
    config_file = [args.pop(0)] if not args[0].startswith("--") else []
    code = cli.main(["run", *config_file, *FAST, *args, *dirs(tmp_path)])
    captured = capsys.readouterr()
    assert_user_error(code, captured.err, *fragments)
    assert captured.out == ""
    assert_nothing_written(tmp_path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_cuda(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = cli.main(["run", *FAST, "--set", "campaign.device=cuda", *dirs(tmp_path)])
    assert_user_error(code, capsys.readouterr().err, "campaign.device:", "'cuda'", "CUDA is not available")
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize("case", ["unknown key", "malformed TOML", "mnist without files", "npz file missing"])
def test_user_mistake_in_a_subprocess(case, tmp_path):
    make_args, fragments = ERROR_CASES[case]
    args = make_args(tmp_path)
    config_file = [args.pop(0)] if not args[0].startswith("--") else []
    proc = run_cli(["run", *config_file, *FAST, *args, *dirs(tmp_path)], tmp_path)
    assert_user_error(proc.returncode, proc.stderr, *fragments)
    assert proc.stdout == ""
    assert_nothing_written(tmp_path)


def test_default_dirs_are_relative_to_the_working_directory(tmp_path):
    proc = run_cli(["run", "--set", "ga.population=0"], tmp_path)
    assert_user_error(proc.returncode, proc.stderr, "ga.population")
    assert_nothing_written(tmp_path)


def test_version(tmp_path):
    proc = run_cli(["--version"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"evoticket {evoticket.__version__}"
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", evoticket.__version__)


def test_no_command_is_a_usage_error(tmp_path):
    proc = run_cli([], tmp_path)
    assert proc.returncode == 2
    assert "usage: evoticket" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert_nothing_written(tmp_path)


def test_unknown_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["run", "--populaton", "4"])
    assert info.value.code == 2
    assert "--populaton" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# evoticket config: every key, its type, default, range and docstring


def config_cli(capsys, *args: str) -> str:
    """``evoticket config ARGS`` in this process: its stdout (the status must be 0, stderr empty)."""
    code = cli.main(["config", *args])
    captured = capsys.readouterr()
    assert code == 0 and captured.err == "", captured.err
    return captured.out


def key_lines(text: str) -> list[str]:
    """The lines of ``evoticket config`` output that start a key (not a header, comment or docstring)."""
    return [line for line in text.splitlines() if line and not line[0].isspace() and line[0] not in "[#"]


def test_config_lists_every_key_with_its_default(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    out = config_cli(capsys)
    defaults = CampaignConfig().flat()
    lines = key_lines(out)
    assert [line.split(" ", 1)[0] for line in lines] == list(defaults)
    for line, (key, value) in zip(lines, defaults.items(), strict=True):
        shown = line.removeprefix(f"{key} = ").rsplit("  (", 1)[0]
        assert tomllib.loads(f"v = {shown}")["v"] == value, line
    for section in CampaignConfig().to_dict():
        if section != "method":
            assert f"\n[{section}]\n" in f"\n{out}"
    assert "ga.population = 8  (integer, >= 2)\n    Population size mu; >= 2.\n" in out
    assert max(len(line) for line in out.splitlines() if line.startswith("    ")) <= 80


def test_config_of_a_section_prints_its_keys_only(capsys):
    out = config_cli(capsys, "ga")
    assert out.startswith("[ga]\n")
    assert [line.split(" ", 1)[0] for line in key_lines(out)] == [
        key for key in CampaignConfig().flat() if key.startswith("ga.")
    ]
    assert "[" not in "".join(line[:1] for line in out.splitlines()[1:])  # one header


@pytest.mark.parametrize(
    ("key", "first_line"),
    [("ga.population", "ga.population = 8  (integer, >= 2)"), ("method", 'method = "ga"  (string)')],
)
def test_config_of_one_key_prints_that_key_only(capsys, key, first_line):
    lines = config_cli(capsys, key).splitlines()
    assert lines[0] == first_line
    assert len(lines) > 1 and all(line.startswith("    ") for line in lines[1:])  # its docstring, indented


@pytest.mark.parametrize(
    ("key", "fragments"),
    [
        ("ga.populaton", ["ga.populaton: unknown key", "did you mean 'ga.population'?"]),
        ("gaa", ["gaa: unknown key or section", "did you mean 'ga'?"]),
        ("gaa.population", ["gaa: unknown section", "did you mean 'ga'?"]),
    ],
)
def test_config_of_an_unknown_key_is_a_one_line_error(capsys, key, fragments):
    code = cli.main(["config", key])
    captured = capsys.readouterr()
    assert_user_error(code, captured.err, *fragments)
    assert captured.out == ""


def test_config_of_an_unknown_key_in_a_subprocess(tmp_path):
    proc = run_cli(["config", "optimizer.lrr"], tmp_path)
    assert_user_error(proc.returncode, proc.stderr, "optimizer.lrr: unknown key", "did you mean 'optimizer.lr'?")
    assert proc.stdout == ""


def test_config_toml_is_a_configuration_file_run_accepts_unchanged(capsys, tmp_path, monkeypatch):
    text = config_cli(capsys, "--toml")
    assert tomllib.loads(text) == CampaignConfig().to_dict()
    path = tmp_path / "defaults.toml"
    path.write_text(text, encoding="utf-8")
    assert load_config(path) == CampaignConfig()
    # run reads the file and every key of it; only the override's bad value is refused
    monkeypatch.chdir(tmp_path)
    code = cli.main(["run", str(path), "--set", "ga.population=0", *dirs(tmp_path)])
    assert_user_error(code, capsys.readouterr().err, "ga.population: must be >= 2, got 0")
    assert_nothing_written(tmp_path)
    assert tomllib.loads(config_cli(capsys, "ga", "--toml")) == {"ga": CampaignConfig().to_dict()["ga"]}


@pytest.mark.parametrize("command", ["run", "resume", "experiment"])
def test_help_of_commands_taking_keys_points_to_config(capsys, command):
    with pytest.raises(SystemExit) as info:
        cli.main([command, "--help"])
    assert info.value.code == 0
    assert "evoticket config" in " ".join(capsys.readouterr().out.split())


# ---------------------------------------------------------------------------
# a tiny campaign, end to end


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """Run the tiny campaign ``t1`` once in a subprocess; the directory holding runs/ and plots/."""
    root = tmp_path_factory.mktemp("cli")
    proc = run_cli(["run", *FAST, "--name", "t1", *dirs(root)], root)
    return root, proc


def test_tiny_run_succeeds_and_prints_the_summary(tiny_run):
    _, proc = tiny_run
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    for row, (theta0, mask) in CONTROL_ROWS.items():  # each control says what it starts from
        pattern = rf"^{row}\s+{theta0}\s+{mask}\s+[01]\.\d{{4}}\s+[01]\.\d{{4}} \+- \d\.\d{{4}}"
        assert re.search(pattern, proc.stdout, re.M), proc.stdout
    assert re.search(r"^Verdict: (a|not a) winning ticket", proc.stdout, re.M)
    assert "generations" not in proc.stderr  # --no-progress: no progress bar


def test_tiny_run_writes_every_promised_file(tiny_run):
    root, proc = tiny_run
    assert proc.returncode == 0, proc.stderr
    run_dir = root / "runs" / "t1"
    for name in RUN_FILES:
        assert (run_dir / name).is_file(), name
        assert (run_dir / name).stat().st_size > 0, name
    assert (root / "plots" / "t1" / "fitness.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(run_dir.glob("*.tmp"))

    expected = CampaignConfig().with_overrides([*FAST_SETS, "campaign.progress=false"])
    assert load_config(run_dir / "config.toml") == expected
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["name"] == "t1"
    assert summary["config_hash"] == expected.hash()
    assert set(summary["controls"]) == set(CONTROL_ROWS)
    assert summary["controls"]["dense"]["density"] == 1.0
    assert summary["verdict"] in proc.stdout

    with (run_dir / "generations.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["generation"]) for r in rows] == [0, 1]
    individuals = [json.loads(line) for line in (run_dir / "individuals.jsonl").read_text().splitlines()]
    assert len(individuals) == summary["individuals_evaluated"] == sum(int(r["nevals"]) for r in rows)
    assert {ind["generation"] for ind in individuals} == {0, 1}
    assert summary["best"]["uid"] in {ind["uid"] for ind in individuals}


def test_existing_run_is_refused_then_replaced_with_force(tiny_run, tmp_path, monkeypatch, capsys):
    root, proc = tiny_run
    assert proc.returncode == 0, proc.stderr
    # work on a copy so that the other tests keep the original run
    for name in ("runs", "plots"):
        shutil.copytree(root / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "runs" / "t1"
    before = snapshot(tmp_path / "runs", tmp_path / "plots")

    code = cli.main(["run", *FAST, "--name", "t1", *dirs(tmp_path)])
    captured = capsys.readouterr()
    assert_user_error(code, captured.err, "t1", "already exists", "--force")
    assert snapshot(tmp_path / "runs", tmp_path / "plots") == before  # nothing overwritten, nothing added

    first_records = (run_dir / "individuals.jsonl").read_text()
    (run_dir / "stray.txt").write_text("left by an older run")
    code = cli.main(["run", *FAST, "--name", "t1", "--force", *dirs(tmp_path)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Verdict:" in captured.out
    assert not (run_dir / "stray.txt").exists()
    after = snapshot(tmp_path / "runs", tmp_path / "plots")
    assert set(after) == set(before)
    # the same seed gives the same records, byte for byte (the first run was another process)
    assert (run_dir / "individuals.jsonl").read_text() == first_records
    assert after["runs/t1/config.toml"] == before["runs/t1/config.toml"]


def test_force_never_removes_a_directory_that_is_not_a_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    precious = tmp_path / "runs" / "t2" / "notes.txt"
    precious.parent.mkdir(parents=True)
    precious.write_text("mine")
    code = cli.main(["run", *FAST, "--name", "t2", "--force", *dirs(tmp_path)])
    assert_user_error(code, capsys.readouterr().err, "t2", "not an evoticket run")
    assert precious.read_text() == "mine"
    assert not (tmp_path / "plots").exists()


# ---------------------------------------------------------------------------
# the saved ticket


def test_load_ticket_gives_a_pruned_module(tiny_run):
    root, proc = tiny_run
    assert proc.returncode == 0, proc.stderr
    path = root / "runs" / "t1" / "best_ticket.pt"
    summary = json.loads((root / "runs" / "t1" / "summary.json").read_text())
    best = summary["best"]

    module = load_ticket(path)
    assert isinstance(module, torch.nn.Module)
    assert module.training
    masks = {name[: -len("_mask")]: b for name, b in module.named_buffers() if name.endswith("weight_mask")}
    assert set(masks) == set(best["density"]) == {"fc1.weight", "fc2.weight"}
    params = dict(module.named_parameters())
    ticket, arch, config = read_ticket_file(path)
    assert config == load_config(root / "runs" / "t1" / "config.toml")
    kept = total = 0
    for name, mask in masks.items():
        layer = module.get_submodule(name.rsplit(".", 1)[0])
        assert f"{name}_orig" in params and name not in params
        assert torch.equal(layer.weight, layer.weight_orig * layer.weight_mask)
        assert set(mask.unique().tolist()) <= {0.0, 1.0}
        assert torch.equal(mask.bool(), ticket.masks[name].bool())
        assert torch.equal(layer.weight_orig.detach(), ticket.theta0[name])
        assert float(mask.mean()) == pytest.approx(best["density"][name])
        kept += int(mask.sum())
        total += mask.numel()
    assert kept / total == pytest.approx(best["density_total"])
    out = module(torch.zeros(3, *arch.input_shape))
    assert out.shape == (3, 10)


def test_load_ticket_is_the_one_public_loader_and_the_old_names_warn(tiny_run):
    root, proc = tiny_run
    assert proc.returncode == 0, proc.stderr
    path = root / "runs" / "t1" / "best_ticket.pt"
    assert "load_ticket" in evoticket.__all__ and "load_ticket_state" not in evoticket.__all__
    assert not {"load_ticket", "load_ticket_state"} & set(evoticket.genome.__all__)
    with pytest.warns(DeprecationWarning, match=r"evoticket\.load_ticket\(path\)"):
        ticket, _, _ = evoticket.load_ticket_state(path)
    with pytest.warns(DeprecationWarning, match=r"evoticket\.load_ticket\(path"):
        module = evoticket.genome.load_ticket(path)
    assert torch.equal(module.fc1.weight_orig.detach(), ticket.theta0["fc1.weight"])
    assert torch.equal(load_ticket(path).fc1.weight_orig.detach(), ticket.theta0["fc1.weight"])
    with pytest.raises(AttributeError):
        evoticket.genome.no_such_loader  # noqa: B018


def test_load_ticket_refuses_missing_and_junk_files(tmp_path, recwarn):
    missing = tmp_path / "missing.pt"
    junk = tmp_path / "junk.pt"
    junk.write_bytes(random.Random(0).randbytes(256))
    pickle_like = tmp_path / "pickle_like.pt"  # starts like a pickle of protocol 109: torch warns before failing
    pickle_like.write_bytes(b"\x80\x6d" + random.Random(1).randbytes(254))
    not_a_ticket = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, not_a_ticket)
    toml_file = tmp_path / "config.toml"
    toml_file.write_text(CampaignConfig().to_toml())
    for path in (missing, junk, pickle_like, not_a_ticket, toml_file, tmp_path):
        with pytest.raises(EvoticketError) as info:
            load_ticket(path)
        message = str(info.value)
        assert message.startswith(str(path)), message
        assert "\n" not in message
    assert tomllib.loads(toml_file.read_text())  # the files were left alone
    assert not recwarn.list, [str(w.message) for w in recwarn.list]  # one line: the error, no warning
