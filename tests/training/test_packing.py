"""The per-individual data order and packing: trainings of several runs in shared batches, bit for bit as alone."""

from __future__ import annotations

import dataclasses
import random

import pytest
import torch

from evoticket.config import OptimizerConfig
from evoticket.core.seeds import derive_seed
from evoticket.genome import stack_tickets
from evoticket.models import build_architecture, per_individual_loss
from evoticket.models.mlp import MLPFastGradient
from evoticket.training import (
    AutogradGradient,
    Evaluate,
    MaskedOptimizer,
    MaskUpdate,
    effective_params,
    minibatch_indices,
    minibatches,
    train,
)
from evoticket.training.dynamic import DropAndGrow
from evoticket.training.packing import Cancelled, Packer
from tests.training.test_loop import TEST_HIDDEN, tickets_for, toy_splits

INDIVIDUAL = OptimizerConfig(lr=0.01, batch_size=16, data_order="individual")


def test_individual_order_gives_each_network_its_own_sequence():
    common = minibatch_indices(120, 7, 16, seed=5)
    own = minibatch_indices(120, 7, 16, seed=5, individuals=[3, 0, 9])
    assert common.shape == (7, 16) and own.shape == (7, 3, 16)
    for i, k in enumerate([3, 0, 9]):
        assert torch.equal(own[:, i], minibatch_indices(120, 7, 16, seed=derive_seed(5, "individual", k)))
    assert not torch.equal(own[:, 0], own[:, 1])
    x, y = next(iter(minibatches(toy_splits(), own)))
    assert x.shape == (3, 16, 20) and y.shape == (3, 16)
    assert torch.equal(x[1], toy_splits().x_train[own[0, 1]])


