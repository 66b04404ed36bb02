"""Masks, in one place: how many weights a layer keeps and where.

The "random pruning" baseline of the LTH paper (Frankle & Carbin 2019, arXiv:1803.03635): a mask
with an exact number of kept weights at uniformly random positions. Used by the initial
population (:func:`evoticket.operators.initTicket`) and by the ``random`` control.
:func:`keep_largest` chooses the kept weights by a score (magnitude for gradual pruning and RigL's
drop, the dense gradient for RigL's growth).

Positions: a weight whose input axis is ordered (the first layer of an MLP on MNIST-1D, whose 40 inputs are
positions of a 1D signal; a convolution's kernel) splits into *rows* (units) over ordered positions
(:func:`position_layout`). :func:`local_mask` draws a mask whose rows each keep a random contiguous window, and
:func:`locality` measures how local a mask is against a random one of the same density. Lottery masks found by
pruning on MNIST-1D keep more adjacent inputs than random masks do (Greydanus 2020, arXiv:2011.14439; Pellegrini
& Biroli 2021, arXiv:2104.13343).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

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


# ------------------------------------------------------------------ positions


def position_layout(shape: Sequence[int]) -> tuple[int, tuple[int, ...]]:
    """How a weight splits into rows (units) over ordered input positions.

    A Linear weight ``(out, in)`` is ``out`` rows over ``in`` positions; a convolution's ``(out, in, *kernel)``
    is ``out * in`` rows (one per output and input channel: channels are not ordered) over the kernel's grid,
    ``(k,)`` for a Conv1d, ``(kh, kw)`` for a Conv2d; a 1D weight is one row.

    Args:
        shape: the weight's shape, at least 1D.

    Returns:
        ``(rows, grid)``: the number of rows and the shape of one row's positions, so that
        ``mask.reshape(rows, *grid)`` views the mask row by row (C order).

    Raises:
        ValueError: for a 0D shape.
    """
    shape = tuple(int(n) for n in shape)
    if not shape:
        raise ValueError("position_layout: a weight has at least one axis")
    if len(shape) == 1:
        return 1, shape
    if len(shape) == 2:
        return shape[0], shape[1:]
    return shape[0] * shape[1], shape[2:]


def grid_coordinates(grid: Sequence[int]) -> torch.Tensor:
    """The coordinates of every position of a row's grid, in C (flat) order.

    Args:
        grid: the shape of one row's positions (:func:`position_layout`), e.g. ``(40,)`` or ``(3, 3)``.

    Returns:
        A float64 tensor of shape ``(prod(grid), len(grid))``.
    """
    axes = [torch.arange(n, dtype=torch.float64) for n in grid]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(grid))


def shuffled_argsort(key: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``key.argsort(dim=1)`` with ties broken uniformly at random.

    Args:
        key: shape ``(R, P)``: the sort key of each row's positions (smallest first).
        generator: CPU random generator (one ``(R, P)`` uniform draw).

    Returns:
        A long tensor of shape ``(R, P)``: each row's positions in increasing ``key``.
    """
    perm = torch.rand(key.shape, generator=generator).argsort(dim=1)  # (R, P) a random order
    order = key.gather(1, perm).argsort(dim=1, stable=True)
    return perm.gather(1, order)


