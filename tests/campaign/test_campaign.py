"""End to end: a 2-generation campaign writes every promised file, reproducibly."""

from __future__ import annotations

import io
import json
import tomllib

import pytest
import torch

from evoticket import load_ticket, records
from evoticket.campaign import CONTROLS, control_tickets, run_campaign
from evoticket.config import CampaignConfig
from evoticket.core import paths
from evoticket.core.errors import EvoticketError, RunExistsError
from evoticket.genome.files import read_ticket_file
from evoticket.records import GENERATION_COLUMNS, TIMING_COLUMNS


def data_for(config):
    from evoticket.data import load_dataset

    return load_dataset(config.data.name, val_fraction=config.data.val_fraction, seed=config.data.seed)


def run(config, tmp_path, name="e2e", **kw):
    out = io.StringIO()
    result = run_campaign(config, name=name, runs_dir=tmp_path / "runs", plots_dir=tmp_path / "plots", out=out, **kw)
    return result, out.getvalue()


def snapshot(folder):
    """Relative path -> bytes of every file under ``folder``."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_campaign_writes_every_promised_file(fast_config, tmp_path):
    fast_config = fast_config.with_overrides(["campaign.plots=all"])  # what a user's run draws
    result, printed = run(fast_config, tmp_path)
    run_dir = tmp_path / "runs" / "e2e"
    assert result.run_dir == run_dir
    # resolved configuration
    assert CampaignConfig.from_dict(tomllib.loads(paths.config(run_dir).read_text())) == fast_config
    # per-generation statistics
    gens = records.read_generations(run_dir)
    assert [g["generation"] for g in gens] == [0, 1, 2]
    assert list(gens[0]) == list(GENERATION_COLUMNS)
    assert gens[0]["nevals"] == 6 and all(10 <= g["nevals"] <= 12 for g in gens[1:])  # parents re-evaluated
    assert all(0 <= g["val_acc_min"] <= g["val_acc_avg"] <= g["val_acc_max"] <= 1 for g in gens)
    # one line per evaluated individual, with lineage
    inds = records.read_individuals(run_dir)
    assert len(inds) == sum(g["nevals"] for g in gens)
    first = [r for r in inds if not r["reevaluated"]]
    assert [r["uid"] for r in first] == list(range(18))  # 6 initial + 6 offspring per generation, unique
    assert {r["uid"] for r in inds if r["reevaluated"]} <= {r["uid"] for r in first}
    expected_keys = {
        "uid",
        "generation",
        "parents",
        "operators",
        "density",
        "density_total",
        "val_acc_before",
        "val_loss_before",
        "val_acc",
        "val_loss",
        "flags",
        "reevaluated",
        "rung",
        "train_steps",
        "train_flops",
        "eval_flops",
        "recipe",
    }
    assert expected_keys == set(records.INDIVIDUAL_FIELDS)
    assert all(set(r) == expected_keys for r in inds)
    assert all(r["train_steps"] == 5 and r["train_flops"] > 0 and r["eval_flops"] > 0 for r in inds)
    assert set(inds[0]["density"]) == {"fc1.weight", "fc2.weight"}
    assert all(abs(r["density_total"] - 0.1) < 0.01 for r in inds)
    # the best ticket
    ticket, arch, cfg = read_ticket_file(paths.best_ticket(run_dir))
    assert cfg == fast_config and arch.name == "mlp"
    assert ticket.uid == result.summary["best"]["uid"]
    assert ticket.fitness.values[0] == gens[-1]["val_acc_max"]  # best of the final population
    module = load_ticket(paths.best_ticket(run_dir))
    assert torch.equal(module.fc1.weight, module.fc1.weight_orig * module.fc1.weight_mask)
    assert torch.equal(module.fc1.weight_orig, ticket.theta0["fc1.weight"])
    assert module(torch.zeros(3, 40)).shape == (3, 10)
    # summary with the lottery-ticket controls
    summary = json.loads(paths.summary(run_dir).read_text())
    assert set(summary["controls"]) == set(CONTROLS)
    for key in CONTROLS:
        c = summary["controls"][key]
        assert len(c["test_acc"]) == 2 and 0 <= c["test_acc_mean"] <= 1
        assert all(s in (0, 10, 20) for s in c["best_step"])
    assert summary["controls"]["dense"]["density"] == summary["controls"]["dense_scratch"]["density"] == 1.0
    assert summary["controls"]["random"]["density"] == pytest.approx(summary["controls"]["ticket"]["density"])
    starts = {k: (c["theta0"], c["mask"]) for k, c in summary["controls"].items()}
    assert starts == {
        "ticket": ("ticket", "ticket"),
        "dense": ("ticket", "none"),
        "random": ("ticket", "random"),
        "reinit": ("fresh", "ticket"),
        "dense_scratch": ("fresh", "none"),
        "random_scratch": ("fresh", "random"),
    }
    # the fast config is Baldwinian: theta0 is an initialisation, and the verdict compares with dense from scratch
    assert summary["theta0"] == {"kind": "init", "text": "an initialisation"}
    ticket_acc, scratch = (summary["controls"][k]["test_acc_mean"] for k in ("ticket", "dense_scratch"))
    assert summary["winning_ticket"] == (ticket_acc >= scratch - fast_config.campaign.winning_tolerance)
    assert f"vs {scratch:.4f} for a dense network trained from scratch" in summary["verdict"]
    assert summary["individuals_evaluated"] == len(inds)
    assert len(summary["hall_of_fame"]) == 5
    # the compute meter: per generation and in all, search and final comparison apart
    for g in gens:
        rows = [r for r in inds if r["generation"] == g["generation"]]
        assert g["train_flops"] == sum(r["train_flops"] for r in rows)
        assert g["train_steps"] == sum(r["train_steps"] for r in rows) == 5 * g["nevals"]
        assert g["eval_flops"] == sum(r["eval_flops"] for r in rows)
    compute = summary["compute"]
    assert compute["search"] == {k: sum(r[k] for r in inds) for k in ("train_steps", "train_flops", "eval_flops")}
    assert compute["final_comparison"]["train_steps"] == 6 * 2 * 20  # 6 controls, 2 seeds, 20 steps
    assert compute["final_comparison"]["train_flops"] == sum(summary["controls"][k]["train_flops"] for k in CONTROLS)
    assert (
        compute["total"]["train_flops"] == compute["search"]["train_flops"] + compute["final_comparison"]["train_flops"]
    )
    assert summary["method"] == "ga" and summary["timing"]["sessions"] == 1
    # campaign.ensemble is off by default: no ensemble anywhere
    assert "ensemble" not in summary and "ensemble" not in compute and "ensemble" not in printed.lower()
    # what the final comparison trained: the ticket at its early-stopping step, reproducing its test accuracy
    splits = data_for(fast_config)
    for seed in range(2):
        trained = load_ticket(paths.trained_ticket(run_dir), seed=seed).eval()
        assert torch.equal(trained.fc1.weight_mask, ticket.masks["fc1.weight"])
        assert torch.all(trained.fc1.weight[~ticket.masks["fc1.weight"]] == 0)
        with torch.no_grad():
            acc = (trained(splits.x_test).argmax(1) == splits.y_test).float().mean().item()
        assert acc == pytest.approx(summary["controls"]["ticket"]["test_acc"][seed], abs=1e-6)
    dense = load_ticket(paths.trained_ticket(run_dir), seed=1, control="dense")
    assert not hasattr(dense.fc1, "weight_mask") or bool(dense.fc1.weight_mask.all())
    with pytest.raises(EvoticketError, match="seed 2 does not exist; valid: 0 to 1"):
        load_ticket(paths.trained_ticket(run_dir), seed=2)
    # printed table
    for key in CONTROLS:
        assert f"\n{key} " in printed
    assert "Verdict:" in printed
    # the plot
    png = paths.fitness_plot(tmp_path / "plots" / "e2e")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    figures = {p.name for p in (tmp_path / "plots" / "e2e").iterdir()}
    for name in ("fitness", "lineage", "lineage_fitness", "operators", "density", "masks", "diversity"):
        assert {f"{name}.png", f"{name}.pdf"} <= figures, name


def test_same_seed_same_records(fast_config, tmp_path):
    run(fast_config, tmp_path, name="a")
    run(fast_config, tmp_path, name="b")
    a, b = tmp_path / "runs" / "a", tmp_path / "runs" / "b"
    assert paths.individuals_jsonl(a).read_bytes() == paths.individuals_jsonl(b).read_bytes()

    def strip(rows):
        return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in rows]

    assert strip(records.read_generations(a)) == strip(records.read_generations(b))
    sa, sb = records.read_summary(a), records.read_summary(b)
    for s in (sa, sb):
        del s["timing"], s["name"]
    assert sa == sb
    # a different seed gives different records
    run(fast_config.with_overrides(["campaign.seed=1"]), tmp_path, name="c")
    assert paths.individuals_jsonl(a).read_bytes() != paths.individuals_jsonl(tmp_path / "runs" / "c").read_bytes()


def test_existing_run_is_refused_and_untouched(fast_config, tmp_path):
    run(fast_config, tmp_path, name="x")
    before = snapshot(tmp_path / "runs" / "x")
    with pytest.raises(RunExistsError, match="already exists.*--force"):
        run(fast_config, tmp_path, name="x")
    assert snapshot(tmp_path / "runs" / "x") == before
    run(fast_config.with_overrides(["campaign.seed=3"]), tmp_path, name="x", force=True)
    assert paths.individuals_jsonl(tmp_path / "runs" / "x").read_bytes() != before["individuals.jsonl"]


def test_force_never_removes_a_foreign_directory(fast_config, tmp_path):
    foreign = tmp_path / "runs" / "mine"
    foreign.mkdir(parents=True)
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(RunExistsError, match="not an evoticket run"):
        run(fast_config, tmp_path, name="mine", force=True)
    assert (foreign / "thesis.tex").read_text() == "precious"


def test_controls_share_theta0_and_density(fast_config):
    from evoticket.evolution import make_toolbox

    toolbox = make_toolbox(fast_config)
    ticket = toolbox.individual()
    controls = control_tickets(ticket, toolbox.arch, seed=4)
    assert controls["dense"].total_density() == 1.0
    for name, mask in ticket.masks.items():
        assert int(controls["random"].masks[name].sum()) == int(mask.sum())
        assert not torch.equal(controls["random"].masks[name], mask)
        assert torch.equal(controls["random"].theta0[name], ticket.theta0[name])
        assert torch.equal(controls["reinit"].masks[name], mask)
        assert not torch.equal(controls["reinit"].theta0[name], ticket.theta0[name])
        # from scratch: the same fresh theta0 as reinit, no mask or the same random mask as random
        assert torch.equal(controls["dense_scratch"].theta0[name], controls["reinit"].theta0[name])
        assert bool(controls["dense_scratch"].masks[name].all())
        assert torch.equal(controls["random_scratch"].theta0[name], controls["reinit"].theta0[name])
        assert torch.equal(controls["random_scratch"].masks[name], controls["random"].masks[name])


def test_a_diverging_individual_is_flagged_and_the_campaign_goes_on(fast_config, tmp_path):
    """A NaN weight (as a diverged fine-tuning leaves behind) gets the worst fitness and a flag; others go on."""
    poisoned = []

    def poison(generation, population, record):
        if generation == 0:
            ind = population[0]
            ind.theta0 = {**ind.theta0, "fc1.bias": torch.full_like(ind.theta0["fc1.bias"], float("nan"))}
            poisoned.append(ind.uid)

    result, _ = run(fast_config, tmp_path, hooks=(poison,))
    lines = records.read_individuals(tmp_path / "runs" / "e2e")
    flagged = [r for r in lines if r["flags"]]
    assert poisoned[0] in {r["uid"] for r in flagged}
    tainted = set(poisoned)  # the poisoned individual and its descendants, which inherit its theta0
    for r in lines:
        if r["uid"] in tainted or tainted & set(r["parents"]):
            tainted.add(r["uid"])
    assert {r["uid"] for r in flagged} <= tainted
    for r in flagged:
        assert r["flags"] == ["nonfinite"] and r["val_acc"] == 0.0 and r["val_loss"] is None
        assert r["generation"] >= 1 and (r["reevaluated"] or r["uid"] not in poisoned)
    assert all(r["val_loss"] is not None for r in lines if not r["flags"])
    assert [g["generation"] for g in records.read_generations(tmp_path / "runs" / "e2e")] == [0, 1, 2]
    assert result.best.uid not in poisoned and paths.summary(tmp_path / "runs" / "e2e").exists()
