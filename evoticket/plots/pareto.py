"""The Pareto figure of a multi-objective run: accuracy against density, one front per generation.

Left: each generation's Pareto front (``pareto.csv``: validation accuracy after fine-tuning, the search's
fitness, against total density on a log scale) as a step line coloured by generation, the last one bold.
Right, when the run finished: the final front trained fully (``pareto_final.csv``: test accuracy at the
early-stopping step of ``campaign.final_steps`` steps). When an IMP run of the same network is given, its
rounds are overlaid, one point per round: validation accuracy on the left, test accuracy on the right
(Frankle & Carbin 2019, arXiv:1803.03635). :func:`pareto_vs_imp` tabulates the comparison at each IMP
round's density.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from evoticket.core import paths
from evoticket.core.errors import EvoticketError
from evoticket.plots import common
from evoticket.plots.imp_rounds import imp_rounds


def read_fronts(run_dir: Path) -> dict[int, list[dict[str, float]]]:
    """Generation -> its Pareto front (rows of ``pareto.csv``, by increasing density); {} without the file."""
    path = paths.pareto_csv(run_dir)
    fronts: dict[int, list[dict[str, float]]] = {}
    if not path.is_file():
        return fronts
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            fronts.setdefault(int(row["generation"]), []).append(
                {k: float(row[k]) for k in ("uid", "val_acc", "density_total", "flops")}
            )
    return {g: sorted(rows, key=lambda r: r["density_total"]) for g, rows in sorted(fronts.items())}


def read_trained_front(run_dir: Path) -> list[dict[str, Any]]:
    """Rows of ``pareto_final.csv`` (the final front trained fully), by increasing density; [] without the file."""
    path = paths.pareto_final_csv(run_dir)
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        rows = [
            {**{k: float(v) for k, v in r.items() if k != "nonfinite"}, "nonfinite": r["nonfinite"] == "True"}
            for r in csv.DictReader(f)
        ]
    return sorted(rows, key=lambda r: r["density_total"])


def imp_points(imp_run: Path) -> list[dict[str, float]]:
    """IMP's rounds: ``round``, ``density``, ``val_acc`` and ``test_acc`` (at the round's early-stopping step).

    Raises:
        EvoticketError: if ``imp_run`` is not a run directory whose records are rounds (``method = "imp"``).
    """
    imp_run = common.require_run(imp_run)
    if common.units(imp_run)[0] != "round":
        raise EvoticketError(f"{imp_run}: not an IMP run (method = 'imp'); --imp needs one")
    return [
        {"round": r["round"], "density": r["density"], "val_acc": r["val_acc"] or 0.0, "test_acc": r["test_acc"]}
        for r in imp_rounds(common.read_individuals(imp_run))
        if r["test_acc"] is not None
    ]


VS_IMP_COLUMNS = (
    "round",
    "density",
    "imp_val_acc",
    "front_val_acc",
    "val_diff",
    "imp_test_acc",
    "front_test_acc",
    "test_diff",
)
"""Columns of ``pareto-vs-imp.csv`` (:func:`pareto_vs_imp`)."""


def _attained(front: list[dict[str, Any]], density: float, key: str) -> float | None:
    """The best ``key`` among front members at most ``density`` dense (1e-9 tolerance); ``None`` when none is."""
    values = [r[key] for r in front if r["density_total"] <= density + 1e-9 and not r.get("nonfinite", False)]
    return max(values) if values else None


def pareto_vs_imp(run_dir: Path, imp_run: Path) -> list[dict[str, Any]]:
    """The front against IMP at each IMP round's density.

    For IMP round r at density d: ``front_val_acc``, the best validation accuracy (search fitness) of the last
    generation's front among its members with density <= d; ``front_test_acc``, the same for the trained
    front's test accuracy (``None`` before the run finished); and IMP's own ``imp_val_acc`` and ``imp_test_acc``
    with the differences ``val_diff`` and ``test_diff`` (front minus IMP, in accuracy points / 100).

    Returns:
        One row per IMP round, by decreasing density.

    Raises:
        EvoticketError: if either directory is not a run of the right kind, or the run has no front.
    """
    fronts = read_fronts(common.require_run(run_dir))
    if not fronts:
        raise EvoticketError(f"{run_dir}: holds no pareto.csv (a multi-objective run writes one)")
    last = fronts[max(fronts)]
    trained = read_trained_front(run_dir)
    rows = []
    for p in imp_points(imp_run):
        val = _attained(last, p["density"], "val_acc")
        test = _attained(trained, p["density"], "test_acc") if trained else None
        rows.append(
            {
                "round": p["round"],
                "density": p["density"],
                "imp_val_acc": p["val_acc"],
                "front_val_acc": val,
                "val_diff": None if val is None else val - p["val_acc"],
                "imp_test_acc": p["test_acc"],
                "front_test_acc": test,
                "test_diff": None if test is None else test - p["test_acc"],
            }
        )
    return rows


def _steps(rows: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """A front as a staircase: accuracy attained at each density (x in %)."""
    xs, ys = [], []
    best = None
    for r in rows:
        value = r[key]
        if best is not None and value <= best:
            continue  # dominated by a sparser member (equal fitness, denser)
        best = value
        xs.append(100 * r["density_total"])
        ys.append(value)
    return xs, ys


def _overlay_imp(ax: Any, imp: list[dict[str, float]], key: str) -> None:
    """IMP's rounds on an axis, one point per round (``key``: ``val_acc`` or ``test_acc``)."""
    if imp:
        xs, ys = [100 * p["density"] for p in imp], [p[key] for p in imp]
        ax.plot(xs, ys, "k--s", ms=3, lw=1.0, label="IMP, one point per round", zorder=4)


