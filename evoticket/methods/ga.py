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
from evoticket.evolution import EvolutionState, check_toolbox, evolve, learned_needed, make_toolbox
from evoticket.genome import ticket_densities
from evoticket.genome.snapshot import pack_hall_of_fame, pack_tickets, unpack_hall_of_fame, unpack_tickets
from evoticket.methods.base import Budget, Method, MethodResult, MethodRun, kept_weights, training_flops
from evoticket.records import SPENT_KEYS, Hook
from evoticket.resolve import Resolved
from evoticket.training import backward_flops, evaluate_ticket, forward_flops

GA_GENERATIONS_UNDER_BUDGET = 100_000
"""``ga.generations`` of a GA run spending an experiment's budget: the budget, not the count, ends the search."""


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

    def snapshot(self) -> dict[str, Any]:
        """Generation, population, hall of fame, logbook, uid counter, the operators' generator, compute spent
        and the fitness cache."""
        state = self.state
        cache = self.toolbox.evaluator.cache
        return {
            "generation": state.generation,
            "population": pack_tickets(state.population),
            "hall_of_fame": pack_hall_of_fame(state.hall_of_fame),
            "logbook": state.logbook,
            "next_uid": self.toolbox.counter.next_uid,
            "operators_rng": self.toolbox.rng.get_state(),
            "spent": dict(self.spent),
            "last_generation": dict(self.last_generation),
            "fitness_cache": cache.state() if cache is not None else None,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`snapshot` (the population, the counter and the operators' generator)."""
        self.last_generation = dict(state.get("last_generation") or {"nevals": 0, "train_flops": 0})
        self.toolbox.counter.next_uid = state["next_uid"]
        self.toolbox.rng.set_state(state["operators_rng"])
        self.state = EvolutionState(
            state["generation"],
            unpack_tickets(state["population"]),
            state["logbook"],
            unpack_hall_of_fame(state["hall_of_fame"]),
        )
        self.spent = {**dict.fromkeys(SPENT_KEYS, 0), **(state.get("spent") or {})}
        if self.toolbox.evaluator.cache is not None:
            self.toolbox.evaluator.cache.load(state.get("fitness_cache"))

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
        info["ga"] = {"last_generation": self.state.generation, "evaluated": self.evaluated}
        front = None
        objectives = self.toolbox.objectives
        if objectives.multi:
            front, _, hypervolume = objectives.describe(self.state.generation, population)
            info["pareto"] = {
                "objectives": list(objectives.names),
                "front_size": len(front),
                "hypervolume": hypervolume,
            }
        result = MethodResult(best, list(hof), dict(self.spent), info, front)
        if self.toolbox.evaluator.lamarckian:
            result.theta0 = "trained"
            result.theta0_text = "its lineage's trained weights (Lamarckian)"
            if c.finetune.inherit_step:
                step = c.finetune.inherit_step
                result.theta0_text = f"its lineage's weights at step {step} of each fine-tuning (Lamarckian)"
        return result


def ga_costs(resolved: Resolved, final_training: bool = True) -> tuple[int, int, int]:
    """Training FLOPs of generation 0, of each later generation, and of one final training of a ticket (0
    without ``final_training``).

    At the configured per-layer densities (operators that change densities make the later
    generations' cost an estimate; the budget check itself uses the measured cost of the last
    generation), with successive halving's rungs, the dense-gradient pass of gradient growth and dynamic
    fine-tuning's RigL updates counted.
    """
    c, arch = resolved.config, resolved.arch
    t = c.ticket
    kept = kept_weights(arch, ticket_densities(arch, t.density, t.allocation, dict(t.layer_densities)))
    batch = c.optimizer.batch_size
    dense_pass = 0
    if learned_needed(c) == "gradients":  # one forward and one backward pass with dense weight gradients
        weights = frozenset(arch.weight_names)
        per_example = forward_flops(arch, kept) + backward_flops(arch, kept, weights, dense_weight_grads=weights)
        dense_pass = batch * int(per_example)

    update_pass = 0
    if c.finetune.dynamic == "rigl":  # RigL's growth: one dense-gradient minibatch per update
        weights = frozenset(arch.weight_names)
        per_example = forward_flops(arch, kept) + backward_flops(arch, kept, weights, dense_weight_grads=weights)
        update_pass = batch * int(per_example)

    def updates(n: int) -> int:
        """Drop-and-grow updates of a batch of ``n`` with successive halving: every ``delta_t`` steps strictly inside
        each rung's fine-tuning."""
        total, alive = 0, n
        for rung in range(c.ga.halving_rungs):
            if rung:
                alive //= 2
            total += alive * ((c.finetune.steps * 2**rung - 1) // c.finetune.delta_t)
        return total

    def batch_flops(n: int) -> int:
        steps = halving_steps(n, c.ga.halving_rungs, c.finetune.steps)
        flops = training_flops(arch, kept, steps, batch) + (n * dense_pass if c.finetune.steps else 0)
        return flops + (updates(n) * update_pass if c.finetune.steps else 0)

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
    population = True
    hybrid = True
    run_class: type[GARun] = GARun
    """The run it prepares (:class:`SupermaskRun` for ``supermask_ga``)."""

    @property
    def sections(self) -> tuple[str, ...]:
        """``[ga]`` and ``[finetune]``."""
        return ("ga", "finetune")

    def check(self, resolved: Resolved) -> None:
        """Operators, survivor scheme, their arguments and the population's memory
        (:func:`evoticket.evolution.check_toolbox`); a budget must pay for generation 0 and the final training of the
        ticket.

        Raises:
            ConfigError: naming the key and what would be valid.
            BudgetError: naming ``budget.train_flops`` and the budget needed.
        """
        config = resolved.config
        check_toolbox(config, resolved.arch, resolved.splits.x_train.shape[0])
        limit = config.budget.train_flops
        if limit:
            gen0, _, reserve = ga_costs(resolved, self.run_class.final_training)
            if gen0 + reserve > limit:
                raise BudgetError(
                    f"budget.train_flops: {limit:,} does not pay for generation 0 ({gen0:,}) and the final training "
                    f"of the ticket ({reserve:,}); must be >= {gen0 + reserve:,}",
                    needed=gen0 + reserve,
                )

    def kept_tickets(self, config: Any) -> tuple[int, str]:
        """Its hall of fame: ``ga.hall_of_fame`` tickets."""
        return config.ga.hall_of_fame, "ga.hall_of_fame"

    def prepare(self, resolved: Resolved) -> GARun:
        """A fresh GA run (toolbox built, nothing evaluated)."""
        return self.run_class(resolved)

    def budget_overrides(self, config: Any, multiple: float) -> dict[str, Any]:
        """The GA runs generations until the budget ends it (``ga.generations`` set out of the way)."""
        return {"ga": {"generations": GA_GENERATIONS_UNDER_BUDGET}}

    def subtitle(self, config: Any) -> str:
        """E.g. "lamarckian fine-tuning, 34 steps" (", RigL drop and grow every 10 steps"; ", genes lr, alpha";
        ", optimizer state inherited")."""
        f = config.finetune
        text = f"{f.mode} fine-tuning, {f.steps} steps"
        if f.dynamic != "none":
            text += f", {'RigL' if f.dynamic == 'rigl' else 'SET'} drop and grow every {f.delta_t} steps"
        if f.genes:
            text += f", genes {', '.join(f.genes)}"
        if f.optimizer_state == "inherit" and f.mode == "lamarckian":
            text += ", optimizer state inherited"
        return text

    def summary_lines(self, summary: dict[str, Any]) -> list[str]:
        """The search (generations, individuals fine-tuned) and the best ticket it found."""
        own = summary.get("ga") or {}
        best = summary["best"]
        last = own.get("last_generation", best["generation"])
        return [
            f"Search: generations 0 to {last}, {summary['individuals_evaluated']:,} individuals fine-tuned",
            f"Best ticket: uid {best['uid']} (generation {best['generation']}), validation accuracy "
            f"{best['val_acc']:.4f} after fine-tuning, density {best['density_total']:.4f}",
        ]

    def extend_hint(self, run_dir: Any) -> str:
        """More generations: ``evoticket resume RUN_DIR --set ga.generations=N``."""
        return f"to extend it: evoticket resume {run_dir} --set ga.generations=N"


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
    hybrid = False
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

    def budget_overrides(self, config: Any, multiple: float) -> dict[str, Any]:
        """None: a supermask search trains nothing, so no budget binds it."""
        return {}

    def subtitle(self, config: Any) -> str:
        """ "supermask search (no gradient)"."""
        return "supermask search (no gradient)"

    def summary_lines(self, summary: dict[str, Any]) -> list[str]:
        """The GA's lines and the best supermask's own test accuracy, untrained."""
        own = summary.get("supermask_ga") or {}
        lines = super().summary_lines(summary)
        if "test_acc" in own:
            lines.append(
                f"supermask_ga itself: the best supermask untrained (theta0 * mask): test accuracy "
                f"{own['test_acc']:.4f}, density {own['density_total']:.4f}"
            )
        return lines


__all__ = [
    "GA",
    "GA_GENERATIONS_UNDER_BUDGET",
    "GARun",
    "SupermaskGA",
    "SupermaskRun",
    "ga_costs",
    "halving_steps",
]
