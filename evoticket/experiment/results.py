"""An experiment's results: ``results.csv`` (a row per cell), ``results.md`` (means with 95% confidence
intervals, paired comparisons of the hybrid), ``results.json`` and the figures.

Confidence intervals are Student-t intervals over seeds (``scipy.stats.t``); a paired comparison takes
the per-seed differences of two methods in the same (data set, density, allocation, budget) on the
same seeds, with their t interval and the paired t-test's two-sided p-value (``scipy.stats.ttest_rel``).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evoticket.core.io import atomic_write_text, write_csv

COLUMNS = (
    "cell",
    "method",
    "dataset",
    "density",
    "density_reached",
    "allocation",
    "budget",
    "budget_train_flops",
    "spent_train_flops",
    "train_steps",
    "seed",
    "test_acc",
    "wall_seconds",
    "status",
)
"""Columns of ``results.csv``: the cell, its method and grid values, the density it reached, its budget
(multiple of IMP's spend and in training FLOPs), what it spent (training FLOPs, against the budget; steps),
its seed, its test accuracy at the early-stopping step (in [0, 1]), its wall time (seconds) and its status:
``done``, or ``infeasible: needs NX`` for a cell whose budget does not pay for its method's first unit of
work (then with the budget N times IMP's spend it would need, and no accuracy). Then :data:`ENSEMBLE_COLUMNS`
when any cell has an ensemble."""

ENSEMBLE_COLUMNS = ("ensemble_test_acc", "ensemble_inference_flops")
"""Columns ``results.csv`` adds after :data:`COLUMNS` when any cell has an ensemble (``campaign.ensemble``,
:mod:`evoticket.campaign.ensemble`): its test accuracy on the final comparison's first seed (in [0, 1]; the seed the
GA's ``test_acc`` reads) and its inference FLOPs per example (its members' forward FLOPs summed); empty for a cell
without one."""

HYBRIDS = ("ga", "ga_lamarckian")
"""The grid's names of evoticket's hybrid (Baldwinian and Lamarckian)."""

BASELINES = ("imp", "rigl", "rigl_tuned", "random_search", "dense")
"""What the hybrid is compared with, seed by seed (those the grid ran): IMP, RigL, RigL with its hyperparameters
tuned at equal budget, random search over tickets trained as the hybrid's individuals are, dense training."""


def cell_accuracy(summary: dict[str, Any]) -> tuple[float, float]:
    """A cell's test accuracy and reached density from its ``summary.json``.

    The method's own result where it has one (IMP's last round, a one-run method's network,
    ``supermask_ga``'s untrained supermask); for the GA, its ticket's first final training (the
    one its budget pays for).
    """
    method = summary["method"]
    own = summary.get(method)
    if isinstance(own, dict) and own.get("test_acc") is not None:
        return float(own["test_acc"]), float(own.get("density_total", summary["best"]["density_total"]))
    ticket = summary["controls"]["ticket"]
    return float(ticket["test_acc"][0]), float(ticket["density"])


def cell_row(cell: Any, summary: dict[str, Any], imp_spend: int) -> dict[str, Any]:
    """The ``results.csv`` row of a finished cell."""
    acc, reached = cell_accuracy(summary)
    budget = summary.get("budget", {})
    search = summary["compute"]["search"]
    spent = budget.get("spent_train_flops", search["train_flops"])
    return {
        "cell": cell.name,
        "method": cell.method,
        "dataset": cell.dataset,
        "density": cell.density,
        "density_reached": round(reached, 6),
        "allocation": cell.allocation,
        "budget": cell.budget,
        "budget_train_flops": int(budget.get("train_flops", 0)) if cell.budget else 0,
        "spent_train_flops": int(spent),
        "train_steps": int(search["train_steps"]),
        "seed": cell.seed,
        "test_acc": round(acc, 6),
        "wall_seconds": round(float(summary["timing"]["wall_seconds"]), 1),
        "status": "done",
        **ensemble_fields(summary),
    }


def ensemble_fields(summary: dict[str, Any]) -> dict[str, Any]:
    """A cell's :data:`ENSEMBLE_COLUMNS` from its ``summary.json`` (none without an ensemble)."""
    ensemble = summary.get("ensemble")
    if not ensemble:
        return {}
    return {
        "ensemble_test_acc": round(float(ensemble["test_acc"][0]), 6),
        "ensemble_inference_flops": int(ensemble["inference_flops"]),
    }


def columns(rows: Sequence[dict[str, Any]]) -> tuple[str, ...]:
    """The columns of ``results.csv`` for ``rows``: :data:`COLUMNS`, then :data:`ENSEMBLE_COLUMNS` when any row has an
    ensemble."""
    return COLUMNS + ENSEMBLE_COLUMNS if any(_has_ensemble(r) for r in rows) else COLUMNS


def _has_ensemble(row: dict[str, Any]) -> bool:
    return row.get("ensemble_test_acc") not in (None, "")


def infeasible_row(cell: Any, imp_spend: int, needed: int) -> dict[str, Any]:
    """The ``results.csv`` row of a cell whose budget does not pay for its method's first unit of work.

    Args:
        cell: the grid cell.
        imp_spend: IMP's spend to reach the cell's density (training FLOPs; the budget's unit).
        needed: the smallest budget that would pay for it (training FLOPs).

    Returns:
        A row with no accuracy, nothing spent and ``status = "infeasible: needs N.NNx"``.
    """
    return {
        "cell": cell.name,
        "method": cell.method,
        "dataset": cell.dataset,
        "density": cell.density,
        "density_reached": "",
        "allocation": cell.allocation,
        "budget": cell.budget,
        "budget_train_flops": round(cell.budget * imp_spend),
        "spent_train_flops": 0,
        "train_steps": 0,
        "seed": cell.seed,
        "test_acc": "",
        "wall_seconds": 0.0,
        "status": f"infeasible: needs {math.ceil(100 * needed / imp_spend) / 100:.2f}x",
    }


def _done(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("status", "done") == "done"]


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval ``(mean, low, high)`` of ``values``; for one value the interval is NaN."""
    from scipy import stats

    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan, math.nan
    sem = stats.sem(values)
    if sem == 0:
        return mean, mean, mean
    low, high = stats.t.interval(level, n - 1, loc=mean, scale=sem)
    return mean, float(low), float(high)


def aggregate(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per method x data set x density x allocation x budget: seeds, mean test accuracy and its 95% interval (and,
    where its cells have ensembles, ``ensemble_test_acc_mean``, ``ensemble_ci_low``, ``ensemble_ci_high`` and
    ``ensemble_inference_flops``, FLOPs per example)."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["dataset"], r["density"], r["allocation"], r["budget"], r["method"])].append(r)
    out = []
    for (dataset, density, allocation, budget, method), every in groups.items():
        group = {"dataset": dataset, "density": density, "allocation": allocation, "budget": budget, "method": method}
        rs = _done(every)
        if not rs:  # no cell of the group could run in its budget: the row says what it would need
            nan = math.nan
            group.update(seeds=0, test_acc_mean=nan, ci_low=nan, ci_high=nan, density_reached=nan)
            group.update(
                spent_train_flops=0.0, budget_train_flops=sum(r["budget_train_flops"] for r in every) / len(every)
            )
            group.update(wall_seconds=0.0, status=every[0]["status"])
            out.append(group)
            continue
        mean, low, high = t_interval([r["test_acc"] for r in rs])
        group.update(seeds=len(rs), test_acc_mean=mean, ci_low=low, ci_high=high)
        for key in ("density_reached", "spent_train_flops", "budget_train_flops", "wall_seconds"):
            group[key] = sum(r[key] for r in rs) / len(rs)
        group["status"] = "done"
        ens = [r for r in rs if _has_ensemble(r)]
        if ens:  # the cells' ensembles: mean test accuracy, its interval, mean inference FLOPs per example
            mean, low, high = t_interval([r["ensemble_test_acc"] for r in ens])
            group.update(ensemble_test_acc_mean=mean, ensemble_ci_low=low, ensemble_ci_high=high)
            group["ensemble_inference_flops"] = sum(r["ensemble_inference_flops"] for r in ens) / len(ens)
        out.append(group)
    out.sort(key=lambda a: (a["dataset"], -a["density"], a["allocation"], a["budget"], a["method"]))
    return out


def hybrid_names(raw: dict[str, Any] | None) -> tuple[str, ...]:
    """The grid names of the hybrid: :data:`HYBRIDS` and every variant of the experiment file whose method is a
    hybrid (:attr:`evoticket.methods.Method.hybrid`)."""
    from evoticket.methods import METHODS

    variants = (raw or {}).get("variants") or {}
    found = [
        name
        for name, v in variants.items()
        if isinstance(v, dict) and getattr(METHODS.get(v.get("method", name)), "hybrid", False)
    ]
    return tuple(dict.fromkeys([*HYBRIDS, *found]))


def paired(rows: Sequence[dict[str, Any]], hybrids: Sequence[str] = HYBRIDS) -> list[dict[str, Any]]:
    """The hybrid against each baseline on the same seeds: mean difference, its 95% interval, paired p-value.

    Args:
        rows: ``results.csv``'s rows.
        hybrids: the grid names compared with :data:`BASELINES` (:func:`hybrid_names`).
    """
    from scipy import stats

    by = {(r["dataset"], r["density"], r["allocation"], r["budget"], r["method"], r["seed"]): r for r in _done(rows)}
    settings = sorted({k[:4] for k in by}, key=lambda k: (k[0], -k[1], k[2], k[3]))
    out = []
    for setting in settings:
        for hybrid in hybrids:
            for base in BASELINES:
                seeds = sorted(k[5] for k in by if k[:5] == (*setting, hybrid) and (*setting, base, k[5]) in by)
                if not seeds:
                    continue
                diffs = [by[(*setting, hybrid, s)]["test_acc"] - by[(*setting, base, s)]["test_acc"] for s in seeds]
                mean, low, high = t_interval(diffs)
                p = math.nan
                if len(seeds) > 1 and any(d != diffs[0] for d in diffs):
                    a = [by[(*setting, hybrid, s)]["test_acc"] for s in seeds]
                    b = [by[(*setting, base, s)]["test_acc"] for s in seeds]
                    p = float(stats.ttest_rel(a, b).pvalue)
                out.append(
                    {
                        "dataset": setting[0],
                        "density": setting[1],
                        "allocation": setting[2],
                        "budget": setting[3],
                        "hybrid": hybrid,
                        "baseline": base,
                        "seeds": len(seeds),
                        "difference": mean,
                        "ci_low": low,
                        "ci_high": high,
                        "p_value": p,
                    }
                )
    return out


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.1f}"


def _points(x: float) -> str:
    """A difference of accuracies in signed percentage points; ``n/a`` where undefined (one seed)."""
    return "n/a" if x != x else f"{100 * x:+.1f}"


def main_table(agg: Sequence[dict[str, Any]]) -> list[str]:
    """Markdown lines of the main tables: per data set and budget, methods x densities at the uniform allocation.

    Each entry is the mean test accuracy (%) with its 95% interval, or the infeasible cells' status; the
    1x budget first. Empty when the grid has no such cells.
    """
    main = [a for a in agg if a["allocation"] == "uniform"]
    lines: list[str] = []
    tables = sorted({(a["dataset"], a["budget"]) for a in main}, key=lambda k: (k[1] != 1, k[0], k[1]))
    for dataset, budget in tables:
        rows = [a for a in main if a["dataset"] == dataset and a["budget"] == budget]
        densities = sorted({a["density"] for a in rows}, reverse=True)
        by = {(a["method"], a["density"]): a for a in rows}
        means = defaultdict(list)  # the rows go best first (mean accuracy over the densities that ran)
        for a in rows:
            if a["seeds"]:
                means[a["method"]].append(a["test_acc_mean"])
        methods = sorted({a["method"] for a in rows}, key=lambda m: -sum(means[m]) / len(means[m]) if means[m] else 1)
        lines += [
            "",
            f"## {dataset}: test accuracy (%) at the {budget:g}x budget, uniform allocation",
            "",
            "| method | " + " | ".join(f"density {d:g}" for d in densities) + " |",
            "|---|" + "---|" * len(densities),
        ]
        for m in methods:
            cells = []
            for d in densities:
                a = by.get((m, d))
                if a is None:
                    cells.append("")
                elif a.get("status", "done") != "done":
                    cells.append(a["status"])
                else:
                    cells.append(f"{_pct(a['test_acc_mean'])} [{_pct(a['ci_low'])}, {_pct(a['ci_high'])}]")
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return lines


def ablation_table(agg: Sequence[dict[str, Any]]) -> list[str]:
    """Markdown lines of the ablation tables: per budget, one row per method and allocation, one column per data set
    and density, and the row's compute.

    Each entry is the mean test accuracy (%) with its 95% interval (or an infeasible cell's status); the last
    columns give the training FLOPs the row spent, in GFLOP summed over its settings, against its budgets', and
    as a share of them. Rows go best first (mean accuracy over the settings that ran).
    """
    lines: list[str] = []
    for budget in sorted({a["budget"] for a in agg}, key=lambda b: (b != 1, b)):
        groups = [a for a in agg if a["budget"] == budget]
        columns = sorted({(a["dataset"], a["density"]) for a in groups}, key=lambda k: (k[0], -k[1]))
        by = {(a["method"], a["allocation"], a["dataset"], a["density"]): a for a in groups}
        means = defaultdict(list)  # best first: mean accuracy over the settings that ran
        for a in groups:
            if a["seeds"]:
                means[(a["method"], a["allocation"])].append(a["test_acc_mean"])
        rows = sorted(
            dict.fromkeys((a["method"], a["allocation"]) for a in groups),
            key=lambda r: -sum(means[r]) / len(means[r]) if means[r] else 1,
        )
        lines += [
            "",
            f"## Ablation at the {budget:g}x budget: test accuracy (%) per method and allocation",
            "",
            "| method | allocation | "
            + " | ".join(f"{d} {x:g}" for d, x in columns)
            + " | spent / budget GFLOP | spent |",
            "|---|---|" + "---|" * (len(columns) + 2),
        ]
        for method, allocation in rows:
            cells, spent, budgets = [], 0.0, 0.0
            for dataset, density in columns:
                a = by.get((method, allocation, dataset, density))
                if a is None:
                    cells.append("")
                    continue
                spent += a["spent_train_flops"]
                budgets += a["budget_train_flops"]
                if a.get("status", "done") != "done":
                    cells.append(a["status"])
                else:
                    cells.append(f"{_pct(a['test_acc_mean'])} [{_pct(a['ci_low'])}, {_pct(a['ci_high'])}]")
            share = f"{100 * spent / budgets:.0f}%" if budgets else "n/a"
            lines.append(
                f"| {method} | {allocation} | "
                + " | ".join(cells)
                + f" | {spent / 1e9:.1f} / {budgets / 1e9:.1f} | {share} |"
            )
    return lines


def wall_table(agg: Sequence[dict[str, Any]]) -> list[str]:
    """Markdown lines of the wall-clock tables: per data set, density, allocation and budget, each method's wall time
    per cell (mean over seeds, seconds, on the machine that ran the experiment, one cell at a time) beside its test
    accuracy and its training FLOPs, fastest first.

    At equal training FLOPs the methods' wall times differ by how well their work fills the machine: a population
    batch costs about one network's time on a device it does not fill (a GPU), and about P networks' on one it does
    (a 2-core CPU).
    """
    lines: list[str] = []
    done = [a for a in agg if a.get("status", "done") == "done" and a["seeds"]]
    settings = sorted(
        {(a["dataset"], a["density"], a["allocation"], a["budget"]) for a in done},
        key=lambda k: (k[3] != 1, k[0], -k[1], k[2], k[3]),
    )
    for dataset, density, allocation, budget in settings:
        rows = [
            a
            for a in done
            if (a["dataset"], a["density"], a["allocation"], a["budget"]) == (dataset, density, allocation, budget)
        ]
        rows.sort(key=lambda a: (a["wall_seconds"], a["method"]))
        lines += [
            "",
            f"## Wall clock: {dataset}, density {density:g}, {allocation} allocation, {budget:g}x budget",
            "",
            "| method | wall s per cell | test acc | 95% CI | training GFLOP |",
            "|---|---|---|---|---|",
        ]
        for a in rows:
            lines.append(
                f"| {a['method']} | {a['wall_seconds']:.0f} | {_pct(a['test_acc_mean'])} | "
                f"[{_pct(a['ci_low'])}, {_pct(a['ci_high'])}] | {a['spent_train_flops'] / 1e9:.1f} |"
            )
    return lines


def format_markdown(agg: Sequence[dict[str, Any]], pairs: Sequence[dict[str, Any]]) -> str:
    """``results.md``: the aggregate table (with the ensembles' columns when any cell has one), the main tables per
    data set and budget, the ablation tables per budget, the wall-clock tables, then the paired comparisons."""
    ensembles = any("ensemble_test_acc_mean" in a for a in agg)
    lines = [
        "# Results",
        "",
        "Test accuracy (%) at the early-stopping step, mean over seeds with its 95% t interval; budget = multiple of",
        "the training FLOPs IMP spends to reach the density; spent = the method's training FLOPs against it.",
    ]
    if ensembles:
        lines += [
            "Ensemble: the cell's best tickets as one ensemble (campaign.ensemble; Liu et al. 2022, arXiv:2106.14568),",
            "test accuracy (%) on the first final seed with its 95% t interval over seeds, and its inference FLOPs per",
            "example; its members' extra training is in no budget (summary.json: compute.ensemble).",
        ]
    lines += [
        "",
        "| data set | density | allocation | budget | method | seeds | test acc | 95% CI | reached density | spent / budget GFLOP | wall s |"
        + (" ensemble test acc | ensemble FLOPs per example |" if ensembles else ""),
        "|---|---|---|---|---|---|---|---|---|---|---|" + ("---|---|" if ensembles else ""),
    ]
    for a in agg:
        budget = f"{a['spent_train_flops'] / 1e9:.1f} / {a['budget_train_flops'] / 1e9:.1f}"
        if a.get("status", "done") != "done":
            lines.append(
                f"| {a['dataset']} | {a['density']:g} | {a['allocation']} | {a['budget']:g}x | {a['method']} | 0 "
                f"| {a['status']} | | | {budget} | |" + (" | |" if ensembles else "")
            )
            continue
        ensemble = ""
        if ensembles:
            ensemble = " | |"
            if "ensemble_test_acc_mean" in a:
                ensemble = (
                    f" {_pct(a['ensemble_test_acc_mean'])} [{_pct(a['ensemble_ci_low'])}, "
                    f"{_pct(a['ensemble_ci_high'])}] | {a['ensemble_inference_flops']:,.0f} |"
                )
        lines.append(
            f"| {a['dataset']} | {a['density']:g} | {a['allocation']} | {a['budget']:g}x | {a['method']} | {a['seeds']} "
            f"| {_pct(a['test_acc_mean'])} | [{_pct(a['ci_low'])}, {_pct(a['ci_high'])}] | {a['density_reached']:.4f} "
            f"| {budget} | {a['wall_seconds']:.0f} |" + ensemble
        )
    lines += main_table(agg)
    lines += ablation_table(agg)
    lines += wall_table(agg)
    lines += [
        "",
        "## The hybrid against backprop alone, seed by seed",
        "",
        "Difference in test accuracy (percentage points, hybrid minus baseline) on the same seeds, its 95% t",
        "interval and the paired t-test's two-sided p-value.",
        "",
        "| data set | density | allocation | budget | hybrid | baseline | seeds | difference | 95% CI | p |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in pairs:
        pv = "n/a" if p["p_value"] != p["p_value"] else f"{p['p_value']:.3f}"
        lines.append(
            f"| {p['dataset']} | {p['density']:g} | {p['allocation']} | {p['budget']:g}x | {p['hybrid']} | "
            f"{p['baseline']} | {p['seeds']} | {_points(p['difference'])} | [{_points(p['ci_low'])}, "
            f"{_points(p['ci_high'])}] | {pv} |"
        )
    return "\n".join(lines) + "\n"


def write_results(
    run_dir: Path,
    plot_dir: Path,
    rows: Sequence[dict[str, Any]],
    raw: dict[str, Any],
    packing: dict[str, Any] | None = None,
) -> None:
    """Write ``results.csv``, ``results.md`` and ``results.json`` (atomically), then the figures.

    Args:
        run_dir, plot_dir: where they go.
        rows: one ``results.csv`` row per cell.
        raw: the experiment file (its hybrids and baselines pair up in ``results.md``).
        packing: how a packed run ran (``evoticket experiment --pack``; its ``pack`` width at least): ``results.md``
            says so, and ``results.json`` holds it.
    """
    write_csv(run_dir / "results.csv", columns(rows), rows)
    agg, pairs = aggregate(rows), paired(rows, hybrid_names(raw))
    text = format_markdown(agg, pairs)
    if packing:
        text = (
            f"Packed (evoticket experiment --pack {packing['pack']}): the cells ran under the per-individual data order, "
            f"up to {packing['pack']} at a time, their training steps in shared batches; a cell's wall s runs from its "
            "start to its end, the other cells' work included.\n\n" + text
        )
    atomic_write_text(run_dir / "results.md", text)

    def finite(value: Any) -> Any:  # JSON has no NaN: an undefined interval or p-value is null
        return None if isinstance(value, float) and value != value else value

    clean: dict[str, Any] = {
        k: [{f: finite(v) for f, v in r.items()} for r in rs] for k, rs in (("aggregate", agg), ("paired", pairs))
    }
    if packing:
        clean["packing"] = packing
    atomic_write_text(run_dir / "results.json", json.dumps(clean, indent=1) + "\n")
    from evoticket.experiment.figures import plot_experiment

    plot_experiment(agg, plot_dir)


__all__ = [
    "BASELINES",
    "COLUMNS",
    "ENSEMBLE_COLUMNS",
    "HYBRIDS",
    "ablation_table",
    "aggregate",
    "cell_accuracy",
    "cell_row",
    "columns",
    "ensemble_fields",
    "format_markdown",
    "hybrid_names",
    "infeasible_row",
    "main_table",
    "paired",
    "t_interval",
    "write_results",
]
