"""Mutations informed by what fine-tuning learned: the evolutionary side of IMP and RigL.

IMP wins because it chooses the mask with the trained magnitudes; a GA that keeps only a fitness number
throws them away. :func:`mutMagnitudeSwap` uses the learned traits an evaluation leaves on each
individual (:mod:`evoticket.genome.learned`): it prunes the kept weights whose fine-tuned magnitude is
smallest (Frankle & Carbin 2019, arXiv:1803.03635) and grows as many pruned positions, at random as
SET does (Mocanu et al. 2018, arXiv:1707.04780) or where the dense gradient at the end of fine-tuning
was largest, as RigL does (Evci et al. 2020, arXiv:1911.11134).

The operator keeps DEAP's contract (in place, tensors replaced, fitness left alone, ``(individual,)``
returned; randomness only from the keyword ``rng``). An evaluator returns the traits when an operator
of the run needs them (each operator's registry entry says what it needs: :data:`evoticket.operators.OPERATORS`).
"""

from __future__ import annotations

import torch

from evoticket.genome import Ticket, growth_candidates, known_magnitudes, note_variation
from evoticket.operators.mutation import _check_fraction

GROWTH = ("random", "gradient")
"""Where :func:`mutMagnitudeSwap` and :func:`mutMaskGrow` grow: at random (SET) or by the dense gradient's magnitude
(RigL)."""

PRUNING = ("magnitude", "random")
"""What :func:`mutMaskPrune` prunes: the smallest fine-tuned magnitudes (IMP) or kept weights at random."""


def mutMagnitudeSwap(
    individual: Ticket, fraction: float = 0.1, grow: str = "gradient", *, rng: torch.Generator
) -> tuple[Ticket]:
    """Prune the kept weights of smallest fine-tuned magnitude, grow as many pruned ones.

    Per layer with ``k`` kept and ``z`` pruned weights, ``n = min(floor(fraction * k), z)`` kept
    positions whose fine-tuned magnitude (``individual.learned``) is smallest are pruned; a kept
    position whose magnitude is unknown (kept by this individual but not by the ancestor whose
    fine-tuning was measured) is never pruned, so fewer than ``n`` may move. As many positions grow
    among those pruned before the move: uniformly at random (``grow="random"``, SET) or in the order
    of the dense gradient's magnitude at the end of fine-tuning (``grow="gradient"``, RigL; random
    for the rest when fewer candidates are left than needed). An individual with no learned traits
    is mutated as SET does: its ``n`` pruned weights chosen at random.

    Invariant: every layer's kept count is exactly unchanged; theta0 and the learned traits are
    untouched (a grown weight starts from its theta0 value).

    Args:
        individual: the ticket to mutate in place (its mask dict entries are replaced).
        fraction: share of each layer's kept weights moved, in (0, 1].
        grow: ``"random"`` or ``"gradient"``.
        rng: CPU random generator.

    Returns:
        ``(individual,)``.

    Raises:
        ValueError: if ``fraction`` is not in (0, 1] or ``grow`` is not one of :data:`GROWTH`.
    """
    fraction = _check_fraction(fraction)
    _check_choice("grow", grow, GROWTH)
    learned = individual.learned
    for name, mask in individual.masks.items():
        flat = mask.reshape(-1)
        kept = flat.nonzero().squeeze(1)  # (k,)
        pruned = (~flat).nonzero().squeeze(1)  # (z,)
        n = min(int(fraction * kept.numel()), pruned.numel())
        if n == 0:
            continue
        off = _prune_positions(name, learned, flat, n, "magnitude", rng)
        if off.numel() == 0:
            continue
        on = _grow(name, learned, flat, pruned, off.numel(), grow, rng)
        new = flat.clone()
        new[off] = False
        new[on] = True
        individual.masks[name] = new.view(mask.shape)
    note_variation(individual, "mutMagnitudeSwap")
    return (individual,)


def _check_choice(name: str, value: str, valid: tuple[str, ...]) -> str:
    if value not in valid:
        raise ValueError(f"{name}: must be one of {', '.join(map(repr, valid))}, got {value!r}")
    return value


