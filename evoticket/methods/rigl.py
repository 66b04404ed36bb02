"""``rigl``: sparse from the first step, drop and grow every ``rigl.delta_t`` steps (RigL, or SET).

A random mask at the target densities trains; every ``rigl.delta_t`` steps until T_end it drops the
smallest-magnitude kept weights of each layer and grows as many where the dense gradient is largest
(``rigl.grow = "random"``: at random, SET), with a cosine-decayed update fraction. A static copy of its
start mask trains next to it in the same batch, as the run's own control.

Sources: Evci et al. 2020, arXiv:1911.11134 (RigL); Mocanu et al. 2018, arXiv:1707.04780 (SET).
"""

from __future__ import annotations

from typing import Any, ClassVar

from evoticket.core.seeds import derive_seed
from evoticket.genome import Ticket
from evoticket.methods.onerun import OneRun, OneRunMethod
from evoticket.resolve import Resolved
from evoticket.training import Callback, EarlyStopping, MaskUpdate, TrainState, backward_flops, forward_flops
from evoticket.training.dynamic import DropAndGrow, drop_and_grow, rigl_fraction


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
        update = DropAndGrow(
            c.rigl.grow,
            lambda step: rigl_fraction(step, c.rigl.alpha, end),
            updated=1,
            seed=derive_seed(c.campaign.seed, "rigl-grow"),
        )
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
