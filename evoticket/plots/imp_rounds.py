"""The IMP figure: test accuracy at the early-stopping step against density, round by round.

The lottery-ticket paper's figure (Frankle & Carbin 2019, fig. 3): each IMP round's ticket and the random
mask of the same per-layer densities trained beside it in the same batch, against the fraction of weights
remaining (log scale, decreasing to the right), with the dense network (round 0) as a reference line. A
second panel shows the early-stopping step of both. When ``summary.json`` exists, the final comparison's
ticket, random-mask, reinit and dense test accuracies are drawn as means with their standard deviation
over seeds.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from evoticket.plots import common

_TICKET, _RANDOM, _REINIT, _DENSE = "tab:blue", "tab:red", "tab:purple", "0.25"
_FINAL = {
    "ticket": ("IMP ticket", _TICKET, "o"),
    "random": ("random mask", _RANDOM, "s"),
    "reinit": ("reinit (ticket's mask, fresh theta0)", _REINIT, "^"),
    "dense": ("dense", _DENSE, "D"),
}


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def imp_rounds(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per IMP round from ``individuals.jsonl`` records.

    Args:
        records: IMP's records, one per round (``generation`` = round), in order; a resumed run's
            repeated round keeps its last record.

    Returns:
        Rows sorted by round, each with ``round`` (int), ``density`` (fraction of weights remaining, in
        (0, 1]), ``val_acc``, ``test_acc`` and ``best_step`` of the round's ticket at its early-stopping step (accuracy
        in [0, 1], ``None`` when non-finite or absent), and ``random_test_acc``, ``random_best_step``
        of its random control (``None`` for round 0, the dense network, which has none).
    """
    by_round: dict[int, dict[str, Any]] = {}
    for r in records:
        if r.get("density_total") is None:
            continue
        random = (r.get("controls") or {}).get("random") or {}
        by_round[int(r["generation"])] = {
            "round": int(r["generation"]),
            "density": float(r["density_total"]),
            "val_acc": _finite(r.get("val_acc")),
            "test_acc": _finite(r.get("test_acc")),
            "best_step": r.get("best_step"),
            "random_test_acc": _finite(random.get("test_acc")),
            "random_best_step": random.get("best_step"),
        }
    return [by_round[k] for k in sorted(by_round)]


def _percent(density: float) -> str:
    value = 100 * density
    return f"{value:.0f}" if value >= 10 else f"{value:.2g}"


def draw_imp_rounds(run_dir: Path) -> Any:
    """The IMP figure of a run (a matplotlib Figure), or ``None`` for a run whose unit is not the round or without
    rounds.

    Args:
        run_dir: a run directory; its ``individuals.jsonl`` holds one record per IMP round, its
            ``summary.json`` (when the run finished) the final comparison.

    Raises:
        EvoticketError: if ``run_dir`` is not a run directory.
    """
    run_dir = common.require_run(run_dir)
    if common.units(run_dir)[0] != "round":
        return None
    rows = [r for r in imp_rounds(common.read_individuals(run_dir)) if r["test_acc"] is not None]
    if not rows:
        return None
    summary = common.read_summary(run_dir)
    config = common.read_config(run_dir) or {}
    plt = common.pyplot()
    from matplotlib.ticker import FixedLocator, NullLocator

    fig, (ax, ax_step) = plt.subplots(
        2, 1, figsize=(2 * common.COLUMN_WIDTH, 4.8 if summary is None else 6.0), sharex=True, height_ratios=(3, 1.4)
    )
    xs = [100 * r["density"] for r in rows]
    per_round = f", {config['imp']['steps']} steps" if "steps" in config.get("imp", {}) else ""
    ax.plot(
        xs,
        [r["test_acc"] for r in rows],
        color=_TICKET,
        marker="o",
        ms=3.5,
        lw=1.5,
        label="IMP ticket (each round" + per_round + ")",
    )
    ctrl = [(100 * r["density"], r["random_test_acc"]) for r in rows if r["random_test_acc"] is not None]
    if ctrl:
        ax.plot(
            *zip(*ctrl, strict=True),
            color=_RANDOM,
            marker="s",
            ms=3,
            lw=1.1,
            ls="--",
            label="random mask, same per-layer densities (each round" + per_round + ")",
        )
    dense = next((r for r in rows if r["round"] == 0), None)
    values = [r["test_acc"] for r in rows] + [v for _, v in ctrl]
    if dense is not None:
        ax.axhline(
            dense["test_acc"], color=_DENSE, lw=1.0, ls="-.", label=f"dense network, round 0 ({dense['test_acc']:.3f})"
        )
    if summary is not None:
        campaign = config.get("campaign", {})
        budget = ", ".join(
            s
            for s in (
                f"{campaign['final_steps']} steps" if "final_steps" in campaign else "",
                f"{campaign['final_seeds']} seeds" if "final_seeds" in campaign else "",
            )
            if s
        )
        for i, (key, (label, colour, marker)) in enumerate(_FINAL.items()):
            c = (summary.get("controls") or {}).get(key) or {}
            mean, std = _finite(c.get("test_acc_mean")), _finite(c.get("test_acc_std")) or 0.0
            if mean is None or c.get("density") is None:
                continue
            x = 100 * float(c["density"]) * (1 + 0.04 * (i - 1.5))  # side by side at the same density
            ax.errorbar(
                [x],
                [mean],
                yerr=[std],
                color=colour,
                marker=marker,
                ms=5,
                mfc="white",
                mew=1.2,
                capsize=3,
                lw=1.2,
                ls="",
                zorder=4,
                label=f"final comparison: {label} {mean:.3f} ± {std:.3f} sd" + (f" ({budget})" if budget else ""),
            )
            values += [mean - std, mean + std]
    ax.set_ylabel("test accuracy\nat early-stopping step")
    low, high = min(values), max(values)
    span = max(high - low, 0.02)
    ax.set_ylim(max(0.0, low - 0.1 * span), min(1.0, high + 0.1 * span))
    ncol = 1  # the labels are long: one per row
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=ncol, framealpha=0.9, bbox_to_anchor=(0.5, 0.0))
    ax_step.plot(xs, [r["best_step"] for r in rows], color=_TICKET, marker="o", ms=3, lw=1.2)
    steps = [(100 * r["density"], r["random_best_step"]) for r in rows if r["random_best_step"] is not None]
    if steps:
        ax_step.plot(*zip(*steps, strict=True), color=_RANDOM, marker="s", ms=2.5, lw=1.0, ls="--")
    ax_step.set_ylabel("early-stopping\nstep")
    ax_step.set_xlabel("weights remaining (%, log scale)")
    ax_step.set_xscale("log")
    ax_step.set_xlim(max(xs) * 1.15, min(xs) / 1.15)  # decreasing to the right, as pruning proceeds
    ticks = sorted(set(xs), reverse=True)
    ax_step.xaxis.set_major_locator(FixedLocator(ticks))
    ax_step.xaxis.set_minor_locator(NullLocator())
    ax_step.set_xticklabels([_percent(t / 100) for t in ticks], rotation=45 if len(ticks) > 10 else 0)
    ax_step.set_ylim(bottom=0)
    fig.align_ylabels((ax, ax_step))
    rows_of_legend = math.ceil(len(handles) / ncol)
    bottom = 0.012 + 0.028 * rows_of_legend * 4.8 / fig.get_figheight()
    title = common.run_title(run_dir, "Iterative magnitude pruning: test accuracy per round")
    common.fit_title(fig, ax, title, rect=(0, bottom, 1, 1))
    return fig
