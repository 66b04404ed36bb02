"""Packing: the trainings of several runs at once, their steps in shared batches.

An experiment's cells are small batches (one network and its control, IMP's ticket and its control, a GA's
population): one at a time they leave a GPU nearly idle and spend a CPU's time in per-step overhead.
:class:`Packer` runs several of them together, each a coroutine (a greenlet) on one thread, taking turns: one
runs at a time (so a run's Python code, its global random generators and its files are as they are alone), and when
every running run is waiting on training steps (:meth:`evoticket.training.TrainState.run_steps`), the waiting
trainings that can share a batch (same data, architecture, trainable scope, optimizer settings and batch size)
take their next steps as one stacked batch, their networks side by side.

Sharing a batch changes nothing under ``optimizer.data_order = "individual"``: each network draws its own
minibatches and follows its own optimizer arithmetic, and every batched operation computes each network's slice
as it computes it alone, so a packed run gives bit for bit what it gives alone on the CPU (the tests check it).
Runs of the common data order (one minibatch sequence per batch) train alone, never packed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import greenlet
import torch

from evoticket.core.seeds import capture_rng, restore_rng
from evoticket.training.memory import population_chunk
from evoticket.training.meter import Meter
from evoticket.training.optimizer import STATE_KEYS, OptimizerState
from evoticket.training.state import TrainState

_PACKED: dict[Any, tuple[Packer, _Run]] = {}  # each packed run's greenlet -> its packer and its run


def active_packer() -> Packer | None:
    """The :class:`Packer` running the current run, or ``None`` (a run alone)."""
    found = _PACKED.get(greenlet.getcurrent()) if _PACKED else None
    return found[0] if found else None


def pack_key(state: TrainState, batches: torch.Tensor) -> tuple | None:
    """What trainings must share to take their steps in one batch; ``None`` for a training that cannot share one
    (the common data order)."""
    if batches.dim() != 3 or state.cfg.data_order != "individual":
        return None
    first = next(iter(state.params.values()))
    return (
        torch.get_float32_matmul_precision(),  # the run's own (campaign.matmul_precision): its batch computes under it
        id(state.splits.x_train),
        state.arch,
        state.scope.name,
        state.cfg,
        state.lr is None,
        batches.shape[-1],
        tuple(sorted(state.buffers)),
        first.dtype,
        first.device,
    )


@dataclass
class _Request:
    """A run's wait for ``len(batches)`` steps of its training."""

    state: TrainState
    batches: torch.Tensor
    key: tuple
    done: int = 0
    error: BaseException | None = None

    @property
    def left(self) -> int:
        return len(self.batches) - self.done


@dataclass
class _Run:
    """One run: its greenlet, and the steps it waits for."""

    index: int
    task: Callable[[], Any]
    glet: Any = None
    request: _Request | None = None
    result: Any = None
    error: BaseException | None = None


class Cancelled(RuntimeError):
    """Raised in a packed run when the packer stops (another run failed, or the caller was interrupted)."""


@dataclass
class PackStats:
    """What a :class:`Packer` did.

    Attributes:
        rounds: batches run (each the next steps of one or more trainings).
        packed_steps: steps run in batches of more than one training.
        alone_steps: steps run by a training alone.
        networks: the largest number of networks in one batch.
    """

    rounds: int = 0
    packed_steps: int = 0
    alone_steps: int = 0
    networks: int = 0


