"""The one batched training engine of every method, and its compute meter.

:func:`train` runs P stacked networks through one loop with step callbacks
(:mod:`.callbacks`) and a trainable scope (:mod:`.scopes`); :mod:`.meter` counts what it spends;
:mod:`.memory` sizes population chunks; :mod:`.optimizer` holds :class:`MaskedOptimizer`.
"""

from __future__ import annotations

from evoticket.training.batches import STAGE_BYTES, minibatch_indices, minibatches
from evoticket.training.callbacks import EARLY_STOPPING, Callback, EarlyStopping, Evaluate, MaskUpdate, SaveWeights
from evoticket.training.engine import (
    AutogradGradient,
    BatchResult,
    ScoreGradient,
    TrainResult,
    TrainState,
    dense_gradient,
    effective_params,
    finetune_stacked,
    finetune_tickets,
    topk_masks,
    train,
    train_early_stopping,
    train_flops_per_example,
    train_steps,
)
from evoticket.training.evaluate import EVAL_BATCH, evaluate_params, evaluate_ticket, nonfinite
from evoticket.training.memory import POPULATION_BLOCK, bytes_per_individual, chunk_size, population_chunk
from evoticket.training.meter import SPENT_KEYS, Meter, backward_flops, forward_flops, kept_counts, output_positions
from evoticket.training.optimizer import MaskedOptimizer, make_optimizer
from evoticket.training.scopes import SCOPES, Scope, get_scope

__all__ = [
    "EARLY_STOPPING",
    "EVAL_BATCH",
    "POPULATION_BLOCK",
    "SCOPES",
    "SPENT_KEYS",
    "STAGE_BYTES",
    "AutogradGradient",
    "BatchResult",
    "Callback",
    "EarlyStopping",
    "Evaluate",
    "MaskUpdate",
    "MaskedOptimizer",
    "Meter",
    "SaveWeights",
    "Scope",
    "ScoreGradient",
    "TrainResult",
    "TrainState",
    "backward_flops",
    "bytes_per_individual",
    "chunk_size",
    "dense_gradient",
    "effective_params",
    "evaluate_params",
    "evaluate_ticket",
    "finetune_stacked",
    "finetune_tickets",
    "forward_flops",
    "get_scope",
    "kept_counts",
    "make_optimizer",
    "minibatch_indices",
    "minibatches",
    "nonfinite",
    "output_positions",
    "population_chunk",
    "topk_masks",
    "train",
    "train_early_stopping",
    "train_flops_per_example",
    "train_steps",
]
