"""The pure evaluator: fitness of tickets after a short batched fine-tuning, and nothing else.

:meth:`Evaluator.evaluate` fine-tunes a list of tickets together and returns one
:class:`EvalResult` per ticket: fitness, the record fields it measured (accuracies, losses,
flags, compute) and, when asked, the fine-tuned weights. It changes nothing: uids, Lamarckian
write-back and records are the loop's business (:func:`evoticket.evolution.loop.apply_results`),
so an evaluator can run anywhere, a remote worker included.

Lamarckian and Baldwinian evolution: Hinton & Nowlan 1987; Castillo et al. 2006,
arXiv:cs/0603004. Supermask search (``finetune.steps = 0``): Zhou et al. 2019, arXiv:1905.01067.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from evoticket.config import FinetuneConfig
from evoticket.core.seeds import derive_seed
from evoticket.data import Splits
from evoticket.genome import Ticket
from evoticket.models import Architecture
from evoticket.training import finetune_tickets

WORST_FITNESS = (0.0, float("inf"))
"""Fitness of an individual whose fine-tuning diverged (accuracy 0, infinite loss)."""


@dataclass
class EvalResult:
    """What evaluating one ticket measured.

    Attributes:
        fitness: ``(val_acc, val_loss)`` after fine-tuning, or :data:`WORST_FITNESS` when it diverged.
        fields: record fields: ``val_acc_before``, ``val_loss_before``, ``val_acc``, ``val_loss``
            (accuracies in [0, 1], losses in nats, ``None`` where non-finite), ``flags``, and the
            compute ``train_steps`` (optimizer steps), ``train_flops`` and ``eval_flops`` (FLOPs;
            see :mod:`evoticket.training.meter`).
        weights: parameter name -> fine-tuned effective weights of this ticket (CPU), when asked.
        nonfinite: True when a loss or weight became NaN/inf.
        learned: what the fine-tuning learned (:data:`evoticket.genome.Learned`), when asked.
        rewound: the weights at step ``finetune.inherit_step``, when asked and that step is set.
    """

    fitness: tuple[float, ...]
    fields: dict[str, Any]
    weights: dict[str, torch.Tensor] | None = None
    nonfinite: bool = False
    learned: dict | None = None
    rewound: dict[str, torch.Tensor] | None = None

    @property
    def inherited(self) -> dict[str, torch.Tensor] | None:
        """The weights a Lamarckian genome inherits: those of ``finetune.inherit_step``, else the final ones."""
        return self.rewound if self.rewound is not None else self.weights


@dataclass
class BatchEvaluation:
    """One batch's results, in the order of the tickets, with where the time went.

    Attributes:
        results: one :class:`EvalResult` per ticket.
        train_seconds: wall time of the optimizer steps (s).
        eval_seconds: wall time of the validation passes (s).
    """

    results: list[EvalResult] = field(default_factory=list)
    train_seconds: float = 0.0
    eval_seconds: float = 0.0


def _finite(x: torch.Tensor) -> float | None:
    value = float(x)
    return value if math.isfinite(value) else None


def minibatch_key(cfg: FinetuneConfig, generation: int) -> int:
    """Which minibatch sequence a generation's fine-tuning uses: the generation, or 0 with
    ``finetune.minibatches = "fixed"`` (one sequence for the whole run)."""
    return 0 if cfg.minibatches == "fixed" else generation


class Evaluator:
    """Fitness of tickets: validation accuracy after a short batched fine-tuning (pure).

    Every ticket of a call is fine-tuned on one minibatch sequence drawn from
    :meth:`minibatch_seed` (``derive_seed(seed, "finetune", generation)`` for rung 0; generation 0's
    for every generation with ``finetune.minibatches = "fixed"``).

    Args:
        arch: the architecture of every ticket.
        splits: the data, on the device where fine-tuning runs.
        cfg: fine-tuning settings.
        seed: ``campaign.seed``.
    """

    def __init__(self, arch: Architecture, splits: Splits, cfg: FinetuneConfig, seed: int) -> None:
        self.arch = arch
        self.splits = splits
        self.cfg = cfg
        self.seed = seed

    def minibatch_seed(self, generation: int, rung: int = 0) -> int:
        """Seed of the minibatch sequence of ``generation``'s fine-tuning at successive-halving ``rung``."""
        key = minibatch_key(self.cfg, generation)
        if rung == 0:
            return derive_seed(self.seed, "finetune", key)
        return derive_seed(self.seed, "finetune", key, "rung", rung)

    def evaluate(
        self,
        tickets: Sequence[Ticket],
        generation: int,
        *,
        return_weights: bool = False,
        learned: str = "none",
        steps: int | None = None,
        rung: int = 0,
    ) -> BatchEvaluation:
        """Fine-tune and evaluate tickets together, without changing them.

        Args:
            tickets: the tickets (CPU tensors), of ``arch``.
            generation: selects the minibatch sequence.
            return_weights: also return each ticket's fine-tuned weights (and, at rung 0 with
                ``finetune.inherit_step`` set, those of that step).
            learned: what else to return: ``"none"``, ``"magnitudes"`` or ``"gradients"``
                (:mod:`evoticket.genome.learned`).
            steps: fine-tuning steps; default ``finetune.steps``.
            rung: the successive-halving rung (selects the minibatch sequence).

        Returns:
            A :class:`BatchEvaluation` with one result per ticket, in order.
        """
        tickets = list(tickets)
        if not tickets:
            return BatchEvaluation()
        result = finetune_tickets(
            tickets,
            self.arch,
            self.splits,
            self.cfg,
            self.minibatch_seed(generation, rung),
            steps=steps,
            return_weights=return_weights,
            learned=learned,
            inherit_step=self.cfg.inherit_step if rung == 0 else 0,
        )
        meter = result.meter
        out = []
        for i in range(len(tickets)):
            bad = bool(result.nonfinite[i])
            fields = {
                "val_acc_before": _finite(result.val_acc_before[i]),
                "val_loss_before": _finite(result.val_loss_before[i]),
                "val_acc": 0.0 if bad else float(result.val_acc[i]),
                "val_loss": None if bad else float(result.val_loss[i]),
                "flags": ["nonfinite"] if bad else [],
                "train_steps": int(meter.train_steps[i]),
                "train_flops": int(meter.train_flops[i]),
                "eval_flops": int(meter.eval_flops[i]),
            }
            fitness = WORST_FITNESS if bad else (float(result.val_acc[i]), float(result.val_loss[i]))
            weights = {k: w[i] for k, w in result.weights.items()} if result.weights is not None else None
            rewound = {k: w[i] for k, w in result.rewound.items()} if result.rewound is not None else None
            traits = result.learned[i] if result.learned is not None else None
            out.append(EvalResult(fitness, fields, weights, bad, traits, rewound))
        return BatchEvaluation(out, result.train_seconds, result.eval_seconds)
