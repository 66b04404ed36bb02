"""The one batched training loop of every method.

:func:`train` runs P stacked networks (:class:`evoticket.training.state.TrainState`) for
``len(batches)`` steps. It takes

* a **trainable scope** (:mod:`evoticket.training.scopes`): kept weights, biases, BatchNorm
  affine parameters, the output layer, or edge-popup's per-weight scores;
* **step callbacks** (:mod:`evoticket.training.callbacks`): evaluate every k steps, save the
  weights at step k, early stopping, mask updates;

and meters what it spends (:mod:`evoticket.training.meter`). The loop itself is closed, as OpenLTH's:
the GA's fine-tuning (:mod:`evoticket.training.population`), full training with early stopping
(:mod:`evoticket.training.full`), IMP's rounds and the one-run methods are this loop with other callbacks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from evoticket.config import OptimizerConfig
from evoticket.data import Splits
from evoticket.models import Architecture
from evoticket.training.callbacks import Callback
from evoticket.training.gradients import topk_masks
from evoticket.training.meter import Meter, kept_counts
from evoticket.training.optimizer import OptimizerState
from evoticket.training.scopes import Scope, get_scope
from evoticket.training.state import TrainState, effective_params


def train(
    arch: Architecture,
    theta0: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor],
    splits: Splits,
    cfg: OptimizerConfig,
    batches: torch.Tensor,
    *,
    scope: str | Scope = "kept",
    callbacks: Sequence[Callback] = (),
    scores: dict[str, torch.Tensor] | None = None,
    lr: torch.Tensor | None = None,
    optimizer_state: OptimizerState | None = None,
) -> TrainState:
    """Train P stacked networks for ``len(batches)`` steps, calling the callbacks when due.

    Args:
        arch: the architecture of every network.
        theta0: parameter name -> ``(P, *shape)`` start weights, on the device.
        masks: weight name -> ``(P, *shape)`` bool masks, on the device. With the ``scores``
            scope they give only each layer's kept count.
        splits: the data, on the device.
        cfg: the optimizer's settings (``[optimizer]``: optimizer, learning rate, momentum, weight decay;
            the batch size is the width of ``batches``).
        batches: ``(steps, B)`` int64 indices into the training split.
        scope: the trainable scope (a name of :data:`evoticket.training.scopes.SCOPES`).
        callbacks: step callbacks, run in order at each due step.
        scores: edge-popup's initial scores, weight name -> ``(P, *shape)`` (scope ``scores``).
        lr: ``(P,)`` each network's learning rate (> 0), overriding ``cfg.lr``
            (:class:`evoticket.training.optimizer.MaskedOptimizer`); not with the ``scores`` scope.
        optimizer_state: the optimizer state to continue (:class:`evoticket.training.OptimizerState`: each
            network's momentum or Adam moments and step count from an earlier training); ``None``: a fresh optimizer.

    Returns:
        The final :class:`TrainState` (weights, masks, meter, non-finite flags).

    Raises:
        ConfigError: for an unknown scope, or one that trains nothing in ``arch``.
        ValueError: for the ``scores`` scope without scores, or with per-network learning rates or a carried
            optimizer state.
    """
    scope = get_scope(scope, arch)
    p = next(iter(theta0.values())).shape[0]
    device = splits.device
    if scope.scores:
        if scores is None:
            raise ValueError("the 'scores' scope needs initial scores")
        if lr is not None:
            raise ValueError("the 'scores' scope has no per-network learning rates")
        if optimizer_state is not None:
            raise ValueError("the 'scores' scope carries no optimizer state")
        scores = {k: v.detach().clone().to(device) for k, v in scores.items()}
        masks = topk_masks(scores, kept_counts(arch, masks))
    state = TrainState(
        arch=arch,
        splits=splits,
        cfg=cfg,
        theta0=theta0,
        params=effective_params(theta0, masks),
        masks=dict(masks),
        buffers=arch.init_buffers(p, device),
        scope=scope,
        bad=torch.zeros(p, dtype=torch.bool, device=device),
        meter=Meter.zeros(p),
        total=len(batches),
        scores=scores,
        batches=batches,
        lr=None if lr is None else lr.to(device),
        carried=optimizer_state,
    )
    for cb in callbacks:
        if cb.due(0, state.total):
            cb(state)
    while state.step < state.total and not state.stop:
        nxt = min([cb.next_due(state.step, state.total) for cb in callbacks] + [state.total])
        state.run_steps(batches[state.step : nxt])
        state.step = nxt
        for cb in callbacks:
            if cb.due(state.step, state.total):
                cb(state)
    return state


__all__ = ["train"]
