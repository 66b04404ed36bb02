"""Optimizers over stacked tickets: a plain ``torch.optim`` one, and :class:`MaskedOptimizer` over kept weights only,
with :class:`OptimizerState`, the state a network carries from one training to the next (population-based training's
exploit copies it with the weights)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

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


def _packed_optimizer(params: list, cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """``optimizer.optimizer`` over packed vectors (or parameter groups): the fused kernel where this torch has one,
    else ``foreach``."""
    if cfg.optimizer == "adam":
        kind, kwargs = torch.optim.Adam, {"lr": cfg.lr, "weight_decay": cfg.weight_decay}
    else:
        kind, kwargs = torch.optim.SGD, {"lr": cfg.lr, "momentum": cfg.momentum, "weight_decay": cfg.weight_decay}
    try:
        return kind(params, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device or torch version
        return kind(params, foreach=True, **kwargs)


STATE_KEYS = {"adam": ("exp_avg", "exp_avg_sq"), "sgd": ("momentum_buffer",)}
"""The state tensors of each optimizer (``optimizer.optimizer``), as ``torch.optim`` names them."""


@dataclasses.dataclass
class OptimizerState:
    """The optimizer state of P stacked networks, dense, so that it can follow the weights from one training to the
    next (Lamarckian inheritance of the training state, as population-based training copies it; Jaderberg et al.
    2017, arXiv:1711.09846).

    Attributes:
        steps: ``(P,)`` int64 optimizer steps each network has taken (Adam's bias correction reads them).
        tensors: state name (Adam: ``exp_avg``, ``exp_avg_sq``; SGD with momentum: ``momentum_buffer``) ->
            parameter name -> ``(P, *shape)`` float32, zero at pruned positions.
    """

    steps: torch.Tensor
    tensors: dict[str, dict[str, torch.Tensor]]

    def __len__(self) -> int:
        """P, the number of networks."""
        return int(self.steps.shape[0])

    def network(self, i: int) -> dict[str, Any]:
        """Network ``i``'s state as plain data (CPU tensors): ``{"step": int, key: {parameter name: tensor}}``."""
        out: dict[str, Any] = {"step": int(self.steps[i])}
        for key, per in self.tensors.items():
            out[key] = {name: t[i].detach().cpu().clone() for name, t in per.items()}
        return out

    @staticmethod
    def stack(states: Sequence[Mapping[str, Any] | None], params: Mapping[str, torch.Tensor]) -> OptimizerState | None:
        """Stack P networks' states (:meth:`network`'s form; ``None``: a fresh optimizer, zero state at step 0).

        Args:
            states: one state per network, or ``None``.
            params: parameter name -> ``(P, *shape)`` stacked parameters (shapes, dtype and device of the result).

        Returns:
            The stacked state on the parameters' device, or ``None`` when every network starts fresh.
        """
        if all(s is None or not s.get("step") for s in states):
            return None
        steps = torch.tensor([int(s.get("step", 0)) if s else 0 for s in states], dtype=torch.int64)
        keys = sorted({k for s in states if s for k in s if k != "step"})
        tensors: dict[str, dict[str, torch.Tensor]] = {}
        for key in keys:
            per: dict[str, torch.Tensor] = {}
            for name, param in params.items():
                stacked = torch.zeros_like(param, dtype=torch.float32)
                for i, s in enumerate(states):
                    value = (s or {}).get(key, {}).get(name)
                    if value is not None:
                        stacked[i].copy_(value)
                per[name] = stacked
            tensors[key] = per
        return OptimizerState(steps, tensors)

    @staticmethod
    def concat(parts: Sequence[OptimizerState]) -> OptimizerState:
        """Join the states of consecutive population blocks along the population axis."""
        keys = parts[0].tensors.keys()
        return OptimizerState(
            torch.cat([p.steps for p in parts]),
            {k: {n: torch.cat([p.tensors[k][n] for p in parts]) for n in parts[0].tensors[k]} for k in keys},
        )


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

    A carried state (``state``, :class:`OptimizerState`) continues each network's earlier training: its momentum or
    Adam moments at the kept positions, and its step count. Where Adam's networks have taken different numbers of
    steps, one ``torch.optim`` step count cannot serve them all, and the update is Adam's own (``torch.optim.Adam``'s
    single-tensor arithmetic) with each network's bias correction.

    Under ``optimizer.data_order = "individual"``, :class:`NetworkOptimizer` (:func:`masked_optimizer` chooses).

    Args:
        params: parameter name -> ``(P, *shape)`` contiguous dense tensors,
            updated in place by :meth:`step`.
        masks: weight name -> ``(P, *shape)`` bool masks.
        cfg: optimizer, learning rate, momentum and weight decay.
        lr: ``(P,)`` each network's learning rate (> 0), overriding ``cfg.lr``; ``None``: ``cfg.lr`` for all.
        state: the state to continue from; ``None``: a fresh optimizer.

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
        state: OptimizerState | None = None,
    ) -> None:
        self.lr = None if lr is None else lr.detach().to(torch.float32)
        self.cfg = cfg
        self.taken = 0  # steps taken by this optimizer
        self.start_steps: torch.Tensor | None = None  # (P,) steps carried in with ``state``
        self.own_steps: torch.Tensor | None = None  # (P,) float64 step counts of Adam's per-network bias correction
        self._network: dict[str, torch.Tensor] = {}  # (kept,) the network of each packed entry (own Adam update)
        self.scales: dict[str, torch.Tensor] = {}
        self._before: dict[str, torch.Tensor] = {}  # the values before a step (per-network learning rates)
        self.dense: dict[str, torch.Tensor] = {}
        self.packed: dict[str, torch.Tensor] = {}
        self.index: dict[str, torch.Tensor] = {}
        self.packed_grads: dict[str, torch.Tensor] = {}
        self._take(params)
        for name, dense in self.dense.items():
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
        if state is not None:
            self._load(state)

    def _load(self, state: OptimizerState) -> None:
        """Continue from ``state``: its tensors at the kept positions, its step counts."""
        p = next(iter(self.dense.values())).shape[0]
        if len(state) != p:
            raise ValueError(f"MaskedOptimizer: the state holds {len(state)} networks, the parameters {p}")
        self.start_steps = state.steps.to(torch.int64).cpu()
        adam = self.cfg.optimizer == "adam"
        if adam and bool((self.start_steps != self.start_steps[0]).any()):
            device = next(iter(self.dense.values())).device
            self.own_steps = self.start_steps.to(device, torch.float64)
        group = self.optimizer.param_groups[0]
        for name, packed in self.packed.items():
            loaded: dict[str, Any] = {}
            for key in STATE_KEYS[self.cfg.optimizer]:
                per = state.tensors.get(key, {})
                if key == "momentum_buffer" and not self.cfg.momentum:
                    continue
                dense = per[name].to(packed.device, torch.float32) if name in per else None
                if dense is None:
                    loaded[key] = torch.zeros_like(packed)
                elif name in self.index:
                    loaded[key] = dense.reshape(-1).index_select(0, self.index[name])
                else:
                    loaded[key] = dense.clone()
            if adam:
                on_device = group.get("fused") or group.get("capturable")
                loaded["step"] = torch.tensor(
                    float(self.start_steps[0]), dtype=torch.float32, device=packed.device if on_device else "cpu"
                )
            if loaded:
                self.optimizer.state[packed] = loaded
            if self.own_steps is not None:  # Adam's own update reads the network of each entry
                self._set_scale(name)

    def state(self) -> OptimizerState:
        """The state reached, dense (zero at pruned positions), on the parameters' device."""
        p = next(iter(self.dense.values())).shape[0]
        start = self.start_steps if self.start_steps is not None else torch.zeros(p, dtype=torch.int64)
        tensors: dict[str, dict[str, torch.Tensor]] = {}
        for name, packed in self.packed.items():
            held = self.optimizer.state.get(packed, {})
            for key in STATE_KEYS[self.cfg.optimizer]:
                value = held.get(key)
                if not torch.is_tensor(value) or value.shape != packed.shape:
                    continue
                tensors.setdefault(key, {})[name] = self._densify(name, value)
        return OptimizerState(start + self.taken, tensors)

    def _densify(self, name: str, value: torch.Tensor) -> torch.Tensor:
        """A packed ``(kept,)`` state tensor of ``name`` as a dense ``(P, *shape)`` one (zero at pruned positions);
        a dense parameter's state, copied."""
        if name not in self.index:
            return value.clone()
        dense = torch.zeros(self.dense[name].numel(), dtype=value.dtype, device=value.device)
        return dense.index_copy_(0, self.index[name], value).view_as(self.dense[name])

    def _take(self, params: dict[str, torch.Tensor]) -> None:
        """The parameters' dense tensors (``self.dense``), each checked contiguous."""
        for name, param in params.items():
            dense = param.detach()
            if not dense.is_contiguous():
                raise ValueError(f"MaskedOptimizer: parameter {name!r} must be contiguous")
            self.dense[name] = dense

    def _set_scale(self, name: str) -> None:
        """Per-entry settings of ``packed[name]``: with Adam's own update (networks with different step counts), the
        network of each entry; else, with per-network learning rates, each entry's learning rate and a buffer for its
        values before a step."""
        dense = self.dense[name]
        if name in self.index:
            network = self.index[name] // dense[0].numel()  # (kept,): the network of each entry
        else:
            network = torch.arange(dense.shape[0], device=dense.device).view(-1, *([1] * (dense.dim() - 1)))
        if self.own_steps is not None:
            self._network[name] = network
        elif self.lr is not None:
            self._before[name] = torch.empty_like(self.packed[name])
            self.scales[name] = self.lr.to(dense.device)[network]

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
        self.taken += 1
        if self.own_steps is not None:
            self._adam_step()
        else:
            self._torch_step()
        for name, idx in self.index.items():
            self.dense[name].view(-1).index_copy_(0, idx, self.packed[name])

    def _torch_step(self) -> None:
        """The ``torch.optim`` step, each network's delta scaled by its learning rate where they differ."""
        if self.lr is not None:
            for name, packed in self.packed.items():
                self._before[name].copy_(packed)
        self.optimizer.step()
        if self.lr is not None:  # each network's step at its own learning rate: before + lr * (step at lr 1)
            for name, packed in self.packed.items():
                packed.sub_(self._before[name]).mul_(self.scales[name]).add_(self._before[name])

    def _adam_step(self) -> None:
        """Adam's update (``torch.optim.Adam``'s single-tensor arithmetic, coupled weight decay) with each network's
        own step count in the bias correction (networks that carried in different step counts)."""
        group = self.optimizer.param_groups[0]
        beta1, beta2 = group["betas"]
        eps, decay = group["eps"], group["weight_decay"]
        self.own_steps += 1
        correction1 = 1 - beta1**self.own_steps  # (P,) float64
        correction2 = (1 - beta2**self.own_steps).sqrt()
        lr = self.lr.to(correction1) if self.lr is not None else torch.full_like(correction1, self.cfg.lr)
        step_size = lr / correction1  # (P,) each network's step size
        for name, packed in self.packed.items():
            grad = packed.grad if not decay else packed.grad.add(packed, alpha=decay)
            held = self.optimizer.state.setdefault(packed, {})
            for key in ("exp_avg", "exp_avg_sq"):
                if key not in held:
                    held[key] = torch.zeros_like(packed)
            exp_avg, exp_avg_sq = held["exp_avg"], held["exp_avg_sq"]
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            net = self._network[name]
            denom = (exp_avg_sq.sqrt() / correction2[net].to(packed.dtype)).add_(eps)
            packed.addcdiv_(exp_avg * step_size[net].to(packed.dtype), denom, value=-1.0)

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


