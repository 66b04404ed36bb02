"""The one batched training engine of every method, and its compute meter.

Cut by concept:

* :mod:`.state`: :class:`TrainState`, what the loop and its callbacks share, and how a stretch of steps runs;
* :mod:`.loop`: :func:`train`, the one loop;
* :mod:`.callbacks`: step callbacks (evaluate, early stopping, save weights, mask updates);
* :mod:`.gradients`: autograd's gradient and edge-popup's straight-through scores;
* :mod:`.population`: the GA's fine-tuning of a population in memory-sized blocks (:func:`finetune_tickets`);
* :mod:`.full`: full training with early stopping (:func:`train_early_stopping`);
* :mod:`.results`: one result type per batch (:class:`BatchResult`) and one per ticket (:class:`TicketResult`);
* :mod:`.scopes` (what trains), :mod:`.optimizer` (:class:`MaskedOptimizer`), :mod:`.meter` (what it costs),
  :mod:`.memory` (how many fit), :mod:`.batches` (the minibatch sequence), :mod:`.evaluate` (accuracy and loss).
"""

from __future__ import annotations

from evoticket.training.batches import STAGE_BYTES, augmentation_seeds, minibatch_indices, minibatches
from evoticket.training.callbacks import EARLY_STOPPING, Callback, EarlyStopping, Evaluate, MaskUpdate, SaveWeights
from evoticket.training.evaluate import EVAL_BATCH, evaluate_params, evaluate_ticket, nonfinite
from evoticket.training.full import train_early_stopping
from evoticket.training.gradients import AutogradGradient, ScoreGradient, topk_masks
from evoticket.training.loop import train
from evoticket.training.memory import POPULATION_BLOCK, bytes_per_individual, chunk_size, population_chunk
from evoticket.training.meter import (
    Meter,
    backward_flops,
    forward_flops,
    kept_counts,
    output_positions,
    train_flops_per_example,
)
from evoticket.training.optimizer import MaskedOptimizer, OptimizerState, make_optimizer
from evoticket.training.population import (
    finetune_stacked,
    finetune_tickets,
    gene_values,
    learned_traits,
    population_block,
)
from evoticket.training.results import BatchResult, TicketResult
from evoticket.training.scopes import SCOPES, Scope, get_scope
from evoticket.training.state import TrainState, effective_params

__all__ = [
    "EARLY_STOPPING",
    "EVAL_BATCH",
    "POPULATION_BLOCK",
    "SCOPES",
    "STAGE_BYTES",
    "AutogradGradient",
    "BatchResult",
    "Callback",
    "EarlyStopping",
    "Evaluate",
    "MaskUpdate",
    "MaskedOptimizer",
    "Meter",
    "OptimizerState",
    "SaveWeights",
    "Scope",
    "ScoreGradient",
    "TicketResult",
    "TrainState",
    "augmentation_seeds",
    "backward_flops",
    "bytes_per_individual",
    "chunk_size",
    "effective_params",
    "evaluate_params",
    "evaluate_ticket",
    "finetune_stacked",
    "finetune_tickets",
    "forward_flops",
    "gene_values",
    "get_scope",
    "kept_counts",
    "learned_traits",
    "make_optimizer",
    "minibatch_indices",
    "minibatches",
    "nonfinite",
    "output_positions",
    "population_block",
    "population_chunk",
    "topk_masks",
    "train",
    "train_early_stopping",
    "train_flops_per_example",
]
