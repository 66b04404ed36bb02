"""Evolution: the DEAP toolbox, the (mu + lambda) loop, population evaluation, the pure evaluator and its backends.

:mod:`.toolbox` builds the toolbox (batched ``map``); :mod:`.loop` runs generations (variation, or
the toolbox's own ``offspring``; survival, the end of each generation through :func:`evoticket.records.report_generation`);
:mod:`.population` evaluates a generation and owns what evaluation does to individuals (uids, records,
Lamarckian write-back, successive halving, the fitness cache); :mod:`.evaluator` returns results only;
:mod:`.backends` decides where they are computed.
"""

from __future__ import annotations

from evoticket.evolution.backends import BACKENDS, Backend, LocalBackend, make_backend
from evoticket.evolution.evaluator import Evaluator, minibatch_key
from evoticket.evolution.loop import EvolutionState, draw_fresh, evaluate_invalid, evolve, vary
from evoticket.evolution.population import PopulationEvaluator, apply_results, batched_map
from evoticket.evolution.toolbox import (
    check_operators,
    check_toolbox,
    learned_needed,
    make_toolbox,
    memory_needs,
    operator_kwargs,
)

__all__ = [
    "BACKENDS",
    "Backend",
    "Evaluator",
    "EvolutionState",
    "LocalBackend",
    "PopulationEvaluator",
    "apply_results",
    "batched_map",
    "check_operators",
    "check_toolbox",
    "draw_fresh",
    "evaluate_invalid",
    "evolve",
    "learned_needed",
    "make_backend",
    "make_toolbox",
    "memory_needs",
    "minibatch_key",
    "operator_kwargs",
    "vary",
]
