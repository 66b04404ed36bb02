"""Batched fine-tuning and evaluation of a whole population of tickets.

All P tickets to evaluate are stacked into ``(P, ...)`` tensors and trained in
one batched computation: every step runs one forward and one backward pass for
the whole population and one optimizer step over the stacked tensors. The
optimizers used (Adam, SGD with momentum) act on each entry independently and
the loss is the *sum* of the individuals' mean losses, so each individual
follows exactly the trajectory it would follow alone.

Masks are enforced on the gradients: the effective weights start at
``theta0 * mask`` and only the kept entries are ever updated, so pruned weights
stay exactly zero (their gradient, momentum, Adam moments and weight decay are
all zero). :class:`MaskedOptimizer` therefore keeps the optimizer state of the
kept entries only, packed into one vector per layer.

How a step is computed (measured in ``benchmarks/README.md``):

* Every individual of a call sees the same minibatch sequence (common random
  numbers), drawn by :func:`minibatch_indices` from one seed. The first layer
  of the whole population is therefore one large matmul; the later layers are
  batched matmuls; activations are feature-major ``(P, features, B)``.
* ``mlp`` and ``mlp_residual`` use a hand-written backward pass into buffers
  allocated once per call (no autograd graph, no per-step allocation of
  population-sized tensors); each masked weight's gradient is computed a
  cache-sized block at a time and only its kept entries are kept
  (:data:`GRAD_BLOCK_BYTES`). ``cnn1d`` uses autograd on
  :meth:`evoticket.models.Architecture.forward_batched`.
* The optimizer step is one fused Adam (or SGD) over the packed kept entries.
* The minibatches are gathered in blocks of steps, not one gather per step.

The population is split into chunks whose estimated memory fits a budget
(and, on the CPU, into blocks of :data:`POPULATION_BLOCK`); chunks share the
minibatch sequence, so chunking does not change any result.

An individual whose loss or weights become non-finite is flagged; since the
individuals share no parameter, the others are unaffected.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from evoticket.config import FinetuneConfig
from evoticket.data import Splits
from evoticket.errors import ConfigError
from evoticket.genome import Ticket, stack_tickets
from evoticket.models import Architecture

EVAL_BATCH = 2000
"""Validation/test examples per forward pass when measuring accuracy."""

STAGE_BYTES = 8 * 2**20
"""Largest block of training inputs gathered at once for the coming steps (bytes)."""

POPULATION_BLOCK = {"cpu": 64}
"""Device type -> most individuals :func:`finetune_tickets` fine-tunes in one batched computation.
On the CPU a larger population runs in blocks of this size, whose activations stay in cache
(measured on 2 cores: MNIST-1D ``mlp`` at 4,900 individual steps/s as one block of 256, 6,000 in
blocks of 64). Blocks share the minibatch sequence, so results do not change."""

GRAD_BLOCK_BYTES = {"cpu": 2 * 2**20, "cuda": 256 * 2**20}
"""Device type -> size of the scratch block in which a masked weight's gradient is computed, a
slice of the population at a time, before its kept entries are gathered (bytes). On the CPU a
block that stays in the core's cache makes the gather cheap and the dense gradient is never
written to memory."""


def resolve_device(name: str = "auto") -> torch.device:
    """Turn ``campaign.device`` into a ``torch.device``.

    Args:
        name: ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.

    Raises:
        ConfigError: if CUDA is requested and not available, or ``cuda:N`` does not exist.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"campaign.device: {name!r} requested but CUDA is not available here; valid: 'auto', 'cpu'"
            )
        index = int(name[5:]) if name.startswith("cuda:") else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"campaign.device: {name!r} does not exist; this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    return torch.device(name)


