"""The DEAP toolbox, batched map and the (mu + lambda) loop."""

from __future__ import annotations

import pickle
import random
import re

import pytest
import torch
from deap import algorithms

from evoticket.core.device import host_memory_bytes
from evoticket.core.errors import ConfigError
from evoticket.core.seeds import derive_seed
from evoticket.evolution import PopulationEvaluator, batched_map, check_toolbox, evolve, make_toolbox
from evoticket.models import build_architecture
from evoticket.records import WORST_FITNESS


def test_toolbox_registers_everything(fast_config):
    toolbox = make_toolbox(fast_config)
    for name in ("individual", "population", "mate", "mutate", "select", "select_parents", "evaluate", "map", "clone"):
        assert hasattr(toolbox, name), name
    pop = toolbox.population(n=3)
    assert all(abs(ind.total_density() - 0.1) < 0.01 for ind in pop)
    assert isinstance(toolbox.evaluate.func, PopulationEvaluator)


def test_batched_map_evaluates_in_one_batch(fast_config, monkeypatch):
    toolbox = make_toolbox(fast_config)
    pop = toolbox.population(n=5)
    calls = []
    original = PopulationEvaluator.evaluate_batch

    def spy(self, inds):
        calls.append(len(inds))
        return original(self, inds)

    monkeypatch.setattr(PopulationEvaluator, "evaluate_batch", spy)
    fits = toolbox.map(toolbox.evaluate, pop)
    assert calls == [5]
    assert len(fits) == 5 and all(0 <= f[0] <= 1 and f[1] > 0 for f in fits)
    assert [ind.uid for ind in pop] == [0, 1, 2, 3, 4]
    assert batched_map(lambda x: x * 2, [1, 2]) == [2, 4]  # other functions map plainly


def test_user_easimple_gets_batched_generations(fast_config, monkeypatch):
    """A user's own deap.algorithms.eaSimple fine-tunes each generation in one batch."""
    random.seed(0)
    toolbox = make_toolbox(fast_config)
    calls = []
    original = PopulationEvaluator.evaluate_batch
    monkeypatch.setattr(PopulationEvaluator, "evaluate_batch", lambda s, i: calls.append(len(i)) or original(s, i))
    pop = toolbox.population(n=6)
    pop, log = algorithms.eaSimple(pop, toolbox, cxpb=0.5, mutpb=0.5, ngen=2, verbose=False)
    assert calls[0] == 6 and len(calls) == 3
    assert all(ind.fitness.valid for ind in pop)
    assert len(log) == 3


def test_evolve_lineage_and_records(fast_config):
    cfg = fast_config.with_overrides(["ga.reevaluate=false"])
    toolbox = make_toolbox(cfg)
    seen = []
    pop, _logbook, hof = evolve(toolbox, cfg, hooks=[lambda g, p, r: seen.append((g, r))])
    assert [g for g, _ in seen] == [0, 1, 2]
    assert len(pop) == 6 and len(hof) == 5
    records = [ind.eval_record for _, r in seen for ind in r.evaluated]
    uids = [r["uid"] for r in records]
    assert uids == list(range(len(uids)))  # unique, increasing, no gaps
    known = set()
    for rec in records:
        assert set(rec["parents"]) <= known  # parents were evaluated before
        assert rec["operators"], rec
        assert 0 <= rec["val_acc"] <= 1 and 0 <= rec["val_acc_before"] <= 1
        known.add(rec["uid"])
    assert all(r["parents"] == [] and r["operators"] == ["initTicket"] for r in records[:6])
    assert all(r["parents"] for r in records[6:])
    # elitism: the best of generation g survives into g + 1
    best = [r.stats["fitness"]["max"] for _, r in seen]
    assert best == sorted(best)
    assert hof[0].fitness.values[0] == best[-1]


def test_lamarckian_writes_fine_tuned_weights_back(fast_config):
    cfg = fast_config.with_overrides(["finetune.mode=lamarckian"])
    toolbox = make_toolbox(cfg)
    pop = toolbox.population(n=3)
    before = [{k: v.clone() for k, v in ind.theta0.items()} for ind in pop]
    toolbox.map(toolbox.evaluate, pop)
    for ind, old in zip(pop, before, strict=True):
        for name, mask in ind.masks.items():
            assert torch.equal(ind.theta0[name][~mask], old[name][~mask])  # pruned theta0 kept
            assert not torch.equal(ind.theta0[name][mask], old[name][mask])  # kept weights learned


