"""The lineage-fitness figure: fitness along the winning lineage against generation.

The winning lineage is :func:`evoticket.plots.lineage.main_line` of the best ticket: from its
generation-0 founder, through the fitter parent of each crossover, to the best ticket. Each step is
marked by the operators that made it, and each improvement over its parent is labelled with its gain
and operators (``+0.012 mut``), so the reader sees which variation produced each gain; re-evaluations
of the same tickets show how noisy a single fine-tuning is. A label sits next to its ticket, nearer to
it than to any other ticket of the line, and overlaps no other label (:func:`evoticket.plots.common.place_labels`,
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


def at_equal_training(recs: list[dict[str, Any]]) -> bool:
    """Whether every record holds its validation accuracy at rung 0 (``rung_val_acc``, successive halving), the one
    level of fine-tuning every individual reaches: then the figure compares tickets there, not at the rung each
    happened to reach."""
    return bool(recs) and all(r.get("rung_val_acc") for r in recs)


def score(record: dict[str, Any], rung0: bool) -> float:
    """A record's validation accuracy in [0, 1]: at rung 0 with ``rung0`` (0.0 where non-finite), else after its
    fine-tuning (its last rung)."""
    if rung0:
        value = record["rung_val_acc"][0]
        return 0.0 if value is None or not math.isfinite(value) else float(value)
    return common.fitness(record)


def lineage_steps(recs: list[dict[str, Any]], uid: int) -> list[dict[str, Any]]:
    """The main line of ``uid`` as one row per ticket: uid, generation, val_acc, val_acc_before, kind, gain.

    Every ticket is read at its first evaluation, at rung 0 when the records hold it (:func:`at_equal_training`), so
    a gain compares a child with its parent after the same fine-tuning.

    Returns:
        Rows founder first; ``gain`` is the ticket's ``val_acc`` minus its parent's on the line (``None`` for the
        founder); ``kind`` names the variation that made it.
    """
    graph = lineage.genealogy(recs)
    line = lineage.main_line(graph, uid)
    rung0 = at_equal_training(recs)
    first: dict[int, dict[str, Any]] = {}
    for r in recs:
        first.setdefault(int(r["uid"]), r)
    rows = []
    for i, n in enumerate(line):
        node = graph.nodes[n]
        acc = score(first[n], rung0) if n in first else node["val_acc"]
        prev = rows[-1]["val_acc"] if i else None
        rows.append(
            {
                "uid": n,
                "generation": node["generation"],
                "val_acc": acc,
                "val_acc_before": node["val_acc_before"],
                "operators": node["operators"],
                "kind": lineage.edge_kind(node["operators"]) if i else "founder",
                "gain": None if prev is None else acc - prev,
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
    rung0 = at_equal_training(recs)
    fig, ax = plt.subplots(figsize=(2 * common.COLUMN_WIDTH, 4.2))
    if rung0:  # the population's best at the same rung 0, from the records
        best_of: dict[int, float] = {}
        for r in recs:
            best_of[int(r["generation"])] = max(best_of.get(int(r["generation"]), 0.0), score(r, True))
        gen_xs, gen_best = sorted(best_of), [best_of[g] for g in sorted(best_of)]
    else:
        gens = records.read_generations(run_dir)
        gen_xs, gen_best = [g["generation"] for g in gens], [g["val_acc_max"] for g in gens]
    ax.plot(gen_xs, gen_best, color="0.6", lw=1, label="population best")
    reev = [(r["generation"], score(r, rung0)) for r in recs if r["uid"] in line and r.get("reevaluated")]
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
    steps = ((common.read_config(run_dir) or {}).get("finetune") or {}).get("steps")
    at = f"at rung 0\n({steps} fine-tuning steps)" if rung0 and steps else "at rung 0" if rung0 else "after fine-tuning"
    ax.set_ylabel(f"validation accuracy\n{at}")
    legend = ax.legend(loc="lower right", ncol=2, framealpha=0.9)
    title = (
        f"Winning lineage of ticket {best}: {len(rows)} tickets, {len(improving)} improving steps "
        "(fitter parent at each crossover)"
    )
    common.fit_title(fig, ax, common.run_title(run_dir, title))
    # gain labels last: they are placed in display space, so after the layout; the largest gains first
    improving.sort(key=lambda i: (-rows[i]["gain"], i))
    placed = common.place_labels(
        ax,
        [(f"+{rows[i]['gain']:.3f} {_SHORT[rows[i]['kind']]}", i, _RADIUS) for i in improving],
        list(zip(xs, ys, strict=True)),
        gaps=(1.0, 3.0),
        spots=[s for s in common.SPOTS if not s.rotation],
        avoid=[legend.get_window_extent(fig.canvas.get_renderer())],
        required=False,
        fontsize=5.5,
        color="tab:green",
    )
    missing = sum(1 for a in placed if a is None)
    if missing:  # the x label's height does not change: the layout stays right
        ax.set_xlabel(f"generation of birth ({missing} of {len(placed)} gains not labelled: no room next to them)")
    return fig
