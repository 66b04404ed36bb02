"""Evolution: the DEAP toolbox, the (mu + lambda) loop, the pure evaluator and its backends.

:mod:`.toolbox` builds the toolbox (batched ``map``); :mod:`.loop` runs generations and owns
what evaluation does to individuals (uids, records, Lamarckian write-back); :mod:`.evaluator`
returns results only; :mod:`.backends` decides where they are computed.
"""

from __future__ import annotations

from evoticket.evolution.backends import BACKENDS, Backend, LocalBackend, make_backend
from evoticket.evolution.evaluator import WORST_FITNESS, BatchEvaluation, EvalResult, Evaluator
from evoticket.evolution.loop import (
    SPENT_KEYS,
    EvolutionState,
    GenerationRecord,
    Hook,
    PopulationEvaluator,
    apply_results,
    batched_map,
    evaluate_invalid,
    evolve,
    make_statistics,
    vary,
)
from evoticket.evolution.toolbox import learned_needed, make_toolbox, operator_kwargs

__all__ = [
    "BACKENDS",
    "SPENT_KEYS",
    "WORST_FITNESS",
    "Backend",
    "BatchEvaluation",
    "EvalResult",
    "Evaluator",
    "EvolutionState",
    "GenerationRecord",
    "Hook",
    "LocalBackend",
    "PopulationEvaluator",
    "apply_results",
    "batched_map",
    "evaluate_invalid",
    "evolve",
    "learned_needed",
    "make_backend",
    "make_statistics",
    "make_toolbox",
    "operator_kwargs",
    "vary",
]
