"""The one batched training loop of every method.

All P networks to train are stacked into ``(P, ...)`` tensors and trained in one batched
computation: every step runs one forward and one backward pass for the whole population and one
optimizer step over the stacked tensors. The optimizers used (Adam, SGD with momentum) act on
each entry independently and the loss is the *sum* of the individuals' mean losses, so each
individual follows exactly the trajectory it would follow alone.

Masks are enforced on the gradients: the effective weights start at ``theta0 * mask`` and only
the kept entries are ever updated, so pruned weights stay exactly zero.
:class:`evoticket.training.optimizer.MaskedOptimizer` keeps the optimizer state of the kept
entries only.

:func:`train` is the loop. It takes

* a **trainable scope** (:mod:`evoticket.training.scopes`): kept weights, biases, BatchNorm
  affine parameters, the output layer, or edge-popup's per-weight scores;
* **step callbacks** (:mod:`evoticket.training.callbacks`): evaluate every k steps, save the
  weights at step k, early stopping, mask updates;

and meters what it spends (:mod:`evoticket.training.meter`). The gradient is autograd's on the
model's batched forward pass, or the model's hand-written fast backward (``mlp``,
``mlp_residual``) when the scope trains everything and the model has no BatchNorm.

:func:`finetune_tickets` (the GA's short fine-tuning, in memory-sized chunks) and
:func:`train_early_stopping` (full training, test accuracy at the early-stopping step) are
:func:`train` with the matching callbacks. Every individual of a call sees the same minibatch
sequence (common random numbers), so chunking does not change any result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from evoticket.config import FinetuneConfig
from evoticket.data import Splits
from evoticket.genome import Ticket, compact_learned, stack_tickets
from evoticket.models import MODELS, Architecture, per_individual_loss
from evoticket.training.batches import minibatch_indices, minibatches
from evoticket.training.callbacks import Callback, EarlyStopping, Evaluate, SaveWeights
from evoticket.training.evaluate import evaluate_params, nonfinite, now
from evoticket.training.memory import population_chunk
from evoticket.training.meter import Meter, backward_flops, forward_flops, kept_counts
from evoticket.training.optimizer import MaskedOptimizer, make_optimizer
from evoticket.training.scopes import Scope, get_scope


def effective_params(theta0: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Fresh leaf tensors ``theta0 * mask`` (unmasked parameters copied), each ``(P, *shape)``, requiring grad."""
    return {k: (v * masks[k] if k in masks else v).detach().clone().requires_grad_(True) for k, v in theta0.items()}


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


def train_flops_per_example(
    arch: Architecture, kept: dict[str, torch.Tensor | int], scope: str | Scope = "kept"
) -> torch.Tensor:
    """FLOPs of one training example (forward and backward pass) in the engine, as its meter counts them.

    Args:
        arch: the architecture.
        kept: weight name -> kept weights, ``(P,)`` or an int (every prunable layer).
        scope: the trainable scope; ``scores`` (edge-popup) computes every weight's gradient.

    Returns:
        ``(P,)`` int64 FLOPs (a 0-d tensor for int counts); a step of batch B costs B times this.
    """
    scope = get_scope(scope, arch)
    if scope.scores:
        weights = frozenset(arch.weight_names)
        back = backward_flops(arch, kept, weights, dense_weight_grads=weights)
    else:
        back = backward_flops(arch, kept, scope.trainable(arch))
    return forward_flops(arch, kept) + back


