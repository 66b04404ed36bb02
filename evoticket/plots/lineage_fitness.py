"""The lineage-fitness figure: fitness along the winning lineage against generation.

The winning lineage is :func:`evoticket.plots.lineage.main_line` of the best ticket: from its
generation-0 founder, through the fitter parent of each crossover, to the best ticket. Each step is
marked by the operators that made it, and each improvement over its parent is labelled, so the reader
sees which variation produced each gain; re-evaluations of the same tickets show how noisy a single
fine-tuning is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evoticket import records
from evoticket.plots import common, lineage

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
    """The lineage-fitness figure of a run (a matplotlib Figure), or ``None`` without individual records."""
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
    fig, ax = plt.subplots(figsize=(2 * common.COLUMN_WIDTH, 3.4))
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
                s=26,
                color=colour,
                edgecolors="white",
                lw=0.5,
                zorder=4,
                label=f"made by {kind}" if kind != "founder" else "generation-0 founder",
            )
    for i, r in enumerate(rows):
        if r["gain"] is not None and r["gain"] > 0:
            ax.annotate(
                f"+{r['gain']:.3f} {_SHORT[r['kind']]}",
                (r["generation"], r["val_acc"]),
                xytext=(0, 7 if i % 2 else -12),
                textcoords="offset points",
                fontsize=5.5,
                ha="center",
                color="tab:green",
            )
    improving = sum(1 for r in rows if r["gain"] is not None and r["gain"] > 0)
    ax.set_xlabel("generation of birth")
    ax.set_ylabel("validation accuracy after fine-tuning")
    ax.set_title(
        common.run_title(
            run_dir,
            f"Winning lineage of ticket {best}: {len(rows)} tickets, {improving} improving steps "
            "(fitter parent at each crossover)",
        )
    )
    ax.legend(loc="lower right", ncol=2, framealpha=0.9)
    fig.tight_layout()
    return fig
