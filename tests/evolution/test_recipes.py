"""Tickets as DNA (recipes) and custom DEAP searches recorded into run directories."""

from __future__ import annotations

import gzip
import json
import os
import random

import pytest
import torch
from deap import algorithms, tools

import evoticket
from evoticket import records
from evoticket.campaign import RunRecorder, run_campaign
from evoticket.campaign.export import export_run
from evoticket.core import paths
from evoticket.core.errors import EvoticketError
from evoticket.genome.files import read_ticket_file
from evoticket.operators.recipe import ancestry, decode_recipe, read_recipe_file, replay
from evoticket.plots import plot_run
from evoticket.plots.compare import compare_runs

SMALL = [
    "model.hidden=[16]",
    "ga.population=6",
    "ga.offspring=6",
    "ga.generations=4",
    "finetune.steps=6",
    "finetune.mode=baldwinian",
    "ga.halving_rungs=1",
    "finetune.batch_size=50",
    "campaign.final_steps=20",
    "campaign.final_eval_every=10",
    "campaign.final_seeds=1",
    "campaign.progress=false",
    "campaign.device=cpu",
    "campaign.plots=none",
]
SEEDED = ["ga.mutations=['mutMaskSwap', 'mutInitGaussian', 'mutSignFlip']", "ga.crossover=cxLayerSwap", "ga.cxpb=0.8"]


def crossed(tree) -> bool:
    """Whether a recipe tree holds a crossover."""
    return "child" in tree or any(crossed(sub) for sub in tree.get("of", ()))


def config(*more: str) -> evoticket.CampaignConfig:
    return evoticket.CampaignConfig().with_overrides([*SMALL, *more])


def campaign(root, *more: str, name: str = "r"):
    return run_campaign(
        config(*more), name=name, runs_dir=root / "runs", plots_dir=root / "plots", out=open(os.devnull, "w")
    )


def test_a_seeded_baldwinian_ticket_replays_bit_for_bit_from_its_recipe(tmp_path, cli):
    result = campaign(tmp_path, *SEEDED)
    rows = records.read_individuals(result.run_dir)
    new = [r for r in rows if not r["reevaluated"]]
    assert all(r["recipe"] is not None for r in new)
    assert all(r["recipe"] is None for r in rows if r["reevaluated"])
    assert any(crossed(r["recipe"]) for r in new if r["generation"] > 0)  # crossovers recorded
    proc = cli(tmp_path, [], "export", str(result.run_dir), "--compact")
    assert proc.returncode == 0, proc.stderr
    assert "round trip exact" in proc.stdout and "stores nothing" in proc.stdout
    recipe = result.run_dir / "best_ticket.recipe"
    payload = decode_recipe(recipe.read_bytes())
    assert payload["stored"] is None and len(payload["nodes"]) >= 2
    best, arch, _ = read_ticket_file(paths.best_ticket(result.run_dir))
    ticket, _, _ = read_recipe_file(recipe)
    for k in best.theta0:
        assert torch.equal(ticket.theta0[k], best.theta0[k]), k
    for k in best.masks:
        assert torch.equal(ticket.masks[k], best.masks[k]), k
    # every individual with a recipe replays to the genome that was evaluated: check a crossover child too
    trees = {r["uid"]: r["recipe"] for r in new}
    child = next(r["uid"] for r in new if crossed(r["recipe"]))
    again = replay(ancestry(child, trees), child, arch)
    assert again.total_density() == pytest.approx(next(r for r in new if r["uid"] == child)["density_total"])
    x = torch.randn(7, 40)
    a, b = evoticket.load_ticket(recipe), evoticket.load_ticket(paths.best_ticket(result.run_dir))
    assert torch.equal(a(x), b(x))
    # far smaller than the state dict, and the same run writes the same bytes
    export = export_run(result.run_dir, fmt="recipe", out=tmp_path / "again.recipe")
    assert export.report["exact"] and export.report["ratio_float32"] > 2
    assert (tmp_path / "again.recipe").read_bytes() == recipe.read_bytes()


