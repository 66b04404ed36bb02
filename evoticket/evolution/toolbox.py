"""The DEAP toolbox of a campaign, whose ``map`` batches a whole generation's evaluation.

:func:`make_toolbox` returns a DEAP toolbox whose ``map`` hands the whole list of individuals to
evaluate to one batched fine-tuning, so DEAP's own algorithms work unchanged:

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
from evoticket.evolution.objectives import Objectives, objective_weights
from evoticket.genome import LEARNED_KINDS, Ticket, UidCounter, ensure_creator, ticket_densities
from evoticket.operators import (
    CROSSOVER_DEFAULTS,
    CROSSOVERS,
    LEARNED_NEEDED,
    MUTATION_DEFAULTS,
    MUTATIONS,
    PARENT_SELECTION,
    SURVIVORS,
    initTicket,
)
from evoticket.operators.recipe import Seeded, SeededInit
from evoticket.resolve import Resolved, resolve


def _mutate(individual: Ticket, operators: Sequence[Callable]) -> tuple[Ticket]:
    for op in operators:
        op(individual)
    return (individual,)


def operator_kwargs(config: CampaignConfig, name: str) -> dict[str, Any]:
    """An operator's keyword arguments: its defaults updated by ``ga.operator_args``."""
    defaults = {**MUTATION_DEFAULTS, **CROSSOVER_DEFAULTS}[name]
    return {**defaults, **config.ga.operator_args.get(name, {})}


def operator_learned(name: str, kwargs: dict[str, Any]) -> str:
    """What operator ``name`` with ``kwargs`` needs an evaluation to return (``"none"`` for most)."""
    return LEARNED_NEEDED[name](kwargs) if name in LEARNED_NEEDED else "none"


def initial_densities(config: CampaignConfig, n: int) -> list[float]:
    """Total densities of an initial population of ``n``: ``ticket.density`` for all, or with
    ``ticket.density_range = [low, high]`` spaced geometrically from low to high (both included for n >= 2)."""
    t = config.ticket
    if not t.density_range:
        return [t.density] * n
    low, high = t.density_range
    if n == 1:
        return [float((low * high) ** 0.5)]
    return [float(low * (high / low) ** (i / (n - 1))) for i in range(n)]


def _population(n: int, individual: Callable[..., Ticket], config: CampaignConfig, arch: Any) -> list[Ticket]:
    """``toolbox.population(n)``: ``n`` individuals, at the densities of :func:`initial_densities`."""
    t = config.ticket
    if not t.density_range:
        return [individual() for _ in range(n)]
    return [
        individual(density=d, layer_densities=ticket_densities(arch, d, t.allocation, {}))
        for d in initial_densities(config, n)
    ]


def learned_needed(config: CampaignConfig) -> str:
    """What the run's evaluations must return for its operators: ``"none"``, ``"magnitudes"`` or ``"gradients"``."""
    kinds = {"none"}
    for name in (*config.ga.mutations, config.ga.crossover):
        kinds.add(operator_learned(name, operator_kwargs(config, name)))
    return max(kinds, key=LEARNED_KINDS.index)


