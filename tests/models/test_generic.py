"""Any nn.Module as a population: the generic torch.func path against the built-in fast paths, probes and errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from evoticket.core.errors import ConfigError
from evoticket.models import (
    BUILTIN,
    MODELS,
    architecture_from_dict,
    build_architecture,
    model_names,
    per_individual_loss,
    register,
    unregister,
)
from evoticket.models.generic import activation_bytes, build_generic, param_owners, template
from evoticket.training import AutogradGradient

HIDDEN = {"mlp": [16, 12], "mlp_bn": [16, 12], "mlp_residual": [16], "cnn1d": [4], "cnn1d_bn": [4]}


def stacked(arch, p, seed=0):
    """P random networks of ``arch`` stacked ``(P, *shape)``, biases and normalisation parameters perturbed."""
    g = torch.Generator().manual_seed(seed)
    per = [arch.init_params("kaiming_normal", g) for _ in range(p)]
    params = {k: torch.stack([q[k] for q in per]) for k in per[0]}
    for name in params:
        if name not in arch.weight_names:
            params[name] = params[name] + 0.1 * torch.randn(params[name].shape, generator=g)
    return params


def twins(model):
    """A built-in model and the same network through the generic path (``ticket.prune`` names every layer)."""
    fast = build_architecture(model, (24,), 5, HIDDEN[model])
    generic = build_architecture(model, (24,), 5, HIDDEN[model], prune=["*"])
    return fast, generic


@pytest.mark.parametrize("model", sorted(BUILTIN))
def test_generic_twin_has_the_same_layers_parameters_and_init(model):
    fast, generic = twins(model)
    assert generic.generic and not fast.generic
    assert generic.weight_names == fast.weight_names
    assert generic.param_shapes == fast.param_shapes
    assert set(generic.norm_param_names) == set(fast.norm_param_names)
    assert generic.output_layer.weight == fast.output_layer.weight
    assert [s.weight_shape for s in generic.layers] == [s.weight_shape for s in fast.layers]
    assert [s.fan_in for s in generic.layers] == [s.fan_in for s in fast.layers]
    # theta0: the same draws in the same order
    a = fast.init_params("kaiming_normal", torch.Generator().manual_seed(4))
    b = generic.init_params("kaiming_normal", torch.Generator().manual_seed(4))
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("model", sorted(BUILTIN))
@pytest.mark.parametrize("train", [True, False])
def test_generic_path_gives_the_fast_paths_losses_gradients_and_statistics(model, train):
    """The acceptance test: for every built-in model, the generic path's losses and gradients (and BatchNorm
    running statistics) equal the built-in batched path's, and for the MLPs its hand-written backward's."""
    fast, generic = twins(model)
    params = stacked(fast, 3)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(9, 24, generator=g), torch.randint(0, 5, (9,), generator=g)
    buffers_fast = fast.init_buffers(3)
    buffers_generic = generic.init_buffers(3)
    assert set(buffers_fast) <= set(buffers_generic)  # the generic path also keeps num_batches_tracked
    if train:
        grad_fast = AutogradGradient(fast, params, None, buffers_fast or None)
        grad_generic = AutogradGradient(generic, params, None, buffers_generic or None)
        loss_fast, loss_generic = grad_fast(x, y), grad_generic(x, y)
        torch.testing.assert_close(loss_generic, loss_fast, atol=1e-6, rtol=1e-5)
        for name in params:
            torch.testing.assert_close(grad_generic.grads[name], grad_fast.grads[name], atol=1e-6, rtol=1e-4, msg=name)
        for name, value in buffers_fast.items():
            torch.testing.assert_close(buffers_generic[name], value, atol=1e-6, rtol=1e-5, msg=name)
        hand = MODELS[model].fast_gradient
        if hand is not None:
            manual = hand(fast, params, 9, None)
            torch.testing.assert_close(manual(x, y), loss_generic, atol=1e-6, rtol=1e-5)
            for name in params:
                torch.testing.assert_close(manual.grads[name], grad_generic.grads[name], atol=1e-6, rtol=1e-4)
    else:
        logits_fast = fast.forward_batched(params, x, buffers=buffers_fast or None)
        logits_generic = generic.forward_batched(params, x, buffers=buffers_generic or None)
        assert logits_generic.shape == (3, 9, 5)
        torch.testing.assert_close(logits_generic, logits_fast, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(per_individual_loss(logits_generic, y), per_individual_loss(logits_fast, y))


class TinyNet(nn.Module):
    """A user's network: convolution, BatchNorm, dropout, an unpruned embedding-like parameter."""

    def __init__(self, input_shape, num_classes):
        super().__init__()
        c = input_shape[0]
        self.features = nn.Sequential(nn.Conv2d(c, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2))
        self.scale = nn.Parameter(torch.full((1,), 2.0))
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(4 * (input_shape[1] // 2) * (input_shape[2] // 2), num_classes)

    def forward(self, x):
        return self.head(self.drop(self.features(x).flatten(1) * self.scale))


def tiny(input_shape, num_classes):
    """A tiny conv net for tests."""
    return TinyNet(input_shape, num_classes)


def test_a_users_module_probed_masks_by_its_own_names_and_batched_with_per_individual_buffers():
    arch = build_generic("tiny", tiny, (1, 6, 6), 3)
    assert arch.weight_names == ("features.0.weight", "head.weight")
    assert [s.kind for s in arch.layers] == ["conv2d", "linear"]
    assert arch.layers[0].weight_shape == (4, 1, 3, 3) and arch.layers[0].fan_in == 9
    assert arch.norm_param_names == ("features.1.weight", "features.1.bias")
    assert arch.norms[0].after == "features.0"
    assert set(arch.buffer_shapes) == {
        "features.1.running_mean",
        "features.1.running_var",
        "features.1.num_batches_tracked",
    }
    # owners: the scale parameter (used in the root's forward) reaches the first layer
    owners = param_owners(arch)
    assert owners["head.bias"] == 1 and owners["features.1.weight"] == 0 and owners["scale"] == 0
    assert activation_bytes(arch) > 0
    theta0 = arch.init_params("kaiming_normal", torch.Generator().manual_seed(0))
    assert torch.equal(theta0["scale"], torch.full((1,), 2.0))  # the factory's own value
    assert torch.equal(theta0["features.0.bias"], torch.zeros(4))  # biases start at zero
    assert torch.equal(theta0["features.1.weight"], torch.ones(4))
    params = stacked(arch, 4)
    buffers = arch.init_buffers(4)
    assert buffers["features.1.num_batches_tracked"].dtype == torch.int64
    x = torch.randn(8, 1, 6, 6, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(0)
    logits = arch.forward_batched(params, x, buffers=buffers, train=True)
    assert logits.shape == (4, 8, 3)
    # each individual's own statistics: different parameters give different running means
    means = buffers["features.1.running_mean"]
    assert not torch.allclose(means[0], means[1])
    assert torch.equal(buffers["features.1.num_batches_tracked"], torch.ones(4, dtype=torch.int64))
    # evaluation mode: each individual equals the user's own module with its weights
    out = arch.forward_batched(params, x, buffers=buffers, train=False)
    for i in range(4):
        module = arch.build_module()
        assert type(module) is TinyNet
        module.load_state_dict({**{k: v[i] for k, v in params.items()}, **{k: v[i] for k, v in buffers.items()}})
        torch.testing.assert_close(out[i], module.eval()(x), atol=1e-5, rtol=1e-5)


def test_dropout_draws_independently_per_individual():
    arch = build_generic("tiny", tiny, (1, 6, 6), 3)
    one = arch.init_params("kaiming_normal", torch.Generator().manual_seed(0))
    params = {k: v.expand(2, *v.shape).clone() for k, v in one.items()}  # two identical networks
    x = torch.randn(8, 1, 6, 6)
    torch.manual_seed(0)
    logits = arch.forward_batched(params, x, buffers=arch.init_buffers(2), train=True)
    assert not torch.allclose(logits[0], logits[1])  # the same weights, different dropout masks
    evaluated = arch.forward_batched(params, x, buffers=arch.init_buffers(2), train=False)
    torch.testing.assert_close(evaluated[0], evaluated[1])


def test_architecture_round_trips_through_its_dict_without_the_code():
    arch = build_generic("tiny", tiny, (1, 6, 6), 3)
    d = arch.to_dict()
    import json

    back = architecture_from_dict(json.loads(json.dumps(d)))
    assert back == arch and hash(back) == hash(arch)
    # built-in models keep the dict earlier evoticket wrote (no generic keys)
    assert "generic" not in build_architecture("mlp", (40,), 10).to_dict()


def test_register_names_a_factory_and_records_its_import_path():
    register("tiny_test_net", tiny)
    try:
        assert "tiny_test_net" in model_names()
        arch = build_architecture("tiny_test_net", (1, 6, 6), 3)
        assert arch.factory == "tests.models.test_generic:tiny" or arch.factory.endswith("test_generic:tiny")
        with pytest.raises(ValueError, match="already registered"):
            register("tiny_test_net", tiny)
        register("tiny_test_net", tiny, replace=True)
        with pytest.raises(ValueError, match="built-in"):
            register("conv2", tiny)
        with pytest.raises(ValueError, match="no ':'"):
            register("a:b", tiny)
    finally:
        unregister("tiny_test_net")
    assert "tiny_test_net" not in MODELS
    # a later process without the registration finds the factory through the recorded path
    for cache in ("_TEMPLATES", "_FACTORIES"):
        template.__globals__[cache].clear()
    assert type(arch.build_module()) is TinyNet


class NoLayers(nn.Module):
    def forward(self, x):
        return x.flatten(1)[:, :3]


@pytest.mark.parametrize(
    ("factory", "shape", "match"),
    [
        (lambda s, c: "not a module", (1, 6, 6), r"model.name: 'bad' returned a str, not a torch.nn.Module"),
        (lambda s, c: 1 / 0, (1, 6, 6), r"model.name: 'bad': factory\(input_shape=\(1, 6, 6\), num_classes=3\) raised"),
        (lambda s, c: NoLayers(), (1, 6, 6), r"model.name: 'bad' has no prunable layer"),
        (
            lambda s, c: nn.Linear(10, c),
            (1, 6, 6),
            r"model.name: 'bad' does not accept the data's inputs of shape \(B, 1, 6, 6\)",
        ),
        (
            lambda s, c: nn.Linear(36, 7),
            (36,),
            r"model.name: 'bad' returns \(2, 7\) for a batch of 2 inputs; expected logits \(2, 3\)",
        ),
    ],
)
def test_bad_factories_get_one_line_errors_naming_model_name(factory, shape, match):
    with pytest.raises(ConfigError, match=match) as info:
        build_generic("bad", factory, shape, 3)
    assert "\n" not in str(info.value)


def test_ticket_prune_narrows_the_masks_and_refuses_patterns_that_match_nothing():
    arch = build_generic("tiny", tiny, (1, 6, 6), 3, prune=["head"])
    assert arch.weight_names == ("head.weight",)
    assert "features.0.weight" in arch.param_shapes  # still trained, dense
    with pytest.raises(
        ConfigError, match=r"ticket.prune: 'features.1\*' matches no prunable weight .*features.0.weight, head.weight"
    ):
        build_generic("tiny", tiny, (1, 6, 6), 3, prune=["features.1*"])


def test_unknown_names_and_hidden_sizes_for_factories_are_refused():
    with pytest.raises(ConfigError, match=r"model.name: unknown model 'cnv2' \(did you mean 'conv2'\?\)"):
        build_architecture("cnv2", (3, 8, 8), 10)
    with pytest.raises(ConfigError, match=r"model.hidden: \[8\] sizes a built-in model"):
        build_architecture("conv2", (3, 8, 8), 10, [8])
    with pytest.raises(ConfigError, match=r"model.name: cannot import 'no_such_pkg.nets:make'"):
        build_architecture("no_such_pkg.nets:make", (3, 8, 8), 10)
    with pytest.raises(ConfigError, match=r"model.name: 'conv2' needs images \(C, H, W\).*data.layout = 'image'"):
        build_architecture("conv2", (64,), 10)


def test_the_output_scope_and_rates_follow_the_read_out_even_when_it_is_not_pruned():
    arch = build_generic("tiny", tiny, (1, 6, 6), 3, prune=["features.0"])
    assert arch.weight_names == ("features.0.weight",) and arch.output == "head"
    from evoticket.genome.allocation import lth_rates
    from evoticket.training import SCOPES

    assert SCOPES["output"].trainable(arch) == frozenset({"head.weight", "head.bias"})
    assert lth_rates(arch) == {"features.0.weight": 0.2}  # a hidden layer's rate: the read-out is not pruned