def test_baldwinian_keeps_theta0(fast_config):
    toolbox = make_toolbox(fast_config)
    pop = toolbox.population(n=2)
    before = [{k: v.clone() for k, v in ind.theta0.items()} for ind in pop]
    toolbox.map(toolbox.evaluate, pop)
    for ind, old in zip(pop, before, strict=True):
        assert all(torch.equal(ind.theta0[k], old[k]) for k in old)


def test_supermask_search_has_no_gradient_steps(fast_config):
    cfg = fast_config.with_overrides(["finetune.steps=0", "ga.mutations=['mutMaskSwap']"])
    toolbox = make_toolbox(cfg)
    pop, _, _ = evolve(toolbox, cfg)
    for ind in pop:
        assert ind.eval_record["val_acc"] == ind.eval_record["val_acc_before"]


def test_nonfinite_gets_worst_fitness_and_flag(fast_config):
    toolbox = make_toolbox(fast_config)
    pop = toolbox.population(n=3)
    pop[1].theta0 = {**pop[1].theta0, "fc1.bias": torch.full((16,), float("nan"))}
    fits = toolbox.map(toolbox.evaluate, pop)
    assert fits[1] == WORST_FITNESS
    assert pop[1].eval_record["flags"] == ["nonfinite"] and pop[1].eval_record["val_loss"] is None
    assert fits[0] != WORST_FITNESS and pop[0].eval_record["flags"] == []


def test_evaluated_population_pickles(fast_config):
    toolbox = make_toolbox(fast_config)
    pop = toolbox.population(n=2)
    toolbox.map(toolbox.evaluate, pop)
    back = pickle.loads(pickle.dumps(pop))
    assert [b.fitness.values for b in back] == [p.fitness.values for p in pop]
    assert [b.uid for b in back] == [p.uid for p in pop]


def test_derive_seed_is_stable():
    assert derive_seed(0, "finetune", 3) == derive_seed(0, "finetune", 3)
    assert derive_seed(0, "finetune", 3) != derive_seed(0, "finetune", 4)
    assert derive_seed(1, "finetune", 3) != derive_seed(0, "finetune", 3)
    assert 0 <= derive_seed(123, "x") < 2**32


@pytest.mark.parametrize("crossover", ["cxMaskUniform", "cxLayerSwap", "cxInitBlend"])
def test_every_crossover_runs_in_the_loop(fast_config, crossover):
    cfg = fast_config.with_overrides([f"ga.crossover={crossover}", "ga.cxpb=1.0", "ga.generations=1"])
    offspring = []
    evolve(make_toolbox(cfg), cfg, hooks=[lambda g, p, r: offspring.extend(r.evaluated if g == 1 else [])])
    offspring = [ind for ind in offspring if not ind.eval_record["reevaluated"]]
    assert len(offspring) == 6
    for ind in offspring:  # cxpb = 1: every offspring was crossed over, then maybe mutated
        assert ind.eval_record["operators"][0] == crossover
        assert len(ind.eval_record["parents"]) in (1, 2)


def test_reevaluate_puts_parents_and_offspring_in_one_batch(fast_config, monkeypatch):
    calls = []
    original = PopulationEvaluator.evaluate_batch
    monkeypatch.setattr(PopulationEvaluator, "evaluate_batch", lambda s, i: calls.append(len(i)) or original(s, i))
    seen = []  # (generation, records as written at that generation)
    hook = lambda g, p, r: seen.append((g, [dict(ind.eval_record) for ind in r.evaluated]))  # noqa: E731
    pop, _, _ = evolve(make_toolbox(fast_config), fast_config, hooks=[hook])
    assert calls[0] == 6
    assert all(5 <= n <= 12 for n in calls[1:])  # parents (deduplicated) + 6 offspring, one batch
    for generation, lines in seen[1:]:
        assert all(line["generation"] == generation for line in lines)
        again = [line for line in lines if line["reevaluated"]]
        assert again and all(line["uid"] < 6 * generation for line in again)
    # every survivor's fitness was measured in the last generation
    assert all(ind.eval_record["generation"] == 2 for ind in pop)
    assert not any(line["reevaluated"] for line in seen[0][1])


