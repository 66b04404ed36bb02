"""The experiment: grid expansion, budgets, statistics by hand, a tiny grid end to end and its resume."""

from __future__ import annotations

import csv
import json
import math
import signal
import textwrap
from pathlib import Path

import pytest

from evoticket.campaign import run_campaign
from evoticket.config import CampaignConfig, load_config
from evoticket.core import faults
from evoticket.core.errors import ConfigError, EvoticketError, Interrupted
from evoticket.experiment import aggregate, load_experiment, paired, run_experiment, t_interval
from evoticket.experiment.grid import cell_config
from evoticket.experiment.results import (
    COLUMNS,
    ENSEMBLE_COLUMNS,
    ablation_table,
    columns,
    format_markdown,
    hybrid_names,
    main_table,
    wall_table,
)
from evoticket.methods import METHODS, resolve_run
from evoticket.methods.ga import ga_costs
from evoticket.methods.imp import imp_flops

TINY = (Path(__file__).parent / "tiny.toml").read_text(encoding="utf-8")
"""A tiny grid: dense, IMP and the GA at 50% on MNIST-1D, seeds 0 and 1, networks of 16 hidden units."""


def write(tmp_path, text, name="exp.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_the_grid_expands_as_configured(tmp_path):
    text = TINY.replace('methods = ["dense", "imp", "ga"]', 'methods = ["dense", "ga", "ga_lamarckian"]')
    text = text.replace("densities = [0.5]", "densities = [0.5, 0.2]")
    text += """
[variants.ga_lamarckian]
method = "ga"
finetune.mode = "lamarckian"
finetune.steps = 5
ga.population = 4

[[experiment.extra]]
densities = [0.2]
budgets = [1, 4]
methods = ["ga"]
"""
    exp = load_experiment(write(tmp_path, text))
    names = [c.name for c in exp.cells]
    main = [
        f"{m}-mnist1d-d{d:g}-uniform-x1-s{s}"
        for m in ("dense", "ga", "ga_lamarckian")
        for d in (0.5, 0.2)
        for s in (0, 1)
    ]
    assert names == [*main, "ga-mnist1d-d0.2-uniform-x4-s0", "ga-mnist1d-d0.2-uniform-x4-s1"]  # x1 ones run once
    lam = next(c for c in exp.cells if c.method == "ga_lamarckian")
    config = CampaignConfig.from_dict(lam.overrides)
    assert config.method == "ga" and config.finetune.mode == "lamarckian" and config.ticket.density == 0.5
    assert config.model.hidden == (16,) and config.campaign.seed == 0


def test_base_settings_of_a_method_reach_only_its_cells(tmp_path):
    """[base] is what every cell starts from: a method's own section there ([finetune], [ga], [imp], ...) reaches
    only the cells of methods that read it, so one file can hold the GA's fine-tuning and IMP's rounds."""
    exp = load_experiment(
        write(tmp_path, TINY.replace("[base]", "[base]\nfinetune.mode = 'baldwinian'\nimp.rate = 0.3"))
    )
    by_method = {c.method: c for c in exp.cells}
    assert by_method["ga"].overrides["finetune"]["mode"] == "baldwinian" and "imp" not in by_method["ga"].overrides
    assert by_method["imp"].overrides["imp"]["rate"] == 0.3 and "finetune" not in by_method["imp"].overrides
    assert "finetune" not in by_method["dense"].overrides and "imp" not in by_method["dense"].overrides


@pytest.mark.parametrize(
    ("edit", "starts"),
    [
        (
            ('datasets = ["mnist1d"]', 'datasets = ["mnist"]'),
            "experiment.datasets: 'mnist' has no [datasets.mnist] table",
        ),
        (('methods = ["dense", "imp", "ga"]', 'methods = ["rigl2"]'), "experiment.methods: unknown method 'rigl2'"),
        (("densities = [0.5]", "densities = [1.5]"), "experiment.densities: must be numbers in (0, 1]"),
        (("seeds = [0, 1]", "seeds = []"), "experiment.seeds: must be a non-empty list"),
        (
            ("[datasets.mnist1d]", "[datasets.mnist1d]\nga.population = 12"),
            "cell dense-mnist1d-d0.5-uniform-x1-s0: ga.population: a setting of",
        ),
        (
            ("[variants.imp]", "[variants.imp]\nfinetune.steps = 12"),
            "cell imp-mnist1d-d0.5-uniform-x1-s0: finetune.steps: a setting of",
        ),
        (("[experiment]", "[experimnt]"), "experimnt: unknown table of an experiment file"),
    ],
)
def test_bad_experiment_files_name_the_key(tmp_path, edit, starts):
    path = write(tmp_path, TINY.replace(*edit))
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {starts}"), message
    assert "\n" not in message


def test_statistics_against_a_hand_computation():
    # t interval of 3 values: mean +- t(0.975, 2) * s / sqrt(3), t(0.975, 2) = 4.302652729911275
    mean, low, high = t_interval([0.60, 0.62, 0.67])
    s = math.sqrt(((0.60 - 0.63) ** 2 + (0.62 - 0.63) ** 2 + (0.67 - 0.63) ** 2) / 2)
    assert mean == pytest.approx(0.63)
    assert high - mean == pytest.approx(4.302652729911275 * s / math.sqrt(3))
    assert mean - low == pytest.approx(high - mean)
    assert math.isnan(t_interval([0.5])[1])
    rows = []
    for seed, (a, b) in enumerate([(0.61, 0.60), (0.64, 0.62), (0.66, 0.63)]):
        for method, acc in (("ga", a), ("imp", b)):
            rows.append(
                {
                    "dataset": "d", "density": 0.1, "allocation": "uniform", "budget": 1.0, "method": method,
                    "seed": seed, "test_acc": acc, "density_reached": 0.1, "spent_train_flops": 10,
                    "budget_train_flops": 10, "wall_seconds": 1.0,
                }
            )  # fmt: skip
    agg = {a["method"]: a for a in aggregate(rows)}
    assert agg["ga"]["test_acc_mean"] == pytest.approx((0.61 + 0.64 + 0.66) / 3) and agg["ga"]["seeds"] == 3
    (pair,) = paired(rows)
    # differences 0.01, 0.02, 0.03: mean 0.02, sd 0.01, t = 0.02 / (0.01 / sqrt 3) = 2 sqrt 3; with 2 degrees of
    # freedom the t distribution's cdf is 1/2 + t / (2 sqrt(2 + t^2)), so p = 1 - t / sqrt(2 + t^2)
    t = 2 * math.sqrt(3)
    assert pair["difference"] == pytest.approx(0.02)
    assert pair["p_value"] == pytest.approx(1 - t / math.sqrt(2 + t * t))
    assert pair["ci_high"] - 0.02 == pytest.approx(4.302652729911275 * 0.01 / math.sqrt(3))
    assert (pair["hybrid"], pair["baseline"]) == ("ga", "imp")
    one = [r for r in rows if r["seed"] == 0]  # one seed: no interval, no p-value
    assert "| ga | imp | 1 | +1.0 | [n/a, n/a] | n/a |" in format_markdown(aggregate(one), paired(one))


# ---------------------------------------------------------------------------
# budgets, checked by the meter

COMMON = [
    "model.hidden=[16]",
    "optimizer.batch_size=50",
    "campaign.final_steps=20",
    "campaign.final_eval_every=10",
    "campaign.final_seeds=1",
    "campaign.device=cpu",
    "campaign.progress=false",
    "campaign.plots=none",
    "ticket.density=0.3",
]


def budget_run(tmp_path, method, limit, *more):
    config = CampaignConfig().with_overrides([*COMMON, f"method={method}", f"budget.train_flops={limit}", *more])
    tmp_path.mkdir(parents=True, exist_ok=True)
    with open(tmp_path / "out.txt", "w") as out:
        return run_campaign(config, name=method, runs_dir=tmp_path / "runs", plots_dir=tmp_path / "plots", out=out)


@pytest.mark.parametrize("method", ["dense", "gmp", "rigl", "edge_popup"])
def test_a_one_run_method_spends_its_budget_to_within_one_step(method, tmp_path):
    limit = 40_000_000
    more = ["rigl.delta_t=10"] if method == "rigl" else []
    result = budget_run(tmp_path, method, limit, "train.eval_every=10", *more)
    s = result.summary
    spent, steps = s["budget"]["spent_train_flops"], s["budget"]["steps"]
    assert spent == s[method]["train_flops"] == s["compute"]["search"]["train_flops"]  # the meter's own count
    assert s[method]["train_steps"] == steps
    m = METHODS[method]
    resolved = resolve_run(load_config(tmp_path / "runs" / method / "config.toml"))[1]
    kept = m.start_kept(resolved)
    assert m.run_flops(resolved, kept, steps) == spent  # the plan is the meter's count exactly
    assert spent <= limit < m.run_flops(resolved, kept, steps + 1)  # one more step would pass the budget


def test_the_ga_stops_before_the_generation_that_would_pass_its_budget(tmp_path):
    limit = 30_000_000
    result = budget_run(tmp_path, "ga", limit, "ga.population=4", "ga.generations=1000", "finetune.steps=5")
    b = result.summary["budget"]
    assert b["stopped_by_budget"] and 0 < b["generations"] < 1000
    assert b["spent_train_flops"] == b["search_train_flops"] + b["final_training_train_flops"] <= limit
    per_eval = b["search_train_flops"] / (4 + 8 * b["generations"])  # 4 at generation 0, then 4 + 4 re-evaluated
    assert limit - b["spent_train_flops"] < 1.1 * 8 * per_eval  # another generation would not have fit


def test_imp_stops_at_the_round_its_budget_cannot_pay_for(tmp_path):
    base = CampaignConfig().with_overrides([*COMMON, "method=imp", "imp.steps=20", "ticket.density=0.1"])
    full = imp_flops(resolve_run(base)[1].arch, base)
    result = budget_run(tmp_path, "imp", full // 2, "imp.steps=20", "ticket.density=0.1")
    b = result.summary["budget"]
    assert b["stopped_by_budget"] and result.summary["compute"]["search"]["train_flops"] <= full // 2
    unlimited = budget_run(tmp_path / "u", "imp", full, "imp.steps=20", "ticket.density=0.1")
    assert unlimited.summary["compute"]["search"]["train_flops"] == full  # imp_flops is exact
    assert not unlimited.summary["budget"]["stopped_by_budget"]


def test_a_budget_too_small_for_a_start_is_refused():
    with pytest.raises(ConfigError, match=r"^budget.train_flops: 1,000 does not pay for generation 0"):
        resolve_run(CampaignConfig().with_overrides([*COMMON, "budget.train_flops=1000"]))
    with pytest.raises(ConfigError, match=r"^budget.train_flops: 1,000 does not pay for two training steps"):
        resolve_run(CampaignConfig().with_overrides([*COMMON, "method=rigl", "budget.train_flops=1000"]))


# ---------------------------------------------------------------------------
# a tiny grid end to end, and its resume


def read_rows(path):
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k != "wall_seconds"} for row in csv.DictReader(f)]


