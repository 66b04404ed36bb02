"""Multi-objective tickets: density-changing operators, NSGA-II, Pareto records, hypervolume, the pareto figure."""

from __future__ import annotations

import csv
import os
import random
import signal

import pytest
import torch
from deap import base, creator

import evoticket
from evoticket import records
from evoticket.campaign import resume_campaign, run_campaign
from evoticket.core import faults, paths
from evoticket.core.errors import ConfigError, Interrupted
from evoticket.evolution.objectives import Objectives, objective_weights
from evoticket.genome import Ticket, compact_learned, known_magnitudes
from evoticket.methods import resolve_run
from evoticket.operators import (
    MUTATIONS,
    OPERATORS,
    initTicket,
    mutMaskGrow,
    mutMaskPrune,
    mutMaskResize,
    selCrowdedTournament,
    selNSGA2,
)
from evoticket.plots import draw_pareto, pareto_vs_imp, plot_run
from evoticket.resolve import resolve

SMALL = [
    "model.hidden=[16]",
    "ga.population=6",
    "ga.offspring=6",
    "ga.generations=3",
    "finetune.steps=6",
    "optimizer.batch_size=50",
    "campaign.final_steps=20",
    "campaign.final_eval_every=10",
    "campaign.final_seeds=1",
    "campaign.progress=false",
    "campaign.device=cpu",
    "campaign.plots=none",
]
MULTI = [
    "ga.objectives=['accuracy', 'density']",
    "ga.survival=selNSGA2",
    "ticket.density_range=[0.05, 0.5]",
    "ga.halving_rungs=1",
    "ga.mutations=['mutMagnitudeSwap', 'mutMaskResize']",
    "ga.operator_args.mutMaskResize.low=0.05",
    "ga.operator_args.mutMaskResize.high=0.5",
]


def config(*more: str) -> evoticket.CampaignConfig:
    return evoticket.CampaignConfig().with_overrides([*SMALL, *more])


def campaign(root, *more: str, name: str = "r"):
    return run_campaign(
        config(*more), name=name, runs_dir=root / "runs", plots_dir=root / "plots", out=open(os.devnull, "w")
    )


def ticket(density: float = 0.3, seed: int = 0) -> Ticket:
    arch = resolve(config()).arch
    return initTicket(Ticket, arch, density, rng=torch.Generator().manual_seed(seed))


def counts(t: Ticket) -> dict[str, int]:
    return {k: int(m.sum()) for k, m in t.masks.items()}


def with_magnitudes(t: Ticket, seed: int = 1) -> Ticket:
    g = torch.Generator().manual_seed(seed)
    weights = {k: torch.randn((1, *m.shape), generator=g) for k, m in t.masks.items()}
    t.learned = compact_learned(weights, {k: m.unsqueeze(0) for k, m in t.masks.items()})[0]
    return t


# ---------------------------------------------------------------------------
# operators


def test_mutMaskGrow_and_mutMaskPrune_change_each_layer_by_the_fraction_of_its_kept_count():
    t = ticket(0.3)
    before = counts(t)
    mutMaskGrow(t, fraction=0.2, grow="random", rng=torch.Generator().manual_seed(1))
    grown = counts(t)
    assert grown == {k: k_ + int(0.2 * k_) for k, k_ in before.items()}
    assert t.operators[-1] == "mutMaskGrow" and t.recipe is None
    mutMaskPrune(t, fraction=0.5, by="random", rng=torch.Generator().manual_seed(2))
    assert counts(t) == {k: k_ - int(0.5 * k_) for k, k_ in grown.items()}


def test_mutMaskPrune_by_magnitude_prunes_the_smallest_fine_tuned_magnitudes_and_keeps_one_per_layer():
    t = with_magnitudes(ticket(0.3))
    old = {k: m.clone() for k, m in t.masks.items()}
    mutMaskPrune(t, fraction=0.25, by="magnitude", rng=torch.Generator().manual_seed(0))
    for name, mask in old.items():
        magnitude = known_magnitudes(t.learned, name, mask.numel())
        removed = mask.reshape(-1) & ~t.masks[name].reshape(-1)
        kept = t.masks[name].reshape(-1)
        assert int(removed.sum()) == int(0.25 * int(mask.sum()))
        assert magnitude[removed].max() <= magnitude[kept].min()  # the smallest went
        assert not (t.masks[name].reshape(-1) & ~mask.reshape(-1)).any()  # nothing grew
    tiny = ticket(0.01)
    for _ in range(30):
        mutMaskPrune(tiny, fraction=1.0, by="random", rng=torch.Generator().manual_seed(3))
    assert all(k >= 1 for k in counts(tiny).values())


