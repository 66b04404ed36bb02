"""Dynamic sparse fine-tuning and hyperparameter genes in the batched engine."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from evoticket.config import CampaignConfig, OptimizerConfig
from evoticket.core.errors import ConfigError
from evoticket.evolution import make_toolbox
from evoticket.evolution.population import apply_results
from evoticket.genome import UidCounter, stack_tickets
from evoticket.models import build_architecture
from evoticket.operators import draw_genes, mutGenesPerturb
from evoticket.training import finetune_stacked, finetune_tickets, minibatch_indices
from evoticket.training.dynamic import DynamicSparse
from tests.training.test_loop import tickets_for, toy_splits


def arch_and_splits():
    splits = toy_splits()
    return build_architecture("mlp", (20,), 4, [16, 12]), splits


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_per_network_learning_rates_equal_each_network_trained_alone(optimizer):
    """Two networks at learning rates 0.03 and 0.004 in one batch follow the trajectories they follow alone."""
    arch, splits = arch_and_splits()
    cfg = OptimizerConfig(optimizer=optimizer, lr=0.01, momentum=0.9, weight_decay=1e-4, batch_size=16)
    tickets = tickets_for(arch, 2)
    batches = minibatch_indices(splits.x_train.shape[0], 15, 16, 0, "cpu")
    theta0, masks = stack_tickets(tickets)
    together = finetune_stacked(
        arch, theta0, masks, splits, cfg, batches, return_weights=True, lr=torch.tensor([0.03, 0.004])
    )
    for i, lr in enumerate((0.03, 0.004)):
        t0, m = stack_tickets([tickets[i]])
        alone = finetune_stacked(arch, t0, m, splits, dataclasses.replace(cfg, lr=lr), batches, return_weights=True)
        for name, w in alone.weights.items():
            torch.testing.assert_close(together.weights[name][i], w[0], rtol=1e-5, atol=1e-6)
        assert together.val_acc[i] == pytest.approx(float(alone.val_acc[0]), abs=1e-6)


def test_dynamic_fine_tuning_changes_masks_keeps_each_layers_count_and_meters_the_dense_gradient():
    arch, splits = arch_and_splits()
    cfg = OptimizerConfig(lr=0.01, batch_size=16)
    tickets = tickets_for(arch, 3, density=0.3)
    batches = minibatch_indices(splits.x_train.shape[0], 20, 16, 0, "cpu")
    theta0, masks = stack_tickets(tickets)
    alphas = torch.tensor([0.3, 0.0, 0.1])
    res = finetune_stacked(
        arch,
        theta0,
        masks,
        splits,
        cfg,
        batches,
        return_weights=True,
        dynamic=DynamicSparse("gradient", 5, 0.2),
        alpha=alphas,
    )
    static = finetune_stacked(arch, theta0, masks, splits, cfg, batches, return_weights=True)
    assert static.masks is None
    for name, mask in masks.items():
        new = res.masks[name]
        assert torch.equal(new.sum(dim=tuple(range(1, new.dim()))), mask.sum(dim=tuple(range(1, mask.dim()))))
        assert not torch.equal(new[0], mask[0])  # alpha 0.3: changed
        assert torch.equal(new[1], mask[1])  # alpha 0: kept
        assert (res.weights[name][~new] == 0).all()  # pruned weights are zero
    # three updates (steps 5, 10, 15) each cost a dense-gradient minibatch: more training FLOPs than static
    assert (res.meter.train_flops > static.meter.train_flops).all()
    assert res.meter.train_steps.tolist() == static.meter.train_steps.tolist() == [20, 20, 20]


def test_set_growth_of_a_block_is_the_same_wherever_the_block_runs():
    """SET's random growth is seeded per block, so a batch cut into blocks (as the Ray backend cuts it) computes, block
    by block, what it computes whole; the same call gives the same masks."""
    arch, splits = arch_and_splits()
    cfg = OptimizerConfig(lr=0.01, batch_size=16)
    tickets = tickets_for(arch, 4, density=0.3)
    dyn = DynamicSparse("random", 4, 0.2)
    whole = finetune_tickets(tickets, arch, splits, cfg, 7, steps=12, block=2, dynamic=dyn)
    again = finetune_tickets(tickets, arch, splits, cfg, 7, steps=12, block=2, dynamic=dyn)
    first = finetune_tickets(tickets[:2], arch, splits, cfg, 7, steps=12, block=2, dynamic=dyn)
    second = finetune_tickets(tickets[2:], arch, splits, cfg, 7, steps=12, block=2, dynamic=dyn)
    for name, masks in whole.masks.items():
        assert torch.equal(masks, again.masks[name])
        assert torch.equal(masks, torch.cat([first.masks[name], second.masks[name]]))
        assert not torch.equal(masks, torch.stack([t.masks[name] for t in tickets]))


def test_lamarckian_write_back_inherits_the_mask_reached():
    arch, splits = arch_and_splits()
    cfg = OptimizerConfig(lr=0.01, batch_size=16)
    tickets = tickets_for(arch, 2, density=0.3)
    before = {k: m.clone() for k, m in tickets[0].masks.items()}
    res = finetune_tickets(
        tickets, arch, splits, cfg, 3, steps=12, return_weights=True, dynamic=DynamicSparse("gradient", 4, 0.3)
    )
    apply_results(tickets, res.tickets(), UidCounter(), 0, lamarckian=True)
    for name, mask in tickets[0].masks.items():
        assert torch.equal(mask, res.masks[name][0])
        assert not torch.equal(mask, before[name])
        assert torch.equal(tickets[0].effective_weights()[name], res.weights[name][0])


def test_genes_are_drawn_in_their_ranges_and_perturbed_by_the_factor():
    g = torch.Generator().manual_seed(0)
    drawn = [draw_genes(["lr", "alpha"], g, lr_range=(1e-3, 1e-1), alpha_range=(0.05, 0.2)) for _ in range(200)]
    lrs = torch.tensor([d["lr"] for d in drawn])
    assert 1e-3 <= lrs.min() and lrs.max() <= 1e-1
    assert (lrs < 1e-2).float().mean() == pytest.approx(0.5, abs=0.12)  # log-uniform: half below the middle
    assert all(0.05 <= d["alpha"] <= 0.2 for d in drawn)
    ticket = tickets_for(build_architecture("mlp", (20,), 4, [8]), 1)[0]
    ticket.genes = {"lr": 0.01, "alpha": 0.9}
    masks = {k: m.clone() for k, m in ticket.masks.items()}
    for _ in range(5):
        (ticket,) = mutGenesPerturb(ticket, factor=1.25, rng=g)
        steps = torch.log(torch.tensor(ticket.genes["lr"] / 0.01)) / torch.log(torch.tensor(1.25))
        assert float(steps) == pytest.approx(round(float(steps)), abs=1e-4)  # a walk of factor-1.25 steps
    assert ticket.genes["alpha"] <= 0.95  # clipped into its bounds
    assert all(torch.equal(ticket.masks[k], masks[k]) for k in masks)
    with pytest.raises(ValueError, match="factor"):
        mutGenesPerturb(ticket, factor=1.0, rng=g)


def test_toolbox_individuals_carry_genes_and_offspring_inherit_them():
    config = CampaignConfig().with_overrides(
        [
            "model.hidden=[8]",
            "finetune.dynamic=rigl",
            "finetune.genes=['lr', 'alpha']",
            "ga.mutations=['mutGenesPerturb']",
        ]
    )
    toolbox = make_toolbox(config)
    pop = toolbox.population(n=3)
    assert all(set(ind.genes) == {"lr", "alpha"} for ind in pop)
    assert len({ind.genes["lr"] for ind in pop}) == 3
    child = toolbox.clone(pop[0])
    assert child.genes == pop[0].genes and child.genes is not pop[0].genes
    (child,) = toolbox.mutate(child)
    assert child.genes != pop[0].genes


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["finetune.dynamic=rigl", "finetune.delta_t=40", "finetune.steps=34"], "finetune.delta_t"),
        (["finetune.dynamic=set", "finetune.inherit_step=10"], "finetune.inherit_step"),
        (["finetune.genes=['alpha']"], "finetune.genes"),
        (["finetune.genes=['momentum']"], "finetune.genes"),
        (["finetune.lr_range=[0.1, 0.01]"], "finetune.lr_range"),
    ],
)
def test_bad_dynamic_or_gene_settings_are_one_line_errors(overrides, key):
    with pytest.raises(ConfigError, match=key) as err:
        make_toolbox(CampaignConfig().with_overrides(["model.hidden=[8]", *overrides]))
    assert "\n" not in str(err.value)


def test_the_final_training_runs_each_ticket_at_its_lr_gene():
    """A ticket carrying an lr gene is trained in the final comparison at that learning rate, each ticket at its own."""
    from evoticket.campaign.controls import train_as_final

    arch, splits = arch_and_splits()
    config = CampaignConfig().with_overrides(["campaign.final_steps=12", "campaign.final_eval_every=4"])
    a, b = tickets_for(arch, 2)
    a.genes, b.genes = {"lr": 0.05}, {"lr": 0.001}
    both = train_as_final([a, b], arch, splits, config, keep_weights=True)
    for i, (ticket, lr) in enumerate(((a, 0.05), (b, 0.001))):
        plain = type(ticket)(ticket.theta0, ticket.masks, ticket.init_scheme, ticket.init_std)
        alone = train_as_final([plain], arch, splits, config.with_overrides([f"optimizer.lr={lr}"]), keep_weights=True)
        for name, w in alone.weights.items():
            torch.testing.assert_close(both.weights[name][i], w[0], rtol=1e-5, atol=1e-6)
