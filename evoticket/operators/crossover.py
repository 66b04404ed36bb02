"""Crossovers of two lottery tickets' masks and initial weights.

Every operator follows DEAP's contract: it varies both individuals in place
by *replacing* tensors in their ``theta0``/``masks`` dicts (never editing a
tensor, which clones may share; see :mod:`evoticket.genome`), records itself
with :func:`evoticket.genome.note_crossover` (both children get both parents'
uids), leaves fitness alone and returns ``(ind1, ind2)``. Randomness comes
only from the keyword ``rng``, a CPU :class:`torch.Generator`.

* :func:`cxMaskUniform`: uniform crossover of the masks (Syswerda 1989)
  restricted to the positions where the parents disagree, so each child keeps
  its own parent's per-layer density exactly (a cardinality-preserving
  uniform crossover).
* :func:`cxLayerSwap`: exchanges whole layers (weight, bias, mask), DEAP's
  ``cxUniform`` at layer granularity.
* :func:`cxInitBlend`: blend crossover BLX-alpha of the initial weights and
  biases (Eshelman & Schaffer 1993; DEAP's ``cxBlend``).

All raise ``ValueError`` when the two tickets do not share one architecture.
"""

from __future__ import annotations

import math

import torch

from evoticket.genome import Ticket, note_crossover
from evoticket.operators.mutation import _check_probability


def _check_compatible(ind1: Ticket, ind2: Ticket) -> None:
    """Raise ValueError unless both tickets have the same layers and shapes."""
    if set(ind1.masks) != set(ind2.masks) or set(ind1.theta0) != set(ind2.theta0):
        raise ValueError(
            f"crossover needs tickets of one architecture; layers differ: "
            f"{sorted(ind1.theta0)} vs {sorted(ind2.theta0)}"
        )
    for name, value in ind1.theta0.items():
        if value.shape != ind2.theta0[name].shape:
            raise ValueError(
                f"crossover needs tickets of one architecture; {name!r} has shape "
                f"{tuple(value.shape)} vs {tuple(ind2.theta0[name].shape)}"
            )


def cxMaskUniform(ind1: Ticket, ind2: Ticket, *, rng: torch.Generator) -> tuple[Ticket, Ticket]:
    """Density-preserving uniform crossover of the masks, layer by layer.

    Where the parents' masks agree, both children inherit the common bit. In
    the disagreement set ``D`` of a layer (``n_d`` positions, where exactly one
    parent keeps the weight), let ``a`` be the number of ``ind1``'s kept
    positions in ``D``: child 1 keeps a uniformly random subset of ``D`` of
    size ``a`` and child 2 keeps the rest of ``D``.

    Invariants, per layer: each child's kept count equals its own parent's
    exactly; at every position the two children hold the same pair of bits as
    the two parents (so the pair's kept count is kept too). theta0 is
    untouched.

    Args:
        ind1: first parent, becomes the first child (mask entries replaced).
        ind2: second parent, becomes the second child.
        rng: CPU random generator.

    Returns:
        ``(ind1, ind2)``.

    Raises:
        ValueError: if the tickets do not share one architecture.
    """
    _check_compatible(ind1, ind2)
    for name, m1 in ind1.masks.items():
        m2 = ind2.masks[name]
        flat1, flat2 = m1.reshape(-1), m2.reshape(-1)
        disagree = (flat1 ^ flat2).nonzero().squeeze(1)  # (n_d,)
        if disagree.numel() == 0:
            continue
        ones1 = int(flat1[disagree].sum())  # a
        pick = disagree[torch.randperm(disagree.numel(), generator=rng)[:ones1]]
        child1 = flat1 & flat2  # agreed ones, new tensor
        child1[pick] = True
        child2 = flat1 | flat2  # agreed ones plus all of D, new tensor
        child2[pick] = False
        ind1.masks[name] = child1.view(m1.shape)
        ind2.masks[name] = child2.view(m2.shape)
    note_crossover(ind1, ind2, "cxMaskUniform")
    return ind1, ind2