def test_a_tiny_grid_runs_end_to_end_and_an_interrupted_one_resumes_to_the_same_results(tmp_path, monkeypatch):
    path = write(tmp_path, TINY)
    a = run_experiment(path, name="a", runs_dir=tmp_path / "runs", plots_dir=tmp_path / "plots", progress=False)
    assert [r["cell"] for r in a.rows] == [
        f"{m}-mnist1d-d0.5-uniform-x1-s{s}" for m in ("dense", "imp", "ga") for s in (0, 1)
    ]
    for row in a.rows:
        assert 0 <= row["test_acc"] <= 1
        assert row["spent_train_flops"] <= row["budget_train_flops"]
    imp_rows = [r for r in a.rows if r["method"] == "imp"]
    assert all(r["spent_train_flops"] == r["budget_train_flops"] for r in imp_rows)  # 1x is IMP's own spend
    md = (a.run_dir / "results.md").read_text()
    assert "| mnist1d | 0.5 | uniform | 1x | ga | 2 |" in md and "| ga | imp | 2 |" in md
    assert (a.plot_dir / "accuracy_vs_density-mnist1d.png").is_file()
    assert (a.plot_dir / "accuracy_vs_compute-mnist1d.pdf").is_file()
    with pytest.raises(EvoticketError, match="exists; continue it with"):
        run_experiment(path, name="a", runs_dir=tmp_path / "runs", plots_dir=tmp_path / "plots", progress=False)
    # interrupted in its third cell's final comparison, then resumed: finished cells are skipped
    monkeypatch.setattr(faults, "_spec", ("final", 3, signal.SIGINT))
    monkeypatch.setattr(faults, "_counts", {})
    with pytest.raises(Interrupted):
        run_experiment(path, name="b", runs_dir=tmp_path / "runs", plots_dir=tmp_path / "plots", progress=False)
    monkeypatch.setattr(faults, "_spec", None)
    b = run_experiment(
        path, name="b", runs_dir=tmp_path / "runs", plots_dir=tmp_path / "plots", progress=False, resume=True
    )
    assert b.ran == [r["cell"] for r in a.rows][2:]
    assert read_rows(a.run_dir / "results.csv") == read_rows(b.run_dir / "results.csv")
    changed = write(tmp_path, TINY.replace("seeds = [0, 1]", "seeds = [0, 1, 2]"), "other.toml")
    with pytest.raises(EvoticketError, match="differs from"):
        run_experiment(changed, name="b", runs_dir=tmp_path / "runs", plots_dir=tmp_path / "plots", resume=True)


