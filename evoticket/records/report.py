"""What a method reports, one home for every method: an evaluated individual's record and each generation's report.

Every method of :data:`evoticket.methods.METHODS` reports the same way. An evaluated individual (a GA
individual, an IMP round's ticket, a one-run method's network) becomes one ``individuals.jsonl`` line
built by :func:`individual_record` from the fields :func:`evaluation_fields` makes of what training
measured, with the diverged convention in one place (:data:`WORST_FITNESS`, :func:`fitness_of`). A
generation (an IMP round, a one-run method's single run) becomes one :class:`GenerationRecord`, built
and handed to the hooks by :func:`report_generation`, which also updates the hall of fame and the
logbook. Hooks ``(generation, population, record) -> None`` write the records, checkpoints and the
progress bar; evoticket's loop never changes per experiment (OpenLTH keeps its loop closed the same way).

This stage sits just above the configuration: it knows tickets only by the attributes it reads
(``uid``, ``parents``, ``operators``, ``density()``, ``total_density()``, ``fitness``, ``eval_record``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from deap import tools

from evoticket.records.schema import SPENT_KEYS

WORST_FITNESS = (0.0, float("inf"))
"""Fitness of an individual whose training diverged (accuracy 0, infinite loss)."""


@dataclass(kw_only=True)
class GenerationRecord:
    """What one generation (an IMP round, a one-run method's run) produced, handed to every hook.

    Attributes:
        generation: 0 for the initial population (IMP: the round; a one-run method: 0).
        population: the individuals the generation's statistics describe (the population after it).
        evaluated: the individuals evaluated in this generation (each has ``eval_record``).
        stats: the logbook row (``gen``, ``nevals`` and the statistics of :func:`make_statistics`).
        seconds: wall time of the generation (s).
        finetune_seconds: of which training and evaluation (s).
        variation_seconds: of which variation and selection (s).
        spent: the generation's compute, summed over the evaluated individuals: ``train_steps``
            (optimizer steps), ``train_flops`` and ``eval_flops`` (FLOPs, :mod:`evoticket.training.meter`).
        state: what a checkpoint after this generation captures (the method's own; ``None`` when the
            method's run object is checkpointed as it is).
        front: multi-objective runs: the population's Pareto front, one ``pareto.csv`` row per member;
            ``None`` otherwise.
        hypervolume: multi-objective runs: the front's hypervolume, in [0, 1]; ``None`` otherwise.
    """

    generation: int
    population: list
    evaluated: list
    stats: dict[str, Any]
    seconds: float = 0.0
    finetune_seconds: float = 0.0
    variation_seconds: float = 0.0
    spent: dict[str, int] = field(default_factory=dict)
    state: Any = None
    front: list[dict[str, Any]] | None = None
    hypervolume: float | None = None


Hook = Callable[[int, list, GenerationRecord], None]
"""``(generation, population, record) -> None``, called after every generation (IMP: round)."""


def make_statistics() -> tools.MultiStatistics:
    """DEAP statistics of a population: validation accuracy after (``fitness``) and before (``before``)
    training, and total density (``density``), each with ``max``, ``avg``, ``min`` and ``std``."""
    stats = tools.MultiStatistics(
        fitness=tools.Statistics(lambda ind: ind.fitness.values[0]),
        before=tools.Statistics(lambda ind: (ind.eval_record or {}).get("val_acc_before") or 0.0),
        density=tools.Statistics(lambda ind: ind.total_density()),
    )
    for name, fn in (("max", np.max), ("avg", np.mean), ("min", np.min), ("std", np.std)):
        stats.register(name, lambda xs, fn=fn: float(fn(xs)))
    return stats


def _finite(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def evaluation_fields(
    val_acc_before: float,
    val_loss_before: float,
    val_acc: float,
    val_loss: float,
    nonfinite: bool,
    spent: Mapping[str, int],
) -> dict[str, Any]:
    """The record fields of one evaluation, with the diverged convention applied.

    Args:
        val_acc_before, val_loss_before: validation accuracy in [0, 1] and loss (nats) before training
            (step 0); a non-finite value is recorded as ``None``.
        val_acc, val_loss: the same after training (or at the early-stopping step).
        nonfinite: the training diverged (a non-finite loss or weight): recorded as accuracy 0.0, loss
            ``None`` and the flag ``"nonfinite"``.
        spent: ``train_steps`` (optimizer steps), ``train_flops`` and ``eval_flops`` (FLOPs).

    Returns:
        ``val_acc_before``, ``val_loss_before``, ``val_acc``, ``val_loss``, ``flags`` and the compute keys.
    """
    bad = bool(nonfinite)
    return {
        "val_acc_before": _finite(val_acc_before),
        "val_loss_before": _finite(val_loss_before),
        "val_acc": 0.0 if bad else float(val_acc),
        "val_loss": None if bad else float(val_loss),
        "flags": ["nonfinite"] if bad else [],
        **{k: int(spent[k]) for k in SPENT_KEYS},
    }


def fitness_of(val_acc: float, val_loss: float, nonfinite: bool) -> tuple[float, float]:
    """``(val_acc, val_loss)``, or :data:`WORST_FITNESS` for a diverged individual."""
    return WORST_FITNESS if nonfinite else (float(val_acc), float(val_loss))


def individual_record(
    ticket: Any,
    generation: int,
    fields: Mapping[str, Any],
    *,
    reevaluated: bool = False,
    recipe: Any = None,
) -> dict[str, Any]:
    """One ``individuals.jsonl`` line (:data:`evoticket.records.INDIVIDUAL_FIELDS`): the one builder every method uses.

    Args:
        ticket: the evaluated ticket (its ``uid``, ``parents``, ``operators`` and densities are written).
        generation: the generation (IMP: round) it was evaluated in.
        fields: what the evaluation measured (:func:`evaluation_fields`, plus a method's own fields such as
            ``rung``, ``test_acc``, ``best_step``, ``controls`` or ``curve``).
        reevaluated: a surviving parent evaluated again.
        recipe: how seeded operators made it (:mod:`evoticket.operators.recipe`), ``None`` when it cannot be replayed.
    """
    record = {
        "uid": ticket.uid,
        "generation": int(generation),
        "parents": list(ticket.parents),
        "operators": list(ticket.operators),
        "density": ticket.density(),
        "density_total": ticket.total_density(),
        **fields,
        "reevaluated": bool(reevaluated),
        "recipe": recipe,
    }
    genes = getattr(ticket, "genes", None)
    if genes:  # the hyperparameters it was trained with (finetune.genes)
        record["genes"] = {k: float(v) for k, v in genes.items()}
    return record


def generation_spent(evaluated: Sequence[Any]) -> dict[str, int]:
    """The compute of a generation: each of :data:`SPENT_KEYS` summed over the evaluated individuals' records."""
    return {k: sum(int((ind.eval_record or {}).get(k) or 0) for ind in evaluated) for k in SPENT_KEYS}


def report_generation(
    generation: int,
    population: Sequence[Any],
    evaluated: Sequence[Any],
    *,
    hooks: Sequence[Hook] = (),
    hall_of_fame: tools.HallOfFame | None = None,
    logbook: tools.Logbook | None = None,
    statistics: tools.MultiStatistics | None = None,
    seconds: float = 0.0,
    finetune_seconds: float = 0.0,
    variation_seconds: float = 0.0,
    state: Any = None,
    front: list[dict[str, Any]] | None = None,
    hypervolume: float | None = None,
) -> GenerationRecord:
    """The end of a generation, for every method: hall of fame, logbook, the :class:`GenerationRecord`, the hooks.

    Args:
        generation: the generation (IMP: round) just completed.
        population: the individuals after it (the statistics describe them; the hall of fame is updated with them).
        evaluated: the individuals evaluated in it, each with its ``eval_record``.
        hooks: called in order as ``hook(generation, population, record)``.
        hall_of_fame: updated with ``population`` when given.
        logbook: the statistics row is recorded in it when given.
        statistics: default :func:`make_statistics`.
        seconds, finetune_seconds, variation_seconds: wall times (s), see :class:`GenerationRecord`.
        state, front, hypervolume: see :class:`GenerationRecord`.

    Returns:
        The record the hooks were given.
    """
    population, evaluated = list(population), list(evaluated)
    if hall_of_fame is not None:
        hall_of_fame.update(population)
    row = {"gen": generation, "nevals": len(evaluated), **(statistics or make_statistics()).compile(population)}
    if logbook is not None:
        logbook.record(**row)
    record = GenerationRecord(
        generation=generation,
        population=population,
        evaluated=evaluated,
        stats=row,
        seconds=seconds,
        finetune_seconds=finetune_seconds,
        variation_seconds=variation_seconds,
        spent=generation_spent(evaluated),
        state=state,
        front=front,
        hypervolume=hypervolume,
    )
    for hook in hooks:
        hook(generation, population, record)
    return record


__all__ = [
    "WORST_FITNESS",
    "GenerationRecord",
    "Hook",
    "evaluation_fields",
    "fitness_of",
    "generation_spent",
    "individual_record",
    "make_statistics",
    "report_generation",
]
