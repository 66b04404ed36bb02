"""The optimizer state a network carries from one training to the next (``finetune.optimizer_state = "inherit"``)."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from evoticket.config import CampaignConfig, OptimizerConfig
from evoticket.core.errors import ConfigError
from evoticket.evolution import make_toolbox
from evoticket.evolution.population import apply_results
from evoticket.genome import UidCounter, stack_tickets
from evoticket.training import OptimizerState, finetune_stacked, finetune_tickets, minibatch_indices
from tests.training.test_dynamic import arch_and_splits
from tests.training.test_loop import tickets_for


def _cfg(optimizer: str) -> OptimizerConfig:
    return OptimizerConfig(optimizer=optimizer, lr=0.01, momentum=0.9, weight_decay=1e-4, batch_size=16)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_training_in_two_parts_with_the_state_carried_equals_one_training(optimizer):
    """12 steps, then 18 more continuing the optimizer state, end where 30 steps in one go end; restarting the
    optimizer instead ends elsewhere."""
    arch, splits = arch_and_splits()
    cfg = _cfg(optimizer)
    tickets = tickets_for(arch, 2, density=0.3)
    batches = minibatch_indices(splits.x_train.shape[0], 30, 16, 0, "cpu")
    theta0, masks = stack_tickets(tickets)
    lr = torch.tensor([0.02, 0.005])
    whole = finetune_stacked(arch, theta0, masks, splits, cfg, batches, return_weights=True, lr=lr)
    first = finetune_stacked(
        arch, theta0, masks, splits, cfg, batches[:12], return_weights=True, lr=lr, return_optimizer_state=True
    )
    assert first.optimizer_state.steps.tolist() == [12, 12]
    keys = {"adam": {"exp_avg", "exp_avg_sq"}, "sgd": {"momentum_buffer"}}[optimizer]
    assert set(first.optimizer_state.tensors) == keys
    for name, mask in masks.items():  # dense, zero where pruned
        for per in first.optimizer_state.tensors.values():
            assert per[name].shape == mask.shape
            assert not per[name][~mask].any()
    second = finetune_stacked(
        arch,
        first.weights,
        masks,
        splits,
        cfg,
        batches[12:],
        return_weights=True,
        lr=lr,
        optimizer_state=first.optimizer_state,
        return_optimizer_state=True,
    )
    restarted = finetune_stacked(arch, first.weights, masks, splits, cfg, batches[12:], return_weights=True, lr=lr)
    assert second.optimizer_state.steps.tolist() == [30, 30]
    for name, w in whole.weights.items():
        torch.testing.assert_close(second.weights[name], w, rtol=1e-5, atol=1e-6)
    assert max(float((restarted.weights[n] - w).abs().max()) for n, w in whole.weights.items()) > 1e-3


def test_adam_networks_with_different_step_counts_in_one_batch_follow_their_own_trajectories():
    """A network continuing 12 steps of Adam and a fresh one, trained together, each end where it ends trained alone
    (the per-network bias correction); both match a plain torch.optim.Adam run."""
    arch, splits = arch_and_splits()
    cfg = _cfg("adam")
    tickets = tickets_for(arch, 2, density=0.3)
    batches = minibatch_indices(splits.x_train.shape[0], 20, 16, 1, "cpu")
    t0, m0 = stack_tickets(tickets[:1])
    warm = finetune_stacked(arch, t0, m0, splits, cfg, batches[:12], return_weights=True, return_optimizer_state=True)
    tickets[0].theta0 = {k: v[0].clone() for k, v in warm.weights.items()}
    tickets[0].optimizer_state = warm.optimizer_state.network(0)
    assert tickets[0].optimizer_state["step"] == 12
    together = finetune_tickets(tickets, arch, splits, cfg, 5, steps=10, return_weights=True, optimizer_state=True)
    assert together.optimizer_state.steps.tolist() == [22, 10]
    for i in range(2):
        alone = finetune_tickets(
            tickets[i : i + 1], arch, splits, cfg, 5, steps=10, return_weights=True, optimizer_state=True
        )
        for name, w in alone.weights.items():
            torch.testing.assert_close(together.weights[name][i], w[0], rtol=1e-5, atol=1e-6)
        for key, per in alone.optimizer_state.tensors.items():
            for name, value in per.items():
                torch.testing.assert_close(together.optimizer_state.tensors[key][name][i], value[0])


def test_no_carried_state_trains_exactly_as_a_fresh_optimizer():
    arch, splits = arch_and_splits()
    cfg = _cfg("adam")
    tickets = tickets_for(arch, 3, density=0.3)
    plain = finetune_tickets(tickets, arch, splits, cfg, 2, steps=8, return_weights=True)
    carried = finetune_tickets(tickets, arch, splits, cfg, 2, steps=8, return_weights=True, optimizer_state=True)
    assert plain.optimizer_state is None
    for name, w in plain.weights.items():
        assert torch.equal(carried.weights[name], w)
    assert OptimizerState.stack([None, {"step": 0}], tickets[0].theta0) is None


def test_lamarckian_write_back_carries_the_state_and_the_ticket_keeps_it_through_copies_and_pickles():
    arch, splits = arch_and_splits()
    cfg = _cfg("adam")
    tickets = tickets_for(arch, 2, density=0.3)
    res = finetune_tickets(tickets, arch, splits, cfg, 3, steps=6, return_weights=True, optimizer_state=True)
    apply_results(tickets, res.tickets(), UidCounter(), 0, lamarckian=True)
    state = tickets[1].optimizer_state
    assert state["step"] == 6
    torch.testing.assert_close(state["exp_avg"]["fc1.weight"], res.optimizer_state.tensors["exp_avg"]["fc1.weight"][1])
    deep = copy.deepcopy(tickets[1])
    assert deep.optimizer_state["exp_avg"]["fc1.weight"] is not state["exp_avg"]["fc1.weight"]
    assert torch.equal(deep.optimizer_state["exp_avg"]["fc1.weight"], state["exp_avg"]["fc1.weight"])
    back = pickle.loads(pickle.dumps(tickets[1]))
    assert back.optimizer_state["step"] == 6
    assert torch.equal(back.optimizer_state["exp_avg_sq"]["fc2.weight"], state["exp_avg_sq"]["fc2.weight"])
    more = finetune_tickets(tickets, arch, splits, cfg, 4, steps=5, return_weights=True, optimizer_state=True)
    assert more.optimizer_state.steps.tolist() == [11, 11]


def test_a_lamarckian_run_inheriting_the_state_counts_each_lineages_steps(fast_config):
    """In a run with ``finetune.optimizer_state = "inherit"``, every individual of generation g has taken
    (g + 1) fine-tunings' steps (each parent re-evaluated, each offspring continuing its parent)."""
    from evoticket.evolution import evolve

    config = fast_config.with_overrides(
        ["finetune.steps=5", "finetune.mode=lamarckian", "finetune.optimizer_state=inherit", "ga.halving_rungs=1"]
    )
    toolbox = make_toolbox(config)
    population, _, _ = evolve(toolbox, config)
    generations = config.ga.generations
    assert generations >= 1 and config.ga.reevaluate
    assert all(ind.optimizer_state["step"] == 5 * (generations + 1) for ind in population)