def test_what_cannot_be_replayed_is_stored_float32_exactly_float16_approximately(tmp_path):
    lam = campaign(tmp_path, "finetune.mode=lamarckian", "ga.mutations=['mutMagnitudeSwap']", name="lam")
    exact = export_run(lam.run_dir, fmt="recipe", out=tmp_path / "lam32.recipe")
    assert exact.report["exact"] and exact.report["stored"] == ["theta0", "masks"] and exact.report["nodes"] == 0
    half = export_run(lam.run_dir, fmt="recipe", out=tmp_path / "lam16.recipe", weights="float16")
    assert not half.report["exact"] and 0 < half.report["max_abs_error"] < 1e-2
    assert half.report["recipe_bytes"] < exact.report["recipe_bytes"]
    best, _, _ = read_ticket_file(paths.best_ticket(lam.run_dir))
    back, _, _ = read_recipe_file(tmp_path / "lam32.recipe")
    for k, v in best.effective_weights().items():
        assert torch.equal(back.effective_weights()[k], v), k
    unseeded = campaign(tmp_path, *SEEDED, "ga.seeded=false", name="plain")
    assert all(r["recipe"] is None for r in records.read_individuals(unseeded.run_dir) if r["generation"] > 0)
    report = export_run(unseeded.run_dir, fmt="recipe", out=tmp_path / "plain.recipe").report
    assert report["exact"] and report["nodes"] == 0 and "masks" in report["stored"]


def test_export_never_overwrites_and_bad_files_give_one_line_errors(tmp_path, cli):
    result = campaign(tmp_path, *SEEDED, "ga.generations=1")
    out = tmp_path / "t.recipe"
    out.write_bytes(b"keep me")
    proc = cli(tmp_path, [], "export", str(result.run_dir), "--compact", "--out", str(out))
    assert proc.returncode == 2 and "already exists" in proc.stderr and "Traceback" not in proc.stderr
    assert out.read_bytes() == b"keep me"
    proc = cli(tmp_path, [], "export", str(tmp_path / "nope"), "--compact")
    assert proc.returncode == 2 and "no such run directory" in proc.stderr
    proc = cli(tmp_path, [], "export", str(result.run_dir))
    assert proc.returncode == 2 and "--compact" in proc.stderr
    bad = tmp_path / "bad.recipe"
    bad.write_bytes(gzip.compress(json.dumps({"format": "something else"}).encode()))
    with pytest.raises(EvoticketError, match="bad.recipe: not an evoticket-recipe-v1 file"):
        evoticket.load_ticket(bad)


# ---------------------------------------------------------------------------
# custom searches


@pytest.mark.parametrize("algorithm", ["eaSimple", "eaMuPlusLambda", "eaMuCommaLambda"])
def test_a_stock_deap_algorithm_writes_records_that_lineage_plots_and_compare_read(tmp_path, algorithm):
    cfg = config(*SEEDED)
    toolbox = evoticket.make_toolbox(cfg)
    recorder = RunRecorder(toolbox, cfg, name=algorithm, runs_dir=tmp_path / "runs")
    random.seed(0)
    pop = toolbox.population(n=6)
    run = {
        "eaSimple": lambda: algorithms.eaSimple(pop, toolbox, cxpb=0.5, mutpb=0.5, ngen=3, verbose=False),
        "eaMuPlusLambda": lambda: algorithms.eaMuPlusLambda(
            pop, toolbox, mu=6, lambda_=6, cxpb=0.5, mutpb=0.5, ngen=3, verbose=False
        ),
        "eaMuCommaLambda": lambda: algorithms.eaMuCommaLambda(
            pop, toolbox, mu=6, lambda_=8, cxpb=0.5, mutpb=0.5, ngen=3, verbose=False
        ),
    }[algorithm]
    pop, _ = run()
    best = tools.selBest(pop, 1)[0]
    recorder.finish(best)
    run_dir = recorder.run_dir
    gens = records.read_generations(run_dir)
    assert [int(g["generation"]) for g in gens] == [0, 1, 2, 3]
    rows = records.read_individuals(run_dir)
    assert len({r["uid"] for r in rows}) == len(rows)  # each evaluated individual once
    graph = records.lineage_graph(run_dir)
    assert graph.number_of_nodes() == len(rows) and graph.number_of_edges() > 0
    written = {p.name for p in plot_run(run_dir, tmp_path / "plots", formats=("png",))}
    assert {"fitness.png", "lineage.png", "masks.png"} <= written
    _, table = compare_runs([run_dir], tmp_path / "cmp")
    assert table[0]["method"] == "ga"
    report = export_run(run_dir, fmt="recipe", out=tmp_path / "best.recipe").report
    assert report["exact"] and report["stored"] == []  # the user's loop's best ticket replays from its recipe
