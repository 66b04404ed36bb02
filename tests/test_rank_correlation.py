"""benchmarks/rank_correlation.py in its quick mode: the promised JSON and figure, and the same numbers twice."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "rank_correlation.py"


def load_script():
    """The benchmark script as a module (benchmarks/ is not a package), imported once."""
    name = "benchmarks_rank_correlation"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the script is executed
        spec.loader.exec_module(module)
    return sys.modules[name]


def numbers(result: dict) -> dict:
    """The result without what may differ between identical runs (wall times, machine)."""
    return {k: v for k, v in result.items() if k not in ("wall_seconds", "machine")}


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    """Two quick runs with the same arguments, each into its own folder: ``(module, [(json, png)] * 2)``."""
    rc = load_script()
    runs = []
    for i in range(2):
        folder = tmp_path_factory.mktemp(f"rank{i}")
        out, fig = folder / "rc.json", folder / "figures" / "rc.png"
        rc.main(["--quick", "--out", str(out), "--figure", str(fig)])
        runs.append((out, fig))
    return rc, runs


def test_quick_json_has_the_promised_keys(quick_runs):
    rc, [(out, _), _] = quick_runs
    result = json.loads(out.read_text())
    for key in ("settings", "correlations", "spread", "tickets", "wall_seconds", "torch", "machine"):
        assert key in result
    settings = result["settings"]
    assert settings["quick"] is True
    assert settings["fitness_steps"] == rc.QUICK["steps"]
    assert settings["final_steps"] == rc.QUICK["final_steps"]
    assert settings["lr"] == 0.02 and settings["batch_size"] == 100
    assert set(result["wall_seconds"]) >= {"sample", "fitness", "final", "total"}


def test_quick_sample_size_and_groups(quick_runs):
    rc, [(out, _), _] = quick_runs
    result = json.loads(out.read_text())
    tickets = result["tickets"]
    assert len(tickets) == rc.QUICK["random"] + rc.QUICK["magnitude"]
    groups = [t["group"] for t in tickets]
    assert groups.count("random") == rc.QUICK["random"]
    assert groups.count("magnitude") == rc.QUICK["magnitude"]
    kept = {json.dumps(t["layer_kept"], sort_keys=True) for t in tickets}
    assert len(kept) == 1  # every mask keeps the same count per layer
    steps = {"0", *(str(s) for s in rc.QUICK["steps"])}
    for t in tickets:
        assert set(t["fitness"]) == steps
        assert len(t["final_test_acc"]) == 2
        assert 0.0 <= t["final_test_acc_mean"] <= 1.0
        assert all(0.0 <= v <= 1.0 for v in t["fitness"].values())
    assert result["spread"]["all"]["n"] == len(tickets)


def test_quick_correlations_are_in_range(quick_runs):
    _, [(out, _), _] = quick_runs
    corr = json.loads(out.read_text())["correlations"]
    cells = [c for row in corr["fitness_vs_final"].values() for c in row.values()]
    cells += list(corr["final_vs_final"].values())
    assert cells
    for c in cells:
        for key in ("rho", "p", "n"):
            assert key in c
        if c["rho"] is not None:
            assert -1.0 <= c["rho"] <= 1.0
            assert 0.0 <= c["p"] <= 1.0
    assert corr["final_vs_final"]["all"]["rho"] is not None
    assert not any(isinstance(c["rho"], float) and math.isnan(c["rho"]) for c in cells)


def test_quick_figure_is_a_png(quick_runs):
    _, [(_, fig), _] = quick_runs
    assert fig.is_file()
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_same_seed_same_numbers(quick_runs):
    _, [(first, _), (second, _)] = quick_runs
    assert numbers(json.loads(first.read_text())) == numbers(json.loads(second.read_text()))


def test_quick_refuses_the_default_paths():
    rc = load_script()
    with pytest.raises(SystemExit):
        rc.main(["--quick"])


def test_magnitude_schedule_draws_t0_once():
    rc = load_script()
    schedule = rc.magnitude_schedule(24, rc.PRUNE_STEPS)
    assert len(schedule) == 24
    assert len(set(schedule)) == 24
    assert [t for t, _ in schedule].count(0) == 1
    assert rc.magnitude_schedule(3, [0]) == [(0, None)]