@dataclass
class TrainState:
    """What the loop and its callbacks share.

    Attributes:
        arch: the architecture.
        splits: the data, on the training device.
        cfg: optimizer settings.
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
        batches: ``(total, B)`` the run's minibatch indices (row ``s`` is step ``s + 1``'s batch).
        stop: set True by a callback to end training after it.
    """

    arch: Architecture
    splits: Splits
    cfg: FinetuneConfig
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
        else:
            self._optimizer = None
        self._gradient = None  # a fast gradient writes into the optimizer's packed buffers
        self._kept = self._train_flops = self._forward_flops = None

    # ------------------------------------------------------------ internals
    def _build(self, batch: int) -> None:
        if self.scope.scores:
            self._optimizer = make_optimizer(list(self.scores.values()), self.cfg)
            self._gradient = ScoreGradient(self.arch, self.theta0, self.scores, self.kept(), self.buffers or None)
            return
        trainable = self.scope.trainable(self.arch)
        if self._optimizer is None:
            params = {k: v for k, v in self.params.items() if k in trainable}
            masks = {k: v for k, v in self.masks.items() if k in trainable}
            self._optimizer = MaskedOptimizer(params, masks, self.cfg)
        fast = MODELS[self.arch.name].fast_gradient
        if fast is not None and trainable == frozenset(self.params) and not self.buffers:
            self._gradient = fast(self.arch, self.params, batch, self._optimizer)
        else:
            self._gradient = AutogradGradient(self.arch, self.params, sorted(trainable), self.buffers or None)

    def _steps(self, batches: torch.Tensor) -> None:
        """Run ``len(batches)`` optimizer steps."""
        if not len(batches):
            return
        if self._optimizer is None or self._gradient is None:
            self._build(batches.shape[1])
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
        if self.scope.scores:  # the kept counts stay: top-k of the same k
            self.masks = topk_masks(self.scores, self.kept())
            with torch.no_grad():
                for name, mask in self.masks.items():
                    self.params[name] = self.theta0[name] * mask
        self.meter.add_training(len(batches), batches.shape[1], self.train_flops_per_example())


def train(
    arch: Architecture,
    theta0: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor],
    splits: Splits,
    cfg: FinetuneConfig,
    batches: torch.Tensor,
    *,
    scope: str | Scope = "kept",
    callbacks: Sequence[Callback] = (),
    scores: dict[str, torch.Tensor] | None = None,
) -> TrainState:
    """Train P stacked networks for ``len(batches)`` steps, calling the callbacks when due.

    Args:
        arch: the architecture of every network.
        theta0: parameter name -> ``(P, *shape)`` start weights, on the device.
        masks: weight name -> ``(P, *shape)`` bool masks, on the device. With the ``scores``
            scope they give only each layer's kept count.
        splits: the data, on the device.
        cfg: optimizer, learning rate and the like (``cfg.steps`` is ignored: the number of steps
            is ``len(batches)``).
        batches: ``(steps, B)`` int64 indices into the training split.
        scope: the trainable scope (a name of :data:`evoticket.training.scopes.SCOPES`).
        callbacks: step callbacks, run in order at each due step.
        scores: edge-popup's initial scores, weight name -> ``(P, *shape)`` (scope ``scores``).

    Returns:
        The final :class:`TrainState` (weights, masks, meter, non-finite flags).

    Raises:
        ConfigError: for an unknown scope, or one that trains nothing in ``arch``.
        ValueError: for the ``scores`` scope without scores.
    """
    scope = get_scope(scope, arch)
    p = next(iter(theta0.values())).shape[0]
    device = splits.device
    if scope.scores:
        if scores is None:
            raise ValueError("the 'scores' scope needs initial scores")
        scores = {k: v.detach().clone().to(device) for k, v in scores.items()}
        masks = topk_masks(scores, kept_counts(arch, masks))
    state = TrainState(
        arch=arch,
        splits=splits,
        cfg=cfg,
        theta0=theta0,
        params=effective_params(theta0, masks),
        masks=dict(masks),
        buffers=arch.init_buffers(p, device),
        scope=scope,
        bad=torch.zeros(p, dtype=torch.bool, device=device),
        meter=Meter.zeros(p),
        total=len(batches),
        scores=scores,
        batches=batches,
    )
    for cb in callbacks:
        if cb.due(0, state.total):
            cb(state)
    while state.step < state.total and not state.stop:
        nxt = min([cb.next_due(state.step, state.total) for cb in callbacks] + [state.total])
        state._steps(batches[state.step : nxt])
        state.step = nxt
        for cb in callbacks:
            if cb.due(state.step, state.total):
                cb(state)
    return state


# ---------------------------------------------------------------------------
# the GA's fine-tuning and the full training of the final comparison


