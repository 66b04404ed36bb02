"""The batched training loop: population fine-tuning against a serial reference, full training, determinism."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils import prune
from torch.utils._python_dispatch import TorchDispatchMode

from evoticket.config import OptimizerConfig
from evoticket.core.device import resolve_device
from evoticket.core.errors import ConfigError
from evoticket.data import Splits
from evoticket.genome import Ticket, stack_tickets
from evoticket.models import BUILTIN, build_architecture
from evoticket.operators import initTicket
from evoticket.training import (
    bytes_per_individual,
    chunk_size,
    finetune_stacked,
    finetune_tickets,
    minibatch_indices,
    train_early_stopping,
)

TEST_HIDDEN = {"mlp": [16, 12], "mlp_bn": [16, 12], "mlp_residual": [16], "cnn1d": [4], "cnn1d_bn": [4]}
"""Small hidden sizes of every registered model."""


def toy_splits(n_train=120, n_val=40, n_test=40, features=20, classes=4, seed=0) -> Splits:
    """A small learnable problem: labels from a random linear map."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(features, classes, generator=g)

    def make(n):
        x = torch.randn(n, features, generator=g)
        return x, (x @ w).argmax(1)

    (xt, yt), (xv, yv), (xs, ys) = make(n_train), make(n_val), make(n_test)
    return Splits("toy", xt, yt, xv, yv, xs, ys, classes)


