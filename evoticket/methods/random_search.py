"""``random_search``: tickets drawn at random, each fine-tuned as the GA's individuals are, the best by validation kept.

The control of the hybrid's search (issue 24): does selection and variation add anything over drawing tickets? Each
batch draws fresh tickets exactly as the GA's initial population is drawn (theta0 from ``model.init``, random masks at
the ``[ticket]`` densities, and with ``finetune.genes`` their hyperparameters), and fine-tunes them exactly as the
GA fine-tunes its individuals (the ``[finetune]`` settings and the GA's evaluator: steps, dynamic sparse fine-tuning,
genes, successive halving ``ga.halving_rungs``, the fitness record). Batch 0 draws ``ga.population`` tickets, each
later batch ``ga.num_offspring``; nothing is varied and nothing is evaluated twice (``ga.reevaluate`` is off), and
the best ``ga.population`` so far survive (elitist), so the reported ticket is the best by validation accuracy of
every ticket drawn. Under a budget it draws until the budget ends it, as the GA runs generations.

It is the GA's run with the toolbox's ``offspring`` drawing fresh tickets (:func:`evoticket.evolution.draw_fresh`)
and the best surviving (``deap.tools.selBest``; NSGA-II's elitist survival for several ``ga.objectives``), so the
GA's budget, records, checkpoints and resume, hall of fame and progress serve it unchanged. The GA's variation
settings (``ga.crossover``, ``ga.mutations``, ``ga.operator_args``, ``ga.cxpb``, ``ga.mutpb``,
``ga.tournament_size``, ``ga.elitism``) are not used, so one ``[ga]`` table serves both methods in an experiment.

Source: Farahani et al. 2024 (arXiv:2403.08265) found random search over masks no better than a random mask.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from deap import tools

from evoticket.evolution import draw_fresh
from evoticket.methods.base import Budget, MethodResult
from evoticket.methods.ga import GA, GARun
from evoticket.records import Hook
from evoticket.resolve import Resolved


class RandomSearchRun(GARun):
    """A ``random_search`` run: the GA's run whose offspring are fresh draws and whose survivors are the best so far."""

    def __init__(self, resolved: Resolved) -> None:
        super().__init__(resolved)
        toolbox = self.toolbox
        toolbox.register("offspring", draw_fresh, toolbox=toolbox)
        if not toolbox.objectives.multi:  # NSGA-II's survival is elitist already
            toolbox.register("select", tools.selBest)

    def run(self, hooks: Sequence[Hook], should_stop: Callable[[], bool] | None, budget: Budget) -> MethodResult:
        """Draw and fine-tune batches to ``ga.generations`` (or the budget); the best by validation is the ticket.

        The survivors are the best of every ticket drawn, each as its own fine-tuning measured it (with
        ``finetune.minibatches = "generation"``, on its batch's minibatch sequence).
        """
        result = super().run(hooks, should_stop, budget)
        c = self.resolved.config
        own = result.info.pop("ga")
        result.info["random_search"] = {
            "last_batch": own["last_generation"],
            "drawn": own["evaluated"],
            "first_batch": c.ga.population,
            "per_batch": c.ga.num_offspring,
        }
        if result.theta0 == "trained":
            result.theta0_text = "its own fine-tuned weights (Lamarckian)"
            if c.finetune.inherit_step:
                result.theta0_text = f"its weights at step {c.finetune.inherit_step} of its fine-tuning (Lamarckian)"
        return result


class RandomSearch(GA):
    """``random_search``: N tickets drawn at random and fine-tuned as the GA's individuals, the best by validation kept.

    Settings: ``[finetune]`` and of ``[ga]`` ``population`` (the first batch, and the survivors kept),
    ``offspring`` (each later batch), ``generations`` (batches after the first), ``halving_rungs``,
    ``hall_of_fame``, ``objectives``, ``seeded`` and ``fitness_cache``; ``ga.reevaluate`` is always off.
    Farahani et al. 2024, arXiv:2403.08265.
    """

    name = "random_search"
    citation = "Farahani et al. 2024, arXiv:2403.08265"
    unit, units = "batch", "batches"
    hybrid = False
    run_class = RandomSearchRun

    def configure(self, config: Any) -> Any:
        """``ga.reevaluate`` becomes false: a drawn ticket is fine-tuned once, as it was drawn."""
        return config.with_overrides({"ga.reevaluate": False}) if config.ga.reevaluate else config

    def subtitle(self, config: Any, drawn: int | None = None) -> str:
        """E.g. "random search: 968 tickets drawn, best by validation; lamarckian fine-tuning, 34 steps".

        Args:
            config: the run's configuration.
            drawn: tickets drawn (a finished run's count); default ``ga.population + ga.generations *
                ga.num_offspring``, or "as many as the budget pays for" under ``budget.train_flops``.
        """
        ga = config.ga
        if drawn is not None:
            count = f"{drawn:,} tickets drawn"
        elif config.budget.train_flops:
            count = "tickets drawn until the budget ends"
        else:
            count = f"{ga.population + ga.generations * ga.num_offspring:,} tickets drawn"
        return f"random search: {count}, best by validation; {super().subtitle(config)}"

    def report(self, config: Any, summary: dict[str, Any] | None = None) -> dict[str, Any]:
        """:meth:`Method.report`; once the run has finished, its subtitle gives how many tickets it drew."""
        out = super().report(config, summary)
        drawn = ((summary or {}).get("random_search") or {}).get("drawn")
        if drawn:
            out["subtitle"] = self.subtitle(config, int(drawn))
        return out

    def summary_lines(self, summary: dict[str, Any]) -> list[str]:
        """How many tickets it drew, in how many batches, and the best of them."""
        own = summary.get("random_search") or {}
        best = summary["best"]
        last = own.get("last_batch", best["generation"])
        drawn = own.get("drawn", summary["individuals_evaluated"])
        return [
            f"Search: {drawn:,} tickets drawn at random in batches 0 to {last} ({own.get('first_batch', '?')}, then "
            f"{own.get('per_batch', '?')} a batch), each fine-tuned once as the GA's individuals are; no selection, "
            "no variation",
            f"Best ticket: uid {best['uid']} (batch {best['generation']}), the best by validation accuracy "
            f"{best['val_acc']:.4f} after fine-tuning, density {best['density_total']:.4f}",
        ]

    def extend_hint(self, run_dir: Any) -> str:
        """More batches: ``evoticket resume RUN_DIR --set ga.generations=N``."""
        return f"to extend it: evoticket resume {run_dir} --set ga.generations=N (batches after the first)"


__all__ = ["RandomSearch", "RandomSearchRun"]
