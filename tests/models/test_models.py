"""Every registered model: its batched forward pass equals the plain module, and a fast backward equals autograd."""

from __future__ import annotations

import pytest
import torch

from evoticket.core.errors import ConfigError
from evoticket.models import BUILTIN, MODELS, build_architecture, per_individual_loss
from evoticket.models.norm import MOMENTUM

HIDDEN = {"mlp": [16, 12], "mlp_bn": [16, 12], "mlp_residual": [16], "cnn1d": [4], "cnn1d_bn": [4]}
"""Small hidden sizes of every registered model."""


def stacked(arch, p, seed=0):
    """P different random networks of ``arch``, stacked ``(P, *shape)``; BatchNorm parameters perturbed."""
    g = torch.Generator().manual_seed(seed)
    per = [arch.init_params("kaiming_normal", g) for _ in range(p)]
    params = {k: torch.stack([q[k] for q in per]) for k in per[0]}
    for name in arch.norm_param_names:
        params[name] = params[name] + 0.1 * torch.randn(params[name].shape, generator=g)
    for spec in arch.layers:
        if spec.use_bias:
            params[spec.bias] = 0.1 * torch.randn(params[spec.bias].shape, generator=g)
    return params


def test_every_model_is_registered_with_a_builder_forward_and_module():
    assert set(BUILTIN) == set(HIDDEN) and set(BUILTIN) <= set(MODELS)
    for name in BUILTIN:
        entry = MODELS[name]
        arch = entry.build((40,), 10, entry.default_hidden)
        assert arch.name == name
        assert entry.module(arch) is not None


@pytest.mark.parametrize("model", sorted(BUILTIN))
@pytest.mark.parametrize("train", [True, False])
def test_batched_forward_equals_the_plain_module(model, train):
    arch = build_architecture(model, (24,), 5, HIDDEN[model])
    params = stacked(arch, 3)
    x = torch.randn(9, 24, generator=torch.Generator().manual_seed(1))
    buffers = arch.init_buffers(3)
    if arch.norms:  # running statistics that are not the defaults, to be used in evaluation mode
        for name, value in buffers.items():
            buffers[name] = value + 0.2 * torch.rand(value.shape, generator=torch.Generator().manual_seed(2))
    before = {k: v.clone() for k, v in buffers.items()}
    logits = arch.forward_batched(params, x, buffers=buffers or None, train=train)  # (P, B, C)
    assert logits.shape == (3, 9, 5)
    for i in range(3):
        module = arch.build_module()
        module.load_state_dict(
            {**{k: v[i] for k, v in params.items()}, **{k: v[i] for k, v in before.items()}}, strict=False
        )
        module.train(train)
        torch.testing.assert_close(logits[i], module(x), atol=1e-5, rtol=1e-5)
        for name, value in buffers.items():  # BatchNorm's running statistics move as nn.BatchNorm1d's do
            torch.testing.assert_close(value[i], module.state_dict()[name], atol=1e-6, rtol=1e-5)
    if arch.norms and train:
        assert all(not torch.equal(buffers[k], before[k]) for k in buffers)
        assert MOMENTUM == 0.1


@pytest.mark.parametrize("model", sorted(n for n, e in MODELS.items() if e.fast_gradient is not None))
def test_fast_backward_equals_autograd(model):
    """The hand-written backward of the entries that declare one: same loss and gradients (float32)."""
    arch = build_architecture(model, (24,), 5, HIDDEN[model])
    params = stacked(arch, 4)
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(11, 24, generator=g), torch.randint(0, 5, (11,), generator=g)
    fast = MODELS[model].fast_gradient(arch, params, 11, None)
    loss = fast(x, y)
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    reference = per_individual_loss(arch.forward_batched(leaves, x), y)
    grads = torch.autograd.grad(reference.sum(), list(leaves.values()))
    torch.testing.assert_close(loss, reference.detach(), atol=1e-6, rtol=1e-5)
    for name, grad in zip(leaves, grads, strict=True):
        torch.testing.assert_close(fast.grads[name], grad, atol=1e-6, rtol=1e-4, msg=name)


def test_batchnorm_variants_have_no_bias_before_batchnorm_and_count_their_parameters():
    mlp, mlp_bn = build_architecture("mlp", (40,), 10), build_architecture("mlp_bn", (40,), 10)
    # 40-300-100-10: BatchNorm adds gamma and beta per hidden unit and removes the hidden biases
    assert mlp_bn.num_params() == mlp.num_params() + 2 * (300 + 100) - (300 + 100)
    assert mlp_bn.num_prunable() == mlp.num_prunable()
    assert [n.name for n in mlp_bn.norms] == ["bn1", "bn2"]
    assert "fc1.bias" not in mlp_bn.param_shapes and "fc3.bias" in mlp_bn.param_shapes
    assert set(mlp_bn.buffer_shapes) == {"bn1.running_mean", "bn1.running_var", "bn2.running_mean", "bn2.running_var"}
    cnn, cnn_bn = build_architecture("cnn1d", (40,), 10), build_architecture("cnn1d_bn", (40,), 10)
    assert cnn.num_params() == 5210
    assert cnn_bn.num_params() == 5210 + 3 * 2 * 25 - 3 * 25
    theta0 = cnn_bn.init_params("kaiming_normal", torch.Generator().manual_seed(0))
    assert torch.equal(theta0["bn1.weight"], torch.ones(25)) and torch.equal(theta0["bn1.bias"], torch.zeros(25))


@pytest.mark.parametrize(
    ("model", "hidden", "match"),
    [
        ("cnn1d", (1, 2), "'cnn1d' takes one channel count"),
        ("cnn1d_bn", (1, 2), "'cnn1d' takes one channel count"),
        ("mlp_residual", (3, 4), "'mlp_residual' takes one size"),
        ("mlp_bn", (0,), "sizes >= 1 for 'mlp_bn'"),
        ("mlq", (3,), "model.name: unknown model 'mlq'"),
    ],
)
def test_sizes_that_do_not_fit_the_model_are_refused(model, hidden, match):
    with pytest.raises(ConfigError, match=match):
        build_architecture(model, (40,), 10, hidden)
