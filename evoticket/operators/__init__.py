"""DEAP operators for lottery tickets: initialisation, mutation and crossover.

The operators work on :class:`evoticket.genome.Ticket` individuals and follow
DEAP's conventions (``init``/``mut``/``cx`` prefixes; individuals first,
hyper-parameters after, randomness from a keyword ``rng`` CPU
:class:`torch.Generator`; variation in place, a tuple returned, fitness left
to the algorithm), so they can be registered in any ``deap.base.Toolbox``:

    toolbox.register("mutate", mutMaskSwap, indpb=0.02, rng=g)

They are layer-aware (every layer varied on its own) and never edit a tensor
in place: a clone shares its parent's tensors, and operators replace them.

Registries (name -> function), looked up by configuration and parametrised
over by the tests:

* :data:`INITS`, :data:`MUTATIONS`, :data:`CROSSOVERS`;
* :data:`MUTATION_DEFAULTS`, :data:`CROSSOVER_DEFAULTS`: each operator's
  default keyword hyper-parameters;
* :data:`DENSITY_PRESERVING`: operators that keep every layer's kept count;
* :data:`ARG_CHECKS`: the hyper-parameters' valid ranges;
* :data:`LEARNED_NEEDED`: what the informed operators need an evaluation to return
  (fine-tuned magnitudes, dense-gradient candidates; :mod:`.informed`);
* :data:`SURVIVORS`: survivor schemes (:mod:`.selection`).

Sources: Frankle & Carbin 2019 (arXiv:1803.03635) for tickets; Such et al.
2017 (arXiv:1712.06567) for Gaussian weight mutation; Zhou et al. 2019
(arXiv:1905.01067) for the role of signs; Mocanu et al. 2018
(arXiv:1707.04780) for density-preserving prune-and-regrow; Deb et al. 2002 (NSGA-II) for the
multi-objective survivor scheme.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from evoticket.operators.crossover import cxInitBlend, cxLayerSwap, cxMaskUniform
from evoticket.operators.informed import (
    GROWTH,
    LEARNED_NEEDED,
    PRUNING,
    mutMagnitudeSwap,
    mutMaskGrow,
    mutMaskPrune,
    mutMaskResize,
)
from evoticket.operators.init import initTicket, kept_count
from evoticket.operators.mutation import (
    mutInitGaussian,
    mutInitReseed,
    mutLayerDensity,
    mutMaskFlip,
    mutMaskSwap,
    mutSignFlip,
)
from evoticket.operators.selection import selCrowdedTournament, selElitistTournament, selNSGA2

INITS: dict[str, Callable[..., Any]] = {"initTicket": initTicket}
"""Initialiser name -> function ``(container, arch, density, *, rng, ...)``."""

MUTATIONS: dict[str, Callable[..., Any]] = {
    "mutMaskSwap": mutMaskSwap,
    "mutMaskFlip": mutMaskFlip,
    "mutMagnitudeSwap": mutMagnitudeSwap,
    "mutLayerDensity": mutLayerDensity,
    "mutMaskGrow": mutMaskGrow,
    "mutMaskPrune": mutMaskPrune,
    "mutMaskResize": mutMaskResize,
    "mutInitGaussian": mutInitGaussian,
    "mutInitReseed": mutInitReseed,
    "mutSignFlip": mutSignFlip,
}
"""Mutation name -> function ``(individual, **hyper, rng) -> (individual,)``."""

CROSSOVERS: dict[str, Callable[..., Any]] = {
    "cxMaskUniform": cxMaskUniform,
    "cxLayerSwap": cxLayerSwap,
    "cxInitBlend": cxInitBlend,
}
"""Crossover name -> function ``(ind1, ind2, **hyper, rng) -> (ind1, ind2)``."""

MUTATION_DEFAULTS: dict[str, dict[str, Any]] = {
    "mutMaskSwap": {"indpb": 0.05},
    "mutMaskFlip": {"indpb": 0.002},
    "mutMagnitudeSwap": {"fraction": 0.1, "grow": "gradient"},
    "mutLayerDensity": {"fraction": 0.05},
    "mutMaskGrow": {"fraction": 0.2, "grow": "gradient", "high": 1.0},
    "mutMaskPrune": {"fraction": 0.2, "by": "magnitude", "low": 0.0},
    "mutMaskResize": {"fraction": 0.2, "grow": "gradient", "by": "magnitude", "low": 0.0, "high": 1.0},
    "mutInitGaussian": {"indpb": 0.05, "sigma": 0.5},
    "mutInitReseed": {"indpb": 0.02},
    "mutSignFlip": {"indpb": 0.02},
}
"""Mutation name -> its default keyword hyper-parameters (``indpb`` in [0, 1];
``sigma`` > 0, in units of the layer's initial scale; ``fraction`` in (0, 1]; ``grow``
``"random"`` or ``"gradient"``; ``by`` ``"magnitude"`` or ``"random"``; ``low`` in [0, 1) and ``high`` in (0, 1],
bounds of the total density)."""

CROSSOVER_DEFAULTS: dict[str, dict[str, Any]] = {
    "cxMaskUniform": {},
    "cxLayerSwap": {"indpb": 0.5},
    "cxInitBlend": {"alpha": 0.5},
}
"""Crossover name -> its default keyword hyper-parameters (``indpb`` in [0, 1];
``alpha`` >= 0)."""

DENSITY_PRESERVING: frozenset[str] = frozenset(
    {
        "mutMaskSwap",
        "mutMagnitudeSwap",
        "mutInitGaussian",
        "mutInitReseed",
        "mutSignFlip",
        "cxMaskUniform",
        "cxInitBlend",
    }
)
"""Operators after which every individual keeps each layer's exact kept count.

