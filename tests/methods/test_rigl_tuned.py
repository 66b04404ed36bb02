"""rigl_tuned: N RigL runs of drawn lr and alpha in one batch, sharing one run's steps; the best by validation."""

from __future__ import annotations

import os

import pytest
import torch

from evoticket.campaign import controls, run_campaign
from evoticket.config import CampaignConfig
from evoticket.core import paths
from evoticket.core.errors import ConfigError
from evoticket.genome.files import read_ticket_file
from evoticket.methods import METHODS, Budget, resolve_run
from evoticket.methods import onerun as onerun_module
from evoticket.methods.rigl_tuned import draw_settings
from evoticket.records import read_individuals
from evoticket.training import MaskUpdate, backward_flops, forward_flops
from evoticket.training.dynamic import rigl_fraction

COMMON = [
    "model.hidden=[16]",
    "ticket.density=0.3",
    "optimizer.batch_size=50",
    "train.steps=80",
    "train.eval_every=5",
    "rigl.delta_t=5",
    "campaign.final_steps=10",
    "campaign.final_eval_every=5",
    "campaign.final_seeds=1",
    "campaign.device=cpu",
    "campaign.progress=false",
    "campaign.plots=none",
]
TUNED = ["method=rigl_tuned", "rigl_tuned.runs=4", *COMMON]


def config(*more: str) -> CampaignConfig:
    return CampaignConfig().with_overrides([*TUNED, *more])


def train_alone(cfg: CampaignConfig):
    """The method's own training and result, without the campaign around it (no files)."""
    method, resolved = resolve_run(cfg)
    run = method.prepare(resolved)
    return method, resolved, run.run((), None, Budget())


def test_the_runs_draw_distinct_lr_and_alpha_in_their_ranges_from_the_seed():
    draws = draw_settings(config("rigl_tuned.lr_range=[0.002, 0.2]", "rigl_tuned.alpha_range=[0.1, 0.4]"))
    assert len(draws) == 4 and all(set(d) == {"lr", "alpha"} for d in draws)
    assert all(0.002 <= d["lr"] <= 0.2 and 0.1 <= d["alpha"] <= 0.4 for d in draws)
    assert len({d["lr"] for d in draws}) == len({d["alpha"] for d in draws}) == 4
    assert draws == draw_settings(config("rigl_tuned.lr_range=[0.002, 0.2]", "rigl_tuned.alpha_range=[0.1, 0.4]"))
    assert draws != draw_settings(config("campaign.seed=1", "rigl_tuned.lr_range=[0.002, 0.2]"))


def test_n_networks_train_in_one_batch_each_at_its_lr_and_alpha_for_a_share_of_the_steps(monkeypatch):
    calls = []
    original = onerun_module.train

    def spy(arch, theta0, masks, splits, cfg, batches, **kw):
        calls.append((next(iter(theta0.values())).shape[0], len(batches), kw["lr"], kw["callbacks"]))
        return original(arch, theta0, masks, splits, cfg, batches, **kw)

    monkeypatch.setattr(onerun_module, "train", spy)
    cfg = config()
    _, _, result = train_alone(cfg)
    draws = draw_settings(cfg)
    ((population, steps, lr, callbacks),) = calls  # one training for all four
    assert population == 4 and steps == 80 // 4
    assert lr.tolist() == pytest.approx([d["lr"] for d in draws])
    (update,) = [cb.update for cb in callbacks if isinstance(cb, MaskUpdate)]
    assert update.updated is None  # every network drops and grows, each at its own alpha
    end = round(0.75 * 20)
    fractions = update.fraction(5)
    assert fractions.shape == (4,) and fractions.tolist() == pytest.approx(
        [rigl_fraction(5, d["alpha"], end) for d in draws]
    )
    own = result.info["rigl_tuned"]
    assert own["steps"] == 20 and [r["train_steps"] for r in own["runs"]] == [20] * 4
    assert own["train_steps"] == 80
    assert [(r["lr"], r["alpha"]) for r in own["runs"]] == [(d["lr"], d["alpha"]) for d in draws]


