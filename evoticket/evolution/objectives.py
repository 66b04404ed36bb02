"""Multi-objective fitness: accuracy up, density down, optionally FLOPs down; Pareto fronts and their hypervolume.

``ga.objectives = ["accuracy"]`` (the default) keeps the single-objective fitness ``(val_acc, val_loss)``
with weights ``(1, -1)``: the loss only breaks ties. With more objectives the fitness is ``(val_acc,
density[, flops])``, weights ``(1, -1[, -1])``, where density is the fraction of prunable weights kept,
in (0, 1], and flops the masked network's forward FLOPs per example
(:func:`evoticket.training.meter.forward_flops`). Selection is then NSGA-II (Deb et al. 2002,
``ga.survival = "selNSGA2"``), and each generation's Pareto front and its hypervolume are recorded.

Hypervolume: DEAP's indicator (``deap.benchmarks.tools.hypervolume``, computed by ``moocore``) in the
minimisation space ``(-val_acc, density[, flops / dense FLOPs])`` against the reference point ``(0, 1[,
1])``, i.e. the area (volume) of the accuracy-density(-FLOPs) box dominated by the front, in [0, 1]:
1 would be 100% accuracy with nothing kept. A diverged individual counts as accuracy 0 at density 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from deap import tools

from evoticket.genome import FITNESS_WEIGHTS, Ticket
from evoticket.models import Architecture
from evoticket.training.meter import forward_flops

OBJECTIVES = ("accuracy", "density", "flops")
"""The objectives ``ga.objectives`` may name; ``accuracy`` always first."""

OBJECTIVE_WEIGHTS = {"accuracy": 1.0, "density": -1.0, "flops": -1.0}
"""DEAP fitness weight of each objective: accuracy maximised, density and FLOPs minimised."""


def is_multi(objectives: Sequence[str]) -> bool:
    """Whether the fitness is multi-objective (more than accuracy)."""
    return len(tuple(objectives)) > 1


def objective_weights(objectives: Sequence[str]) -> tuple[float, ...]:
    """DEAP fitness weights: ``(1, -1)`` (accuracy, loss tie-break) for ``["accuracy"]``, else one per objective."""
    if not is_multi(objectives):
        return FITNESS_WEIGHTS
    return tuple(OBJECTIVE_WEIGHTS[name] for name in objectives)


def ticket_flops(ticket: Ticket, arch: Architecture) -> int:
    """Forward FLOPs per example of the ticket's masked network (multiply-adds of kept weights, :mod:`evoticket.training.meter`)."""
    kept = {name: int(m.sum()) for name, m in ticket.masks.items()}
    return int(forward_flops(arch, kept))


class Objectives:
    """Turns an evaluation's ``(val_acc, val_loss)`` into the run's fitness.

    Args:
        objectives: ``ga.objectives``, e.g. ``("accuracy", "density")``.
        arch: the architecture (for FLOPs).
    """

    def __init__(self, objectives: Sequence[str], arch: Architecture) -> None:
        unknown = [o for o in objectives if o not in OBJECTIVES]
        if unknown or not objectives or objectives[0] != "accuracy":
            raise ValueError(f"objectives: must be 'accuracy' followed by any of {OBJECTIVES[1:]}, got {objectives}")
        self.names = tuple(objectives)
        self.arch = arch
        self.weights = objective_weights(self.names)
        self.dense_flops = int(forward_flops(arch, {spec.weight: math.prod(spec.weight_shape) for spec in arch.layers}))

    @property
    def multi(self) -> bool:
        """Whether the fitness has more than one objective."""
        return is_multi(self.names)

    def fitness(self, ticket: Ticket, fitness: tuple[float, ...], nonfinite: bool) -> tuple[float, ...]:
        """The fitness values: ``fitness`` itself for one objective; else accuracy, then density and/or FLOPs
        (density 1 and the dense FLOPs for a diverged individual, so it never sits on the front)."""
        if not self.multi:
            return tuple(fitness)
        values: list[float] = [float(fitness[0])]
        for name in self.names[1:]:
            if name == "density":
                values.append(1.0 if nonfinite else float(ticket.total_density()))
            else:
                values.append(float(self.dense_flops if nonfinite else ticket_flops(ticket, self.arch)))
        return tuple(values)

    def front(self, population: Sequence[Ticket]) -> list[Ticket]:
        """The non-dominated individuals of a population (first front of ``deap.tools.sortNondominated``), each
        individual once, by increasing density."""
        unique = list({id(ind): ind for ind in population}.values())
        first = tools.sortNondominated(unique, len(unique), first_front_only=True)[0] if unique else []
        by_uid = {ind.uid: ind for ind in first}  # a parent and its re-evaluated copy are one individual
        return sorted(by_uid.values(), key=lambda ind: (ind.total_density(), -ind.fitness.values[0]))

    def hypervolume(self, front: Sequence[Ticket]) -> float:
        """DEAP's hypervolume indicator of a front, normalised to [0, 1] (see the module docstring)."""
        from deap.benchmarks.tools import hypervolume

        if not front:
            return 0.0
        ref = [0.0] + [1.0 if n == "density" else float(self.dense_flops) for n in self.names[1:]]
        volume = float(hypervolume(list(front), ref=ref))
        return volume / self.dense_flops if "flops" in self.names else volume

    def describe(
        self, generation: int, population: Sequence[Ticket]
    ) -> tuple[list[Ticket], list[dict[str, Any]], float]:
        """A generation's front: ``(members, pareto.csv rows, hypervolume)`` (:meth:`front`, :meth:`rows`,
        :meth:`hypervolume`)."""
        members = self.front(population)
        return members, self.rows(generation, members), self.hypervolume(members)

    def rows(self, generation: int, front: Sequence[Ticket]) -> list[dict[str, Any]]:
        """One ``pareto.csv`` row per front member (:data:`evoticket.records.PARETO_COLUMNS`)."""
        return [
            {
                "generation": generation,
                "uid": ind.uid,
                "val_acc": float(ind.fitness.values[0]),
                "density_total": float(ind.total_density()),
                "flops": ticket_flops(ind, self.arch),
            }
            for ind in front
        ]
