"""The training objective of P stacked networks: each individual's mean cross-entropy."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def per_individual_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each individual.

    Args:
        logits: ``(P, B, C)``.
        y: labels ``(B,)`` shared by the P networks, or ``(P, B)`` (per-network minibatches), int64.

    Returns:
        ``(P,)`` losses (nats).
    """
    p = logits.shape[0]
    if y.dim() == 2:  # per-network minibatches: one row per example, each computed as alone, whatever P
        rows = logits.reshape(-1, logits.shape[-1])  # (P*B, C)
        return F.cross_entropy(rows, y.reshape(-1), reduction="none").view(p, -1).mean(1)
    loss = F.cross_entropy(logits.transpose(1, 2), y.expand(p, -1), reduction="none")  # (P, B)
    return loss.mean(1)