def first_k(order: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """A bool mask of the first ``k[r]`` positions of each row's ``order``.

    Args:
        order: shape ``(R, P)``, a permutation of ``range(P)`` per row.
        k: shape ``(R,)``, how many to take per row.

    Returns:
        A bool tensor of shape ``(R, P)`` with exactly ``min(k[r], P)`` True entries in row ``r``.
    """
    ranks = order.argsort(dim=1)  # (R, P) the rank of each position
    return ranks < k.reshape(-1, 1)


def row_counts(total: int, rows: int, generator: torch.Generator) -> torch.Tensor:
    """``total`` kept weights spread as evenly as possible over ``rows`` rows.

    Args:
        total: kept weights, in [0, rows * positions].
        rows: number of rows, >= 1.
        generator: CPU random generator: which rows get one more (a ``randperm`` of ``rows``).

    Returns:
        A long tensor of shape ``(rows,)`` summing to ``total``: ``total // rows`` per row, plus one for
        ``total % rows`` rows chosen at random.
    """
    counts = torch.full((rows,), total // rows, dtype=torch.long)
    counts[torch.randperm(rows, generator=generator)[: total % rows]] += 1
    return counts


def local_mask(shape: Sequence[int], kept: int, generator: torch.Generator) -> torch.Tensor:
    """A bool mask of ``shape`` with exactly ``kept`` True entries, each row keeping a contiguous window.

    The kept count is spread as evenly as possible over the rows of :func:`position_layout` (:func:`row_counts`).
    A row keeping ``k`` of ``L`` ordered positions keeps the window ``[s, s + k)`` with ``s`` uniform in
    ``[0, L - k]``. Over a 2D kernel grid a row keeps the ``k`` positions nearest to a random centre (a compact
    block, ``side = round(k ** 0.5)`` per axis, its corner uniform; ties at random).

    Args:
        shape: the weight's shape (Linear ``(out, in)``, Conv1d ``(out, in, k)``, Conv2d ``(out, in, kh, kw)``).
        kept: number of kept entries, in [0, prod(shape)].
        generator: CPU random generator; the only source of randomness.

    Returns:
        A bool CPU tensor of ``shape``.

    Raises:
        ValueError: if ``kept`` is not in [0, prod(shape)].
    """
    numel = math.prod(shape)
    if not 0 <= kept <= numel:
        raise ValueError(f"kept: must be in [0, {numel}], got {kept}")
    rows, grid = position_layout(shape)
    counts = row_counts(kept, rows, generator)  # (R,)
    coords = grid_coordinates(grid)  # (P, D)
    size = torch.tensor(grid, dtype=torch.float64)  # (D,)
    side = torch.minimum(counts.double().pow(1.0 / len(grid)).round().clamp(min=1).reshape(-1, 1), size)  # (R, D)
    start = (torch.rand((rows, len(grid)), generator=generator, dtype=torch.float64) * (size - side + 1)).floor()
    centre = start + (side - 1) / 2  # (R, D)
    dist = ((coords.unsqueeze(0) - centre.unsqueeze(1)) ** 2).sum(-1)  # (R, P)
    out = first_k(shuffled_argsort(dist, generator), counts)
    return out.reshape(tuple(shape))


class Locality(NamedTuple):
    """How local a mask is: the share of kept weights whose right neighbour is kept, observed and expected.

    Attributes:
        score: kept weights whose next position along the last axis (the next input of a Linear row, the next
            kernel column of a convolution) is kept too, over all kept weights; in [0, 1).
        expected: the same expected for a uniformly random mask of the same shape and kept count (the random
            init's, :func:`random_mask`); in [0, 1).
    """

    score: float
    expected: float

    @property
    def ratio(self) -> float:
        """``score / expected``: > 1 for a mask more local than a random one; NaN when ``expected`` is 0 (at most
        one kept weight, or one position per row)."""
        return self.score / self.expected if self.expected > 0 else math.nan


def locality(mask: torch.Tensor) -> Locality:
    """The locality score of a mask, and what a random mask of its density would score.

    The score is the fraction of kept weights whose right neighbour in the same row (the next position along the
    mask's last axis, :func:`position_layout`) is kept: ``(k - 1) / k`` for a row keeping one contiguous window
    of ``k``. A uniformly random mask of ``K`` kept among ``N`` weights in rows of ``L`` positions scores
    ``(N / L) * (L - 1) * (K - 1) / (N * (N - 1))`` in expectation (each of the ``(N / L) * (L - 1)`` adjacent pairs
    is kept with probability ``K (K - 1) / (N (N - 1))``), about the density times ``(L - 1) / L``. Lottery masks
    pruned on MNIST-1D score above it (Greydanus 2020, arXiv:2011.14439; Pellegrini & Biroli 2021,
    arXiv:2104.13343).

    Args:
        mask: a bool mask of any shape with at least one axis, e.g. a first layer's ``(out, in)``.

    Returns:
        :class:`Locality`; ``score`` is 0.0 for an empty mask.
    """
    m = mask.detach().to("cpu", torch.bool)
    m = m.reshape(-1, m.shape[-1]) if m.dim() > 1 else m.reshape(1, -1)  # (rows, L)
    length, numel, kept = m.shape[1], m.numel(), int(m.sum())
    pairs = int((m[:, :-1] & m[:, 1:]).sum())
    score = pairs / kept if kept else 0.0
    slots = m.shape[0] * (length - 1)
    expected = slots * (kept - 1) / (numel * (numel - 1)) if numel > 1 and kept > 1 else 0.0
    return Locality(float(score), float(expected))