def tickets_for(arch, n, density=0.4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [initTicket(Ticket, arch, density, rng=g) for _ in range(n)]


def serial_finetune(arch, ticket, splits, cfg, batches):
    """The loop a DEAP user would write: one nn.Module per individual, masks via torch.nn.utils.prune."""
    module = arch.build_module()
    module.load_state_dict(ticket.theta0, strict=not arch.norms)  # BatchNorm buffers start fresh
    for name, mask in ticket.masks.items():
        prune.custom_from_mask(module.get_submodule(name.rsplit(".", 1)[0]), "weight", mask)
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.SGD(module.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    for idx in batches:
        loss = F.cross_entropy(module(splits.x_train[idx]), splits.y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    module.eval()  # BatchNorm: running statistics
    with torch.no_grad():
        logits = module(splits.x_val)
        acc = (logits.argmax(1) == splits.y_val).float().mean()
    weights = {}
    for name in ticket.theta0:
        layer, kind = name.rsplit(".", 1)
        weights[name] = getattr(module.get_submodule(layer), kind).detach().clone()
    return weights, float(acc)


@pytest.mark.parametrize("model", sorted(BUILTIN))
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_batched_equals_serial(model, optimizer):
    splits = toy_splits(features=24)
    hidden = TEST_HIDDEN[model]
    arch = build_architecture(model, (24,), 4, hidden)
    cfg = OptimizerConfig(lr=1e-2, optimizer=optimizer, batch_size=16, weight_decay=1e-4)
    tickets = tickets_for(arch, 5)
    batches = minibatch_indices(120, 15, cfg.batch_size, seed=3)
    theta0, masks = stack_tickets(tickets)
    result = finetune_stacked(arch, theta0, masks, splits, cfg, batches, return_weights=True)
    for i, ticket in enumerate(tickets):
        weights, acc = serial_finetune(arch, ticket, splits, cfg, batches)
        for name, w in weights.items():
            torch.testing.assert_close(result.weights[name][i], w, atol=1e-4, rtol=0)
        assert result.val_acc[i].item() == pytest.approx(acc, abs=1e-6)
    # the fine-tuning did something
    assert any(not torch.equal(result.weights[k], theta0[k] * masks.get(k, 1)) for k in theta0)


def test_pruned_weights_stay_exactly_zero():
    splits = toy_splits()
    arch = build_architecture("mlp", (20,), 4, [32, 16])
    cfg = OptimizerConfig(lr=5e-2, batch_size=20, weight_decay=1e-3)
    tickets = tickets_for(arch, 4, density=0.2)
    theta0, masks = stack_tickets(tickets)
    result = finetune_stacked(arch, theta0, masks, splits, cfg, minibatch_indices(120, 30, 20, 0), return_weights=True)
    for name, mask in masks.items():
        assert torch.all(result.weights[name][~mask] == 0)
        assert torch.any(result.weights[name][mask] != theta0[name][mask])


def test_step_zero_accuracy_is_untrained_and_steps_zero_is_supermask():
    splits = toy_splits()
    arch = build_architecture("mlp", (20,), 4, [16])
    tickets = tickets_for(arch, 3)
    cfg = OptimizerConfig()
    result = finetune_tickets(tickets, arch, splits, cfg, seed=0, steps=0, return_weights=True)
    assert torch.equal(result.val_acc, result.val_acc_before)
    for i, t in enumerate(tickets):
        for name, w in t.effective_weights().items():
            assert torch.equal(result.weights[name][i], w)


def test_chunking_does_not_change_results():
    splits = toy_splits()
    arch = build_architecture("mlp", (20,), 4, [16, 8])
    tickets = tickets_for(arch, 7)
    cfg = OptimizerConfig(batch_size=16)
    whole = finetune_tickets(tickets, arch, splits, cfg, seed=5, steps=10)
    per_one = bytes_per_individual(arch, cfg, 40)
    tiny = 2.5 * per_one / 2**20
    assert chunk_size(arch, cfg, 40, max_memory_mb=tiny) == 2
    chunked = finetune_tickets(tickets, arch, splits, cfg, seed=5, steps=10, max_memory_mb=tiny)
    torch.testing.assert_close(chunked.val_loss, whole.val_loss, atol=1e-5, rtol=0)
    assert torch.equal(chunked.val_acc, whole.val_acc)


def test_common_random_numbers_order_independent():
    """Every individual sees the same minibatches: its result does not depend on its batch-mates."""
    splits = toy_splits()
    arch = build_architecture("mlp", (20,), 4, [16])
    tickets = tickets_for(arch, 4)
    cfg = OptimizerConfig(batch_size=16)
    together = finetune_tickets(tickets, arch, splits, cfg, seed=9, steps=10)
    alone = finetune_tickets(tickets[2:3], arch, splits, cfg, seed=9, steps=10)
    assert together.val_loss[2].item() == pytest.approx(alone.val_loss[0].item(), abs=1e-5)
    other_seed = finetune_tickets(tickets[2:3], arch, splits, cfg, seed=10, steps=10)
    assert other_seed.val_loss[0].item() != pytest.approx(alone.val_loss[0].item(), abs=1e-7)


def test_nonfinite_individual_is_flagged_and_others_unaffected():
    splits = toy_splits()
    arch = build_architecture("mlp", (20,), 4, [16])
    tickets = tickets_for(arch, 3)
    cfg = OptimizerConfig(batch_size=16)
    clean = finetune_tickets(tickets, arch, splits, cfg, seed=1, steps=8)
    poisoned = tickets[1].clone()
    poisoned.theta0 = dict(poisoned.theta0)
    poisoned.theta0["fc1.bias"] = torch.full_like(poisoned.theta0["fc1.bias"], float("nan"))
    result = finetune_tickets([tickets[0], poisoned, tickets[2]], arch, splits, cfg, seed=1, steps=8)
    assert result.nonfinite.tolist() == [False, True, False]
    for i in (0, 2):
        assert result.val_loss[i].item() == pytest.approx(clean.val_loss[i].item(), abs=1e-6)
        assert result.val_acc[i].item() == clean.val_acc[i].item()


def test_diverging_learning_rate_is_flagged():
    splits = toy_splits()
    arch = build_architecture("mlp", (20,), 4, [16])
    cfg = OptimizerConfig(batch_size=16, optimizer="sgd", lr=1e6, momentum=0.9)
    result = finetune_tickets(tickets_for(arch, 2, density=1.0), arch, splits, cfg, seed=0, steps=20)
    assert result.nonfinite.all()


def test_minibatch_indices_epochs_without_replacement():
    idx = minibatch_indices(50, 12, 10, seed=0)
    assert idx.shape == (12, 10)
    first_epoch = idx[:5].flatten()
    assert sorted(first_epoch.tolist()) == list(range(50))
    assert torch.equal(idx, minibatch_indices(50, 12, 10, seed=0))
    assert not torch.equal(idx, minibatch_indices(50, 12, 10, seed=1))
    assert minibatch_indices(50, 0, 10, seed=0).shape == (0, 10)
    assert minibatch_indices(8, 3, 10, seed=0).shape == (3, 8)  # batch capped at the split


def test_early_stopping_reports_test_at_min_val_loss():
    splits = toy_splits(n_train=200)
    arch = build_architecture("mlp", (20,), 4, [32])
    cfg = OptimizerConfig(lr=2e-2, batch_size=20)
    tickets = tickets_for(arch, 2, density=1.0)
    theta0, masks = stack_tickets(tickets)
    res = train_early_stopping(arch, theta0, masks, splits, cfg, minibatch_indices(200, 60, 20, 0), eval_every=20)
    assert set(res.best_step.tolist()) <= {0, 20, 40, 60}
    assert (res.test_acc > 0.5).all()  # the toy problem is learnable
    assert not res.nonfinite.any()


VML_OPS = frozenset(
    {"exp", "expm1", "log", "log10", "log1p", "sqrt", "tanh", "sin", "cos", "tan", "erf", "erfc", "erfinv"}
    | {"acos", "asin", "atan"}
)
"""Elementwise ops that PyTorch's CPU build hands to Intel MKL's VML (``aten/src/ATen/cpu/vml.h``)."""


class OpRecorder(TorchDispatchMode):
    """Records the name of every ATen op dispatched while active (``exp`` for ``aten.exp.out``)."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.add(func.overloadpacket.__name__.rstrip("_"))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("model", sorted(BUILTIN))
def test_training_calls_no_mkl_vml_op(model):
    """Same seed, same numbers, in any process: no op of the training path may go to MKL's VML.

    On x86 hosts where MKL takes its Intel code path, ``torch.exp`` over a tensor larger than one
    2048-element grain ran in two threads, and in some processes (depending on memory layout) the
    worker thread's half came out of VML at reduced accuracy (relative error ~1e-4): the same
    campaign then gave different validation losses in different processes, and a resumed campaign
    did not reproduce an uninterrupted one.
    """
    splits = toy_splits(features=24)
    hidden = TEST_HIDDEN[model]
    arch = build_architecture(model, (24,), 4, hidden)
    cfg = OptimizerConfig(batch_size=16)
    tickets = tickets_for(arch, 80)  # 80 * 4 classes * 16 examples > one 2048-element grain
    theta0, masks = stack_tickets(tickets)
    recorder = OpRecorder()
    with recorder:
        finetune_tickets(tickets, arch, splits, cfg, seed=0, steps=3)
        train_early_stopping(arch, theta0, masks, splits, cfg, minibatch_indices(120, 3, 16, seed=0), eval_every=2)
    assert {"_softmax", "_log_softmax"} & recorder.names  # the recorder sees the loss
    assert not recorder.names & VML_OPS, sorted(recorder.names & VML_OPS)


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match=r"^campaign.device: 'cuda' requested but CUDA is not available"):
            resolve_device("cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    splits = toy_splits()
    arch = build_architecture("mlp", (20,), 4, [16])
    tickets = tickets_for(arch, 4)
    cfg = OptimizerConfig(batch_size=16)
    cpu = finetune_tickets(tickets, arch, splits, cfg, seed=2, steps=10)
    gpu = finetune_tickets(tickets, arch, splits.to("cuda"), cfg, seed=2, steps=10)
    torch.testing.assert_close(gpu.val_loss, cpu.val_loss, atol=1e-3, rtol=0)