def test_density_bounds_hold_and_mutMaskResize_turns_back_at_a_bound():
    t = ticket(0.3)
    total = sum(m.numel() for m in t.masks.values())
    for seed in range(40):
        mutMaskResize(
            t, fraction=0.5, grow="random", by="random", low=0.1, high=0.4, rng=torch.Generator().manual_seed(seed)
        )
        kept = sum(counts(t).values())
        assert 0.1 * total - 1e-9 <= kept <= 0.4 * total + 1e-9
    seen = set()
    for seed in range(40):  # at the upper bound every mutation prunes
        u = ticket(0.4, seed=seed)
        before = sum(counts(u).values())
        mutMaskResize(
            u, fraction=0.2, grow="random", by="random", low=0.1, high=0.4, rng=torch.Generator().manual_seed(seed)
        )
        seen.add(sum(counts(u).values()) < before)
    assert seen == {True}
    with pytest.raises(ValueError, match="low, high"):
        mutMaskResize(ticket(), low=0.5, high=0.2, rng=torch.Generator())
    with pytest.raises(ValueError, match="by: must be one of"):
        mutMaskPrune(ticket(), by="largest", rng=torch.Generator())
    for name in ("mutMaskGrow", "mutMaskPrune", "mutMaskResize"):
        assert name in MUTATIONS
        op = OPERATORS[name]
        for arg, value in op.defaults.items():
            assert arg in op.checks and op.checks[arg][0](value), (name, arg)


# ---------------------------------------------------------------------------
# selection, objectives


def _individuals(points: list[tuple[float, float]]):
    if not hasattr(creator, "MOTest"):
        creator.create("MOFit", base.Fitness, weights=(1.0, -1.0))
        creator.create("MOTest", list, fitness=creator.MOFit)
    out = []
    for i, p in enumerate(points):
        ind = creator.MOTest([i])
        ind.fitness.values = p
        out.append(ind)
    return out


def test_nsga2_keeps_the_first_front_and_the_crowded_tournament_prefers_it():
    pool = _individuals([(0.9, 0.5), (0.5, 0.1), (0.7, 0.3), (0.6, 0.4), (0.4, 0.45), (0.3, 0.49)])
    first = {0, 1, 2}  # (0.6, 0.4) is dominated by (0.7, 0.3); the rest by several
    assert {ind[0] for ind in selNSGA2(pool, 3)} == first
    random.seed(0)
    picks = selCrowdedTournament(pool, 200, tournsize=2)
    first_share = sum(ind[0] in first for ind in picks) / len(picks)
    assert first_share > 0.7  # rank 0 wins every tournament it enters: 1 - (1/2)**2 = 0.75 expected
    wide = selCrowdedTournament(pool, 500, tournsize=6)
    assert sum(ind[0] in first for ind in wide) / len(wide) > 0.95  # 1 - (1/2)**6 expected


def test_objectives_give_fitness_front_and_hypervolume():
    arch = resolve(config()).arch
    obj = Objectives(("accuracy", "density"), arch)
    assert objective_weights(("accuracy",)) == (1.0, -1.0) and obj.weights == (1.0, -1.0)
    t = ticket(0.25)
    assert obj.fitness(t, (0.8, 0.3), False) == (0.8, pytest.approx(t.total_density()))
    assert obj.fitness(t, (0.0, float("inf")), True) == (0.0, 1.0)
    flops = Objectives(("accuracy", "density", "flops"), arch).fitness(t, (0.8, 0.3), False)
    assert len(flops) == 3 and 0 < flops[2] < Objectives(("accuracy", "flops"), arch).dense_flops
    pool = _individuals([(0.5, 0.1), (0.8, 0.5), (0.4, 0.3)])  # the last is dominated
    for i, ind in enumerate(pool):
        ind.uid = i
        ind.total_density = lambda ind=ind: ind.fitness.values[1]
    front = obj.front(pool)
    assert [ind.uid for ind in front] == [0, 1]
    # boxes [0, 0.5] x [0.1, 1] and [0, 0.8] x [0.5, 1]: 0.45 + 0.4 - 0.25
    assert obj.hypervolume(front) == pytest.approx(0.6)
    with pytest.raises(ValueError, match="objectives"):
        Objectives(("density",), arch)


def test_bad_multi_objective_settings_name_the_key():
    for more, key in (
        (["ga.objectives=['accuracy', 'density']"], "ga.survival"),
        (["ga.survival=selNSGA2"], "ga.objectives"),
        (["ga.objectives=['density', 'accuracy']", "ga.survival=selNSGA2"], "ga.objectives"),
        (["ticket.density_range=[0.5, 0.1]"], "ticket.density_range"),
        (["ga.operator_args.mutMaskResize.high=1.5"], "ga.operator_args.mutMaskResize.high"),
    ):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as e:
            resolve_run(config(*more))
        assert "\n" not in str(e.value)


