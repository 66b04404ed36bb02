"""The Ray backend: each generation's evaluation split into shards over Ray actors.

As EvoTorch distributes its populations with Ray actors, :class:`RayBackend` keeps a pool of
actors for the whole campaign. Each actor holds the data set (sent once, through Ray's object
store) and a pure :class:`evoticket.evolution.evaluator.Evaluator`; each generation, the
population is cut into contiguous shards in population order, one per actor, the genomes travel
through the object store, and the results are gathered back in population order. Selection,
variation, records and checkpoints stay on the driver.

Shards are made of whole population blocks. A batch is trained in blocks whose size is a function of
the batch and the run's settings alone (:meth:`evoticket.evolution.evaluator.Evaluator.block_size`:
``campaign.population_block``, the device's default, ``campaign.max_memory_mb``), computed once on the
driver; each actor trains its blocks exactly as a local run trains them, on the generation's minibatch
sequence (common random numbers). A batched matmul over P networks need not round like one over P/2,
so this is what makes the records independent of the backend: a campaign on Ray writes the same
records as a local one, bit for bit on the CPU at equal thread counts (tested at the default model size).
With the CPU's default block of 64, a population below 64 runs on one actor: set
``campaign.population_block`` to spread it (local runs then use the same blocks). On a CPU cluster each
actor runs ``campaign.worker_cpus`` torch threads.

A worker process that dies mid-generation is restarted by Ray (``max_restarts``) and its shard is
run again (``max_task_retries``); the generation then completes with the same results, recorded
once. A killed driver leaves the last checkpoint, which either backend resumes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import torch

from evoticket.config import FinetuneConfig, OptimizerConfig
from evoticket.core.cluster import connect, worker_options
from evoticket.core.errors import ConfigError
from evoticket.core.faults import kill_point
from evoticket.data import Splits
from evoticket.evolution.evaluator import Evaluator
from evoticket.genome import Ticket
from evoticket.models import Architecture
from evoticket.training import BatchResult

RESTARTS = 8
"""Restarts of a worker actor (and retries of its shard) before the generation fails."""


class ShardWorker:
    """A Ray actor's state: the data on its device and the pure evaluator (constructed once, reused).

    Args:
        arch: the architecture of every ticket.
        splits: a one-element list holding the object-store reference of the data (CPU tensors).
        cfg: fine-tuning settings.
        optimizer: the optimizer's settings.
        seed: ``campaign.seed``.
        device: ``"cuda"`` for an actor with a GPU, else ``"cpu"``.
        threads: torch threads of the actor on the CPU (>= 1).
        max_memory_mb: ``campaign.max_memory_mb``.
    """

    def __init__(
        self,
        arch: Architecture,
        splits: list,
        cfg: FinetuneConfig,
        optimizer: OptimizerConfig,
        seed: int,
        device: str,
        threads: int,
        max_memory_mb: float,
    ) -> None:
        import ray

        if device == "cpu":
            torch.set_num_threads(threads)
        data: Splits = ray.get(splits[0])  # fetched here: a restarted actor fetches it again
        self.evaluator = Evaluator(arch, data.to(device), cfg, optimizer, seed, max_memory_mb=max_memory_mb)

    def evaluate(self, genomes: list[tuple], generation: int, options: dict[str, Any]) -> BatchResult | None:
        """Evaluate one shard: ``genomes`` are ``(theta0, masks, init_scheme, init_std, genes, optimizer_state)``
        tuples; ``options`` the keyword arguments of :meth:`Evaluator.evaluate`."""
        tickets = []
        for theta0, masks, scheme, std, genes, carried in genomes:
            ticket = Ticket(theta0, masks, scheme, std, genes=genes)
            ticket.optimizer_state = carried
            tickets.append(ticket)
        batch = self.evaluator.evaluate(tickets, generation, **options)
        kill_point("worker")
        return batch

    def pid(self) -> int:
        """The actor's process id."""
        return os.getpid()


def _genome(t: Ticket) -> tuple:
    """What a worker needs of a ticket: theta0, masks, initialiser, genes (hyperparameters) and optimizer state."""
    return (
        t.theta0,
        t.masks,
        t.init_scheme,
        t.init_std,
        getattr(t, "genes", None),
        getattr(t, "optimizer_state", None),
    )