def draw_pareto(run_dir: Path, imp_run: Path | None = None) -> Any:
    """The Pareto figure (a matplotlib Figure), or ``None`` for a run without ``pareto.csv``.

    Args:
        run_dir: a multi-objective run directory.
        imp_run: an IMP run of the same network and data, overlaid one point per round.

    Raises:
        EvoticketError: if ``run_dir`` is not a run directory or ``imp_run`` not an IMP run.
    """
    run_dir = common.require_run(run_dir)
    fronts = read_fronts(run_dir)
    if not fronts:
        return None
    imp = imp_points(imp_run) if imp_run is not None else []
    trained = read_trained_front(run_dir)
    plt = common.pyplot()
    from matplotlib import cm, colors

    panels = 2 if trained else 1
    fig, axes = plt.subplots(1, panels, figsize=(2 * common.COLUMN_WIDTH, 3.6), squeeze=False, sharex=True)
    ax = axes[0][0]
    last = max(fronts)
    norm = colors.Normalize(vmin=0, vmax=max(last, 1))
    cmap = plt.get_cmap("viridis")
    for generation, rows in fronts.items():
        xs, ys = _steps(rows, "val_acc")
        bold = generation == last
        ax.step(
            xs,
            ys,
            where="post",
            color=cmap(norm(generation)),
            lw=1.8 if bold else 0.6,
            alpha=1.0 if bold else 0.55,
            zorder=3 if bold else 2,
            label=f"front of generation {last}" if bold else None,
        )
        if bold:
            ax.plot(xs, ys, "o", color=cmap(norm(generation)), ms=3, zorder=3)
    fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes[0][-1], label="generation", fraction=0.05)
    _overlay_imp(ax, imp, "val_acc")
    ax.set_xscale("log")
    ax.set_xlabel("density (% of weights kept, log scale)")
    ax.set_ylabel("validation accuracy (search fitness)")
    ax.set_title("Pareto front per generation", fontsize=8)
    ax.legend(loc="lower right", framealpha=0.9)
    if trained:
        ax2 = axes[0][1]
        ok = [r for r in trained if not r["nonfinite"]]
        xs, ys = _steps(ok, "test_acc")
        ax2.step(xs, ys, where="post", color=cmap(norm(last)), lw=1.8, label="final front, trained")
        ax2.plot([100 * r["density_total"] for r in ok], [r["test_acc"] for r in ok], "o", color=cmap(norm(last)), ms=3)
        _overlay_imp(ax2, imp, "test_acc")
        config = common.read_config(run_dir) or {}
        steps = (config.get("campaign") or {}).get("final_steps")
        ax2.set_xlabel("density (% of weights kept, log scale)")
        ax2.set_ylabel("test accuracy at early-stopping step")
        ax2.set_title("final front trained" + (f" ({steps} steps)" if steps else ""), fontsize=8)
        ax2.legend(loc="lower right", framealpha=0.9)
    fig.suptitle(common.run_title(run_dir, "Accuracy against density"), fontsize=8.5)
    fig.tight_layout()
    return fig