@pytest.mark.parametrize(
    "override",
    ["ga.population=1000000", "ga.offspring=1000000", "finetune.steps=4000000", "campaign.final_steps=4000000"],
)
def test_memory_check_names_the_key_and_how_much_fits(fast_config, override):
    key = override.split("=")[0]
    config = fast_config.with_overrides([override])
    arch = build_architecture(config.model.name, (40,), 10, config.model.hidden)
    check_toolbox(fast_config, arch, n_train=3600, available=2**30)  # the small campaign fits in 1 GiB
    with pytest.raises(ConfigError, match=f"^{key}: .*which this machine's 1 GiB cannot hold") as info:
        check_toolbox(config, arch, n_train=3600, available=2**30)
    fits = int(re.search(r"at most about ([\d,]+) would fit", str(info.value)).group(1).replace(",", ""))
    assert 1000 < fits < int(override.split("=")[1])
    check_toolbox(fast_config.with_overrides([f"{key}={fits}"]), arch, n_train=3600, available=2**30)
    with pytest.raises(ConfigError):
        check_toolbox(fast_config.with_overrides([f"{key}={fits + fits // 50}"]), arch, n_train=3600, available=2**30)


def test_memory_check_refuses_a_network_too_big_for_the_machine(fast_config):
    config = fast_config.with_overrides(["model.hidden=[5000000]"])
    arch = build_architecture(config.model.name, (40,), 10, config.model.hidden)
    with pytest.raises(ConfigError, match=r"^model.hidden: \[5000000\] makes a mlp of 255,000,010 parameters"):
        check_toolbox(config, arch, n_train=3600, available=2**30)


def test_memory_check_is_part_of_the_toolbox(fast_config, monkeypatch):
    assert host_memory_bytes() > 2**27  # this machine's memory, read for real
    monkeypatch.setattr("evoticket.resolve.host_memory_bytes", lambda: 2**15)
    with pytest.raises(ConfigError, match=r"^ga.population: 6 needs about"):
        make_toolbox(fast_config)


def test_two_toolboxes_in_one_process_may_use_different_fitness_weights(fast_config):
    a = make_toolbox(fast_config)
    b = make_toolbox(fast_config, splits=a.splits, fitness_weights=(1.0,))
    assert a.fitness_weights == (1.0, -1.0) and b.fitness_weights == (1.0,)
    assert a.individual().fitness.weights == (1.0, -1.0)
    assert b.individual().fitness.weights == (1.0,)


def test_the_evaluator_is_pure_and_the_loop_applies_its_results(fast_config):
    """Evaluating changes no ticket; uids, records and Lamarckian weights are applied by the loop."""
    import torch

    from evoticket.evolution import apply_results

    toolbox = make_toolbox(fast_config.with_overrides(["finetune.mode=lamarckian"]))
    pop = toolbox.population(n=3)
    before = [{k: v.clone() for k, v in ind.theta0.items()} for ind in pop]
    batch = toolbox.backend.evaluate(pop, 0, return_weights=True)
    assert [ind.uid for ind in pop] == [None, None, None] and all(ind.eval_record is None for ind in pop)
    assert all(torch.equal(ind.theta0[k], b[k]) for ind, b in zip(pop, before, strict=True) for k in b)
    assert [set(r.fields) for r in batch.tickets()] == [
        {
            "val_acc_before",
            "val_loss_before",
            "val_acc",
            "val_loss",
            "flags",
            "train_steps",
            "train_flops",
            "eval_flops",
        }
    ] * 3
    apply_results(pop, batch.tickets(), toolbox.counter, 0, lamarckian=True)
    assert [ind.uid for ind in pop] == [0, 1, 2]
    assert [ind.eval_record["generation"] for ind in pop] == [0, 0, 0]
    for ind, res in zip(pop, batch.tickets(), strict=True):
        kept = ind.masks["fc1.weight"]
        assert torch.equal(ind.theta0["fc1.weight"][kept], res.weights["fc1.weight"][kept])


def test_the_hall_of_fame_holds_each_individual_once(fast_config):
    """A surviving parent re-evaluated with a better score does not enter the hall of fame a second time."""
    config = fast_config.with_overrides(["ga.generations=6", "ga.hall_of_fame=8"])  # held uid 12 twice before
    _, _, hof = evolve(make_toolbox(config), config)
    uids = [ind.uid for ind in hof]
    assert len(uids) == len(set(uids)) == 8