def shard_bounds(n: int, shards: int, block: int = 1) -> list[tuple[int, int]]:
    """Contiguous ``[start, stop)`` ranges splitting ``n`` individuals into at most ``shards`` non-empty shards of
    whole blocks.

    The ``ceil(n / block)`` blocks (the last one possibly short) are split as ``numpy.array_split`` splits: the
    first shards hold one more block.

    Args:
        n: individuals, >= 0.
        shards: at most this many shards (actors), >= 1.
        block: individuals per block, >= 1.
    """
    blocks = -(-n // block) if n else 0
    shards = max(1, min(shards, blocks))
    size, extra = divmod(blocks, shards)
    out, start = [], 0
    for i in range(shards):
        stop = start + size + (1 if i < extra else 0)
        out.append((start * block, min(n, stop * block)))
        start = stop
    return out if n else []


class RayBackend:
    """Evaluates each generation in shards over a pool of Ray actors, gathering the results in order.

    Args:
        evaluator: the run's pure evaluator: each actor builds its own from its settings (architecture,
            fine-tuning and optimizer settings, seed, memory budget) with the data fetched from the object store
            (sent there once, on the CPU); on the driver it cuts each batch into population blocks
            (:meth:`Evaluator.block_size`, ``campaign.population_block``), as a local run would.
        address: the cluster (``campaign.ray_address``: ``""``, ``"auto"`` or ``HOST:PORT``).
        workers: actors (``campaign.workers``); 0: one per GPU of the cluster, or one per
            ``worker_cpus`` CPUs.
        worker_cpus: CPUs and torch threads of an actor on a CPU cluster (>= 1).
        use_gpu: give each actor a GPU when the cluster has GPUs (False for ``campaign.device = "cpu"``).

    Attributes:
        actors: the actor handles, in shard order.
        overhead_seconds: summed over generations, the evaluation's wall time not spent fine-tuning
            or evaluating in the slowest shard (serialisation, scheduling, gathering; s).

    Raises:
        EvoticketError: when Ray is not installed or the cluster cannot be reached.
        ConfigError: when the cluster has no room for one actor.
    """

    def __init__(
        self,
        evaluator: Evaluator,
        *,
        address: str = "",
        workers: int = 0,
        worker_cpus: int = 1,
        use_gpu: bool = True,
    ) -> None:
        ray = connect(address)
        self._ray = ray
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0)) if use_gpu else 0
        cpus = int(resources.get("CPU", 0))
        if gpus:
            count, options, device = workers or gpus, {"num_gpus": 1, "num_cpus": 1}, "cuda"
        else:
            if cpus < worker_cpus:
                raise ConfigError(
                    f"campaign.worker_cpus: {worker_cpus} CPUs per Ray actor, but the cluster has {cpus}; "
                    f"must be <= {cpus}"
                )
            count, options, device = workers or max(1, cpus // worker_cpus), {"num_cpus": worker_cpus}, "cpu"
        actor = ray.remote(max_restarts=RESTARTS, max_task_retries=RESTARTS)(ShardWorker)
        ev = evaluator
        data = ray.put(ev.splits.to("cpu"))  # the data set goes to the object store once, not every generation
        self.actors = [
            actor.options(**options, **worker_options()).remote(
                ev.arch, [data], ev.cfg, ev.optimizer, ev.seed, device, worker_cpus, ev.max_memory_mb
            )
            for _ in range(count)
        ]
        self.evaluator = evaluator
        self._data = data  # kept alive for actor restarts
        self.device = device
        self.overhead_seconds = 0.0

    def evaluate(self, tickets: Sequence[Ticket], generation: int, **options: Any) -> BatchResult | None:
        """Evaluate the tickets in shards of whole population blocks, one shard per actor, and gather the results
        in population order.

        ``options`` are the keyword arguments of :meth:`Evaluator.evaluate` (weights, learned traits,
        steps, rung); the batch's block size is computed here and passed to every actor.

        Times: ``train_seconds`` and ``eval_seconds`` are those of the slowest shard (the shards run
        at once); the rest of the wall time is added to :attr:`overhead_seconds`.
        """
        ray = self._ray
        tickets = list(tickets)
        if not tickets:
            return None
        start = time.perf_counter()
        block = self.evaluator.block_size(tickets, self.device)
        options = {**options, "block": block}
        refs = []
        shards = shard_bounds(len(tickets), len(self.actors), block)
        for actor, (lo, hi) in zip(self.actors, shards, strict=False):
            genomes = ray.put([_genome(t) for t in tickets[lo:hi]])
            refs.append(actor.evaluate.remote(genomes, generation, {**options, "first": lo}))
        parts = ray.get(refs)
        out = BatchResult.concat(parts)
        slowest = max(parts, key=lambda p: p.train_seconds + p.eval_seconds)
        out.train_seconds, out.eval_seconds = slowest.train_seconds, slowest.eval_seconds
        self.overhead_seconds += max(0.0, time.perf_counter() - start - out.train_seconds - out.eval_seconds)
        return out

    def pids(self) -> list[int]:
        """The actors' process ids, in shard order."""
        return self._ray.get([a.pid.remote() for a in self.actors])

    def close(self) -> None:
        """End the actors (the cluster stays up)."""
        for a in self.actors:
            self._ray.kill(a)
        self.actors = []


__all__ = ["RESTARTS", "RayBackend", "ShardWorker", "shard_bounds"]
