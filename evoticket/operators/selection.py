"""Survivor selection: which of parents + offspring form the next population.

DEAP's ``eaMuPlusLambda`` leaves survival to the toolbox; evoticket registers its survivor scheme
as ``toolbox.survive(individuals, k)``, so a new scheme (NSGA-II, ``deap.tools.selNSGA2``) is a
toolbox entry, not a branch in the loop. Randomness: Python's ``random``, as DEAP's selections.
"""

from __future__ import annotations

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
