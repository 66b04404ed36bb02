"""random_search: tickets drawn fresh every batch, fine-tuned as the GA's individuals, the best by validation kept."""

from __future__ import annotations

import csv
import json
import os
import signal

import pytest

from evoticket.campaign import run_campaign
from evoticket.config import CampaignConfig, load_config
from evoticket.core import paths
from evoticket.evolution import evolve, make_toolbox
from evoticket.genome.files import read_ticket_file
from evoticket.methods import METHODS, resolve_run
from evoticket.methods.ga import ga_costs
from evoticket.records import TIMING_COLUMNS, read_generations, read_individuals

TINY = [
    "method=random_search",
    "model.hidden=[16]",
    "ticket.density=0.3",
    "ga.population=4",
    "ga.offspring=3",
    "ga.generations=3",
    "finetune.steps=4",
    "ga.halving_rungs=1",
    "optimizer.batch_size=50",
    "campaign.final_steps=10",
    "campaign.final_eval_every=5",
    "campaign.final_seeds=1",
    "campaign.device=cpu",
    "campaign.progress=false",
    "campaign.plots=none",
]


def tiny(*more: str) -> CampaignConfig:
    return CampaignConfig().with_overrides([*TINY, *more])


def run(config, root, name="r"):
    return run_campaign(config, name=name, runs_dir=root / "runs", plots_dir=root / "plots", out=open(os.devnull, "w"))


def fitness(record):
    return (record["val_acc"], -record["val_loss"])


def test_every_batch_is_drawn_fresh_and_the_best_by_validation_is_kept(tmp_path):
    result = run(tiny("ga.halving_rungs=2"), tmp_path)  # successive halving as the GA's evaluator does it
    run_dir = result.run_dir
    rows = read_individuals(run_dir)
    # drawn fresh: no parents, made by the initialiser alone, each evaluated once; 4, then 3 a batch
    assert [r["generation"] for r in rows] == [0] * 4 + [1] * 3 + [2] * 3 + [3] * 3
    assert [r["uid"] for r in rows] == list(range(13))
    assert all(r["parents"] == [] and r["operators"] == ["initTicket"] and not r["reevaluated"] for r in rows)
    assert {r["rung"] for r in rows} == {0, 1}  # halving within each batch
    # survivors: the best ga.population so far, so the best of the generation rows never falls
    gens = read_generations(run_dir)
    best_so_far = [max(r["val_acc"] for r in rows if r["generation"] <= g) for g in range(4)]
    assert [g["val_acc_max"] for g in gens] == pytest.approx(best_so_far)
    assert [g["nevals"] for g in gens] == [4, 3, 3, 3]
    # the reported ticket is the best by validation of every ticket drawn
    s = result.summary
    best = max(rows, key=fitness)
    assert s["best"]["uid"] == best["uid"] and result.best.uid == best["uid"]
    assert s["individuals_evaluated"] == 13 and s["random_search"]["drawn"] == 13
    assert s["random_search"]["last_batch"] == 3 and "ga" not in s
    assert set(s["controls"]) == {"ticket", "dense", "random", "reinit", "dense_scratch", "random_scratch"}
    # its own words
    report = s["report"]
    assert report["unit"] == "batch" and report["subtitle"].startswith("random search: 13 tickets drawn, best by")
    assert report["lines"][0].startswith("Search: 13 tickets drawn at random in batches 0 to 3 (4, then 3 a batch)")
    assert "Farahani" in METHODS["random_search"].citation and "2403.08265" in METHODS["random_search"].citation
    assert load_config(paths.config(run_dir)).ga.reevaluate is False  # the configuration it ran with


def test_the_loop_draws_offspring_through_the_toolbox_hook():
    config = tiny()
    method, resolved = resolve_run(config)
    toolbox = method.prepare(resolved).toolbox
    calls = []
    offspring = toolbox.offspring
    toolbox.register("offspring", lambda pop, n: calls.append((len(pop), n)) or offspring(pop, n))
    pop, _, _ = evolve(toolbox, resolved.config)
    assert calls == [(4, 3)] * 3 and len(pop) == 4
    plain = make_toolbox(config, resolved=resolved)
    assert not hasattr(plain, "offspring")  # the GA's toolbox varies selected parents


def test_its_cost_counts_no_reevaluation_and_it_spends_within_a_budget(tmp_path):
    config = tiny()
    resolved = resolve_run(config)[1]
    gen0, later, final = ga_costs(resolved)
    assert later * 4 == gen0 * 3  # 3 fresh draws a batch against 4 at first: no parent fine-tuned again
    limit = gen0 + 5 * later + final + later // 2  # pays for batches 1 to 5, not 6
    result = run(tiny("ga.generations=100000", f"budget.train_flops={limit}"), tmp_path)
    b = result.summary["budget"]
    assert b["stopped_by_budget"] and b["generations"] == 5
    assert [g["train_flops"] for g in read_generations(result.run_dir)] == [gen0] + [later] * 5  # exact: the meter
    assert b["spent_train_flops"] == gen0 + 5 * later + final <= limit
    assert b["final_training_train_flops"] == final
    assert result.summary["random_search"]["drawn"] == 4 + 5 * 3
    ran_with = load_config(paths.config(result.run_dir))
    assert "tickets drawn until the budget ends" in METHODS["random_search"].subtitle(ran_with)


def test_with_genes_its_tickets_carry_drawn_hyperparameters(tmp_path):
    result = run(tiny("finetune.genes=['lr']", "finetune.lr_range=[0.005, 0.05]"), tmp_path)
    rows = read_individuals(result.run_dir)
    lrs = [r["genes"]["lr"] for r in rows]
    assert all(0.005 <= lr <= 0.05 for lr in lrs) and len(set(lrs)) == len(lrs)  # each drawn afresh
    best = max(rows, key=fitness)
    ticket, _, _ = read_ticket_file(paths.best_ticket(result.run_dir))
    assert ticket.genes == {"lr": best["genes"]["lr"]}  # the final comparison trains it at its own rate
    assert result.summary["report"]["subtitle"].endswith("genes lr")


def _outputs(root):
    run_dir = root / "runs" / "r"
    summary = json.loads(paths.summary(run_dir).read_text())
    del summary["timing"]
    with open(paths.generations_csv(run_dir), newline="") as f:
        gens = [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(f)]
    files = ("individuals.jsonl", "best_ticket.pt", "config.toml")
    return {**{name: (run_dir / name).read_bytes() for name in files}, "generations": gens, "summary": summary}


def test_killed_during_a_batch_it_resumes_to_the_same_files(tmp_path, cli):
    straight, killed = tmp_path / "a", tmp_path / "b"
    straight.mkdir(), killed.mkdir()
    sets = [s for s in TINY if not s.startswith("campaign.progress")]
    assert cli(straight, sets, "run", "--name", "r", "--no-progress").returncode == 0
    proc = cli(killed, sets, "run", "--name", "r", "--no-progress", kill_at="finetune:3")  # in batch 2's fine-tuning
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not paths.summary(killed / "runs" / "r").exists()
    done = cli(killed, [], "resume", "runs/r", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "resuming runs/r after batch 1" in done.stderr
    assert _outputs(straight) == _outputs(killed)
