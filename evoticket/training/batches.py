"""The minibatch sequence shared by a whole batched training (common random numbers), and its gathering."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from evoticket.data import Splits

STAGE_BYTES = 8 * 2**20
"""Largest block of training inputs gathered at once for the coming steps (bytes)."""


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


def minibatches(splits: Splits, batches: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(x (B, *input_shape), y (B,))`` for each row of ``batches``, gathered in blocks of steps."""
    per_step = max(1, batches.shape[1] * splits.x_train[0].numel() * splits.x_train.element_size())
    block = max(1, STAGE_BYTES // per_step)
    for start in range(0, len(batches), block):
        idx = batches[start : start + block]
        yield from zip(splits.x_train[idx], splits.y_train[idx], strict=True)  # (steps, B, ...), (steps, B)
