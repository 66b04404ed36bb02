"""The hybrid's levers: learned traits, mutMagnitudeSwap, mutLayerDensity, Lamarckian rewinding, successive
halving, the fitness cache and fixed minibatches; each checked for what it must do, and a campaign using them all
resumed after an interruption to the same records."""

from __future__ import annotations

import math
import os
import signal

import pytest
import torch

import evoticket
from evoticket.campaign import resume_campaign, run_campaign
from evoticket.core import faults, paths
from evoticket.core.errors import ConfigError, Interrupted
from evoticket.evolution import make_toolbox
from evoticket.evolution.cache import content_key, settings_text
from evoticket.evolution.evaluator import Evaluator
from evoticket.genome import Ticket, compact_learned, known_magnitudes, learned_nbytes, merge_learned
from evoticket.methods import resolve_run
from evoticket.methods.ga import ga_costs, halving_steps
from evoticket.operators import cxMaskUniform, initTicket, mutLayerDensity, mutMagnitudeSwap
from evoticket.records import read_individuals
from evoticket.resolve import resolve
from evoticket.training import finetune_tickets

SMALL = [
    "model.hidden=[16]",
    "ga.population=6",
    "ga.offspring=6",
    "ga.generations=3",
    "finetune.steps=6",
    "finetune.mode=baldwinian",
    "ga.halving_rungs=1",
    "ga.mutations=['mutMaskSwap']",
    "optimizer.batch_size=50",
    "campaign.final_steps=20",
    "campaign.final_eval_every=10",
    "campaign.final_seeds=1",
    "campaign.progress=false",
    "campaign.device=cpu",
    "campaign.plots=none",
]
ALL_LEVERS = [
    "ga.mutations=['mutMagnitudeSwap', 'mutLayerDensity']",
    "ga.operator_args.mutMagnitudeSwap.grow=gradient",
    "ticket.allocation=lth",
    "ga.halving_rungs=3",
    "ga.fitness_cache=true",
    "finetune.minibatches=fixed",
]


def config(*more: str) -> evoticket.CampaignConfig:
    return evoticket.CampaignConfig().with_overrides([*SMALL, *more])


def campaign(root, *more: str):
    return run_campaign(
        config(*more), name="r", runs_dir=root / "runs", plots_dir=root / "plots", out=open(os.devnull, "w")
    )


def ticket(density: float = 0.2, seed: int = 0, hidden: int = 16) -> Ticket:
    arch = resolve(config(f"model.hidden=[{hidden}]")).arch
    return initTicket(Ticket, arch, density, rng=torch.Generator().manual_seed(seed))


def with_traits(t: Ticket, seed: int = 1) -> Ticket:
    """Give ``t`` learned traits of random magnitudes and gradients."""
    g = torch.Generator().manual_seed(seed)
    weights = {k: torch.randn((1, *m.shape), generator=g) for k, m in t.masks.items()}
    grads = {k: torch.randn((1, *m.shape), generator=g) for k, m in t.masks.items()}
    t.learned = compact_learned(weights, {k: m.unsqueeze(0) for k, m in t.masks.items()}, grads)[0]
    return t


# ---------------------------------------------------------------------------
# learned traits


def test_learned_traits_are_the_kept_magnitudes_and_the_largest_pruned_gradients():
    g = torch.Generator().manual_seed(0)
    masks = {"w": torch.rand(2, 5, 4, generator=g) < 0.3}
    weights = {"w": torch.randn(2, 5, 4, generator=g) * masks["w"]}
    grads = {"w": torch.randn(2, 5, 4, generator=g)}
    traits = compact_learned(weights, masks, grads)
    for p in range(2):
        flat, w, gr = masks["w"][p].reshape(-1), weights["w"][p].reshape(-1), grads["w"][p].reshape(-1)
        index, value = traits[p]["magnitudes"]["w"]
        assert index.dtype == torch.int32 and value.dtype == torch.float16
        assert index.tolist() == flat.nonzero().squeeze(1).tolist()
        assert torch.allclose(value.float(), w[flat].abs(), atol=1e-3)
        gi, gv = traits[p]["gradients"]["w"]
        k, z = int(flat.sum()), int((~flat).sum())
        assert len(gi) == min(k, z) and not flat[gi.long()].any()  # only pruned positions
        expected = gr.abs().masked_fill(flat, -1).topk(min(k, z)).indices
        assert sorted(gi.tolist()) == sorted(expected.tolist())
        assert gv.float().tolist() == sorted(gv.float().tolist(), reverse=True)
    # compact: 6 bytes per kept weight, 6 per gradient candidate
    kept = int(masks["w"][0].sum())
    assert learned_nbytes(traits[0]) == 6 * kept + 6 * min(kept, 20 - kept)