def test_cell_budgets_follow_imps_spend(tmp_path):
    text = TINY.replace("budgets = [1]", "budgets = [1, 4]")
    exp = load_experiment(write(tmp_path, text))
    imp4 = next(c for c in exp.cells if c.method == "imp" and c.budget == 4)
    config = cell_config(imp4, 1_000_000)
    assert config.budget.train_flops == 4_000_000 and config.imp.steps == 80  # IMP spends more by longer rounds
    ga4 = next(c for c in exp.cells if c.method == "ga" and c.budget == 4)
    assert cell_config(ga4, 1_000_000).ga.generations == 100_000  # the budget ends the GA


def test_a_cell_its_budget_cannot_start_is_recorded_as_infeasible_with_the_budget_it_needs(tmp_path):
    text = TINY.replace('methods = ["dense", "imp", "ga"]', 'methods = ["imp", "ga"]').replace(
        "seeds = [0, 1]", "seeds = [0]"
    )
    path = write(tmp_path, text.replace("ga.population = 4", "ga.population = 400"))
    r = run_experiment(path, name="x", runs_dir=tmp_path / "runs", plots_dir=tmp_path / "plots", progress=False)
    imp, ga = r.rows
    assert imp["status"] == "done" and 0 <= imp["test_acc"] <= 1
    exp = load_experiment(path)
    cell = next(c for c in exp.cells if c.method == "ga")
    _, resolved = resolve_run(cell_config(cell, 0))
    gen0, _, final = ga_costs(resolved)
    needs = math.ceil(100 * (gen0 + final) / imp["budget_train_flops"]) / 100
    assert gen0 + final > imp["budget_train_flops"]
    assert ga["status"] == f"infeasible: needs {needs:.2f}x" and ga["test_acc"] == "" and ga["spent_train_flops"] == 0
    assert not (r.run_dir / "cells" / ga["cell"]).exists() and r.ran == [imp["cell"]]
    md = (r.run_dir / "results.md").read_text()
    assert f"| mnist1d | 0.5 | uniform | 1x | ga | 0 | infeasible: needs {needs:.2f}x |" in md
    assert [p["hybrid"] for p in paired(r.rows)] == []  # nothing to pair with an infeasible cell
    # a bad setting in one cell's method is refused before anything runs, naming the cell
    bad = write(tmp_path, text.replace("ga.population = 4", "ga.population = 1"), "bad.toml")
    with pytest.raises(ConfigError, match=r"bad.toml: cell ga-mnist1d-d0.5-uniform-x1-s0: ga.population: must be >= 2"):
        run_experiment(bad, name="y", runs_dir=tmp_path / "runs", plots_dir=tmp_path / "plots", progress=False)
    assert not (tmp_path / "runs" / "y").exists()


