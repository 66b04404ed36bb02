"""What a batched training measured: one type per batch (:class:`BatchResult`), one per ticket (:class:`TicketResult`).

The GA's short fine-tuning (:func:`evoticket.training.finetune_tickets`) and full training with early
stopping (:func:`evoticket.training.train_early_stopping`) both return a :class:`BatchResult` of P
networks; :meth:`BatchResult.tickets` cuts it into one :class:`TicketResult` per network (fitness and
the record fields of :func:`evoticket.records.evaluation_fields`), which is what the evolution loop and
its backends hand around.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from evoticket.records import evaluation_fields, fitness_of
from evoticket.training.meter import Meter
from evoticket.training.optimizer import OptimizerState


@dataclass
class TicketResult:
    """What training one ticket measured.

    Attributes:
        fitness: ``(val_acc, val_loss)`` after training, or :data:`evoticket.records.WORST_FITNESS` when it diverged.
        fields: record fields (:func:`evoticket.records.evaluation_fields`): ``val_acc_before``,
            ``val_loss_before``, ``val_acc``, ``val_loss`` (accuracies in [0, 1], losses in nats, ``None``
            where non-finite), ``flags``, and the compute ``train_steps`` (optimizer steps), ``train_flops``
            and ``eval_flops`` (FLOPs; :mod:`evoticket.training.meter`); the evolution loop adds ``rung``.
        weights: parameter name -> trained effective weights of this ticket (CPU), when asked.
        nonfinite: True when a loss or weight became NaN/inf.
        learned: what the training learned (:data:`evoticket.genome.Learned`), when asked.
        rewound: the weights at step ``finetune.inherit_step``, when asked and that step is set.
        masks: weight name -> the bool mask training ended with, when masks changed during training
            (dynamic sparse fine-tuning); ``None`` otherwise.
        optimizer_state: the optimizer state reached (``{"step": int, state name: {parameter name: tensor}}``,
            :meth:`evoticket.training.OptimizerState.network`), when asked (``finetune.optimizer_state = "inherit"``).
    """

    fitness: tuple[float, ...]
    fields: dict[str, Any]
    weights: dict[str, torch.Tensor] | None = None
    nonfinite: bool = False
    learned: dict | None = None
    rewound: dict[str, torch.Tensor] | None = None
    masks: dict[str, torch.Tensor] | None = None
    optimizer_state: dict[str, Any] | None = None

    @property
    def inherited(self) -> dict[str, torch.Tensor] | None:
        """The weights a Lamarckian genome inherits: those of ``finetune.inherit_step``, else the final ones."""
        return self.rewound if self.rewound is not None else self.weights


@dataclass
class BatchResult:
    """What one batched training of P networks measured; every tensor ``(P,)`` (or ``(P, *shape)``) on the CPU.

    Attributes:
        val_acc_before: validation accuracy at step 0 (``theta0 * mask``), in [0, 1].
        val_loss_before: validation loss at step 0 (nats).
        val_acc: validation accuracy after training (fine-tuning) or at the early-stopping step (full
            training), in [0, 1].
        val_loss: validation loss there (nats).
        nonfinite: bool, True where a loss or weight became NaN/inf.
        meter: the compute spent per network (optimizer steps, training and evaluation FLOPs).
        weights: parameter name -> ``(P, *shape)`` trained effective weights (full training: at the
            early-stopping step, BatchNorm buffers included), when requested; else ``None``.
        rewound: the weights at step ``inherit_step`` (late rewinding as inheritance), when requested.
        learned: one :data:`evoticket.genome.Learned` per network (fine-tuned magnitudes, dense-gradient growth
            candidates), when requested; else ``None``.
        masks: weight name -> ``(P, *shape)`` bool masks at the end of training, when they changed during it
            (dynamic sparse fine-tuning, :class:`evoticket.training.dynamic.DynamicSparse`); else ``None``.
        optimizer_state: the optimizer state reached (:class:`evoticket.training.OptimizerState`, on the CPU), when
            requested; else ``None``.
        best_step: full training: the early-stopping step (optimizer steps; int64); else ``None``.
        test_acc: full training: test accuracy at ``best_step``, in [0, 1]; else ``None``.
        final_test_acc: full training: test accuracy after the last step, in [0, 1]; else ``None``.
        train_seconds: wall time of the optimizer steps (forward, backward, update), in seconds; CUDA work is
            synchronised before reading the clock.
        eval_seconds: wall time of the validation passes before and after training, in seconds.
    """

    val_acc_before: torch.Tensor
    val_loss_before: torch.Tensor
    val_acc: torch.Tensor
    val_loss: torch.Tensor
    nonfinite: torch.Tensor
    meter: Meter | None = None
    weights: dict[str, torch.Tensor] | None = None
    rewound: dict[str, torch.Tensor] | None = None
    learned: list | None = None
    masks: dict[str, torch.Tensor] | None = None
    optimizer_state: OptimizerState | None = None
    best_step: torch.Tensor | None = None
    test_acc: torch.Tensor | None = None
    final_test_acc: torch.Tensor | None = None
    train_seconds: float = 0.0
    eval_seconds: float = 0.0

    def __len__(self) -> int:
        """P, the number of networks."""
        return int(self.val_acc.shape[0])

    @staticmethod
    def concat(parts: Sequence[BatchResult]) -> BatchResult:
        """Join the results of consecutive population blocks along the population axis; times are summed.

        Raises:
            ValueError: for no parts.
        """
        if not parts:
            raise ValueError("BatchResult.concat: no parts")

        def cat(name: str) -> Any:
            values = [getattr(p, name) for p in parts]
            if any(v is None for v in values):
                return None
            if isinstance(values[0], dict):
                return {k: torch.cat([v[k] for v in values]) for k in values[0]}
            return torch.cat(values)

        meter = Meter.concat([p.meter for p in parts]) if all(p.meter is not None for p in parts) else None
        learned = [x for p in parts for x in p.learned] if all(p.learned is not None for p in parts) else None
        states = [p.optimizer_state for p in parts]
        optimizer_state = OptimizerState.concat(states) if all(s is not None for s in states) else None
        return BatchResult(
            **{
                name: cat(name)
                for name in (
                    "val_acc_before",
                    "val_loss_before",
                    "val_acc",
                    "val_loss",
                    "nonfinite",
                    "weights",
                    "rewound",
                    "masks",
                    "best_step",
                    "test_acc",
                    "final_test_acc",
                )
            },
            meter=meter,
            learned=learned,
            optimizer_state=optimizer_state,
            train_seconds=sum(p.train_seconds for p in parts),
            eval_seconds=sum(p.eval_seconds for p in parts),
        )

    def ticket(self, i: int) -> TicketResult:
        """Network ``i``'s result: its fitness and record fields (the diverged convention of
        :func:`evoticket.records.evaluation_fields`), with its weights, rewound weights and learned traits when held."""
        bad = bool(self.nonfinite[i])
        spent = {k: int(getattr(self.meter, k)[i]) for k in ("train_steps", "train_flops", "eval_flops")}
        fields = evaluation_fields(
            self.val_acc_before[i], self.val_loss_before[i], self.val_acc[i], self.val_loss[i], bad, spent
        )
        return TicketResult(
            fitness_of(self.val_acc[i], self.val_loss[i], bad),
            fields,
            {k: w[i] for k, w in self.weights.items()} if self.weights is not None else None,
            bad,
            self.learned[i] if self.learned is not None else None,
            {k: w[i] for k, w in self.rewound.items()} if self.rewound is not None else None,
            {k: m[i] for k, m in self.masks.items()} if self.masks is not None else None,
            self.optimizer_state.network(i) if self.optimizer_state is not None else None,
        )

    def tickets(self) -> list[TicketResult]:
        """One :class:`TicketResult` per network, in order."""
        return [self.ticket(i) for i in range(len(self))]


__all__ = ["BatchResult", "TicketResult"]
