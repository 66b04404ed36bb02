"""DEAP toolbox, population-batched evaluation and the (mu + lambda) loop.

:func:`make_toolbox` returns a DEAP toolbox whose ``map`` hands the whole list
of individuals to evaluate to one batched fine-tuning
(:func:`evoticket.finetune.finetune_tickets`), so DEAP's own algorithms work
unchanged::

    from deap import algorithms
    import evoticket

    toolbox = evoticket.make_toolbox(evoticket.CampaignConfig())
    pop = toolbox.population(n=16)
    pop, log = algorithms.eaSimple(pop, toolbox, cxpb=0.5, mutpb=0.5, ngen=3)

:func:`evolve` is evoticket's own loop: (mu + lambda) with tournament
selection and elitism, statistics in a DEAP ``Logbook`` and a ``HallOfFame``,
and hooks ``(generation, population, record) -> None`` called after every
generation (records, progress bar and checkpoints are hooks; the loop itself
never changes per experiment).

Lamarckian and Baldwinian evolution: Hinton & Nowlan 1987; Castillo et al.
2006, arXiv:cs/0603004. Supermask search (``finetune.steps = 0``): Zhou et al.
2019, arXiv:1905.01067.
"""

from __future__ import annotations

import functools
import os
import random
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from deap import base, tools

from evoticket.config import CampaignConfig, FinetuneConfig
from evoticket.data import Splits, load_dataset
from evoticket.errors import ConfigError
from evoticket.faults import kill_point
from evoticket.finetune import finetune_tickets, resolve_device
from evoticket.genome import Ticket, UidCounter, ensure_creator
from evoticket.models import Architecture, build_architecture
from evoticket.operators import CROSSOVER_DEFAULTS, CROSSOVERS, MUTATION_DEFAULTS, MUTATIONS, initTicket

WORST_FITNESS = (0.0, float("inf"))
"""Fitness of an individual whose fine-tuning diverged (accuracy 0, infinite loss)."""


def derive_seed(seed: int, *keys: int | str) -> int:
    """A 32-bit seed derived from a root seed and keys, stable across runs and platforms.

    Args:
        seed: root seed (``campaign.seed``), >= 0.
        keys: what the seed is for, e.g. ``("finetune", generation)``.
    """
    ints = [zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in keys]
    return int(np.random.SeedSequence([int(seed), *ints]).generate_state(1)[0])