def minibatch_indices(
    n_train: int, steps: int, batch_size: int, seed: int, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """The minibatch sequence shared by a whole batched fine-tuning.

    Examples are drawn without replacement within an epoch (a fresh
    permutation each epoch); a batch never straddles two epochs' duplicates.

    Args:
        n_train: training examples, >= 1.
        steps: number of minibatches.
        batch_size: examples per minibatch; capped at ``n_train``.
        seed: seed of the permutations.
        device: where the index tensor goes.

    Returns:
        int64 tensor of shape ``(steps, min(batch_size, n_train))``.
    """
    batch = min(batch_size, n_train)
    per_epoch = n_train // batch
    epochs = math.ceil(steps / per_epoch) if steps else 0
    gen = torch.Generator().manual_seed(int(seed))
    rows = []
    for _ in range(epochs):
        perm = torch.randperm(n_train, generator=gen)[: per_epoch * batch]
        rows.append(perm.view(per_epoch, batch))
    if not rows:
        return torch.empty((0, batch), dtype=torch.long, device=device)
    return torch.cat(rows)[:steps].to(device)


def per_individual_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each individual.

    Args:
        logits: ``(P, B, C)``.
        y: labels ``(B,)``, int64.

    Returns:
        ``(P,)`` losses (nats).
    """
    p = logits.shape[0]
    loss = F.cross_entropy(logits.transpose(1, 2), y.expand(p, -1), reduction="none")  # (P, B)
    return loss.mean(1)


@torch.no_grad()
def evaluate_params(
    arch: Architecture, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Accuracy and mean loss of P networks on a whole split.

    Args:
        arch: the architecture.
        params: parameter name -> ``(P, *shape)`` effective weights.
        x: inputs ``(N, *input_shape)``; y: labels ``(N,)``.

    Returns:
        ``(accuracy, loss)``, each ``(P,)`` float32 on ``x``'s device;
        accuracy in [0, 1], loss in nats (non-finite for a diverged network).
    """
    p = next(iter(params.values())).shape[0]
    correct = torch.zeros(p, device=x.device)
    loss = torch.zeros(p, device=x.device)
    for start in range(0, x.shape[0], EVAL_BATCH):
        xb, yb = x[start : start + EVAL_BATCH], y[start : start + EVAL_BATCH]
        logits = arch.forward_batched(params, xb)  # (P, b, C), a view of a contiguous (P, C, b)
        correct += (logits.contiguous().argmax(-1) == yb).sum(1)  # argmax is slow over a strided dim
        loss += per_individual_loss(logits, yb) * yb.shape[0]
    n = x.shape[0]
    return correct / n, loss / n


def _now(device: torch.device) -> float:
    """Wall clock (s) after the device has finished its queued work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


@dataclass
class BatchResult:
    """What one batched fine-tuning measured; every tensor on the CPU.

    Attributes:
        val_acc_before: ``(P,)`` validation accuracy at step 0 (``theta0 * mask``), in [0, 1].
        val_loss_before: ``(P,)`` validation loss at step 0 (nats).
        val_acc: ``(P,)`` validation accuracy after fine-tuning, in [0, 1].
        val_loss: ``(P,)`` validation loss after fine-tuning (nats).
        nonfinite: ``(P,)`` bool, True where a loss or weight became NaN/inf.
        weights: parameter name -> ``(P, *shape)`` fine-tuned effective weights,
            when requested (e.g. Lamarckian mode); else ``None``.
        train_seconds: wall time of the optimizer steps (forward, backward and
            update), in seconds; CUDA work is synchronised before reading the clock.
        eval_seconds: wall time of the validation passes before and after
            fine-tuning, in seconds.
    """

    val_acc_before: torch.Tensor
    val_loss_before: torch.Tensor
    val_acc: torch.Tensor
    val_loss: torch.Tensor
    nonfinite: torch.Tensor
    weights: dict[str, torch.Tensor] | None = None
    train_seconds: float = 0.0
    eval_seconds: float = 0.0

    @staticmethod
    def concat(parts: Sequence[BatchResult]) -> BatchResult:
        """Join the results of consecutive chunks along the population axis; times are summed."""
        weights = None
        if parts[0].weights is not None:
            weights = {k: torch.cat([p.weights[k] for p in parts]) for k in parts[0].weights}
        return BatchResult(
            *(
                torch.cat([getattr(p, f) for p in parts])
                for f in ("val_acc_before", "val_loss_before", "val_acc", "val_loss", "nonfinite")
            ),
            weights=weights,
            train_seconds=sum(p.train_seconds for p in parts),
            eval_seconds=sum(p.eval_seconds for p in parts),
        )


def make_optimizer(params: Sequence[torch.Tensor], cfg: FinetuneConfig) -> torch.optim.Optimizer:
    """The optimizer of ``finetune.optimizer`` over dense stacked parameters.

    Uses the multi-tensor (``foreach``) implementation: one update over all
    stacked tensors per step. :func:`finetune_stacked` uses the faster
    :class:`MaskedOptimizer` instead; this one remains for callers that want a
    plain ``torch.optim`` optimizer (:func:`train_steps` accepts both).
    """
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, foreach=True)


def _packed_optimizer(params: list[torch.Tensor], cfg: FinetuneConfig) -> torch.optim.Optimizer:
    """``finetune.optimizer`` over packed vectors: the fused kernel where this torch has one, else ``foreach``."""
    if cfg.optimizer == "adam":
        kind, kwargs = torch.optim.Adam, {"lr": cfg.lr, "weight_decay": cfg.weight_decay}
    else:
        kind, kwargs = torch.optim.SGD, {"lr": cfg.lr, "momentum": cfg.momentum, "weight_decay": cfg.weight_decay}
    try:
        return kind(params, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device or torch version
        return kind(params, foreach=True, **kwargs)


class MaskedOptimizer:
    """``finetune.optimizer`` (Adam or SGD) over the kept weights of stacked tickets only.

    A pruned weight has zero gradient, so its momentum, Adam moments and
    (coupled) weight decay stay zero and it never moves: updating the kept
    entries only gives exactly the trajectory of a dense optimizer on masked
    gradients, while the optimizer state, the gradient gather and the update
    touch ``density`` times the memory. Each masked weight's kept entries are
    packed into one vector (the optimizer's parameter) and written back into
    the dense tensor after every step; biases are updated in place, densely.

    Args:
        params: parameter name -> ``(P, *shape)`` contiguous dense tensors,
            updated in place by :meth:`step`.
        masks: weight name -> ``(P, *shape)`` bool masks.
        cfg: optimizer, learning rate, momentum and weight decay.

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

    def __init__(self, params: dict[str, torch.Tensor], masks: dict[str, torch.Tensor], cfg: FinetuneConfig) -> None:
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
        self.optimizer = _packed_optimizer(list(self.packed.values()), cfg)

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
        self.optimizer.step()
        for name, idx in self.index.items():
            self.dense[name].view(-1).index_copy_(0, idx, self.packed[name])


class _MLPGradient:
    """Summed loss and its gradients for P stacked ``mlp``/``mlp_residual`` networks.

    A hand-written backward pass, feature-major ``(P, features, B)``, into
    buffers allocated once: no autograd graph, no population-sized allocation
    per step. The gradients equal autograd's on
    :meth:`~evoticket.models.Architecture.forward_batched` with
    :func:`per_individual_loss` (up to float rounding).

    With ``packing``, the gradient of each masked weight is computed a block
    of rows (layer 1) or individuals (later layers) at a time into a small
    scratch buffer, and only its kept entries are gathered into
    ``packing.packed_grads`` (see :data:`GRAD_BLOCK_BYTES`); :attr:`grads`
    then holds those packed buffers for the masked weights.

    Args:
        arch: an ``mlp`` or ``mlp_residual`` architecture.
        params: parameter name -> ``(P, *shape)`` tensors, read at every call.
        batch: examples per minibatch, B.
        packing: the optimizer whose packed gradient buffers to fill, if any.
    """

    def __init__(
        self,
        arch: Architecture,
        params: dict[str, torch.Tensor],
        batch: int,
        packing: MaskedOptimizer | None = None,
    ) -> None:
        self.arch = arch
        self.params = params
        first = params[arch.layers[0].weight]
        self.population = first.shape[0]
        kw = {"device": first.device, "dtype": first.dtype}
        self.blocks = self._plan_blocks(packing, GRAD_BLOCK_BYTES.get(first.device.type, 2**62))
        self.grads = {k: torch.empty(v.shape, **kw) for k, v in params.items() if k not in self.blocks}
        if packing is not None:
            self.grads.update({k: packing.packed_grads[k] for k in self.blocks})
        sizes = [(hi - lo) * self._unit(k) for k, blocks in self.blocks.items() for lo, hi, _, _ in blocks]
        self.scratch = torch.empty(max(sizes, default=0), **kw)
        # post-activation outputs of every layer (logits last) and their gradients: (P, out, B)
        self.out = [torch.empty(self.population, s.out_features, batch, **kw) for s in arch.layers]
        self.dout = [torch.empty_like(h) for h in self.out]
        if arch.name == "mlp_residual":
            self.sum = torch.empty_like(self.out[0])  # h1 + relu(fc2 h1)
            self.dsum = torch.empty_like(self.out[0])

    def _unit(self, name: str) -> int:
        """Elements of one block unit of a weight: a row of layer 1, an individual's matrix after."""
        spec = next(s for s in self.arch.layers if s.weight == name)
        if spec is self.arch.layers[0]:
            return spec.in_features
        return spec.out_features * spec.in_features

    def _plan_blocks(
        self, packing: MaskedOptimizer | None, block_bytes: int
    ) -> dict[str, list[tuple[int, int, torch.Tensor, torch.Tensor]]]:
        """Weight name -> blocks ``(first unit, end unit, kept positions within the block, packed slice)``."""
        if packing is None:
            return {}
        plan = {}
        for i, spec in enumerate(self.arch.layers):
            idx = packing.index.get(spec.weight)
            if idx is None:
                continue
            units = self.population * spec.out_features if i == 0 else self.population
            unit = self._unit(spec.weight)
            per = max(1, block_bytes // (self.params[spec.weight].element_size() * unit))
            starts = list(range(0, units, per))
            bounds = torch.tensor([u * unit for u in [*starts, units]], device=idx.device)
            pos = torch.searchsorted(idx, bounds).tolist()  # kept entries before each block boundary
            plan[spec.weight] = [
                (
                    lo,
                    min(lo + per, units),
                    idx[pos[k] : pos[k + 1]] - lo * unit,
                    packing.packed_grads[spec.weight][pos[k] : pos[k + 1]],
                )
                for k, lo in enumerate(starts)
            ]
        return plan

    def _weight_grad(self, i: int, d: torch.Tensor, inp: torch.Tensor, out: torch.Tensor) -> None:
        """Gradient of layer ``i``'s weight from its pre-activation gradient ``d`` ``(P, out, B)`` and input.

        ``inp`` is ``(B, in)`` for layer 0, ``(P, in, B)`` after; ``out`` is the
        dense ``(P, out, in)`` buffer, unused for a packed (blocked) weight.
        """
        spec = self.arch.layers[i]
        batch = d.shape[2]
        blocks = self.blocks.get(spec.weight)
        if i == 0:
            rows = d.view(-1, batch)  # (P*out, B)
            if blocks is None:
                torch.mm(rows, inp, out=out.view(rows.shape[0], -1))
                return
            for lo, hi, local, packed in blocks:
                block = self.scratch[: (hi - lo) * spec.in_features].view(hi - lo, spec.in_features)
                torch.mm(rows[lo:hi], inp, out=block)
                torch.gather(block.view(-1), 0, local, out=packed)
            return
        if blocks is None:
            torch.bmm(d, inp.transpose(1, 2), out=out)
            return
        for lo, hi, local, packed in blocks:
            block = self.scratch[: (hi - lo) * self._unit(spec.weight)].view(hi - lo, *spec.weight_shape)
            torch.bmm(d[lo:hi], inp[lo:hi].transpose(1, 2), out=block)
            torch.gather(block.view(-1), 0, local, out=packed)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Fill :attr:`grads` for one minibatch.

        Args:
            x: inputs ``(B, *input_shape)``; y: labels ``(B,)``.

        Returns:
            ``(P,)`` mean cross-entropy of each individual (nats).
        """
        p, specs = self.population, self.arch.layers
        w = [self.params[s.weight].detach() for s in specs]
        b = [self.params[s.bias].detach() for s in specs]
        gw = [self.grads[s.weight] for s in specs]
        gb = [self.grads[s.bias] for s in specs]
        out, dout = self.out, self.dout
        x = x.reshape(x.shape[0], -1)  # (B, in)
        batch, h1 = x.shape[0], specs[0].out_features
        residual = self.arch.name == "mlp_residual"

        # forward; the first layer is one matmul over the whole population
        torch.addmm(b[0].reshape(-1, 1), w[0].reshape(p * h1, -1), x.T, out=out[0].view(p * h1, batch)).relu_()
        if residual:
            torch.baddbmm(b[1].unsqueeze(2), w[1], out[0], out=out[1]).relu_()  # r = relu(fc2 h1)
            torch.add(out[0], out[1], out=self.sum)
            inputs = [x, out[0], self.sum]
        else:
            for i in range(1, len(specs) - 1):
                torch.baddbmm(b[i].unsqueeze(2), w[i], out[i - 1], out=out[i]).relu_()
            inputs = [x, *out[:-1]]
        torch.baddbmm(b[-1].unsqueeze(2), w[-1], inputs[-1], out=out[-1])  # logits (P, C, B)

        # loss and d(sum of mean losses)/dlogits = (softmax - onehot) / B
        logp = torch.log_softmax(out[-1], 1)  # (P, C, B)
        loss = logp.gather(1, y.view(1, 1, batch).expand(p, 1, batch)).mean((1, 2)).neg()  # (P,)
        # softmax by ATen's own kernel, not torch.exp(logp): on the CPU torch.exp calls Intel MKL's VML,
        # which on some x86 hosts computes a worker thread's slice at reduced accuracy (relative error
        # ~1e-4) in some processes and not others, so a campaign's numbers depended on the process
        _softmax_out(out[-1], dout[-1])
        dout[-1].sub_(F.one_hot(y, out[-1].shape[1]).T.to(logp.dtype)).mul_(1.0 / batch)

        # backward
        last = len(specs) - 1
        for i in range(last, -1, -1):
            d = dout[i]  # gradient w.r.t. layer i's pre-activation (P, out, B)
            self._weight_grad(i, d, inputs[i], gw[i])
            torch.sum(d, 2, out=gb[i])
            if i == 0:
                break
            if residual and i == last:  # d(h1 + r): to r through relu, and straight to h1
                torch.bmm(w[i].transpose(1, 2), d, out=self.dsum)
                _relu_backward(self.dsum, out[1], dout[1])
            elif residual:  # i == 1: dh1 = dsum + fc2^T dr
                torch.baddbmm(self.dsum, w[i].transpose(1, 2), d, out=dout[0])
                _relu_backward(dout[0], out[0], dout[0])
            else:
                torch.bmm(w[i].transpose(1, 2), d, out=dout[i - 1])
                _relu_backward(dout[i - 1], out[i - 1], dout[i - 1])
        return loss


def _softmax_out(logits: torch.Tensor, out: torch.Tensor) -> None:
    """``out = softmax(logits, dim=1)`` into a preallocated buffer, by ATen's softmax kernel."""
    torch.ops.aten._softmax.out(logits, 1, False, out=out)


def _relu_backward(grad: torch.Tensor, output: torch.Tensor, out: torch.Tensor) -> None:
    """``out = grad * (output > 0)`` for ``output = relu(a)``; ``out`` may be ``grad``."""
    torch.ops.aten.threshold_backward.grad_input(grad, output, 0, grad_input=out)


class _AutogradGradient:
    """Summed loss and its gradients by autograd through ``forward_batched`` (any architecture)."""

    def __init__(self, arch: Architecture, params: dict[str, torch.Tensor]) -> None:
        self.arch = arch
        self.params = params
        self.grads: dict[str, torch.Tensor] = {}

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Fill :attr:`grads` for one minibatch; returns the ``(P,)`` losses."""
        with torch.enable_grad():
            leaves = {k: v.detach().requires_grad_(True) for k, v in self.params.items()}
            loss = per_individual_loss(self.arch.forward_batched(leaves, x), y)  # (P,)
            grads = torch.autograd.grad(loss.sum(), list(leaves.values()))
        self.grads = dict(zip(leaves, grads, strict=True))
        return loss.detach()


def _gradient_function(
    arch: Architecture, params: dict[str, torch.Tensor], batch: int, packing: MaskedOptimizer | None
) -> _MLPGradient | _AutogradGradient:
    if arch.name in ("mlp", "mlp_residual"):
        return _MLPGradient(arch, params, batch, packing)
    return _AutogradGradient(arch, params)


def _minibatches(splits: Splits, batches: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(x (B, *input_shape), y (B,))`` for each row of ``batches``, gathered in blocks of steps."""
    per_step = max(1, batches.shape[1] * splits.x_train[0].numel() * splits.x_train.element_size())
    block = max(1, STAGE_BYTES // per_step)
    for start in range(0, len(batches), block):
        idx = batches[start : start + block]
        yield from zip(splits.x_train[idx], splits.y_train[idx], strict=True)  # (steps, B, ...), (steps, B)


def effective_params(theta0: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Fresh leaf tensors ``theta0 * mask`` (biases unmasked), each ``(P, *shape)``, requiring grad."""
    return {k: (v * masks[k] if k in masks else v).detach().clone().requires_grad_(True) for k, v in theta0.items()}


def finetune_stacked(
    arch: Architecture,
    theta0: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor],
    splits: Splits,
    cfg: FinetuneConfig,
    batches: torch.Tensor,
    *,
    return_weights: bool = False,
) -> BatchResult:
    """Fine-tune P stacked networks together, then evaluate them on validation.

    Args:
        arch: the architecture of every network.
        theta0: parameter name -> ``(P, *shape)`` initial weights, on the device.
        masks: weight name -> ``(P, *shape)`` bool masks, on the device.
        splits: the data, already on the device.
        cfg: optimizer, learning rate and the like (``cfg.steps`` is ignored:
            the number of steps is ``len(batches)``).
        batches: ``(steps, B)`` int64 indices into the training split.
        return_weights: also return the fine-tuned weights (on the CPU).

    Returns:
        The :class:`BatchResult` of the P networks, with the wall time of the
        training steps and of the two validation passes.
    """
    device = splits.device
    params = effective_params(theta0, masks)
    start = _now(device)
    acc0, loss0 = evaluate_params(arch, params, splits.x_val, splits.y_val)
    eval_seconds = _now(device) - start
    bad = torch.zeros(acc0.shape[0], dtype=torch.bool, device=acc0.device)
    train_seconds = 0.0
    if len(batches):
        start = _now(device)
        train_steps(arch, params, masks, splits, MaskedOptimizer(params, masks, cfg), batches, bad)
        train_seconds = _now(device) - start
    start = _now(device)
    acc, loss = evaluate_params(arch, params, splits.x_val, splits.y_val)
    eval_seconds += _now(device) - start
    bad |= nonfinite(params, loss)
    weights = {k: v.detach().cpu() for k, v in params.items()} if return_weights else None
    return BatchResult(acc0.cpu(), loss0.cpu(), acc.cpu(), loss.cpu(), bad.cpu(), weights, train_seconds, eval_seconds)


def train_steps(
    arch: Architecture,
    params: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor],
    splits: Splits,
    opt: MaskedOptimizer | torch.optim.Optimizer,
    batches: torch.Tensor,
    bad: torch.Tensor,
) -> None:
    """Run ``len(batches)`` optimizer steps on stacked parameters, in place.

    Args:
        arch: the architecture.
        params: parameter name -> ``(P, *shape)`` contiguous tensors.
        masks: weight name -> ``(P, *shape)`` bool masks; only kept entries move.
        splits: the data, on the parameters' device.
        opt: a :class:`MaskedOptimizer` over ``params`` (fast), or a
            ``torch.optim`` optimizer over ``params.values()`` (see
            :func:`make_optimizer`), which then gets masked gradients.
        batches: ``(steps, B)`` training indices.
        bad: ``(P,)`` bool, or-ed in place with "this step's loss was non-finite".
    """
    if not len(batches):
        return
    gradient = _gradient_function(arch, params, batches.shape[1], opt if isinstance(opt, MaskedOptimizer) else None)
    dense_masks = None
    if not isinstance(opt, MaskedOptimizer):
        dense_masks = {k: m.to(params[k].dtype) for k, m in masks.items()}
    for x, y in _minibatches(splits, batches):
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


@torch.no_grad()
def nonfinite(params: dict[str, torch.Tensor], loss: torch.Tensor) -> torch.Tensor:
    """``(P,)`` bool: a non-finite loss or any non-finite weight."""
    bad = ~torch.isfinite(loss)
    for v in params.values():
        bad |= ~torch.isfinite(v.flatten(1)).all(1)
    return bad


EARLY_STOPPING = ("val_acc", "val_loss", "none")
"""Early-stopping criteria of :func:`train_early_stopping`."""


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
    """

    best_step: torch.Tensor
    val_acc: torch.Tensor
    val_loss: torch.Tensor
    test_acc: torch.Tensor
    final_test_acc: torch.Tensor
    nonfinite: torch.Tensor


def train_early_stopping(
    arch: Architecture,
    theta0: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor],
    splits: Splits,
    cfg: FinetuneConfig,
    batches: torch.Tensor,
    eval_every: int,
    criterion: str = "val_acc",
) -> TrainResult:
    """Train P stacked networks fully and report test accuracy at the early-stopping step.

    The early-stopping step is chosen on the validation split only, among the
    checks every ``eval_every`` steps (step 0 included): the first step of
    maximum validation accuracy (``val_acc``), of minimum validation loss
    (``val_loss``, as Frankle & Carbin 2019, arXiv:1803.03635), or the last
    step (``none``). The test split is read at every check but only reported
    at the chosen one.

    Args:
        arch, theta0, masks, splits, cfg, batches: as for :func:`finetune_stacked`.
        eval_every: steps between validation checks, >= 1.
        criterion: one of :data:`EARLY_STOPPING`.

    Raises:
        ValueError: for an unknown ``criterion``.
    """
    if criterion not in EARLY_STOPPING:
        raise ValueError(f"criterion must be one of {EARLY_STOPPING}, got {criterion!r}")
    params = effective_params(theta0, masks)
    opt = MaskedOptimizer(params, masks, cfg)
    p = next(iter(params.values())).shape[0]
    device = splits.device
    bad = torch.zeros(p, dtype=torch.bool, device=device)
    best = {
        "step": torch.zeros(p, dtype=torch.long, device=device),
        "acc": torch.full((p,), -1.0, device=device),
        "loss": torch.full((p,), float("inf"), device=device),
        "test": torch.zeros(p, device=device),
    }
    step = 0
    while True:
        val_acc, val_loss = evaluate_params(arch, params, splits.x_val, splits.y_val)
        test_acc, _ = evaluate_params(arch, params, splits.x_test, splits.y_test)
        finite = torch.isfinite(val_loss)
        if criterion == "val_acc":
            better = finite & (val_acc > best["acc"])
        elif criterion == "val_loss":
            better = finite & (val_loss < best["loss"])
        else:
            better = finite | (step == 0)
        best["step"] = torch.where(better, step, best["step"])
        best["acc"] = torch.where(better, val_acc, best["acc"])
        best["loss"] = torch.where(better, val_loss, best["loss"])
        best["test"] = torch.where(better, test_acc, best["test"])
        if step >= len(batches):
            break
        train_steps(arch, params, masks, splits, opt, batches[step : step + eval_every], bad)
        step = min(step + eval_every, len(batches))
    bad |= nonfinite(params, val_loss)
    return TrainResult(
        best["step"].cpu(), best["acc"].cpu(), best["loss"].cpu(), best["test"].cpu(), test_acc.cpu(), bad.cpu()
    )


def bytes_per_individual(arch: Architecture, cfg: FinetuneConfig, n_val: int, density: float = 1.0) -> int:
    """Estimated peak memory one individual adds to a batched fine-tuning (bytes).

    Counts, per parameter, the stacked theta0 and mask, the effective weights,
    the gradient buffer and autograd's scratch gradient; per kept weight (and
    bias) the packed value, gradient, two optimizer states and index of
    :class:`MaskedOptimizer`; the activations of one training minibatch (kept
    for the backward pass, with their gradients) and of one evaluation chunk.
    Shared costs (the data, one block of gathered minibatches) are not counted.

    Args:
        arch: the architecture.
        cfg: uses ``batch_size``.
        n_val: validation examples (the evaluation chunk is ``min(n_val, EVAL_BATCH)``).
        density: fraction of prunable weights kept, in [0, 1]; 1 gives an upper bound.
    """
    n_params = arch.num_params()
    n_biases = n_params - arch.num_prunable()
    per_param = 4 * 4 + 1  # theta0, weights, gradient, scratch (float32) + mask (bool)
    per_kept = 4 * 4 + 8  # packed value, gradient, 2 states (float32) + index (int64)
    kept = math.ceil(min(max(density, 0.0), 1.0) * arch.num_prunable()) + n_biases
    units = _activation_units(arch)
    train_act = 4 * 4 * cfg.batch_size * units  # activation, pre-activation and their grads
    eval_act = 4 * 2 * min(n_val, EVAL_BATCH) * units  # activations and one temporary
    return n_params * per_param + kept * per_kept + train_act + eval_act


def _activation_units(arch: Architecture) -> int:
    """Activations per example summed over layers (features x length)."""
    length = math.prod(arch.input_shape)
    units = 0
    for spec in arch.layers:
        if spec.kind == "conv1d":
            length = (length + 2 * spec.padding - spec.kernel_size) // spec.stride + 1
            units += spec.out_features * length
        else:
            units += spec.out_features
    return units


def chunk_size(arch: Architecture, cfg: FinetuneConfig, n_val: int, density: float = 1.0) -> int:
    """Largest population chunk whose estimated memory fits ``cfg.max_memory_mb`` (>= 1).

    Args:
        arch, cfg, n_val, density: as for :func:`bytes_per_individual`.
    """
    budget = cfg.max_memory_mb * 2**20
    return max(1, int(budget // bytes_per_individual(arch, cfg, n_val, density)))


def population_chunk(
    arch: Architecture, cfg: FinetuneConfig, n_val: int, density: float = 1.0, device: str | torch.device = "cpu"
) -> int:
    """Individuals :func:`finetune_tickets` fine-tunes together on ``device`` (>= 1).

    The smaller of :func:`chunk_size` (the memory budget) and the device's
    :data:`POPULATION_BLOCK`.

    Args:
        arch, cfg, n_val, density: as for :func:`bytes_per_individual`.
        device: where the work runs.
    """
    block = POPULATION_BLOCK.get(torch.device(device).type, 2**62)
    return min(chunk_size(arch, cfg, n_val, density), block)


def finetune_tickets(
    tickets: Sequence[Ticket],
    arch: Architecture,
    splits: Splits,
    cfg: FinetuneConfig,
    seed: int,
    *,
    steps: int | None = None,
    return_weights: bool = False,
) -> BatchResult:
    """Fine-tune and evaluate P tickets in chunks that fit the memory budget.

    The chunk size comes from :func:`population_chunk` (memory budget and
    device block) at the highest density among the tickets.

    Args:
        tickets: the P tickets (CPU tensors).
        arch: their architecture.
        splits: the data; its device is where the work runs.
        cfg: fine-tuning settings.
        seed: seed of the minibatch sequence (shared by all P).
        steps: number of steps; default ``cfg.steps``.
        return_weights: also return the fine-tuned weights.

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
        parts.append(finetune_stacked(arch, theta0, masks, splits, cfg, batches, return_weights=return_weights))
    return BatchResult.concat(parts)
