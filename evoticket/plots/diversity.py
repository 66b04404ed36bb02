"""The diversity figure: how varied the population is, per generation.

The records hold lineage, not masks, so two kinds of diversity are drawn:

- from ``individuals.jsonl``, every generation: the number of generation-0 founders whose descendants
  are still evaluated, and the mean pairwise Jaccard distance between the evaluated individuals'
  founder sets (0: everyone descends from the same founders; 1: no two share one), with the
  standard deviation of total density;
- from the checkpoints on disk (a campaign keeps the last two), exactly: the mean pairwise Jaccard
  distance between the population's masks (kept weights over all layers) and the spread of theta0
  (mean pairwise RMS difference of the initial weights over their RMS: 0 when every ticket shares
  theta0, about 1.41 for independent draws).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from evoticket.core import paths
from evoticket.core.errors import EvoticketError
from evoticket.core.io import load_format
from evoticket.plots import common, lineage

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
    """Exact mask and theta0 diversity of the populations held by the run's checkpoints.

    Returns:
        One dict per readable checkpoint with a population, by generation: ``generation``,
        ``mask_jaccard`` in [0, 1], ``theta0_spread`` (>= 0), ``distinct_theta0`` (count). Damaged
        checkpoints are skipped.
    """
    import torch

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
        states = [pop["individuals"][i] for i in pop["order"]]
        masks = torch.stack([torch.cat([m.reshape(-1) for m in s["masks"].values()]) for s in states]).double()
        weights = torch.stack([torch.cat([s["theta0"][k].reshape(-1) for k in s["masks"]]) for s in states]).double()
        p = len(states)
        upper = torch.triu(torch.ones(p, p, dtype=torch.bool), diagonal=1)  # unordered pairs
        inter = masks @ masks.T  # (P, P) kept in both
        kept = masks.sum(1)
        union = kept[:, None] + kept[None, :] - inter
        jac = torch.where(union > 0, 1 - inter / union.clamp(min=1), torch.zeros_like(union))
        rms = float(weights.pow(2).mean().sqrt()) or 1.0
        dist = torch.cdist(weights, weights) / weights.shape[1] ** 0.5 / rms  # (P, P) RMS difference / RMS
        rows.append(
            {
                "generation": int(data["generation"]),
                "mask_jaccard": float(jac[upper].mean()) if p > 1 else 0.0,
                "theta0_spread": float(dist[upper].mean()) if p > 1 else 0.0,
                "distinct_theta0": len({w.numpy().tobytes() for w in weights}),
            }
        )
    return sorted(rows, key=lambda r: r["generation"])


def draw_diversity(run_dir: Path) -> Any:
    """The diversity figure of a run (a matplotlib Figure), or ``None`` without individual records."""
    plt = common.pyplot()
    recs = common.read_individuals(common.require_run(run_dir))
    if not recs:
        return None
    rows = founder_diversity(recs)
    exact = checkpoint_diversity(run_dir)
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
            "s",
            color="tab:red",
            ms=5,
            label="masks, exact (checkpoints on disk)",
        )
        ax1.plot(
            [r["generation"] for r in exact],
            [r["theta0_spread"] for r in exact],
            "^",
            color="tab:green",
            ms=5,
            label="theta0 spread: RMS difference / RMS (checkpoints)",
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
    ax1.set_title(common.run_title(run_dir, "Population diversity per generation (evaluated individuals)"))
    fig.align_ylabels((ax1, ax2))
    fig.tight_layout()
    return fig