class PopulationEvaluator:
    """Fitness of tickets: validation accuracy after a short batched fine-tuning.

    Call :meth:`evaluate_batch` with every individual of a generation (the
    toolbox's ``map`` does): they are fine-tuned together on one minibatch
    sequence drawn from ``derive_seed(seed, "finetune", generation)``, given
    uids, and each gets ``eval_record`` (the line written to
    ``individuals.jsonl``). In ``lamarckian`` mode the fine-tuned weights
    (kept positions) and biases become the individual's theta0.

    Args:
        arch: the architecture of every ticket.
        splits: the data, on the device where fine-tuning runs.
        cfg: fine-tuning settings.
        seed: ``campaign.seed``.
        counter: hands out uids.

    Attributes:
        generation: generation of the next batch; advanced after each batch.
        seconds: wall time spent fine-tuning and evaluating so far (s).
        evaluated: individuals evaluated so far.
    """

    def __init__(self, arch: Architecture, splits: Splits, cfg: FinetuneConfig, seed: int, counter: UidCounter) -> None:
        self.arch = arch
        self.splits = splits
        self.cfg = cfg
        self.seed = seed
        self.counter = counter
        self.generation = 0
        self.seconds = 0.0
        self.train_seconds = 0.0
        self.eval_seconds = 0.0
        self.evaluated = 0

    def __call__(self, individual: Ticket) -> tuple[float, float]:
        """Evaluate one individual (a batch of one) without advancing the generation."""
        generation = self.generation
        fitness = self.evaluate_batch([individual])[0]
        self.generation = generation
        return fitness

    def evaluate_batch(self, individuals: Sequence[Ticket]) -> list[tuple[float, float]]:
        """Fine-tune and evaluate individuals together.

        Returns:
            One fitness ``(val_acc, val_loss)`` per individual, in order;
            :data:`WORST_FITNESS` for one whose loss or weights became non-finite.
        """
        individuals = list(individuals)
        if not individuals:
            return []
        start = time.perf_counter()
        lamarckian = self.cfg.mode == "lamarckian" and self.cfg.steps > 0
        result = finetune_tickets(
            individuals,
            self.arch,
            self.splits,
            self.cfg,
            derive_seed(self.seed, "finetune", self.generation),
            return_weights=lamarckian,
        )
        kill_point("finetune")
        self.train_seconds += result.train_seconds
        self.eval_seconds += result.eval_seconds
        reevaluated = [ind.uid is not None for ind in individuals]
        self.counter.assign(individuals)
        fitnesses = []
        for i, ind in enumerate(individuals):
            bad = bool(result.nonfinite[i])
            density = ind.density()
            ind.eval_record = {
                "uid": ind.uid,
                "generation": self.generation,
                "parents": list(ind.parents),
                "operators": list(ind.operators),
                "density": density,
                "density_total": ind.total_density(),
                "val_acc_before": _finite(result.val_acc_before[i]),
                "val_loss_before": _finite(result.val_loss_before[i]),
                "val_acc": 0.0 if bad else float(result.val_acc[i]),
                "val_loss": None if bad else float(result.val_loss[i]),
                "flags": ["nonfinite"] if bad else [],
                "reevaluated": reevaluated[i],
            }
            fitnesses.append(WORST_FITNESS if bad else (float(result.val_acc[i]), float(result.val_loss[i])))
            if lamarckian and not bad:
                _inherit(ind, {k: w[i] for k, w in result.weights.items()})
        self.generation += 1
        self.seconds += time.perf_counter() - start
        self.evaluated += len(individuals)
        return fitnesses


def _finite(x: torch.Tensor) -> float | None:
    value = float(x)
    return value if np.isfinite(value) else None


def _inherit(ind: Ticket, weights: dict[str, torch.Tensor]) -> None:
    """Lamarckian write-back: fine-tuned kept weights and biases become theta0."""
    for name, w in weights.items():
        if name in ind.masks:
            ind.theta0[name] = torch.where(ind.masks[name], w, ind.theta0[name])
        else:
            ind.theta0[name] = w.clone()


def batched_map(func: Callable, *iterables: Iterable) -> list:
    """``toolbox.map`` that batches evaluation.

    When ``func`` is a :class:`PopulationEvaluator` (or a ``functools.partial``
    of one without bound arguments, as ``toolbox.register`` makes), all items
    are evaluated in one batch; any other function is mapped as the builtin
    ``map`` would.
    """
    target = func
    if isinstance(func, functools.partial) and not func.args and not func.keywords:
        target = func.func
    if isinstance(target, PopulationEvaluator) and len(iterables) == 1:
        return target.evaluate_batch(list(iterables[0]))
    return list(map(func, *iterables))


def _mutate(individual: Ticket, operators: Sequence[Callable]) -> tuple[Ticket]:
    for op in operators:
        op(individual)
    return (individual,)


def operator_kwargs(config: CampaignConfig, name: str) -> dict[str, Any]:
    """An operator's keyword arguments: its defaults updated by ``ga.operator_args``."""
    defaults = {**MUTATION_DEFAULTS, **CROSSOVER_DEFAULTS}[name]
    return {**defaults, **config.ga.operator_args.get(name, {})}