def test_the_best_by_validation_is_reported_with_its_lr_and_trained_at_it(tmp_path, monkeypatch):
    rates = []
    original = controls.train_as_final
    monkeypatch.setattr(controls, "train_as_final", lambda *a, **kw: rates.append(kw["lr"]) or original(*a, **kw))
    cfg = config()
    result = run_campaign(
        cfg, name="r", runs_dir=tmp_path / "runs", plots_dir=tmp_path / "plots", out=open(os.devnull, "w")
    )
    own = result.summary["rigl_tuned"]
    runs = own["runs"]
    chosen = max(range(4), key=lambda i: runs[i]["val_acc"])
    assert own["chosen"] == chosen and own["val_acc"] == runs[chosen]["val_acc"]
    assert own["test_acc"] == runs[chosen]["test_acc"] and own["best_step"] == runs[chosen]["best_step"]
    lr = runs[chosen]["lr"]
    assert result.best.genes == {"lr": lr}
    ticket, _, _ = read_ticket_file(paths.best_ticket(result.run_dir))
    assert ticket.genes == {"lr": lr} and ticket.total_density() == pytest.approx(0.3, abs=0.01)
    assert rates and all(r == lr for r in rates)  # the final comparison trains it (and its controls) at its lr
    # theta0 is the shared start; the mask is the reported run's at its early-stopping step
    start = METHODS["rigl_tuned"].prepare(resolve_run(cfg)[1]).start
    assert all(torch.equal(result.best.theta0[k], start.theta0[k]) for k in start.theta0)
    (row,) = read_individuals(result.run_dir)
    assert row["genes"] == {"lr": lr} and row["chosen"] == chosen and len(row["runs"]) == 4
    assert row["train_flops"] == own["train_flops"] == sum(r["train_flops"] for r in runs)
    s = result.summary
    assert s["individuals_evaluated"] == 4
    assert s["report"]["subtitle"] == "RigL tuned: 4 runs of 20 steps, lr and alpha drawn"
    lines = s["report"]["lines"]
    assert lines[0].startswith(
        f"rigl_tuned: 4 RigL runs of 20 steps in one batch, lr and alpha drawn; the best by validation, run {chosen}"
    )
    assert len(lines) == 5 and lines[1 + chosen].endswith("(reported)") and f"lr {lr:.3g}" in lines[1 + chosen]


def test_its_training_flops_are_one_rigl_runs_but_for_the_dense_gradient_passes():
    tuned_method, resolved, tuned = train_alone(config())
    rigl_method, rigl_resolved, rigl = train_alone(CampaignConfig().with_overrides(["method=rigl", *COMMON]))
    arch, kept = resolved.arch, tuned_method.start_kept(resolved)
    weights = frozenset(arch.weight_names)
    dense_pass = 50 * int(forward_flops(arch, kept) + backward_flops(arch, kept, weights, dense_weight_grads=weights))
    # RigL at 80 steps updates at steps 5, 10, ..., 55 (T_end = 60): 11 dense passes; each tuned run of 20 steps at
    # 5 and 10 (T_end = 15): 2, so 8 in all
    rigl_flops, tuned_flops = rigl.spent["train_flops"], tuned.spent["train_flops"]
    assert rigl_flops == rigl.info["rigl"]["train_flops"]  # the reported network's (its static control aside)
    assert tuned_flops - 8 * dense_pass == rigl_flops - 11 * dense_pass  # the same 80 sparse steps, exactly
    assert (
        tuned_flops == tuned_method.run_flops(resolved, kept, 20) == 4 * rigl_method.run_flops(rigl_resolved, kept, 20)
    )
    assert [r["train_flops"] for r in tuned.info["rigl_tuned"]["runs"]] == [tuned_flops // 4] * 4


@pytest.mark.parametrize(
    ("overrides", "starts"),
    [
        (["rigl_tuned.runs=1"], "rigl_tuned.runs: must be >= 2, got 1"),
        (["rigl_tuned.lr_range=[0.1, 0.01]"], "rigl_tuned.lr_range: must be [low, high] with 0 < low <= high"),
        (["rigl_tuned.lr_range=[0.01]"], "rigl_tuned.lr_range: must be [low, high]"),
        (["rigl_tuned.alpha_range=[0.1, 1.5]"], "rigl_tuned.alpha_range: must be [low, high] with 0 < low <= high < 1"),
        (["rigl.alpha=0.2"], "rigl.alpha: method 'rigl_tuned' draws each run's alpha from rigl_tuned.alpha_range"),
        (
            ["train.steps=7"],
            "train.steps: method 'rigl_tuned' gives each of its 4 runs train.steps // 4 steps; must be",
        ),
        (["rigl.delta_t=15"], "rigl.delta_t: each of rigl_tuned's 4 runs trains 20 steps and changes its mask until"),
        (["budget.train_flops=1000"], "budget.train_flops: 1,000 does not pay for two training steps"),
        (["ga.population=6"], "ga.population: a setting of method"),
    ],
)
def test_bad_settings_are_one_line_naming_the_key(overrides, starts):
    with pytest.raises(ConfigError) as info:
        resolve_run(config(*overrides))
    assert str(info.value).startswith(starts), str(info.value)
    assert "\n" not in str(info.value)


def test_a_bad_setting_on_the_command_line_exits_2_and_writes_nothing(tmp_path, cli):
    proc = cli(tmp_path, ["method=rigl_tuned", "rigl_tuned.runs=1"], "run", "--name", "x")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines == ["evoticket: error: rigl_tuned.runs: must be >= 2, got 1"], proc.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "plots").exists()
