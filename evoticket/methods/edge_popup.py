"""``edge_popup``: frozen weights, learnt scores, each layer's top-k by |score|.

No weight moves: a score per weight is learnt with a straight-through gradient and each layer keeps its
top-k weights by |score| (the trainable scope ``scores`` of :mod:`evoticket.training.scopes`). Its own
result is the accuracy with frozen weights; a random mask of the same per-layer densities on the same
frozen weights is evaluated next to it. ``model.init = "signed_constant"`` gives the paper's
signed-constant weights.

Source: Ramanujan et al. 2020, arXiv:1911.13299.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import torch

from evoticket.core.seeds import derive_seed
from evoticket.genome import Ticket, random_masks_like
from evoticket.methods.onerun import OneRun, OneRunMethod
from evoticket.training import EarlyStopping, TrainState, evaluate_ticket


class EdgePopup(OneRunMethod):
    """``edge_popup``: frozen weights, learnt scores, each layer's top-k by |score| (Ramanujan et al. 2020)."""

    name = "edge_popup"
    control_words: ClassVar[dict[str, str]] = {"random_frozen": "a random mask on the same frozen weights"}
    scope = "scores"
    sections = ("train", "edge_popup")
    citation = "Ramanujan et al. 2020, arXiv:1911.13299"

    def optimizer(self, config: Any) -> Any:
        """``[optimizer]`` with ``edge_popup.lr`` where set."""
        lr = config.edge_popup.lr
        return dataclasses.replace(config.optimizer, lr=lr) if lr > 0 else config.optimizer

    def subtitle(self, config: Any) -> str:
        """E.g. "edge-popup (frozen kaiming_normal weights), 1500 steps"."""
        return f"edge-popup (frozen {config.model.init} weights), {config.train.steps} steps"

    def scores(self, run: OneRun, theta0: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``edge_popup.score_init``: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (hidden-networks' kaiming_uniform with a = sqrt(5)), or |theta0|."""
        c = run.config
        out = {}
        gen = torch.Generator().manual_seed(derive_seed(c.campaign.seed, "edge-popup-scores"))
        for spec in run.arch.layers:
            w = theta0[spec.weight]
            if c.edge_popup.score_init == "weights":
                out[spec.weight] = w.abs().clone()
                continue
            bound = 1.0 / math.sqrt(math.prod(spec.weight_shape[1:]))
            u = torch.rand(w.shape, generator=gen, dtype=torch.float32) * 2 - 1
            out[spec.weight] = (u * bound).to(w.device, w.dtype)
        return out

    def companion_results(self, run: OneRun, state: TrainState, stopping: EarlyStopping) -> dict[str, Any]:
        """``random_frozen``: a random mask of the same per-layer densities on the same frozen weights
        (untrained); ``start``: the first top-k mask, before any score update."""
        c = run.config
        gen = torch.Generator().manual_seed(derive_seed(c.campaign.seed, "edge-popup-control"))
        masks = random_masks_like(run.start.masks, gen)
        control = Ticket(run.start.theta0, masks, run.start.init_scheme, run.start.init_std)
        val_acc, test_acc = evaluate_ticket(run.arch, control, run.resolved.splits)
        return {
            "random_frozen": {"test_acc": test_acc, "val_acc": val_acc},
            "start": {"val_acc": float(stopping.first[0][0])},
        }


__all__ = ["EdgePopup"]
