"""The (mu + lambda) loop: variation, one batched evaluation per generation, survival, hooks.

:func:`evolve` is evoticket's own loop: (mu + lambda) with parents from ``toolbox.select_parents``
(tournament selection by default), survivors chosen by ``toolbox.select`` (the survivor scheme
``ga.survival``, DEAP's meaning of ``select`` in its (mu + lambda) algorithms; elitist tournament by
default), statistics in a DEAP ``Logbook`` and a ``HallOfFame``, and hooks ``(generation, population,
record) -> None`` called after every generation through :func:`evoticket.records.report_generation`
(records, progress bar and checkpoints are hooks; the loop itself never changes per experiment). Where a
generation's new individuals come from is the toolbox's too: ``toolbox.offspring(population, n)`` when
registered (e.g. ``random_search`` draws fresh tickets), else :func:`vary` (selection, crossover, mutation). What
evaluation does to individuals (uids, records, Lamarckian write-back) is the population evaluator's
(:mod:`evoticket.evolution.population`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from deap import base, tools

from evoticket.config import CampaignConfig
from evoticket.core.errors import DivergedError, Interrupted
from evoticket.genome import Ticket, same_uid
from evoticket.records import Hook, make_statistics, report_generation


@dataclass
class EvolutionState:
    """Where the loop stands: enough to continue it (see :mod:`evoticket.campaign.checkpoint`).

    Attributes:
        generation: last completed generation; -1 before the initial population.
        population: the current population (``None`` before generation 0).
        logbook: DEAP logbook, one row per completed generation.
        hall_of_fame: DEAP hall of fame.
    """

    generation: int
    population: list[Ticket] | None
    logbook: tools.Logbook
    hall_of_fame: tools.HallOfFame

    @classmethod
    def initial(cls, config: CampaignConfig, population: list[Ticket] | None = None) -> EvolutionState:
        """The state before generation 0."""
        logbook = tools.Logbook()
        logbook.header = ["gen", "nevals", "fitness", "before", "density"]
        return cls(-1, population, logbook, tools.HallOfFame(config.ga.hall_of_fame, similar=same_uid))


def vary(population: Sequence[Ticket], toolbox: base.Toolbox, lambda_: int, cxpb: float, mutpb: float) -> list[Ticket]:
    """Make ``lambda_`` offspring from selected parents.

    Parents are drawn in pairs with ``toolbox.select_parents``; a pair is crossed over
    with probability ``cxpb``; each child is then mutated with probability
    ``mutpb``, and always when crossover did not touch it, so that no offspring
    is a plain copy. Fitness is invalidated, as ``deap.algorithms.varOr`` does.
    Randomness: Python's ``random`` (selection, coin flips) and the operators'
    torch generator.
    """
    offspring: list[Ticket] = []
    while len(offspring) < lambda_:
        p1, p2 = toolbox.select_parents(population, 2)
        c1, c2 = toolbox.clone(p1), toolbox.clone(p2)
        if random.random() < cxpb:
            toolbox.mate(c1, c2)
        for child in (c1, c2):
            if child.pending_clone or random.random() < mutpb:
                toolbox.mutate(child)
            del child.fitness.values
        offspring.extend((c1, c2))
    return offspring[:lambda_]


def draw_fresh(population: Sequence[Ticket], n: int, *, toolbox: base.Toolbox) -> list[Ticket]:
    """``n`` new individuals drawn as the initial population is (``toolbox.population(n=n)``), no parents.

    A source of offspring for ``toolbox.offspring`` (random search: ``toolbox.register("offspring", draw_fresh,
    toolbox=toolbox)``): the population is ignored, so selection and variation play no part. Randomness: the
    toolbox's initialiser (the operators' generator, and ``finetune.genes``' draws).

    Args:
        population: the current population (unused).
        n: how many to draw, >= 0.
        toolbox: its ``population`` makes them (theta0, masks, and genes when ``finetune.genes`` is set).

    Returns:
        ``n`` individuals with no uid, no parents and invalid fitness.
    """
    return list(toolbox.population(n=n))


def evaluate_invalid(individuals: Sequence[Ticket], toolbox: base.Toolbox) -> list[Ticket]:
    """Evaluate the individuals with invalid fitness in one ``toolbox.map`` call.

    An individual listed twice (the same object) is evaluated once.
    """
    invalid = list({id(ind): ind for ind in individuals if not ind.fitness.valid}.values())
    for ind, fit in zip(invalid, toolbox.map(toolbox.evaluate, invalid), strict=True):
        ind.fitness.values = fit
    return invalid


def _check_diverged(generation: int, evaluated: Sequence[Ticket], config: CampaignConfig) -> None:
    if evaluated and all("nonfinite" in (ind.eval_record or {}).get("flags", ()) for ind in evaluated):
        opt = config.optimizer
        raise DivergedError(
            f"generation {generation}: the fine-tuning of all {len(evaluated)} individuals diverged "
            f"(non-finite loss or weights); optimizer.lr = {opt.lr} ({opt.optimizer}) is likely too high: "
            f"start a new run with a lower optimizer.lr (the checkpoint of generation {generation - 1} is kept)"
        )


def evolve(
    toolbox: base.Toolbox,
    config: CampaignConfig,
    *,
    population: list[Ticket] | None = None,
    hooks: Sequence[Hook] = (),
    state: EvolutionState | None = None,
    should_stop: Callable[[], bool] | None = None,
    proceed: Callable[[int], bool] | None = None,
) -> tuple[list[Ticket], tools.Logbook, tools.HallOfFame]:
    """Run the (mu + lambda) genetic algorithm of ``config.ga``.

    Generation 0 evaluates the initial population (``ga.population``
    individuals). Each later generation makes ``ga.num_offspring`` offspring with
    ``toolbox.offspring(population, ga.num_offspring)`` when the toolbox registers it (a list of new
    individuals with invalid fitness; ``random_search`` registers fresh draws), else with
    :func:`vary` (``ga.cxpb``, ``ga.mutpb``), evaluates them in one batch (with ``ga.reevaluate``, the
    parents are fine-tuned again in the same batch, so everyone competes under
    the same minibatch sequence), and keeps ``ga.population`` survivors out of
    parents + offspring with ``toolbox.select`` (the survivor scheme; by default the
    ``ga.elitism`` best, then tournament winners for the rest).

    Args:
        toolbox: from :func:`make_toolbox`.
        config: the campaign configuration.
        population: initial population; default ``toolbox.population(n=ga.population)``.
        hooks: called as ``hook(generation, population, record)`` after each generation.
        state: continue from this state (e.g. a checkpoint) instead of starting afresh.
        should_stop: polled after each generation's hooks; when it returns
            True the loop raises :class:`evoticket.core.errors.Interrupted`.
        proceed: polled with the next generation's number before each generation after the
            first; False ends the loop there (a compute budget), as if ``ga.generations`` were reached.

    Returns:
        ``(population, logbook, hall_of_fame)``.

    Raises:
        DivergedError: if every individual evaluated in a generation diverged
            (its hooks are not called, so no record of it is written).
        Interrupted: if ``should_stop`` asked for it.
    """
    ga = config.ga
    stats = make_statistics()
    state = state or EvolutionState.initial(config, population)
    evaluator = toolbox.evaluator
    for gen in range(state.generation + 1, ga.generations + 1):
        if gen > 0 and proceed is not None and not proceed(gen):
            break
        start, ft_start = time.perf_counter(), evaluator.seconds
        evaluator.generation = gen
        pop = state.population
        variation = 0.0
        if gen > 0:
            make_offspring = getattr(toolbox, "offspring", None)
            if make_offspring is not None:  # the toolbox's own source of new individuals
                offspring = list(make_offspring(pop, ga.num_offspring))
            else:
                offspring = vary(pop, toolbox, ga.num_offspring, ga.cxpb, ga.mutpb)
            if ga.reevaluate:
                for ind in pop:
                    del ind.fitness.values
            variation = time.perf_counter() - start
            evaluated = evaluate_invalid(pop + offspring, toolbox)
            select_start = time.perf_counter()
            pop = toolbox.select(pop + offspring, ga.population)
            variation += time.perf_counter() - select_start
        else:
            pop = pop if pop is not None else toolbox.population(n=ga.population)
            variation = time.perf_counter() - start
            evaluated = evaluate_invalid(pop, toolbox)
        _check_diverged(gen, evaluated, config)
        state.generation, state.population = gen, pop
        front = hypervolume = None
        objectives = getattr(toolbox, "objectives", None)
        if objectives is not None and objectives.multi:
            _, front, hypervolume = objectives.describe(gen, pop)
        report_generation(
            gen,
            pop,
            evaluated,
            hooks=hooks,
            hall_of_fame=state.hall_of_fame,
            logbook=state.logbook,
            statistics=stats,
            seconds=time.perf_counter() - start,
            finetune_seconds=evaluator.seconds - ft_start,
            variation_seconds=variation,
            state=state,
            front=front,
            hypervolume=hypervolume,
        )
        if should_stop is not None and should_stop() and gen < ga.generations and (proceed is None or proceed(gen + 1)):
            raise Interrupted("", gen)
    return state.population, state.logbook, state.hall_of_fame


__all__ = ["EvolutionState", "draw_fresh", "evaluate_invalid", "evolve", "vary"]
