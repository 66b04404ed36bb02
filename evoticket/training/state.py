"""The training state: what the loop and its step callbacks share, and how one stretch of steps runs.

All P networks to train are stacked into ``(P, ...)`` tensors. Every step runs one forward and one
backward pass for the whole population and one optimizer step over the stacked tensors. The
optimizers used (Adam, SGD with momentum) act on each entry independently and the loss is the *sum*
of the individuals' mean losses, so each individual follows exactly the trajectory it would follow
alone.

Masks are enforced on the gradients: the effective weights start at ``theta0 * mask`` and only the
kept entries are ever updated, so pruned weights stay exactly zero;
:class:`evoticket.training.optimizer.MaskedOptimizer` keeps the optimizer state of the kept entries
only. The gradient is autograd's on the model's batched forward pass
(:class:`evoticket.training.gradients.AutogradGradient`), or the model's hand-written fast backward
(``mlp``, ``mlp_residual``) when the scope trains everything and the model has no BatchNorm.

The loop (:func:`evoticket.training.loop.train`) and the callbacks (:mod:`evoticket.training.callbacks`)
both import this module; it imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from evoticket.config import OptimizerConfig
from evoticket.data import Splits
from evoticket.models import MODELS, Architecture
from evoticket.training.batches import minibatches
from evoticket.training.evaluate import evaluate_params
from evoticket.training.gradients import AutogradGradient, ScoreGradient, topk_masks
from evoticket.training.meter import Meter, backward_flops, forward_flops, kept_counts, train_flops_per_example
from evoticket.training.optimizer import MaskedOptimizer, OptimizerState, make_optimizer, masked_optimizer
from evoticket.training.scopes import Scope


def effective_params(theta0: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Fresh leaf tensors ``theta0 * mask`` (unmasked parameters copied), each ``(P, *shape)``, requiring grad."""
    return {k: (v * masks[k] if k in masks else v).detach().clone().requires_grad_(True) for k, v in theta0.items()}


