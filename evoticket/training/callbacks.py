"""Step callbacks of the training engine: what happens between optimizer steps.

The engine's loop is closed (as OpenLTH's): behaviour is added by callbacks, each due at some
steps. A callback is called with the :class:`evoticket.training.state.TrainState` after the
steps before it have run (step 0: before any training). Due steps:

* ``every = k``: steps 0, k, 2k, ... and the last step;
* ``at = (s1, s2, ...)``: those steps (a step past the end is never reached).

Callbacks here: :class:`Evaluate` (validation, optionally test, before and after training or
every k steps), :class:`EarlyStopping` (the step of best validation accuracy or loss, with the
test accuracy there), :class:`SaveWeights` (the weights at step k, for rewinding; Frankle et al.
2019, arXiv:1903.01611) and :class:`MaskUpdate` (change masks during training, as gradual
pruning and RigL do).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from evoticket.training.state import TrainState


class Callback:
    """Base class: due at multiples of :attr:`every` (and the last step) and at the steps of :attr:`at`.

    Attributes:
        every: period in steps (>= 1), or ``None``.
        at: explicit steps.
        at_start: also due at step 0 (with ``every``, step 0 is always due).
        at_end: also due at the last step.
    """

    every: int | None = None
    at: Sequence[int] = ()
    at_start: bool = False
    at_end: bool = False

    def due(self, step: int, total: int) -> bool:
        """Whether the callback runs after ``step`` of ``total`` steps."""
        if step in self.at:
            return True
        if self.every is not None and (step % self.every == 0 or step == total):
            return True
        return (step == 0 and self.at_start) or (step == total and self.at_end)

    def next_due(self, step: int, total: int) -> int:
        """The first step after ``step`` at which the callback is due (``total`` if none before it)."""
        candidates = [s for s in self.at if step < s <= total]
        if self.every is not None:
            candidates.append(min(total, (step // self.every + 1) * self.every))
        return min(candidates, default=total)

    def __call__(self, state: TrainState) -> None:  # pragma: no cover - interface
        """Act on the training state."""
        raise NotImplementedError


class Evaluate(Callback):
    """Validation accuracy and loss (and optionally test accuracy) at the start, the end, or every k steps.

    Args:
        every: period in steps, or ``None`` for start and end only.
        test: also measure the test split.

    Attributes:
        history: one dict per check: ``step``, ``val_acc``, ``val_loss`` (and ``test_acc``), each ``(P,)``.
    """

    def __init__(self, every: int | None = None, *, test: bool = False) -> None:
        self.every = every
        self.at_start = self.at_end = True
        self.test = test
        self.history: list[dict[str, torch.Tensor | int]] = []

    def __call__(self, state: TrainState) -> None:
        row: dict[str, torch.Tensor | int] = {"step": state.step}
        row["val_acc"], row["val_loss"] = state.evaluate("val")
        if self.test:
            row["test_acc"], _ = state.evaluate("test")
        self.history.append(row)


EARLY_STOPPING = ("val_acc", "val_loss", "none")
"""Early-stopping criteria of :class:`EarlyStopping`."""

_BETTER: dict[str, Callable[..., torch.Tensor]] = {
    "val_acc": lambda finite, acc, loss, best, step: finite & (acc > best["acc"]),
    "val_loss": lambda finite, acc, loss, best, step: finite & (loss < best["loss"]),
    "none": lambda finite, acc, loss, best, step: finite | (step == 0),
}


class EarlyStopping(Callback):
    """The early-stopping step of each individual and its accuracies there.

    Checked every ``every`` steps (step 0 and the last step included): the first step of maximum
    validation accuracy (``val_acc``), of minimum validation loss (``val_loss``, as Frankle &
    Carbin 2019, arXiv:1803.03635), or the last step (``none``). The test split is read at every
    check but reported only at the chosen one.

    Args:
        every: steps between checks, >= 1.
        criterion: one of :data:`EARLY_STOPPING`.
        keep_weights: also keep each individual's weights (and BatchNorm statistics) at its
            chosen step, in :attr:`best_weights`.
        start: only checks at this step or later can be chosen (e.g. once gradual pruning has
            reached its target density); earlier checks are still measured (``first``).

    Attributes:
        best: ``step`` (int64), ``acc``, ``loss`` and ``test`` at the chosen step, each ``(P,)``.
        best_weights: parameter and buffer name -> ``(P, *shape)`` at the chosen step (with ``keep_weights``).
        best_masks: weight name -> ``(P, *shape)`` bool masks at the chosen step (with ``keep_weights``;
            they differ from the start's when masks change during training: gmp, rigl, edge-popup).
        first: ``(val_acc, val_loss)``, each ``(P,)``, at the first check (step 0: before training).
        last_test_acc: ``(P,)`` test accuracy at the last check.
        last_val_loss: ``(P,)`` validation loss at the last check.
        history: one dict per check: ``step`` (int), ``val_acc``, ``val_loss``, ``test_acc`` and
            ``density_total`` (fraction of prunable weights kept), each ``(P,)`` on the CPU.

    Raises:
        ValueError: for an unknown ``criterion``.
    """

    def __init__(self, every: int, criterion: str = "val_acc", *, keep_weights: bool = False, start: int = 0) -> None:
        if criterion not in EARLY_STOPPING:
            raise ValueError(f"criterion must be one of {EARLY_STOPPING}, got {criterion!r}")
        self.every = every
        self.start = int(start)
        self.at = (self.start,) if self.start > 0 else ()
        self.criterion = criterion
        self.keep_weights = keep_weights
        self.best: dict[str, torch.Tensor] = {}
        self.best_weights: dict[str, torch.Tensor] = {}
        self.best_masks: dict[str, torch.Tensor] = {}
        self.first: tuple[torch.Tensor, torch.Tensor] | None = None
        self.last_test_acc: torch.Tensor | None = None
        self.last_val_loss: torch.Tensor | None = None
        self.history: list[dict[str, torch.Tensor | int]] = []

    def __call__(self, state: TrainState) -> None:
        val_acc, val_loss = state.evaluate("val")
        test_acc, _ = state.evaluate("test")
        kept = state.kept()
        total = sum(math.prod(spec.weight_shape) for spec in state.arch.layers)
        self.history.append(
            {
                "step": state.step,
                "val_acc": val_acc.cpu(),
                "val_loss": val_loss.cpu(),
                "test_acc": test_acc.cpu(),
                "density_total": sum(kept.values()).to(torch.float64) / total,
            }
        )
        if self.first is None:
            self.first = (val_acc, val_loss)
        if not self.best:
            p, device = val_acc.shape[0], val_acc.device
            self.best = {
                "step": torch.zeros(p, dtype=torch.long, device=device),
                "acc": torch.full((p,), -1.0, device=device),
                "loss": torch.full((p,), float("inf"), device=device),
                "test": torch.zeros(p, device=device),
            }
        better = _BETTER[self.criterion](torch.isfinite(val_loss), val_acc, val_loss, self.best, state.step)
        if state.step < self.start:
            better = torch.zeros_like(better)
        elif self.criterion == "none":
            better = better | (state.step == self.start)
        self.best["step"] = torch.where(better, state.step, self.best["step"])
        self.best["acc"] = torch.where(better, val_acc, self.best["acc"])
        self.best["loss"] = torch.where(better, val_loss, self.best["loss"])
        self.best["test"] = torch.where(better, test_acc, self.best["test"])
        self.last_test_acc, self.last_val_loss = test_acc, val_loss
        if self.keep_weights:
            with torch.no_grad():
                for name, value in {**state.params, **state.buffers}.items():
                    value = value.detach()
                    if name not in self.best_weights:
                        self.best_weights[name] = value.clone()
                    else:
                        pick = better.view(-1, *([1] * (value.dim() - 1)))
                        self.best_weights[name] = torch.where(pick, value, self.best_weights[name])
                for name, mask in state.masks.items():
                    if name not in self.best_masks:
                        self.best_masks[name] = mask.clone()
                    else:
                        pick = better.view(-1, *([1] * (mask.dim() - 1)))
                        self.best_masks[name] = torch.where(pick, mask, self.best_masks[name])


class SaveWeights(Callback):
    """A copy of the effective weights at the given steps (rewinding points; step 0 is theta0 * mask).

    Args:
        steps: the steps to save at.

    Attributes:
        saved: step -> parameter name -> ``(P, *shape)`` tensor, on the training device.
    """

    def __init__(self, steps: Sequence[int]) -> None:
        self.at = tuple(int(s) for s in steps)
        self.saved: dict[int, dict[str, torch.Tensor]] = {}

    def __call__(self, state: TrainState) -> None:
        self.saved[state.step] = {k: v.detach().clone() for k, v in state.params.items()}


class MaskUpdate(Callback):
    """Change the masks during training (gradual pruning, RigL's drop and grow).

    Args:
        update: ``state -> new masks`` (weight name -> ``(P, *shape)`` bool), or ``None`` to leave
            them; the engine zeroes newly pruned weights, starts newly grown ones at zero and
            rebuilds the optimizer over the new kept set.
        every: period in steps (not at step 0 or the last step).
        at: explicit steps.
    """

    def __init__(
        self,
        update: Callable[[TrainState], dict[str, torch.Tensor] | None],
        *,
        every: int | None = None,
        at: Sequence[int] = (),
    ) -> None:
        self.update = update
        self.every = every
        self.at = tuple(at)

    def due(self, step: int, total: int) -> bool:
        """Due at the configured steps strictly between the start and the end."""
        return 0 < step < total and super().due(step, total)

    def __call__(self, state: TrainState) -> None:
        masks = self.update(state)
        if masks is not None:
            state.set_masks(masks)


__all__ = ["EARLY_STOPPING", "Callback", "EarlyStopping", "Evaluate", "MaskUpdate", "SaveWeights"]
