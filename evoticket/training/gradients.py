"""Gradients of the summed loss of P stacked networks: autograd's, and edge-popup's straight-through scores.

The loss of a batched step is the *sum* of the individuals' mean losses, so each individual's gradient
is exactly the one it would get alone. :class:`AutogradGradient` differentiates the model's batched
forward pass; :class:`ScoreGradient` gives edge-popup's scores their straight-through gradient
(Ramanujan et al. 2020, arXiv:1911.13299). The hand-written fast backward of the built-in MLPs is the
model's own (``MODELS[name].fast_gradient``). Each is called as ``gradient(x, y) -> (P,) losses`` and
leaves its gradients in ``gradient.grads``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from evoticket.models import Architecture, per_individual_loss


class AutogradGradient:
    """Summed loss and its gradients by autograd through the model's batched forward pass.

    Args:
        arch: the architecture.
        params: parameter name -> ``(P, *shape)`` tensors, read at every call.
        trainable: names of the parameters to differentiate (the others are constants).
        buffers: BatchNorm running statistics, updated in training mode; ``None`` without BatchNorm.
    """

    def __init__(
        self,
        arch: Architecture,
        params: dict[str, torch.Tensor],
        trainable: Sequence[str] | None = None,
        buffers: dict[str, torch.Tensor] | None = None,
    ) -> None:
        self.arch = arch
        self.params = params
        self.trainable = list(params) if trainable is None else [k for k in params if k in set(trainable)]
        self.buffers = buffers
        self.grads: dict[str, torch.Tensor] = {}

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Fill :attr:`grads` for one minibatch; returns the ``(P,)`` losses."""
        with torch.enable_grad():
            train = set(self.trainable)
            leaves = {k: v.detach().requires_grad_(k in train) for k, v in self.params.items()}
            logits = self.arch.forward_batched(leaves, x, buffers=self.buffers, train=True)
            loss = per_individual_loss(logits, y)  # (P,)
            grads = torch.autograd.grad(loss.sum(), [leaves[k] for k in self.trainable])
        self.grads = dict(zip(self.trainable, grads, strict=True))
        return loss.detach()


def topk_masks(scores: dict[str, torch.Tensor], kept: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each individual's top-``kept`` weights of each layer by absolute score (edge-popup's subnetwork).

    Args:
        scores: weight name -> ``(P, *shape)`` scores.
        kept: weight name -> ``(P,)`` int64 weights to keep per individual.

    Returns:
        Weight name -> ``(P, *shape)`` bool masks with exactly ``kept`` True entries per individual.
    """
    out = {}
    for name, s in scores.items():
        flat = s.detach().abs().reshape(s.shape[0], -1)  # (P, n)
        order = flat.argsort(dim=1, descending=True, stable=True)
        ranks = torch.arange(flat.shape[1], device=s.device).expand_as(flat)
        keep = ranks < kept[name].to(s.device).unsqueeze(1)  # (P, n): True for the first k of the order
        mask = torch.zeros_like(keep).scatter_(1, order, keep)
        out[name] = mask.view(s.shape)
    return out


class ScoreGradient:
    """Gradients of the summed loss with respect to edge-popup's scores (straight-through top-k).

    The forward pass uses ``theta0 * topk(|scores|)``; the gradient passes through the top-k as
    if it were the identity and then through ``abs``, so ``dL/ds = sign(s) * theta0 * dL/dw``, as
    hidden-networks' ``GetSubnet.apply(scores.abs(), k)`` gives (Ramanujan et al. 2020,
    arXiv:1911.13299).

    Args:
        arch: the architecture.
        theta0: parameter name -> ``(P, *shape)`` frozen weights.
        scores: weight name -> ``(P, *shape)`` scores, read at every call.
        kept: weight name -> ``(P,)`` weights each layer keeps.
        buffers: BatchNorm running statistics, if any.
    """

    def __init__(
        self,
        arch: Architecture,
        theta0: dict[str, torch.Tensor],
        scores: dict[str, torch.Tensor],
        kept: dict[str, torch.Tensor],
        buffers: dict[str, torch.Tensor] | None = None,
    ) -> None:
        self.arch, self.theta0, self.scores, self.kept, self.buffers = arch, theta0, scores, kept, buffers
        self.grads: dict[str, torch.Tensor] = {}

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Fill :attr:`grads` (one per score tensor) for one minibatch; returns the ``(P,)`` losses."""
        hard = topk_masks(self.scores, self.kept)
        with torch.enable_grad():
            leaves = {k: v.detach().requires_grad_(True) for k, v in self.scores.items()}
            params = dict(self.theta0)
            for name, s in leaves.items():  # the subnetwork is chosen by |score|: the gradient flows through abs()
                magnitude = s.abs()
                params[name] = self.theta0[name] * (hard[name].to(s.dtype) + magnitude - magnitude.detach())
            logits = self.arch.forward_batched(params, x, buffers=self.buffers, train=True)
            loss = per_individual_loss(logits, y)
            grads = torch.autograd.grad(loss.sum(), list(leaves.values()))
        self.grads = dict(zip(leaves, grads, strict=True))
        return loss.detach()


__all__ = ["AutogradGradient", "ScoreGradient", "topk_masks"]