def test_the_main_table_puts_methods_against_densities_best_first_with_infeasible_cells_named():
    def group(method, density, mean, status="done"):
        seeds = 3 if status == "done" else 0
        return {
            "dataset": "d", "density": density, "allocation": "uniform", "budget": 1, "method": method,
            "seeds": seeds, "test_acc_mean": mean, "ci_low": mean - 0.1, "ci_high": mean + 0.1, "status": status,
        }  # fmt: skip

    agg = [
        group("a", 0.5, 0.5),
        group("a", 0.1, 0.3),
        group("g", 0.5, math.nan, "infeasible: needs 1.10x"),
        group("g", 0.1, 0.6),
        {**group("a", 0.1, 0.9), "budget": 4},  # another budget: a table of its own, after the 1x one
        {**group("a", 0.1, 0.2), "allocation": "erk"},  # not the uniform allocation: in no main table
    ]
    assert main_table(agg) == [
        "",
        "## d: test accuracy (%) at the 1x budget, uniform allocation",
        "",
        "| method | density 0.5 | density 0.1 |",
        "|---|---|---|",
        "| g | infeasible: needs 1.10x | 60.0 [50.0, 70.0] |",
        "| a | 50.0 [40.0, 60.0] | 30.0 [20.0, 40.0] |",
        "",
        "## d: test accuracy (%) at the 4x budget, uniform allocation",
        "",
        "| method | density 0.1 |",
        "|---|---|",
        "| a | 90.0 [80.0, 100.0] |",
    ]


