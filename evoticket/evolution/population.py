"""Population evaluation: a generation's batched fine-tuning through a backend, then what it does to the individuals.

:class:`PopulationEvaluator` is the toolbox's ``evaluate``: the toolbox's ``map`` (:func:`batched_map`)
hands it a whole generation, the backend runs the pure evaluator on it (one batched fine-tuning on the
generation's minibatch sequence), with successive halving and the fitness cache where configured, and
:func:`apply_results` gives the individuals their uids, their ``eval_record`` (the line written to
``individuals.jsonl``, built by :func:`evoticket.records.individual_record`), their learned traits and, in
Lamarckian mode, their fine-tuned weights as theta0 (and, with dynamic sparse fine-tuning, the masks
their fine-tuning reached).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

from evoticket.config import FinetuneConfig, OptimizerConfig
from evoticket.core.faults import kill_point
from evoticket.evolution.backends import Backend
from evoticket.evolution.cache import FitnessCache, content_key, settings_text
from evoticket.evolution.evaluator import minibatch_key
from evoticket.evolution.objectives import Objectives
from evoticket.genome import Ticket, UidCounter
from evoticket.operators import traits_needed
from evoticket.records import SPENT_KEYS, individual_record
from evoticket.training import TicketResult


def apply_results(
    individuals: Sequence[Ticket],
    results: Sequence[TicketResult],
    counter: UidCounter,
    generation: int,
    *,
    lamarckian: bool = False,
) -> None:
    """What an evaluation does to individuals: uids, records, learned traits and Lamarckian write-back.

    Each individual without a uid gets one (in order); each gets ``eval_record``
    (:func:`evoticket.records.individual_record`: uid, generation, parents, operators, densities, the
    evaluator's fields, whether it was evaluated before (``reevaluated``) and its ``recipe``: how seeded
    operators made it, :mod:`evoticket.operators.recipe`; ``None`` for a re-evaluated one or one that
    cannot be replayed); its ``recipe`` then becomes ``{"uid": uid}``; and the learned traits its
    evaluation returned (``ticket.learned``), when it returned some. In Lamarckian mode the fine-tuned kept
    weights (those of ``finetune.inherit_step`` when set) and unmasked parameters become theta0 (not for a
    diverged individual). Fitness is left to the caller (DEAP's ``toolbox.map`` contract).

    Args:
        individuals: the evaluated individuals.
        results: their :class:`evoticket.training.TicketResult`, in order.
        counter: hands out uids.
        generation: the generation they were evaluated in.
        lamarckian: write the fine-tuned weights back.
    """
    reevaluated = [ind.uid is not None for ind in individuals]
    counter.assign(individuals)
    for ind, res, again in zip(individuals, results, reevaluated, strict=True):
        recipe = None if again else getattr(ind, "recipe", None)
        ind.eval_record = individual_record(ind, generation, res.fields, reevaluated=again, recipe=recipe)
        ind.recipe = {"uid": ind.uid}
        if res.learned is not None:
            ind.learned = res.learned
        if lamarckian and not res.nonfinite and res.inherited is not None:
            if res.masks is not None:  # dynamic sparse fine-tuning: the mask reached is inherited with the weights
                ind.masks = {k: m.clone() for k, m in res.masks.items()}
            if res.optimizer_state is not None:  # finetune.optimizer_state = "inherit": and the optimizer's state
                ind.optimizer_state = res.optimizer_state
            _inherit(ind, res.inherited)


def _inherit(ind: Ticket, weights: dict[str, torch.Tensor]) -> None:
    """Lamarckian write-back: fine-tuned kept weights and biases become theta0."""
    for name, w in weights.items():
        if name in ind.masks:
            ind.theta0[name] = torch.where(ind.masks[name], w, ind.theta0[name])
        else:
            ind.theta0[name] = w.clone()


def _continued(res: TicketResult, more: TicketResult, rung: int) -> TicketResult:
    """One individual's result after a further successive-halving rung: the new fitness, compute summed, and its
    validation accuracy at this rung appended to ``rung_val_acc``."""
    fields = dict(more.fields)
    for key in ("val_acc_before", "val_loss_before"):
        fields[key] = res.fields[key]
    for key in SPENT_KEYS:
        fields[key] = int(res.fields.get(key) or 0) + int(more.fields.get(key) or 0)
    fields["rung"] = rung
    fields["rung_val_acc"] = [*res.fields["rung_val_acc"], None if more.nonfinite else more.fields["val_acc"]]
    masks = more.masks if more.masks is not None else res.masks
    return TicketResult(
        more.fitness,
        fields,
        more.weights,
        more.nonfinite,
        more.learned or res.learned,
        res.rewound,
        masks,
        more.optimizer_state if more.optimizer_state is not None else res.optimizer_state,
    )


class PopulationEvaluator:
    """The toolbox's ``evaluate``: a generation's evaluation through a backend, then its effects on the individuals.

    Call :meth:`evaluate_batch` with every individual of a generation (the toolbox's ``map``
    does): the backend runs the pure evaluator on them (one batched fine-tuning on the
    generation's minibatch sequence), and :func:`apply_results` gives them uids, their
    ``eval_record``, their learned traits and, in ``lamarckian`` mode, their fine-tuned weights as theta0.

    Multi-fidelity fitness (``ga.halving_rungs`` > 1): successive halving within the batch, as
    ASHA does (Li et al., arXiv:1810.05934). Every individual gets ``finetune.steps`` steps; at
    rung r the best half of rung r - 1 (by fitness, diverged ones out) continues for ``2**r *
    finetune.steps`` steps from the weights it reached (the optimizer's moments start afresh,
    on rung r's own minibatch sequence). An individual's fitness and ``val_acc`` are those of
    the last rung it reached (``rung`` in its record; ``rung_val_acc`` lists its validation accuracy at every
    rung it reached, rung 0 first, so individuals can be compared at equal training), its compute the sum over
    its rungs.

    Fitness cache (``ga.fitness_cache``, Baldwinian only): results are looked up by
    :func:`evoticket.evolution.cache.content_key` before anything is fine-tuned; a hit costs
    no compute, keeps its cached learned traits and is flagged ``cached``.

    What the evaluations return for the operators (fine-tuned magnitudes, dense-gradient growth candidates) is
    read from the registry entries of the operators registered in the toolbox's ``mutate`` and ``mate``
    (:func:`evoticket.operators.traits_needed`), so a user's own toolbox needs no setting; ``learned`` overrides it.

    Args:
        backend: runs the pure evaluator (:class:`evoticket.evolution.backends.LocalBackend`).
        cfg: fine-tuning settings (``mode`` and ``steps`` decide Lamarckian write-back).
        counter: hands out uids.
        optimizer: the optimizer's settings (part of the fitness cache's keys).
        learned: what evaluations return, one of :data:`evoticket.genome.LEARNED_KINDS`; ``None`` (the default):
            what the toolbox's operators need.
        halving_rungs: successive-halving rungs per batch (1: none); >= 1.
        cache: use the fitness cache.
        objectives: turns ``(val_acc, val_loss)`` into the run's fitness
            (:class:`evoticket.evolution.objectives.Objectives`); ``None``: ``(val_acc, val_loss)``.

    Attributes:
        toolbox: the toolbox whose operators decide the learned traits (set by :func:`evoticket.make_toolbox`).
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
        optimizer: OptimizerConfig | None = None,
        learned: str | None = None,
        halving_rungs: int = 1,
        cache: bool = False,
        objectives: Objectives | None = None,
    ) -> None:
        self.backend = backend
        self.objectives = objectives
        self.listeners: list[Callable[[int, list[Ticket], list[tuple[float, ...]]], None]] = []
        self.cfg = cfg
        self.optimizer = optimizer
        self.counter = counter
        self.learned = learned
        self.toolbox: Any = None
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

    def traits(self) -> str:
        """What each evaluation returns: :attr:`learned` when set, else what the toolbox's ``mutate`` and ``mate``
        need (:func:`evoticket.operators.traits_needed`)."""
        if self.learned is not None:
            return self.learned
        if self.toolbox is None:
            return "none"
        return traits_needed(getattr(self.toolbox, "mutate", None), getattr(self.toolbox, "mate", None))

    def __call__(self, individual: Ticket) -> tuple[float, ...]:
        """Evaluate one individual (a batch of one) without advancing the generation."""
        generation = self.generation
        fitness = self.evaluate_batch([individual])[0]
        self.generation = generation
        return fitness

    def _run(
        self, tickets: list[Ticket], learned: str, *, return_weights: bool, steps: int | None = None, rung: int = 0
    ) -> list[TicketResult]:
        batch = self.backend.evaluate(
            tickets, self.generation, return_weights=return_weights, learned=learned, steps=steps, rung=rung
        )
        self.train_seconds += batch.train_seconds
        self.eval_seconds += batch.eval_seconds
        return batch.tickets()

    def _evaluate(self, individuals: list[Ticket], learned: str) -> list[TicketResult]:
        """Fine-tune the individuals, with successive halving when configured."""
        halving = self.halving_rungs > 1 and self.cfg.steps > 0
        results = self._run(individuals, learned, return_weights=self.lamarckian or halving)
        for res in results:
            res.fields["rung"] = 0
            if halving:
                res.fields["rung_val_acc"] = [None if res.nonfinite else res.fields["val_acc"]]
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
                masks = results[i].masks if results[i].masks is not None else ind.masks
                rung_ticket = Ticket(weights, masks, ind.init_scheme, ind.init_std, genes=getattr(ind, "genes", None))
                rung_ticket.optimizer_state = results[i].optimizer_state
                tickets.append(rung_ticket)
            more = self._run(tickets, learned, return_weights=True, steps=self.cfg.steps * 2**rung, rung=rung)
            for i, res in zip(alive, more, strict=True):
                results[i] = _continued(results[i], res, rung)
            alive = [i for i in alive if not results[i].nonfinite]
        return results

    def evaluate_batch(self, individuals: Sequence[Ticket]) -> list[tuple[float, ...]]:
        """Evaluate individuals together and apply the results to them.

        Returns:
            One fitness per individual, in order: ``(val_acc, val_loss)`` (:data:`evoticket.records.WORST_FITNESS`
            for one whose loss or weights became non-finite), or the multi-objective values of ``objectives``.
        """
        individuals = list(individuals)
        if not individuals:
            return []
        start = time.perf_counter()
        learned = self.traits()
        results: list[TicketResult | None] = [None] * len(individuals)
        keys: list[str | None] = [None] * len(individuals)
        cache = self.cache if not self.lamarckian else None
        if cache is not None:
            seed = minibatch_key(self.cfg, self.generation)
            settings = settings_text(
                self.cfg, self.optimizer, {"halving_rungs": self.halving_rungs, "learned": learned}
            )
            for i, ind in enumerate(individuals):
                keys[i] = content_key(ind, settings, seed)
                results[i] = cache.get(keys[i], self.generation)
        todo = [i for i, r in enumerate(results) if r is None]
        fresh = self._evaluate([individuals[i] for i in todo], learned) if todo else []
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


__all__ = ["PopulationEvaluator", "apply_results", "batched_map"]
