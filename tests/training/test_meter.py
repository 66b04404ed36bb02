"""The compute meter against hand computations, for every model and scope."""

from __future__ import annotations

import math

import pytest
import torch

from evoticket.config import OptimizerConfig
from evoticket.data import Splits
from evoticket.genome import Ticket, stack_tickets
from evoticket.models import BUILTIN, build_architecture
from evoticket.models.generic import dense_flops
from evoticket.operators import initTicket
from evoticket.training import (
    SCOPES,
    Evaluate,
    backward_flops,
    finetune_tickets,
    forward_flops,
    kept_counts,
    minibatch_indices,
    output_positions,
    train,
)


def counts(arch, density=None, **kept):
    """Weight name -> kept count: all weights, or a density of each, or given counts."""
    out = {}
    for spec in arch.layers:
        n = math.prod(spec.weight_shape)
        out[spec.weight] = kept.get(spec.name, n if density is None else round(density * n))
    return out


def test_mlp_at_ten_percent_by_hand():
    # 40-300-100-10 keeping 1,200 / 3,000 / 100 weights
    arch = build_architecture("mlp", (40,), 10, [300, 100])
    kept = counts(arch, 0.1)
    assert kept == {"fc1.weight": 1200, "fc2.weight": 3000, "fc3.weight": 100}
    # forward: 2 per kept weight, 1 per bias
    assert forward_flops(arch, kept) == (2 * 1200 + 300) + (2 * 3000 + 100) + (2 * 100 + 10) == 9010
    # backward, everything trained: weight grads, bias grads, input grads above the first layer
    every = SCOPES["kept"].trainable(arch)
    assert backward_flops(arch, kept, every) == 2 * 4300 + 410 + 2 * (3000 + 100) == 15210


def test_mlp_residual_dense_by_hand():
    arch = build_architecture("mlp_residual", (40,), 10, [100])
    kept = counts(arch)
    assert forward_flops(arch, kept) == (8000 + 100) + (20000 + 100) + (2000 + 10) == 30210
    assert backward_flops(arch, kept, SCOPES["kept"].trainable(arch)) == 30000 + 210 + 2 * (10000 + 1000)


def test_cnn1d_dense_by_hand():
    # conv lengths 40 -> 19 -> 10 -> 5; weights 125, 1875, 1875 and a 125 -> 10 read-out
    arch = build_architecture("cnn1d", (40,), 10, [25])
    kept = counts(arch)
    forward = (250 + 25) * 19 + (3750 + 25) * 10 + (3750 + 25) * 5 + (2500 + 10)
    assert forward_flops(arch, kept) == forward == 64360
    weights = 250 * 19 + 3750 * 10 + 3750 * 5 + 2500
    biases = 25 * 19 + 25 * 10 + 25 * 5 + 10
    inputs = 3750 * 10 + 3750 * 5 + 2500
    assert backward_flops(arch, kept, SCOPES["kept"].trainable(arch)) == weights + biases + inputs == 123110


def test_batchnorm_models_by_hand():
    arch = build_architecture("mlp_bn", (40,), 10, [300, 100])
    kept = counts(arch)
    # no bias before BatchNorm: only the read-out adds one
    assert forward_flops(arch, kept) == 2 * 12000 + 2 * 30000 + 2 * 1000 + 10 == 86010
    # BatchNorm-only training: no weight gradient, input gradients through every layer above bn1
    assert backward_flops(arch, kept, SCOPES["bn"].trainable(arch)) == 2 * (30000 + 1000)
    cnn = build_architecture("cnn1d_bn", (40,), 10, [25])
    assert forward_flops(cnn, counts(cnn)) == 250 * 19 + 3750 * 10 + 3750 * 5 + 2510


def test_output_only_and_scores_by_hand():
    arch = build_architecture("mlp", (40,), 10, [300, 100])
    kept = counts(arch, 0.1)
    # the read-out alone: its weight and bias gradients, nothing below
    assert backward_flops(arch, kept, SCOPES["output"].trainable(arch)) == 2 * 100 + 10
    # edge-popup's scores: every weight's gradient (dense), input gradients above the first layer
    small = build_architecture("mlp", (40,), 10, [16])
    k = {"fc1.weight": 64, "fc2.weight": 16}
    weights = frozenset(small.weight_names)
    assert forward_flops(small, k) == (128 + 16) + (32 + 10)
    assert backward_flops(small, k, weights, dense_weight_grads=weights) == 2 * 640 + 2 * 160 + 2 * 16


