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
from evoticket.cli import main
from evoticket.core import paths
from evoticket.core.errors import EvoticketError
from evoticket.genome.files import read_ticket_file, save_ticket
from evoticket.operators.recipe import ancestry, decode_recipe, encode_recipe, read_recipe_file, replay
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
    "optimizer.batch_size=50",
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
    assert payload["network_only"] is False and evoticket.load_ticket(recipe).network_only is False
    # network only asked: the replay rebuilds theta0 everywhere, so nothing is left out and the file is the same
    proc = cli(tmp_path, [], "export", str(result.run_dir), "--compact", "--network-only", "--out", "net.recipe")
    assert proc.returncode == 0 and "nothing to leave out" in proc.stdout and "round trip exact" in proc.stdout
    assert (tmp_path / "net.recipe").read_bytes() == recipe.read_bytes()


@pytest.fixture(scope="module")
def lam(tmp_path_factory):
    """A Lamarckian run with an informed mutation: nothing of its best ticket replays (read-only for the tests)."""
    root = tmp_path_factory.mktemp("lam")
    return campaign(root, "finetune.mode=lamarckian", "ga.mutations=['mutMagnitudeSwap']", name="lam")


def pruned_values(ticket, name: str) -> torch.Tensor:
    """theta0 of layer ``name`` at its pruned positions (flat)."""
    return ticket.theta0[name][~ticket.masks[name]]


def test_a_lamarckian_ticket_round_trips_its_whole_genome_float32_exactly_float16_approximately(lam, tmp_path, cli):
    best, _, _ = read_ticket_file(paths.best_ticket(lam.run_dir))
    assert all(bool((pruned_values(best, k) != 0).all()) for k in best.masks)  # nothing replays them, no 0.0 fills
    proc = cli(tmp_path, [], "export", str(lam.run_dir), "--compact", "--out", str(tmp_path / "lam32.recipe"))
    assert proc.returncode == 0, proc.stderr
    assert "round trip exact (every theta0 entry and mask bit for bit)" in proc.stdout
    assert "network only" not in proc.stdout
    back, _, payload = read_recipe_file(tmp_path / "lam32.recipe")
    assert payload["network_only"] is False and back.network_only is False and payload["nodes"] == {}
    assert back.theta0.keys() == best.theta0.keys() and back.masks.keys() == best.masks.keys()
    for k, v in best.theta0.items():  # every entry, pruned positions included
        assert torch.equal(back.theta0[k].view(torch.int32), v.view(torch.int32)), k
    for k, m in best.masks.items():
        assert torch.equal(back.masks[k], m), k
    module = evoticket.load_ticket(tmp_path / "lam32.recipe")
    assert module.network_only is False
    assert torch.equal(module.fc1.weight_orig.detach(), best.theta0["fc1.weight"])
    half = export_run(lam.run_dir, fmt="recipe", out=tmp_path / "lam16.recipe", weights="float16")
    report = half.report
    assert not report["exact"] and not report["network_only"] and 0 < report["max_abs_error"] < 1e-2
    assert report["recipe_bytes"] < (tmp_path / "lam32.recipe").stat().st_size
    back16, _, _ = read_recipe_file(tmp_path / "lam16.recipe")
    for k in best.masks:  # rounded, not dropped
        assert torch.allclose(pruned_values(back16, k), pruned_values(best, k), atol=1e-2), k
    proc = cli(
        tmp_path, [], "export", str(lam.run_dir), "--compact", "--weights", "float16", "--out", str(tmp_path / "x")
    )
    assert proc.returncode == 0 and "round trip not exact: theta0 rounded to float16, max abs error" in proc.stdout
    unseeded = campaign(tmp_path, *SEEDED, "ga.seeded=false", name="plain")
    assert all(r["recipe"] is None for r in records.read_individuals(unseeded.run_dir) if r["generation"] > 0)
    report = export_run(unseeded.run_dir, fmt="recipe", out=tmp_path / "plain.recipe").report
    assert report["exact"] and report["nodes"] == 0 and "masks" in report["stored"]


