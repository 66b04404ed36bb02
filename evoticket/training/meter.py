"""The compute meter: what a method spends, in units that compare across methods.

Units (every count is per individual):

* ``train_steps``: optimizer steps.
* ``train_flops``: floating-point operations of the training steps' forward and backward passes,
  summed over every training example.
* ``eval_flops``: floating-point operations of the forward passes that evaluate a network
  (validation, test), summed over every evaluated example.

Convention, as for an ideal sparse implementation:

* A multiply-add is 2 FLOPs; adding a bias is 1 FLOP per output element. Elementwise work
  (activations, BatchNorm, softmax, the loss) and the optimizer update are not counted.
* A pruned weight costs nothing: a linear layer's forward costs ``2 x kept + out`` per example,
  a convolution's ``(2 x kept + out) x positions`` (``L_out`` for a ``Conv1d``, ``H_out x W_out``
  for a ``Conv2d``; without the ``out`` for a layer without bias). A layer's positions are its
  dense forward FLOPs as ``torch.utils.flop_counter.FlopCounterMode`` counts them over ``2 x`` its
  weight's size (:func:`evoticket.models.generic.layer_positions`), for every model, built-in or not.
* Work outside the prunable layers (a layer ``ticket.prune`` leaves dense, a product of two
  activations) counts dense: its ``FlopCounterMode`` FLOPs forward, twice that backward. The
  built-in models have none.
* The backward pass counts what is actually computed: for each layer whose weight is trained,
  its weight gradient (``2 x kept`` per output position; ``2 x all`` weights for edge-popup's
  scores, whose gradient is dense); for each trained bias, ``out`` per output position; and the
  gradient with respect to the layer's input (``2 x kept`` per output position) only for layers
  above the lowest trained parameter (the first layer never needs it). A scope that trains
  only the output layer therefore costs its forward pass plus the output layer's gradients.

Counting, not timing: the numbers are exact functions of the architecture, the masks, the
trainable scope and the number of examples, so they are the same on any machine.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from evoticket.models import Architecture
from evoticket.models.generic import dense_flops, layer_positions, param_owners
from evoticket.records import SPENT_KEYS
from evoticket.training.scopes import Scope, get_scope


def output_positions(arch: Architecture) -> dict[str, int]:
    """Layer name -> output positions per example: 1 for a linear layer, ``L_out`` for a ``Conv1d``,
    ``H_out x W_out`` for a ``Conv2d`` (counted with ``FlopCounterMode``, once per process)."""
    return layer_positions(arch)


def kept_counts(arch: Architecture, masks: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Weight name -> ``(P,)`` int64 kept weights per individual (all weights where a layer has no mask).

    Args:
        arch: the architecture.
        masks: weight name -> ``(P, *shape)`` bool masks (a layer without one counts as dense).
    """
    p = next(iter(masks.values())).shape[0] if masks else 1
    out = {}
    for spec in arch.layers:
        mask = masks.get(spec.weight)
        if mask is None:
            out[spec.weight] = torch.full((p,), math.prod(spec.weight_shape), dtype=torch.int64)
        else:
            # an int32 sum of the bytes is about twice as fast as sum()'s int64 (no layer holds 2**31 weights)
            counts = mask.reshape(mask.shape[0], -1).view(torch.uint8).sum(1, dtype=torch.int32)
            out[spec.weight] = counts.to("cpu", torch.int64)
    return out


def forward_flops(arch: Architecture, kept: Mapping[str, torch.Tensor | int]) -> torch.Tensor:
    """FLOPs of one example's forward pass for each individual.

    Args:
        arch: the architecture.
        kept: weight name -> kept weights, ``(P,)`` or an int.

    Returns:
        ``(P,)`` int64 (or a 0-d tensor for int counts).
    """
    positions = output_positions(arch)
    total = torch.zeros((), dtype=torch.int64) + dense_flops(arch)
    for spec in arch.layers:
        bias = spec.out_features if spec.use_bias else 0
        total = total + (2 * torch.as_tensor(kept[spec.weight]) + bias) * positions[spec.name]
    return total


def backward_flops(
    arch: Architecture,
    kept: Mapping[str, torch.Tensor | int],
    trainable: frozenset[str] | set[str],
    dense_weight_grads: frozenset[str] | set[str] = frozenset(),
) -> torch.Tensor:
    """FLOPs of one example's backward pass for each individual (see the module docstring).

    Args:
        arch: the architecture.
        kept: weight name -> kept weights, ``(P,)`` or an int.
        trainable: names of the parameters that receive a gradient (weights, biases, BatchNorm).
        dense_weight_grads: weight names whose gradient is computed for every weight, kept or
            not (edge-popup's scores, RigL's growth step).

    Returns:
        ``(P,)`` int64 (or a 0-d tensor for int counts).
    """
    positions = output_positions(arch)
    owner = param_owners(arch)
    lowest = min((owner[name] for name in trainable if name in owner), default=len(arch.layers))
    total = torch.zeros((), dtype=torch.int64)
    if trainable or dense_weight_grads:
        total = total + 2 * dense_flops(arch)
    for i, spec in enumerate(arch.layers):
        pos = positions[spec.name]
        k = torch.as_tensor(kept[spec.weight])
        if spec.weight in dense_weight_grads:
            total = total + 2 * math.prod(spec.weight_shape) * pos
        elif spec.weight in trainable:
            total = total + 2 * k * pos
        if spec.bias in trainable:
            total = total + spec.out_features * pos
        if i > lowest:
            total = total + 2 * k * pos
    return total


@dataclass
class Meter:
    """Per-individual compute spent so far: steps, training FLOPs and evaluation FLOPs.

    Attributes:
        train_steps: ``(P,)`` int64 optimizer steps.
        train_flops: ``(P,)`` int64 training FLOPs (forward and backward, summed over examples).
        eval_flops: ``(P,)`` int64 evaluation FLOPs (forward, summed over examples).
    """

    train_steps: torch.Tensor
    train_flops: torch.Tensor
    eval_flops: torch.Tensor = field(default=None)  # type: ignore[assignment]

    @classmethod
    def zeros(cls, population: int) -> Meter:
        """A meter for P individuals that has counted nothing."""
        z = torch.zeros(population, dtype=torch.int64)
        return cls(z.clone(), z.clone(), z.clone())

    def add_training(self, steps: int, batch: int, per_example: torch.Tensor) -> None:
        """Count ``steps`` optimizer steps of ``batch`` examples at ``per_example`` ``(P,)`` FLOPs each."""
        self.train_steps += steps
        self.train_flops += steps * batch * per_example

    def add_evaluation(self, examples: int, per_example: torch.Tensor) -> None:
        """Count a forward pass over ``examples`` examples at ``per_example`` ``(P,)`` FLOPs each."""
        self.eval_flops += examples * per_example

    @staticmethod
    def concat(parts: list[Meter]) -> Meter:
        """Join the meters of consecutive population chunks."""
        return Meter(*(torch.cat([getattr(m, f) for m in parts]) for f in SPENT_KEYS))

    def totals(self) -> dict[str, int]:
        """Sums over the population: ``{"train_steps", "train_flops", "eval_flops"}``."""
        return {f: int(getattr(self, f).sum()) for f in SPENT_KEYS}


def train_flops_per_example(
    arch: Architecture, kept: Mapping[str, torch.Tensor | int], scope: str | Scope = "kept"
) -> torch.Tensor:
    """FLOPs of one training example (forward and backward pass) in the training loop, as the meter counts them.

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