@pytest.mark.parametrize(
    "overrides",
    [["finetune.mode=baldwinian"], ["finetune.mode=lamarckian", "finetune.inherit_step=5"]],
)
def test_inheriting_the_state_needs_the_final_weights_of_lamarckian_mode(overrides):
    with pytest.raises(ConfigError, match=r"finetune\.") as err:
        make_toolbox(
            CampaignConfig().with_overrides(["model.hidden=[8]", "finetune.optimizer_state=inherit", *overrides])
        )
    assert "\n" not in str(err.value)
    assert "optimizer_state" in str(err.value)


def test_optimizer_state_stack_fills_fresh_networks_with_zeros_and_keeps_step_counts():
    arch, _ = arch_and_splits()
    tickets = tickets_for(arch, 2, density=0.3)
    theta0, _ = stack_tickets(tickets)
    one = {"step": 4, "exp_avg": {n: torch.ones_like(t) for n, t in tickets[0].theta0.items()}}
    stacked = OptimizerState.stack([one, None], theta0)
    assert stacked.steps.tolist() == [4, 0]
    assert set(stacked.tensors) == {"exp_avg"}
    for t in stacked.tensors["exp_avg"].values():
        assert t[0].eq(1).all() and not t[1].any()
    assert stacked.network(1)["step"] == 0