class Packer:
    """Runs tasks (an experiment's cells) as coroutines that take turns, their training steps packed into shared batches.

    Each task runs in a greenlet on the calling thread (one thread: the BLAS and OpenMP thread pools of the main
    thread serve every run, and nothing runs at the same time as anything else). A task runs until it asks for
    training steps (:meth:`run_steps`) or ends; when every started task waits on steps, the waiting trainings take
    their next steps together (:meth:`_run_round`), and those whose steps are done continue, in order.

    Args:
        width: most tasks running at once (>= 1).
        max_memory_mb: the memory budget of one packed batch (MiB; ``campaign.max_memory_mb``): a batch holds
            at most :func:`evoticket.training.population_chunk` networks of its architecture at full density.
    """

    def __init__(self, width: int, max_memory_mb: float = 2048.0) -> None:
        if width < 1:
            raise ValueError(f"Packer: width must be >= 1, got {width}")
        self.width = width
        self.max_memory_mb = max_memory_mb
        self.stats = PackStats()
        self._waiting: list[_Run] = []  # runs waiting on training steps, in order of their requests
        self._scheduler: Any = None

    def run(self, tasks: Sequence[Callable[[], Any]], on_done: Callable[[int, Any], None] | None = None) -> list[Any]:
        """Run every task, at most :attr:`width` at once; returns their results in order.

        Args:
            tasks: callables; each sees this packer as :func:`active_packer`.
            on_done: called with a task's index and result when it ends.

        Raises:
            Exception: the first exception a task raised (and KeyboardInterrupt), after the tasks still running were
                stopped: :class:`Cancelled` raised in each where it waits for steps, so that its ``finally`` blocks run.
        """
        self._scheduler = greenlet.getcurrent()
        runs = [_Run(i, task) for i, task in enumerate(tasks)]
        queue = list(runs)
        ready: list[_Run] = []
        live = 0
        try:
            while queue or ready or self._waiting:
                while queue and live < self.width:
                    run = queue.pop(0)
                    run.glet = greenlet.greenlet(run.task, parent=self._scheduler)
                    _PACKED[run.glet] = (self, run)
                    ready.append(run)
                    live += 1
                if not ready:
                    self._run_round()
                    ready = [r for r in self._waiting if r.request.left == 0 or r.request.error is not None]
                    self._waiting = [r for r in self._waiting if r not in ready]
                    continue
                run = ready.pop(0)
                try:
                    result = run.glet.switch()
                except Exception as e:  # the task failed: the others stop, then its error is raised
                    run.error = e
                    self._cancel(runs, e)
                    raise
                if run.glet.dead:
                    run.result = result
                    live -= 1
                    _PACKED.pop(run.glet, None)
                    if on_done is not None:
                        on_done(run.index, result)
        except BaseException as e:
            self._cancel(runs, e)
            raise
        finally:
            for run in runs:
                _PACKED.pop(run.glet, None)
        return [r.result for r in runs]

    def _cancel(self, runs: Sequence[_Run], reason: BaseException) -> None:
        """Stop every run still going: :class:`Cancelled` raised where it waits (its ``finally`` blocks run)."""
        self._waiting = []
        for run in runs:
            if run.glet is not None and run.glet and not run.glet.dead:
                try:
                    run.glet.throw(Cancelled(f"stopped: {reason!r}"))
                except BaseException:
                    pass
            _PACKED.pop(run.glet, None)

    # ---------------------------------------------------------------- steps
    def run_steps(self, state: TrainState, batches: torch.Tensor, key: tuple | None = None) -> None:
        """Take ``len(batches)`` steps of ``state``'s training, in batches shared with the other runs' trainings.

        Called by :meth:`TrainState.run_steps` in a packed run; returns when the steps are done (the parameters,
        BatchNorm statistics, non-finite flags and optimizer state of ``state`` updated). The run's global random
        generators, autograd mode and matmul precision are its own across the wait.

        Args:
            state: the training.
            batches: its ``(steps, P, B)`` minibatch indices.
            key: its :func:`pack_key`, when the caller has it.

        Raises:
            Cancelled: when the packer stopped.
        """
        run = _PACKED[greenlet.getcurrent()][1]
        run.request = _Request(state, batches, key if key is not None else pack_key(state, batches))
        rng, grad, precision = capture_rng(), torch.is_grad_enabled(), torch.get_float32_matmul_precision()
        self._waiting.append(run)
        self._scheduler.switch()
        restore_rng(rng)
        torch.set_grad_enabled(grad)
        torch.set_float32_matmul_precision(precision)
        request, run.request = run.request, None
        if request.error is not None:
            raise request.error

    def _run_round(self) -> None:
        """The next steps of every waiting training: those with the same key together, as many steps as the
        shortest of them has left (the others keep waiting for the rest)."""
        groups: dict[tuple, list[_Run]] = {}
        for run in self._waiting:
            groups.setdefault(run.request.key, []).append(run)
        for runs in groups.values():
            first = runs[0].request.state
            limit = population_chunk(
                first.arch,
                first.cfg,
                first.splits.x_val.shape[0],
                1.0,
                first.splits.device,
                max_memory_mb=self.max_memory_mb,
            )
            chunk: list[_Run] = []
            size = 0
            for run in runs:
                p = run.request.state.population
                if chunk and size + p > limit:
                    self._run_chunk(chunk)
                    chunk, size = [], 0
                chunk.append(run)
                size += p
            self._run_chunk(chunk)

    def _run_chunk(self, runs: list[_Run]) -> None:
        requests = [r.request for r in runs]
        steps = min(r.left for r in requests)
        precision = torch.get_float32_matmul_precision()
        try:
            torch.set_float32_matmul_precision(requests[0].key[0])
            with torch.enable_grad():
                if len(requests) == 1:
                    request = requests[0]
                    request.state._steps(request.batches[request.done : request.done + steps])
                    self.stats.alone_steps += steps
                else:
                    batches = [r.batches[r.done : r.done + steps] for r in requests]
                    run_together([r.state for r in requests], batches)
                    self.stats.packed_steps += steps
        except Exception as e:  # every training of the batch fails with it
            for r in requests:
                r.error = e
            return
        finally:
            torch.set_float32_matmul_precision(precision)
        self.stats.rounds += 1
        self.stats.networks = max(self.stats.networks, sum(r.state.population for r in requests))
        for r in requests:
            r.done += steps