def test_every_variant_of_the_ga_is_paired_with_the_baselines():
    raw = {
        "variants": {"ga_lamarckian": {"method": "ga"}, "mag": {"method": "ga"}, "imp": {}, "fast": {"method": "dense"}}
    }
    assert hybrid_names(raw) == ("ga", "ga_lamarckian", "mag")
    rows = [
        {"dataset": "d", "density": 0.1, "allocation": "uniform", "budget": 1, "method": m, "seed": s, "test_acc": acc + s / 100}
        for m, acc in (("mag", 0.7), ("imp", 0.6), ("fast", 0.5)) for s in range(3)
    ]  # fmt: skip
    pairs = paired(rows, hybrid_names(raw))
    assert [(p["hybrid"], p["baseline"]) for p in pairs] == [("mag", "imp")]
    assert pairs[0]["difference"] == pytest.approx(0.1) and pairs[0]["seeds"] == 3


def test_the_ablation_table_gives_every_method_and_allocation_a_row_with_its_compute():
    def group(method, allocation, dataset, mean, spent, budget=1, status="done"):
        return {
            "dataset": dataset, "density": 0.1, "allocation": allocation, "budget": budget, "method": method,
            "seeds": 3 if status == "done" else 0, "test_acc_mean": mean, "ci_low": mean - 0.01,
            "ci_high": mean + 0.01, "status": status, "spent_train_flops": spent, "budget_train_flops": 2e9,
        }  # fmt: skip

    agg = [
        group("ga", "uniform", "a", 0.5, 1e9),
        group("ga", "uniform", "b", 0.7, 1e9),
        group("ga", "lth", "a", 0.6, 2e9),
        group("imp", "uniform", "a", 0.9, 2e9),
        group("ga", "uniform", "a", 0.8, 8e9, budget=4),
    ]
    assert ablation_table(agg) == [
        "",
        "## Ablation at the 1x budget: test accuracy (%) per method and allocation",
        "",
        "| method | allocation | a 0.1 | b 0.1 | spent / budget GFLOP | spent |",
        "|---|---|---|---|---|---|",
        "| imp | uniform | 90.0 [89.0, 91.0] |  | 2.0 / 2.0 | 100% |",
        "| ga | uniform | 50.0 [49.0, 51.0] | 70.0 [69.0, 71.0] | 2.0 / 4.0 | 50% |",
        "| ga | lth | 60.0 [59.0, 61.0] |  | 2.0 / 2.0 | 100% |",
        "",
        "## Ablation at the 4x budget: test accuracy (%) per method and allocation",
        "",
        "| method | allocation | a 0.1 | spent / budget GFLOP | spent |",
        "|---|---|---|---|---|",
        "| ga | uniform | 80.0 [79.0, 81.0] | 8.0 / 2.0 | 400% |",
    ]


