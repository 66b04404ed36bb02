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


CPU_BLOCK_ACTIVATIONS = 24 * 2**20
"""On the CPU, the activation bytes of one training minibatch that a block of a generic network's population
may hold together (bytes): P grouped convolutions outrun P separate ones only while their activations stay in
cache. Measured on 2 cores (individual steps/s at blocks of 1, 4 and 16): ``lenet5`` on 1x8x8 (0.5 MiB per
individual at batch 100) 300, 548, 713; ``conv2`` on 1x8x8 (4.5 MiB) 57, 76, 60; ``conv2`` on 3x32x32 (42 MiB,
batch 60) 8.4, 4.6, 3.8; ``resnet20`` on 3x32x32 (87 MiB) 7.0, 6.7, 4.4."""


def default_block(arch: Architecture, cfg: OptimizerConfig, device: str | torch.device = "cpu") -> int:
    """Individuals per batched computation when ``campaign.population_block`` is 0 (>= 1).

    The device's :data:`POPULATION_BLOCK`; on the CPU, a generic network's block is also held to
    :data:`CPU_BLOCK_ACTIVATIONS` of minibatch activations (a convolutional network on 32x32 images trains
    one individual at a time, as fast as a loop; a small one on 8x8 images in blocks of a few).
    """
    kind = torch.device(device).type
    block = POPULATION_BLOCK.get(kind, 2**62)
    if kind == "cpu" and arch.generic:
        per_individual = max(1, activation_bytes(arch) * cfg.batch_size)
        block = max(1, min(block, CPU_BLOCK_ACTIVATIONS // per_individual))
    return block


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
    (``campaign.population_block``), else :func:`default_block`.

    Args:
        arch, cfg, n_val, density: as for :func:`bytes_per_individual`.
        device: where the work runs.
        max_memory_mb: the memory budget (MiB), > 0.
        block: most individuals per batched computation; 0: the device's default.
    """
    block = block or default_block(arch, cfg, device)
    return min(chunk_size(arch, cfg, n_val, density, max_memory_mb=max_memory_mb), block)
