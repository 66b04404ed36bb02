"""benchmarks/packing_agreement.py: a packed experiment's means against the unpacked run's intervals."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest

from evoticket.experiment.results import t_interval

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "packing_agreement.py"
FIELDS = ("cell", "method", "dataset", "density", "density_reached", "allocation", "budget", "budget_train_flops")
FIELDS += ("spent_train_flops", "train_steps", "seed", "test_acc", "wall_seconds", "status")


def load():
    spec = importlib.util.spec_from_file_location("packing_agreement", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write(path: Path, accuracies: dict[str, list[float | None]]) -> Path:
    """A results.csv with a cell per (method, seed) at 10% density; ``None`` marks an infeasible cell."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        for method, values in accuracies.items():
            for seed, acc in enumerate(values):
                writer.writerow(
                    {
                        "cell": f"{method}-s{seed}",
                        "method": method,
                        "dataset": "mnist1d",
                        "density": 0.1,
                        "density_reached": 0.1,
                        "allocation": "uniform",
                        "budget": 1.0,
                        "budget_train_flops": 100,
                        "spent_train_flops": 100 if acc is not None else 0,
                        "train_steps": 10,
                        "seed": seed,
                        "test_acc": "" if acc is None else acc,
                        "wall_seconds": 1.5,
                        "status": "done" if acc is not None else "infeasible: needs 1.10x",
                    }
                )
    return path


def test_agreement_counts_means_inside_the_reference_interval(tmp_path, capsys):
    module = load()
    reference = write(
        tmp_path / "ref.csv",
        {"dense": [0.60, 0.62, 0.64], "rigl": [0.80, 0.81, 0.82], "ga": [None, None], "one": [0.5]},
    )
    packed = write(
        tmp_path / "packed.csv",
        {"dense": [0.61, 0.63, 0.65], "rigl": [0.70, 0.71, 0.72], "ga": [None, None], "one": [0.6]},
    )
    rows = {r["method"]: r for r in module.agreement(module.read_rows(reference), module.read_rows(packed))}
    assert set(rows) == {"dense", "rigl", "one"}  # the infeasible group has nothing to compare
    mean, low, high = t_interval([0.60, 0.62, 0.64])
    assert rows["dense"]["reference_mean"] == pytest.approx(100 * mean)
    assert rows["dense"]["reference_ci"] == pytest.approx([100 * low, 100 * high])
    assert rows["dense"]["packed_mean"] == pytest.approx(63.0)
    assert rows["dense"]["inside"] is True
    assert rows["rigl"]["inside"] is False and rows["rigl"]["difference"] == pytest.approx(-10.0)
    assert rows["one"]["inside"] is None and rows["one"]["p_welch"] is None  # one seed: no interval, no test
    assert rows["rigl"]["p_welch"] < 0.001 < 0.5 < rows["dense"]["p_welch"]

    out = tmp_path / "agreement.json"
    assert module.main([str(reference), str(packed), "--wall", "300", "200", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "1 of 2 groups have their packed mean inside" in printed
    assert "1.50x" in printed
    assert "p < 0.05 in 1 of 2 groups" in printed
    record = json.loads(out.read_text())
    assert (record["groups"], record["inside_interval"], record["speedup"]) == (2, 1, 1.5)


def test_a_missing_file_is_named_with_exit_status_2(tmp_path, capsys):
    module = load()
    packed = write(tmp_path / "packed.csv", {"dense": [0.6]})
    assert module.main([str(tmp_path / "nope.csv"), str(packed)]) == 2
    err = capsys.readouterr().err
    assert "nope.csv" in err and "results.csv" in err and len(err.strip().splitlines()) == 1