def test_the_wall_clock_table_lists_each_setting_fastest_first_with_accuracy_and_flops():
    def group(method, wall, mean, spent, status="done"):
        return {
            "dataset": "a", "density": 0.1, "allocation": "uniform", "budget": 1, "method": method,
            "seeds": 3 if status == "done" else 0, "test_acc_mean": mean, "ci_low": mean - 0.01,
            "ci_high": mean + 0.01, "status": status, "spent_train_flops": spent, "budget_train_flops": 2e9,
            "wall_seconds": wall,
        }  # fmt: skip

    agg = [group("rigl", 36.0, 0.82, 2e9), group("ga", 12.4, 0.66, 1.9e9), group("imp", 0.0, 0.0, 0, "infeasible")]
    assert wall_table(agg) == [
        "",
        "## Wall clock: a, density 0.1, uniform allocation, 1x budget",
        "",
        "| method | wall s per cell | test acc | 95% CI | training GFLOP |",
        "|---|---|---|---|---|",
        "| ga | 12 | 66.0 | [65.0, 67.0] | 1.9 |",
        "| rigl | 36 | 82.0 | [81.0, 83.0] | 2.0 |",
    ]


def test_ensembles_get_their_columns_where_cells_have_them_and_none_otherwise(tmp_path):
    text = TINY.replace('methods = ["dense", "imp", "ga"]', 'methods = ["dense", "ga"]').replace(
        "seeds = [0, 1]", "seeds = [0]"
    )
    text = text.replace("[variants.ga]", "[variants.ga]\ncampaign.ensemble = 2")  # the GA's cells only
    r = run_experiment(write(tmp_path, text), name="e", runs_dir=tmp_path / "runs", plots_dir=tmp_path / "plots", progress=False)  # fmt: skip
    with open(r.run_dir / "results.csv", newline="") as f:
        header = next(csv.reader(f))
    assert tuple(header) == COLUMNS + ENSEMBLE_COLUMNS
    dense, ga = read_rows(r.run_dir / "results.csv")
    assert dense["ensemble_test_acc"] == dense["ensemble_inference_flops"] == ""  # no ensemble: empty
    summary = json.loads((r.run_dir / "cells" / ga["cell"] / "summary.json").read_text())
    assert float(ga["ensemble_test_acc"]) == pytest.approx(summary["ensemble"]["test_acc"][0])
    assert int(ga["ensemble_inference_flops"]) == summary["ensemble"]["inference_flops"] > 0
    md = (r.run_dir / "results.md").read_text()
    assert "| wall s | ensemble test acc | ensemble FLOPs per example |" in md
    flops = f"{summary['ensemble']['inference_flops']:,}"
    assert f"| {100 * float(ga['ensemble_test_acc']):.1f} [n/a, n/a] | {flops} |" in md
    assert next(line for line in md.splitlines() if "| dense |" in line).endswith("| | |")
    # without any ensemble: the columns and table of before, not a character more
    plain = [{k: v for k, v in row.items() if k not in ENSEMBLE_COLUMNS} for row in r.rows]
    assert columns(plain) == COLUMNS and columns(r.rows) == COLUMNS + ENSEMBLE_COLUMNS
    text = format_markdown(aggregate(plain), paired(plain))
    assert "nsemble" not in text and "| wall s |\n|---|---|---|---|---|---|---|---|---|---|---|\n" in text