def test_a_crossover_child_inherits_both_parents_traits():
    a, b = with_traits(ticket(seed=0), 1), with_traits(ticket(seed=2), 3)
    before = {
        k: (known_magnitudes(a.learned, k, m.numel()), known_magnitudes(b.learned, k, m.numel()))
        for k, m in a.masks.items()
    }
    a.uid, b.uid = 1, 2
    cxMaskUniform(a, b, rng=torch.Generator().manual_seed(0))
    for name, (ma, mb) in before.items():
        got = known_magnitudes(a.learned, name, ma.numel())
        known = ~ma.isnan() | ~mb.isnan()
        assert torch.equal(~got.isnan(), known)  # every position either parent's traits knew
        assert torch.equal(got[~ma.isnan()], ma[~ma.isnan()])  # its own parent's values first
        other = known_magnitudes(b.learned, name, ma.numel())
        assert torch.equal(other[~mb.isnan()], mb[~mb.isnan()])
    assert merge_learned(None, b.learned, {}) is b.learned


def test_the_evaluator_returns_traits_and_counts_the_dense_gradient_pass():
    resolved = resolve(config())
    tickets = [ticket(seed=s) for s in range(3)]
    ev = Evaluator(resolved.arch, resolved.splits, resolved.config.finetune, resolved.config.optimizer, 0)
    plain = ev.evaluate(tickets, 0).tickets()
    magnitudes = ev.evaluate(tickets, 0, learned="magnitudes").tickets()
    gradients = ev.evaluate(tickets, 0, learned="gradients").tickets()
    assert plain[0].learned is None and magnitudes[0].learned["gradients"] == {}
    for a, b, t in zip(magnitudes, gradients, tickets, strict=True):
        assert a.fitness == b.fitness  # the gradient pass does not change the fine-tuning
        for name, mask in t.masks.items():
            assert b.learned["magnitudes"][name][0].tolist() == mask.reshape(-1).nonzero().squeeze(1).tolist()
            assert name in b.learned["gradients"]
    assert [r.fields["train_flops"] for r in magnitudes] == [r.fields["train_flops"] for r in plain]
    assert all(g.fields["train_flops"] > m.fields["train_flops"] for g, m in zip(gradients, magnitudes, strict=True))


# ---------------------------------------------------------------------------
# the operators


def test_mutMagnitudeSwap_prunes_the_smallest_known_magnitudes_and_keeps_each_layer_count():
    t = with_traits(ticket(density=0.3))
    before = {k: m.clone() for k, m in t.masks.items()}
    t.uid = 7
    mutMagnitudeSwap(t, fraction=0.25, grow="random", rng=torch.Generator().manual_seed(0))
    assert t.parents == (7,) and t.operators == ("mutMagnitudeSwap",)
    for name, old in before.items():
        new = t.masks[name]
        assert int(new.sum()) == int(old.sum())
        magnitude = known_magnitudes(t.learned, name, old.numel())
        kept = old.reshape(-1).nonzero().squeeze(1)
        n = min(int(0.25 * kept.numel()), old.numel() - kept.numel())
        dropped = (old & ~new).reshape(-1).nonzero().squeeze(1)
        assert len(dropped) == n
        smallest = kept[magnitude[kept].argsort(stable=True)[:n]]
        assert sorted(dropped.tolist()) == sorted(smallest.tolist())
        grown = (new & ~old).reshape(-1)
        assert int(grown.sum()) == n


def test_mutMagnitudeSwap_grows_where_the_gradient_was_largest_and_never_drops_an_unknown_weight():
    t = with_traits(ticket(density=0.3))
    name = "fc1.weight"
    # a weight kept now whose magnitude no measured ancestor knew: never dropped
    flat = t.masks[name].reshape(-1).clone()
    unknown = int((~flat).nonzero()[-1])
    index, value = t.learned["gradients"][name]
    keep_out = index != unknown
    t.learned["gradients"][name] = (index[keep_out], value[keep_out])
    flat[unknown] = True
    t.masks[name] = flat.view(t.masks[name].shape)
    old = t.masks[name].clone()
    mutMagnitudeSwap(t, fraction=0.5, grow="gradient", rng=torch.Generator().manual_seed(0))
    new = t.masks[name].reshape(-1)
    assert bool(new[unknown])
    grown = (new & ~old.reshape(-1)).nonzero().squeeze(1)
    candidates = t.learned["gradients"][name][0].long()
    assert sorted(grown.tolist()) == sorted(candidates[: len(grown)].tolist())  # the largest gradients first