def make_toolbox(
    config: CampaignConfig,
    *,
    splits: Splits | None = None,
    counter: UidCounter | None = None,
    rng: torch.Generator | None = None,
) -> base.Toolbox:
    """A DEAP toolbox that evolves tickets with batched fine-tuning.

    Registered: ``individual``, ``population`` (``toolbox.population(n)``),
    ``clone`` (cheap, copy on write), ``mate`` (``ga.crossover``), ``mutate``
    (every operator of ``ga.mutations`` in turn), ``select`` (``selTournament``
    with ``ga.tournament_size``), ``evaluate`` (a :class:`PopulationEvaluator`)
    and ``map`` (:func:`batched_map`). Also set as attributes: ``arch``,
    ``splits`` (on the device), ``evaluator``, ``counter`` and ``rng`` (the
    operators' torch generator).

    Args:
        config: the campaign configuration.
        splits: data to use; default loads ``config.data`` and moves it to
            ``campaign.device`` once.
        counter: uid counter; default starts at 0.
        rng: generator of the operators; default seeded from ``campaign.seed``.

    Raises:
        ConfigError, DataError: for a bad device, data set or model.
    """
    if splits is None:
        device = resolve_device(config.campaign.device)
        splits = load_dataset(
            config.data.name,
            root=config.data.root or None,
            val_fraction=config.data.val_fraction,
            seed=config.data.seed,
        ).to(device)
    arch = build_architecture(config.model.name, splits.input_shape, splits.num_classes, config.model.hidden)
    _check_layer_densities(config, arch)
    check_memory(config, arch, splits.x_train.shape[0])
    counter = counter or UidCounter()
    rng = rng or torch.Generator().manual_seed(derive_seed(config.campaign.seed, "operators"))
    individual_cls = ensure_creator()

    toolbox = base.Toolbox()
    toolbox.register(
        "individual",
        initTicket,
        individual_cls,
        arch,
        config.ticket.density,
        rng=rng,
        init=config.model.init,
        layer_densities=config.ticket.layer_densities or None,
    )
    toolbox.register("population", tools.initRepeat, list, toolbox.individual)
    toolbox.register("clone", Ticket.clone)
    toolbox.register("mate", CROSSOVERS[config.ga.crossover], rng=rng, **operator_kwargs(config, config.ga.crossover))
    mutations = [
        functools.partial(MUTATIONS[name], rng=rng, **operator_kwargs(config, name)) for name in config.ga.mutations
    ]
    toolbox.register("mutate", _mutate, operators=mutations)
    toolbox.register("select", tools.selTournament, tournsize=config.ga.tournament_size)
    evaluator = PopulationEvaluator(arch, splits, config.finetune, config.campaign.seed, counter)
    toolbox.register("evaluate", evaluator)
    toolbox.register("map", batched_map)
    toolbox.arch, toolbox.splits, toolbox.evaluator, toolbox.counter, toolbox.rng = (
        arch,
        splits,
        evaluator,
        counter,
        rng,
    )
    return toolbox


def host_memory_bytes() -> int | None:
    """This machine's memory available to the process (bytes): physical memory, or a smaller cgroup
    limit (containers, batch schedulers); ``None`` where neither can be read."""
    limits = []
    try:
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            limits.append(int(text))
    return min(limits) if limits else None


def _gib(n: float) -> str:
    """A byte count in the largest binary unit that keeps it >= 1 (3 significant digits)."""
    for power, unit in ((4, "TiB"), (3, "GiB"), (2, "MiB"), (1, "KiB")):
        if n >= 1024**power:
            return f"{n / 1024**power:.3g} {unit}"
    return f"{int(n)} B"


