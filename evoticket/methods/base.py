"""What every method shares: its budget, its result, and the interface the campaign drives.

A method finds tickets. It takes the resolved configuration (data on the device, the sized
architecture), a compute budget and the campaign's hooks, and returns its tickets plus what it
spent. The campaign does the rest for every method alike: run directory, records, checkpoints,
the final comparison with the lottery-ticket controls, summary and plot.

Everything that differs between methods is asked of the method, never decided by its name outside
``methods/``: its own checks (:meth:`Method.check`), how it spends an experiment's budget
(:meth:`Method.budget_overrides`), what its figures and summary call things (:meth:`Method.report`),
what its reported ticket's theta0 is (:attr:`MethodResult.theta0`), its checkpoint state
(:meth:`MethodRun.snapshot`, opaque to the campaign) and whether a finished run can be extended
(:meth:`Method.extend_hint`). A new method is one module, one line in :data:`evoticket.methods.METHODS`
(or :func:`evoticket.methods.register_method`) and one configuration section.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from evoticket.core.errors import ConfigError
from evoticket.genome import Ticket, kept_count
from evoticket.models import Architecture
from evoticket.records import Hook
from evoticket.resolve import Resolved
from evoticket.training import train_flops_per_example


@dataclass(frozen=True)
class Budget:
    """How much a method may spend; ``None`` leaves a limit to the method's own settings.

    Attributes:
        train_flops: training FLOPs (:mod:`evoticket.training.meter`), summed over everything the
            method trains before and during the final training of the network it reports, or ``None``.
    """

    train_flops: int | None = None


def kept_weights(arch: Architecture, densities: dict[str, float]) -> dict[str, int]:
    """Weight name -> kept weights at per-layer ``densities`` (as :func:`evoticket.genome.kept_count` draws them)."""
    return {spec.weight: kept_count(densities[spec.weight], math.prod(spec.weight_shape)) for spec in arch.layers}


def training_flops(arch: Architecture, kept: dict[str, int], steps: int, batch: int, scope: str = "kept") -> int:
    """Training FLOPs of ``steps`` steps of ``batch`` examples at fixed kept counts, as the meter counts them."""
    return int(steps) * int(batch) * int(train_flops_per_example(arch, kept, scope))


THETA0_KINDS = ("init", "rewound", "trained")
"""What a reported ticket's theta0 is: an initialisation (a lottery ticket in the paper's sense), the weights
of an early training step (late rewinding, Frankle et al. 2019, arXiv:1903.01611), or trained weights (a
Lamarckian lineage's)."""


@dataclass
class MethodResult:
    """What a method returns.

    Attributes:
        best: the ticket it reports (trained in the final comparison with the controls).
        tickets: every ticket it keeps (e.g. the hall of fame), best first.
        spent: ``train_steps``, ``train_flops`` and ``eval_flops`` summed over the search.
        info: method-specific entries for ``summary.json``.
        front: a multi-objective search's final Pareto front (by increasing density), trained after the search
            (``pareto_final.csv``); ``None`` otherwise.
        theta0: what the reported ticket's theta0 is, one of :data:`THETA0_KINDS`.
        theta0_text: the same in words, for the final comparison's table (e.g. "its lineage's trained weights").
    """

    best: Ticket
    tickets: list[Ticket]
    spent: dict[str, int] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    front: list[Ticket] | None = None
    theta0: str = "init"
    theta0_text: str = "an initialisation"


class MethodRun(ABC):
    """One method's run in progress: what a checkpoint captures and how it continues.

    Attributes:
        resolved: the resolved configuration.
        total_generations: the last generation (or round) the run plans to reach, for the progress bar.
        final_training: whether one final training of the reported ticket (``campaign.final_steps``, in the
            final comparison) counts against a budget: the GA's; other methods train their network themselves.
    """

    resolved: Resolved
    total_generations: int
    final_training: bool = False

    @property
    @abstractmethod
    def generation(self) -> int:
        """Last completed generation (IMP: round; a one-run method: 0 once trained); -1 before the first."""

    @abstractmethod
    def snapshot(self) -> dict[str, Any]:
        """The method's own state, everything needed to continue the run exactly (plain data and tensors;
        tickets through :mod:`evoticket.genome.snapshot`, its own generators' states). The campaign stores it
        in the checkpoint beside what every run has, without reading it."""

    @abstractmethod
    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`snapshot` (the global generators are restored by the campaign)."""

    @abstractmethod
    def run(self, hooks: Sequence[Hook], should_stop: Callable[[], bool] | None, budget: Budget) -> MethodResult:
        """Run to the end (or the budget), calling ``hooks`` after every generation.

        Raises:
            Interrupted: when ``should_stop`` asked for it, after the generation's hooks.
        """

    def check_resume(self, generation: int, run_dir: Any) -> None:  # noqa: B027 - an optional hook
        """Refuse (``ConfigError``) to continue from a checkpoint after ``generation`` with these settings."""

    def seconds(self) -> dict[str, float]:
        """Seconds spent since the last call: ``finetune_seconds`` (training) and ``evaluation_seconds``."""
        return {"finetune_seconds": 0.0, "evaluation_seconds": 0.0}

    @property
    def evaluated(self) -> int:
        """Individuals (or networks) evaluated so far (all sessions; the campaign sets it from its checkpoint)."""
        return getattr(self, "_evaluated", 0)

    @evaluated.setter
    def evaluated(self, n: int) -> None:
        """Set the count (a resumed run starts from its checkpoint's)."""
        self._evaluated = int(n)


class Method(ABC):
    """A way of finding tickets, registered in :data:`evoticket.methods.METHODS`.

    Attributes:
        name: the value of the top-level ``method`` key.
        section: the configuration section holding its own settings, or ``None``.
        sections: every method section it reads (default: ``section``); a setting in a method
            section the chosen method does not read is refused.
        citation: where it comes from (arXiv ids).
        unit, units: what one record row of ``generations.csv`` is (``generation``, ``round``, ``run``), singular
            and plural, for figures and messages.
        population: its records hold a population per generation (the lineage, operators and diversity figures
            apply).
        hybrid: an evolution-plus-gradient method the experiment's tables compare with the baselines.
        baseline: a baseline the experiment's tables pair the hybrids with (IMP, RigL, dense).
        settings: the dataclass of its configuration section, for a method a plugin declares (an entry point of
            ``evoticket.methods``); ``None`` for the built-in ones, whose sections are built in.
    """

    name: str
    section: str | None = None
    settings: type | None = None
    citation: str = ""
    unit: str = "generation"
    units: str = "generations"
    population: bool = False
    hybrid: bool = False
    baseline: bool = False

    @property
    def sections(self) -> tuple[str, ...]:
        """The method sections it reads."""
        return () if self.section is None else (self.section,)

    def configure(self, config: Any) -> Any:
        """The configuration the method runs with (e.g. ``supermask_ga`` sets ``finetune.steps = 0``); raise ``ConfigError`` for a setting it cannot honour."""
        return config

    def check(self, resolved: Resolved) -> None:  # noqa: B027 - an optional hook
        """Checks of the method's own settings against the data, the model and the machine (raise ``ConfigError``),
        run before anything is written."""

    def kept_tickets(self, config: Any) -> tuple[int, str]:
        """The most tickets its result can keep (:attr:`MethodResult.tickets`, e.g. a hall of fame), and what sets
        that number, in words: the bound of ``campaign.ensemble`` (checked by :func:`check_ensemble`). Default
        ``(1, "its one ticket")``."""
        return 1, "its one ticket"

    @abstractmethod
    def prepare(self, resolved: Resolved) -> MethodRun:
        """A fresh run of the method, before its first generation."""

    def budget_overrides(self, config: Any, multiple: float) -> dict[str, Any]:
        """How the method spends a budget of ``multiple`` times IMP's training FLOPs (an experiment's cell):
        settings to change besides ``budget.train_flops`` (nested plain data; default none: the budget
        alone decides, e.g. a one-run method trains longer)."""
        return {}

    def report(self, config: Any, summary: dict[str, Any] | None = None) -> dict[str, Any]:
        """What the method's figures and summary call things: ``method``, ``unit``, ``units``, ``population``,
        ``subtitle`` (the second line of its figures' titles, e.g. "RigL, update every 100 steps, 1500 steps")
        and ``density`` (e.g. "density 0.1"). Written to ``method.json`` when the run is created and, with the
        finished run's ``summary`` (e.g. the density IMP reached), to ``summary.json["report"]``, where the plots
        read it."""
        return {
            "method": self.name,
            "unit": self.unit,
            "units": self.units,
            "population": self.population,
            "subtitle": self.subtitle(config),
            "density": f"density {config.ticket.density:g}",
        }

    def subtitle(self, config: Any) -> str:
        """The method and its main settings in a few words, for figure titles."""
        return self.name

    def summary_lines(self, summary: dict[str, Any]) -> list[str]:
        """What the method says of its finished run, in its own words (units, counts, its own result), from the
        run's ``summary.json`` content; printed after the final comparison and kept in
        ``summary.json["report"]["lines"]``."""
        return []

    def extend_hint(self, run_dir: Any) -> str:
        """What to do with a finished run that ``evoticket resume`` was asked to continue unchanged."""
        return f"method {self.name!r} has nothing more to run"


def check_ensemble(method: Method, config: Any) -> None:
    """``campaign.ensemble`` asks no more tickets than the method can keep (:meth:`Method.kept_tickets`).

    Raises:
        ConfigError: ``campaign.ensemble: must be <= N, the tickets method 'NAME' keeps (WHAT), got M``.
    """
    asked = config.campaign.ensemble
    most, what = method.kept_tickets(config)
    if asked > most:
        raise ConfigError(
            f"campaign.ensemble: must be <= {most}, the tickets method {method.name!r} keeps ({what}), got {asked}"
        )


__all__ = [
    "THETA0_KINDS",
    "Budget",
    "Method",
    "MethodResult",
    "MethodRun",
    "check_ensemble",
    "kept_weights",
    "training_flops",
]
