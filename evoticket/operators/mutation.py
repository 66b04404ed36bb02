"""Mutations of a lottery ticket's masks and initial weights.

Every operator follows DEAP's contract: it varies ``individual`` in place by
*replacing* tensors in its ``theta0``/``masks`` dicts (never editing a tensor,
which a clone may share; see :mod:`evoticket.genome`), records itself with
:func:`evoticket.genome.note_variation`, leaves fitness alone and returns
``(individual,)``. Randomness comes only from the keyword ``rng``, a CPU
:class:`torch.Generator`; all sampling is vectorised per layer.

Mask mutations:

* :func:`mutMaskSwap`: swaps kept and pruned positions pairwise, so each
  layer's density is unchanged (the random prune-and-regrow step of sparse
  evolutionary training, SET: Mocanu et al. 2018, arXiv:1707.04780).
* :func:`mutMaskFlip`: independent bit-flips (DEAP's ``mutFlipBit``), letting
  the density drift.
* :func:`mutLayerDensity`: moves kept weights from one layer to another at a
  fixed total, so the per-layer allocation (uniform, ERK, LTH) evolves.

Initial-weight mutations (only weights, never biases; masks unchanged):

* :func:`mutInitGaussian`: additive Gaussian noise scaled by the layer's
  initial scale (Such et al. 2017, arXiv:1712.06567).
* :func:`mutInitReseed`: redraws entries from the layer's initialiser.
* :func:`mutSignFlip`: flips signs, keeping magnitudes; a ticket's initial
  signs matter most (Zhou et al. 2019, arXiv:1905.01067).

:func:`mutInTurn` applies several mutations one after the other (``ga.mutations``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from evoticket import models
from evoticket.genome import Ticket, note_variation


def _check_probability(name: str, value: float) -> float:
    """Return ``value`` as a float if it lies in [0, 1], else raise ValueError."""
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}: must be a probability in [0, 1], got {value}")
    return value


def _check_fraction(value: float) -> float:
    """Return ``value`` as a float if it lies in (0, 1], else raise ValueError naming ``fraction``."""
    value = float(value)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"fraction: must be in (0, 1], got {value}")
    return value


def _bernoulli(shape: torch.Size, p: float, rng: torch.Generator) -> torch.Tensor:
    """Bool tensor of ``shape``, each entry True with probability ``p``."""
    return torch.rand(shape, generator=rng) < p


def mutMaskSwap(individual: Ticket, indpb: float, *, rng: torch.Generator) -> tuple[Ticket]:
    """Move kept and pruned positions pairwise so each layer's density is unchanged.

    Per layer with ``k`` kept and ``z`` pruned weights, each kept position is
    selected independently with probability ``indpb`` (so ``n ~ Binomial(k,
    indpb)`` positions, uniformly chosen), ``n`` is capped at ``min(k, z)``,
    and ``n`` uniformly chosen pruned positions are swapped in: the selected
    kept weights are pruned and the chosen pruned ones kept.

    Invariant: every layer's kept count is exactly unchanged; theta0 is
    untouched.

    Args:
        individual: the ticket to mutate in place (its mask dict entries are
            replaced).
        indpb: per-kept-weight probability of being swapped out, in [0, 1].
        rng: CPU random generator.

    Returns:
        ``(individual,)``.

    Raises:
        ValueError: if ``indpb`` is not in [0, 1].
    """
    indpb = _check_probability("indpb", indpb)
    for name, mask in individual.masks.items():
        flat = mask.reshape(-1)
        kept = flat.nonzero().squeeze(1)  # (k,)
        pruned = (~flat).nonzero().squeeze(1)  # (z,)
        off = kept[_bernoulli(kept.shape, indpb, rng)]  # (n,)
        if off.numel() > pruned.numel():
            off = off[torch.randperm(off.numel(), generator=rng)[: pruned.numel()]]
        if off.numel() == 0:
            continue
        on = pruned[torch.randperm(pruned.numel(), generator=rng)[: off.numel()]]
        new = flat.clone()
        new[off] = False
        new[on] = True
        individual.masks[name] = new.view(mask.shape)
    note_variation(individual, "mutMaskSwap")
    return (individual,)


def mutMaskFlip(individual: Ticket, indpb: float, *, rng: torch.Generator) -> tuple[Ticket]:
    """Flip each mask bit independently; the density drifts.

    Every position of every layer's mask is flipped with probability
    ``indpb`` (kept -> pruned and pruned -> kept). A layer left with no kept
    weight has one uniformly random position re-enabled, so no layer is ever
    empty.

    Invariant: every layer keeps at least one weight; theta0 is untouched.
    The expected density of a layer at density ``d`` becomes
    ``d + indpb * (1 - 2 d)``.

    Args:
        individual: the ticket to mutate in place (its mask dict entries are
            replaced).
        indpb: per-position flip probability, in [0, 1].
        rng: CPU random generator.

    Returns:
        ``(individual,)``.

    Raises:
        ValueError: if ``indpb`` is not in [0, 1].
    """
    indpb = _check_probability("indpb", indpb)
    for name, mask in individual.masks.items():
        flip = _bernoulli(mask.shape, indpb, rng)
        if not flip.any():
            continue
        new = mask ^ flip  # a new tensor
        if not new.any():
            flat = new.view(-1)
            flat[torch.randint(flat.numel(), (1,), generator=rng)] = True
        individual.masks[name] = new
    note_variation(individual, "mutMaskFlip")
    return (individual,)


def mutLayerDensity(individual: Ticket, fraction: float = 0.05, *, rng: torch.Generator) -> tuple[Ticket]:
    """Move kept weights from one layer to another, keeping the total kept count.

    A donor layer is chosen uniformly among the layers keeping at least 2 weights and a receiver
    uniformly among the other layers with a pruned position. ``n = max(1, round(fraction * min(k_d,
    z_r)))`` weights move (``k_d``: the donor's kept count, ``z_r``: the receiver's pruned count;
    at most ``k_d - 1``): ``n`` uniformly chosen kept positions of the donor are pruned and ``n``
    uniformly chosen pruned positions of the receiver kept. The per-layer densities thus evolve from
    the initial allocation (``ticket.allocation``: uniform, ERK or LTH) at a fixed total density.

    Invariant: the total kept count is exactly unchanged, every layer keeps at least one weight;
    theta0 is untouched. With a single prunable layer nothing changes but the operator's record.

    Args:
        individual: the ticket to mutate in place (its mask dict entries are replaced).
        fraction: share of ``min(k_d, z_r)`` moved, in (0, 1].
        rng: CPU random generator.

    Returns:
        ``(individual,)``.

    Raises:
        ValueError: if ``fraction`` is not in (0, 1].
    """
    fraction = _check_fraction(fraction)
    counts = {name: int(m.sum()) for name, m in individual.masks.items()}
    donors = [name for name, k in counts.items() if k >= 2]
    if donors and len(counts) > 1:
        donor = donors[int(torch.randint(len(donors), (1,), generator=rng))]
        receivers = [n for n, m in individual.masks.items() if n != donor and counts[n] < m.numel()]
        if receivers:
            receiver = receivers[int(torch.randint(len(receivers), (1,), generator=rng))]
            pruned = individual.masks[receiver].numel() - counts[receiver]
            n = min(counts[donor] - 1, max(1, round(fraction * min(counts[donor], pruned))))
            for name, value in ((donor, True), (receiver, False)):
                mask = individual.masks[name]
                flat = mask.reshape(-1)
                where = (flat if value else ~flat).nonzero().squeeze(1)
                chosen = where[torch.randperm(where.numel(), generator=rng)[:n]]
                new = flat.clone()
                new[chosen] = not value
                individual.masks[name] = new.view(mask.shape)
    note_variation(individual, "mutLayerDensity")
    return (individual,)


def mutInitGaussian(individual: Ticket, indpb: float, sigma: float, *, rng: torch.Generator) -> tuple[Ticket]:
    """Add Gaussian noise, relative to each layer's initial scale, to some weights.

    Each weight entry of theta0 (pruned or not; biases never) is, with
    probability ``indpb``, replaced by ``w + sigma * init_std[layer] * N(0, 1)``.
    The perturbation of Such et al. 2017 (arXiv:1712.06567), per entry and in
    units of the layer's initial standard deviation.

    Invariant: masks and biases are untouched (so every density is kept).

    Args:
        individual: the ticket to mutate in place (its theta0 dict entries
            are replaced).
        indpb: per-entry probability of being perturbed, in [0, 1].
        sigma: noise standard deviation in units of the layer's
            ``init_std``; finite and > 0.
        rng: CPU random generator.

    Returns:
        ``(individual,)``.

    Raises:
        ValueError: if ``indpb`` is not in [0, 1] or ``sigma`` is not a
            finite number > 0.
    """
    indpb = _check_probability("indpb", indpb)
    sigma = float(sigma)
    if not (sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"sigma: must be a finite number > 0, got {sigma}")
    for name in individual.masks:
        weight = individual.theta0[name]
        chosen = _bernoulli(weight.shape, indpb, rng)
        noise = torch.randn(weight.shape, generator=rng, dtype=weight.dtype)
        scale = sigma * individual.init_std[name]
        individual.theta0[name] = torch.where(chosen, weight + scale * noise, weight)
    note_variation(individual, "mutInitGaussian")
    return (individual,)


def mutInitReseed(individual: Ticket, indpb: float, *, rng: torch.Generator) -> tuple[Ticket]:
    """Redraw some weights from the layer's initialiser.

    Each weight entry of theta0 (biases never) is, with probability
    ``indpb``, replaced by a fresh draw
    ``models.draw_init(individual.init_scheme, individual.init_std[layer], ...)``,
    a local re-initialisation of the ticket (re-initialised tickets:
    Frankle & Carbin 2019, arXiv:1803.03635).

    Invariant: masks and biases are untouched; every weight stays a draw of
    the ticket's initialiser (e.g. under ``signed_constant``, ``|w| ==
    init_std`` everywhere).

    Args:
        individual: the ticket to mutate in place (its theta0 dict entries
            are replaced).
        indpb: per-entry probability of being redrawn, in [0, 1].
        rng: CPU random generator.

    Returns:
        ``(individual,)``.

    Raises:
        ValueError: if ``indpb`` is not in [0, 1].
        ConfigError: if the ticket's ``init_scheme`` is unknown.
    """
    indpb = _check_probability("indpb", indpb)
    for name in individual.masks:
        weight = individual.theta0[name]
        chosen = _bernoulli(weight.shape, indpb, rng)
        fresh = models.draw_init(individual.init_scheme, individual.init_std[name], weight.shape, rng)
        individual.theta0[name] = torch.where(chosen, fresh.to(weight.dtype), weight)
    note_variation(individual, "mutInitReseed")
    return (individual,)


def mutSignFlip(individual: Ticket, indpb: float, *, rng: torch.Generator) -> tuple[Ticket]:
    """Flip the sign of some initial weights, keeping their magnitudes.

    Each weight entry of theta0 (biases never) is negated with probability
    ``indpb``. Zhou et al. 2019 (arXiv:1905.01067) found a ticket's initial
    signs matter more than its magnitudes.

    Invariant: ``|theta0|`` is exactly unchanged; masks and biases are
    untouched.

    Args:
        individual: the ticket to mutate in place (its theta0 dict entries
            are replaced).
        indpb: per-entry probability of a sign flip, in [0, 1].
        rng: CPU random generator.

    Returns:
        ``(individual,)``.

    Raises:
        ValueError: if ``indpb`` is not in [0, 1].
    """
    indpb = _check_probability("indpb", indpb)
    for name in individual.masks:
        weight = individual.theta0[name]
        chosen = _bernoulli(weight.shape, indpb, rng)
        individual.theta0[name] = torch.where(chosen, -weight, weight)
    note_variation(individual, "mutSignFlip")
    return (individual,)


def mutInTurn(individual: Ticket, operators: Sequence[Callable[[Ticket], tuple]]) -> tuple[Ticket]:
    """Apply several mutations to ``individual`` one after the other, as ``ga.mutations`` does.

    Register it with the operators bound to their arguments, and the evaluator still sees what each needs
    (:func:`evoticket.operators.traits_needed` looks inside):

        toolbox.register("mutate", mutInTurn, operators=[
            functools.partial(mutMagnitudeSwap, fraction=0.1, rng=g),
            functools.partial(mutInitGaussian, indpb=0.02, sigma=0.2, rng=g),
        ])

    Args:
        individual: the ticket to mutate in place.
        operators: callables ``individual -> (individual,)``, applied in order.

    Returns:
        ``(individual,)``.
    """
    for op in operators:
        op(individual)
    return (individual,)