@pytest.mark.parametrize("model", sorted(BUILTIN))
def test_flop_counter_positions_equal_the_hand_counts(model):
    """FlopCounterMode's positions (the meter's, for every model) equal the hand formulas of the built-ins,
    and the same network run as a generic nn.Module (every weight named in ticket.prune) counts the same."""
    hidden = {"cnn1d": [4], "cnn1d_bn": [4], "mlp_residual": [16]}.get(model, [16, 8])
    arch = build_architecture(model, (40,), 10, hidden)
    length, hand = 40, {}
    for spec in arch.layers:
        if spec.kind == "conv1d":
            length = (length + 2 * spec.padding - spec.kernel_size) // spec.stride + 1
        hand[spec.name] = length if spec.kind == "conv1d" else 1
    assert output_positions(arch) == hand
    generic = build_architecture(model, (40,), 10, hidden, prune=["*"])
    assert generic.generic and generic.weight_names == arch.weight_names
    kept = counts(arch, 0.3)
    assert forward_flops(generic, kept) == forward_flops(arch, kept)
    for scope in ("kept", "output", "biases"):
        trainable = SCOPES[scope].trainable(arch)
        assert SCOPES[scope].trainable(generic) == trainable
        assert backward_flops(generic, kept, trainable) == backward_flops(arch, kept, trainable)


def test_conv2d_positions_and_a_dense_layer_by_hand():
    """conv2 on 3x8x8: 3x3 'same' convolutions (64 positions each), a 2x2 pooling, then 3 linear layers; with
    ticket.prune leaving classifier.0 dense, its FLOPs count dense, forward and twice backward."""
    arch = build_architecture("conv2", (3, 8, 8), 10)
    assert output_positions(arch) == {
        "features.0": 64,
        "features.2": 64,
        "classifier.0": 1,
        "classifier.2": 1,
        "classifier.4": 1,
    }
    kept = counts(arch)
    forward = (2 * 1728 + 64) * 64 + (2 * 36864 + 64) * 64 + (2 * 1024 * 256 + 256) + (2 * 65536 + 256) + 5130
    assert forward_flops(arch, kept) == forward
    narrow = build_architecture("conv2", (3, 8, 8), 10, prune=["features.*", "classifier.4.weight"])
    assert narrow.weight_names == ("features.0.weight", "features.2.weight", "classifier.4.weight")
    k = counts(narrow)
    dense = 2 * 1024 * 256 + 2 * 65536  # classifier.0 and classifier.2 weights, counted by FlopCounterMode
    assert forward_flops(narrow, k) == forward - 256 - 256  # their bias adds are elementwise, not counted
    # backward: a dense layer's 2x forward equals the weight and input gradients a pruned layer counts at
    # full density, without its bias gradients
    assert dense_flops(narrow) == dense
    narrow_back = backward_flops(narrow, k, SCOPES["kept"].trainable(narrow))
    assert narrow_back == backward_flops(arch, kept, SCOPES["kept"].trainable(arch)) - 256 - 256


def toy_splits(features=40, classes=10, n=200):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, features, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    return Splits("toy", x, y, x[:50].clone(), y[:50].clone(), x[:30].clone(), y[:30].clone(), classes)


@pytest.mark.parametrize("model", sorted(BUILTIN))
def test_engine_meters_steps_examples_and_evaluations(model):
    """What the engine counts is steps x batch x per-example training FLOPs, and examples x forward FLOPs."""
    arch = build_architecture(
        model, (40,), 10, {"cnn1d": [4], "cnn1d_bn": [4], "mlp_residual": [16]}.get(model, [16, 8])
    )
    g = torch.Generator().manual_seed(1)
    tickets = [initTicket(Ticket, arch, 0.3, rng=g) for _ in range(3)]
    splits = toy_splits()
    cfg = OptimizerConfig(batch_size=20)
    result = finetune_tickets(tickets, arch, splits, cfg, seed=0, steps=7)
    _, masks = stack_tickets(tickets)
    kept = kept_counts(arch, masks)
    per_example = forward_flops(arch, kept) + backward_flops(arch, kept, SCOPES["kept"].trainable(arch))
    assert torch.equal(result.meter.train_steps, torch.full((3,), 7))
    assert torch.equal(result.meter.train_flops, 7 * 20 * per_example)
    assert torch.equal(result.meter.eval_flops, 2 * 50 * forward_flops(arch, kept))  # validation before and after
    theta0, masks = stack_tickets(tickets)
    check = Evaluate(every=3, test=True)
    state = train(arch, theta0, masks, splits, cfg, minibatch_indices(200, 7, 20, 0), callbacks=[check])
    assert [row["step"] for row in check.history] == [0, 3, 6, 7]
    assert torch.equal(state.meter.eval_flops, 4 * (50 + 30) * forward_flops(arch, kept))
