"""The package's flow, kept by import-linter: no stage imports a stage after it (contracts in setup.cfg)."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lint_imports(config: Path) -> subprocess.CompletedProcess:
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(config_filename=sys.argv[1]))"
    return subprocess.run(
        [sys.executable, "-c", code, str(config)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_every_contract_is_kept():
    proc = lint_imports(ROOT / "setup.cfg")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_the_layers_name_every_stage_of_the_package():
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    layers = parser["importlinter:contract:flow"]["layers"].split()
    named = {name.split(".")[1] for name in layers if name.startswith("evoticket.")}
    stages = {p.stem if p.is_file() else p.name for p in (ROOT / "evoticket").iterdir() if not p.name.startswith("_")}
    stages.discard("__pycache__")
    assert named == stages


def test_an_import_that_runs_back_up_breaks_the_contract(tmp_path):
    """The contract is no formality: the same layers over a copy where config imports training fail."""
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    contract = parser["importlinter:contract:flow"]
    pkg = tmp_path / "evoflow"
    for name in ("core", "config", "training"):
        (pkg / name).mkdir(parents=True)
        (pkg / name / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "config" / "schema.py").write_text("import evoflow.training\n")
    cfg = tmp_path / "contracts.ini"
    cfg.write_text(
        "[importlinter]\nroot_package = evoflow\n\n[importlinter:contract:flow]\n"
        f"name = {contract['name']}\ntype = layers\nlayers =\n    evoflow.training\n    evoflow.config\n    evoflow.core\n"
    )
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(config_filename=sys.argv[1]))"
    proc = subprocess.run(
        [sys.executable, "-c", code, str(cfg)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "evoflow.config.schema -> evoflow.training" in proc.stdout