@dataclass
class TrainState:
    """What the loop and its callbacks share.

    Attributes:
        arch: the architecture.
        splits: the data, on the training device.
        cfg: the optimizer's settings (``[optimizer]``).
        theta0: parameter name -> ``(P, *shape)`` start weights.
        params: parameter name -> ``(P, *shape)`` current effective weights (masked).
        masks: weight name -> ``(P, *shape)`` bool current masks.
        buffers: BatchNorm running statistics (empty without BatchNorm).
        scope: the trainable scope.
        bad: ``(P,)`` bool, True where a loss or weight became non-finite.
        meter: what has been spent so far, per individual.
        step: optimizer steps taken.
        total: optimizer steps planned.
        scores: edge-popup's scores (scope ``scores`` only).
        batches: ``(total, B)`` the run's minibatch indices (row ``s`` is step ``s + 1``'s batch), or
            ``(total, P, B)`` per network (``optimizer.data_order = "individual"``).
        stop: set True by a callback to end training after it.
        lr: ``(P,)`` each network's learning rate (population-based training's genes), or ``None``: ``cfg.lr``.
        carried: the optimizer state the training continues (:class:`evoticket.training.OptimizerState`), used
            when the optimizer is first built; ``None``: a fresh optimizer.
    """

    arch: Architecture
    splits: Splits
    cfg: OptimizerConfig
    theta0: dict[str, torch.Tensor]
    params: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor]
    buffers: dict[str, torch.Tensor]
    scope: Scope
    bad: torch.Tensor
    meter: Meter
    total: int
    step: int = 0
    scores: dict[str, torch.Tensor] | None = None
    batches: torch.Tensor | None = None
    stop: bool = False
    lr: torch.Tensor | None = None
    carried: OptimizerState | None = None
    _optimizer: object = field(default=None, repr=False)
    _gradient: object = field(default=None, repr=False)
    _kept: dict[str, torch.Tensor] | None = field(default=None, repr=False)
    _train_flops: torch.Tensor | None = field(default=None, repr=False)
    _forward_flops: torch.Tensor | None = field(default=None, repr=False)

    @property
    def population(self) -> int:
        """P, the number of stacked networks."""
        return self.bad.shape[0]

    def kept(self) -> dict[str, torch.Tensor]:
        """Weight name -> ``(P,)`` kept weights per individual at the current masks (computed once per mask set)."""
        if self._kept is None:
            self._kept = kept_counts(self.arch, self.masks)
        return self._kept

    def forward_flops(self) -> torch.Tensor:
        """``(P,)`` FLOPs of one example's forward pass at the current masks."""
        if self._forward_flops is None:
            self._forward_flops = forward_flops(self.arch, self.kept())
        return self._forward_flops

    def train_flops_per_example(self) -> torch.Tensor:
        """``(P,)`` FLOPs of one training example (forward and backward) at the current masks and scope."""
        if self._train_flops is None:
            self._train_flops = train_flops_per_example(self.arch, self.kept(), self.scope)
        return self._train_flops

    def evaluate(self, split: str = "val") -> tuple[torch.Tensor, torch.Tensor]:
        """Accuracy and loss ``(P,)`` of the current networks on ``"val"`` or ``"test"``, metered."""
        x, y = (self.splits.x_val, self.splits.y_val) if split == "val" else (self.splits.x_test, self.splits.y_test)
        self.meter.add_evaluation(x.shape[0], self.forward_flops())
        return evaluate_params(self.arch, self.params, x, y, self.buffers or None)

    def dense_gradient(self, batch: torch.Tensor, metered: int | None = None) -> dict[str, torch.Tensor]:
        """The dense gradient of every weight (pruned ones included) on one minibatch, its cost metered (RigL's growth).

        One forward and one backward pass with dense weight gradients over ``batch`` (Evci et al. 2020,
        arXiv:1911.11134); BatchNorm's running statistics are left as they are.

        Args:
            batch: ``(B,)`` training indices (``(P, B)``: one minibatch per network).
            metered: charge the cost to the first ``metered`` networks only (those whose masks it changes);
                default all.

        Returns:
            Weight name -> ``(P, *shape)`` gradient of the summed loss.
        """
        weights = frozenset(self.arch.weight_names)
        buffers = {k: v.clone() for k, v in self.buffers.items()} or None  # no side effect on BatchNorm
        gradient = AutogradGradient(self.arch, self.params, sorted(weights), buffers)
        gradient(self.splits.x_train[batch], self.splits.y_train[batch])
        kept = self.kept()
        per_example = forward_flops(self.arch, kept) + backward_flops(
            self.arch, kept, weights, dense_weight_grads=weights
        )
        n = self.population if metered is None else metered
        self.meter.train_flops[:n] += batch.shape[-1] * per_example[:n]
        return gradient.grads

    def optimizer_state(self) -> OptimizerState | None:
        """The optimizer state reached (:meth:`evoticket.training.MaskedOptimizer.state`); the carried state when no
        step has been taken; ``None`` for edge-popup's scores or when nothing was carried nor trained."""
        if isinstance(self._optimizer, MaskedOptimizer):
            return self._optimizer.state()
        return self.carried

    def set_masks(self, masks: dict[str, torch.Tensor], *, keep_state: bool = True) -> None:
        """Replace the masks: newly pruned weights become 0, newly grown ones start at 0.

        Args:
            masks: weight name -> ``(P, *shape)`` bool, for some or all masked weights.
            keep_state: keep the optimizer state (momentum, Adam moments) of the weights that stay
                kept, grown ones starting from zero (:meth:`MaskedOptimizer.remask`), as gradual
                pruning and RigL do; ``False`` restarts the optimizer.
        """
        with torch.no_grad():
            for name, mask in masks.items():
                self.masks[name] = mask.to(self.params[name].device)
                self.params[name].mul_(self.masks[name])
        opt = self._optimizer
        if keep_state and isinstance(opt, MaskedOptimizer):
            opt.remask({k: self.masks[k] for k in masks if k in opt.index})
        else:  # a carried state (a packed run's, or one not yet used) continues at the kept entries
            self._optimizer = None
            if not keep_state:
                self.carried = None
        self._gradient = None  # a fast gradient writes into the optimizer's packed buffers
        self._kept = self._train_flops = self._forward_flops = None

    def run_steps(self, batches: torch.Tensor) -> None:
        """Run ``len(batches)`` optimizer steps (the loop calls this between due callbacks).

        Args:
            batches: ``(steps, B)`` indices of a minibatch shared by the P networks, or ``(steps, P, B)``, one
                each (``optimizer.data_order = "individual"``). In a packed run
                (:mod:`evoticket.training.packing`) the steps of a training that can share a batch are taken
                together with other runs' trainings, to the same result.
        """
        if not len(batches):
            return
        from evoticket.training.packing import active_packer, pack_key

        packer = active_packer()
        key = pack_key(self, batches) if packer is not None else None
        if key is not None:
            packer.run_steps(self, batches, key)
        else:
            self._steps(batches)
        if self.scope.scores:  # the kept counts stay: top-k of the same k
            self.masks = topk_masks(self.scores, self.kept())
            with torch.no_grad():
                for name, mask in self.masks.items():
                    self.params[name] = self.theta0[name] * mask
        self.meter.add_training(len(batches), batches.shape[-1], self.train_flops_per_example())

    def _steps(self, batches: torch.Tensor) -> None:
        """The optimizer steps themselves: the gradient and the update of every step of ``batches``."""
        if batches.dim() == 3 and self.population == 1:
            from evoticket.training.packing import run_together

            run_together([self], [batches])  # one network on its own minibatches: as it trains packed
            return
        if self._optimizer is None or self._gradient is None:
            self._build(batches.shape[-1], per_network=batches.dim() == 3)
        gradient, opt = self._gradient, self._optimizer
        for x, y in minibatches(self.splits, batches):
            loss = gradient(x, y)  # (P,)
            self.bad |= ~torch.isfinite(loss)
            if isinstance(opt, MaskedOptimizer):
                opt.step(gradient.grads)
            else:
                for name, s in self.scores.items():
                    s.grad = gradient.grads[name]
                opt.step()

    def _build(self, batch: int, per_network: bool = False) -> None:
        if self.scope.scores:
            if self._optimizer is None and self.cfg.data_order == "individual":  # each network's scores its own tensor
                self._optimizer = masked_optimizer(self.scores, {}, self.cfg, state=self.carried)
                self.carried = None
            elif self._optimizer is None:
                self._optimizer = make_optimizer(list(self.scores.values()), self.cfg)
            self._gradient = ScoreGradient(self.arch, self.theta0, self.scores, self.kept(), self.buffers or None)
            return
        trainable = self.scope.trainable(self.arch)
        if self._optimizer is None:
            params = {k: v for k, v in self.params.items() if k in trainable}
            masks = {k: v for k, v in self.masks.items() if k in trainable}
            self._optimizer = masked_optimizer(params, masks, self.cfg, self.lr, state=self.carried)
            self.carried = None  # a rebuilt optimizer (set_masks(keep_state=False)) starts fresh
        fast = None if self.arch.generic else MODELS[self.arch.name].fast_gradient
        if fast is not None and trainable == frozenset(self.params) and not self.buffers:
            self._gradient = fast(self.arch, self.params, batch, self._optimizer, per_network=per_network)
        else:
            self._gradient = AutogradGradient(self.arch, self.params, sorted(trainable), self.buffers or None)


__all__ = ["TrainState", "effective_params"]