@pytest.mark.parametrize("name", ["mlp", "mlp_bn", "mlp_residual", "cnn1d"])
def test_per_network_inputs_give_each_network_what_it_gives_alone(name):
    torch.manual_seed(0)
    arch = build_architecture(name, (20,), 4, TEST_HIDDEN[name])
    theta0, _ = stack_tickets(tickets_for(arch, 3))
    x = torch.randn(3, 16, 20)
    together = arch.forward_batched(theta0, x, train=True)  # (P, B, C); BatchNorm: each network's batch statistics
    assert together.shape == (3, 16, 4)
    for i in range(3):
        one = {k: v[i : i + 1] for k, v in theta0.items()}
        alone = arch.forward_batched(one, x[i : i + 1], train=True)
        assert torch.equal(together[i], alone[0])
        shared = arch.forward_batched(one, x[i], train=True)  # the shared-input path
        torch.testing.assert_close(together[i], shared[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["mlp", "mlp_residual"])
@pytest.mark.parametrize("packed", [False, True], ids=["dense-grads", "packed-grads"])
def test_fast_gradient_on_per_network_minibatches_equals_autograd(name, packed):
    arch = build_architecture(name, (20,), 4, TEST_HIDDEN[name])
    splits = toy_splits()
    theta0, masks = stack_tickets(tickets_for(arch, 3, density=0.5))
    batch = minibatch_indices(120, 1, 16, seed=1, individuals=range(3))[0]  # (P, B)
    x, y = splits.x_train[batch], splits.y_train[batch]
    optimizer = MaskedOptimizer(effective_params(theta0, masks), masks, INDIVIDUAL) if packed else None
    params = optimizer.dense if packed else effective_params(theta0, masks)
    fast = MLPFastGradient(arch, params, 16, optimizer, per_network=True)
    slow = AutogradGradient(arch, params)
    torch.testing.assert_close(fast(x, y), slow(x, y))
    for k, g in slow.grads.items():
        if packed and k in masks:
            g = g.reshape(-1)[optimizer.index[k]]
        torch.testing.assert_close(fast.grads[k], g, rtol=1e-4, atol=1e-6)
    loss = per_individual_loss(arch.forward_batched(params, x), y)
    torch.testing.assert_close(loss, fast(x, y))


def _training(arch, splits, cfg, n, seed, steps, every, dynamic=False, lr=None, scope="kept"):
    """One run's training: ``n`` networks, ``steps`` steps, evaluated every ``every`` steps (a callback between)."""
    device = splits.device
    theta0, masks = stack_tickets(tickets_for(arch, n, density=0.3, seed=seed), device)
    batches = minibatch_indices(120, steps, cfg.batch_size, seed, device, individuals=range(n))
    g = torch.Generator().manual_seed(seed)
    scores = {k: torch.randn(m.shape, generator=g).to(device) for k, m in masks.items()} if scope == "scores" else None

    def run():
        callbacks = [Evaluate(every)]
        if dynamic:
            callbacks.append(MaskUpdate(DropAndGrow("gradient", lambda step: 0.3, seed=seed), every=4))
        return train(arch, theta0, masks, splits, cfg, batches, callbacks=callbacks, lr=lr, scope=scope, scores=scores)

    return run


def _same(a, b):
    assert a.step == b.step
    for k in a.params:
        assert torch.equal(a.params[k], b.params[k]), k
    for k in a.masks:
        assert torch.equal(a.masks[k], b.masks[k]), k
    assert torch.equal(a.bad, b.bad)
    for field in ("train_steps", "train_flops", "eval_flops"):
        assert torch.equal(getattr(a.meter, field), getattr(b.meter, field)), field
    sa, sb = a.optimizer_state(), b.optimizer_state()
    assert torch.equal(sa.steps, sb.steps)
    for key in sa.tensors:
        for name in sa.tensors[key]:
            assert torch.equal(sa.tensors[key][name], sb.tensors[key][name]), (key, name)


@pytest.mark.parametrize(
    "cfg",
    [INDIVIDUAL, dataclasses.replace(INDIVIDUAL, optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=1e-4)],
    ids=["adam", "sgd"],
)
def test_packed_trainings_equal_each_training_alone_bit_for_bit(cfg):
    # shapes where a batched matmul of one matrix (mm) and of several round differently: a network alone trains
    # next to a copy of itself
    arch = build_architecture("mlp", (40,), 10, [16])
    splits = toy_splits(n_train=120, features=40, classes=10)
    # different sizes, lengths and callback schedules: the batches they share change as they go
    tasks = [
        _training(arch, splits, cfg, 1, 0, 23, 5),
        _training(arch, splits, cfg, 2, 1, 17, 3, dynamic=True),
        _training(arch, splits, cfg, 3, 2, 30, 7),
        _training(arch, splits, cfg, 2, 3, 11, 11, lr=torch.tensor([0.01, 0.03])),
        _training(arch, splits, cfg, 1, 4, 9, 2),
    ]
    alone = [task() for task in tasks]
    packer = Packer(width=4)
    packed = packer.run(tasks)
    assert packer.stats.packed_steps > 0 and packer.stats.networks >= 6
    for a, b in zip(alone, packed, strict=True):
        _same(a, b)


@pytest.mark.parametrize("name", ["cnn1d", "mlp_bn"])
def test_packed_autograd_trainings_equal_alone_bit_for_bit(name):
    """Models without the hand-written backward (autograd through the batched forward pass, BatchNorm)."""
    arch = build_architecture(name, (20,), 4, TEST_HIDDEN[name])
    splits = toy_splits()
    tasks = [_training(arch, splits, INDIVIDUAL, n, seed, 12, 4) for n, seed in [(1, 0), (2, 1), (1, 2)]]
    tasks.append(_training(arch, splits, INDIVIDUAL, 2, 3, 12, 4, scope="output"))  # another scope: its own batch
    # edge-popup's scores (straight-through top-k), one network and two
    tasks += [_training(arch, splits, INDIVIDUAL, n, 5 + n, 12, 4, scope="scores") for n in (1, 2)]
    alone = [task() for task in tasks]
    packer = Packer(width=4)
    packed = packer.run(tasks)
    assert packer.stats.packed_steps > 0
    for a, b in zip(alone, packed, strict=True):
        _same(a, b)
        for k in a.scores or {}:
            assert torch.equal(a.scores[k], b.scores[k])


def test_packed_runs_keep_their_own_global_random_streams():
    """Runs take turns: each one's draws from Python's and torch's global generators are its own, as alone."""
    arch = build_architecture("mlp", (20,), 4, [8])
    splits = toy_splits()

    def run(seed):
        random.seed(seed)
        torch.manual_seed(seed)
        draws = []
        for _ in range(3):
            draws.append((random.random(), float(torch.rand(1))))
            _training(arch, splits, INDIVIDUAL, 1, seed, 5, 5)()
        return draws

    alone = [run(s) for s in range(3)]
    assert Packer(width=3).run([lambda s=s: run(s) for s in range(3)]) == alone


def test_common_order_trainings_are_not_packed():
    arch = build_architecture("mlp", (20,), 4, [8])
    splits = toy_splits()
    cfg = dataclasses.replace(INDIVIDUAL, data_order="common")

    def task(seed):
        theta0, masks = stack_tickets(tickets_for(arch, 2, seed=seed))
        return lambda: train(arch, theta0, masks, splits, cfg, minibatch_indices(120, 6, 16, seed))

    packer = Packer(width=2)
    packed = packer.run([task(0), task(1)])
    assert packer.stats.rounds == 0  # each trained in its own turn, as alone
    for a, b in zip([task(0)(), task(1)()], packed, strict=True):
        assert all(torch.equal(a.params[k], b.params[k]) for k in a.params)


def test_a_failing_run_stops_the_others_and_its_error_is_raised():
    arch = build_architecture("mlp", (20,), 4, [8])
    splits = toy_splits()
    done = []

    def bad():
        _training(arch, splits, INDIVIDUAL, 1, 0, 5, 5)()
        raise ValueError("cell 1 broke")

    def long(seed):
        for _ in range(50):
            _training(arch, splits, INDIVIDUAL, 1, seed, 5, 5)()
        done.append(seed)

    packer = Packer(width=3)
    with pytest.raises(ValueError, match="cell 1 broke"):
        packer.run([lambda: long(0), bad, lambda: long(2), lambda: long(3)])
    assert done == []  # the others stopped at their next steps; the fourth never started


def test_width_must_be_positive():
    with pytest.raises(ValueError, match="width"):
        Packer(width=0)


def test_cancelled_is_raised_in_runs_still_going():
    arch = build_architecture("mlp", (20,), 4, [8])
    splits = toy_splits()
    seen = []

    def watcher():
        try:
            for _ in range(20):
                _training(arch, splits, INDIVIDUAL, 1, 1, 5, 5)()
        except Cancelled as e:
            seen.append(e)
            raise

    def bad():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        Packer(width=2).run([watcher, bad])
    assert len(seen) == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_packed_trainings_on_cuda_match_alone_and_repeat_exactly():
    """On a GPU: packed as alone to float rounding (cuBLAS picks kernels by batch size), and twice the same."""
    from evoticket.core.device import device_settings

    arch = build_architecture("mlp", (40,), 10, [16])
    splits = toy_splits(n_train=120, features=40, classes=10).to("cuda")
    with device_settings("highest", True, "cuda"):
        tasks = [_training(arch, splits, INDIVIDUAL, n, seed, 15, 5) for n, seed in [(1, 0), (3, 1), (2, 2)]]
        alone = [task() for task in tasks]
        first, second = Packer(width=3).run(tasks), Packer(width=3).run(tasks)
    for a, b, c in zip(alone, first, second, strict=True):
        for k in a.params:
            torch.testing.assert_close(a.params[k], b.params[k], rtol=1e-4, atol=1e-5)
            assert torch.equal(b.params[k], c.params[k])