@dataclass
class BatchResult:
    """What one batched fine-tuning measured; every tensor on the CPU.

    Attributes:
        val_acc_before: ``(P,)`` validation accuracy at step 0 (``theta0 * mask``), in [0, 1].
        val_loss_before: ``(P,)`` validation loss at step 0 (nats).
        val_acc: ``(P,)`` validation accuracy after fine-tuning, in [0, 1].
        val_loss: ``(P,)`` validation loss after fine-tuning (nats).
        nonfinite: ``(P,)`` bool, True where a loss or weight became NaN/inf.
        weights: parameter name -> ``(P, *shape)`` fine-tuned effective weights, when requested
            (e.g. Lamarckian mode); else ``None``.
        rewound: the same at step ``inherit_step`` (late rewinding as inheritance), when requested.
        learned: one :data:`evoticket.genome.Learned` per network (fine-tuned magnitudes, and
            dense-gradient growth candidates), when requested; else ``None``.
        train_seconds: wall time of the optimizer steps (forward, backward and
            update), in seconds; CUDA work is synchronised before reading the clock.
        eval_seconds: wall time of the validation passes before and after
            fine-tuning, in seconds.
        meter: the compute spent per individual (steps, training and evaluation FLOPs).
    """

    val_acc_before: torch.Tensor
    val_loss_before: torch.Tensor
    val_acc: torch.Tensor
    val_loss: torch.Tensor
    nonfinite: torch.Tensor
    weights: dict[str, torch.Tensor] | None = None
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    meter: Meter | None = None
    learned: list | None = None
    rewound: dict[str, torch.Tensor] | None = None

    @staticmethod
    def concat(parts: Sequence[BatchResult]) -> BatchResult:
        """Join the results of consecutive chunks along the population axis; times are summed."""
        weights = rewound = None
        if parts[0].weights is not None:
            weights = {k: torch.cat([p.weights[k] for p in parts]) for k in parts[0].weights}
        if parts[0].rewound is not None:
            rewound = {k: torch.cat([p.rewound[k] for p in parts]) for k in parts[0].rewound}
        meter = Meter.concat([p.meter for p in parts]) if all(p.meter is not None for p in parts) else None
        return BatchResult(
            *(
                torch.cat([getattr(p, f) for p in parts])
                for f in ("val_acc_before", "val_loss_before", "val_acc", "val_loss", "nonfinite")
            ),
            weights=weights,
            train_seconds=sum(p.train_seconds for p in parts),
            eval_seconds=sum(p.eval_seconds for p in parts),
            meter=meter,
            learned=[x for p in parts for x in p.learned] if parts[0].learned is not None else None,
            rewound=rewound,
        )


class _Timed(Evaluate):
    """Validation before and after training, with the wall time of evaluations and of training."""

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.device = device
        self.eval_seconds = 0.0
        self.train_start = 0.0
        self.train_seconds = 0.0

    def __call__(self, state: TrainState) -> None:
        if state.step > 0:
            self.train_seconds = now(self.device) - self.train_start
        start = now(self.device)
        super().__call__(state)
        self.eval_seconds += now(self.device) - start
        self.train_start = now(self.device)


def finetune_stacked(
    arch: Architecture,
    theta0: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor],
    splits: Splits,
    cfg: FinetuneConfig,
    batches: torch.Tensor,
    *,
    return_weights: bool = False,
    scope: str | Scope = "kept",
    learned: str = "none",
    inherit_step: int = 0,
) -> BatchResult:
    """Fine-tune P stacked networks together, then evaluate them on validation.

    Args:
        arch, theta0, masks, splits, cfg, batches, scope: as for :func:`train`.
        return_weights: also return the fine-tuned weights (on the CPU).
        learned: ``"none"``, ``"magnitudes"`` (return each network's fine-tuned magnitudes) or
            ``"gradients"`` (also the dense gradient's largest pruned positions, from one dense
            backward pass on the last step's minibatch, its FLOPs added to the meter, as RigL counts it).
        inherit_step: with ``return_weights``, also return the weights at this step as ``rewound``
            (late rewinding as inheritance, Frankle et al. 2019, arXiv:1903.01611); 0 or
            ``len(batches)``: none (the final weights are the ones to inherit).

    Returns:
        The :class:`BatchResult` of the P networks, with the wall time of the
        training steps and of the two validation passes.
    """
    timer = _Timed(splits.device)
    callbacks: list[Callback] = [timer]
    rewind = return_weights and 0 < inherit_step < len(batches)
    if rewind:
        callbacks.append(SaveWeights([inherit_step]))
    state = train(arch, theta0, masks, splits, cfg, batches, scope=scope, callbacks=callbacks)
    (before, after) = timer.history[0], timer.history[-1]
    bad = state.bad | nonfinite(state.params, after["val_loss"])
    weights = {k: v.detach().cpu() for k, v in state.params.items()} if return_weights else None
    rewound = {k: v.cpu() for k, v in callbacks[-1].saved[inherit_step].items()} if rewind else None
    traits = learned_traits(state, learned) if learned != "none" else None
    return BatchResult(
        before["val_acc"].cpu(),
        before["val_loss"].cpu(),
        after["val_acc"].cpu(),
        after["val_loss"].cpu(),
        bad.cpu(),
        weights,
        timer.train_seconds,
        timer.eval_seconds,
        state.meter,
        traits,
        rewound,
    )


