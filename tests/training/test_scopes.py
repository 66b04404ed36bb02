"""Trainable scopes and step callbacks of the one training engine."""

from __future__ import annotations

import pytest
import torch

from evoticket.config import OptimizerConfig
from evoticket.core.errors import ConfigError
from evoticket.data import Splits
from evoticket.genome import Ticket, stack_tickets
from evoticket.models import build_architecture
from evoticket.operators import initTicket
from evoticket.training import (
    EarlyStopping,
    MaskUpdate,
    SaveWeights,
    finetune_stacked,
    kept_counts,
    minibatch_indices,
    topk_masks,
    train,
)


def toy(features=20, classes=4, n=160):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(features, classes, generator=g)
    x = torch.randn(n, features, generator=g)
    y = (x @ w).argmax(1)
    return Splits("toy", x[:100], y[:100], x[100:130], y[100:130], x[130:], y[130:], classes)


def stack(arch, p=3, density=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return stack_tickets([initTicket(Ticket, arch, density, rng=g) for _ in range(p)])


CFG = OptimizerConfig(lr=2e-2, batch_size=20)
BATCHES = minibatch_indices(100, 12, 20, seed=1)


@pytest.mark.parametrize(
    ("model", "scope"), [("mlp_bn", "bn"), ("cnn1d_bn", "bn"), ("mlp", "output"), ("mlp", "biases")]
)
def test_a_scope_changes_nothing_but_its_parameters(model, scope):
    arch = build_architecture(model, (20,), 4, [8] if model.startswith("cnn") else [16, 12])
    theta0, masks = stack(arch)
    state = train(arch, theta0, masks, toy(), CFG, BATCHES, scope=scope)
    trainable = {
        "bn": set(arch.norm_param_names),
        "output": {arch.output_layer.weight, arch.output_layer.bias},
        "biases": {s.bias for s in arch.layers if s.use_bias},
    }[scope]
    for name, start in theta0.items():
        start = start * masks[name] if name in masks else start
        moved = not torch.equal(state.params[name], start)
        assert moved == (name in trainable), name
    for name, mask in masks.items():  # masks hold in every scope
        assert torch.all(state.params[name][~mask] == 0)


def test_bn_scope_on_a_model_without_batchnorm_is_refused():
    arch = build_architecture("mlp", (20,), 4, [16])
    theta0, masks = stack(arch)
    with pytest.raises(ConfigError, match="'bn': model 'mlp' has no such parameters"):
        train(arch, theta0, masks, toy(), CFG, BATCHES, scope="bn")
    with pytest.raises(ConfigError, match="unknown trainable scope 'all'"):
        train(arch, theta0, masks, toy(), CFG, BATCHES, scope="all")


def test_scores_keep_exactly_the_top_k_of_each_layer_and_never_move_a_weight():
    arch = build_architecture("mlp", (20,), 4, [16, 12])
    theta0, masks = stack(arch, density=0.25)
    g = torch.Generator().manual_seed(5)
    scores = {k: torch.rand(m.shape, generator=g) for k, m in masks.items()}
    want = kept_counts(arch, masks)
    state = train(arch, theta0, masks, toy(), CFG, BATCHES, scope="scores", scores=scores)
    for name, mask in state.masks.items():
        assert torch.equal(mask.flatten(1).sum(1), want[name])  # exactly k per individual and layer
        top = topk_masks({name: state.scores[name]}, {name: want[name]})[name]
        assert torch.equal(mask, top)  # the kept weights are the top-k by |score|
        assert torch.equal(state.params[name], theta0[name] * mask)  # weights frozen at theta0
        assert not torch.equal(state.scores[name], scores[name])  # the scores learnt
    assert not torch.equal(state.masks["fc1.weight"], topk_masks(scores, want)["fc1.weight"])


def test_save_weights_at_step_k_equals_k_steps_of_training():
    arch = build_architecture("mlp", (20,), 4, [16, 12])
    theta0, masks = stack(arch)
    saver = SaveWeights([0, 5])
    train(arch, theta0, masks, toy(), CFG, BATCHES, callbacks=[saver])
    assert sorted(saver.saved) == [0, 5]
    for name in theta0:
        start = theta0[name] * masks[name] if name in masks else theta0[name]
        assert torch.equal(saver.saved[0][name], start)  # step 0: theta0 * mask, for rewinding
    five = finetune_stacked(arch, theta0, masks, toy(), CFG, BATCHES[:5], return_weights=True)
    for name, w in five.weights.items():
        assert torch.equal(saver.saved[5][name], w)


def test_mask_update_prunes_during_training_and_keeps_pruned_weights_at_zero():
    arch = build_architecture("mlp", (20,), 4, [16, 12])
    theta0, masks = stack(arch, density=0.5)

    def prune_half(state):
        out = {}
        for name, mask in state.masks.items():
            w = state.params[name].detach().abs().masked_fill(~mask, 0)
            kept = state.masks[name].flatten(1).sum(1) // 2
            out[name] = topk_masks({name: w}, {name: kept})[name]
        return out

    update = MaskUpdate(prune_half, at=(6,))
    state = train(arch, theta0, masks, toy(), CFG, BATCHES, callbacks=[update])
    for name, mask in state.masks.items():
        assert torch.equal(mask.flatten(1).sum(1), masks[name].flatten(1).sum(1) // 2)
        assert bool((mask <= masks[name]).all())  # pruned among the kept ones
        assert torch.all(state.params[name][~mask] == 0)
    assert int(state.meter.train_steps[0]) == 12


def test_early_stopping_keeps_the_weights_of_its_step():
    arch = build_architecture("mlp", (20,), 4, [16, 12])
    theta0, masks = stack(arch)
    stopping = EarlyStopping(4, "val_acc", keep_weights=True)
    saver = SaveWeights([0, 4, 8, 12])
    train(arch, theta0, masks, toy(), CFG, BATCHES, callbacks=[stopping, saver])
    for i, step in enumerate(stopping.best["step"].tolist()):
        for name, w in stopping.best_weights.items():
            assert torch.equal(w[i], saver.saved[step][name][i])


def test_a_mask_change_keeps_the_optimizer_state_of_surviving_weights():
    """Re-setting the same masks mid-run changes nothing; a grown weight starts from zero state at zero."""
    arch = build_architecture("mlp", (20,), 4, [16, 12])
    theta0, masks = stack(arch, density=0.5)
    plain = train(arch, theta0, masks, toy(), CFG, BATCHES)
    same = MaskUpdate(lambda state: {k: m.clone() for k, m in state.masks.items()}, at=(6,))
    remasked = train(arch, theta0, masks, toy(), CFG, BATCHES, callbacks=[same])
    for name in plain.params:
        assert torch.equal(plain.params[name], remasked.params[name]), name
    fresh = train(arch, theta0, masks, toy(), CFG, BATCHES, callbacks=[_Restart(at=(6,))])
    assert not torch.equal(fresh.params["fc1.weight"], plain.params["fc1.weight"])  # Adam restarted: other path

    def grow_one(state):
        mask = state.masks["fc1.weight"].clone()
        pos = (~mask[0]).reshape(-1).nonzero()[0, 0]
        mask[0].view(-1)[pos] = True
        grow_one.pos = pos
        return {"fc1.weight": mask}

    seen = {}

    def look(state):
        opt = state._optimizer
        idx = opt.index["fc1.weight"]
        where = int((idx == grow_one.pos).nonzero()[0, 0])
        seen["exp_avg"] = float(opt.optimizer.state[opt.packed["fc1.weight"]]["exp_avg"][where])
        seen["value"] = float(state.params["fc1.weight"][0].detach().reshape(-1)[grow_one.pos])

    grown = MaskUpdate(grow_one, at=(6,))
    peek = MaskUpdate(look, at=(6,))
    state = train(arch, theta0, masks, toy(), CFG, BATCHES, callbacks=[grown, peek])
    assert seen == {"exp_avg": 0.0, "value": 0.0}
    kept = kept_counts(arch, state.masks)["fc1.weight"]
    assert int(kept[0]) == int(masks["fc1.weight"][0].sum()) + 1


class _Restart(MaskUpdate):
    """A mask update to the same masks that restarts the optimizer."""

    def __init__(self, at):
        super().__init__(lambda state: None, at=at)

    def __call__(self, state):
        state.set_masks({k: m.clone() for k, m in state.masks.items()}, keep_state=False)


def test_the_score_gradient_flows_through_the_absolute_value():
    """dL/ds = sign(s) * theta0 * dL/dw at the top-k subnetwork (hidden-networks' GetSubnet on |scores|)."""
    from evoticket.training import AutogradGradient, ScoreGradient

    arch = build_architecture("mlp", (20,), 4, [16])
    theta0, masks = stack(arch, p=2, density=0.5)
    g = torch.Generator().manual_seed(3)
    scores = {k: torch.randn(m.shape, generator=g) for k, m in masks.items()}
    kept = kept_counts(arch, masks)
    splits = toy()
    x, y = splits.x_train[:20], splits.y_train[:20]
    by_score = ScoreGradient(arch, theta0, scores, kept)
    by_score(x, y)
    hard = topk_masks(scores, kept)
    params = {k: theta0[k] * hard[k] if k in hard else theta0[k] for k in theta0}
    by_weight = AutogradGradient(arch, params)
    by_weight(x, y)
    for name, s in scores.items():
        expected = torch.sign(s) * theta0[name] * by_weight.grads[name]
        torch.testing.assert_close(by_score.grads[name], expected)


def test_early_stopping_from_a_step_and_the_masks_of_its_step():
    arch = build_architecture("mlp", (20,), 4, [16, 12])
    theta0, masks = stack(arch, density=0.5)
    stopping = EarlyStopping(2, "val_acc", keep_weights=True, start=8)

    def prune(state):
        return {
            k: topk_masks({k: state.params[k].detach()}, {k: m.flatten(1).sum(1) - 5})[k]
            for k, m in state.masks.items()
        }

    train(arch, theta0, masks, toy(), CFG, BATCHES, callbacks=[stopping, MaskUpdate(prune, at=(4,))])
    assert all(s >= 8 for s in stopping.best["step"].tolist())
    assert stopping.first is not None
    for name, mask in stopping.best_masks.items():
        assert torch.equal(mask.flatten(1).sum(1), masks[name].flatten(1).sum(1) - 5)