def cxLayerSwap(ind1: Ticket, ind2: Ticket, indpb: float = 0.5, *, rng: torch.Generator) -> tuple[Ticket, Ticket]:
    """Exchange whole layers between two tickets.

    Each prunable layer independently, with probability ``indpb``, is swapped
    between the tickets: its theta0 weight, its bias, its mask and its
    ``init_std`` move together.

    Invariant: every layer of each child is, entry for entry, a layer of one
    parent; the pair's per-layer kept counts are kept (a child's own density
    changes when the parents' densities differ).

    Args:
        ind1: first parent, becomes the first child (dict entries replaced).
        ind2: second parent, becomes the second child.
        indpb: per-layer swap probability, in [0, 1].
        rng: CPU random generator.

    Returns:
        ``(ind1, ind2)``.

    Raises:
        ValueError: if ``indpb`` is not in [0, 1] or the tickets do not share
            one architecture.
    """
    indpb = _check_probability("indpb", indpb)
    _check_compatible(ind1, ind2)
    layers = tuple(ind1.masks)
    swap = torch.rand(len(layers), generator=rng) < indpb  # (layers,)
    for name, chosen in zip(layers, swap.tolist(), strict=False):
        if not chosen:
            continue
        ind1.masks[name], ind2.masks[name] = ind2.masks[name], ind1.masks[name]
        keys = [name, Ticket.bias_of(name)]
        for key in (k for k in keys if k in ind1.theta0):
            ind1.theta0[key], ind2.theta0[key] = ind2.theta0[key], ind1.theta0[key]
        if name in ind1.init_std and name in ind2.init_std:
            ind1.init_std[name], ind2.init_std[name] = (
                ind2.init_std[name],
                ind1.init_std[name],
            )
    note_crossover(ind1, ind2, "cxLayerSwap")
    return ind1, ind2


def cxInitBlend(ind1: Ticket, ind2: Ticket, alpha: float = 0.5, *, rng: torch.Generator) -> tuple[Ticket, Ticket]:
    """Blend crossover (BLX-alpha) of the initial weights and biases.

    For every entry of every theta0 tensor, ``gamma = (1 + 2 alpha) U(0, 1) -
    alpha`` and ``x1' = (1 - gamma) x1 + gamma x2``, ``x2' = gamma x1 + (1 -
    gamma) x2``, as DEAP's ``cxBlend`` (Eshelman & Schaffer 1993).

    Invariant: ``x1' + x2' == x1 + x2`` per entry (up to float rounding);
    masks are untouched. With ``alpha = 0`` every child entry lies between the
    parents' entries.

    Args:
        ind1: first parent, becomes the first child (theta0 entries replaced).
        ind2: second parent, becomes the second child.
        alpha: how far beyond the parents a child may go, as a fraction of
            their distance; finite and >= 0.
        rng: CPU random generator.

    Returns:
        ``(ind1, ind2)``.

    Raises:
        ValueError: if ``alpha`` is not a finite number >= 0 or the tickets do
            not share one architecture.
    """
    alpha = float(alpha)
    if not (alpha >= 0 and math.isfinite(alpha)):
        raise ValueError(f"alpha: must be a finite number >= 0, got {alpha}")
    _check_compatible(ind1, ind2)
    for name, x1 in ind1.theta0.items():
        x2 = ind2.theta0[name]
        u = torch.rand(x1.shape, generator=rng, dtype=x1.dtype)
        gamma = (1.0 + 2.0 * alpha) * u - alpha
        ind1.theta0[name] = (1.0 - gamma) * x1 + gamma * x2
        ind2.theta0[name] = gamma * x1 + (1.0 - gamma) * x2
    note_crossover(ind1, ind2, "cxInitBlend")
    return ind1, ind2
