"""Position-aware mask mutations: move, compact and copy each unit's window of inputs.

On MNIST-1D (40 inputs that are positions of a 1D signal) local connectivity pays: a CNN reaches 94% where a
dense MLP reaches 62-68% (Greydanus 2020, arXiv:2011.14439), and masks found by pruning keep more adjacent input
weights than random masks do (Pellegrini & Biroli 2021, arXiv:2104.13343). These operators let evolution propose
such structure, and fine-tuning tune it. They act on the layers whose input axis is ordered, seen as rows over
positions (:func:`evoticket.genome.masks.position_layout`): a Linear weight ``(out, in)`` is ``out`` rows (units)
over its ``in`` inputs; a Conv1d ``(out, in, k)`` is one row per output and input channel over its ``k`` kernel
positions; a Conv2d ``(out, in, kh, kw)`` the same over its ``(kh, kw)`` grid (shifts are 2D vectors, distances
Euclidean, neighbours the 8 around a position).

Which layers: ``layers="first"`` (the default) varies only the ticket's first masked layer (in the network's
order), the one that sees the ordered inputs; ``"all"`` varies every masked layer. A hidden Linear layer's inputs
are the previous layer's units, which have no order: there the operators still keep every count, but a "window"
means nothing.

* :func:`mutWindowShift`: some units shift their kept input pattern by a few positions.
* :func:`mutWindowGrow`: some units move their outlying kept inputs next to their window (more contiguous).
* :func:`mutPatternCopy`: some units' patterns, shifted, are copied onto a neighbouring unit.

Every operator keeps each row's kept count, hence each layer's, exactly (density preserving), changes only masks
(theta0 is dense: a position that becomes kept starts from its theta0 value) and follows DEAP's contract as the
other operators do (:mod:`evoticket.operators.mutation`): tensors replaced, never edited; randomness only from
the keyword ``rng``; :func:`evoticket.genome.note_variation`; ``(individual,)`` returned. Their results depend on
the ticket and the seed alone, so seeded runs replay them (:mod:`evoticket.operators.recipe`).
"""

from __future__ import annotations

import functools
import itertools
import math

import torch

from evoticket.genome import Ticket, note_variation
from evoticket.genome.masks import first_k, grid_coordinates, position_layout, shuffled_argsort
from evoticket.operators.mutation import _check_probability

LAYERS = ("first", "all")
"""Which masked layers a positional operator varies: the first (in the network's order) or every one."""

_CHUNK = 1 << 22
"""Most entries of a (rows, positions, positions) distance tensor computed at once."""

_FAR = 1e12
"""Added to the sort key of positions chosen only after every position of the window (larger than any distance)."""


def _check_layers(layers: str) -> str:
    if layers not in LAYERS:
        raise ValueError(f"layers: must be one of {', '.join(map(repr, LAYERS))}, got {layers!r}")
    return layers


def _check_count(name: str, value: int) -> int:
    """``value`` as an int if it is a whole number >= 1 (``2.0`` too: configuration numbers are floats), else
    ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 1 or not float(value).is_integer():
        raise ValueError(f"{name}: must be an integer >= 1, got {value!r}")
    return int(value)


def _layer_names(individual: Ticket, layers: str) -> list[str]:
    names = list(individual.masks)
    return names[:1] if layers == "first" else names


@functools.lru_cache(maxsize=64)
def _grid(grid: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(coordinates (P, D) float64, sizes (D,) float64)`` of a row's grid (cached, never edited)."""
    return grid_coordinates(grid), torch.tensor(grid, dtype=torch.float64)


