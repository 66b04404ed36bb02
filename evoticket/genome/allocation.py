"""Per-layer densities from one total density: ``uniform``, ``erk`` and ``lth``, in one place for every method.

* ``uniform``: every layer keeps the same fraction.
* ``erk``: Erdős–Rényi-Kernel (Evci et al. 2020, arXiv:1911.11134, after Mocanu et al. 2018,
  arXiv:1707.04780): a layer's density is proportional to ``sum(shape) / prod(shape)`` (for a
  ``Conv1d`` weight ``(out, in, k)``: ``(out + in + k) / (out * in * k)``), scaled so the network
  keeps the total; a layer that would exceed 1 is kept dense and the rest rescaled, as rigl's
  ``sparse_utils.get_sparsities`` does.
* ``lth``: the allocation iterative magnitude pruning reaches in the LTH paper (Frankle & Carbin
  2019, arXiv:1803.03635): each round prunes 20% of a hidden layer's weights and 10% of the output
  layer's, so after ``n`` rounds a hidden layer keeps ``0.8**n`` and the output layer ``0.9**n``;
  ``n`` (a real number) is chosen so the network keeps the total. For the paper's convolutional
  networks the convolutions are pruned more slowly (Conv-2 and Conv-4 10% per round, Conv-6 15%;
  :data:`evoticket.models.LTH_RATES`, :func:`lth_rates`).
"""

from __future__ import annotations

import math

from evoticket.core.errors import ConfigError, unknown_name
from evoticket.models import LTH_RATES as MODEL_LTH_RATES
from evoticket.models import Architecture

ALLOCATIONS = ("uniform", "erk", "lth")
"""Names of the per-layer allocations (``ticket.allocation``)."""

LTH_RATES = (0.2, 0.1)
"""Fractions of the remaining weights the LTH paper prunes per round: hidden layers, output layer."""


def lth_rates(
    arch: Architecture, rate: float = LTH_RATES[0], output_rate: float = LTH_RATES[1], conv_rate: float = 0.0
) -> dict[str, float]:
    """Weight name -> the fraction of its remaining weights one round of IMP prunes, as the LTH paper sets them.

    Args:
        arch: the architecture (its last prunable layer is the output layer).
        rate: a hidden layer's rate, in (0, 1).
        output_rate: the output layer's rate, in (0, 1).
        conv_rate: a convolution's rate, in [0, 1); 0 takes the paper's rate for the model's convolutions
            where :data:`evoticket.models.LTH_RATES` gives one (``conv2``, ``conv4``, ``conv6``, ``lenet5``),
            else ``rate``.

    Returns:
        Weight name -> rate, in forward order.
    """
    conv = conv_rate or MODEL_LTH_RATES.get(arch.name, {}).get("conv", rate)
    out = arch.output_weight
    return {
        spec.weight: output_rate if spec.weight == out else conv if spec.kind.startswith("conv") else rate
        for spec in arch.layers
    }


def _sizes(arch: Architecture) -> dict[str, int]:
    return {spec.weight: math.prod(spec.weight_shape) for spec in arch.layers}


def erk_densities(arch: Architecture, density: float) -> dict[str, float]:
    """Erdős–Rényi-Kernel densities whose kept weights add up to ``density`` of the network's.

    Args:
        arch: the architecture.
        density: total fraction of prunable weights kept, in (0, 1].

    Returns:
        Weight name -> density in (0, 1].
    """
    sizes = _sizes(arch)
    raw = {spec.weight: sum(spec.weight_shape) / sizes[spec.weight] for spec in arch.layers}
    dense: set[str] = set()
    while True:
        rhs = sum(n * density for k, n in sizes.items() if k not in dense)
        rhs -= sum(n * (1 - density) for k, n in sizes.items() if k in dense)
        divisor = sum(raw[k] * sizes[k] for k in sizes if k not in dense)
        if divisor == 0:  # every layer dense
            return dict.fromkeys(sizes, 1.0)
        eps = rhs / divisor
        largest = max(raw[k] for k in sizes if k not in dense)
        if largest * eps <= 1:
            return {k: 1.0 if k in dense else eps * raw[k] for k in sizes}
        dense.update(k for k in sizes if k not in dense and raw[k] == largest)


def lth_densities(arch: Architecture, density: float) -> dict[str, float]:
    """The LTH paper's allocation (:func:`lth_rates`: hidden layers pruned at twice the output layer's rate,
    the paper's convolutions more slowly) at a total ``density``.

    Args:
        arch: the architecture (its last layer is the output layer).
        density: total fraction of prunable weights kept, in (0, 1].

    Returns:
        Weight name -> density in (0, 1].
    """
    sizes = _sizes(arch)
    keep = {k: 1 - r for k, r in lth_rates(arch).items()}
    total = sum(sizes.values())

    def kept(rounds: float) -> float:
        return sum(n * keep[k] ** rounds for k, n in sizes.items())

    lo, hi = 0.0, 1.0
    while kept(hi) > density * total:
        hi *= 2
    for _ in range(100):  # bisection on the number of rounds
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if kept(mid) > density * total else (lo, mid)
    rounds = (lo + hi) / 2
    return {k: keep[k] ** rounds for k in sizes}


def layer_densities(arch: Architecture, density: float, allocation: str = "uniform") -> dict[str, float]:
    """Each prunable layer's density for a total ``density`` under an allocation.

    Args:
        arch: the architecture.
        density: fraction of all prunable weights kept, in (0, 1].
        allocation: one of :data:`ALLOCATIONS`.

    Returns:
        Weight name -> density in (0, 1], in forward order.

    Raises:
        ConfigError: for an unknown allocation or a density outside (0, 1].
    """
    if not 0 < density <= 1:
        raise ConfigError(f"ticket.density: must be in (0, 1], got {density}")
    if allocation == "uniform":
        return dict.fromkeys(arch.weight_names, float(density))
    if allocation == "erk":
        return erk_densities(arch, density)
    if allocation == "lth":
        return lth_densities(arch, density)
    raise ConfigError("ticket.allocation: " + unknown_name("allocation", allocation, ALLOCATIONS))


def ticket_densities(
    arch: Architecture, density: float, allocation: str, overrides: dict[str, float]
) -> dict[str, float]:
    """Every prunable layer's density as ``[ticket]`` sets it: the allocation's, then the explicit overrides.

    Args:
        arch: the architecture.
        density: ``ticket.density``, the total fraction kept, in (0, 1].
        allocation: ``ticket.allocation``, one of :data:`ALLOCATIONS`.
        overrides: ``ticket.layer_densities``: weight name -> density in (0, 1].

    Returns:
        Weight name -> density in (0, 1], for every prunable layer in forward order.

    Raises:
        ConfigError: as :func:`layer_densities`.
    """
    return {**layer_densities(arch, density, allocation), **overrides}