def _prune_positions(name: str, learned, flat: torch.Tensor, n: int, by: str, rng: torch.Generator) -> torch.Tensor:
    """Up to ``n`` kept positions of layer ``name`` to prune: smallest known fine-tuned magnitude first (``by =
    "magnitude"``; positions of unknown magnitude are never pruned; at random without learned traits) or at random."""
    kept = flat.nonzero().squeeze(1)  # (k,)
    if by == "random" or learned is None:
        return kept[torch.randperm(kept.numel(), generator=rng)[:n]]
    magnitude = known_magnitudes(learned, name, flat.numel())[kept]  # NaN: unknown
    known = (~magnitude.isnan()).nonzero().squeeze(1)
    order = magnitude[known].argsort(stable=True)
    return kept[known[order[:n]]]


def _bounded(individual: Ticket, fraction: float, direction: str, low: float, high: float) -> float:
    """``fraction`` cut so that the total density stays in [low, high] (<= 0: no room in that direction)."""
    kept = sum(int(m.sum()) for m in individual.masks.values())
    total = sum(m.numel() for m in individual.masks.values())
    if direction == "grow":
        return min(fraction, high * total / max(kept, 1) - 1.0)
    return min(fraction, 1.0 - low * total / max(kept, 1))


def _check_bounds(low: float, high: float) -> tuple[float, float]:
    low, high = float(low), float(high)
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(f"low, high: must satisfy 0 <= low < high <= 1, got low={low}, high={high}")
    return low, high


def _resize(individual: Ticket, fraction: float, direction: str, grow: str, by: str, rng: torch.Generator) -> None:
    """Grow (``direction = "grow"``) or prune every layer's mask by ``fraction`` of its kept count."""
    if fraction <= 0:
        return
    learned = individual.learned
    for name, mask in individual.masks.items():
        flat = mask.reshape(-1)
        k = int(flat.sum())
        if direction == "grow":
            pruned = (~flat).nonzero().squeeze(1)
            n = min(int(fraction * k), pruned.numel())
            if n == 0:
                continue
            changed, value = _grow(name, learned, flat, pruned, n, grow, rng), True
        else:
            n = min(int(fraction * k), k - 1)  # a layer always keeps one weight
            if n <= 0:
                continue
            changed, value = _prune_positions(name, learned, flat, n, by, rng), False
        if changed.numel():
            new = flat.clone()
            new[changed] = value
            individual.masks[name] = new.view(mask.shape)


def mutMaskGrow(
    individual: Ticket, fraction: float = 0.2, grow: str = "gradient", high: float = 1.0, *, rng: torch.Generator
) -> tuple[Ticket]:
    """Grow each layer's mask by ``fraction`` of its kept weights: density goes up.

    Per layer with ``k`` kept and ``z`` pruned weights, ``min(floor(fraction * k), z)`` pruned positions are
    kept from now on, chosen by the dense gradient's magnitude at the end of fine-tuning (``grow = "gradient"``,
    RigL, Evci et al. 2020, arXiv:1911.11134; random for the rest, and for an individual without learned traits) or
    uniformly at random (``grow = "random"``, SET, arXiv:1707.04780). A grown weight starts from its theta0 value.
    The fraction is cut so that the total density does not pass ``high``.

    Args:
        individual: the ticket to mutate in place (its mask dict entries are replaced).
        fraction: growth relative to each layer's kept count, in (0, 1].
        grow: ``"random"`` or ``"gradient"``.
        high: the total density it never grows past, in (0, 1].
        rng: CPU random generator.

    Returns:
        ``(individual,)``.

    Raises:
        ValueError: if ``fraction`` or ``high`` is not in (0, 1] or ``grow`` is not one of :data:`GROWTH`.
    """
    fraction = _check_fraction(fraction)
    _, high = _check_bounds(0.0, high)
    fraction = _bounded(individual, fraction, "grow", 0.0, high)
    _resize(individual, fraction, "grow", _check_choice("grow", grow, GROWTH), "magnitude", rng)
    note_variation(individual, "mutMaskGrow")
    return (individual,)


