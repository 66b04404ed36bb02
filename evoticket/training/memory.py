"""How many individuals one batched computation can hold: memory estimates and population chunks."""

from __future__ import annotations

import math

import torch

from evoticket.config import OptimizerConfig
from evoticket.models import Architecture
from evoticket.models.generic import activation_bytes
from evoticket.training.evaluate import EVAL_BATCH

POPULATION_BLOCK = {"cpu": 64}
"""Device type -> most individuals :func:`finetune_tickets` fine-tunes in one batched computation.
On the CPU a larger population runs in blocks of this size, whose activations stay in cache
(measured on 2 cores: MNIST-1D ``mlp`` at 4,900 individual steps/s as one block of 256, 6,000 in
blocks of 64). Blocks share the minibatch sequence, so results do not change."""


def bytes_per_individual(arch: Architecture, cfg: OptimizerConfig, n_val: int, density: float = 1.0) -> int:
    """Estimated peak memory one individual adds to a batched fine-tuning (bytes).

    Counts, per parameter, the stacked theta0 and mask, the effective weights,
    the gradient buffer and autograd's scratch gradient; per kept weight (and
    bias) the packed value, gradient, two optimizer states and index of
    :class:`MaskedOptimizer`; the activations of one training minibatch (kept
    for the backward pass, with their gradients) and of one evaluation chunk.
    A generic network's activations are the bytes autograd saves per example,
    measured once (:func:`evoticket.models.generic.activation_bytes`).
    Shared costs (the data, one block of gathered minibatches) are not counted.

    Args:
        arch: the architecture.
        cfg: the optimizer's settings (uses ``batch_size``).
        n_val: validation examples (the evaluation chunk is ``min(n_val, EVAL_BATCH)``).
        density: fraction of prunable weights kept, in [0, 1]; 1 gives an upper bound.
    """
    n_params = arch.num_params()
    n_biases = n_params - arch.num_prunable()
    per_param = 4 * 4 + 1  # theta0, weights, gradient, scratch (float32) + mask (bool)
    per_kept = 4 * 4 + 8  # packed value, gradient, 2 states (float32) + index (int64)
    kept = math.ceil(min(max(density, 0.0), 1.0) * arch.num_prunable()) + n_biases
    if arch.generic:  # what autograd saves per example (measured), and as much again for its gradients
        saved = activation_bytes(arch)
        train_act = 2 * cfg.batch_size * saved
        eval_act = 2 * min(n_val, EVAL_BATCH) * saved
    else:
        units = _activation_units(arch)
        train_act = 4 * 4 * cfg.batch_size * units  # activation, pre-activation and their grads
        eval_act = 4 * 2 * min(n_val, EVAL_BATCH) * units  # activations and one temporary
    return n_params * per_param + kept * per_kept + train_act + eval_act


def _activation_units(arch: Architecture) -> int:
    """Activations per example summed over a built-in model's layers (features x length)."""
    length = math.prod(arch.input_shape)
    units = 0
    for spec in arch.layers:
        if spec.kind == "conv1d":
            length = (length + 2 * spec.padding - spec.kernel_size) // spec.stride + 1
            units += spec.out_features * length
        else:
            units += spec.out_features
    return units


def chunk_size(
    arch: Architecture, cfg: OptimizerConfig, n_val: int, density: float = 1.0, *, max_memory_mb: float = 2048.0
) -> int:
    """Largest population chunk whose estimated memory fits ``max_memory_mb`` (``campaign.max_memory_mb``; >= 1).

    Args:
        arch, cfg, n_val, density: as for :func:`bytes_per_individual`.
        max_memory_mb: the memory budget of one batched training (MiB), > 0.
    """
    budget = max_memory_mb * 2**20
    return max(1, int(budget // bytes_per_individual(arch, cfg, n_val, density)))


def population_chunk(
    arch: Architecture,
    cfg: OptimizerConfig,
    n_val: int,
    density: float = 1.0,
    device: str | torch.device = "cpu",
    *,
    max_memory_mb: float = 2048.0,
    block: int = 0,
) -> int:
    """Individuals :func:`finetune_tickets` fine-tunes together on ``device`` (>= 1).

    The smaller of :func:`chunk_size` (the memory budget) and the block: ``block`` when given
    (``campaign.population_block``), else the device's :data:`POPULATION_BLOCK`.

    Args:
        arch, cfg, n_val, density: as for :func:`bytes_per_individual`.
        device: where the work runs.
        max_memory_mb: the memory budget (MiB), > 0.
        block: most individuals per batched computation; 0: the device's default.
    """
    block = block or POPULATION_BLOCK.get(torch.device(device).type, 2**62)
    return min(chunk_size(arch, cfg, n_val, density, max_memory_mb=max_memory_mb), block)