def test_network_only_keeps_the_masked_network_and_says_so_on_file_ticket_and_module(lam, tmp_path, cli):
    best, _, _ = read_ticket_file(paths.best_ticket(lam.run_dir))
    exact = export_run(lam.run_dir, fmt="recipe", out=tmp_path / "exact.recipe").report
    out = tmp_path / "net.recipe"
    proc = cli(tmp_path, [], "export", str(lam.run_dir), "--compact", "--network-only", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    pruned = sum(int((~m).sum()) for m in best.masks.values())
    assert f"network only: theta0 at pruned positions not stored ({pruned:,} of" in proc.stdout
    assert "masked network exact" in proc.stdout and "round trip exact" not in proc.stdout
    assert out.stat().st_size < exact["recipe_bytes"] / 2
    ticket, _, payload = read_recipe_file(out)
    assert payload["network_only"] is True and payload["stored"]["pruned"] == {}
    assert ticket.network_only is True
    for k, v in best.effective_weights().items():
        assert torch.equal(ticket.effective_weights()[k], v), k
    for k in best.masks:
        assert torch.equal(ticket.masks[k], best.masks[k]), k
        assert bool((pruned_values(ticket, k) == 0).all()) and not torch.equal(ticket.theta0[k], best.theta0[k]), k
    module, reference = evoticket.load_ticket(out), evoticket.load_ticket(paths.best_ticket(lam.run_dir))
    assert module.network_only is True and reference.network_only is False
    x = torch.randn(7, 40)
    assert torch.equal(module(x), reference(x))  # the same network
    assert not torch.equal(module.fc1.weight_orig, reference.fc1.weight_orig)  # not the same genome
    report = export_run(lam.run_dir, fmt="recipe", out=tmp_path / "again.recipe", network_only=True).report
    assert report["network_only"] and report["network_exact"] and not report["exact"]
    assert report["pruned_not_stored"] == pruned and report["max_abs_error"] == 0.0
    assert (tmp_path / "again.recipe").read_bytes() == out.read_bytes()


def test_a_recipe_from_before_the_marker_reads_as_network_only(lam, tmp_path):
    export_run(lam.run_dir, fmt="recipe", out=tmp_path / "net.recipe", network_only=True)
    old = decode_recipe((tmp_path / "net.recipe").read_bytes())
    del old["network_only"], old["stored"]["pruned"]  # what evoticket wrote before: kept weights, no marker
    (tmp_path / "old.recipe").write_bytes(encode_recipe(old))
    ticket, _, _ = read_recipe_file(tmp_path / "old.recipe")
    assert ticket.network_only is True and evoticket.load_ticket(tmp_path / "old.recipe").network_only is True
    assert all(bool((pruned_values(ticket, k) == 0).all()) for k in ticket.masks)
    seeded = campaign(tmp_path, *SEEDED, "ga.generations=1", name="seeded")  # nothing stored: a genome still
    export_run(seeded.run_dir, fmt="recipe", out=tmp_path / "seeded.recipe")
    old = decode_recipe((tmp_path / "seeded.recipe").read_bytes())
    del old["network_only"]
    (tmp_path / "old-seeded.recipe").write_bytes(encode_recipe(old))
    ticket, _, _ = read_recipe_file(tmp_path / "old-seeded.recipe")
    assert ticket.network_only is False


def test_only_the_pruned_positions_the_replay_misses_are_stored(tmp_path):
    """Masks replayed, theta0 written back (as Lamarckian fine-tuning does) at the kept positions of every layer
    and at the pruned positions of fc1 only: the exact recipe stores fc1's pruned values and nothing of fc2's."""
    result = campaign(tmp_path, *SEEDED, "ga.generations=2", name="wb")
    source = paths.best_ticket(result.run_dir)
    best, arch, cfg = read_ticket_file(source)
    gen = torch.Generator().manual_seed(0)
    theta0 = dict(best.theta0)
    for k, m in best.masks.items():
        noise = torch.randn(m.shape, generator=gen)
        theta0[k] = torch.where(m | (k == "fc1.weight"), theta0[k] + noise, theta0[k])
    best.theta0 = theta0
    source.unlink()
    save_ticket(source, best, arch, cfg)
    report = export_run(result.run_dir, fmt="recipe", out=tmp_path / "wb.recipe").report
    assert report["exact"] and report["replayed"] == ["masks"] and report["stored"] == ["theta0"]
    payload = decode_recipe((tmp_path / "wb.recipe").read_bytes())
    assert set(payload["stored"]["pruned"]) == {"fc1.weight"} and payload["nodes"]
    back, _, _ = read_recipe_file(tmp_path / "wb.recipe")
    for k, v in best.theta0.items():
        assert torch.equal(back.theta0[k], v), k
    net = export_run(result.run_dir, fmt="recipe", out=tmp_path / "wb-net.recipe", network_only=True).report
    assert net["network_only"] and net["network_exact"] and not net["exact"]
    back, _, _ = read_recipe_file(tmp_path / "wb-net.recipe")
    assert all(bool((pruned_values(back, k) == 0).all()) for k in back.masks)  # 0.0 wherever not stored


def test_export_never_overwrites_and_bad_files_give_one_line_errors(tmp_path, cli, capsys):
    result = campaign(tmp_path, *SEEDED, "ga.generations=1")
    out = tmp_path / "t.recipe"
    out.write_bytes(b"keep me")
    proc = cli(tmp_path, [], "export", str(result.run_dir), "--compact", "--out", str(out))  # as a user's process
    assert proc.returncode == 2 and "already exists" in proc.stderr and "Traceback" not in proc.stderr
    assert out.read_bytes() == b"keep me"

    def export(*args: str) -> str:  # the same command in this process: exit status 2, its one line on stderr
        capsys.readouterr()
        assert main(["export", *args]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        return err

    assert "already exists" in export(str(result.run_dir), "--compact", "--network-only", "--out", str(out))
    assert out.read_bytes() == b"keep me"
    assert "--network-only applies to a recipe" in export(str(result.run_dir), "--format", "sparse", "--network-only")
    assert "no such run directory" in export(str(tmp_path / "nope"), "--compact")
    assert "--compact" in export(str(result.run_dir))
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
