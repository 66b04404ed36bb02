"""Iterative magnitude pruning: its arithmetic, rewinding, and a whole run through the campaign."""

from __future__ import annotations

import io
import itertools
import json

import pytest
import torch

from evoticket.campaign import run_campaign
from evoticket.config import CampaignConfig
from evoticket.core import paths
from evoticket.core.errors import ConfigError
from evoticket.methods import METHODS, resolve_run
from evoticket.methods.imp import expected_rounds, layer_rates, prune_magnitude
from evoticket.models import build_architecture
from evoticket.records import read_generations, read_individuals

TINY = [
    "method=imp",
    "model.hidden=[24]",
    "imp.steps=30",
    "imp.eval_every=10",
    "ticket.density=0.4",
    "optimizer.batch_size=50",
    "campaign.final_steps=20",
    "campaign.final_eval_every=10",
    "campaign.final_seeds=2",
    "campaign.device=cpu",
    "campaign.progress=false",
    "campaign.plots=fitness",
]


def test_layer_pruning_removes_the_smallest_kept_weights_at_each_layers_rate():
    g = torch.Generator().manual_seed(0)
    weights = {"fc1.weight": torch.randn(20, 10, generator=g), "fc2.weight": torch.randn(4, 20, generator=g)}
    masks = {k: torch.rand(v.shape, generator=g) < 0.7 for k, v in weights.items()}
    rates = {"fc1.weight": 0.2, "fc2.weight": 0.1}
    new = prune_magnitude(weights, masks, rates)
    for name, mask in masks.items():
        kept = int(mask.sum())
        assert int(new[name].sum()) == kept - round(rates[name] * kept)
        assert bool((new[name] <= mask).all())  # only kept weights are pruned
        pruned = mask & ~new[name]
        assert weights[name][pruned].abs().max() <= weights[name][new[name]].abs().min()
    assert layer_rates(build_architecture("mlp", (10,), 4, [20]), 0.2, 0.1) == rates


def test_global_pruning_uses_one_threshold_and_never_empties_a_layer():
    g = torch.Generator().manual_seed(1)
    weights = {"a": torch.randn(50, generator=g) * 10, "b": torch.randn(30, generator=g) * 0.01}
    masks = {k: torch.ones_like(v, dtype=torch.bool) for k, v in weights.items()}
    new = prune_magnitude(weights, masks, {"a": 0.5, "b": 0.5}, scope="global")
    assert int(new["b"].sum()) == 1  # the tiny layer loses all but one weight, never the last
    assert int(new["a"].sum()) + int(new["b"].sum()) == 80 - 40 + 1  # one pruning spared to keep b alive
    kept = torch.cat([weights[k][new[k]].abs() for k in weights])
    dropped = torch.cat([weights[k][masks[k] & ~new[k]].abs() for k in weights])
    assert int(new["a"].sum()) == 50 - 10  # the 40 smallest: all 30 of b (one spared) and 10 of a
    assert dropped.max() <= kept[kept > 0.5].min()
    with pytest.raises(ValueError, match="one rate"):
        prune_magnitude(weights, masks, {"a": 0.5, "b": 0.1}, scope="global")


def test_expected_rounds_of_the_lth_network():
    arch = build_architecture("mlp", (40,), 10, [300, 100])
    rates = layer_rates(arch, 0.2, 0.1)
    assert expected_rounds(arch, 0.12, rates, 40) == 10  # 10.7% of the hidden weights, 34.9% of the output layer's
    assert expected_rounds(arch, 0.1, rates, 40) == 11
    assert expected_rounds(arch, 1.0, rates, 40) == 0


