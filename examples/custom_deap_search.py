"""Use evoticket's toolbox, operators, survivor schemes and records writer in your own DEAP search.

``make_toolbox`` registers individual, population, mate, mutate, ``select`` (the survivor scheme,
``ga.survival``, with ``ga.elitism``), ``select_parents`` and evaluate, and a ``map`` that fine-tunes every
generation's individuals in one batch, so DEAP's stock algorithms run unchanged. Here the mutation is replaced
by two evoticket operators of your choice, applied in turn (the magnitude swap, which needs the fine-tuned
magnitudes and dense gradients an evaluation can return, then a Gaussian perturbation of the initial weights):
the evaluator reads what they need from their registry entries, nothing else to set. A
:class:`evoticket.RunRecorder` writes the records into ``runs/NAME`` so that ``evoticket plot``, ``evoticket
compare`` and ``evoticket export --compact`` work on it.

Which DEAP algorithm (``--algorithm``):

* ``mu+lambda`` (the default): ``eaMuPlusLambda`` makes lambda offspring, evaluates them, and keeps mu of parents
  and offspring with ``toolbox.select``: evoticket's survivor scheme, so ``ga.survival`` and elitism hold.
* ``simple``: ``eaSimple`` uses ``toolbox.select`` to choose the mating pool from the evaluated population (with
  the default scheme: the ``ga.elitism`` best, then tournament winners), varies it, and replaces the whole
  population with the offspring: no parent survives unchanged, so the best can be lost (the hall of fame keeps it).

Run: python examples/custom_deap_search.py [--generations 8] [--algorithm mu+lambda|simple] [--name custom-deap]
"""

from __future__ import annotations

import argparse
import functools
import random

from deap import algorithms, tools

import evoticket
from evoticket.operators import mutInitGaussian, mutInTurn, mutMagnitudeSwap


def main(argv: list[str] | None = None) -> dict:
    """An (8 + 8) eaMuPlusLambda (or an eaSimple of 8) on MNIST-1D with a 40-100-10 MLP at 20% density, Lamarckian
    fine-tuning."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--steps", type=int, default=50, help="fine-tuning steps per evaluation")
    parser.add_argument("--algorithm", choices=("mu+lambda", "simple"), default="mu+lambda")
    parser.add_argument("--name", default="custom-deap")
    parser.add_argument("--runs-dir", default="runs")
    args = parser.parse_args(argv)

    random.seed(0)
    config = evoticket.CampaignConfig().with_overrides(
        [
            "model.hidden=[100]",
            "ticket.density=0.2",
            f"finetune.steps={args.steps}",
            "finetune.mode=lamarckian",
            "ga.halving_rungs=1",
            "campaign.device=cpu",
        ]
    )
    toolbox = evoticket.make_toolbox(config)
    # two operators in turn; the evaluations then return what mutMagnitudeSwap reads (its registry entry says so)
    toolbox.register(
        "mutate",
        mutInTurn,
        operators=[
            functools.partial(mutMagnitudeSwap, fraction=0.1, grow="gradient", rng=toolbox.rng),
            functools.partial(mutInitGaussian, indpb=0.02, sigma=0.2, rng=toolbox.rng),
        ],
    )
    assert toolbox.evaluator.traits() == "gradients"
    recorder = evoticket.RunRecorder(toolbox, config, name=args.name, runs_dir=args.runs_dir, force=True)
    population = toolbox.population(n=args.population)
    hof = tools.HallOfFame(1)
    stats = tools.Statistics(lambda ind: ind.fitness.values[0])
    stats.register("max", max)
    if args.algorithm == "mu+lambda":  # survivors: toolbox.select, evoticket's elitist scheme
        population, logbook = algorithms.eaMuPlusLambda(
            population,
            toolbox,
            mu=args.population,
            lambda_=args.population,
            cxpb=0.3,
            mutpb=0.7,
            ngen=args.generations,
            stats=stats,
            halloffame=hof,
            verbose=True,
        )
    else:  # the mating pool: toolbox.select; the offspring replace the population
        population, logbook = algorithms.eaSimple(
            population, toolbox, cxpb=0.3, mutpb=0.7, ngen=args.generations, stats=stats, halloffame=hof, verbose=True
        )
    best = hof[0]
    recorder.finish(best)
    first, last = logbook[0]["max"], max(row["max"] for row in logbook)
    print(f"max validation accuracy: generation 0 {first:.4f}, best {last:.4f} ({100 * (last - first):+.1f} points)")
    print(f"best: uid {best.uid} (generation {best.eval_record['generation']}), density {best.total_density():.3f}")
    print(f"lineage: parents {list(best.parents)}, operators {list(best.operators)}")
    print(f"records: {recorder.run_dir} (try: evoticket plot {recorder.run_dir})")
    return {
        "first_max": first,
        "best": last,
        "best_generation": best.eval_record["generation"],
        "run_dir": recorder.run_dir,
        "traits": toolbox.evaluator.traits(),
    }


if __name__ == "__main__":
    main()
