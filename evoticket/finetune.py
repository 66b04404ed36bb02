"""Batched fine-tuning and evaluation of a whole population of tickets.

All P tickets to evaluate are stacked into ``(P, ...)`` tensors and trained in
one batched computation: every step runs one forward and one backward pass for
the whole population (see :meth:`evoticket.models.Architecture.forward_batched`)
and one optimizer step over the stacked tensors. The optimizers used (Adam,
SGD with momentum) act on each entry independently and the loss is the *sum*
of the individuals' mean losses, so each individual follows exactly the
trajectory it would follow alone.

Masks are enforced on the gradients: the effective weights start at
``theta0 * mask`` and every gradient is multiplied by the mask before the
optimizer step, so pruned weights stay exactly zero (their gradient, momentum,
Adam moments and weight decay are all zero).

Every individual of a call sees the same minibatch sequence (common random
numbers), drawn by :func:`minibatch_indices` from one seed. The population is
split into chunks whose estimated memory fits a budget; chunks share the
minibatch sequence, so chunking does not change any result.

An individual whose loss or weights become non-finite is flagged; since the
individuals share no parameter, the others are unaffected.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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
        logits = arch.forward_batched(params, xb)  # (P, b, C)
        correct += (logits.argmax(-1) == yb).sum(1)
        loss += per_individual_loss(logits, yb) * yb.shape[0]
    n = x.shape[0]
    return correct / n, loss / n


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
    """

    val_acc_before: torch.Tensor
    val_loss_before: torch.Tensor
    val_acc: torch.Tensor
    val_loss: torch.Tensor
    nonfinite: torch.Tensor
    weights: dict[str, torch.Tensor] | None = None

    @staticmethod
    def concat(parts: Sequence[BatchResult]) -> BatchResult:
        """Join the results of consecutive chunks along the population axis."""
        weights = None
        if parts[0].weights is not None:
            weights = {k: torch.cat([p.weights[k] for p in parts]) for k in parts[0].weights}
        return BatchResult(
            *(
                torch.cat([getattr(p, f) for p in parts])
                for f in ("val_acc_before", "val_loss_before", "val_acc", "val_loss", "nonfinite")
            ),
            weights=weights,
        )


def make_optimizer(params: Sequence[torch.Tensor], cfg: FinetuneConfig) -> torch.optim.Optimizer:
    """The optimizer of ``finetune.optimizer`` over the stacked parameters.

    Uses the multi-tensor (``foreach``) implementation: one fused update over
    all stacked tensors per step.
    """
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, foreach=True)


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
        The :class:`BatchResult` of the P networks.
    """
    params = {k: (v * masks[k] if k in masks else v).detach().clone().requires_grad_(True) for k, v in theta0.items()}
    acc0, loss0 = evaluate_params(arch, params, splits.x_val, splits.y_val)
    bad = torch.zeros(acc0.shape[0], dtype=torch.bool, device=acc0.device)
    if len(batches):
        opt = make_optimizer(list(params.values()), cfg)
        train_steps(arch, params, masks, splits, opt, batches, bad)
    acc, loss = evaluate_params(arch, params, splits.x_val, splits.y_val)
    bad |= nonfinite(params, loss)
    weights = {k: v.detach().cpu() for k, v in params.items()} if return_weights else None
    return BatchResult(acc0.cpu(), loss0.cpu(), acc.cpu(), loss.cpu(), bad.cpu(), weights)


def train_steps(
    arch: Architecture,
    params: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor],
    splits: Splits,
    opt: torch.optim.Optimizer,
    batches: torch.Tensor,
    bad: torch.Tensor,
) -> None:
    """Run ``len(batches)`` optimizer steps on stacked parameters, in place.

    Args:
        arch: the architecture.
        params: parameter name -> ``(P, *shape)`` leaf tensors requiring grad.
        masks: weight name -> ``(P, *shape)`` bool masks; gradients are masked.
        splits: the data, on the parameters' device.
        opt: an optimizer over ``params`` (see :func:`make_optimizer`).
        batches: ``(steps, B)`` training indices.
        bad: ``(P,)`` bool, or-ed in place with "this step's loss was non-finite".
    """
    grad_masks = [(params[k], masks[k]) for k in masks]
    for idx in batches:
        loss = per_individual_loss(arch.forward_batched(params, splits.x_train[idx]), splits.y_train[idx])  # (P,)
        bad |= ~torch.isfinite(loss.detach())
        opt.zero_grad(set_to_none=False)
        loss.sum().backward()
        for param, mask in grad_masks:
            param.grad.mul_(mask)
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
    params = {k: (v * masks[k] if k in masks else v).detach().clone().requires_grad_(True) for k, v in theta0.items()}
    opt = make_optimizer(list(params.values()), cfg)
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


def bytes_per_individual(arch: Architecture, cfg: FinetuneConfig, n_val: int) -> int:
    """Estimated peak memory one individual adds to a batched fine-tuning (bytes).

    Counts theta0, mask, effective weights, gradient and two optimizer states
    per parameter, and the activations of one training minibatch (kept for the
    backward pass, with their gradients) and of one evaluation chunk.
    """
    n_params = arch.num_params()
    per_param = 4 * 6 + 1  # theta0, weights, grad, 2 states, scratch (float32) + mask (bool)
    units = _activation_units(arch)
    train_act = 4 * 4 * cfg.batch_size * units  # activation, pre-activation and their grads
    eval_act = 4 * 2 * min(n_val, EVAL_BATCH) * units
    return n_params * per_param + train_act + eval_act


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


def chunk_size(arch: Architecture, cfg: FinetuneConfig, n_val: int) -> int:
    """Largest population chunk whose estimated memory fits ``cfg.max_memory_mb`` (>= 1)."""
    budget = cfg.max_memory_mb * 2**20
    return max(1, int(budget // bytes_per_individual(arch, cfg, n_val)))


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

    Args:
        tickets: the P tickets (CPU tensors).
        arch: their architecture.
        splits: the data; its device is where the work runs.
        cfg: fine-tuning settings.
        seed: seed of the minibatch sequence (shared by all P).
        steps: number of steps; default ``cfg.steps``.
        return_weights: also return the fine-tuned weights.

    Returns:
        The concatenated :class:`BatchResult`, in the order of ``tickets``.
    """
    steps = cfg.steps if steps is None else steps
    device = splits.device
    batches = minibatch_indices(splits.x_train.shape[0], steps, cfg.batch_size, seed, device)
    size = chunk_size(arch, cfg, splits.x_val.shape[0])
    parts = []
    for start in range(0, len(tickets), size):
        theta0, masks = stack_tickets(tickets[start : start + size], device)
        parts.append(finetune_stacked(arch, theta0, masks, splits, cfg, batches, return_weights=return_weights))
    return BatchResult.concat(parts)
