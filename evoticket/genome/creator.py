"""DEAP's ``creator`` classes for tickets, made lazily and once per set of fitness weights.

A run chooses its fitness weights (``(1.0, -1.0)``: validation accuracy up, then validation loss
down; a multi-objective run adds objectives), so the classes are made per weights, not once per
process: the default weights give ``creator.EvoTicket`` / ``creator.EvoTicketFitness``, others
``creator.EvoTicket_<tag>`` / ``creator.EvoTicketFitness_<tag>``. Never at import time: DEAP warns
on duplicates and import-time creation breaks pickling across processes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

FITNESS_WEIGHTS = (1.0, -1.0)
"""Default DEAP fitness weights: maximise validation accuracy, then minimise validation loss."""


def _class_names(weights: tuple[float, ...]) -> tuple[str, str]:
    if weights == FITNESS_WEIGHTS:
        return "EvoTicketFitness", "EvoTicket"
    tag = hashlib.sha256(repr(weights).encode()).hexdigest()[:10]
    return f"EvoTicketFitness_{tag}", f"EvoTicket_{tag}"


def ensure_creator(weights: Sequence[float] = FITNESS_WEIGHTS) -> type:
    """Create DEAP's fitness and individual classes for ``weights`` once, and return the individual class.

    With the default weights (validation accuracy up, validation loss down) these are
    ``creator.EvoTicketFitness`` and ``creator.EvoTicket``, a :class:`evoticket.genome.Ticket`
    with such a fitness. Safe to call many times and from any process.

    Args:
        weights: DEAP fitness weights, one per objective (positive: maximise).

    Returns:
        The individual class, e.g. ``creator.EvoTicket``.

    Raises:
        ValueError: if ``weights`` is empty.
    """
    from deap import base, creator

    from evoticket.genome.ticket import Ticket

    weights = tuple(float(w) for w in weights)
    if not weights:
        raise ValueError("fitness weights: need at least one objective")
    fitness_name, individual_name = _class_names(weights)
    if not hasattr(creator, fitness_name):
        creator.create(fitness_name, base.Fitness, weights=weights)
    if not hasattr(creator, individual_name):
        creator.create(individual_name, Ticket, fitness=getattr(creator, fitness_name))
    return getattr(creator, individual_name)
