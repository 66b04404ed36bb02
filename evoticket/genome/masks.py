"""Masks, in one place: how many weights a layer keeps and where.

The "random pruning" baseline of the LTH paper (Frankle & Carbin 2019, arXiv:1803.03635): a mask
with an exact number of kept weights at uniformly random positions. Used by the initial
population (:func:`evoticket.operators.initTicket`) and by the ``random`` control.
:func:`keep_largest` chooses the kept weights by a score (magnitude for gradual pruning and RigL's
drop, the dense gradient for RigL's growth).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch


def kept_count(density: float, numel: int) -> int:
    """Number of weights a layer of ``numel`` weights keeps at ``density``.

    Args:
        density: fraction kept, in (0, 1].
        numel: number of weights in the layer, >= 1.

    Returns:
        ``max(1, round(density * numel))``: never an empty layer.
    """
    return max(1, round(density * numel))


def random_mask(shape: Sequence[int], kept: int, generator: torch.Generator) -> torch.Tensor:
    """A bool mask of ``shape`` with exactly ``kept`` True entries at uniformly random positions.

    Args:
        shape: the weight's shape.
        kept: number of kept entries, in [0, prod(shape)].
        generator: CPU random generator (one ``randperm`` of the layer's size is drawn).

    Returns:
        A bool CPU tensor of ``shape``.
    """
    numel = math.prod(shape)
    flat = torch.zeros(numel, dtype=torch.bool)
    flat[torch.randperm(numel, generator=generator)[:kept]] = True
    return flat.view(tuple(shape))


def random_masks_like(masks: Mapping[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Masks with the same per-layer kept counts as ``masks``, at uniformly random positions.

    Args:
        masks: weight name -> bool mask.
        generator: CPU random generator; layers are drawn in ``masks``' order.

    Returns:
        Weight name -> bool mask of the same shape and kept count.
    """
    return {name: random_mask(mask.shape, int(mask.sum()), generator) for name, mask in masks.items()}


def keep_largest(score: torch.Tensor, candidates: torch.Tensor, keep: int) -> torch.Tensor:
    """The ``keep`` candidate positions of largest score, as a bool mask.

    Args:
        score: scores of one tensor (any shape); larger is kept first.
        candidates: bool, the same shape: the positions that may be chosen.
        keep: how many to choose, clipped to ``[0, candidates.sum()]``.

    Returns:
        A bool tensor of ``score``'s shape with exactly ``min(keep, #candidates)`` True entries, all
        among the candidates. Ties go to the lower flat position (stable sort), so the result is
        deterministic.
    """
    flat, allowed = score.reshape(-1), candidates.reshape(-1)
    pos = allowed.nonzero().squeeze(1)
    keep = max(0, min(int(keep), pos.numel()))
    order = flat[pos].argsort(descending=True, stable=True)[:keep]
    out = torch.zeros_like(allowed)
    out[pos[order]] = True
    return out.view(score.shape)
