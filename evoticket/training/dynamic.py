"""Dynamic sparse training: drop and grow weights during training (RigL, SET), batched over a population.

:func:`drop_and_grow` is one update of one network's layer; :class:`DropAndGrow` is the
:class:`evoticket.training.callbacks.MaskUpdate` function that applies it to the networks of a
:class:`evoticket.training.state.TrainState`, each with its own update fraction (``(P,)``), so a GA's
individuals can carry the fraction as a gene. ``rigl`` runs it on one network with RigL's cosine
schedule (:func:`rigl_fraction`); the GA's dynamic fine-tuning (``finetune.dynamic``) on every individual
of a batch with a constant fraction per fine-tuning.

Sources: Evci et al. 2020, arXiv:1911.11134 (RigL); Mocanu et al. 2018, arXiv:1707.04780 (SET).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from evoticket.genome import keep_largest
from evoticket.training.state import TrainState

GROW = ("gradient", "random")
"""Where weights grow: ``gradient`` (largest dense-gradient magnitude, RigL) or ``random`` (SET)."""


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


@dataclass(frozen=True)
class DynamicSparse:
    """How a population's fine-tuning drops and grows weights (``finetune.dynamic``, ``finetune.delta_t``,
    ``finetune.alpha``).

    Attributes:
        grow: one of :data:`GROW` (``"gradient"``: RigL; ``"random"``: SET).
        delta_t: steps between updates (>= 1); updates happen strictly inside the fine-tuning.
        alpha: default share of each layer's kept weights replaced per update, in (0, 1); an individual's
            ``alpha`` gene overrides it.
    """

    grow: str = "gradient"
    delta_t: int = 10
    alpha: float = 0.1

    @staticmethod
    def from_config(cfg: object) -> DynamicSparse | None:
        """From a ``[finetune]`` section: ``None`` when ``finetune.dynamic`` is ``"none"``."""
        kind = getattr(cfg, "dynamic", "none")
        if kind == "none":
            return None
        return DynamicSparse("gradient" if kind == "rigl" else "random", int(cfg.delta_t), float(cfg.alpha))


class DropAndGrow:
    """``MaskUpdate`` function: drop and grow in the first ``updated`` networks of the batch, each at its own fraction.

    The dense gradient (``grow = "gradient"``, RigL) is taken on the minibatch of the step just run; its cost
    (one forward and one backward pass with dense weight gradients over that batch) is added to the meter's
    training FLOPs of the networks it updates.

    Args:
        grow: one of :data:`GROW`.
        fraction: ``step -> (P,)`` update fractions in [0, 1] (or a float for every network); an update whose
            fractions are all 0 changes nothing and costs nothing.
        updated: how many networks (from the first) change masks; the rest stay static; ``None``: all.
        seed: seed of SET's random growth.
        layers: the weights that change (default: every masked weight).

    Attributes:
        updates: updates made so far.

    Raises:
        ValueError: for an unknown ``grow``.
    """

    def __init__(
        self,
        grow: str,
        fraction: Callable[[int], torch.Tensor | float],
        *,
        updated: int | None = None,
        seed: int = 0,
        layers: tuple[str, ...] | None = None,
    ) -> None:
        if grow not in GROW:
            raise ValueError(f"grow must be one of {GROW}, got {grow!r}")
        self.grow, self.fraction, self.updated, self.layers = grow, fraction, updated, layers
        self.gen = torch.Generator().manual_seed(seed)
        self.updates = 0

    def __call__(self, state: TrainState) -> dict[str, torch.Tensor] | None:
        """New masks at ``state.step``, or ``None`` when every fraction is 0."""
        n = state.population if self.updated is None else self.updated
        f = self.fraction(state.step)
        fractions = (f.reshape(-1).tolist() if torch.is_tensor(f) and f.numel() > 1 else [float(f)] * n)[:n]
        if max(fractions, default=0.0) <= 0:
            return None
        if self.grow == "gradient":
            grads = state.dense_gradient(state.batches[state.step - 1], metered=n)
        out = {}
        for name, mask in state.masks.items():
            if self.layers is not None and name not in self.layers:
                continue
            new = mask.clone()
            for p in range(n):
                if fractions[p] <= 0:
                    continue
                if self.grow == "gradient":
                    score = grads[name][p].abs()
                else:
                    score = torch.rand(mask[p].shape, generator=self.gen).to(mask.device)
                new[p] = drop_and_grow(state.params[name][p].detach(), mask[p], score, fractions[p])
            out[name] = new
        self.updates += 1
        return out


__all__ = ["GROW", "DropAndGrow", "DynamicSparse", "drop_and_grow", "rigl_fraction"]
