"""Hyperparameters as genes: population-based training's draw and explore (Jaderberg et al. 2017, arXiv:1711.09846).

An individual may carry genes (``ticket.genes``): ``lr``, its learning rate, and ``alpha``, its drop-and-grow
fraction in dynamic sparse fine-tuning (``finetune.dynamic``). :func:`draw_genes` gives an initial individual
its genes (``finetune.genes``: lr log-uniform in ``finetune.lr_range``, alpha uniform in
``finetune.alpha_range``); offspring inherit their parent's (a clone copies them; crossover leaves each child its
own parent's); :func:`mutGenesPerturb` is PBT's *explore*: each gene multiplied by ``factor`` or ``1 / factor``.
PBT's *exploit* (a weak individual takes a strong one's weights, mask and genes) is (mu + lambda) selection of
a Lamarckian GA: an offspring is a copy of a selected parent, trained weights, reached mask and genes included.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from evoticket.genome import Ticket
from evoticket.genome.ticket import note_variation

GENES = ("lr", "alpha")
"""The hyperparameters an individual can carry (``finetune.genes``)."""

BOUNDS = {"lr": (1e-6, 10.0), "alpha": (1e-3, 0.95)}
"""Each gene's valid interval: a perturbed gene is clipped into it."""


def _uniform(rng: torch.Generator) -> float:
    return float(torch.rand((), generator=rng, dtype=torch.float64))


def draw_genes(
    genes: Sequence[str],
    rng: torch.Generator,
    *,
    lr_range: Sequence[float] = (0.001, 0.1),
    alpha_range: Sequence[float] = (0.02, 0.3),
) -> dict[str, float]:
    """Initial genes: ``lr`` log-uniform in ``lr_range``, ``alpha`` uniform in ``alpha_range`` (in that order).

    Args:
        genes: names among :data:`GENES`.
        rng: CPU random generator (one draw per gene).
        lr_range: ``[low, high]``, 0 < low <= high.
        alpha_range: ``[low, high]``, 0 < low <= high < 1.

    Returns:
        Gene name -> value.

    Raises:
        ValueError: for an unknown gene name.
    """
    out = {}
    for name in GENES:
        if name not in genes:
            continue
        u = _uniform(rng)
        if name == "lr":
            low, high = lr_range
            out[name] = float(math.exp(math.log(low) + u * (math.log(high) - math.log(low))))
        else:
            low, high = alpha_range
            out[name] = float(low + u * (high - low))
    unknown = set(genes) - set(GENES)
    if unknown:
        raise ValueError(f"unknown genes {sorted(unknown)}; valid: {', '.join(GENES)}")
    return out


def mutGenesPerturb(individual: Ticket, factor: float = 1.25, indpb: float = 1.0, *, rng: torch.Generator) -> tuple:
    """PBT's explore: each gene, with probability ``indpb``, multiplied by ``factor`` or ``1 / factor`` (even odds).

    Jaderberg et al. 2017 (arXiv:1711.09846) perturb by 0.8 or 1.2; ``factor = 1.25`` makes the two moves
    inverse to each other, so a gene does a random walk in log space. Values are clipped into :data:`BOUNDS`. The
    mask and weights are untouched; an individual without genes is unchanged (but becomes a child, as every
    mutation's result does).

    Args:
        individual: the ticket to mutate in place (its ``genes``).
        factor: the multiplicative step, > 1.
        indpb: per-gene probability of a move, in [0, 1].
        rng: CPU random generator (two draws per gene, always, so the stream does not depend on outcomes).

    Returns:
        ``(individual,)``.

    Raises:
        ValueError: if ``factor`` <= 1 or ``indpb`` is not in [0, 1].
    """
    if not factor > 1:
        raise ValueError(f"factor must be > 1, got {factor!r}")
    if not 0 <= indpb <= 1:
        raise ValueError(f"indpb must be in [0, 1], got {indpb!r}")
    genes = dict(getattr(individual, "genes", None) or {})
    for name in sorted(genes):
        move, up = _uniform(rng) < indpb, _uniform(rng) < 0.5
        if move:
            low, high = BOUNDS.get(name, (-math.inf, math.inf))
            genes[name] = float(min(high, max(low, genes[name] * (factor if up else 1 / factor))))
    individual.genes = genes
    note_variation(individual, "mutGenesPerturb")
    return (individual,)


__all__ = ["BOUNDS", "GENES", "draw_genes", "mutGenesPerturb"]