def check_memory(config: CampaignConfig, arch: Architecture, n_train: int, available: int | None = None) -> None:
    """Refuse, before anything runs, a campaign whose tickets or minibatch plan cannot fit in memory.

    Counted: theta0 (float32) and masks (bool) of ``ga.population + ga.offspring`` tickets and the
    hall of fame, and the int64 minibatch index tensors of ``finetune.steps`` and
    ``campaign.final_steps`` steps. A fine-tuning's working set is bounded separately by
    ``finetune.max_memory_mb``.

    Args:
        config: the campaign configuration.
        arch: the architecture of the tickets.
        n_train: training examples (caps the minibatch size).
        available: memory to check against (bytes); default :func:`host_memory_bytes`.

    Raises:
        ConfigError: naming the key that asks for the most memory, and how much fits.
    """
    available = host_memory_bytes() if available is None else available
    if available is None:
        return
    ga, ft, c = config.ga, config.finetune, config.campaign
    ticket = arch.num_params() * 4 + arch.num_prunable()  # bytes
    batch = min(ft.batch_size, n_train)
    need = {
        "model.hidden": ticket,
        "ga.population": (ga.population + ga.hall_of_fame) * ticket,
        "ga.offspring": ga.offspring * ticket,
        "finetune.steps": ft.steps * batch * 8,
        "campaign.final_steps": c.final_steps * batch * 8,
    }
    total = sum(need.values())
    if total <= available:
        return
    key = max(need, key=need.get)
    if key == "model.hidden" or ticket * 4 > available:
        raise ConfigError(
            f"model.hidden: {list(config.model.hidden) or 'default'} makes a {arch.name} of {arch.num_params():,} "
            f"parameters, {_gib(ticket)} per ticket; this machine has {_gib(available)} for "
            f"{ga.population + ga.offspring} tickets: use smaller layers"
        )
    section, name = key.split(".")
    value = getattr(getattr(config, section), name)
    room = available - (total - need[key])
    unit = ticket if key.startswith("ga.") else batch * 8
    fits = max(0, room // unit - (ga.hall_of_fame if key == "ga.population" else 0))
    raise ConfigError(
        f"{key}: {value} needs about {_gib(need[key])} of memory ({_gib(total)} in all), which this machine's "
        f"{_gib(available)} cannot hold; at most about {fits:,} would fit"
    )


def _check_layer_densities(config: CampaignConfig, arch: Architecture) -> None:
    for name in config.ticket.layer_densities:
        if name not in arch.weight_names:
            raise ConfigError(
                f"ticket.layer_densities.{name}: not a prunable weight of {arch.name!r}; "
                f"valid: {', '.join(arch.weight_names)}"
            )


# ---------------------------------------------------------------------------
# the loop


@dataclass
class EvolutionState:
    """Where the loop stands: enough to continue it (see :mod:`evoticket.checkpoint`).

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
        return cls(-1, population, logbook, tools.HallOfFame(config.ga.hall_of_fame))


@dataclass
class GenerationRecord:
    """What one generation produced, handed to every hook.

    Attributes:
        generation: 0 for the initial population.
        evaluated: the individuals evaluated in this generation (each has ``eval_record``).
        stats: the logbook row (gen, nevals and the statistics).
        seconds: wall time of the generation (s).
        finetune_seconds: of which fine-tuning and evaluation (s).
        variation_seconds: of which variation and selection (s).
        state: the loop's state after this generation (for checkpoints).
    """

    generation: int
    evaluated: list[Ticket]
    stats: dict[str, Any]
    seconds: float
    finetune_seconds: float
    variation_seconds: float
    state: EvolutionState


Hook = Callable[[int, list, GenerationRecord], None]
"""``(generation, population, record) -> None``, called after every generation."""


def make_statistics() -> tools.MultiStatistics:
    """DEAP statistics of a population: validation accuracy after (``fitness``) and
    before (``before``) fine-tuning, and total density (``density``)."""
    stats = tools.MultiStatistics(
        fitness=tools.Statistics(lambda ind: ind.fitness.values[0]),
        before=tools.Statistics(lambda ind: (ind.eval_record or {}).get("val_acc_before") or 0.0),
        density=tools.Statistics(lambda ind: ind.total_density()),
    )
    for name, fn in (("max", np.max), ("avg", np.mean), ("min", np.min), ("std", np.std)):
        stats.register(name, lambda xs, fn=fn: float(fn(xs)))
    return stats


def vary(population: Sequence[Ticket], toolbox: base.Toolbox, lambda_: int, cxpb: float, mutpb: float) -> list[Ticket]:
    """Make ``lambda_`` offspring from tournament-selected parents.

    Parents are drawn in pairs with ``toolbox.select``; a pair is crossed over
    with probability ``cxpb``; each child is then mutated with probability
    ``mutpb``, and always when crossover did not touch it, so that no offspring
    is a plain copy. Fitness is invalidated, as ``deap.algorithms.varOr`` does.
    Randomness: Python's ``random`` (selection, coin flips) and the operators'
    torch generator.
    """
    offspring: list[Ticket] = []
    while len(offspring) < lambda_:
        p1, p2 = toolbox.select(population, 2)
        c1, c2 = toolbox.clone(p1), toolbox.clone(p2)
        if random.random() < cxpb:
            toolbox.mate(c1, c2)
        for child in (c1, c2):
            if child.pending_clone or random.random() < mutpb:
                toolbox.mutate(child)
            del child.fitness.values
        offspring.extend((c1, c2))
    return offspring[:lambda_]


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
        from evoticket.errors import DivergedError

        ft = config.finetune
        raise DivergedError(
            f"generation {generation}: the fine-tuning of all {len(evaluated)} individuals diverged "
            f"(non-finite loss or weights); finetune.lr = {ft.lr} ({ft.optimizer}) is likely too high: "
            f"start a new run with a lower finetune.lr (the checkpoint of generation {generation - 1} is kept)"
        )


def evolve(
    toolbox: base.Toolbox,
    config: CampaignConfig,
    *,
    population: list[Ticket] | None = None,
    hooks: Sequence[Hook] = (),
    state: EvolutionState | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[list[Ticket], tools.Logbook, tools.HallOfFame]:
    """Run the (mu + lambda) genetic algorithm of ``config.ga``.

    Generation 0 evaluates the initial population (``ga.population``
    individuals). Each later generation makes ``ga.offspring`` offspring with
    :func:`vary`, evaluates them in one batch (with ``ga.reevaluate``, the
    parents are fine-tuned again in the same batch, so everyone competes under
    the same minibatch sequence), and keeps ``ga.population`` survivors out of
    parents + offspring: the ``ga.elitism`` best, then tournament winners for
    the rest.

    Args:
        toolbox: from :func:`make_toolbox`.
        config: the campaign configuration.
        population: initial population; default ``toolbox.population(n=ga.population)``.
        hooks: called as ``hook(generation, population, record)`` after each generation.
        state: continue from this state (e.g. a checkpoint) instead of starting afresh.
        should_stop: polled after each generation's hooks; when it returns
            True the loop raises :class:`evoticket.errors.Interrupted`.

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
        start, ft_start = time.perf_counter(), evaluator.seconds
        evaluator.generation = gen
        pop = state.population
        variation = 0.0
        if gen > 0:
            offspring = vary(pop, toolbox, ga.offspring, ga.cxpb, ga.mutpb)
            if ga.reevaluate:
                for ind in pop:
                    del ind.fitness.values
            variation = time.perf_counter() - start
            evaluated = evaluate_invalid(pop + offspring, toolbox)
            select_start = time.perf_counter()
            pool = pop + offspring
            elites = tools.selBest(pool, ga.elitism)
            rest = [ind for ind in pool if all(ind is not e for e in elites)]
            pop = elites + toolbox.select(rest, ga.population - ga.elitism)
            variation += time.perf_counter() - select_start
        else:
            pop = pop if pop is not None else toolbox.population(n=ga.population)
            variation = time.perf_counter() - start
            evaluated = evaluate_invalid(pop, toolbox)
        _check_diverged(gen, evaluated, config)
        state.hall_of_fame.update(pop)
        row = {"gen": gen, "nevals": len(evaluated), **stats.compile(pop)}
        state.logbook.record(**row)
        state.generation, state.population = gen, pop
        record = GenerationRecord(
            gen, evaluated, row, time.perf_counter() - start, evaluator.seconds - ft_start, variation, state
        )
        for hook in hooks:
            hook(gen, pop, record)
        if should_stop is not None and should_stop() and gen < ga.generations:
            from evoticket.errors import Interrupted

            raise Interrupted("", gen)
    return state.population, state.logbook, state.hall_of_fame
