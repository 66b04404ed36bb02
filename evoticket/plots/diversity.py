"""The diversity figure: how varied the population is, per generation.

Two kinds of diversity are drawn:

- from ``generations.csv``, every generation: the population's mean pairwise Jaccard distance between
  masks (kept weights over all layers) and the spread of theta0 (population standard deviation of the
  initial weights over their RMS: 0 when every ticket shares theta0, about 1 for independent draws), as
  :func:`evoticket.records.population_diversity` computes them after each generation; for records
  written before those columns existed, the same from the checkpoints on disk (the last two);
- from ``individuals.jsonl``, every generation: the number of generation-0 founders whose descendants
  are still evaluated, and the mean pairwise Jaccard distance between the evaluated individuals'
  founder sets (0: everyone descends from the same founders; 1: no two share one), with the
  standard deviation of total density.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from evoticket.core import paths
from evoticket.core.errors import EvoticketError
from evoticket.core.io import load_format
from evoticket.plots import common, lineage
from evoticket.records import population_diversity, read_generations

CHECKPOINT_FORMAT = "evoticket-checkpoint-v1"
"""The checkpoint format read here (written by :mod:`evoticket.campaign.checkpoint`)."""


def jaccard_distance(a: Any, b: Any) -> float:
    """1 - |a ∩ b| / |a ∪ b| of two sets or two bool arrays; 0.0 when both are empty."""
    if hasattr(a, "dtype"):
        union = int((a | b).sum())
        return 0.0 if union == 0 else 1.0 - int((a & b).sum()) / union
    union = len(a | b)
    return 0.0 if union == 0 else 1.0 - len(a & b) / union


def mean_pairwise(items: list[Any], distance: Any) -> float:
    """The mean of ``distance`` over all unordered pairs of ``items``; 0.0 with fewer than two."""
    pairs = list(itertools.combinations(items, 2))
    return sum(distance(a, b) for a, b in pairs) / len(pairs) if pairs else 0.0


def founder_diversity(recs: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Per generation: founders still represented, mean pairwise founder-set Jaccard distance, density sd.

    Returns:
        One dict per generation present in the records, in order: ``generation``, ``founders`` (count),
        ``founder_jaccard`` in [0, 1], ``density_std``.
    """
    graph = lineage.genealogy(recs)
    origin: dict[int, frozenset[int]] = {}
    for n in sorted(graph, key=lambda n: (graph.nodes[n].get("generation") or 0, n)):
        parents = list(graph.predecessors(n))
        origin[n] = frozenset().union(*(origin.get(p, frozenset({p})) for p in parents)) if parents else frozenset({n})
    by_gen: dict[int, list[dict[str, Any]]] = {}
    for r in recs:
        by_gen.setdefault(int(r["generation"]), []).append(r)
    rows = []
    for g in sorted(by_gen):
        sets = [origin[int(r["uid"])] for r in by_gen[g]]
        dens = [float(r["density_total"]) for r in by_gen[g]]
        mean = sum(dens) / len(dens)
        rows.append(
            {
                "generation": g,
                "founders": len(frozenset().union(*sets)),
                "founder_jaccard": mean_pairwise(sets, jaccard_distance),
                "density_std": (sum((d - mean) ** 2 for d in dens) / len(dens)) ** 0.5,
            }
        )
    return rows


def checkpoint_diversity(run_dir: Path) -> list[dict[str, float]]:
    """Mask and theta0 diversity of the populations held by the run's checkpoints (records written before
    ``generations.csv`` had its diversity columns).

    Returns:
        One dict per readable checkpoint with a population, by generation: ``generation``,
        ``mask_jaccard`` in [0, 1] and ``theta0_spread`` (>= 0), as
        :func:`evoticket.records.population_diversity` defines them. Damaged checkpoints are skipped.
    """
    from types import SimpleNamespace

    folder = paths.checkpoint_dir(run_dir)
    rows = []
    for path in sorted(folder.glob("gen-*.pt")) if folder.is_dir() else []:
        try:
            data = load_format(path, CHECKPOINT_FORMAT, "checkpoint", EvoticketError, weights_only=False)
        except EvoticketError:
            continue
        pop = data.get("population")
        if not pop:
            continue
        tickets = [SimpleNamespace(**pop["individuals"][i]) for i in pop["order"]]
        rows.append({"generation": int(data["generation"]), **population_diversity(tickets)})
    return sorted(rows, key=lambda r: r["generation"])


def draw_diversity(run_dir: Path) -> Any:
    """The diversity figure of a run (a matplotlib Figure), or ``None`` without individual records."""
    plt = common.pyplot()
    recs = common.read_individuals(common.require_run(run_dir))
    if not recs:
        return None
    rows = founder_diversity(recs)
    generations = read_generations(run_dir)
    if generations and "mask_jaccard" in generations[0]:  # every generation, from the records
        exact = [r for r in generations if isinstance(r.get("mask_jaccard"), float | int)]
        where, style = "population after each generation", "-"
    else:
        exact = checkpoint_diversity(run_dir)
        where, style = "checkpoints on disk", "s"
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(2 * common.COLUMN_WIDTH, 4.4), sharex=True)
    gens = [r["generation"] for r in rows]
    ax1.plot(
        gens,
        [r["founder_jaccard"] for r in rows],
        color="tab:blue",
        lw=1.4,
        label="founder sets (records, every generation)",
    )
    if exact:
        ax1.plot(
            [r["generation"] for r in exact],
            [r["mask_jaccard"] for r in exact],
            style,
            color="tab:red",
            ms=5,
            lw=1.4,
            label=f"masks: mean pairwise Jaccard distance ({where})",
        )
        ax1.plot(
            [r["generation"] for r in exact],
            [r["theta0_spread"] for r in exact],
            style.replace("s", "^"),
            color="tab:green",
            ms=5,
            lw=1.4,
            label=f"theta0 spread: population sd / RMS ({where})",
        )
    ax1.set_ylabel("mean pairwise distance\n(Jaccard, 0 = identical)")
    ax1.set_ylim(-0.03, max(1.05, *(r["theta0_spread"] * 1.1 for r in exact)) if exact else 1.05)
    ax1.legend(loc="best", framealpha=0.9)
    ax2.plot(gens, [r["founders"] for r in rows], color="tab:purple", lw=1.4, drawstyle="steps-mid")
    ax2.set_ylabel("generation-0 founders\nstill represented")
    ax2.set_ylim(0, None)
    ax2.set_xlabel("generation")
    dstd = max(r["density_std"] for r in rows)
    ax2.annotate(
        f"sd of density within a generation: at most {dstd:.4f}",
        (0.99, 0.9),
        xycoords="axes fraction",
        ha="right",
        fontsize=6.5,
    )
    fig.align_ylabels((ax1, ax2))
    common.fit_title(fig, ax1, common.run_title(run_dir, "Population diversity per generation (evaluated individuals)"))
    return fig
