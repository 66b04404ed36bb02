"""A method of one's own, added from this file alone: one module (this one), one registry line, one config section.

``magnitude_oneshot`` is one-shot magnitude pruning at initialisation (prune theta0's smallest magnitudes to the
target density, no training): a real, if weak, way of finding a ticket. It lives only here, yet it runs through the
whole harness as the built-in methods do: configuration and ``--set``, records, checkpoints and resume, the final
comparison with every control, ``summary.json`` in its own words, and the figures.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import torch

from evoticket import records
from evoticket.campaign import resume_campaign, run_campaign
from evoticket.config import CampaignConfig
from evoticket.core import paths
from evoticket.core.errors import ConfigError
from evoticket.genome import ensure_creator, keep_largest, kept_count, stack_tickets
from evoticket.genome.snapshot import pack_tickets, unpack_tickets
from evoticket.methods import METHODS, Budget, Method, MethodResult, MethodRun, register_method, unregister_method
from evoticket.operators import initTicket
from evoticket.plots import plot_run
from evoticket.records import evaluation_fields, fitness_of, individual_record, report_generation
from evoticket.training import Meter, evaluate_params

# ----------------------------------------------------------------------------- the method (what a user writes)


@dataclasses.dataclass(frozen=True)
class OneShotConfig:
    """One-shot magnitude pruning at initialisation (``method = "magnitude_oneshot"``)."""

    candidates: int = dataclasses.field(default=2, metadata={"check": lambda v: None if v >= 1 else "must be >= 1"})
    """How many initialisations to draw; the one whose pruned network has the best validation accuracy wins; >= 1."""


class OneShotRun(MethodRun):
    """Draw ``candidates`` initialisations, prune each by magnitude, keep the best untrained network."""

    def __init__(self, resolved: Any) -> None:
        self.resolved, self.total_generations, self.ticket = resolved, 0, None

    @property
    def generation(self) -> int:
        return -1 if self.ticket is None else 0

    def snapshot(self) -> dict[str, Any]:
        return {"ticket": pack_tickets(None if self.ticket is None else [self.ticket])}

    def restore(self, state: dict[str, Any]) -> None:
        tickets = unpack_tickets(state["ticket"])
        self.ticket = tickets[0] if tickets else None

    def run(self, hooks: Sequence[Any], should_stop: Callable[[], bool] | None, budget: Budget) -> MethodResult:
        c, arch, splits = self.resolved.config, self.resolved.arch, self.resolved.splits
        if self.ticket is None:
            gen = torch.Generator().manual_seed(c.campaign.seed)
            candidates = []
            for _ in range(c.magnitude_oneshot.candidates):
                t = initTicket(ensure_creator(), arch, 1.0, rng=gen, init=c.model.init)
                t.masks = {
                    k: keep_largest(t.theta0[k].abs(), torch.ones_like(m), kept_count(c.ticket.density, m.numel()))
                    for k, m in t.masks.items()
                }
                candidates.append(t)
            theta0, masks = stack_tickets(candidates, splits.device)
            params = {k: v * masks[k] if k in masks else v for k, v in theta0.items()}
            acc, loss = evaluate_params(arch, params, splits.x_val, splits.y_val)
            best = int(acc.argmax())
            self.ticket = candidates[best]
            self.ticket.uid, self.ticket.operators = 0, ("magnitude_oneshot",)
            meter = Meter.zeros(1)
            spent = {k: int(getattr(meter, k)[0]) for k in records.SPENT_KEYS}
            fields = evaluation_fields(acc[best], loss[best], acc[best], loss[best], False, spent)
            self.ticket.fitness.values = fitness_of(acc[best], loss[best], False)
            self.ticket.eval_record = individual_record(self.ticket, 0, {**fields, "candidates": len(candidates)})
            report_generation(0, [self.ticket], [self.ticket], hooks=hooks)
        info = {"magnitude_oneshot": {"candidates": c.magnitude_oneshot.candidates}}
        return MethodResult(self.ticket, [self.ticket], dict.fromkeys(records.SPENT_KEYS, 0), info)


class MagnitudeOneShot(Method):
    """One-shot magnitude pruning at initialisation, the best of ``magnitude_oneshot.candidates`` draws."""

    name = section = "magnitude_oneshot"
    unit, units = "draw", "draws"

    def prepare(self, resolved: Any) -> OneShotRun:
        return OneShotRun(resolved)

    def subtitle(self, config: Any) -> str:
        return f"one-shot magnitude pruning, best of {config.magnitude_oneshot.candidates}"

    def summary_lines(self, summary: dict[str, Any]) -> list[str]:
        return [f"magnitude_oneshot: the best of {summary['magnitude_oneshot']['candidates']} pruned initialisations"]


# ----------------------------------------------------------------------------- the tests


@pytest.fixture
def oneshot():
    method = register_method(MagnitudeOneShot(), section=OneShotConfig)  # the one registry line
    yield method
    unregister_method("magnitude_oneshot")


TINY = [
    "method=magnitude_oneshot",
    "magnitude_oneshot.candidates=3",
    "model.hidden=[16]",
    "ticket.density=0.3",
    "optimizer.batch_size=50",
    "campaign.final_steps=20",
    "campaign.final_eval_every=10",
    "campaign.final_seeds=1",
    "campaign.progress=false",
    "campaign.device=cpu",
    "campaign.plots=png",
]


def test_a_method_from_one_file_runs_through_the_whole_harness(oneshot, tmp_path):
    config = CampaignConfig().with_overrides(TINY)
    assert config.method == "magnitude_oneshot" and config.magnitude_oneshot.candidates == 3
    result = run_campaign(config, name="mine", runs_dir=tmp_path / "runs", plots_dir=tmp_path / "plots")
    run_dir = result.run_dir
    # its records: one line, built by the one builder, in the schema every method writes
    (line,) = records.read_individuals(run_dir)
    assert set(records.INDIVIDUAL_FIELDS) - {"rung"} <= set(line) and line["operators"] == ["magnitude_oneshot"]
    assert abs(line["density_total"] - 0.3) < 0.01 and line["candidates"] == 3
    assert [g["generation"] for g in records.read_generations(run_dir)] == [0]
    # the final comparison with every control, and the method's own words
    summary = json.loads(paths.summary(run_dir).read_text())
    assert set(summary["controls"]) == {"ticket", "dense", "random", "reinit", "dense_scratch", "random_scratch"}
    assert summary["report"]["unit"] == "draw" and summary["report"]["population"] is False
    assert summary["report"]["lines"] == ["magnitude_oneshot: the best of 3 pruned initialisations"]
    assert summary["theta0"]["kind"] == "init" and summary["method"] == "magnitude_oneshot"
    assert "magnitude_oneshot: the best of 3" in json.dumps(summary)
    # its config section is written with the run, and read back by resume
    assert "[magnitude_oneshot]" in paths.config(run_dir).read_text()
    # the figures: its own title, and no population figure
    written = {p.stem for p in plot_run(run_dir, tmp_path / "again", formats=("png",))}
    assert "fitness" in written and not written & {"lineage", "operators", "diversity", "lineage_fitness"}
    assert json.loads(paths.method_report(run_dir).read_text())["subtitle"] == "one-shot magnitude pruning, best of 3"
    # a finished run says what the method can do next
    with pytest.raises(Exception, match="method 'magnitude_oneshot' has nothing more to run"):
        resume_campaign(run_dir, plots_dir=tmp_path / "plots")


def test_its_section_is_refused_under_another_method_and_without_registration(oneshot, tmp_path):
    with pytest.raises(ConfigError, match=r"^magnitude_oneshot.candidates: a setting of method 'magnitude_oneshot'"):
        from evoticket.methods import resolve_run

        resolve_run(CampaignConfig().with_overrides(["method=dense", "magnitude_oneshot.candidates=4"]))
    unregister_method("magnitude_oneshot")
    assert "magnitude_oneshot" not in METHODS
    with pytest.raises(ConfigError, match=r"^magnitude_oneshot: unknown section"):
        CampaignConfig().with_overrides(["magnitude_oneshot.candidates=4"])
    register_method(MagnitudeOneShot(), section=OneShotConfig)
    with pytest.raises(ValueError, match="built in"):
        unregister_method("ga")
