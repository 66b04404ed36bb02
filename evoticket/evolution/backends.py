"""Where a generation's evaluation runs: the backend splits it, the evolution loop never knows.

As EvoTorch keeps distribution out of its searchers, a backend takes the tickets of a generation
and returns the pure evaluator's results in population order, as one
:class:`evoticket.training.BatchResult`. :class:`LocalBackend` runs them in
this process; :class:`evoticket.evolution.ray_backend.RayBackend` runs shards of it over Ray actors
(``campaign.backend = "ray"``). :func:`make_backend` picks one from the configuration.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from evoticket.data import Splits
from evoticket.evolution.evaluator import Evaluator
from evoticket.genome import Ticket
from evoticket.models import Architecture
from evoticket.training import BatchResult


class Backend(Protocol):
    """Evaluates a generation's tickets and returns the results in their order."""

    def evaluate(self, tickets: Sequence[Ticket], generation: int, **options: Any) -> BatchResult | None:
        """See :meth:`evoticket.evolution.evaluator.Evaluator.evaluate` (``options``: its keyword arguments); ``None``
        for no ticket."""
        ...

    def close(self) -> None:
        """Release what the backend holds (workers); it is not used afterwards."""
        ...


class LocalBackend:
    """Runs the evaluator in this process, the whole generation as one batched fine-tuning.

    Args:
        evaluator: the pure evaluator.
    """

    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator

    def evaluate(self, tickets: Sequence[Ticket], generation: int, **options: Any) -> BatchResult | None:
        """Evaluate all tickets in one call of the evaluator."""
        return self.evaluator.evaluate(tickets, generation, **options)

    def close(self) -> None:
        """Nothing to release."""


def make_backend(config: Any, arch: Architecture, splits: Splits) -> Backend:
    """The backend of ``campaign.backend``: a local one, or a :class:`RayBackend`.

    Args:
        config: the campaign configuration.
        arch: the architecture.
        splits: the data, on the run's device.

    Raises:
        EvoticketError: for the Ray backend without Ray, or an unreachable cluster.
    """
    c = config.campaign
    evaluator = Evaluator(
        arch,
        splits,
        config.finetune,
        config.optimizer,
        c.seed,
        max_memory_mb=c.max_memory_mb,
        block=c.population_block,
    )
    if c.backend == "local":
        return LocalBackend(evaluator)
    from evoticket.evolution.ray_backend import RayBackend  # imports Ray only when it is chosen

    return RayBackend(
        evaluator,
        address=c.ray_address,
        workers=c.workers,
        worker_cpus=c.worker_cpus,
        use_gpu=c.device != "cpu",
    )


BACKENDS = ("local", "ray")
"""The values of ``campaign.backend``."""