def dense_gradient(state: TrainState, batch: torch.Tensor, metered: int | None = None) -> dict[str, torch.Tensor]:
    """The dense gradient of every weight (pruned ones included) on one minibatch, its cost metered (RigL's growth).

    One forward and one backward pass with dense weight gradients over ``batch``; BatchNorm's running
    statistics are left as they are.

    Args:
        state: the training state (its current weights).
        batch: ``(B,)`` training indices.
        metered: charge the cost to the first ``metered`` networks only (those whose masks it changes);
            default all.

    Returns:
        Weight name -> ``(P, *shape)`` gradient of the summed loss.
    """
    weights = frozenset(state.arch.weight_names)
    buffers = {k: v.clone() for k, v in state.buffers.items()} or None  # no side effect on BatchNorm
    gradient = AutogradGradient(state.arch, state.params, sorted(weights), buffers)
    gradient(state.splits.x_train[batch], state.splits.y_train[batch])
    kept = state.kept()
    per_example = forward_flops(state.arch, kept) + backward_flops(
        state.arch, kept, weights, dense_weight_grads=weights
    )
    n = state.population if metered is None else metered
    state.meter.train_flops[:n] += batch.numel() * per_example[:n]
    return gradient.grads


def learned_traits(state: TrainState, kind: str) -> list:
    """What the networks of ``state`` learned: their magnitudes and, for ``"gradients"``, RigL's growth candidates.

    The dense gradient is taken on the minibatch of the last step (or the first one, before any
    step); its cost, one forward and one backward pass with dense weight gradients, is added to
    the meter's training FLOPs.

    Args:
        state: the state after training.
        kind: ``"magnitudes"`` or ``"gradients"``.

    Returns:
        One :data:`evoticket.genome.Learned` per network (:func:`evoticket.genome.compact_learned`).
    """
    grads = None
    if kind == "gradients" and len(state.batches):
        grads = dense_gradient(state, state.batches[max(0, state.step - 1)])
    return compact_learned({k: state.params[k] for k in state.masks}, state.masks, grads)


@dataclass
class TrainResult:
    """Full training with early stopping; every tensor ``(P,)`` on the CPU.

    Attributes:
        best_step: the early-stopping step (checked every ``eval_every`` steps, step 0 included).
        val_acc: validation accuracy at ``best_step``, in [0, 1].
        val_loss: validation loss at ``best_step`` (nats).
        test_acc: test accuracy at ``best_step``, in [0, 1].
        final_test_acc: test accuracy after the last step, in [0, 1].
        nonfinite: bool, True where a loss or weight became NaN/inf.
        meter: the compute spent per individual.
        weights: parameter (and BatchNorm buffer) name -> ``(P, *shape)`` trained weights at the
            early-stopping step (CPU), with ``keep_weights``; else ``None``.
    """

    best_step: torch.Tensor
    val_acc: torch.Tensor
    val_loss: torch.Tensor
    test_acc: torch.Tensor
    final_test_acc: torch.Tensor
    nonfinite: torch.Tensor
    meter: Meter | None = None
    weights: dict[str, torch.Tensor] | None = None


def train_early_stopping(
    arch: Architecture,
    theta0: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor],
    splits: Splits,
    cfg: FinetuneConfig,
    batches: torch.Tensor,
    eval_every: int,
    criterion: str = "val_acc",
    *,
    scope: str | Scope = "kept",
    callbacks: Sequence[Callback] = (),
    keep_weights: bool = False,
) -> TrainResult:
    """Train P stacked networks fully and report test accuracy at the early-stopping step.

    See :class:`evoticket.training.callbacks.EarlyStopping` for how the step is chosen (on the
    validation split only).

    Args:
        arch, theta0, masks, splits, cfg, batches, scope: as for :func:`train`.
        eval_every: steps between validation checks, >= 1.
        criterion: one of :data:`evoticket.training.callbacks.EARLY_STOPPING`.
        callbacks: more step callbacks, run after the early-stopping check.
        keep_weights: return the weights at the early-stopping step.

    Raises:
        ValueError: for an unknown ``criterion``.
    """
    stopping = EarlyStopping(eval_every, criterion, keep_weights=keep_weights)
    state = train(arch, theta0, masks, splits, cfg, batches, scope=scope, callbacks=[stopping, *callbacks])
    best = stopping.best
    bad = state.bad | nonfinite(state.params, stopping.last_val_loss)
    return TrainResult(
        best["step"].cpu(),
        best["acc"].cpu(),
        best["loss"].cpu(),
        best["test"].cpu(),
        stopping.last_test_acc.cpu(),
        bad.cpu(),
        state.meter,
        {k: v.cpu() for k, v in stopping.best_weights.items()} if keep_weights else None,
    )


