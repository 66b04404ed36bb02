"""The DEAP toolbox of a campaign, whose ``map`` batches a whole generation's evaluation.

:func:`make_toolbox` returns a DEAP toolbox whose ``map`` hands the whole list of individuals to
evaluate to one batched fine-tuning, so DEAP's own algorithms work unchanged:

    from deap import algorithms
    import evoticket

    toolbox = evoticket.make_toolbox(evoticket.CampaignConfig())
    pop = toolbox.population(n=16)
    pop, log = algorithms.eaMuPlusLambda(pop, toolbox, mu=16, lambda_=16, cxpb=0.5, mutpb=0.5, ngen=3)

``toolbox.select`` is the survivor scheme (``ga.survival``), as DEAP's (mu + lambda) algorithms read it:
``eaMuPlusLambda`` and ``eaMuCommaLambda`` then keep ``ga.survival`` and ``ga.elitism``. ``eaSimple`` uses
``select`` to choose the mating pool of the next generation from the evaluated population (with the default
scheme: the ``ga.elitism`` best, then tournament winners), and replaces the population with its offspring.
Parents of evoticket's own loop come from ``toolbox.select_parents``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from deap import base

from evoticket.config import CampaignConfig
from evoticket.core.errors import ConfigError, unknown_name
from evoticket.core.seeds import derive_seed
from evoticket.data import Splits
from evoticket.evolution.backends import make_backend
from evoticket.evolution.objectives import Objectives, objective_weights
from evoticket.evolution.population import PopulationEvaluator, batched_map
from evoticket.genome import LEARNED_KINDS, Ticket, UidCounter, ensure_creator, ticket_densities
from evoticket.models import Architecture
from evoticket.operators import CROSSOVERS, MUTATIONS, OPERATORS, SURVIVORS, draw_genes, initTicket, mutInTurn
from evoticket.operators.recipe import Seeded, SeededInit
from evoticket.operators.registry import load_operator_plugin
from evoticket.resolve import MemoryNeed, Resolved, check_memory, resolve, ticket_bytes


def operator_kwargs(config: CampaignConfig, name: str) -> dict[str, Any]:
    """An operator's keyword arguments: its registry entry's defaults updated by ``ga.operator_args``."""
    return OPERATORS[name].arguments(config.ga.operator_args.get(name, {}))


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
        kinds.add(OPERATORS[name].needed(operator_kwargs(config, name)))
    return max(kinds, key=LEARNED_KINDS.index)


def check_operators(config: CampaignConfig) -> None:
    """The GA's registry names and operator arguments: ``ga.crossover``, ``ga.mutations``, ``ga.survival`` and
    ``ga.operator_args`` (each operator's own arguments and ranges, from its registry entry).

    Raises:
        ConfigError: naming the key, with the valid names or range.
    """
    check_finetune(config)
    ga = config.ga
    if ga.crossover not in CROSSOVERS:
        raise ConfigError("ga.crossover: " + unknown_name("crossover", ga.crossover, CROSSOVERS))
    for op in ga.mutations:
        if op not in MUTATIONS:
            raise ConfigError("ga.mutations: " + unknown_name("mutation", op, MUTATIONS))
    if ga.survival not in SURVIVORS:
        raise ConfigError("ga.survival: " + unknown_name("survivor scheme", ga.survival, SURVIVORS))
    variation = {k: v for k, v in OPERATORS.items() if v.kind != "init"}
    for op, args in ga.operator_args.items():
        if op not in variation and load_operator_plugin(op) is not None:
            variation = {k: v for k, v in OPERATORS.items() if v.kind != "init"}
        if op not in variation:
            raise ConfigError("ga.operator_args: " + unknown_name("operator", op, variation))
        variation[op].check_arguments(args)


def check_finetune(config: CampaignConfig) -> None:
    """Dynamic sparse fine-tuning and genes fit together: updates fall inside a fine-tuning, no rewinding with a
    changing mask, the ``alpha`` gene only with ``finetune.dynamic``, an inherited optimizer state only with the
    final weights of Lamarckian mode.

    Raises:
        ConfigError: naming the key and what would be valid.
    """
    f = config.finetune
    if f.dynamic != "none":
        if f.steps and f.delta_t >= f.steps:
            raise ConfigError(
                f"finetune.delta_t: with finetune.dynamic = {f.dynamic!r} an update must fall inside a fine-tuning of "
                f"finetune.steps = {f.steps} steps; must be < {f.steps}, got {f.delta_t}"
            )
        if f.inherit_step:
            raise ConfigError(
                f"finetune.inherit_step: the mask changes during dynamic fine-tuning (finetune.dynamic = "
                f"{f.dynamic!r}), so only the final weights can be inherited; must be 0, got {f.inherit_step}"
            )
    elif "alpha" in f.genes:
        raise ConfigError(
            "finetune.genes: the 'alpha' gene is the drop-and-grow fraction of dynamic fine-tuning; set "
            "finetune.dynamic = 'rigl' or 'set', or drop 'alpha'"
        )
    if f.optimizer_state == "inherit":
        if f.mode != "lamarckian":
            raise ConfigError(
                "finetune.optimizer_state: 'inherit' carries the optimizer state with the fine-tuned weights, which "
                f"only Lamarckian mode keeps; set finetune.mode = 'lamarckian' or optimizer_state = 'reset', got mode "
                f"{f.mode!r}"
            )
        if f.inherit_step:
            raise ConfigError(
                "finetune.inherit_step: with finetune.optimizer_state = 'inherit' the state reached at the end of a "
                f"fine-tuning is inherited, so the weights must be the final ones too; must be 0, got {f.inherit_step}"
            )


def memory_needs(config: CampaignConfig, arch: Architecture, n_train: int) -> dict[str, MemoryNeed]:
    """What the GA holds (:func:`evoticket.resolve.check_memory`): ``ga.population`` tickets and the hall of fame,
    ``ga.offspring`` tickets, and the int64 minibatch indices of a fine-tuning's ``finetune.steps`` steps."""
    ga = config.ga
    ticket = ticket_bytes(arch)
    batch = min(config.optimizer.batch_size, n_train)
    return {
        "ga.population": ((ga.population + ga.hall_of_fame) * ticket, ticket, ga.hall_of_fame),
        "ga.offspring": (ga.num_offspring * ticket, ticket, 0),
        "finetune.steps": (config.finetune.steps * batch * 8, batch * 8, 0),
    }


def check_toolbox(config: CampaignConfig, arch: Architecture, n_train: int, available: int | None = None) -> None:
    """The GA's own checks, before anything runs: :func:`check_operators`, and that its population, offspring, hall
    of fame and fine-tuning plan fit in memory (:func:`evoticket.resolve.check_memory` with :func:`memory_needs`).

    Args:
        config: the configuration.
        arch: the architecture of the tickets.
        n_train: training examples.
        available: memory to check against (bytes); default this machine's.

    Raises:
        ConfigError: naming the key and what would be valid.
    """
    check_operators(config)
    check_memory(config, arch, n_train, available, needs=memory_needs(config, arch, n_train))


def _with_genes(toolbox: base.Toolbox, config: CampaignConfig, rng: torch.Generator) -> None:
    """Re-register ``toolbox.individual`` so that each new individual draws ``finetune.genes`` from ``rng``
    (:func:`evoticket.operators.draw_genes`)."""
    made = toolbox.individual
    f = config.finetune

    def individual(*args: Any, **kwargs: Any) -> Ticket:
        ind = made(*args, **kwargs)
        ind.genes = draw_genes(f.genes, rng, lr_range=f.lr_range, alpha_range=f.alpha_range)
        return ind

    toolbox.register("individual", individual)


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

    Registered: ``individual`` (with ``finetune.genes``: carrying hyperparameter genes drawn from ``rng``),
    ``population`` (``toolbox.population(n)``; at the densities of
    ``ticket.density_range`` when set), ``clone`` (cheap, copy on write), ``mate`` (``ga.crossover``), ``mutate``
    (every operator of ``ga.mutations`` in turn), ``select`` (the survivor scheme ``ga.survival``, choosing mu of
    parents + offspring: DEAP's meaning in ``eaMuPlusLambda`` and ``eaMuCommaLambda``), ``select_parents`` (the
    scheme's parent selection, :data:`evoticket.operators.SURVIVORS`: ``selTournament`` with ``ga.tournament_size``,
    or NSGA-II's crowded tournament), ``evaluate`` (a :class:`evoticket.evolution.population.PopulationEvaluator`,
    returning the learned traits the toolbox's ``mutate`` and ``mate`` need, read from their registry entries
    at every batch, so re-registering ``mutate`` needs nothing else; with ``ga.halving_rungs`` and
    ``ga.fitness_cache``) and ``map`` (:func:`evoticket.evolution.population.batched_map`). Also set as attributes:
    ``arch``, ``splits`` (on the device), ``evaluator``, ``backend``,
    ``counter``, ``rng`` (the operators' torch generator), ``objectives``
    (:class:`evoticket.evolution.objectives.Objectives` of ``ga.objectives``) and ``fitness_weights``.

    Not registered: ``offspring``, the source of each later generation's new individuals in
    :func:`evoticket.evolution.evolve`, which then varies selected parents (:func:`evoticket.evolution.vary`);
    register one to draw them otherwise (``random_search``: :func:`evoticket.evolution.draw_fresh`).

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
            :func:`evoticket.resolve.resolve`, or of :func:`check_toolbox` (operators, survivor scheme, memory).
    """
    resolved = resolved or resolve(config, splits=splits)
    splits, arch = resolved.splits, resolved.arch
    check_toolbox(config, arch, splits.x_train.shape[0])
    counter = counter or UidCounter()
    rng = rng or torch.Generator().manual_seed(derive_seed(config.campaign.seed, "operators"))
    objectives = Objectives(config.ga.objectives, arch)
    fitness_weights = tuple(fitness_weights) if fitness_weights is not None else objective_weights(objectives.names)
    individual_cls = ensure_creator(fitness_weights)
    t = config.ticket
    densities = ticket_densities(arch, t.density, t.allocation, dict(t.layer_densities))
    seeded = config.ga.seeded

    def operator(name: str) -> Callable:
        kwargs = operator_kwargs(config, name)
        if not seeded:
            return functools.partial(OPERATORS[name].func, rng=rng, **kwargs)
        return Seeded(name, OPERATORS[name].func, kwargs, rng, replayable=OPERATORS[name].needed(kwargs) == "none")

    toolbox = base.Toolbox()
    init_kwargs = {"init": config.model.init, "layer_densities": densities}
    if t.placement != "random":  # only then: the recipes of random starts keep their arguments
        init_kwargs["placement"] = t.placement
    if seeded:
        toolbox.register("individual", SeededInit(individual_cls, arch, t.density, init_kwargs, rng))
    else:

        def individual(density: float | None = None, layer_densities: dict | None = None) -> Ticket:
            kwargs = {**init_kwargs, **({} if layer_densities is None else {"layer_densities": layer_densities})}
            return initTicket(individual_cls, arch, t.density if density is None else density, rng=rng, **kwargs)

        toolbox.register("individual", individual)
    if config.finetune.genes:  # population-based training: each initial individual draws its hyperparameters
        _with_genes(toolbox, config, rng)
    toolbox.register("population", _population, individual=toolbox.individual, config=config, arch=arch)
    toolbox.register("clone", Ticket.clone)
    toolbox.register("mate", operator(config.ga.crossover))
    mutations = [operator(name) for name in config.ga.mutations]
    toolbox.register("mutate", mutInTurn, operators=mutations)
    scheme = SURVIVORS[config.ga.survival]
    toolbox.register("select", scheme.select, elitism=config.ga.elitism, tournsize=config.ga.tournament_size)
    toolbox.register("select_parents", scheme.select_parents, tournsize=config.ga.tournament_size)
    backend = make_backend(config, arch, splits)
    evaluator = PopulationEvaluator(
        backend,
        config.finetune,
        counter,
        optimizer=config.optimizer,
        halving_rungs=config.ga.halving_rungs,
        cache=config.ga.fitness_cache,
        objectives=objectives,
    )
    evaluator.toolbox = toolbox
    toolbox.register("evaluate", evaluator)
    toolbox.register("map", batched_map)
    toolbox.arch, toolbox.splits, toolbox.evaluator, toolbox.backend = arch, splits, evaluator, backend
    toolbox.counter, toolbox.rng, toolbox.fitness_weights = counter, rng, tuple(fitness_weights)
    toolbox.objectives = objectives
    return toolbox
