"""Initialisation of a random lottery ticket: drawn theta0 and random per-layer masks.

A ticket (Frankle & Carbin 2019, arXiv:1803.03635) is a network's initial
weights plus a binary pruning mask per prunable layer. :func:`initTicket`
draws both at random: theta0 from a named initialiser
(:data:`evoticket.models.INITIALISERS`) and, per layer, a mask with an exact
number of kept weights at uniformly random positions (the "random pruning"
baseline of the LTH paper). With ``placement="local"`` the first layer's units
each keep a random contiguous window of inputs instead
(:func:`evoticket.genome.local_mask`), at the same kept count: the start of a
search for the local connectivity MNIST-1D rewards (Greydanus 2020,
arXiv:2011.14439).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from evoticket import models
from evoticket.core.errors import unknown_name
from evoticket.genome import Ticket, kept_count, local_mask, random_mask
from evoticket.models import Architecture

PLACEMENTS = ("random", "local")
"""Where :func:`initTicket` puts each layer's kept weights: at uniformly random positions, or (``local``) in a
random contiguous window of inputs per unit of the first layer (the other layers random)."""


def _check_density(name: str, value: float) -> float:
    """Return ``value`` as a float if it lies in (0, 1], else raise ValueError."""
    value = float(value)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{name}: must be in (0, 1], got {value}")
    return value


def initTicket(
    container: type,
    arch: Architecture,
    density: float,
    *,
    rng: torch.Generator,
    init: str = "kaiming_normal",
    layer_densities: Mapping[str, float] | None = None,
    placement: str = "random",
) -> Ticket:
    """Draw a random ticket: initial weights and a random mask per layer.

    theta0 comes from ``arch.init_params(init, rng)`` (weights drawn, biases
    zero). Each prunable layer of ``n`` weights gets a mask with exactly
    ``max(1, round(d * n))`` kept positions, chosen uniformly at random, where
    ``d = layer_densities.get(weight name, density)``. With ``placement="local"``
    the first layer's mask (in ``arch.layers`` order) keeps the same count in a
    contiguous window per unit instead (:func:`evoticket.genome.local_mask`:
    counts spread evenly over the units, each window's start uniform; for a
    convolution, per output and input channel along its kernel). Use it as DEAP's
    individual initialiser:

        toolbox.register("individual", initTicket, ensure_creator(), arch, 0.2, rng=g)

    Args:
        container: the class to build, :class:`evoticket.genome.Ticket` or a
            subclass such as ``creator.EvoTicket`` (from
            :func:`evoticket.genome.ensure_creator`).
        arch: the architecture whose layers to draw.
        density: fraction of each layer's weights kept, in (0, 1].
        rng: CPU random generator; the only source of randomness.
        init: weight initialiser, one of :data:`evoticket.models.INITIALISERS`.
        layer_densities: weight name (e.g. ``"fc1.weight"``) -> that layer's
            density in (0, 1], overriding ``density``; layers not named use
            ``density``.
        placement: ``"random"`` or ``"local"`` (:data:`PLACEMENTS`).

    Returns:
        A new ``container`` with ``uid=None``, no parents and
        ``operators=("initTicket",)``; masks are bool tensors of each weight's
        shape, ``init_std`` holds :func:`evoticket.models.init_std` per layer.

    Raises:
        ValueError: if ``density`` or a value of ``layer_densities`` is not in
            (0, 1], if a key of ``layer_densities`` is not a weight name of
            ``arch`` (the message lists the valid names), or if ``init`` is
            not a known initialiser, or ``placement`` is not one of :data:`PLACEMENTS`.
    """
    density = _check_density("density", density)
    if init not in models.INITIALISERS:
        raise ValueError(unknown_name("init", init, models.INITIALISERS))
    if placement not in PLACEMENTS:
        raise ValueError(unknown_name("placement", placement, PLACEMENTS))
    layer_densities = dict(layer_densities or {})
    valid = arch.weight_names
    unknown = [name for name in layer_densities if name not in valid]
    if unknown:
        raise ValueError(f"layer_densities: unknown weight name(s) {unknown}; valid: {', '.join(valid)}")
    for name, value in layer_densities.items():
        layer_densities[name] = _check_density(f"layer_densities[{name!r}]", value)

    theta0 = arch.init_params(init, rng)
    masks: dict[str, torch.Tensor] = {}
    init_std: dict[str, float] = {}
    for i, spec in enumerate(arch.layers):
        numel = math.prod(spec.weight_shape)
        keep = kept_count(layer_densities.get(spec.weight, density), numel)
        draw = local_mask if placement == "local" and i == 0 else random_mask
        masks[spec.weight] = draw(spec.weight_shape, keep, rng)
        init_std[spec.weight] = models.init_std(spec, init)
    return container(theta0, masks, init, init_std, operators=("initTicket",))
