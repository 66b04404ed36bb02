"""Survivor selection: which of parents + offspring form the next population.

DEAP's ``eaMuPlusLambda`` and ``eaMuCommaLambda`` leave survival to ``toolbox.select(individuals, mu)``;
evoticket registers its survivor scheme there (``ga.survival``), so a new scheme (NSGA-II, :func:`selNSGA2`)
is a toolbox entry, not a branch in the loop. Parents come from ``toolbox.select_parents``, the scheme's own
(:data:`evoticket.operators.SURVIVORS`), as in DEAP's NSGA-II example. Randomness: Python's ``random``, as
DEAP's selections.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from deap import tools


def selElitistTournament(individuals: Sequence, k: int, elitism: int, tournsize: int) -> list:
    """Elitist (mu + lambda) survival: the ``elitism`` best, then tournament winners for the rest.

    Args:
        individuals: the pool (parents + offspring), each with a valid fitness.
        k: survivors to choose (mu), >= elitism.
        elitism: best individuals that always survive, in [0, k].
        tournsize: tournament size of ``deap.tools.selTournament``, >= 1.

    Returns:
        ``k`` individuals: the elites (best first), then the tournament winners (with repeats, as
        ``selTournament`` draws with replacement).
    """
    elites = tools.selBest(individuals, elitism)
    rest = [ind for ind in individuals if all(ind is not e for e in elites)]
    return elites + tools.selTournament(rest, k - elitism, tournsize=tournsize)


def selNSGA2(individuals: Sequence, k: int, elitism: int = 0, tournsize: int = 2) -> list:
    """NSGA-II survival (Deb et al. 2002, doi:10.1109/4235.996017): ``deap.tools.selNSGA2``.

    The ``k`` survivors are the best non-dominated fronts of the pool; the last front that does not fit whole
    is cut by crowding distance. Every individual's ``fitness.crowding_dist`` is set, which
    :func:`selCrowdedTournament` reads. ``elitism`` and ``tournsize`` are accepted for the survivor-scheme
    signature and unused: non-dominated sorting is elitist by construction.

    Args:
        individuals: the pool (parents + offspring), each with a valid multi-objective fitness.
        k: survivors to choose (mu), <= len(individuals).
        elitism: unused.
        tournsize: unused.

    Returns:
        ``k`` distinct individuals.
    """
    return tools.selNSGA2(list(individuals), k)


def selCrowdedTournament(individuals: Sequence, k: int, tournsize: int = 2) -> list:
    """Parents by crowded-comparison tournament, NSGA-II's mating selection.

    Each of the ``k`` tournaments draws ``tournsize`` individuals at random (Python's ``random``) and picks the
    one of lowest non-domination rank, ties broken by the larger crowding distance (Deb et al. 2002). Ranks and
    crowding distances are computed here over ``individuals`` (``deap.tools.sortNondominated`` and
    ``deap.tools.emo.assignCrowdingDist``), so it works for any population, not only one just made by
    :func:`selNSGA2` (``deap.tools.selTournamentDCD`` needs a population size divisible by four).

    Args:
        individuals: candidates, each with a valid multi-objective fitness.
        k: parents to draw (with replacement).
        tournsize: candidates per tournament, >= 1.

    Returns:
        ``k`` individuals (with repeats).
    """
    from deap.tools.emo import assignCrowdingDist

    pool = list(individuals)
    rank = {}
    for r, front in enumerate(tools.sortNondominated(pool, len(pool))):
        assignCrowdingDist(front)
        for ind in front:
            rank[id(ind)] = r
    chosen = []
    for _ in range(k):
        aspirants = [random.choice(pool) for _ in range(tournsize)]
        chosen.append(min(aspirants, key=lambda ind: (rank[id(ind)], -ind.fitness.crowding_dist)))
    return chosen
