"""DEAP operators for lottery tickets: initialisation, mutation and crossover.

The operators work on :class:`evoticket.genome.Ticket` individuals and follow
DEAP's conventions (``init``/``mut``/``cx`` prefixes; individuals first,
hyper-parameters after, randomness from a keyword ``rng`` CPU
:class:`torch.Generator`; variation in place, a tuple returned, fitness left
to the algorithm), so they can be registered in any ``deap.base.Toolbox``:

    toolbox.register("mutate", mutMaskSwap, indpb=0.02, rng=g)

They are layer-aware (every layer varied on its own) and never edit a tensor
in place: a clone shares its parent's tensors, and operators replace them.

One registry (:mod:`.registry`): :data:`OPERATORS` maps each name to an :class:`Operator` entry holding
its function, kind, default hyper-parameters, their valid ranges, whether it keeps every layer's kept
count and what it needs an evaluation to return; :func:`register_operator` adds one. :data:`INITS`,
:data:`MUTATIONS` and :data:`CROSSOVERS` are live views of it by kind (name -> function), looked up by
configuration and parametrised over by the tests. :data:`SURVIVORS` holds the survivor schemes
(:mod:`.selection`), each with its parent selection.

Sources: Frankle & Carbin 2019 (arXiv:1803.03635) for tickets; Such et al.
2017 (arXiv:1712.06567) for Gaussian weight mutation; Zhou et al. 2019
(arXiv:1905.01067) for the role of signs; Mocanu et al. 2018
(arXiv:1707.04780) for density-preserving prune-and-regrow; Deb et al. 2002 (NSGA-II) for the
multi-objective survivor scheme; Greydanus 2020 (arXiv:2011.14439) and Pellegrini & Biroli 2021
(arXiv:2104.13343) for the local input windows that the position-aware operators (:mod:`.positional`) propose.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from deap import tools

from evoticket.operators.crossover import cxInitBlend, cxLayerSwap, cxMaskUniform
from evoticket.operators.genes import GENES, draw_genes, mutGenesPerturb
from evoticket.operators.informed import (
    GROWTH,
    PRUNING,
    mutMagnitudeSwap,
    mutMaskGrow,
    mutMaskPrune,
    mutMaskResize,
    needs_traits,
)
from evoticket.operators.init import PLACEMENTS, initTicket, kept_count
from evoticket.operators.mutation import (
    mutInitGaussian,
    mutInitReseed,
    mutInTurn,
    mutLayerDensity,
    mutMaskFlip,
    mutMaskSwap,
    mutSignFlip,
)
from evoticket.operators.positional import LAYERS, mutPatternCopy, mutWindowGrow, mutWindowShift
from evoticket.operators.registry import (
    CROSSOVERS,
    INITS,
    KINDS,
    MUTATIONS,
    OPERATORS,
    SURVIVORS,
    Operator,
    SurvivorScheme,
    register_operator,
    traits_needed,
)
from evoticket.operators.selection import selCrowdedTournament, selElitistTournament, selNSGA2


def _number(holds: Callable[[float], bool], valid: str) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: isinstance(v, int | float) and not isinstance(v, bool) and holds(v)), valid


_INDPB = _number(lambda v: 0 <= v <= 1, "must be in [0, 1]")
_FRACTION = _number(lambda v: 0 < v <= 1, "must be in (0, 1]")
_GROW = (lambda v: v in GROWTH, "must be one of " + ", ".join(map(repr, GROWTH)))
_BY = (lambda v: v in PRUNING, "must be one of " + ", ".join(map(repr, PRUNING)))
_LOW = _number(lambda v: 0 <= v < 1, "must be in [0, 1)")
_HIGH = _number(lambda v: 0 < v <= 1, "must be in (0, 1]")
_COUNT = _number(lambda v: v >= 1 and float(v).is_integer(), "must be an integer >= 1")
_LAYERS = (lambda v: v in LAYERS, "must be one of " + ", ".join(map(repr, LAYERS)))

for _op in (
    Operator("initTicket", initTicket, "init"),
    Operator("mutMaskSwap", mutMaskSwap, "mutation", {"indpb": 0.05}, {"indpb": _INDPB}, density_preserving=True),
    Operator("mutMaskFlip", mutMaskFlip, "mutation", {"indpb": 0.002}, {"indpb": _INDPB}),
    Operator(
        "mutMagnitudeSwap",
        mutMagnitudeSwap,
        "mutation",
        {"fraction": 0.1, "grow": "gradient"},
        {"fraction": _FRACTION, "grow": _GROW},
        density_preserving=True,
        needs=lambda kw: "gradients" if kw.get("grow") == "gradient" else "magnitudes",
    ),
    Operator("mutLayerDensity", mutLayerDensity, "mutation", {"fraction": 0.05}, {"fraction": _FRACTION}),
    Operator(
        "mutMaskGrow",
        mutMaskGrow,
        "mutation",
        {"fraction": 0.2, "grow": "gradient", "high": 1.0},
        {"fraction": _FRACTION, "grow": _GROW, "high": _HIGH},
        needs=lambda kw: needs_traits(kw, grows=True, prunes=False),
    ),
    Operator(
        "mutMaskPrune",
        mutMaskPrune,
        "mutation",
        {"fraction": 0.2, "by": "magnitude", "low": 0.0},
        {"fraction": _FRACTION, "by": _BY, "low": _LOW},
        needs=lambda kw: needs_traits(kw, grows=False, prunes=True),
    ),
    Operator(
        "mutMaskResize",
        mutMaskResize,
        "mutation",
        {"fraction": 0.2, "grow": "gradient", "by": "magnitude", "low": 0.0, "high": 1.0},
        {"fraction": _FRACTION, "grow": _GROW, "by": _BY, "low": _LOW, "high": _HIGH},
        needs=lambda kw: needs_traits(kw, grows=True, prunes=True),
    ),
    Operator(
        "mutInitGaussian",
        mutInitGaussian,
        "mutation",
        {"indpb": 0.05, "sigma": 0.5},
        {"indpb": _INDPB, "sigma": _number(lambda v: v > 0, "must be > 0")},
        density_preserving=True,
    ),
    Operator("mutInitReseed", mutInitReseed, "mutation", {"indpb": 0.02}, {"indpb": _INDPB}, density_preserving=True),
    Operator("mutSignFlip", mutSignFlip, "mutation", {"indpb": 0.02}, {"indpb": _INDPB}, density_preserving=True),
    Operator(
        "mutGenesPerturb",
        mutGenesPerturb,
        "mutation",
        {"factor": 1.25, "indpb": 1.0},
        {"factor": _number(lambda v: v > 1, "must be > 1"), "indpb": _INDPB},
        density_preserving=True,
    ),
    Operator(
        "mutWindowShift",
        mutWindowShift,
        "mutation",
        {"indpb": 0.05, "max_shift": 2, "layers": "first"},
        {"indpb": _INDPB, "max_shift": _COUNT, "layers": _LAYERS},
        density_preserving=True,
    ),
    Operator(
        "mutWindowGrow",
        mutWindowGrow,
        "mutation",
        {"indpb": 0.1, "n": 2, "layers": "first"},
        {"indpb": _INDPB, "n": _COUNT, "layers": _LAYERS},
        density_preserving=True,
    ),
    Operator(
        "mutPatternCopy",
        mutPatternCopy,
        "mutation",
        {"indpb": 0.05, "max_shift": 1, "layers": "first"},
        {"indpb": _INDPB, "max_shift": _COUNT, "layers": _LAYERS},
        density_preserving=True,
    ),
    Operator("cxMaskUniform", cxMaskUniform, "crossover", density_preserving=True),
    # cxLayerSwap keeps the pair's counts, but a child's own only when the parents share their densities
    Operator("cxLayerSwap", cxLayerSwap, "crossover", {"indpb": 0.5}, {"indpb": _INDPB}),
    Operator(
        "cxInitBlend",
        cxInitBlend,
        "crossover",
        {"alpha": 0.5},
        {"alpha": _number(lambda v: v >= 0, "must be >= 0")},
        density_preserving=True,
    ),
):
    register_operator(_op)

SURVIVORS.update(
    {
        "selElitistTournament": SurvivorScheme("selElitistTournament", selElitistTournament, tools.selTournament),
        "selNSGA2": SurvivorScheme("selNSGA2", selNSGA2, selCrowdedTournament, multi_objective=True),
    }
)

__all__ = [
    "CROSSOVERS",
    "GENES",
    "GROWTH",
    "INITS",
    "KINDS",
    "LAYERS",
    "MUTATIONS",
    "OPERATORS",
    "PLACEMENTS",
    "PRUNING",
    "SURVIVORS",
    "Operator",
    "SurvivorScheme",
    "cxInitBlend",
    "cxLayerSwap",
    "cxMaskUniform",
    "draw_genes",
    "initTicket",
    "kept_count",
    "mutGenesPerturb",
    "mutInTurn",
    "mutInitGaussian",
    "mutInitReseed",
    "mutLayerDensity",
    "mutMagnitudeSwap",
    "mutMaskFlip",
    "mutMaskGrow",
    "mutMaskPrune",
    "mutMaskResize",
    "mutMaskSwap",
    "mutPatternCopy",
    "mutSignFlip",
    "mutWindowGrow",
    "mutWindowShift",
    "register_operator",
    "selCrowdedTournament",
    "selElitistTournament",
    "selNSGA2",
    "traits_needed",
]
