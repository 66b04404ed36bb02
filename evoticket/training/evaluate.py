"""Accuracy and loss of P stacked networks on a whole split, and the checks for divergence."""

from __future__ import annotations

import time
from typing import Any

import torch

from evoticket.models import Architecture, per_individual_loss

EVAL_BATCH = 2000
"""Validation/test examples per forward pass when measuring accuracy."""


@torch.no_grad()
def evaluate_params(
    arch: Architecture,
    params: dict[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    buffers: dict[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Accuracy and mean loss of P networks on a whole split.

    Args:
        arch: the architecture.
        params: parameter name -> ``(P, *shape)`` effective weights.
        x: inputs ``(N, *input_shape)``; y: labels ``(N,)``.
        buffers: BatchNorm running statistics ``(P, *shape)`` (evaluation mode); ``None`` without BatchNorm.

    Returns:
        ``(accuracy, loss)``, each ``(P,)`` float32 on ``x``'s device;
        accuracy in [0, 1], loss in nats (non-finite for a diverged network).
    """
    p = next(iter(params.values())).shape[0]
    correct = torch.zeros(p, device=x.device)
    loss = torch.zeros(p, device=x.device)
    for start in range(0, x.shape[0], EVAL_BATCH):
        xb, yb = x[start : start + EVAL_BATCH], y[start : start + EVAL_BATCH]
        logits = arch.forward_batched(params, xb, buffers=buffers)  # (P, b, C), a view of a contiguous (P, C, b)
        correct += (logits.contiguous().argmax(-1) == yb).sum(1)  # argmax is slow over a strided dim
        loss += per_individual_loss(logits, yb) * yb.shape[0]
    n = x.shape[0]
    return correct / n, loss / n


@torch.no_grad()
def nonfinite(params: dict[str, torch.Tensor], loss: torch.Tensor) -> torch.Tensor:
    """``(P,)`` bool: a non-finite loss or any non-finite weight."""
    bad = ~torch.isfinite(loss)
    for v in params.values():
        bad |= ~torch.isfinite(v.flatten(1)).all(1)
    return bad


def now(device: torch.device) -> float:
    """Wall clock (s) after the device has finished its queued work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def evaluate_ticket(arch: Architecture, ticket: Any, splits: Any) -> tuple[float, float]:
    """Validation and test accuracy in [0, 1] of one ticket as it is (``theta0 * mask``, untrained; fresh
    BatchNorm statistics), e.g. a supermask."""
    params = {k: v.to(splits.device).unsqueeze(0) for k, v in ticket.effective_weights().items()}
    buffers = arch.init_buffers(1, splits.device) or None
    val_acc, _ = evaluate_params(arch, params, splits.x_val, splits.y_val, buffers)
    test_acc, _ = evaluate_params(arch, params, splits.x_test, splits.y_test, buffers)
    return float(val_acc[0]), float(test_acc[0])