def _filled(state: OptimizerState | None, params: dict[str, torch.Tensor], keys: Sequence[str]) -> OptimizerState:
    """``state`` with every key and parameter present (zeros where it has none; a fresh optimizer: step 0)."""
    p = next(iter(params.values())).shape[0]
    steps = state.steps.cpu() if state is not None else torch.zeros(p, dtype=torch.int64)
    held = state.tensors if state is not None else {}
    tensors = {
        key: {
            name: held.get(key, {}).get(name, torch.zeros_like(param, dtype=torch.float32))
            for name, param in params.items()
        }
        for key in keys
    }
    return OptimizerState(steps, tensors)


def run_together(states: Sequence[TrainState], batches: Sequence[torch.Tensor]) -> None:
    """Take the same number of steps of several trainings in one stacked batch (their networks side by side).

    Every state must share a :func:`pack_key`. Each state's parameters, BatchNorm statistics, non-finite flags and
    optimizer state (left as its carried state, :attr:`TrainState.carried`) come back as they would from its own
    :meth:`TrainState._steps`; the meter is each state's own affair.

    A single network trains next to a copy of itself, discarded: a batched matmul of one matrix is computed by
    another kernel than one of several (CPU: ``bmm`` of batch 1 is ``mm``), so that a network's arithmetic is the
    same whether it trains alone or packed.

    Args:
        states: the trainings.
        batches: each one's ``(steps, P_i, B)`` minibatch indices, the same ``steps``.
    """
    first = states[0]
    trainable = first.scope.trainable(first.arch)
    keys = [k for k in STATE_KEYS[first.cfg.optimizer] if k != "momentum_buffer" or first.cfg.momentum]
    sizes = [s.population for s in states]
    sources = list(states) + ([first] if sum(sizes) == 1 else [])  # one network: and a copy of it
    batches = list(batches) + ([batches[0]] if len(sources) > len(states) else [])
    cat = lambda get: {k: torch.cat([get(s)[k] for s in sources]) for k in get(first)}  # noqa: E731
    params = {k: v.detach().clone().requires_grad_(True) for k, v in cat(lambda s: s.params).items()}
    scores = {k: v.detach().clone() for k, v in cat(lambda s: s.scores).items()} if first.scope.scores else None
    trained = (lambda s: s.scores) if first.scope.scores else (lambda s: {k: s.params[k] for k in trainable})
    carried = [_filled(s.optimizer_state(), trained(s), keys) for s in sources]
    merged = TrainState(
        arch=first.arch,
        splits=first.splits,
        cfg=first.cfg,
        theta0=cat(lambda s: s.theta0),
        params=params,
        masks=cat(lambda s: s.masks),
        buffers={k: v.clone() for k, v in cat(lambda s: s.buffers).items()},
        scope=first.scope,
        bad=torch.zeros(len(sources) if len(sources) > len(states) else sum(sizes), dtype=torch.bool),
        meter=Meter.zeros(1),
        total=len(batches[0]),
        lr=torch.cat([s.lr for s in sources]) if first.lr is not None else None,
        carried=OptimizerState.concat(carried),
        scores=scores,
    )
    merged._steps(torch.cat(batches, 1))
    reached = merged.optimizer_state()
    start = 0
    with torch.no_grad():
        for s, p in zip(states, sizes, strict=True):
            part = slice(start, start + p)
            for k, v in s.params.items():
                v.copy_(merged.params[k][part])
            for k, v in s.buffers.items():
                v.copy_(merged.buffers[k][part])
            for k, v in (s.scores or {}).items():
                v.copy_(merged.scores[k][part])
            s.bad |= merged.bad[part]
            s.carried = OptimizerState(
                reached.steps[part].clone(),
                {key: {n: t[part].clone() for n, t in per.items()} for key, per in reached.tensors.items()},
            )
            s._optimizer = s._gradient = None  # rebuilt from the carried state at the next steps alone
            start += p


__all__ = ["Cancelled", "PackStats", "Packer", "active_packer", "pack_key", "run_together"]
