"""Optimizers over stacked tickets: a plain ``torch.optim`` one, and :class:`MaskedOptimizer` over kept weights only."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from evoticket.config import OptimizerConfig


def make_optimizer(params: Sequence[torch.Tensor], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """The optimizer of ``optimizer.optimizer`` over dense stacked parameters.

    Uses the multi-tensor (``foreach``) implementation: one update over all
    stacked tensors per step. The training loop uses the faster
    :class:`MaskedOptimizer` for weights; this one serves edge-popup's scores and
    callers that want a plain ``torch.optim`` optimizer.
    """
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, foreach=True)


def _packed_optimizer(params: list[torch.Tensor], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """``optimizer.optimizer`` over packed vectors: the fused kernel where this torch has one, else ``foreach``."""
    if cfg.optimizer == "adam":
        kind, kwargs = torch.optim.Adam, {"lr": cfg.lr, "weight_decay": cfg.weight_decay}
    else:
        kind, kwargs = torch.optim.SGD, {"lr": cfg.lr, "momentum": cfg.momentum, "weight_decay": cfg.weight_decay}
    try:
        return kind(params, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device or torch version
        return kind(params, foreach=True, **kwargs)


class MaskedOptimizer:
    """``optimizer.optimizer`` (Adam or SGD) over the kept weights of stacked tickets only.

    A pruned weight has zero gradient, so its momentum, Adam moments and
    (coupled) weight decay stay zero and it never moves: updating the kept
    entries only gives exactly the trajectory of a dense optimizer on masked
    gradients, while the optimizer state, the gradient gather and the update
    touch ``density`` times the memory. Each masked weight's kept entries are
    packed into one vector (the optimizer's parameter) and written back into
    the dense tensor after every step; biases are updated in place, densely.

    Per-network learning rates (``lr``, population-based training's genes): the optimizers' update is linear in
    the learning rate (SGD with momentum: ``-lr * buf``; Adam: ``-lr * m_hat / (sqrt(v_hat) + eps)``, coupled weight
    decay inside the gradient), so the optimizer runs at learning rate 1 and each network's step is scaled by its own
    ``lr`` afterwards: exactly the trajectory each network would follow alone at its learning rate.

    Args:
        params: parameter name -> ``(P, *shape)`` contiguous dense tensors,
            updated in place by :meth:`step`.
        masks: weight name -> ``(P, *shape)`` bool masks.
        cfg: optimizer, learning rate, momentum and weight decay.
        lr: ``(P,)`` each network's learning rate (> 0), overriding ``cfg.lr``; ``None``: ``cfg.lr`` for all.

    Attributes:
        index: weight name -> ``(kept,)`` int64 flat positions of its kept
            entries in the dense ``(P, *shape)`` tensor, ascending.
        packed: parameter name -> the optimised tensor: ``(kept,)`` values of
            a masked weight, or the dense bias itself.
        packed_grads: weight name -> ``(kept,)`` gradient buffer of the packed values.
        optimizer: the ``torch.optim`` optimizer over ``packed`` (fused kernel where available).

    Raises:
        ValueError: if a parameter is not contiguous.
    """

    def __init__(
        self,
        params: dict[str, torch.Tensor],
        masks: dict[str, torch.Tensor],
        cfg: OptimizerConfig,
        lr: torch.Tensor | None = None,
    ) -> None:
        self.lr = None if lr is None else lr.detach().to(torch.float32)
        self.scales: dict[str, torch.Tensor] = {}
        self._before: dict[str, torch.Tensor] = {}  # the values before a step (per-network learning rates)
        self.dense: dict[str, torch.Tensor] = {}
        self.packed: dict[str, torch.Tensor] = {}
        self.index: dict[str, torch.Tensor] = {}
        self.packed_grads: dict[str, torch.Tensor] = {}
        for name, param in params.items():
            dense = param.detach()
            if not dense.is_contiguous():
                raise ValueError(f"MaskedOptimizer: parameter {name!r} must be contiguous")
            self.dense[name] = dense
            if name in masks:
                idx = masks[name].reshape(-1).nonzero().squeeze(1)  # (kept,) flat positions
                self.index[name] = idx
                self.packed[name] = dense.view(-1).index_select(0, idx)  # (kept,)
                self.packed_grads[name] = torch.empty_like(self.packed[name])
            else:
                self.packed[name] = dense  # updated in place
            self._set_scale(name)
        if self.lr is not None:
            cfg = dataclasses.replace(cfg, lr=1.0)
        self.optimizer = _packed_optimizer(list(self.packed.values()), cfg)

    def _set_scale(self, name: str) -> None:
        """The learning rate of each entry of ``packed[name]``, and a buffer for its values before a step (with
        per-network learning rates)."""
        if self.lr is None:
            return
        self._before[name] = torch.empty_like(self.packed[name])
        dense, lr = self.dense[name], self.lr.to(self.dense[name].device)
        if name in self.index:
            self.scales[name] = lr[self.index[name] // dense[0].numel()]  # (kept,): the network of each entry
        else:
            self.scales[name] = lr.view(-1, *([1] * (dense.dim() - 1)))

    def kept(self) -> int:
        """Number of optimised entries (kept weights and every bias) over the population."""
        return sum(v.numel() for v in self.packed.values())

    @torch.no_grad()
    def step(self, grads: dict[str, torch.Tensor]) -> None:
        """One update from the gradients of the summed loss.

        Args:
            grads: parameter name -> ``(P, *shape)`` dense gradient (entries
                at pruned positions are ignored), or, for a masked weight, the
                buffer :attr:`packed_grads` ``[name]`` itself, already filled
                with the kept entries' gradients (``(kept,)``).
        """
        for name, packed in self.packed.items():
            grad = grads[name]
            idx = self.index.get(name)
            if idx is not None and grad is not self.packed_grads[name]:
                grad = torch.gather(grad.reshape(-1), 0, idx, out=self.packed_grads[name])
            packed.grad = grad
        if self.lr is not None:
            for name, packed in self.packed.items():
                self._before[name].copy_(packed)
        self.optimizer.step()
        if self.lr is not None:  # each network's step at its own learning rate: before + lr * (step at lr 1)
            for name, packed in self.packed.items():
                packed.sub_(self._before[name]).mul_(self.scales[name]).add_(self._before[name])
        for name, idx in self.index.items():
            self.dense[name].view(-1).index_copy_(0, idx, self.packed[name])

    @torch.no_grad()
    def remask(self, masks: dict[str, torch.Tensor]) -> None:
        """Change the kept set of some masked weights, keeping the optimizer state of the surviving entries.

        A weight kept before and after keeps its momentum or Adam moments; a newly kept (grown)
        one starts with zero state, and the step count (Adam's bias correction) stays the
        parameter's, as in RigL's implementation (Evci et al. 2020, arXiv:1911.11134). The dense
        tensors must already hold the new masks' values (pruned entries zero).

        Args:
            masks: weight name -> ``(P, *shape)`` bool new masks, for masked weights of this optimizer.

        Raises:
            KeyError: for a name that is not a masked weight of this optimizer.
        """
        group = self.optimizer.param_groups[0]
        for name, mask in masks.items():
            old_idx, old = self.index[name], self.packed[name]
            idx = mask.reshape(-1).nonzero().squeeze(1)
            new = self.dense[name].view(-1).index_select(0, idx)
            pos = torch.searchsorted(old_idx, idx).clamp_(max=max(old_idx.numel() - 1, 0))
            found = old_idx[pos] == idx if old_idx.numel() else torch.zeros_like(idx, dtype=torch.bool)
            state = self.optimizer.state.pop(old, {})
            moved = {}
            for key, value in state.items():
                if torch.is_tensor(value) and value.shape == old.shape:
                    fresh = torch.zeros_like(new)
                    fresh[found] = value[pos[found]]
                    moved[key] = fresh
                else:  # the step count
                    moved[key] = value
            if moved:
                self.optimizer.state[new] = moved
            group["params"] = [new if p is old else p for p in group["params"]]
            self.index[name], self.packed[name] = idx, new
            self.packed_grads[name] = torch.empty_like(new)
            self._set_scale(name)