def test_random_search_and_tuned_rigl_spend_a_grid_cells_budget(tmp_path):
    """The two controls of the hybrid (issue 24) in cells with a budget: random search draws batches until the budget
    ends it, tuned RigL gives each of its runs a share of the steps the budget pays for."""
    text = TINY.replace('methods = ["dense", "imp", "ga"]', 'methods = ["random_search", "rigl_tuned"]')
    text = text.replace("seeds = [0, 1]", "seeds = [0]")
    text += """
[variants.random_search]
finetune.steps = 4
ga.population = 4
ga.offspring = 2
ga.halving_rungs = 1

[variants.rigl_tuned]
train.eval_every = 10
rigl.delta_t = 5
rigl_tuned.runs = 4
"""
    path = write(tmp_path, text)
    exp = load_experiment(path)
    search_cell, tuned_cell = exp.cells
    assert cell_config(search_cell, 10**9).ga.generations == 100_000  # the budget ends the search
    assert cell_config(tuned_cell, 10**9).train.steps == 1500  # unused: the budget decides the steps
    r = run_experiment(path, name="x", runs_dir=tmp_path / "runs", plots_dir=tmp_path / "plots", progress=False)
    search, tuned = r.rows
    assert [search["method"], tuned["method"]] == ["random_search", "rigl_tuned"]
    for row in r.rows:
        assert row["status"] == "done" and 0 <= row["test_acc"] <= 1
        assert 0 < row["spent_train_flops"] <= row["budget_train_flops"]
    budget = search["budget_train_flops"]
    _, resolved = resolve_run(cell_config(search_cell, budget))
    _, later, _ = ga_costs(resolved)
    assert budget - search["spent_train_flops"] < later  # another batch would not have fit
    method, resolved = resolve_run(cell_config(tuned_cell, budget))
    kept, steps = method.start_kept(resolved), method.planned_steps(resolved, method.start_kept(resolved))
    assert tuned["spent_train_flops"] == method.run_flops(resolved, kept, steps)  # the plan is the meter's count
    assert method.run_flops(resolved, kept, steps + 1) > budget  # one more step a run would pass the budget
    assert tuned["train_steps"] == 4 * steps


def test_the_hybrid_is_paired_with_tuned_rigl_and_random_search():
    rows = [
        {"dataset": "d", "density": 0.1, "allocation": "uniform", "budget": 1, "method": m, "seed": s, "test_acc": acc + s / 100}
        for m, acc in (("ga", 0.7), ("rigl_tuned", 0.65), ("random_search", 0.6)) for s in range(3)
    ]  # fmt: skip
    pairs = paired(rows)
    assert [(p["hybrid"], p["baseline"]) for p in pairs] == [("ga", "rigl_tuned"), ("ga", "random_search")]
    assert [p["difference"] for p in pairs] == pytest.approx([0.05, 0.1])
