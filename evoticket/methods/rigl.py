"""``rigl``: sparse from the first step, drop and grow every ``rigl.delta_t`` steps (RigL, or SET).

A random mask at the target densities trains; every ``rigl.delta_t`` steps until T_end it drops the
smallest-magnitude kept weights of each layer and grows as many where the dense gradient is largest
(``rigl.grow = "random"``: at random, SET), with a cosine-decayed update fraction. A static copy of its
start mask trains next to it in the same batch, as the run's own control.

Sources: Evci et al. 2020, arXiv:1911.11134 (RigL); Mocanu et al. 2018, arXiv:1707.04780 (SET).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from evoticket.core.seeds import derive_seed
from evoticket.genome import Ticket, keep_largest
from evoticket.methods.onerun import OneRun, OneRunMethod
from evoticket.models import Architecture
from evoticket.resolve import Resolved
from evoticket.training import Callback, EarlyStopping, MaskUpdate, TrainState, backward_flops, forward_flops


def rigl_fraction(step: int, alpha: float, end: int) -> float:
    """RigL's cosine-decayed update fraction ``alpha / 2 * (1 + cos(pi * step / end))``; 0 from ``end`` on."""
    if step >= end:
        return 0.0
    return alpha / 2 * (1 + math.cos(math.pi * step / end))


def drop_and_grow(weight: torch.Tensor, mask: torch.Tensor, grow_score: torch.Tensor, fraction: float) -> torch.Tensor:
    """One RigL/SET update of one layer: drop the smallest-magnitude kept weights, grow as many elsewhere.

    Args:
        weight: the layer's current weights (any shape).
        mask: bool, the same shape: its kept weights.
        grow_score: where to grow, larger first: the dense gradient's magnitude (RigL) or random
            numbers (SET), the same shape.
        fraction: share of the kept weights to replace, in [0, 1].

    Returns:
        The new bool mask, with exactly as many kept weights as ``mask``. ``floor(fraction * kept)``
        kept weights of smallest magnitude are dropped, then as many positions of largest
        ``grow_score`` grow among those not kept after the drop (a just-dropped weight may grow
        back, keeping its value, as in RigL's default).
    """
    kept = int(mask.sum())
    n = int(fraction * kept)
    if n == 0:
        return mask.clone()
    survivors = keep_largest(weight.abs(), mask, kept - n)
    grown = keep_largest(grow_score, ~survivors, n)
    return survivors | grown


class DropAndGrow:
    """``MaskUpdate`` function of ``rigl``: drop and grow in the first ``updated`` individuals of the batch.

    The dense gradient (RigL) is taken on the minibatch of the step just run; its cost (one forward
    and one backward pass with dense weight gradients over that batch) is added to the meter's
    training FLOPs.

    Args:
        arch: the architecture.
        cfg: the ``[rigl]`` settings.
        end: T_end, the step from which the masks stay.
        updated: how many individuals (from the first) change masks; the rest stay static.
        seed: seed of SET's random growth.
    """

    def __init__(self, arch: Architecture, cfg: Any, end: int, updated: int, seed: int) -> None:
        self.arch, self.cfg, self.end, self.updated = arch, cfg, end, updated
        self.gen = torch.Generator().manual_seed(seed)
        self.updates = 0

    def __call__(self, state: TrainState) -> dict[str, torch.Tensor] | None:
        """New masks at ``state.step``, or ``None`` from T_end on."""
        fraction = rigl_fraction(state.step, self.cfg.alpha, self.end)
        if fraction <= 0:
            return None
        if self.cfg.grow == "gradient":
            grads = state.dense_gradient(state.batches[state.step - 1], metered=self.updated)
        out = {}
        for name, mask in state.masks.items():
            new = mask.clone()
            for p in range(self.updated):
                if self.cfg.grow == "gradient":
                    score = grads[name][p].abs()
                else:
                    score = torch.rand(mask[p].shape, generator=self.gen).to(mask.device)
                new[p] = drop_and_grow(state.params[name][p].detach(), mask[p], score, fraction)
            out[name] = new
        self.updates += 1
        return out


class RigL(OneRunMethod):
    """``rigl``: sparse from the first step, drop and grow every ``rigl.delta_t`` steps (RigL, or SET)."""

    name = "rigl"
    sections = ("train", "rigl")
    baseline = True
    control_words: ClassVar[dict[str, str]] = {"static": "its start mask kept static"}
    citation = "Evci et al. 2020, arXiv:1911.11134; Mocanu et al. 2018, arXiv:1707.04780"

    def companions(self, run: OneRun) -> list[Ticket]:
        """The start mask kept static: the same network trained without drop and grow."""
        return [Ticket(run.start.theta0, run.start.masks, run.start.init_scheme, run.start.init_std)]

    def run_flops(self, resolved: Resolved, kept: dict[str, int], steps: int) -> int:
        """The sparse steps, plus (gradient growth) one dense-gradient minibatch at every update before T_end."""
        c, arch = resolved.config, resolved.arch
        total = super().run_flops(resolved, kept, steps)
        if c.rigl.grow == "gradient":
            end = round(c.rigl.end * steps)
            updates = len([s for s in range(c.rigl.delta_t, steps, c.rigl.delta_t) if s < end])
            weights = frozenset(arch.weight_names)
            per_example = forward_flops(arch, kept) + backward_flops(arch, kept, weights, dense_weight_grads=weights)
            total += updates * c.optimizer.batch_size * int(per_example)
        return total

    def callbacks(self, run: OneRun, population: int) -> list[Callback]:
        """Drop and grow the first network every ``rigl.delta_t`` steps until T_end."""
        c = run.config
        end = round(c.rigl.end * run.steps)
        update = DropAndGrow(run.arch, c.rigl, end, 1, derive_seed(c.campaign.seed, "rigl-grow"))
        return [MaskUpdate(update, every=c.rigl.delta_t)]

    def companion_results(self, run: OneRun, state: TrainState, stopping: EarlyStopping) -> dict[str, Any]:
        """``static``: the start mask trained for the same steps without mask updates."""
        best = stopping.best
        return {
            "static": {
                "test_acc": float(best["test"][1]),
                "val_acc": float(best["acc"][1]),
                "best_step": int(best["step"][1]),
                "train_flops": int(state.meter.train_flops[1]),
            }
        }

    def subtitle(self, config: Any) -> str:
        """E.g. "RigL, update every 100 steps, 1500 steps" (SET with random growth)."""
        name = "RigL" if config.rigl.grow == "gradient" else "SET"
        return f"{name}, update every {config.rigl.delta_t} steps, {config.train.steps} steps"


__all__ = ["DropAndGrow", "RigL", "drop_and_grow", "rigl_fraction"]
