"""The one-run methods (dense, random, gmp, rigl, rigl_tuned, edge_popup, bn_only, output_only) and supermask_ga."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from evoticket.campaign import resume_campaign, run_campaign
from evoticket.config import CampaignConfig, load_config
from evoticket.core import faults, paths
from evoticket.core.errors import ConfigError, Interrupted
from evoticket.genome import keep_largest, kept_count
from evoticket.genome.files import read_ticket_file
from evoticket.methods import METHODS, resolve_run
from evoticket.methods.gmp import cubic_density
from evoticket.methods.rigl import drop_and_grow, rigl_fraction
from evoticket.records import read_generations, read_individuals

COMMON = [
    "model.hidden=[24]",
    "optimizer.batch_size=50",
    "campaign.final_steps=20",
    "campaign.final_eval_every=10",
    "campaign.final_seeds=2",
    "campaign.device=cpu",
    "campaign.progress=false",
    "campaign.plots=fitness",
]
ONE_RUN = ["train.steps=40", "train.eval_every=10", "ticket.density=0.3"]
TINY = {
    "dense": ["method=dense", *ONE_RUN],
    "random": ["method=random", *ONE_RUN],
    "gmp": ["method=gmp", *ONE_RUN, "gmp.every=5"],
    "rigl": ["method=rigl", *ONE_RUN, "rigl.delta_t=10"],
    "rigl_tuned": ["method=rigl_tuned", *ONE_RUN, "rigl.delta_t=4", "rigl_tuned.runs=4"],
    "edge_popup": ["method=edge_popup", *ONE_RUN, "ticket.density=0.5"],
    "bn_only": ["method=bn_only", "model.name=mlp_bn", *ONE_RUN],
    "output_only": ["method=output_only", *ONE_RUN],
    "supermask_ga": ["method=supermask_ga", "ga.population=6", "ga.generations=2", "ticket.density=0.5"],
}
"""A tiny configuration of every method this file tests (ga and imp have their own files)."""


def tiny(method: str, *more: str) -> CampaignConfig:
    return CampaignConfig().with_overrides([*COMMON, *TINY[method], *more])


def run(config, tmp_path, name="r", **kw):
    return run_campaign(config, name=name, runs_dir=tmp_path / "runs", plots_dir=tmp_path / "plots", **kw)


# ---------------------------------------------------------------------------
# arithmetic


def test_keep_largest_keeps_exactly_k_candidates_of_largest_score():
    g = torch.Generator().manual_seed(0)
    score = torch.randn(7, 9, generator=g)
    candidates = torch.rand(7, 9, generator=g) < 0.6
    out = keep_largest(score, candidates, 10)
    assert int(out.sum()) == 10 and bool((out <= candidates).all())
    assert score[out].min() >= score[candidates & ~out].max()
    assert int(keep_largest(score, candidates, 10_000).sum()) == int(candidates.sum())


def test_drop_and_grow_keeps_the_layer_kept_count_drops_smallest_and_grows_largest():
    g = torch.Generator().manual_seed(1)
    weight = torch.randn(30, 20, generator=g)
    mask = torch.rand(30, 20, generator=g) < 0.2
    grad = torch.randn(30, 20, generator=g).abs()
    kept = int(mask.sum())
    new = drop_and_grow(weight * mask, mask, grad, 0.3)
    n = int(0.3 * kept)
    assert int(new.sum()) == kept  # RigL keeps each layer's kept count
    survivors = keep_largest(weight.abs(), mask, kept - n)  # the drop: the n smallest kept magnitudes go
    assert weight[survivors].abs().min() >= weight[mask & ~survivors].abs().max()
    assert bool((survivors <= new).all())
    grown = new & ~survivors  # the growth: the n largest gradients outside the survivors (a dropped one may regrow)
    assert int(grown.sum()) == n
    assert grad[grown].min() >= grad[~survivors & ~new].max()
    assert torch.equal(drop_and_grow(weight, mask, grad, 0.0), mask)


def test_the_schedules():
    assert cubic_density(0, 10, 50, 0.1) == 1.0
    assert cubic_density(10, 10, 50, 0.1) == 1.0
    assert cubic_density(30, 10, 50, 0.1) == pytest.approx(0.1 + 0.9 * 0.5**3)
    assert cubic_density(50, 10, 50, 0.1) == cubic_density(90, 10, 50, 0.1) == 0.1
    assert rigl_fraction(0, 0.3, 100) == pytest.approx(0.3)
    assert rigl_fraction(50, 0.3, 100) == pytest.approx(0.15)
    assert rigl_fraction(100, 0.3, 100) == 0.0


# ---------------------------------------------------------------------------
# each method end to end


@pytest.mark.parametrize("method", list(TINY))
def test_each_method_end_to_end_records_summary_and_best_ticket(method, tmp_path):
    config = tiny(method)
    result = run(config, tmp_path, out=open(os.devnull, "w"))
    run_dir = tmp_path / "runs" / "r"
    s = result.summary
    rows, gens = read_individuals(run_dir), read_generations(run_dir)
    assert s["method"] == method
    assert set(s["controls"]) == {"ticket", "dense", "random", "reinit", "dense_scratch", "random_scratch"}
    own = s[method]
    assert 0 <= own["test_acc"] <= 1 and own["train_steps"] >= 0
    ticket, _, _ = read_ticket_file(paths.best_ticket(run_dir))
    assert ticket.total_density() == pytest.approx(s["controls"]["ticket"]["density"])
    if method == "supermask_ga":
        assert [g["generation"] for g in gens] == [0, 1, 2]
        assert s["compute"]["search"]["train_steps"] == 0  # no gradient at all
        assert load_config(paths.config(run_dir)).finetune.steps == 0  # the configuration it ran with
        return
    assert [r["generation"] for r in rows] == [g["generation"] for g in gens] == [0]
    (row,) = rows
    assert row["operators"] == [method] and row["uid"] == 0 and row["parents"] == []
    assert row["train_steps"] == own["train_steps"] == 40 == s["compute"]["search"]["train_steps"]
    assert row["test_acc"] == own["test_acc"]
    densities = {"dense": 1.0, "gmp": 0.3, "bn_only": 1.0, "output_only": 1.0, "edge_popup": 0.5}
    assert own["density_total"] == pytest.approx(densities.get(method, 0.3), abs=0.01)
    if method in ("gmp", "rigl", "rigl_tuned", "edge_popup", "random"):  # per-layer kept counts exact at the target
        for spec in result.best.masks:
            n = result.best.masks[spec].numel()
            assert int(result.best.masks[spec].sum()) == kept_count(0.5 if method == "edge_popup" else 0.3, n)


def test_rigl_changes_its_mask_while_the_static_control_trains_beside_it(tmp_path):
    result = run(tiny("rigl", "train.steps=60", "rigl.delta_t=10", "rigl.end=0.9"), tmp_path, out=open(os.devnull, "w"))
    own = result.summary["rigl"]
    start = METHODS["rigl"].prepare(resolve_run(tiny("rigl"))[1]).start
    changed = sum(int((result.best.masks[k] != start.masks[k]).sum()) for k in start.masks)
    assert own["best_step"] > 0 and changed > 0
    assert set(own["controls"]) == {"static"} and own["controls"]["static"]["train_flops"] < own["train_flops"]
    assert all(torch.equal(result.best.theta0[k], start.theta0[k]) for k in start.theta0)  # start weights
    set_ = run(tiny("rigl", "train.steps=60", "rigl.grow=random"), tmp_path, name="set", out=open(os.devnull, "w"))
    assert set_.summary["rigl"]["train_flops"] < own["train_flops"]  # no dense gradient for random growth


def test_edge_popup_never_moves_a_weight_and_reports_the_frozen_control(tmp_path):
    result = run(tiny("edge_popup"), tmp_path, out=open(os.devnull, "w"))
    own = result.summary["edge_popup"]
    assert set(own["controls"]) == {"random_frozen", "start"}
    start = METHODS["edge_popup"].prepare(resolve_run(tiny("edge_popup"))[1]).start
    assert all(torch.equal(result.best.theta0[k], start.theta0[k]) for k in start.theta0)
    for name, mask in result.best.masks.items():  # exactly the top-k of each layer
        assert int(mask.sum()) == int(start.masks[name].sum())


def test_gmp_reaches_the_target_and_stops_early_only_there(tmp_path):
    result = run(tiny("gmp", "gmp.start=0.2", "gmp.end=0.5"), tmp_path, out=open(os.devnull, "w"))
    own = result.summary["gmp"]
    assert own["best_step"] >= 20
    assert own["density"] == {k: pytest.approx(0.3, abs=0.01) for k in own["density"]}


# ---------------------------------------------------------------------------
# resume after an interruption, and a real kill


@pytest.mark.parametrize("method", list(TINY))
def test_an_interrupted_run_resumes_to_the_same_records(method, tmp_path, monkeypatch):
    config = tiny(method)
    straight = run(config, tmp_path / "a", out=open(os.devnull, "w"))
    monkeypatch.setattr(faults, "_spec", ("final", 1, signal.SIGINT))
    monkeypatch.setattr(faults, "_counts", {})
    with pytest.raises(Interrupted):
        run(config, tmp_path / "b", out=open(os.devnull, "w"))
    monkeypatch.setattr(faults, "_spec", None)
    assert not paths.summary(tmp_path / "b" / "runs" / "r").exists()
    resumed = resume_campaign(
        tmp_path / "b" / "runs" / "r", plots_dir=tmp_path / "b" / "plots", out=open(os.devnull, "w")
    )
    for name in ("individuals.jsonl", "best_ticket.pt", "config.toml"):
        a = (tmp_path / "a" / "runs" / "r" / name).read_bytes()
        assert a == (tmp_path / "b" / "runs" / "r" / name).read_bytes(), name
    a, b = straight.summary, resumed.summary
    assert a[method] == b[method] and a["controls"] == b["controls"]


@pytest.mark.slow
def test_a_one_run_method_killed_while_recording_resumes_to_the_same_files(tmp_path, cli):
    straight, killed = tmp_path / "a", tmp_path / "b"
    straight.mkdir(), killed.mkdir()
    assert cli(straight, [*COMMON, *TINY["rigl"]], "run", "--name", "r").returncode == 0
    assert cli(killed, [*COMMON, *TINY["rigl"]], "run", "--name", "r", kill_at="records:1").returncode == -9
    done = cli(killed, [*COMMON, *TINY["rigl"]], "run", "--name", "r", "--resume")
    assert done.returncode == 0, done.stderr
    assert "resuming runs/r after its start" in done.stderr
    for name in ("individuals.jsonl", "generations.csv", "best_ticket.pt"):
        a, b = ((root / "runs" / "r" / name).read_bytes() for root in (straight, killed))
        if name == "generations.csv":  # wall-time columns differ
            a, b = (x.decode().splitlines()[0] for x in (a, b))
        assert a == b, name


# ---------------------------------------------------------------------------
# bad input: a method's own checks, and a setting of a section the method does not read

FOREIGN = {
    "ga": "train.steps=10",
    "imp": "rigl.alpha=0.2",
    "dense": "gmp.every=3",
    "random": "imp.rate=0.3",
    "gmp": "rigl.delta_t=5",
    "rigl": "gmp.start=0.2",
    "edge_popup": "ga.population=12",
    "bn_only": "edge_popup.lr=0.1",
    "output_only": "rigl.grow=random",
    "supermask_ga": "train.eval_every=7",
    "rigl_tuned": "ga.population=12",
    "random_search": "train.steps=10",
}


def test_every_method_has_a_foreign_setting_case():
    assert set(FOREIGN) == set(METHODS)


@pytest.mark.parametrize("method", sorted(FOREIGN))
def test_a_setting_of_a_section_the_method_does_not_read_is_refused(method):
    key = FOREIGN[method].split("=")[0]
    with pytest.raises(ConfigError) as info:
        resolve_run(CampaignConfig().with_overrides([f"method={method}", FOREIGN[method]]))
    message = str(info.value)
    assert message.startswith(f"{key}: a setting of method") and f"but method = {method!r}" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("overrides", "starts"),
    [
        (["method=bn_only"], "model.name: method 'bn_only' trains BatchNorm parameters, but 'mlp' has none"),
        (["method=supermask_ga", "finetune.steps=50"], "finetune.steps: method 'supermask_ga' trains no gradient"),
        (["method=gmp", "gmp.start=0.5", "gmp.end=0.4"], "gmp.end: must be > gmp.start (0.5), got 0.4"),
        (["method=gmp", "gmp.end=1.0"], "gmp.end: the pruning must end before the last of the run's 1500 steps"),
        (["method=rigl", "rigl.grow=gradients"], "rigl.grow: must be one of 'gradient', 'random'"),
        (["method=edge_popup", "edge_popup.score_init=zeros"], "edge_popup.score_init: must be one of"),
        (["method=dense", "train.steps=0"], "train.steps: must be >= 1, got 0"),
        (["method=rgl"], "method: unknown method 'rgl' (did you mean 'rigl'?); valid: bn_only, dense, edge_popup"),
    ],
)
def test_method_bad_input_names_the_key(overrides, starts):
    with pytest.raises(ConfigError) as info:
        resolve_run(CampaignConfig().with_overrides([*COMMON, *overrides]))
    assert str(info.value).startswith(starts), str(info.value)
    assert "\n" not in str(info.value)