# ---------------------------------------------------------------------------
# a multi-objective campaign


def _csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_a_multi_objective_campaign_records_each_front_its_hypervolume_and_trains_the_final_front(tmp_path):
    result = campaign(tmp_path, *MULTI)
    run_dir = result.run_dir
    gens = records.read_generations(run_dir)
    fronts = {}
    for row in _csv(paths.pareto_csv(run_dir)):
        fronts.setdefault(int(row["generation"]), []).append((float(row["val_acc"]), float(row["density_total"])))
    assert sorted(fronts) == [0, 1, 2, 3] and len(gens) == 4
    for front in fronts.values():  # non-dominated: no member is at least as good in both objectives and better in one
        for a in front:
            assert not any(b != a and b[0] >= a[0] and b[1] <= a[1] and (b[0] > a[0] or b[1] < a[1]) for b in front)
    for row in gens:
        assert 0 < float(row["hypervolume"]) <= 1
    first = sorted(d for _, d in fronts[0])
    assert first[0] == pytest.approx(0.05, rel=0.1)  # the initial population spans density_range
    densities = [r["density_total"] for r in records.read_individuals(run_dir)]
    assert min(densities) >= 0.05 * 0.9 and max(densities) <= 0.5 * 1.1
    trained = _csv(paths.pareto_final_csv(run_dir))
    assert len(trained) == len(fronts[3]) and all(0 <= float(r["test_acc"]) <= 1 for r in trained)
    summary = records.read_summary(run_dir)
    assert summary["pareto"]["front_size"] == len(trained)
    assert summary["pareto"]["hypervolume"] == pytest.approx(float(gens[-1]["hypervolume"]), abs=1e-7)
    assert summary["best"]["val_acc"] == max(
        float(r["val_acc"]) for r in _csv(paths.pareto_csv(run_dir))[-len(trained) :]
    )

    imp_config = evoticket.CampaignConfig().with_overrides(
        [s for s in SMALL if not s.startswith(("ga.", "finetune.steps"))]
        + [
            "method=imp",
            "ticket.density=0.1",
            "imp.steps=20",
            "imp.eval_every=10",
            "imp.rate=0.5",
            "imp.output_rate=0.5",
        ]
    )
    imp_run = run_campaign(
        imp_config, name="imp", runs_dir=tmp_path / "runs", plots_dir=tmp_path / "plots", out=open(os.devnull, "w")
    ).run_dir
    rows = pareto_vs_imp(run_dir, imp_run)
    assert [r["round"] for r in rows] == list(range(len(rows))) and len(rows) >= 3
    for r in rows:
        if r["front_val_acc"] is not None:
            assert r["val_diff"] == pytest.approx(r["front_val_acc"] - r["imp_val_acc"])
    written = plot_run(run_dir, tmp_path / "plots" / "mo", imp_run=imp_run, formats=("png",))
    names = {p.name for p in written}
    assert {"pareto.png", "pareto-vs-imp.csv"} <= names
    assert draw_pareto(imp_run) is None  # no front in an IMP run


def test_the_pareto_plot_command_names_a_bad_imp_run(tmp_path, cli):
    result = campaign(tmp_path, *MULTI, "ga.generations=1")
    proc = cli(tmp_path, [], "plot", str(result.run_dir), "--imp", str(result.run_dir), "--out", str(tmp_path / "p"))
    assert proc.returncode == 2 and "not an IMP run" in proc.stderr and "Traceback" not in proc.stderr


def test_a_multi_objective_campaign_resumes_to_the_same_fronts(tmp_path, monkeypatch):
    straight = campaign(tmp_path / "a", *MULTI)
    monkeypatch.setattr(faults, "_spec", ("records", 3, signal.SIGINT))
    monkeypatch.setattr(faults, "_counts", {})
    with pytest.raises(Interrupted):
        campaign(tmp_path / "b", *MULTI)
    monkeypatch.setattr(faults, "_spec", None)
    run_dir = tmp_path / "b" / "runs" / "r"
    resume_campaign(run_dir, plots_dir=tmp_path / "b" / "plots", out=open(os.devnull, "w"))
    for name in ("individuals.jsonl", "pareto.csv", "pareto_final.csv", "best_ticket.pt"):
        assert (straight.run_dir / name).read_bytes() == (run_dir / name).read_bytes(), name
