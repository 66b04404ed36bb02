"""The lineage-fitness figure: fitness along the winning lineage against generation.

The winning lineage is :func:`evoticket.plots.lineage.main_line` of the best ticket: from its
generation-0 founder, through the fitter parent of each crossover, to the best ticket. Each step is
marked by the operators that made it, and each improvement over its parent is labelled with its gain
and operators (``+0.012 mut``), so the reader sees which variation produced each gain; re-evaluations
of the same tickets show how noisy a single fine-tuning is. A label sits next to its ticket, nearer to
it than to any other ticket of the line, and overlaps no other label (:func:`evoticket.plots.lineage.place_labels`,
the largest gains first); a long line has more improving steps than there is room for, and the x axis
says how many were left unlabelled.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from evoticket import records
from evoticket.plots import common, lineage

_SIZE = 26
"""Marker area of a lineage ticket (points squared)."""
_RADIUS = math.sqrt(_SIZE) / 2
"""Its radius in points: how far from a ticket its gain label starts."""

_SHORT = {"crossover + mutation": "cx+mut", "crossover": "cx", "mutation": "mut", "other": "other"}


def lineage_steps(recs: list[dict[str, Any]], uid: int) -> list[dict[str, Any]]:
    """The main line of ``uid`` as one row per ticket: uid, generation, val_acc, val_acc_before, kind, gain.

    Returns:
        Rows founder first; ``gain`` is the ticket's first-evaluation val_acc minus its parent's on the
        line (``None`` for the founder); ``kind`` names the variation that made it.
    """
    graph = lineage.genealogy(recs)
    line = lineage.main_line(graph, uid)
    rows = []
    for i, n in enumerate(line):
        node = graph.nodes[n]
        prev = graph.nodes[line[i - 1]]["val_acc"] if i else None
        rows.append(
            {
                "uid": n,
                "generation": node["generation"],
                "val_acc": node["val_acc"],
                "val_acc_before": node["val_acc_before"],
                "operators": node["operators"],
                "kind": lineage.edge_kind(node["operators"]) if i else "founder",
                "gain": None if prev is None else node["val_acc"] - prev,
            }
        )
    return rows


def draw_lineage_fitness(run_dir: Path) -> Any:
    """The lineage-fitness figure of a run (a matplotlib Figure), or ``None`` without individual records.

    Raises:
        EvoticketError: if ``run_dir`` is not a run directory.
    """
    plt = common.pyplot()
    recs = common.read_individuals(common.require_run(run_dir))
    if not recs:
        return None
    graph = lineage.genealogy(recs)
    hof = lineage.hall_of_fame(run_dir, graph)
    if not hof:
        return None
    summary = common.read_summary(run_dir)
    best = int(summary["best"]["uid"]) if summary and summary.get("best", {}).get("uid") in graph else hof[0]
    rows = lineage_steps(recs, best)
    line = {r["uid"] for r in rows}
    gens = records.read_generations(run_dir)
    fig, ax = plt.subplots(figsize=(2 * common.COLUMN_WIDTH, 4.2))
    ax.plot(
        [g["generation"] for g in gens], [g["val_acc_max"] for g in gens], color="0.6", lw=1, label="population best"
    )
    reev = [(r["generation"], common.fitness(r)) for r in recs if r["uid"] in line and r.get("reevaluated")]
    if reev:
        ax.scatter(
            *zip(*reev, strict=True),
            s=8,
            color="0.4",
            marker="x",
            lw=0.6,
            zorder=2,
            label="re-evaluations of line tickets (noise)",
        )
    xs, ys = [r["generation"] for r in rows], [r["val_acc"] for r in rows]
    ax.plot(xs, ys, color="tab:blue", lw=1.4, drawstyle="default", zorder=3, label="winning lineage (first evaluation)")
    for kind, (colour, _) in {"founder": ("black", None), **lineage.EDGE_KINDS}.items():
        pts = [(r["generation"], r["val_acc"]) for r in rows if r["kind"] == kind]
        if pts:
            ax.scatter(
                *zip(*pts, strict=True),
                s=_SIZE,
                color=colour,
                edgecolors="white",
                lw=0.5,
                zorder=4,
                label=f"made by {kind}" if kind != "founder" else "generation-0 founder",
            )
    improving = [i for i, r in enumerate(rows) if r["gain"] is not None and r["gain"] > 0]
    ax.set_xlabel("generation of birth")
    ax.set_ylabel("validation accuracy after fine-tuning")
    legend = ax.legend(loc="lower right", ncol=2, framealpha=0.9)
    title = (
        f"Winning lineage of ticket {best}: {len(rows)} tickets, {len(improving)} improving steps "
        "(fitter parent at each crossover)"
    )
    lineage.fit_title(fig, ax, common.run_title(run_dir, title))
    # gain labels last: they are placed in display space, so after the layout; the largest gains first
    improving.sort(key=lambda i: (-rows[i]["gain"], i))
    placed = lineage.place_labels(
        ax,
        [(f"+{rows[i]['gain']:.3f} {_SHORT[rows[i]['kind']]}", i, _RADIUS) for i in improving],
        list(zip(xs, ys, strict=True)),
        gaps=(1.0, 3.0),
        spots=[s for s in lineage.SPOTS if not s.rotation],
        avoid=[legend.get_window_extent(fig.canvas.get_renderer())],
        required=False,
        fontsize=5.5,
        color="tab:green",
    )
    missing = sum(1 for a in placed if a is None)
    if missing:  # the x label's height does not change: the layout stays right
        ax.set_xlabel(f"generation of birth ({missing} of {len(placed)} gains not labelled: no room next to them)")
    return fig
