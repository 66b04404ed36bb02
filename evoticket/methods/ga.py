"""``ga``: evoticket's hybrid, a DEAP genetic algorithm whose fitness follows a short gradient fine-tuning.

A population of tickets (theta0 plus masks) is evolved with (mu + lambda) selection; each
individual is fine-tuned for ``finetune.steps`` steps, the whole population batched, and its
validation accuracy is its fitness. Baldwinian (fine-tuned weights discarded) or Lamarckian
(written back into theta0): Hinton & Nowlan 1987; Castillo et al. 2006, arXiv:cs/0603004.
Tickets: Frankle & Carbin 2019, arXiv:1803.03635.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from evoticket.core.errors import BudgetError, ConfigError
from evoticket.core.seeds import capture_rng, restore_rng
from evoticket.evolution import SPENT_KEYS, EvolutionState, evolve, learned_needed, make_toolbox
from evoticket.genome import ticket_densities
from evoticket.methods.base import Budget, Hook, Method, MethodResult, MethodRun, kept_weights, training_flops
from evoticket.resolve import Resolved
from evoticket.training import evaluate_ticket
from evoticket.training.meter import backward_flops, forward_flops


class GARun(MethodRun):
    """A GA campaign in progress: its toolbox and the loop's state.

    Attributes:
        toolbox: the DEAP toolbox (:func:`evoticket.make_toolbox`).
        state: the loop's :class:`evoticket.evolution.EvolutionState`.
        spent: compute summed over the generations run so far (all sessions).
    """

    final_training = True
    """One final training of the reported ticket counts against a budget (not for ``supermask_ga``)."""

    def __init__(self, resolved: Resolved) -> None:
        self.resolved = resolved
        self.toolbox = make_toolbox(resolved.config, resolved=resolved)
        self.state = EvolutionState.initial(resolved.config)
        self.spent = dict.fromkeys(SPENT_KEYS, 0)
        self.last_generation = {"nevals": 0, "train_flops": 0}
        self.budget_stopped = False
        c = resolved.config
        self.total_generations = c.ga.generations
        if c.budget.train_flops:  # the progress bar's estimate: the generations the budget pays for
            gen0, per_generation, reserve = ga_costs(resolved, self.final_training)
            left = c.budget.train_flops - reserve - gen0
            if per_generation > 0:
                self.total_generations = min(c.ga.generations, max(0, left // per_generation))

    @property
    def generation(self) -> int:
        """Last completed generation; -1 before generation 0."""
        return self.state.generation

    @property
    def evaluated(self) -> int:
        """Individuals evaluated so far (all sessions)."""
        return self.toolbox.evaluator.evaluated

    @evaluated.setter
    def evaluated(self, n: int) -> None:
        """Set the count (a resumed run starts from its checkpoint's)."""
        self.toolbox.evaluator.evaluated = int(n)

    def check_resume(self, generation: int, run_dir: Any) -> None:
        """``ga.generations`` must not be below the generations already run.

        Raises:
            ConfigError: naming ``ga.generations``.
        """
        ga = self.resolved.config.ga
        if ga.generations < generation:
            raise ConfigError(
                f"ga.generations: {run_dir} has already completed generation {generation}; "
                f"must be >= {generation}, got {ga.generations}"
            )

    def seconds(self) -> dict[str, float]:
        """Fine-tuning and evaluation seconds since the last call."""
        ev = self.toolbox.evaluator
        out = {"finetune_seconds": ev.train_seconds, "evaluation_seconds": ev.eval_seconds}
        ev.train_seconds = ev.eval_seconds = 0.0
        return out

    def snapshot(self, state: EvolutionState | None = None) -> dict[str, Any]:
        """Generation, population, hall of fame, logbook, uid counter, RNG states and compute spent."""
        state = state or self.state
        return {
            "generation": state.generation,
            "population": state.population,
            "hall_of_fame": state.hall_of_fame,
            "logbook": state.logbook,
            "next_uid": self.toolbox.counter.next_uid,
            "rng": capture_rng(self.toolbox.rng),
            "spent": dict(self.spent),
            "last_generation": dict(self.last_generation),
            "fitness_cache": self.toolbox.evaluator.cache.state() if self.toolbox.evaluator.cache is not None else None,
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Continue from a snapshot (the population, the counter and every generator's state)."""
        self.last_generation = dict(snapshot.get("last_generation") or {"nevals": 0, "train_flops": 0})
        self.toolbox.counter.next_uid = snapshot["next_uid"]
        restore_rng(snapshot["rng"], self.toolbox.rng)
        self.state = EvolutionState(
            snapshot["generation"], snapshot["population"], snapshot["logbook"], snapshot["hall_of_fame"]
        )
        self.spent = {**dict.fromkeys(SPENT_KEYS, 0), **(snapshot.get("spent") or {})}
        if self.toolbox.evaluator.cache is not None:
            self.toolbox.evaluator.cache.load(snapshot.get("fitness_cache"))

    def run(self, hooks: Sequence[Hook], should_stop: Callable[[], bool] | None, budget: Budget) -> MethodResult:
        """Evolve to ``ga.generations``; the best of the final population is the reported ticket.

        The final population was evaluated under one minibatch sequence, while the hall of fame
        mixes generations, so the best is taken from the population.
        """

        c = self.resolved.config
        limit = budget.train_flops if budget is not None else None

        def count(generation: int, population: list, record: Any) -> None:
            for key in SPENT_KEYS:
                self.spent[key] += record.spent.get(key, 0)
            trained = [ind for ind in record.evaluated if "cached" not in (ind.eval_record or {}).get("flags", ())]
            self.last_generation = {"nevals": len(trained), "train_flops": record.spent.get("train_flops", 0)}

        proceed = None
        reserve = 0
        if limit:
            _, _, reserve = ga_costs(self.resolved, self.final_training)

            def proceed(generation: int) -> bool:
                """The next generation fits: its evaluations at the last generation's cost per fine-tuned evaluation
                (as if none were served by the fitness cache)."""
                last = self.last_generation
                per_eval = last["train_flops"] / max(1, last["nevals"])
                evaluations = c.ga.num_offspring + (c.ga.population if c.ga.reevaluate else 0)
                fits = self.spent["train_flops"] + math.ceil(per_eval * evaluations) + reserve <= limit
                self.budget_stopped = not fits
                return fits

        try:
            population, _, hof = evolve(
                self.toolbox, c, hooks=(count, *hooks), state=self.state, should_stop=should_stop, proceed=proceed
            )
        finally:
            self.toolbox.backend.close()  # the Ray backend's actors end with the search
        best = max(population, key=lambda ind: ind.fitness.wvalues)
        info = {}
        if limit:
            info["budget"] = {
                "train_flops": int(limit),
                "final_training_reserve": int(reserve),
                "generations": self.state.generation,
                "stopped_by_budget": bool(self.budget_stopped),
            }
        front = None
        objectives = self.toolbox.objectives
        if objectives.multi:
            front, _, hypervolume = objectives.describe(self.state.generation, population)
            info["pareto"] = {
                "objectives": list(objectives.names),
                "front_size": len(front),
                "hypervolume": hypervolume,
            }
        return MethodResult(best, list(hof), dict(self.spent), info, front)


def ga_costs(resolved: Resolved, final_training: bool = True) -> tuple[int, int, int]:
    """Training FLOPs of generation 0, of each later generation, and of one final training of a ticket (0
    without ``final_training``).

    At the configured per-layer densities (operators that change densities make the later
    generations' cost an estimate; the budget check itself uses the measured cost of the last
    generation), with successive halving's rungs and the dense-gradient pass of gradient growth counted.
    """
    c, arch = resolved.config, resolved.arch
    t = c.ticket
    kept = kept_weights(arch, ticket_densities(arch, t.density, t.allocation, dict(t.layer_densities)))
    batch = c.finetune.batch_size
    dense_pass = 0
    if learned_needed(c) == "gradients":  # one forward and one backward pass with dense weight gradients
        weights = frozenset(arch.weight_names)
        per_example = forward_flops(arch, kept) + backward_flops(arch, kept, weights, dense_weight_grads=weights)
        dense_pass = batch * int(per_example)

    def batch_flops(n: int) -> int:
        steps = halving_steps(n, c.ga.halving_rungs, c.finetune.steps)
        return training_flops(arch, kept, steps, batch) + (n * dense_pass if c.finetune.steps else 0)

    later = c.ga.num_offspring + (c.ga.population if c.ga.reevaluate else 0)
    final = training_flops(arch, kept, c.campaign.final_steps, batch) if final_training else 0
    return batch_flops(c.ga.population), batch_flops(later), final


def halving_steps(n: int, rungs: int, steps: int) -> int:
    """Fine-tuning steps of a batch of ``n`` individuals with successive halving (``ga.halving_rungs``): rung 0 trains
    all ``n`` for ``steps``, rung r the best ``floor(n_{r-1} / 2)`` for ``2**r * steps`` more (no divergence assumed)."""
    total, alive = 0, n
    for rung in range(rungs):
        if rung:
            alive //= 2
        if not alive:
            break
        total += alive * steps * 2**rung
    return total


class GA(Method):
    """The ``ga`` method (the default); settings in ``[ga]``, ``[finetune]`` and ``[ticket]``."""

    name = "ga"
    section = "ga"
    citation = "Frankle & Carbin 2019, arXiv:1803.03635; Castillo et al. 2006, arXiv:cs/0603004"
    run_class: type[GARun] = GARun
    """The run it prepares (:class:`SupermaskRun` for ``supermask_ga``)."""

    def check(self, resolved: Resolved) -> None:
        """A budget must pay for generation 0 and the final training of the ticket.

        Raises:
            BudgetError: naming ``budget.train_flops`` and the budget needed.
        """
        limit = resolved.config.budget.train_flops
        if limit:
            gen0, _, reserve = ga_costs(resolved, self.run_class.final_training)
            if gen0 + reserve > limit:
                raise BudgetError(
                    f"budget.train_flops: {limit:,} does not pay for generation 0 ({gen0:,}) and the final training "
                    f"of the ticket ({reserve:,}); must be >= {gen0 + reserve:,}",
                    needed=gen0 + reserve,
                )

    def prepare(self, resolved: Resolved) -> GARun:
        """A fresh GA run (toolbox built, nothing evaluated)."""
        return self.run_class(resolved)


class SupermaskRun(GARun):
    """A ``supermask_ga`` run: the GA with no gradient; its own result is the best supermask untrained."""

    final_training = False

    def run(self, hooks: Sequence[Hook], should_stop: Callable[[], bool] | None, budget: Budget) -> MethodResult:
        """Evolve, then measure the best ticket's test accuracy as it is (theta0 * mask, no training)."""
        result = super().run(hooks, should_stop, budget)
        best = result.best
        _, test_acc = evaluate_ticket(self.resolved.arch, best, self.resolved.splits)
        result.info["supermask_ga"] = {
            "test_acc": test_acc,
            "val_acc": float(best.fitness.values[0]),
            "density_total": best.total_density(),
            "density": best.density(),
            **{k: int(v) for k, v in self.spent.items()},
        }
        return result


class SupermaskGA(GA):
    """``supermask_ga``: the GA with ``finetune.steps = 0``, a gradient-free supermask search (Zhou et al. 2019).

    Fitness is the validation accuracy of ``theta0 * mask`` as it is; ``summary.json["supermask_ga"]``
    gives the best supermask's test accuracy untrained (the final comparison still trains its mask).
    """

    name = "supermask_ga"
    citation = "Zhou et al. 2019, arXiv:1905.01067"
    run_class = SupermaskRun

    def configure(self, config: Any) -> Any:
        """``finetune.steps`` becomes 0 (and the default ``ga.halving_rungs`` 1: nothing to halve).

        Raises:
            ConfigError: when ``finetune.steps`` is set to another non-default value.
        """
        steps = config.finetune.steps
        if steps not in (0, type(config.finetune)().steps):
            raise ConfigError(
                f"finetune.steps: method 'supermask_ga' trains no gradient (finetune.steps = 0); got {steps}; "
                "use method = 'ga' for fine-tuning"
            )
        overrides = {} if steps == 0 else {"finetune.steps": 0}
        if config.ga.halving_rungs == type(config.ga)().halving_rungs and config.ga.halving_rungs > 1:
            overrides["ga.halving_rungs"] = 1  # the default's successive halving needs fine-tuning steps
        return config.with_overrides(overrides) if overrides else config