def test_mutMagnitudeSwap_without_traits_is_a_random_swap_and_checks_its_arguments():
    t = ticket(density=0.3)
    counts = {k: int(m.sum()) for k, m in t.masks.items()}
    before = {k: m.clone() for k, m in t.masks.items()}
    mutMagnitudeSwap(t, fraction=0.2, rng=torch.Generator().manual_seed(0))
    assert {k: int(m.sum()) for k, m in t.masks.items()} == counts
    assert any(not torch.equal(before[k], t.masks[k]) for k in before)
    with pytest.raises(ValueError, match="fraction"):
        mutMagnitudeSwap(t, fraction=0, rng=torch.Generator())
    with pytest.raises(ValueError, match="grow"):
        mutMagnitudeSwap(t, grow="largest", rng=torch.Generator())


@pytest.mark.parametrize("seed", range(5))
def test_mutLayerDensity_moves_weights_between_two_layers_at_a_fixed_total(seed):
    t = ticket(density=0.2, hidden=16)
    before = {k: int(m.sum()) for k, m in t.masks.items()}
    for _ in range(20):
        mutLayerDensity(t, fraction=0.3, rng=torch.Generator().manual_seed(seed))
    after = {k: int(m.sum()) for k, m in t.masks.items()}
    assert sum(after.values()) == sum(before.values())
    assert after != before and all(v >= 1 for v in after.values())
    once = ticket(density=0.2, hidden=16)
    start = {k: int(m.sum()) for k, m in once.masks.items()}
    mutLayerDensity(once, fraction=0.3, rng=torch.Generator().manual_seed(seed))
    changed = [k for k, m in once.masks.items() if int(m.sum()) != start[k]]
    assert len(changed) == 2  # one donor, one receiver
    with pytest.raises(ValueError, match="fraction"):
        mutLayerDensity(once, fraction=1.5, rng=torch.Generator())


# ---------------------------------------------------------------------------
# fine-tuning levers


def test_lamarckian_rewinding_inherits_the_weights_at_step_k():
    cfg = config("finetune.mode=lamarckian", "finetune.inherit_step=2")
    resolved = resolve(cfg)
    t = ticket()
    tb = make_toolbox(cfg, resolved=resolved)
    tb.evaluator.evaluate_batch([t])
    # the same ticket fine-tuned for 2 steps on the first 2 minibatches of generation 0's sequence
    direct = finetune_tickets(
        [ticket()],
        resolved.arch,
        resolved.splits,
        cfg.optimizer,
        tb.evaluator.backend.evaluator.minibatch_seed(0),
        steps=2,
        return_weights=True,
    )
    for name, w in direct.weights.items():
        expected = torch.where(t.masks[name], w[0], ticket().theta0[name]) if name in t.masks else w[0]
        assert torch.allclose(t.theta0[name], expected, atol=1e-6), name
    with pytest.raises(ConfigError, match="finetune.inherit_step: must be <= finetune.steps"):
        config("finetune.mode=lamarckian", "finetune.inherit_step=7")
    with pytest.raises(ConfigError, match="finetune.inherit_step: .* needs finetune.mode = 'lamarckian'"):
        config("finetune.inherit_step=2")


def test_successive_halving_trains_the_best_half_further_and_its_cost_is_predicted():
    cfg = config("ga.halving_rungs=3", "ga.population=8", "ga.generations=0")
    resolved = resolve(cfg)
    tb = make_toolbox(cfg, resolved=resolved)
    pop = tb.population(n=8)
    fits = tb.evaluator.evaluate_batch(pop)
    rungs = [ind.eval_record["rung"] for ind in pop]
    assert sorted(rungs) == [0, 0, 0, 0, 1, 1, 2, 2]
    steps = {0: 6, 1: 6 + 12, 2: 6 + 12 + 24}
    assert all(ind.eval_record["train_steps"] == steps[r] for ind, r in zip(pop, rungs, strict=True))
    # those promoted were the best at rung 0: rerun rung 0 alone
    plain = make_toolbox(config("ga.population=8", "ga.generations=0"), resolved=resolved)
    rung0 = plain.evaluator.evaluate_batch([tb.clone(ind) for ind in pop])
    order = sorted(range(8), key=lambda i: (rung0[i][0], -rung0[i][1]), reverse=True)
    assert {i for i in range(8) if rungs[i] >= 1} == set(order[:4])
    assert all(fits[i] == rung0[i] for i in range(8) if rungs[i] == 0)
    assert halving_steps(8, 3, 6) == sum(ind.eval_record["train_steps"] for ind in pop)
    gen0, _, _ = ga_costs(resolved)
    assert gen0 == sum(ind.eval_record["train_flops"] for ind in pop)  # the budget check's estimate is exact