def mutMaskPrune(
    individual: Ticket, fraction: float = 0.2, by: str = "magnitude", low: float = 0.0, *, rng: torch.Generator
) -> tuple[Ticket]:
    """Prune ``fraction`` of each layer's kept weights: density goes down.

    Per layer with ``k`` kept weights, ``min(floor(fraction * k), k - 1)`` of them are pruned (a layer keeps at
    least one): those of smallest fine-tuned magnitude (``by = "magnitude"``, one IMP step, Frankle & Carbin 2019,
    arXiv:1803.03635; a weight whose magnitude is unknown is never pruned; at random for an individual without
    learned traits) or uniformly at random (``by = "random"``). The fraction is cut so that the total density does
    not fall below ``low``.

    Args:
        individual: the ticket to mutate in place (its mask dict entries are replaced).
        fraction: share of each layer's kept weights pruned, in (0, 1].
        by: ``"magnitude"`` or ``"random"``.
        low: the total density it never prunes below, in [0, 1).
        rng: CPU random generator.

    Returns:
        ``(individual,)``.

    Raises:
        ValueError: if ``fraction`` is not in (0, 1], ``low`` not in [0, 1) or ``by`` not one of :data:`PRUNING`.
    """
    fraction = _check_fraction(fraction)
    low, _ = _check_bounds(low, 1.0)
    fraction = _bounded(individual, fraction, "prune", low, 1.0)
    _resize(individual, fraction, "prune", "random", _check_choice("by", by, PRUNING), rng)
    note_variation(individual, "mutMaskPrune")
    return (individual,)


def mutMaskResize(
    individual: Ticket,
    fraction: float = 0.2,
    grow: str = "gradient",
    by: str = "magnitude",
    low: float = 0.0,
    high: float = 1.0,
    *,
    rng: torch.Generator,
) -> tuple[Ticket]:
    """Grow or prune, with equal probability: :func:`mutMaskGrow` or :func:`mutMaskPrune` by ``fraction``.

    The density-changing step of a multi-objective search (``ga.objectives = ["accuracy", "density"]``):
    a lineage's density performs a multiplicative random walk, ``x (1 + fraction)`` or ``x (1 - fraction)`` per
    mutation, which selection steers along the Pareto front, kept within total densities [low, high] (at a bound
    it goes the other way).

    Args:
        individual: the ticket to mutate in place (its mask dict entries are replaced).
        fraction: growth or pruning relative to each layer's kept count, in (0, 1].
        grow: where to grow, one of :data:`GROWTH`.
        by: what to prune, one of :data:`PRUNING`.
        low: the total density it never prunes below, in [0, high).
        high: the total density it never grows past, in (low, 1].
        rng: CPU random generator (one draw for the coin, then the chosen operator's draws).

    Returns:
        ``(individual,)``.

    Raises:
        ValueError: for a ``fraction``, ``grow`` or ``by`` out of range.
    """
    fraction = _check_fraction(fraction)
    grow, by = _check_choice("grow", grow, GROWTH), _check_choice("by", by, PRUNING)
    low, high = _check_bounds(low, high)
    direction = "grow" if bool(torch.rand((), generator=rng) < 0.5) else "prune"
    if _bounded(individual, fraction, direction, low, high) <= 0:
        direction = "prune" if direction == "grow" else "grow"
    _resize(individual, _bounded(individual, fraction, direction, low, high), direction, grow, by, rng)
    note_variation(individual, "mutMaskResize")
    return (individual,)


def _grow(
    name: str, learned, flat: torch.Tensor, pruned: torch.Tensor, n: int, grow: str, rng: torch.Generator
) -> torch.Tensor:
    """``n`` positions among ``pruned`` to grow: gradient candidates first (RigL), then at random."""
    chosen = torch.empty(0, dtype=torch.long)
    candidates = growth_candidates(learned, name) if grow == "gradient" else None
    if candidates is not None:
        index = candidates[0]
        chosen = index[~flat[index]][:n]  # still pruned, largest gradient first
    if chosen.numel() < n:
        free = torch.ones(flat.numel(), dtype=torch.bool)
        free[chosen] = False
        rest = pruned[free[pruned]]
        chosen = torch.cat([chosen, rest[torch.randperm(rest.numel(), generator=rng)[: n - chosen.numel()]]])
    return chosen


def needs_traits(kwargs: dict, *, grows: bool, prunes: bool) -> str:
    """What an informed operator needs an evaluation to return with ``kwargs``: ``"gradients"`` when it grows by
    the dense gradient, ``"magnitudes"`` when it prunes by fine-tuned magnitude, else ``"none"``."""
    if grows and kwargs.get("grow", "gradient") == "gradient":
        return "gradients"
    if prunes and kwargs.get("by", "magnitude") == "magnitude":
        return "magnitudes"
    return "none"
