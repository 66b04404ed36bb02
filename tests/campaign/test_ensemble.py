"""The best few tickets as one ensemble (campaign.ensemble): its accuracy, its FLOPs, its outputs and its checks."""

from __future__ import annotations

import io

import pytest
import torch

from evoticket.campaign import compare_controls, run_campaign
from evoticket.campaign.controls import train_as_final
from evoticket.campaign.ensemble import ensemble_members, train_ensemble
from evoticket.config import CampaignConfig
from evoticket.core.errors import ConfigError
from evoticket.evolution import make_toolbox
from evoticket.training import forward_flops


def run(config, tmp_path, name="ens"):
    out = io.StringIO()
    result = run_campaign(config, name=name, runs_dir=tmp_path / "runs", plots_dir=tmp_path / "plots", out=out)
    return result.summary, out.getvalue()


@pytest.fixture(scope="module")
def trained():
    """Three tickets of a tiny MLP, the first one's final comparison, and the ensemble of all three."""
    config = CampaignConfig().with_overrides(
        [
            "model.hidden=[16]",
            "optimizer.batch_size=50",
            "campaign.final_steps=20",
            "campaign.final_eval_every=10",
            "campaign.final_seeds=2",
            "campaign.device=cpu",
            "campaign.ensemble=3",
        ]
    )
    toolbox = make_toolbox(config)
    tickets = toolbox.population(3)
    for uid, t in enumerate(tickets):
        t.uid = uid
    arch, splits = toolbox.arch, toolbox.splits
    final = compare_controls(tickets[0], arch, splits, config)
    return config, tickets, arch, splits, final, train_ensemble(tickets[0], tickets, final, arch, splits, config)


def test_ensemble_accuracy_is_the_argmax_of_the_members_mean_softmax(trained):
    config, tickets, arch, splits, final, ensemble = trained
    report = ensemble.report
    assert report["members"] == [0, 1, 2] and report["size"] == report["requested"] == 3
    for s in range(config.campaign.final_seeds):
        others = train_as_final(tickets[1:], arch, splits, config, order=s, keep_weights=True)
        nets = [final.trained[s]["ticket"]["weights"]] + [
            {k: v[i] for k, v in others.weights.items()} for i in range(len(tickets) - 1)
        ]
        for split, x, y in (("test_acc", splits.x_test, splits.y_test), ("val_acc", splits.x_val, splits.y_val)):
            probs = []
            for w in nets:  # each member alone: its logits, its softmax
                logits = arch.forward_batched({k: v.unsqueeze(0) for k, v in w.items()}, x)[0]  # (N, C)
                probs.append(torch.softmax(logits, dim=-1))
            by_hand = int((torch.stack(probs).mean(0).argmax(-1) == y).sum()) / y.shape[0]
            assert report[split][s] == by_hand
    assert report["test_acc_mean"] == pytest.approx(sum(report["test_acc"]) / len(report["test_acc"]))
    assert report["ticket_test_acc_mean"] == final.controls["ticket"]["test_acc_mean"]


def test_inference_flops_are_the_members_forward_flops_summed(trained):
    _, tickets, arch, _, _, ensemble = trained
    each = [int(forward_flops(arch, {k: int(m.sum()) for k, m in t.masks.items()})) for t in tickets]
    assert ensemble.report["flops"] == each
    assert ensemble.report["inference_flops"] == sum(each)
    assert ensemble.report["ticket_inference_flops"] == each[0]


def test_the_extra_training_is_the_other_members_metered(trained):
    config, tickets, arch, splits, _, ensemble = trained
    metered = sum(
        int(train_as_final(tickets[1:], arch, splits, config, order=s).meter.train_flops.sum())
        for s in range(config.campaign.final_seeds)
    )
    assert ensemble.spent["train_flops"] == ensemble.report["extra_train_flops"] == metered > 0
    assert ensemble.spent["train_steps"] == 2 * config.campaign.final_steps * config.campaign.final_seeds


