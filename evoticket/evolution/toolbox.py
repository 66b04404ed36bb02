"""The DEAP toolbox of a campaign, whose ``map`` batches a whole generation's evaluation.

:func:`make_toolbox` returns a DEAP toolbox whose ``map`` hands the whole list of individuals to
evaluate to one batched fine-tuning, so DEAP's own algorithms work unchanged::

    from deap import algorithms
    import evoticket

    toolbox = evoticket.make_toolbox(evoticket.CampaignConfig())
    pop = toolbox.population(n=16)
    pop, log = algorithms.eaSimple(pop, toolbox, cxpb=0.5, mutpb=0.5, ngen=3)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from deap import base, tools

from evoticket.config import CampaignConfig
from evoticket.core.seeds import derive_seed
from evoticket.data import Splits
from evoticket.evolution.backends import make_backend
from evoticket.evolution.loop import PopulationEvaluator, batched_map
from evoticket.genome import FITNESS_WEIGHTS, LEARNED_KINDS, Ticket, UidCounter, ensure_creator, ticket_densities
from evoticket.operators import (
    CROSSOVER_DEFAULTS,
    CROSSOVERS,
    LEARNED_NEEDED,
    MUTATION_DEFAULTS,
    MUTATIONS,
    SURVIVORS,
    initTicket,
)
from evoticket.resolve import Resolved, resolve


def _mutate(individual: Ticket, operators: Sequence[Callable]) -> tuple[Ticket]:
    for op in operators:
        op(individual)
    return (individual,)


def operator_kwargs(config: CampaignConfig, name: str) -> dict[str, Any]:
    """An operator's keyword arguments: its defaults updated by ``ga.operator_args``."""
    defaults = {**MUTATION_DEFAULTS, **CROSSOVER_DEFAULTS}[name]
    return {**defaults, **config.ga.operator_args.get(name, {})}


def learned_needed(config: CampaignConfig) -> str:
    """What the run's evaluations must return for its operators: ``"none"``, ``"magnitudes"`` or ``"gradients"``."""
    kinds = {"none"}
    for name in (*config.ga.mutations, config.ga.crossover):
        if name in LEARNED_NEEDED:
            kinds.add(LEARNED_NEEDED[name](operator_kwargs(config, name)))
    return max(kinds, key=LEARNED_KINDS.index)


def make_toolbox(
    config: CampaignConfig,
    *,
    splits: Splits | None = None,
    counter: UidCounter | None = None,
    rng: torch.Generator | None = None,
    resolved: Resolved | None = None,
    fitness_weights: Sequence[float] = FITNESS_WEIGHTS,
) -> base.Toolbox:
    """A DEAP toolbox that evolves tickets with batched fine-tuning.

    Registered: ``individual``, ``population`` (``toolbox.population(n)``),
    ``clone`` (cheap, copy on write), ``mate`` (``ga.crossover``), ``mutate``
    (every operator of ``ga.mutations`` in turn), ``select`` (``selTournament``
    with ``ga.tournament_size``, for parents), ``survive`` (``ga.survival``,
    choosing mu of parents + offspring), ``evaluate`` (a
    :class:`~evoticket.evolution.loop.PopulationEvaluator`, returning the learned traits the
    operators need, with ``ga.halving_rungs`` and ``ga.fitness_cache``) and ``map``
    (:func:`~evoticket.evolution.loop.batched_map`). Also set as attributes:
    ``arch``, ``splits`` (on the device), ``evaluator``, ``backend``,
    ``counter``, ``rng`` (the operators' torch generator) and
    ``fitness_weights``.

    Args:
        config: the campaign configuration.
        splits: data to use; default loads ``config.data`` and moves it to
            ``campaign.device`` once.
        counter: uid counter; default starts at 0.
        rng: generator of the operators; default seeded from ``campaign.seed``.
        resolved: the configuration already resolved (:func:`evoticket.resolve.resolve`);
            default resolves it here.
        fitness_weights: DEAP fitness weights of this run's individuals (default: validation
            accuracy up, validation loss down); the classes are made per weights
            (:func:`evoticket.genome.ensure_creator`), so runs in one process may differ.

    Raises:
        ConfigError, DataError: for a bad device, data set, model or any other check of
            :func:`evoticket.resolve.resolve`.
    """
    resolved = resolved or resolve(config, splits=splits)
    splits, arch = resolved.splits, resolved.arch
    counter = counter or UidCounter()
    rng = rng or torch.Generator().manual_seed(derive_seed(config.campaign.seed, "operators"))
    individual_cls = ensure_creator(fitness_weights)
    t = config.ticket
    densities = ticket_densities(arch, t.density, t.allocation, dict(t.layer_densities))

    toolbox = base.Toolbox()
    toolbox.register(
        "individual",
        initTicket,
        individual_cls,
        arch,
        config.ticket.density,
        rng=rng,
        init=config.model.init,
        layer_densities=densities,
    )
    toolbox.register("population", tools.initRepeat, list, toolbox.individual)
    toolbox.register("clone", Ticket.clone)
    toolbox.register("mate", CROSSOVERS[config.ga.crossover], rng=rng, **operator_kwargs(config, config.ga.crossover))
    mutations = [
        functools.partial(MUTATIONS[name], rng=rng, **operator_kwargs(config, name)) for name in config.ga.mutations
    ]
    toolbox.register("mutate", _mutate, operators=mutations)
    toolbox.register("select", tools.selTournament, tournsize=config.ga.tournament_size)
    toolbox.register(
        "survive",
        SURVIVORS[config.ga.survival],
        elitism=config.ga.elitism,
        tournsize=config.ga.tournament_size,
    )
    backend = make_backend(config, arch, splits)
    evaluator = PopulationEvaluator(
        backend,
        config.finetune,
        counter,
        learned=learned_needed(config),
        halving_rungs=config.ga.halving_rungs,
        cache=config.ga.fitness_cache,
    )
    toolbox.register("evaluate", evaluator)
    toolbox.register("map", batched_map)
    toolbox.arch, toolbox.splits, toolbox.evaluator, toolbox.backend = arch, splits, evaluator, backend
    toolbox.counter, toolbox.rng, toolbox.fitness_weights = counter, rng, tuple(fitness_weights)
    return toolbox
