"""The pure evaluator: fitness of tickets after a short batched fine-tuning, and nothing else.

:meth:`Evaluator.evaluate` fine-tunes a list of tickets together and returns their
:class:`evoticket.training.BatchResult` (one :class:`evoticket.training.TicketResult` per ticket through
:meth:`evoticket.training.BatchResult.tickets`: fitness, the record fields it measured, and, when asked,
the fine-tuned weights). It changes nothing: uids, Lamarckian write-back and records are the population
evaluator's business (:func:`evoticket.evolution.population.apply_results`), so an evaluator can run
anywhere, a remote worker included.

Lamarckian and Baldwinian evolution: Hinton & Nowlan 1987; Castillo et al. 2006,
arXiv:cs/0603004. Supermask search (``finetune.steps = 0``): Zhou et al. 2019, arXiv:1905.01067.
"""

from __future__ import annotations

from collections.abc import Sequence

from evoticket.config import FinetuneConfig, OptimizerConfig
from evoticket.core.seeds import derive_seed
from evoticket.data import Splits
from evoticket.genome import Ticket
from evoticket.models import Architecture
from evoticket.training import BatchResult, finetune_tickets, population_block
from evoticket.training.dynamic import DynamicSparse


def minibatch_key(cfg: FinetuneConfig, generation: int) -> int:
    """Which minibatch sequence a generation's fine-tuning uses: the generation, or 0 with
    ``finetune.minibatches = "fixed"`` (one sequence for the whole run)."""
    return 0 if cfg.minibatches == "fixed" else generation


class Evaluator:
    """Fitness of tickets: validation accuracy after a short batched fine-tuning (pure).

    Every ticket of a call is fine-tuned on one minibatch sequence drawn from
    :meth:`minibatch_seed` (``derive_seed(seed, "finetune", generation)`` for rung 0; generation 0's
    for every generation with ``finetune.minibatches = "fixed"``), in population blocks
    (:func:`evoticket.training.population_block`).

    Args:
        arch: the architecture of every ticket.
        splits: the data, on the device where fine-tuning runs.
        cfg: the fine-tuning settings (``[finetune]``: steps, inheritance, minibatch sequence, dynamic sparse
            fine-tuning).
        optimizer: the optimizer's settings (``[optimizer]``).
        seed: ``campaign.seed``.
        max_memory_mb: memory budget of one population block (MiB; ``campaign.max_memory_mb``).
        block: most individuals per block (``campaign.population_block``; 0: the device's default).
    """

    def __init__(
        self,
        arch: Architecture,
        splits: Splits,
        cfg: FinetuneConfig,
        optimizer: OptimizerConfig,
        seed: int,
        *,
        max_memory_mb: float = 2048.0,
        block: int = 0,
    ) -> None:
        self.arch = arch
        self.splits = splits
        self.cfg = cfg
        self.optimizer = optimizer
        self.seed = seed
        self.max_memory_mb = max_memory_mb
        self.block = block

    def block_size(self, tickets: Sequence[Ticket], device: str | None = None) -> int:
        """The population block of a batch of ``tickets`` on ``device`` (default: the data's device):
        :func:`evoticket.training.population_block` with this run's memory budget and ``campaign.population_block``."""
        return population_block(
            tickets,
            self.arch,
            self.splits.x_val.shape[0],
            self.optimizer,
            device or self.splits.device,
            max_memory_mb=self.max_memory_mb,
            limit=self.block,
        )

    def minibatch_seed(self, generation: int, rung: int = 0) -> int:
        """Seed of the minibatch sequence of ``generation``'s fine-tuning at successive-halving ``rung``."""
        key = minibatch_key(self.cfg, generation)
        if rung == 0:
            return derive_seed(self.seed, "finetune", key)
        return derive_seed(self.seed, "finetune", key, "rung", rung)

    def evaluate(
        self,
        tickets: Sequence[Ticket],
        generation: int,
        *,
        return_weights: bool = False,
        learned: str = "none",
        steps: int | None = None,
        rung: int = 0,
        block: int | None = None,
        first: int = 0,
    ) -> BatchResult | None:
        """Fine-tune and evaluate tickets together, without changing them.

        Args:
            tickets: the tickets (CPU tensors), of ``arch``.
            generation: selects the minibatch sequence.
            return_weights: also return each ticket's fine-tuned weights (and, at rung 0 with
                ``finetune.inherit_step`` set, those of that step).
            learned: what else to return: ``"none"``, ``"magnitudes"`` or ``"gradients"``
                (:mod:`evoticket.genome.learned`).
            steps: fine-tuning steps; default ``finetune.steps``.
            rung: the successive-halving rung (selects the minibatch sequence).
            block: networks per batched computation; default :meth:`block_size` of ``tickets`` (a backend that
                splits a batch passes the whole batch's block).
            first: the place of ``tickets[0]`` in the whole batch (a backend's shard): under
                ``optimizer.data_order = "individual"`` each ticket's minibatches follow its place.

        Returns:
            The :class:`evoticket.training.BatchResult` of the tickets, in order (``None`` for no ticket).
        """
        tickets = list(tickets)
        if not tickets:
            return None
        return finetune_tickets(
            tickets,
            self.arch,
            self.splits,
            self.optimizer,
            self.minibatch_seed(generation, rung),
            steps=self.cfg.steps if steps is None else steps,
            block=block or self.block_size(tickets),
            return_weights=return_weights,
            learned=learned,
            inherit_step=self.cfg.inherit_step if rung == 0 else 0,
            dynamic=DynamicSparse.from_config(self.cfg),
            optimizer_state=self.cfg.optimizer_state == "inherit" and return_weights,
            first=first,
        )


__all__ = ["Evaluator", "minibatch_key"]
