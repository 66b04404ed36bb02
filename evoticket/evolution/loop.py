"""The (mu + lambda) loop: variation, one batched evaluation per generation, survival, hooks.

:func:`evolve` is evoticket's own loop: (mu + lambda) with tournament selection of parents,
survivors chosen by the toolbox's ``survive`` entry (elitist tournament by default), statistics in
a DEAP ``Logbook`` and a ``HallOfFame``, and hooks ``(generation, population, record) -> None``
called after every generation (records, progress bar and checkpoints are hooks; the loop itself
never changes per experiment). The loop owns what evaluation does to individuals: uids,
``eval_record`` and Lamarckian write-back (:func:`apply_results`); the evaluator only returns
results.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from deap import base, tools

from evoticket.config import CampaignConfig, FinetuneConfig
from evoticket.core.faults import kill_point
from evoticket.evolution.backends import Backend
from evoticket.evolution.cache import FitnessCache, content_key, settings_text
from evoticket.evolution.evaluator import EvalResult, minibatch_key
from evoticket.evolution.objectives import Objectives
from evoticket.genome import Ticket, UidCounter, same_uid
from evoticket.training import SPENT_KEYS


def apply_results(
    individuals: Sequence[Ticket],
    results: Sequence[EvalResult],
    counter: UidCounter,
    generation: int,
    *,
    lamarckian: bool = False,
) -> None:
    """The loop's side of an evaluation: uids, records, learned traits and Lamarckian write-back.

    Each individual without a uid gets one (in order); each gets ``eval_record``: uid,
    generation, parents, operators, densities, whether it was evaluated before
    (``reevaluated``), its ``recipe`` (how seeded operators made it, :mod:`evoticket.operators.recipe`;
    ``None`` for a re-evaluated one or one that cannot be replayed), and the evaluator's fields; its
    ``recipe`` then becomes ``{"uid": uid}``; and the learned traits its evaluation returned
    (``ticket.learned``), when it returned some. In Lamarckian mode the fine-tuned kept weights
    (those of ``finetune.inherit_step`` when set) and unmasked parameters become theta0 (not for a
    diverged individual). Fitness is left to the caller (DEAP's ``toolbox.map`` contract).

    Args:
        individuals: the evaluated individuals.
        results: their :class:`evoticket.evolution.evaluator.EvalResult`, in order.
        counter: hands out uids.
        generation: the generation they were evaluated in.
        lamarckian: write the fine-tuned weights back.
    """
    reevaluated = [ind.uid is not None for ind in individuals]
    counter.assign(individuals)
    for ind, res, again in zip(individuals, results, reevaluated, strict=True):
        ind.eval_record = {
            "uid": ind.uid,
            "generation": generation,
            "parents": list(ind.parents),
            "operators": list(ind.operators),
            "density": ind.density(),
            "density_total": ind.total_density(),
            **res.fields,
            "reevaluated": again,
            "recipe": None if again else getattr(ind, "recipe", None),
        }
        ind.recipe = {"uid": ind.uid}
        if res.learned is not None:
            ind.learned = res.learned
        if lamarckian and not res.nonfinite and res.inherited is not None:
            _inherit(ind, res.inherited)


def _inherit(ind: Ticket, weights: dict[str, torch.Tensor]) -> None:
    """Lamarckian write-back: fine-tuned kept weights and biases become theta0."""
    for name, w in weights.items():
        if name in ind.masks:
            ind.theta0[name] = torch.where(ind.masks[name], w, ind.theta0[name])
        else:
            ind.theta0[name] = w.clone()


def _continued(res: EvalResult, more: EvalResult, rung: int) -> EvalResult:
    """One individual's result after a further successive-halving rung: the new fitness, compute summed."""
    fields = dict(more.fields)
    for key in ("val_acc_before", "val_loss_before"):
        fields[key] = res.fields[key]
    for key in SPENT_KEYS:
        fields[key] = int(res.fields.get(key) or 0) + int(more.fields.get(key) or 0)
    fields["rung"] = rung
    return EvalResult(more.fitness, fields, more.weights, more.nonfinite, more.learned or res.learned, res.rewound)


class PopulationEvaluator:
    """The toolbox's ``evaluate``: a generation's evaluation through a backend, then its effects on the individuals.

    Call :meth:`evaluate_batch` with every individual of a generation (the toolbox's ``map``
    does): the backend runs the pure evaluator on them (one batched fine-tuning on the
    generation's minibatch sequence), and :func:`apply_results` gives them uids, their
    ``eval_record`` (the line written to ``individuals.jsonl``), their learned traits and, in
    ``lamarckian`` mode, their fine-tuned weights as theta0.

    Multi-fidelity fitness (``ga.halving_rungs`` > 1): successive halving within the batch, as
    ASHA does (Li et al., arXiv:1810.05934). Every individual gets ``finetune.steps`` steps; at
    rung r the best half of rung r - 1 (by fitness, diverged ones out) continues for ``2**r *
    finetune.steps`` steps from the weights it reached (the optimizer's moments start afresh,
    on rung r's own minibatch sequence). An individual's fitness and ``val_acc`` are those of
    the last rung it reached (``rung`` in its record), its compute the sum over its rungs.

    Fitness cache (``ga.fitness_cache``, Baldwinian only): results are looked up by
    :func:`evoticket.evolution.cache.content_key` before anything is fine-tuned; a hit costs
    no compute, keeps its cached learned traits and is flagged ``cached``.

    Args:
        backend: runs the pure evaluator (:class:`evoticket.evolution.backends.LocalBackend`).
        cfg: fine-tuning settings (``mode`` and ``steps`` decide Lamarckian write-back).
        counter: hands out uids.
        learned: what evaluations return for the operators (``"none"``, ``"magnitudes"``,
            ``"gradients"``; :data:`evoticket.genome.LEARNED_KINDS`).
        halving_rungs: successive-halving rungs per batch (1: none); >= 1.
        cache: use the fitness cache.
        objectives: turns ``(val_acc, val_loss)`` into the run's fitness
            (:class:`evoticket.evolution.objectives.Objectives`); ``None``: ``(val_acc, val_loss)``.

    Attributes:
        generation: generation of the next batch; advanced after each batch.
        seconds: wall time spent fine-tuning and evaluating so far (s).
        train_seconds, eval_seconds: of which optimizer steps and validation passes (s).
        evaluated: individuals evaluated so far.
        cache: the :class:`evoticket.evolution.cache.FitnessCache`, or ``None``.
        listeners: called as ``listener(generation, individuals, fitnesses)`` after each batch (its individuals
            carry their ``eval_record``; fitness is not yet assigned), e.g. a
            :class:`evoticket.campaign.RunRecorder` writing a user's own DEAP loop's records.
    """

    def __init__(
        self,
        backend: Backend,
        cfg: FinetuneConfig,
        counter: UidCounter,
        *,
        learned: str = "none",
        halving_rungs: int = 1,
        cache: bool = False,
        objectives: Objectives | None = None,
    ) -> None:
        self.backend = backend
        self.objectives = objectives
        self.listeners: list[Callable[[int, list[Ticket], list[tuple[float, ...]]], None]] = []
        self.cfg = cfg
        self.counter = counter
        self.learned = learned
        self.halving_rungs = int(halving_rungs)
        self.cache = FitnessCache() if cache else None
        self.generation = 0
        self.seconds = 0.0
        self.train_seconds = 0.0
        self.eval_seconds = 0.0
        self.evaluated = 0

    @property
    def lamarckian(self) -> bool:
        """Whether fine-tuned weights are written back into theta0."""
        return self.cfg.mode == "lamarckian" and self.cfg.steps > 0

    def __call__(self, individual: Ticket) -> tuple[float, ...]:
        """Evaluate one individual (a batch of one) without advancing the generation."""
        generation = self.generation
        fitness = self.evaluate_batch([individual])[0]
        self.generation = generation
        return fitness

    def _run(self, tickets: list[Ticket], *, return_weights: bool, steps: int | None = None, rung: int = 0) -> list:
        batch = self.backend.evaluate(
            tickets, self.generation, return_weights=return_weights, learned=self.learned, steps=steps, rung=rung
        )
        self.train_seconds += batch.train_seconds
        self.eval_seconds += batch.eval_seconds
        return batch.results

    def _evaluate(self, individuals: list[Ticket]) -> list[EvalResult]:
        """Fine-tune the individuals, with successive halving when configured."""
        halving = self.halving_rungs > 1 and self.cfg.steps > 0
        results = self._run(individuals, return_weights=self.lamarckian or halving)
        for res in results:
            res.fields["rung"] = 0
        if not halving:
            return results
        alive = [i for i, r in enumerate(results) if not r.nonfinite]
        for rung in range(1, self.halving_rungs):
            alive.sort(key=lambda i: (results[i].fitness[0], -results[i].fitness[1]), reverse=True)  # (acc, -loss)
            alive = sorted(alive[: len(alive) // 2])
            if not alive:
                break
            tickets = []
            for i in alive:
                ind, weights = individuals[i], results[i].weights
                tickets.append(Ticket(weights, ind.masks, ind.init_scheme, ind.init_std))
            more = self._run(tickets, return_weights=True, steps=self.cfg.steps * 2**rung, rung=rung)
            for i, res in zip(alive, more, strict=True):
                results[i] = _continued(results[i], res, rung)
            alive = [i for i in alive if not results[i].nonfinite]
        return results

    def evaluate_batch(self, individuals: Sequence[Ticket]) -> list[tuple[float, ...]]:
        """Evaluate individuals together and apply the results to them.

        Returns:
            One fitness per individual, in order: ``(val_acc, val_loss)`` (:data:`WORST_FITNESS` for one whose
            loss or weights became non-finite), or the multi-objective values of ``objectives``.
        """
        individuals = list(individuals)
        if not individuals:
            return []
        start = time.perf_counter()
        results: list[EvalResult | None] = [None] * len(individuals)
        keys: list[str | None] = [None] * len(individuals)
        cache = self.cache if not self.lamarckian else None
        if cache is not None:
            seed = minibatch_key(self.cfg, self.generation)
            settings = settings_text(self.cfg, {"halving_rungs": self.halving_rungs, "learned": self.learned})
            for i, ind in enumerate(individuals):
                keys[i] = content_key(ind, settings, seed)
                results[i] = cache.get(keys[i], self.generation)
        todo = [i for i, r in enumerate(results) if r is None]
        fresh = self._evaluate([individuals[i] for i in todo]) if todo else []
        for i, res in zip(todo, fresh, strict=True):
            results[i] = res
            if cache is not None:
                cache.put(keys[i], self.generation, res)
        if cache is not None:
            cache.prune(self.generation)
        kill_point("finetune")
        apply_results(individuals, results, self.counter, self.generation, lamarckian=self.lamarckian)
        self.generation += 1
        self.seconds += time.perf_counter() - start
        self.evaluated += len(individuals)
        if self.objectives is None:
            fitnesses = [r.fitness for r in results]
        else:
            fitnesses = [
                self.objectives.fitness(ind, r.fitness, r.nonfinite)
                for ind, r in zip(individuals, results, strict=True)
            ]
        for listener in self.listeners:
            listener(self.generation - 1, individuals, fitnesses)
        return fitnesses


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
        spent: the generation's compute, summed over the evaluated individuals: ``train_steps``,
            ``train_flops`` and ``eval_flops`` (see :mod:`evoticket.training.meter`).
        front: multi-objective runs: the population's Pareto front, one ``pareto.csv`` row per member
            (:meth:`evoticket.evolution.objectives.Objectives.rows`); ``None`` otherwise.
        hypervolume: multi-objective runs: the front's hypervolume, in [0, 1]; ``None`` otherwise.
    """

    generation: int
    evaluated: list[Ticket]
    stats: dict[str, Any]
    seconds: float
    finetune_seconds: float
    variation_seconds: float
    state: EvolutionState
    spent: dict[str, int] = field(default_factory=dict)
    front: list[dict[str, Any]] | None = None
    hypervolume: float | None = None


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
        from evoticket.core.errors import DivergedError

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
    proceed: Callable[[int], bool] | None = None,
) -> tuple[list[Ticket], tools.Logbook, tools.HallOfFame]:
    """Run the (mu + lambda) genetic algorithm of ``config.ga``.

    Generation 0 evaluates the initial population (``ga.population``
    individuals). Each later generation makes ``ga.num_offspring`` offspring with
    :func:`vary`, evaluates them in one batch (with ``ga.reevaluate``, the
    parents are fine-tuned again in the same batch, so everyone competes under
    the same minibatch sequence), and keeps ``ga.population`` survivors out of
    parents + offspring with ``toolbox.survive`` (by default the ``ga.elitism``
    best, then tournament winners for the rest).

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
            offspring = vary(pop, toolbox, ga.num_offspring, ga.cxpb, ga.mutpb)
            if ga.reevaluate:
                for ind in pop:
                    del ind.fitness.values
            variation = time.perf_counter() - start
            evaluated = evaluate_invalid(pop + offspring, toolbox)
            select_start = time.perf_counter()
            pop = toolbox.survive(pop + offspring, ga.population)
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
        spent = {k: sum(int((ind.eval_record or {}).get(k) or 0) for ind in evaluated) for k in SPENT_KEYS}
        record = GenerationRecord(
            gen, evaluated, row, time.perf_counter() - start, evaluator.seconds - ft_start, variation, state, spent
        )
        objectives = getattr(toolbox, "objectives", None)
        if objectives is not None and objectives.multi:
            _, record.front, record.hypervolume = objectives.describe(gen, pop)
        for hook in hooks:
            hook(gen, pop, record)
        if should_stop is not None and should_stop() and gen < ga.generations and (proceed is None or proceed(gen + 1)):
            from evoticket.core.errors import Interrupted

            raise Interrupted("", gen)
    return state.population, state.logbook, state.hall_of_fame