``cxLayerSwap`` is left out: it keeps the pair's counts, but a child's own only
when the parents share their densities; ``mutLayerDensity`` keeps only the total."""


def _number(check: Callable[[float], bool]) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int | float) and not isinstance(v, bool) and check(v)


ARG_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "indpb": (_number(lambda v: 0 <= v <= 1), "must be in [0, 1]"),
    "sigma": (_number(lambda v: v > 0), "must be > 0"),
    "alpha": (_number(lambda v: v >= 0), "must be >= 0"),
    "fraction": (_number(lambda v: 0 < v <= 1), "must be in (0, 1]"),
    "grow": (lambda v: v in GROWTH, "must be one of " + ", ".join(map(repr, GROWTH))),
    "by": (lambda v: v in PRUNING, "must be one of " + ", ".join(map(repr, PRUNING))),
    "low": (_number(lambda v: 0 <= v < 1), "must be in [0, 1)"),
    "high": (_number(lambda v: 0 < v <= 1), "must be in (0, 1]"),
}
"""Hyper-parameter name -> (range check, what would be valid), as the operators check them."""

SURVIVORS: dict[str, Callable[..., Any]] = {"selElitistTournament": selElitistTournament, "selNSGA2": selNSGA2}
"""Survivor scheme name -> function ``(individuals, k, *, elitism, tournsize) -> survivors``."""

PARENT_SELECTION: dict[str, Callable[..., Any]] = {"selNSGA2": selCrowdedTournament}
"""Survivor scheme name -> its own parent selection ``(individuals, k, *, tournsize)``; any other scheme's parents
are drawn by ``deap.tools.selTournament``."""

__all__ = [
    "ARG_CHECKS",
    "CROSSOVERS",
    "CROSSOVER_DEFAULTS",
    "DENSITY_PRESERVING",
    "GROWTH",
    "INITS",
    "LEARNED_NEEDED",
    "MUTATIONS",
    "MUTATION_DEFAULTS",
    "PARENT_SELECTION",
    "PRUNING",
    "SURVIVORS",
    "cxInitBlend",
    "cxLayerSwap",
    "cxMaskUniform",
    "initTicket",
    "kept_count",
    "mutInitGaussian",
    "mutInitReseed",
    "mutLayerDensity",
    "mutMagnitudeSwap",
    "mutMaskFlip",
    "mutMaskGrow",
    "mutMaskPrune",
    "mutMaskResize",
    "mutMaskSwap",
    "mutSignFlip",
    "selCrowdedTournament",
    "selElitistTournament",
    "selNSGA2",
]