def test_the_fitness_cache_serves_unchanged_parents_under_fixed_minibatches(tmp_path):
    result = campaign(tmp_path, "finetune.minibatches=fixed", "ga.fitness_cache=true")
    rows = read_individuals(result.run_dir)
    first = {r["uid"]: r for r in rows if not r["reevaluated"]}
    again = [r for r in rows if r["reevaluated"]]
    assert again and all("cached" in r["flags"] and r["train_flops"] == 0 and r["train_steps"] == 0 for r in again)
    assert all(r["val_acc"] == first[r["uid"]]["val_acc"] for r in again)  # the same number, not a new draw
    # without the cache, fixed minibatches give the same fitness by fine-tuning again
    plain = campaign(tmp_path / "b", "finetune.minibatches=fixed")
    assert [r["val_acc"] for r in read_individuals(plain.run_dir)] == [r["val_acc"] for r in rows]
    assert sum(r["train_flops"] for r in read_individuals(plain.run_dir)) > sum(r["train_flops"] for r in rows)


def test_content_keys_change_with_the_genome_the_settings_and_the_minibatches():
    t = ticket()
    cfg, opt = config().finetune, config().optimizer
    key = content_key(t, settings_text(cfg, opt, {}), 0)
    assert key == content_key(t.clone(), settings_text(cfg, opt, {}), 0)
    flipped = t.clone()
    flat = flipped.masks["fc1.weight"].reshape(-1).clone()
    flat[0] = not bool(flat[0])
    flipped.masks["fc1.weight"] = flat.view(t.masks["fc1.weight"].shape)
    moved = t.clone()
    moved.theta0["fc2.bias"] = moved.theta0["fc2.bias"] + 1e-3
    other = config("optimizer.lr=0.01").optimizer
    steps = config("finetune.steps=7").finetune
    keys = {
        key,
        content_key(flipped, settings_text(cfg, opt, {}), 0),
        content_key(moved, settings_text(cfg, opt, {}), 0),
        content_key(t, settings_text(cfg, other, {}), 0),
        content_key(t, settings_text(steps, opt, {}), 0),
        content_key(t, settings_text(cfg, opt, {}), 1),
        content_key(t, settings_text(cfg, opt, {"halving_rungs": 2}), 0),
    }
    assert len(keys) == 7


def test_a_lamarckian_run_bypasses_the_cache(tmp_path):
    result = campaign(tmp_path, "finetune.mode=lamarckian", "finetune.minibatches=fixed", "ga.fitness_cache=true")
    assert not any("cached" in r["flags"] for r in read_individuals(result.run_dir))


# ---------------------------------------------------------------------------
# the whole GA with every lever: records, checkpoint and an exact resume


def test_a_campaign_with_every_lever_resumes_after_an_interruption_to_the_same_records(tmp_path, monkeypatch):
    straight = campaign(tmp_path / "a", *ALL_LEVERS)
    rows = read_individuals(straight.run_dir)
    assert {r["rung"] for r in rows} == {0, 1, 2}
    assert any("cached" in r["flags"] for r in rows)
    assert any("mutMagnitudeSwap" in r["operators"] for r in rows)
    totals = {round(r["density_total"], 6) for r in rows}
    assert len(totals) == 1  # mutLayerDensity keeps the total
    assert len({tuple(sorted(r["density"].items())) for r in rows}) > 1  # ... and moves the per-layer densities
    monkeypatch.setattr(faults, "_spec", ("finetune", 3, signal.SIGINT))
    monkeypatch.setattr(faults, "_counts", {})
    with pytest.raises(Interrupted):
        campaign(tmp_path / "b", *ALL_LEVERS)
    monkeypatch.setattr(faults, "_spec", None)
    run_dir = tmp_path / "b" / "runs" / "r"
    assert not paths.summary(run_dir).exists()
    resume_campaign(run_dir, plots_dir=tmp_path / "b" / "plots", out=open(os.devnull, "w"))
    for name in ("individuals.jsonl", "best_ticket.pt"):
        assert (straight.run_dir / name).read_bytes() == (run_dir / name).read_bytes(), name


def test_bad_lever_settings_name_the_key(tmp_path):
    for override, key in (
        ("ga.operator_args.mutMagnitudeSwap.grow=largest", "ga.operator_args.mutMagnitudeSwap.grow"),
        ("ga.operator_args.mutMagnitudeSwap.fraction=0", "ga.operator_args.mutMagnitudeSwap.fraction"),
        ("ga.operator_args.mutLayerDensity.fraction=two", "ga.operator_args.mutLayerDensity.fraction"),
        ("ga.halving_rungs=0", "ga.halving_rungs"),
        ("finetune.minibatches=sometimes", "finetune.minibatches"),
    ):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as e:
            resolve_run(config(override))
        assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match=r"ga\.halving_rungs: .* needs finetune\.steps >= 1"):
        config("ga.halving_rungs=2", "finetune.steps=0")
    assert math.isfinite(ga_costs(resolve(config(*ALL_LEVERS)))[1])