def _offsets(n: int, max_shift: int, dims: int, rng: torch.Generator, *, nonzero: bool) -> torch.Tensor:
    """``n`` shift vectors uniform in ``[-max_shift, max_shift] ** dims`` (without the zero vector if ``nonzero``).

    Returns:
        A float64 tensor of shape ``(n, dims)``.
    """
    side = 2 * max_shift + 1
    count = side**dims
    zero = (count - 1) // 2  # the flat index of the zero vector
    idx = torch.randint(count - (1 if nonzero else 0), (n,), generator=rng)
    if nonzero:
        idx = idx + (idx >= zero).long()
    digits = [(idx // side**d) % side for d in reversed(range(dims))]
    return torch.stack(digits, dim=1).double() - max_shift


def _ravel(points: torch.Tensor, grid: tuple[int, ...]) -> torch.Tensor:
    """Flat (C order) indices of integer coordinates ``(..., D)`` on ``grid``."""
    flat = torch.zeros(points.shape[:-1], dtype=torch.long)
    for d, size in enumerate(grid):
        flat = flat * size + points[..., d].long()
    return flat


def _place(
    base: torch.Tensor,
    anchors: torch.Tensor,
    anchor_ok: torch.Tensor,
    want: torch.Tensor,
    coords: torch.Tensor,
    rng: torch.Generator,
) -> torch.Tensor:
    """Rows of exactly ``want`` kept positions: ``base`` first (its positions nearest its centre when it has more),
    then the free positions nearest the anchors (a shifted window, including its positions off the edge).

    Args:
        base: bool ``(R, P)``: the positions a row keeps first.
        anchors: float64 ``(R, A, D)``: the window's points (they may lie outside the grid).
        anchor_ok: bool ``(R, A)``: which anchors are real; a row without any grows at random.
        want: long ``(R,)``: kept positions per row, in [0, P].
        coords: float64 ``(P, D)``: the grid's coordinates.
        rng: CPU random generator (ties broken at random).

    Returns:
        A bool tensor ``(R, P)`` with exactly ``want[r]`` True entries in row ``r``.
    """
    rows, positions = base.shape
    most = max(1, int(anchor_ok.sum(1).max())) if rows else 1
    first = anchor_ok.to(torch.uint8).argsort(dim=1, descending=True, stable=True)[:, :most]  # real anchors first
    anchors = anchors.gather(1, first.unsqueeze(-1).expand(-1, -1, anchors.shape[-1]))  # (R, most, D)
    anchor_ok = anchor_ok.gather(1, first)
    step = max(1, _CHUNK // max(1, positions * most))
    near = torch.empty(rows, positions, dtype=torch.float64)
    for lo in range(0, rows, step):
        a, ok = anchors[lo : lo + step], anchor_ok[lo : lo + step]
        d2 = ((coords[None, :, None, :] - a[:, None, :, :]) ** 2).sum(-1)  # (r, P, A)
        near[lo : lo + step] = d2.masked_fill(~ok[:, None, :], math.inf).amin(dim=2)
    count = base.sum(1, keepdim=True).clamp(min=1).double()
    centre = (base.double() @ coords) / count  # (R, D)
    inner = ((coords[None] - centre[:, None]) ** 2).sum(-1)  # (R, P)
    key = torch.where(base, inner, _FAR + near)
    return first_k(shuffled_argsort(key, rng), want)


def _shifted(
    kept: torch.Tensor, offsets: torch.Tensor, coords: torch.Tensor, sizes: torch.Tensor, grid: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's kept pattern moved by its offset.

    Args:
        kept: bool ``(R, P)``.
        offsets: float64 ``(R, D)``.
        coords: float64 ``(P, D)``: the grid's coordinates.
        sizes: float64 ``(D,)``: the grid's size per axis.
        grid: the row's grid.

    Returns:
        ``(base, anchors)``: bool ``(R, P)`` of the moved positions that stay on the grid, and the float64
        ``(R, P, D)`` coordinates every position moves to (on the grid or not).
    """
    anchors = coords[None] + offsets[:, None, :]  # (R, P, D)
    inside = ((anchors >= 0) & (anchors < sizes)).all(-1) & kept  # (R, P)
    target = _ravel(anchors.clamp(min=0).minimum(sizes - 1), grid)  # (R, P)
    base = torch.zeros_like(kept)
    rows = torch.arange(kept.shape[0]).unsqueeze(1).expand_as(target)
    base[rows[inside], target[inside]] = True
    return base, anchors


def _dilate(kept: torch.Tensor, grid: tuple[int, ...]) -> torch.Tensor:
    """Positions next to a kept one (the 2 neighbours on a line, the 8 around a cell of a 2D grid), ``(R, P)``."""
    rows = kept.shape[0]
    x = kept.reshape(rows, *grid)
    out = torch.zeros_like(x)
    for step in itertools.product((-1, 0, 1), repeat=len(grid)):
        if not any(step):
            continue
        src = [slice(None)] + [slice(max(0, -s), n - max(0, s)) for s, n in zip(step, grid, strict=True)]
        dst = [slice(None)] + [slice(max(0, s), n - max(0, -s)) for s, n in zip(step, grid, strict=True)]
        out[tuple(dst)] |= x[tuple(src)]
    return out.reshape(rows, -1)


def _rows(individual: Ticket, name: str) -> tuple[torch.Tensor, tuple[int, ...]]:
    """A layer's mask as ``(rows, positions)`` (a view) and its row grid."""
    mask = individual.masks[name]
    rows, grid = position_layout(mask.shape)
    return mask.reshape(rows, math.prod(grid)), grid


def mutWindowShift(
    individual: Ticket, indpb: float = 0.05, max_shift: int = 2, layers: str = "first", *, rng: torch.Generator
) -> tuple[Ticket]:
    """Shift some units' kept input patterns along their inputs.

    Each row (unit) of a varied layer is chosen with probability ``indpb``; a chosen row moves its whole kept
    pattern by an offset ``s`` drawn uniformly from ``[-max_shift, max_shift]`` without 0 (a nonzero vector over a
    2D kernel grid). Kept weights that the shift moves off the edge are regrown at the free positions nearest to
    the moved pattern (distance to the nearest point the pattern moved to, its off-edge points included; ties at
    random), so a window at the edge stays there and each row keeps its kept count. E.g. a row of 8 inputs
    keeping ``[1, 2, 4]`` shifted by +2 keeps ``[3, 4, 6]``; keeping ``[5, 6, 7]`` shifted by +1 keeps
    ``[6, 7]`` and regrows one at 5 (nearest to the off-edge point 8 among the free ones is 5).

    Invariant: every row's, so every layer's, kept count is exactly unchanged; theta0 is untouched.

    Args:
        individual: the ticket to mutate in place (its mask dict entries are replaced).
        indpb: per-row probability of a shift, in [0, 1].
        max_shift: largest shift in positions, an integer >= 1.
        layers: ``"first"`` (the first masked layer) or ``"all"`` (:data:`LAYERS`).
        rng: CPU random generator.

    Returns:
        ``(individual,)``.

    Raises:
        ValueError: if ``indpb`` is not in [0, 1], ``max_shift`` is not an integer >= 1 or ``layers`` is not one of
            :data:`LAYERS`.
    """
    indpb = _check_probability("indpb", indpb)
    max_shift = _check_count("max_shift", max_shift)
    for name in _layer_names(individual, _check_layers(layers)):
        flat, grid = _rows(individual, name)
        coords, sizes = _grid(grid)
        chosen = (torch.rand(flat.shape[0], generator=rng) < indpb).nonzero().squeeze(1)  # (R,)
        if chosen.numel() == 0:
            continue
        kept = flat[chosen]  # (R, P)
        offsets = _offsets(chosen.numel(), max_shift, len(grid), rng, nonzero=True)  # (R, D)
        base, anchors = _shifted(kept, offsets, coords, sizes, grid)
        new = flat.clone()
        new[chosen] = _place(base, anchors, kept, kept.sum(1), coords, rng)
        individual.masks[name] = new.view(individual.masks[name].shape)
    note_variation(individual, "mutWindowShift")
    return (individual,)


def mutWindowGrow(
    individual: Ticket, indpb: float = 0.1, n: int = 2, layers: str = "first", *, rng: torch.Generator
) -> tuple[Ticket]:
    """Make some units' input windows more contiguous: move outlying kept weights next to the window.

    Each row (unit) of a varied layer is chosen with probability ``indpb``. A chosen row then makes up to ``n``
    moves, one at a time: its kept weight farthest from the window's centre (the mean position of its kept
    inputs, recomputed after each move) is pruned and the free position nearest to that centre among those next
    to a kept weight (the 2 neighbours along the inputs; the 8 around a cell of a 2D kernel) is kept instead, as
    long as it is nearer to the centre than the weight it replaces (ties at random). Each move lowers the
    window's spread (the sum of squared distances to its centre), so a row stops early once it is a contiguous
    window; on a line no move ever lowers :func:`evoticket.genome.masks.locality`'s count of adjacent kept pairs.

    Invariant: every row's, so every layer's, kept count is exactly unchanged; theta0 is untouched.

    Args:
        individual: the ticket to mutate in place (its mask dict entries are replaced).
        indpb: per-row probability of being compacted, in [0, 1].
        n: most moves per chosen row, an integer >= 1.
        layers: ``"first"`` (the first masked layer) or ``"all"`` (:data:`LAYERS`).
        rng: CPU random generator.

    Returns:
        ``(individual,)``.

    Raises:
        ValueError: if ``indpb`` is not in [0, 1], ``n`` is not an integer >= 1 or ``layers`` is not one of
            :data:`LAYERS`.
    """
    indpb = _check_probability("indpb", indpb)
    n = _check_count("n", n)
    for name in _layer_names(individual, _check_layers(layers)):
        flat, grid = _rows(individual, name)
        coords, _ = _grid(grid)
        chosen = (torch.rand(flat.shape[0], generator=rng) < indpb).nonzero().squeeze(1)
        counts = flat[chosen].sum(1)
        chosen = chosen[(counts >= 2) & (counts < flat.shape[1])]  # a single weight or a full row cannot move
        if chosen.numel() == 0:
            continue
        kept = flat[chosen].clone()  # (R, P)
        rows = torch.arange(chosen.numel())
        for _ in range(n):
            centre = (kept.double() @ coords) / kept.sum(1, keepdim=True).double()  # (R, D)
            spread = ((coords[None] - centre[:, None]) ** 2).sum(-1)  # (R, P) squared distance to the centre
            far = shuffled_argsort(torch.where(kept, -spread, math.inf), rng)[:, 0]  # (R,)
            without = kept.clone()
            without[rows, far] = False
            free = ~kept & _dilate(without, grid)
            near = shuffled_argsort(torch.where(free, spread, math.inf), rng)[:, 0]
            move = free[rows, near] & (spread[rows, near] < spread[rows, far])
            if not move.any():
                break
            kept[rows[move], far[move]] = False
            kept[rows[move], near[move]] = True
        new = flat.clone()
        new[chosen] = kept
        individual.masks[name] = new.view(individual.masks[name].shape)
    note_variation(individual, "mutWindowGrow")
    return (individual,)


def mutPatternCopy(
    individual: Ticket, indpb: float = 0.05, max_shift: int = 1, layers: str = "first", *, rng: torch.Generator
) -> tuple[Ticket]:
    """Copy some units' input patterns, shifted, onto a neighbouring unit.

    Each row (unit) of a varied layer that keeps at least one weight is chosen as a source with probability
    ``indpb``; its destination is a neighbouring row, ``source - 1`` or ``source + 1`` at random (the other one at
    the first and last row). The source's kept pattern, shifted by an offset uniform in ``[-max_shift, max_shift]``
    (0 included: a plain copy), becomes the destination's pattern. Sources are read before any row is written; a
    destination named twice takes the first source's pattern (in row order).

    Balancing the count: the destination keeps its own kept count ``k_d``, so every row's count and the layer's
    total stay exact. With ``k_d`` equal to the source's count ``k_s`` the destination is exactly the shifted
    pattern (kept weights shifted off the edge regrown nearest to it, as :func:`mutWindowShift` does); with
    ``k_d < k_s`` it keeps the ``k_d`` copied positions nearest to the pattern's centre; with ``k_d > k_s`` it keeps
    the whole copy plus ``k_d - k_s`` free positions nearest to it. Ties are broken at random.

    Invariant: every row's, so every layer's, kept count is exactly unchanged; theta0 is untouched.

    Args:
        individual: the ticket to mutate in place (its mask dict entries are replaced).
        indpb: per-row probability of being copied, in [0, 1].
        max_shift: largest shift of the copy in positions, an integer >= 1.
        layers: ``"first"`` (the first masked layer) or ``"all"`` (:data:`LAYERS`).
        rng: CPU random generator.

    Returns:
        ``(individual,)``.

    Raises:
        ValueError: if ``indpb`` is not in [0, 1], ``max_shift`` is not an integer >= 1 or ``layers`` is not one of
            :data:`LAYERS`.
    """
    indpb = _check_probability("indpb", indpb)
    max_shift = _check_count("max_shift", max_shift)
    for name in _layer_names(individual, _check_layers(layers)):
        flat, grid = _rows(individual, name)
        coords, sizes = _grid(grid)
        total = flat.shape[0]
        if total < 2:
            continue
        chosen = torch.rand(total, generator=rng) < indpb
        side = torch.randint(2, (total,), generator=rng) * 2 - 1  # -1 or +1 per row
        source = (chosen & flat.any(1)).nonzero().squeeze(1)  # (S,)
        if source.numel() == 0:
            continue
        side = side[source]
        side[source == 0], side[source == total - 1] = 1, -1
        dest = source + side
        first = torch.ones_like(dest, dtype=torch.bool)  # keep each destination's first source only
        seen: set[int] = set()
        for i, d in enumerate(dest.tolist()):
            first[i] = d not in seen
            seen.add(d)
        source, dest = source[first], dest[first]
        kept = flat[source]  # (R, P)
        offsets = _offsets(source.numel(), max_shift, len(grid), rng, nonzero=False)
        base, anchors = _shifted(kept, offsets, coords, sizes, grid)
        new = flat.clone()
        new[dest] = _place(base, anchors, kept, flat[dest].sum(1), coords, rng)
        individual.masks[name] = new.view(individual.masks[name].shape)
    note_variation(individual, "mutPatternCopy")
    return (individual,)


__all__ = ["LAYERS", "mutPatternCopy", "mutWindowGrow", "mutWindowShift"]
