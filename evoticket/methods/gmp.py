"""``gmp``: gradual magnitude pruning to the ``[ticket]`` densities within one training run.

Every weight trains at first; every ``gmp.every`` steps from t_0 the smallest magnitudes of each layer are
pruned along the cubic schedule ``d_t = d_f + (1 - d_f) (1 - (t - t_0) / (t_1 - t_0))**3`` down to the
layer's target density at t_1; the reported network is the one at the early-stopping step from t_1 on.

Source: Zhu & Gupta 2017, arXiv:1710.01878.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from evoticket.core.errors import ConfigError
from evoticket.genome import keep_largest, kept_count
from evoticket.methods.base import training_flops
from evoticket.methods.onerun import OneRun, OneRunMethod
from evoticket.resolve import Resolved
from evoticket.training import Callback, MaskUpdate, TrainState


def cubic_density(step: int, start: int, end: int, final: float) -> float:
    """Zhu & Gupta's (arXiv:1710.01878) density at ``step``: 1 before ``start``, ``final`` from ``end`` on.

    ``d_t = final + (1 - final) * (1 - (t - start) / (end - start))**3`` in between (sparsity
    ``s_t = s_f (1 - (1 - p)**3)``, with initial sparsity 0).
    """
    if step <= start:
        return 1.0
    if step >= end:
        return float(final)
    progress = (step - start) / (end - start)
    return float(final) + (1.0 - float(final)) * (1.0 - progress) ** 3


def cubic_kept(step: int, start: int, end: int, final: float, numel: int) -> int:
    """Weights a layer of ``numel`` keeps after gradual pruning at ``step``: the cubic schedule's density,
    never below the target's kept count (:func:`evoticket.genome.kept_count`)."""
    return max(kept_count(final, numel), round(cubic_density(step, start, end, final) * numel))


class GradualPruning:
    """``MaskUpdate`` function of ``gmp``: prune each layer to its cubic-schedule density by magnitude.

    Args:
        final: weight name -> the layer's target density in (0, 1].
        start, end: the schedule's first and last pruning steps (t_0, t_1).
    """

    def __init__(self, final: dict[str, float], start: int, end: int) -> None:
        self.final, self.start, self.end = final, start, end

    def __call__(self, state: TrainState) -> dict[str, torch.Tensor]:
        """New masks at ``state.step`` (a subset of the current ones)."""
        out = {}
        for name, mask in state.masks.items():
            target = cubic_kept(state.step, self.start, self.end, self.final[name], mask[0].numel())
            weights = state.params[name].detach()
            out[name] = torch.stack([keep_largest(weights[p].abs(), mask[p], target) for p in range(mask.shape[0])])
        return out


class GMP(OneRunMethod):
    """``gmp``: gradual magnitude pruning to the ``[ticket]`` densities within one run (Zhu & Gupta 2017)."""

    name = "gmp"
    dense_start = True
    sections = ("train", "gmp")
    citation = "Zhu & Gupta 2017, arXiv:1710.01878"

    @staticmethod
    def schedule(config: Any, steps: int) -> tuple[int, int, list[int]]:
        """``(t_0, t_1, pruning steps)`` of a ``steps``-step run: every ``gmp.every`` steps from t_0, and t_1."""
        g = config.gmp
        t0, t1 = round(g.start * steps), round(g.end * steps)
        at = sorted({*range(max(t0, 1), t1, g.every), t1})
        return t0, t1, [s for s in at if 0 < s < steps]

    def run_flops(self, resolved: Resolved, kept: dict[str, int], steps: int) -> int:
        """The dense start's steps until the first pruning, then each segment at its kept counts."""
        c, arch = resolved.config, resolved.arch
        _, final = self.densities(resolved)
        numel = {spec.weight: math.prod(spec.weight_shape) for spec in arch.layers}
        t0, t1, at = self.schedule(c, steps)
        total, last, counts = 0, 0, dict(kept)
        for s in [*at, steps]:
            total += training_flops(arch, counts, s - last, c.optimizer.batch_size, self.scope)
            last = s
            if s < steps:
                counts = {k: min(n, cubic_kept(s, t0, t1, final[k], numel[k])) for k, n in counts.items()}
        return total

    def check(self, resolved: Resolved) -> None:
        """The schedule must prune at least once before the last step (and a budget pay for the run).

        Raises:
            ConfigError: naming ``gmp.end`` or ``budget.train_flops``.
        """
        super().check(resolved)
        steps = self.planned_steps(resolved, self.start_kept(resolved))
        _, t1, at = self.schedule(resolved.config, steps)
        if not at or t1 >= steps:
            raise ConfigError(
                f"gmp.end: the pruning must end before the last of the run's {steps} steps (train.steps or the budget); "
                f"got step {t1} (gmp.end = {resolved.config.gmp.end})"
            )

    def callbacks(self, run: OneRun, population: int) -> list[Callback]:
        """Prune on the cubic schedule."""
        t0, t1, at = self.schedule(run.config, run.steps)
        return [MaskUpdate(GradualPruning(run.targets, t0, t1), at=at)]

    def stopping_start(self, run: OneRun) -> int:
        """t_1: the reported network has the target density."""
        return self.schedule(run.config, run.steps)[1]

    def subtitle(self, config: Any) -> str:
        """E.g. "gradual magnitude pruning from 0.1 to 0.6 of 1500 steps"."""
        g = config.gmp
        return f"gradual magnitude pruning from {g.start:g} to {g.end:g} of {config.train.steps} steps"


__all__ = ["GMP", "GradualPruning", "cubic_density", "cubic_kept"]