def make_toolbox(
    config: CampaignConfig,
    *,
    splits: Splits | None = None,
    counter: UidCounter | None = None,
    rng: torch.Generator | None = None,
    resolved: Resolved | None = None,
    fitness_weights: Sequence[float] | None = None,
) -> base.Toolbox:
    """A DEAP toolbox that evolves tickets with batched fine-tuning.

    Registered: ``individual``, ``population`` (``toolbox.population(n)``; at the densities of
    ``ticket.density_range`` when set), ``clone`` (cheap, copy on write), ``mate`` (``ga.crossover``), ``mutate``
    (every operator of ``ga.mutations`` in turn), ``select`` (parents: ``selTournament``
    with ``ga.tournament_size``, or the survivor scheme's own, :data:`evoticket.operators.PARENT_SELECTION`),
    ``survive`` (``ga.survival``, choosing mu of parents + offspring), ``evaluate`` (a
    :class:`evoticket.evolution.loop.PopulationEvaluator`, returning the learned traits the
    operators need, with ``ga.halving_rungs`` and ``ga.fitness_cache``) and ``map``
    (:func:`evoticket.evolution.loop.batched_map`). Also set as attributes:
    ``arch``, ``splits`` (on the device), ``evaluator``, ``backend``,
    ``counter``, ``rng`` (the operators' torch generator), ``objectives``
    (:class:`evoticket.evolution.objectives.Objectives` of ``ga.objectives``) and ``fitness_weights``.

    With ``ga.seeded`` (the default) the initialiser and every operator are :class:`evoticket.operators.recipe.Seeded`:
    each call runs on a generator seeded by a draw from ``rng`` and is recorded in the individual's ``recipe``.

    Args:
        config: the campaign configuration.
        splits: data to use; default loads ``config.data`` and moves it to
            ``campaign.device`` once.
        counter: uid counter; default starts at 0.
        rng: generator of the operators; default seeded from ``campaign.seed``.
        resolved: the configuration already resolved (:func:`evoticket.resolve.resolve`);
            default resolves it here.
        fitness_weights: DEAP fitness weights of this run's individuals (default: those of ``ga.objectives``,
            :func:`evoticket.evolution.objectives.objective_weights`: validation accuracy up, validation loss
            down for one objective); the classes are made per weights
            (:func:`evoticket.genome.ensure_creator`), so runs in one process may differ.

    Raises:
        ConfigError, DataError: for a bad device, data set, model or any other check of
            :func:`evoticket.resolve.resolve`.
    """
    resolved = resolved or resolve(config, splits=splits)
    splits, arch = resolved.splits, resolved.arch
    counter = counter or UidCounter()
    rng = rng or torch.Generator().manual_seed(derive_seed(config.campaign.seed, "operators"))
    objectives = Objectives(config.ga.objectives, arch)
    fitness_weights = tuple(fitness_weights) if fitness_weights is not None else objective_weights(objectives.names)
    individual_cls = ensure_creator(fitness_weights)
    t = config.ticket
    densities = ticket_densities(arch, t.density, t.allocation, dict(t.layer_densities))
    seeded = config.ga.seeded

    def operator(registry: dict[str, Callable], name: str) -> Callable:
        kwargs = operator_kwargs(config, name)
        if not seeded:
            return functools.partial(registry[name], rng=rng, **kwargs)
        return Seeded(name, registry[name], kwargs, rng, replayable=operator_learned(name, kwargs) == "none")

    toolbox = base.Toolbox()
    init_kwargs = {"init": config.model.init, "layer_densities": densities}
    if seeded:
        toolbox.register("individual", SeededInit(individual_cls, arch, t.density, init_kwargs, rng))
    else:

        def individual(density: float | None = None, layer_densities: dict | None = None) -> Ticket:
            kwargs = {**init_kwargs, **({} if layer_densities is None else {"layer_densities": layer_densities})}
            return initTicket(individual_cls, arch, t.density if density is None else density, rng=rng, **kwargs)

        toolbox.register("individual", individual)
    toolbox.register("population", _population, individual=toolbox.individual, config=config, arch=arch)
    toolbox.register("clone", Ticket.clone)
    toolbox.register("mate", operator(CROSSOVERS, config.ga.crossover))
    mutations = [operator(MUTATIONS, name) for name in config.ga.mutations]
    toolbox.register("mutate", _mutate, operators=mutations)
    toolbox.register(
        "select", PARENT_SELECTION.get(config.ga.survival, tools.selTournament), tournsize=config.ga.tournament_size
    )
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
        objectives=objectives,
    )
    toolbox.register("evaluate", evaluator)
    toolbox.register("map", batched_map)
    toolbox.arch, toolbox.splits, toolbox.evaluator, toolbox.backend = arch, splits, evaluator, backend
    toolbox.counter, toolbox.rng, toolbox.fitness_weights = counter, rng, tuple(fitness_weights)
    toolbox.objectives = objectives
    return toolbox
