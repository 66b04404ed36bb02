"""The experiment's figures, from its aggregated results (PNG and PDF, one per data set).

* ``accuracy_vs_density-DATASET``: test accuracy against density per method at the 1x budget and the
  ``uniform`` allocation (the LTH paper's figure with every method on it), 95% intervals as bars.
* ``accuracy_vs_compute-DATASET``: test accuracy against the training FLOPs spent, per method, at the
  density with the most budgets (10% in the shipped experiments): anytime curves over the budgets.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evoticket.plots import common

MARKERS = "osD^v<>pPX*h"


def _style(methods: Sequence[str]) -> dict[str, tuple[Any, str]]:
    import matplotlib

    methods = list(methods)
    if len(methods) <= 10:
        cmap, n = matplotlib.colormaps["tab10"], 10
    else:  # more methods than tab10 has colours: tab20's, so no two methods share one (up to 20)
        cmap, n = matplotlib.colormaps["tab20"], 20
    return {m: (cmap(i % n), MARKERS[i % len(MARKERS)]) for i, m in enumerate(methods)}


def _errorbar(ax: Any, xs: list[float], rows: list[dict[str, Any]], colour: Any, marker: str, label: str) -> None:
    ys = [100 * r["test_acc_mean"] for r in rows]
    lo = [100 * (r["test_acc_mean"] - r["ci_low"]) if r["ci_low"] == r["ci_low"] else 0.0 for r in rows]
    hi = [100 * (r["ci_high"] - r["test_acc_mean"]) if r["ci_high"] == r["ci_high"] else 0.0 for r in rows]
    ax.errorbar(xs, ys, yerr=[lo, hi], color=colour, marker=marker, ms=4, lw=1.2, capsize=2, label=label)


def _finish(fig: Any, ax: Any, xlabel: str, title: str, stem: Path, ticks: Sequence[float] = ()) -> list[Path]:
    """Log x axis (labelled at ``ticks`` when given), labels, the legend outside the axes; write
    ``stem.png`` and ``stem.pdf`` and close the figure."""
    from matplotlib.ticker import FuncFormatter, NullLocator

    ax.set_xscale("log")
    if ticks:
        ax.set_xticks(list(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), framealpha=0.9)
    fig.tight_layout()
    return common.save_all(fig, stem.parent, stem.name)


def plot_experiment(agg: Sequence[dict[str, Any]], plot_dir: Path) -> list[Path]:
    """Write both figures for every data set into ``plot_dir``; returns the written paths.

    Groups whose cells could not run in their budget (``status`` infeasible) are left out.
    """
    agg = [a for a in agg if a.get("status", "done") == "done"]
    plt = common.pyplot()
    methods = sorted({a["method"] for a in agg})
    style = _style(methods)
    written: list[Path] = []
    for dataset in sorted({a["dataset"] for a in agg}):
        rows = [a for a in agg if a["dataset"] == dataset]
        main = [a for a in rows if a["budget"] == 1 and a["allocation"] == "uniform"]
        if len({a["density"] for a in main}) >= 1 and main:
            fig, ax = plt.subplots(figsize=(2.5 * common.COLUMN_WIDTH, 4.0))
            for m in methods:
                pts = sorted((a for a in main if a["method"] == m), key=lambda a: a["density"])
                if pts:  # a dense method sits at its cell's target density; the label says it is dense
                    label = f"{m} (dense network)" if all(a["density_reached"] >= 1 for a in pts) else m
                    _errorbar(ax, [100 * a["density"] for a in pts], pts, *style[m], label)
            title = f"{dataset}: test accuracy against density at equal compute (1x IMP's budget)"
            written += _finish(
                fig,
                ax,
                "density (% of weights kept, log scale)",
                title,
                plot_dir / f"accuracy_vs_density-{dataset}",
                ticks=sorted({100 * a["density"] for a in main}),
            )
        by_density: dict[float, set] = defaultdict(set)
        for a in rows:
            if a["allocation"] == "uniform" and a["budget"] > 0:
                by_density[a["density"]].add(a["budget"])
        if not by_density:
            continue
        density = max(by_density, key=lambda d: (len(by_density[d]), d == 0.1))
        pts_all = [a for a in rows if a["density"] == density and a["allocation"] == "uniform" and a["budget"] > 0]
        fig, ax = plt.subplots(figsize=(2.5 * common.COLUMN_WIDTH, 4.0))
        untrained = sorted({a["method"] for a in pts_all if a["spent_train_flops"] <= 0})
        for m in methods:
            pts = sorted(
                (a for a in pts_all if a["method"] == m and a["spent_train_flops"] > 0),
                key=lambda a: a["spent_train_flops"],
            )
            if pts:
                _errorbar(ax, [a["spent_train_flops"] / 1e9 for a in pts], pts, *style[m], m)
        if untrained:  # no training FLOPs: no place on a log axis; named instead
            ax.text(
                0.01, 0.01, "not shown (no training FLOPs): " + ", ".join(untrained), transform=ax.transAxes, fontsize=7
            )
        xlabel = "training compute spent (GFLOP, log scale; budgets 1x, 4x, ... of IMP's)"
        title = f"{dataset}: test accuracy against compute at density {density:g}"
        written += _finish(fig, ax, xlabel, title, plot_dir / f"accuracy_vs_compute-{dataset}")
    return written


__all__ = ["plot_experiment"]
