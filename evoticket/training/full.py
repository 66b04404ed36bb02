"""Full training: P stacked networks trained to the end, test accuracy read at the early-stopping step.

:func:`train_early_stopping` is the training of the final comparison (the reported ticket next to the
lottery-ticket controls) and of a multi-objective search's front: the loop of
:func:`evoticket.training.loop.train` with an :class:`evoticket.training.callbacks.EarlyStopping`
callback, which chooses the step on the validation split only (Frankle & Carbin 2019, arXiv:1803.03635).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from evoticket.config import OptimizerConfig
from evoticket.data import Splits
from evoticket.models import Architecture
from evoticket.training.callbacks import Callback, EarlyStopping
from evoticket.training.evaluate import nonfinite
from evoticket.training.loop import train
from evoticket.training.optimizer import OptimizerState
from evoticket.training.results import BatchResult
from evoticket.training.scopes import Scope


def train_early_stopping(
    arch: Architecture,
    theta0: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor],
    splits: Splits,
    cfg: OptimizerConfig,
    batches: torch.Tensor,
    eval_every: int,
    criterion: str = "val_acc",
    *,
    scope: str | Scope = "kept",
    callbacks: Sequence[Callback] = (),
    keep_weights: bool = False,
    lr: torch.Tensor | None = None,
    optimizer_state: OptimizerState | None = None,
) -> BatchResult:
    """Train P stacked networks fully and report test accuracy at the early-stopping step.

    See :class:`evoticket.training.callbacks.EarlyStopping` for how the step is chosen (on the
    validation split only).

    Args:
        arch, theta0, masks, splits, cfg, batches, scope: as for :func:`evoticket.training.train`.
        eval_every: steps between validation checks, >= 1.
        criterion: one of :data:`evoticket.training.callbacks.EARLY_STOPPING`.
        callbacks: more step callbacks, run after the early-stopping check.
        keep_weights: return the weights (and BatchNorm buffers) at the early-stopping step.
        lr: ``(P,)`` each network's learning rate, overriding ``cfg.lr`` (as for :func:`evoticket.training.train`).
        optimizer_state: the optimizer state to continue (as for :func:`evoticket.training.train`).

    Returns:
        A :class:`BatchResult` whose ``val_acc``, ``val_loss``, ``test_acc`` and ``best_step`` are those of the
        early-stopping step, ``val_acc_before`` and ``val_loss_before`` those of step 0, ``final_test_acc`` that
        of the last step.

    Raises:
        ValueError: for an unknown ``criterion``.
    """
    stopping = EarlyStopping(eval_every, criterion, keep_weights=keep_weights)
    state = train(
        arch,
        theta0,
        masks,
        splits,
        cfg,
        batches,
        scope=scope,
        callbacks=[stopping, *callbacks],
        lr=lr,
        optimizer_state=optimizer_state,
    )
    best = stopping.best
    bad = state.bad | nonfinite(state.params, stopping.last_val_loss)
    return BatchResult(
        val_acc_before=stopping.first[0].cpu(),
        val_loss_before=stopping.first[1].cpu(),
        val_acc=best["acc"].cpu(),
        val_loss=best["loss"].cpu(),
        nonfinite=bad.cpu(),
        meter=state.meter,
        weights={k: v.cpu() for k, v in stopping.best_weights.items()} if keep_weights else None,
        best_step=best["step"].cpu(),
        test_acc=best["test"].cpu(),
        final_test_acc=stopping.last_test_acc.cpu(),
    )


__all__ = ["train_early_stopping"]
