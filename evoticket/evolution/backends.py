"""Where a generation's evaluation runs: the backend splits it, the evolution loop never knows.

As EvoTorch keeps distribution out of its searchers, a backend takes the tickets of a generation
and returns the pure evaluator's results in population order. :class:`LocalBackend` runs them in
this process; a Ray backend (shards over actors) can follow with the same interface.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from evoticket.evolution.evaluator import BatchEvaluation, Evaluator
from evoticket.genome import Ticket


class Backend(Protocol):
    """Evaluates a generation's tickets and returns the results in their order."""

    def evaluate(self, tickets: Sequence[Ticket], generation: int, *, return_weights: bool = False) -> BatchEvaluation:
        """See :meth:`evoticket.evolution.evaluator.Evaluator.evaluate`."""
        ...


class LocalBackend:
    """Runs the evaluator in this process, the whole generation as one batched fine-tuning.

    Args:
        evaluator: the pure evaluator.
    """

    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator

    def evaluate(self, tickets: Sequence[Ticket], generation: int, *, return_weights: bool = False) -> BatchEvaluation:
        """Evaluate all tickets in one call of the evaluator."""
        return self.evaluator.evaluate(tickets, generation, return_weights=return_weights)


BACKENDS = {"local": LocalBackend}
"""Backend name -> class taking an :class:`~evoticket.evolution.evaluator.Evaluator`."""
