"""What every method shares: its budget, its result, and the interface the campaign drives.

A method finds tickets. It takes the resolved configuration (data on the device, the sized
architecture), a compute budget and the campaign's hooks, and returns its tickets plus what it
spent. The campaign does the rest for every method alike: run directory, records, checkpoints,
the final comparison with the lottery-ticket controls, summary and plot.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from evoticket.genome import Ticket, kept_count
from evoticket.models import Architecture
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
    """

    best: Ticket
    tickets: list[Ticket]
    spent: dict[str, int] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    front: list[Ticket] | None = None


Hook = Callable[[int, list, Any], None]
"""``(generation, population, record) -> None``, called after every generation or round."""


class MethodRun(ABC):
    """One method's run in progress: what a checkpoint captures and how it continues.

    Attributes:
        resolved: the resolved configuration.
        generation: last completed generation (or round); -1 before the first.
    """

    resolved: Resolved
    total_generations: int
    """The last generation (or round) the run plans to reach, for the progress bar and resume checks."""
    final_training: bool = False
    """Whether one final training of the reported ticket (``campaign.final_steps``, in the final
    comparison) counts against a budget: the GA's; other methods train their network themselves."""

    @property
    @abstractmethod
    def generation(self) -> int:
        """Last completed generation (or round); -1 before the first."""

    @abstractmethod
    def snapshot(self, state: Any | None = None) -> dict[str, Any]:
        """Everything a checkpoint needs to continue the run exactly (plain data and tensors)."""

    @abstractmethod
    def restore(self, snapshot: dict[str, Any]) -> None:
        """Continue from a :meth:`snapshot`; random-generator states included."""

    @abstractmethod
    def run(self, hooks: Sequence[Hook], should_stop: Callable[[], bool] | None, budget: Budget) -> MethodResult:
        """Run to the end (or the budget), calling ``hooks`` after every generation.

        Raises:
            Interrupted: when ``should_stop`` asked for it, after the generation's hooks.
        """

    def check_resume(self, generation: int, run_dir: Any) -> None:  # noqa: B027 - an optional hook
        """Refuse (``ConfigError``) to continue from a checkpoint after ``generation`` with these settings."""

    def seconds(self) -> dict[str, float]:
        """Seconds spent since the last call: ``finetune_seconds`` and ``evaluation_seconds``."""
        return {"finetune_seconds": 0.0, "evaluation_seconds": 0.0}

    @property
    def evaluated(self) -> int:
        """Individuals (or networks) evaluated so far."""
        return 0


class Method(ABC):
    """A way of finding tickets, registered in :data:`evoticket.methods.METHODS`.

    Attributes:
        name: the value of the top-level ``method`` key.
        section: the configuration section holding its own settings, or ``None``.
        sections: every method section it reads (default: ``section``); a setting in a method
            section the chosen method does not read is refused.
        citation: where it comes from (arXiv ids).
    """

    name: str
    section: str | None = None
    citation: str = ""

    @property
    def sections(self) -> tuple[str, ...]:
        """The method sections it reads."""
        return () if self.section is None else (self.section,)

    def configure(self, config: Any) -> Any:
        """The configuration the method runs with (e.g. ``supermask_ga`` sets ``finetune.steps = 0``); raise ``ConfigError`` for a setting it cannot honour."""
        return config

    def check(self, resolved: Resolved) -> None:  # noqa: B027 - an optional hook
        """Checks of the method's own settings against the data and model (raise ``ConfigError``)."""

    @abstractmethod
    def prepare(self, resolved: Resolved) -> MethodRun:
        """A fresh run of the method, before its first generation."""