def test_a_tiny_run_records_every_round_with_its_control_and_rewinds_to_theta0(tmp_path):
    config = CampaignConfig().with_overrides(TINY)
    out = io.StringIO()
    result = run_campaign(config, name="imp", runs_dir=tmp_path / "runs", plots_dir=tmp_path / "plots", out=out)
    run_dir = tmp_path / "runs" / "imp"
    rows = read_individuals(run_dir)
    gens = read_generations(run_dir)
    arch = build_architecture("mlp", (40,), 10, [24])
    rounds = expected_rounds(arch, 0.4, layer_rates(arch, 0.2, 0.1), 40)
    assert [r["generation"] for r in rows] == [g["generation"] for g in gens] == list(range(rounds + 1))
    assert [r["parents"] for r in rows] == [[]] + [[i] for i in range(rounds)]
    densities = [r["density"] for r in rows]
    for before, after in itertools.pairwise(densities):
        assert after["fc1.weight"] == pytest.approx(before["fc1.weight"] * 0.8, abs=1 / 960)
        assert after["fc2.weight"] == pytest.approx(before["fc2.weight"] * 0.9, abs=1 / 240)
    assert rows[-1]["density_total"] <= 0.4 < rows[-2]["density_total"]
    assert rows[0]["controls"] == {} and all("random" in r["controls"] for r in rows[1:])
    assert all(r["train_steps"] == 30 for r in rows)
    summary = result.summary
    assert summary["method"] == "imp" and summary["imp"]["rounds"] == rounds + 1
    assert summary["compute"]["search"]["train_steps"] == 30 * (rounds + 1)
    assert summary["controls"]["ticket"]["density"] == pytest.approx(rows[-1]["density_total"])
    # rewinding to theta0: the reported ticket's weights are round 0's start, its mask the last round's
    ticket = result.best
    assert ticket.uid == rounds
    state = torch.load(paths.best_ticket(run_dir), weights_only=True)["ticket"]
    assert all(torch.equal(state["theta0"][k], ticket.theta0[k]) for k in ticket.theta0)
    from evoticket.methods.imp import IMPRun

    fresh = IMPRun(resolve_run(config)[1])
    assert all(torch.equal(fresh.rewind[k], ticket.theta0[k]) for k in fresh.rewind)
    assert "ticket " in out.getvalue()


def test_late_rewinding_resets_survivors_to_the_weights_at_step_k(tmp_path):

    config = CampaignConfig().with_overrides([*TINY, "imp.rewind_step=10", "ticket.density=0.7"])
    method, resolved = resolve_run(config)
    run = method.prepare(resolved)
    theta0 = {k: v.clone() for k, v in run.rewind.items()}
    result = run.run((), None, None)
    assert not torch.equal(result.best.theta0["fc1.weight"], theta0["fc1.weight"])
    # the rewind point is what 10 steps of round 0's training give
    from evoticket.core.seeds import derive_seed
    from evoticket.genome import stack_tickets
    from evoticket.training import finetune_stacked, minibatch_indices

    ticket0 = METHODS["imp"].prepare(resolved)
    th, masks = stack_tickets([ticket0.cls(ticket0.rewind, ticket0.next_masks, "kaiming_normal", ticket0.init_std)])
    batches = minibatch_indices(3600, 30, 50, derive_seed(0, "imp", 0))
    ten = finetune_stacked(
        resolved.arch, th, masks, resolved.splits, config.optimizer, batches[:10], return_weights=True
    )
    for k, v in result.best.theta0.items():
        assert torch.equal(v, ten.weights[k][0])


def test_imp_settings_belong_to_imp_and_ga_settings_to_the_ga():
    with pytest.raises(ConfigError, match=r"^imp.rate: a setting of method 'imp', but method = 'ga'"):
        resolve_run(CampaignConfig().with_overrides(["imp.rate=0.3"]))
    with pytest.raises(
        ConfigError, match=r"^ga.population: a setting of methods ga, supermask_ga, random_search, but method = 'imp'"
    ):
        resolve_run(CampaignConfig().with_overrides(["method=imp", "ga.population=12"]))
    with pytest.raises(
        ConfigError,
        match=r"^method: unknown method 'ipm' \(did you mean 'imp'\?\); valid: bn_only, dense, edge_popup, ga, gmp, imp, output_only, random, random_search, rigl, rigl_tuned, supermask_ga$",
    ):
        resolve_run(CampaignConfig().with_overrides(["method=ipm"]))
    with pytest.raises(ConfigError, match=r"^imp.rewind_step: must be <= imp.steps \(1500\), got 2000"):
        CampaignConfig().with_overrides(["method=imp", "imp.rewind_step=2000"])


@pytest.mark.slow
def test_a_killed_imp_run_resumes_to_the_same_files(tmp_path, cli):
    straight, killed = tmp_path / "a", tmp_path / "b"
    straight.mkdir(), killed.mkdir()
    assert cli(straight, TINY, "run", "--name", "r").returncode == 0
    assert cli(killed, TINY, "run", "--name", "r", kill_at="records:3").returncode == -9
    done = cli(killed, TINY, "run", "--name", "r", "--resume")
    assert done.returncode == 0, done.stderr
    assert "resuming runs/r after round 1" in done.stderr
    for name in ("individuals.jsonl", "best_ticket.pt", "config.toml"):
        assert (straight / "runs" / "r" / name).read_bytes() == (killed / "runs" / "r" / name).read_bytes(), name
    a, b = (json.loads((root / "runs" / "r" / "summary.json").read_text()) for root in (straight, killed))
    for s in (a, b):
        del s["timing"]
    assert a == b
