"""The minibatch sequences of a batched training and their gathering.

Two data orders (``optimizer.data_order``): ``"common"``, one sequence shared by every network of the batch (common
random numbers: the GA compares its individuals on the same minibatches), and ``"individual"``, each network its own
sequence, seeded by the network's identity (its ticket's uid, or its place among a run's networks), so that networks
of different runs can share one batch (``evoticket experiment --pack``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch

from evoticket.core.seeds import derive_seed
from evoticket.data import Splits, augment_batch

DATA_ORDERS = ("common", "individual")
"""The values of ``optimizer.data_order``."""

STAGE_BYTES = 8 * 2**20
"""Largest block of training inputs gathered at once for the coming steps (bytes)."""


def minibatch_indices(
    n_train: int,
    steps: int,
    batch_size: int,
    seed: int,
    device: str | torch.device = "cpu",
    individuals: Sequence[int] | None = None,
) -> torch.Tensor:
    """The minibatch sequence of a batched training: one shared by the whole batch, or one per network.

    Examples are drawn without replacement within an epoch (a fresh
    permutation each epoch); a batch never straddles two epochs' duplicates.

    Args:
        n_train: training examples, >= 1.
        steps: number of minibatches.
        batch_size: examples per minibatch; capped at ``n_train``.
        seed: seed of the permutations.
        device: where the index tensor goes.
        individuals: ``None``: one sequence for every network (``optimizer.data_order = "common"``); else one
            identity per network (a ticket's uid, or its place among a run's networks), and network ``i`` draws its
            own sequence, seeded by ``derive_seed(seed, "individual", individuals[i])``: the same wherever the
            network trains and whoever shares its batch (``"individual"``).

    Returns:
        int64 tensor of shape ``(steps, min(batch_size, n_train))``, or ``(steps, P, min(batch_size, n_train))``
        with ``individuals`` (P of them).
    """
    batch = min(batch_size, n_train)
    if individuals is not None:
        rows = [
            minibatch_indices(n_train, steps, batch_size, derive_seed(seed, "individual", int(k)), device)
            for k in individuals
        ]
        return torch.stack(rows, 1) if rows else torch.empty((steps, 0, batch), dtype=torch.long, device=device)
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
    """``(x (B, *input_shape), y (B,))`` for each row of ``batches`` (``(steps, B)``), or ``(x (P, B, *input_shape),
    y (P, B))`` for each step of per-network ``batches`` (``(steps, P, B)``), gathered in blocks of steps.

    With ``splits.augment`` (``data.augment``) other than ``"none"``, each minibatch's inputs are augmented by
    :func:`evoticket.data.augment_batch` with a generator seeded by :func:`augmentation_seeds`: the whole
    population sees the same augmented minibatch (common random numbers), and runs are reproducible. Per-network
    minibatches are augmented one network at a time, each seeded by its own indices, as it would be alone.
    """
    per_step = max(1, batches[0].numel() * splits.x_train[0].numel() * splits.x_train.element_size())
    block = max(1, STAGE_BYTES // per_step)
    augment = getattr(splits, "augment", "none")
    for start in range(0, len(batches), block):
        idx = batches[start : start + block]
        pairs = zip(splits.x_train[idx], splits.y_train[idx], strict=True)  # (steps, B, ...), (steps, B)
        if augment == "none":
            yield from pairs
            continue
        if idx.dim() == 3:  # per network: each one's minibatch augmented as it would be alone
            for (x, y), rows in zip(pairs, idx, strict=True):
                seeds = augmentation_seeds(rows)
                yield torch.stack([_augmented(xi, augment, s) for xi, s in zip(x, seeds, strict=True)]), y
            continue
        for (x, y), seed in zip(pairs, augmentation_seeds(idx), strict=True):
            yield _augmented(x, augment, seed), y


def _augmented(x: torch.Tensor, augment: str, seed: int) -> torch.Tensor:
    """One minibatch ``(B, *input_shape)`` augmented with a generator seeded by ``seed``."""
    return augment_batch(x, augment, torch.Generator(device=x.device).manual_seed(seed))
