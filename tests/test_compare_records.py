"""benchmarks/compare_records.py: two runs' records field for field."""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path

from evoticket.campaign import run_campaign

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "compare_records.py"


def load():
    spec = importlib.util.spec_from_file_location("compare_records", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_same_seed_compares_equal_and_a_changed_field_is_counted(fast_config, tmp_path):
    compare = load().compare
    a = run_campaign(fast_config, name="a", runs_dir=tmp_path / "runs", plots_dir=tmp_path / "plots").run_dir
    b = run_campaign(fast_config, name="b", runs_dir=tmp_path / "runs", plots_dir=tmp_path / "plots").run_dir
    out = io.StringIO()
    assert compare(a, b, out) == 0
    assert "0 differ" in out.getvalue() and "DIFFERENT" not in out.getvalue()
    lines = (b / "individuals.jsonl").read_text().splitlines()
    record = json.loads(lines[3])
    record["val_loss"] = (record["val_loss"] or 0.0) + 1e-7
    lines[3] = json.dumps(record, sort_keys=True)
    (b / "individuals.jsonl").write_text("\n".join(lines) + "\n")
    out = io.StringIO()
    assert compare(a, b, out) == 1
    assert "val_loss" in out.getvalue() and "1 differ" in out.getvalue()
