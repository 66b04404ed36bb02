"""The minibatch sequence shared by a whole batched training (common random numbers), and its gathering."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from evoticket.data import Splits, augment_batch

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


_SEED_MIX = 0x9E3779B97F4A7C15 % 2**61
"""Odd multiplier that mixes a minibatch's example indices into the seed of its augmentation."""


def augmentation_seeds(batches: torch.Tensor) -> list[int]:
    """One seed per minibatch, a function of its example indices alone: every population chunk, a resumed run
    and a rerun draw the same augmentation for the same minibatch, however the steps are sliced.

    Args:
        batches: ``(steps, B)`` int64 example indices.

    Returns:
        ``steps`` seeds in ``[0, 2**61)``.
    """
    rows = batches.detach().to("cpu", torch.int64)
    weights = torch.arange(1, rows.shape[1] + 1, dtype=torch.int64) * _SEED_MIX % 2**31
    return [int(v) % 2**61 for v in (rows * weights).sum(1).tolist()]


def minibatches(splits: Splits, batches: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(x (B, *input_shape), y (B,))`` for each row of ``batches``, gathered in blocks of steps.

    With ``splits.augment`` (``data.augment``) other than ``"none"``, each minibatch's inputs are augmented by
    :func:`evoticket.data.augment_batch` with a generator seeded by :func:`augmentation_seeds`: the whole
    population sees the same augmented minibatch (common random numbers), and runs are reproducible.
    """
    per_step = max(1, batches.shape[1] * splits.x_train[0].numel() * splits.x_train.element_size())
    block = max(1, STAGE_BYTES // per_step)
    augment = getattr(splits, "augment", "none")
    for start in range(0, len(batches), block):
        idx = batches[start : start + block]
        pairs = zip(splits.x_train[idx], splits.y_train[idx], strict=True)  # (steps, B, ...), (steps, B)
        if augment == "none":
            yield from pairs
            continue
        for (x, y), seed in zip(pairs, augmentation_seeds(idx), strict=True):
            gen = torch.Generator(device=x.device).manual_seed(seed)
            yield augment_batch(x, augment, gen), y
