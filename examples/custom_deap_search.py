"""Use evoticket's toolbox and operators in your own DEAP search.

``make_toolbox`` registers individual, population, mate, mutate, select and
evaluate, and a ``map`` that fine-tunes every generation's individuals in one
batch, so DEAP's stock ``eaSimple`` runs unchanged. Here the mutation is
replaced by a combination of two evoticket operators.

Run: python examples/custom_deap_search.py
"""

from __future__ import annotations

import random

from deap import algorithms, tools

import evoticket
from evoticket.operators import mutInitGaussian, mutMaskSwap


def main() -> None:
    """A 5-generation eaSimple on MNIST-1D with a 40-100-10 MLP at 20% density."""
    random.seed(0)
    config = evoticket.CampaignConfig().with_overrides(
        ["model.hidden=[100]", "ticket.density=0.2", "finetune.steps=50", "campaign.device=cpu"]
    )
    toolbox = evoticket.make_toolbox(config)

    def mutate(individual):
        mutMaskSwap(individual, indpb=0.05, rng=toolbox.rng)
        mutInitGaussian(individual, indpb=0.05, sigma=0.5, rng=toolbox.rng)
        return (individual,)

    toolbox.register("mutate", mutate)
    population = toolbox.population(n=16)
    hof = tools.HallOfFame(1)
    stats = tools.Statistics(lambda ind: ind.fitness.values[0])
    stats.register("max", max)
    population, _logbook = algorithms.eaSimple(
        population, toolbox, cxpb=0.5, mutpb=0.8, ngen=5, stats=stats, halloffame=hof, verbose=True
    )
    best = hof[0]
    print(f"best: uid {best.uid}, validation accuracy {best.fitness.values[0]:.4f}, density {best.total_density():.3f}")
    print(f"lineage: parents {list(best.parents)}, operators {list(best.operators)}")


if __name__ == "__main__":
    main()