def finetune_tickets(
    tickets: Sequence[Ticket],
    arch: Architecture,
    splits: Splits,
    cfg: FinetuneConfig,
    seed: int,
    *,
    steps: int | None = None,
    return_weights: bool = False,
    learned: str = "none",
    inherit_step: int = 0,
) -> BatchResult:
    """Fine-tune and evaluate P tickets in chunks that fit the memory budget.

    The chunk size comes from :func:`evoticket.training.memory.population_chunk` (memory
    budget and device block) at the highest density among the tickets.

    Args:
        tickets: the P tickets (CPU tensors).
        arch: their architecture.
        splits: the data; its device is where the work runs.
        cfg: fine-tuning settings.
        seed: seed of the minibatch sequence (shared by all P).
        steps: number of steps; default ``cfg.steps``.
        return_weights: also return the fine-tuned weights.
        learned, inherit_step: as for :func:`finetune_stacked`.

    Returns:
        The concatenated :class:`BatchResult`, in the order of ``tickets``,
        with the chunks' training and evaluation times summed.
    """
    steps = cfg.steps if steps is None else steps
    device = splits.device
    batches = minibatch_indices(splits.x_train.shape[0], steps, cfg.batch_size, seed, device)
    density = max((t.total_density() for t in tickets), default=1.0)
    size = population_chunk(arch, cfg, splits.x_val.shape[0], density, device)
    parts = []
    for start in range(0, len(tickets), size):
        theta0, masks = stack_tickets(tickets[start : start + size], device)
        parts.append(
            finetune_stacked(
                arch,
                theta0,
                masks,
                splits,
                cfg,
                batches,
                return_weights=return_weights,
                learned=learned,
                inherit_step=inherit_step,
            )
        )
    return BatchResult.concat(parts)


def train_steps(
    arch: Architecture,
    params: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor],
    splits: Splits,
    opt: MaskedOptimizer | torch.optim.Optimizer,
    batches: torch.Tensor,
    bad: torch.Tensor,
) -> None:
    """Run ``len(batches)`` optimizer steps on stacked parameters, in place, with a given optimizer.

    A lower-level entry than :func:`train`, for callers that bring their own optimizer.

    Args:
        arch: the architecture.
        params: parameter name -> ``(P, *shape)`` contiguous tensors.
        masks: weight name -> ``(P, *shape)`` bool masks; only kept entries move.
        splits: the data, on the parameters' device.
        opt: a :class:`MaskedOptimizer` over ``params`` (fast), or a ``torch.optim`` optimizer
            over ``params.values()`` (see :func:`make_optimizer`), which then gets masked gradients.
        batches: ``(steps, B)`` training indices.
        bad: ``(P,)`` bool, or-ed in place with "this step's loss was non-finite".
    """
    if not len(batches):
        return
    fast = MODELS[arch.name].fast_gradient
    packing = opt if isinstance(opt, MaskedOptimizer) else None
    if fast is not None:
        gradient = fast(arch, params, batches.shape[1], packing)
    else:
        gradient = AutogradGradient(arch, params)
    dense_masks = None if packing is not None else {k: m.to(params[k].dtype) for k, m in masks.items()}
    for x, y in minibatches(splits, batches):
        loss = gradient(x, y)  # (P,)
        bad |= ~torch.isfinite(loss)
        if dense_masks is None:
            opt.step(gradient.grads)
            continue
        with torch.no_grad():
            for name, param in params.items():
                grad = gradient.grads[name]
                param.grad = grad.mul_(dense_masks[name]) if name in dense_masks else grad
        opt.step()


__all__ = [
    "AutogradGradient",
    "BatchResult",
    "ScoreGradient",
    "TrainResult",
    "TrainState",
    "dense_gradient",
    "effective_params",
    "finetune_stacked",
    "finetune_tickets",
    "learned_traits",
    "topk_masks",
    "train",
    "train_early_stopping",
    "train_flops_per_example",
    "train_steps",
]