class NetworkOptimizer(MaskedOptimizer):
    """:class:`MaskedOptimizer` under ``optimizer.data_order = "individual"``: each network's arithmetic is its own.

    Each network's kept entries of a weight (and its row of a bias) are a tensor of their own to the fused kernel
    (``torch._fused_adam_``, ``torch._fused_sgd_``; views into the packed vectors), with the network's own step
    count. A network therefore follows the same float operations whoever shares its batch and whatever step they are
    at (a fused CPU kernel computes an entry in vector lanes or in a scalar tail depending on where it lies in its
    tensor, and here every tensor starts at its network), so that the cells of an experiment can share batches
    (``evoticket experiment --pack``) and give exactly what they give alone. Adam's bias correction is each network's
    own (``torch.optim.Adam``'s arithmetic); per-network learning rates are groups, one call per distinct rate.

    Args: as for :class:`MaskedOptimizer`.
    """

    def __init__(
        self,
        params: dict[str, torch.Tensor],
        masks: dict[str, torch.Tensor],
        cfg: OptimizerConfig,
        lr: torch.Tensor | None = None,
        state: OptimizerState | None = None,
    ) -> None:
        self.lr = None if lr is None else lr.detach().to(torch.float32)
        self.cfg = cfg
        self.dense, self.packed, self.index, self.packed_grads = {}, {}, {}, {}
        self._take(params)
        for name, dense in self.dense.items():
            self.packed[name] = dense
            if name in masks:
                self._pack(name, masks[name])
        p = next(iter(self.dense.values())).shape[0]
        self._setup(state if state is not None else OptimizerState(torch.zeros(p, dtype=torch.int64), {}))

    def _pack(self, name: str, mask: torch.Tensor) -> None:
        idx = mask.reshape(-1).nonzero().squeeze(1)  # (kept,) flat positions, network by network
        self.index[name] = idx
        self.packed[name] = self.dense[name].view(-1).index_select(0, idx)
        self.packed_grads[name] = torch.empty_like(self.packed[name])

    def _segments(self, name: str) -> list[slice]:
        """Network ``i``'s entries of ``packed[name]``: a slice of the packed vector, or its row of a dense tensor."""
        dense = self.dense[name]
        p = dense.shape[0]
        if name not in self.index:
            return [slice(i, i + 1) for i in range(p)]
        bounds = torch.arange(p + 1, device=self.index[name].device) * dense[0].numel()
        cuts = torch.searchsorted(self.index[name], bounds).tolist()
        return [slice(cuts[i], cuts[i + 1]) for i in range(p)]

    def _setup(self, state: OptimizerState) -> None:
        """Per-network tensors of every parameter and of its optimizer state, ``state`` loaded (its steps the start)."""
        p = next(iter(self.dense.values())).shape[0]
        if len(state) != p:
            raise ValueError(f"MaskedOptimizer: the state holds {len(state)} networks, the parameters {p}")
        self.start_steps = state.steps.to(torch.int64).cpu()
        self.taken = 0
        device = next(iter(self.dense.values())).device
        self.steps = self.start_steps.to(device, torch.float32)  # (P,) each network's Adam step count
        keys = [k for k in STATE_KEYS[self.cfg.optimizer] if k != "momentum_buffer" or self.cfg.momentum]
        self.buffers: dict[str, dict[str, torch.Tensor]] = {key: {} for key in keys}
        for key in keys:
            for name, packed in self.packed.items():
                dense = state.tensors.get(key, {}).get(name)
                if dense is None:
                    value = torch.zeros_like(packed)
                elif name in self.index:
                    value = dense.to(packed.device, torch.float32).reshape(-1)[self.index[name]]
                else:
                    value = dense.to(packed.device, torch.float32).clone()
                self.buffers[key][name] = value
        rates = self.lr.tolist() if self.lr is not None else [self.cfg.lr] * p
        groups: dict[float, list[int]] = {}
        for i, rate in enumerate(rates):
            groups.setdefault(rate, []).append(i)
        self.segments = {name: self._segments(name) for name in self.packed}

        def cut(tensor: torch.Tensor, name: str, i: int) -> torch.Tensor:
            piece = tensor[self.segments[name][i]]
            return piece if name in self.index else piece[0]

        self.groups = []  # (lr, params, [exp_avgs, exp_avg_sqs] or [momentum buffers] or [], steps, [(name, i)])
        for rate, nets in groups.items():
            members = [(name, i) for i in nets for name in self.packed]
            self.groups.append(
                (
                    rate,
                    [cut(self.packed[n], n, i) for n, i in members],
                    [[cut(self.buffers[k][n], n, i) for n, i in members] for k in keys],
                    [self.steps[i] for _, i in members],
                    members,
                )
            )
        self._grad_sources: dict[str, torch.Tensor] = {}
        self._group_grads: list[list[torch.Tensor]] = []

    def _group_gradients(self, grads: dict[str, torch.Tensor]) -> list[list[torch.Tensor]]:
        """Each group's per-network gradient pieces, in its members' order; rebuilt only when a gradient tensor is
        a new one (the fast backward and the packed buffers keep theirs from step to step)."""
        if not self._group_grads or any(self._grad_sources.get(n) is not g for n, g in grads.items()):
            self._grad_sources = dict(grads)
            pieces = {
                name: [grad[s] if name in self.index else grad[s][0] for s in self.segments[name]]
                for name, grad in grads.items()
            }
            self._group_grads = [[pieces[n][i] for n, i in members] for *_, members in self.groups]
        return self._group_grads

    def state(self) -> OptimizerState:
        """The state reached, dense (zero at pruned positions), on the parameters' device."""
        tensors: dict[str, dict[str, torch.Tensor]] = {}
        for key, per in self.buffers.items():
            for name, buffer in per.items():
                tensors.setdefault(key, {})[name] = self._densify(name, buffer)
        return OptimizerState(self.start_steps + self.taken, tensors)

    @torch.no_grad()
    def step(self, grads: dict[str, torch.Tensor]) -> None:
        """One update from the gradients of the summed loss (as :meth:`MaskedOptimizer.step`)."""
        packed = {}
        for name in self.packed:
            grad = grads[name]
            if name in self.index and grad is not self.packed_grads[name]:
                grad = torch.gather(grad.reshape(-1), 0, self.index[name], out=self.packed_grads[name])
            packed[name] = grad
        self.taken += 1
        c = self.cfg
        if c.optimizer == "adam":
            self.steps.add_(1)
        for (rate, params, state, steps, _), g in zip(self.groups, self._group_gradients(packed), strict=True):
            if c.optimizer == "adam":
                torch._fused_adam_(
                    params, g, state[0], state[1], [], steps, lr=rate, beta1=0.9, beta2=0.999,
                    weight_decay=c.weight_decay, eps=1e-8, amsgrad=False, maximize=False,
                )  # fmt: skip
            else:
                torch._fused_sgd_(
                    params, g, state[0] if state else [], weight_decay=c.weight_decay, momentum=c.momentum, lr=rate,
                    dampening=0.0, nesterov=False, maximize=False, is_first_step=False,
                )  # fmt: skip
        for name, idx in self.index.items():
            self.dense[name].view(-1).index_copy_(0, idx, self.packed[name])

    @torch.no_grad()
    def remask(self, masks: dict[str, torch.Tensor]) -> None:
        """Change the kept set of some masked weights, keeping the state of the surviving entries (as
        :meth:`MaskedOptimizer.remask`: grown ones start from zero, the step counts stay)."""
        reached = self.state()
        for name, mask in masks.items():
            if name not in self.index:
                raise KeyError(name)
            self._pack(name, mask)
        self._setup(reached)


def masked_optimizer(
    params: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor],
    cfg: OptimizerConfig,
    lr: torch.Tensor | None = None,
    state: OptimizerState | None = None,
) -> MaskedOptimizer:
    """The optimizer of stacked tickets' kept weights for ``cfg.data_order``: :class:`NetworkOptimizer` under
    ``"individual"``, else :class:`MaskedOptimizer` (arguments as theirs)."""
    kind = NetworkOptimizer if getattr(cfg, "data_order", "common") == "individual" else MaskedOptimizer
    return kind(params, masks, cfg, lr, state)