def test_members_are_the_ticket_then_the_others_once_each(trained):
    _, tickets, *_ = trained
    a, b, c = tickets
    assert ensemble_members(b, [a, b, c], 2) == [b, a]
    assert ensemble_members(a, [a, b, c], 5) == [a, b, c]  # fewer than asked: what there is
    assert ensemble_members(a, [], 3) == [a]


def test_an_ensemble_of_one_is_the_ticket_and_the_summary_shows_it(fast_config, tmp_path):
    summary, printed = run(fast_config.with_overrides(["campaign.ensemble=1"]), tmp_path)
    ensemble, ticket = summary["ensemble"], summary["controls"]["ticket"]
    assert ensemble["members"] == [summary["best"]["uid"]] and ensemble["size"] == 1
    assert ensemble["test_acc"] == pytest.approx(ticket["test_acc"], abs=1e-6)
    assert ensemble["val_acc"] == pytest.approx(ticket["val_acc"], abs=1e-6)
    assert ensemble["extra_train_flops"] == summary["compute"]["ensemble"]["train_flops"] == 0
    assert ensemble["inference_flops"] == ensemble["ticket_inference_flops"]
    assert "ensemble of 1 " in printed and "of the ticket alone (uids " in printed
    assert "; ensemble " in printed.split("Compute: ")[1]


def test_an_ensemble_larger_than_the_run_kept_is_what_there_is_and_says_so(fast_config, tmp_path):
    # generation 0 only: 2 individuals in the hall of fame, 3 asked
    overrides = ["ga.population=2", "ga.offspring=2", "ga.generations=0", "campaign.ensemble=3"]
    summary, printed = run(fast_config.with_overrides([*overrides, "budget.train_flops=100000000"]), tmp_path)
    ensemble, compute, budget = summary["ensemble"], summary["compute"], summary["budget"]
    assert ensemble["requested"] == 3 and ensemble["size"] == 2 == len(ensemble["members"])
    assert "(asked 3: the method kept 2 tickets)" in printed
    assert "the ticket and the next best ticket the method kept" in printed
    # its extra compute: apart, in the total, beside the budget and never in what was spent against it
    assert compute["total"] == {
        k: compute["search"][k] + compute["final_comparison"][k] + compute["ensemble"][k] for k in compute["total"]
    }
    assert budget["ensemble_train_flops"] == compute["ensemble"]["train_flops"] // 2 > 0  # one of 2 seeds
    assert budget["spent_train_flops"] == budget["search_train_flops"] + budget["final_training_train_flops"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["campaign.ensemble=-1"], "campaign.ensemble: must be >= 0, got -1"),
        (
            ["campaign.ensemble=6"],
            "campaign.ensemble: must be <= 5, the tickets method 'ga' keeps (ga.hall_of_fame), got 6",
        ),
        (
            ["ga.hall_of_fame=2", "campaign.ensemble=3"],
            "campaign.ensemble: must be <= 2, the tickets method 'ga' keeps (ga.hall_of_fame), got 3",
        ),
        (
            ["method=dense", "campaign.ensemble=2"],
            "campaign.ensemble: must be <= 1, the tickets method 'dense' keeps (its one ticket), got 2",
        ),
        (
            ["method=imp", "campaign.ensemble=6"],
            "campaign.ensemble: must be <= 5, the tickets method 'imp' keeps (its hall of fame of the best rounds), got 6",
        ),
    ],
)
def test_a_bad_ensemble_is_one_line_naming_the_key_and_nothing_is_written(fast_config, tmp_path, overrides, message):
    base = fast_config if not overrides[0].startswith("method=") else CampaignConfig()  # no GA settings
    with pytest.raises(ConfigError) as raised:
        run(base.with_overrides([*overrides, "campaign.device=cpu"]), tmp_path)
    assert str(raised.value) == message
    assert not (tmp_path / "runs" / "ens").exists()
