"""The examples run, on a tiny budget, and show what they claim."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import evoticket

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("algorithm", ["mu+lambda", "simple"])
def test_custom_deap_search_improves_on_its_initial_population(tmp_path, capsys, algorithm):
    args = ["--generations", "3", "--steps", "30", "--runs-dir", str(tmp_path), "--algorithm", algorithm]
    out = load("custom_deap_search").main(args)
    assert out["best"] > out["first_max"] and out["best_generation"] > 0  # the search, not generation 0, found it
    assert (out["run_dir"] / "best_ticket.pt").is_file() and (out["run_dir"] / "generations.csv").is_file()
    assert "max validation accuracy: generation 0" in capsys.readouterr().out
    # the evaluations returned the traits mutMagnitudeSwap reads (the example asserts it), no setting by hand
    assert out["traits"] == "gradients"


def test_deap_eamupluslambda_keeps_the_survivor_scheme_and_elitism(fast_config):
    """toolbox.select is the survivor scheme: DEAP's eaMuPlusLambda keeps the ga.elitism best of parents + offspring."""
    import random

    from deap import algorithms

    random.seed(3)
    toolbox = evoticket.make_toolbox(fast_config.with_overrides(["ga.elitism=2"]))
    population = toolbox.population(n=6)
    seen = []
    original = toolbox.select

    def spy(individuals, k):
        survivors = original(individuals, k)
        ranked = sorted(individuals, key=lambda ind: ind.fitness.wvalues, reverse=True)
        seen.append(all(any(s is best for s in survivors) for best in ranked[:2]))
        return survivors

    toolbox.select = spy
    algorithms.eaMuPlusLambda(population, toolbox, mu=6, lambda_=6, cxpb=0.5, mutpb=0.5, ngen=2, verbose=False)
    assert seen == [True, True]


def test_campaign_from_script_reads_records_as_dataframes(tmp_path, monkeypatch):
    pytest.importorskip("pandas")
    monkeypatch.chdir(tmp_path)
    out = load("campaign_from_script").main(["--generations", "2", "--final-steps", "20", "--hidden", "[16]"])
    assert out["generations"] == 3 and out["individuals"] > 0


def test_multi_objective_compares_the_front_with_imp(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = load("multi_objective").main(
        ["--generations", "2", "--population", "6", "--final-steps", "20", "--hidden", "[16]", "--imp"]
    )
    assert len(out["front"]) >= 1 and len(out["vs_imp"]) >= 3
    assert (tmp_path / "plots" / "mo" / "pareto.png").is_file()
    assert "IMP round" in capsys.readouterr().out


def test_compact_ticket_round_trips_exactly(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = load("compact_ticket").main(["--generations", "2", "--hidden", "[16]"])
    assert out["exact"] and out["same_outputs"] and out["same_genome"] and out["stored"] == [] and out["nodes"] >= 1
    assert not out["network_only"]
    assert out["recipe_bytes"] < out["state_dict_gzip_bytes"]


def test_own_model_runs_a_campaign_and_a_deap_search_on_a_users_network_and_arrays(tmp_path):
    out = load("own_model").main(
        [
            "--generations",
            "2",
            "--population",
            "4",
            "--steps",
            "5",
            "--final-steps",
            "20",
            "--runs-dir",
            str(tmp_path / "runs"),
            "--plots-dir",
            str(tmp_path / "plots"),
        ]
    )
    summary = out["summary"]
    assert summary["model"] == "small_cnn" and summary["data"] == "npz"
    layers = [layer["name"] for layer in summary["architecture"]["layers"]]
    assert layers == ["features.0", "features.3", "head"]  # Conv1d, Conv1d, Linear
    assert [n["name"] for n in summary["architecture"]["norms"]] == ["features.1", "features.4"]
    assert type(out["module"]).__name__ == "SmallCNN" and hasattr(out["module"].head, "weight_mask")
    assert 0.0 <= out["untrained_test_acc"] <= 1.0
    assert (out["run_dir"] / "best_ticket.pt").is_file() and (out["deap_run_dir"] / "generations.csv").is_file()
    assert (tmp_path / "plots" / "own-model" / "masks.png").is_file()
