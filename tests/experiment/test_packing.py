"""Packed experiments (``evoticket experiment --pack N``): every cell as alone under the per-individual data order."""

from __future__ import annotations

import csv
import json
import signal
from pathlib import Path

import pytest

from evoticket.cli import main
from evoticket.core import faults
from evoticket.core.errors import ConfigError, EvoticketError, Interrupted
from evoticket.experiment import run_experiment

TINY = (Path(__file__).parent / "tiny.toml").read_text(encoding="utf-8")

# the tiny grid with a dynamic-sparse method and edge-popup's scores, one seed, under the per-individual data order
GRID = (
    TINY.replace('methods = ["dense", "imp", "ga"]', 'methods = ["dense", "imp", "ga", "rigl", "edge_popup"]')
    .replace("seeds = [0, 1]", "seeds = [0]")
    .replace("[base]\n", '[base]\noptimizer.data_order = "individual"\n')
    .replace("[variants.dense]", "[variants.rigl]\ntrain.eval_every = 10\n\n[variants.edge_popup]\ntrain.eval_every = 10\n\n[variants.dense]")
)  # fmt: skip

TIMES = {"seconds", "finetune_seconds", "wall_seconds", "train_seconds", "eval_seconds"}


def records(run_dir: Path) -> dict[str, object]:
    """Every cell's records without their wall times: results.csv, generations.csv, individuals.jsonl, test accuracy."""
    out: dict[str, object] = {}
    with open(run_dir / "results.csv", newline="") as f:
        out["results"] = [{k: v for k, v in r.items() if k not in TIMES} for r in csv.DictReader(f)]
    for cell in sorted((run_dir / "cells").iterdir()):
        with open(cell / "generations.csv", newline="") as f:
            out[cell.name + "/generations"] = [
                {k: v for k, v in r.items() if k not in TIMES} for r in csv.DictReader(f)
            ]
        out[cell.name + "/individuals"] = (cell / "individuals.jsonl").read_text()
        out[cell.name + "/test_acc"] = json.loads((cell / "summary.json").read_text()).get("test_acc")
    return out


def test_packed_cells_give_bit_for_bit_what_they_give_alone(tmp_path, capsys):
    (tmp_path / "grid.toml").write_text(GRID, encoding="utf-8")
    alone = run_experiment(
        tmp_path / "grid.toml", name="alone", runs_dir=tmp_path / "runs", plots_dir=tmp_path / "plots", progress=False
    )
    assert alone.packing is None
    dirs = ["--runs-dir", str(tmp_path / "runs"), "--plots-dir", str(tmp_path / "plots"), "--no-progress"]
    assert main(["experiment", str(tmp_path / "grid.toml"), "--name", "packed", "--pack", "4", *dirs]) == 0
    assert main(["experiment", str(tmp_path / "grid.toml"), "--name", "bad", "--pack", "-2", *dirs]) == 2
    assert "--pack: must be >= 2" in capsys.readouterr().err
    packed = tmp_path / "runs" / "packed"
    info = json.loads((packed / "packing.json").read_text())
    assert info == {"data_order": "individual", "pack": 4}
    assert records(packed) == records(alone.run_dir)
    assert len(records(packed)["results"]) == 5
    assert "shared batches" in (packed / "results.md").read_text()


def test_pack_sets_the_individual_order_and_an_interrupted_packed_run_resumes_to_the_same_results(
    tmp_path, monkeypatch
):
    (tmp_path / "grid.toml").write_text(TINY, encoding="utf-8")  # the common order in the file: --pack sets it
    kw = {"runs_dir": tmp_path / "runs", "plots_dir": tmp_path / "plots", "progress": False, "pack": 3}
    whole = run_experiment(tmp_path / "grid.toml", name="whole", **kw)
    assert whole.packing["packed_steps"] > 0 and whole.packing["most_networks"] > 2
    config = (whole.run_dir / "cells" / "dense-mnist1d-d0.5-uniform-x1-s0" / "config.toml").read_text()
    assert 'data_order = "individual"' in config
    monkeypatch.setattr(faults, "_spec", ("final", 3, signal.SIGINT))  # Ctrl-C in the third cell's final comparison
    monkeypatch.setattr(faults, "_counts", {})
    with pytest.raises(Interrupted) as stopped:
        run_experiment(tmp_path / "grid.toml", name="cut", **kw)
    assert stopped.value.unit == "cell"
    monkeypatch.setattr(faults, "_spec", None)
    with pytest.raises(EvoticketError, match="with --pack 3; resume it --pack 3"):
        run_experiment(tmp_path / "grid.toml", name="cut", resume=True, **{**kw, "pack": 0})
    cut = run_experiment(tmp_path / "grid.toml", name="cut", resume=True, **kw)
    assert 0 < len(cut.ran) < 6
    assert records(cut.run_dir) == records(whole.run_dir)


@pytest.mark.parametrize(
    ("options", "message"),
    [({"pack": -1}, "--pack: must be >= 2"), ({"pack": 4, "backend": "ray"}, "not with --backend ray")],
)
def test_bad_packing_options_are_refused_before_anything_is_written(tmp_path, options, message):
    (tmp_path / "grid.toml").write_text(TINY, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        run_experiment(tmp_path / "grid.toml", runs_dir=tmp_path / "runs", plots_dir=tmp_path / "plots", **options)
    assert not (tmp_path / "runs").exists()


def test_a_grid_run_without_pack_refuses_a_packed_resume(tmp_path):
    (tmp_path / "grid.toml").write_text(TINY.replace("seeds = [0, 1]", "seeds = [0]"), encoding="utf-8")
    kw = {"runs_dir": tmp_path / "runs", "plots_dir": tmp_path / "plots", "progress": False}
    run_experiment(tmp_path / "grid.toml", name="a", **kw)
    with pytest.raises(EvoticketError, match="without --pack; resume it without --pack"):
        run_experiment(tmp_path / "grid.toml", name="a", resume=True, pack=2, **kw)
