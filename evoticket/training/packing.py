"""Packing: the trainings of several runs at once, their steps in shared batches.

An experiment's cells are small batches (one network and its control, IMP's ticket and its control, a GA's
population): one at a time they leave a GPU nearly idle and spend a CPU's time in per-step overhead.
:class:`Packer` runs several of them together, each in its own thread, and takes turns: one thread runs at a
time (so a run's Python code, its global random generators and its files are as they are alone), and when
every running run is waiting on training steps (:meth:`evoticket.training.TrainState.run_steps`), the waiting
trainings that can share a batch (same data, architecture, trainable scope, optimizer settings and batch size)
take their next steps as one stacked batch, their networks side by side.

Sharing a batch changes nothing under ``optimizer.data_order = "individual"``: each network draws its own
minibatches and follows its own optimizer arithmetic, and every batched operation computes each network's slice
as it computes it alone, so a packed run gives bit for bit what it gives alone on the CPU (the tests check it).
Runs of the common data order (one minibatch sequence per batch) train alone, never packed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from evoticket.core.seeds import capture_rng, restore_rng
from evoticket.training.memory import population_chunk
from evoticket.training.meter import Meter
from evoticket.training.optimizer import STATE_KEYS, OptimizerState
from evoticket.training.state import TrainState

_LOCAL = threading.local()


def active_packer() -> Packer | None:
    """The :class:`Packer` running the current thread's run, or ``None`` (a run alone)."""
    return getattr(_LOCAL, "packer", None)


def pack_key(state: TrainState, batches: torch.Tensor) -> tuple | None:
    """What trainings must share to take their steps in one batch; ``None`` for a training that cannot share one
    (the common data order, edge-popup's scores)."""
    if state.scope.scores or batches.dim() != 3 or state.cfg.data_order != "individual":
        return None
    first = next(iter(state.params.values()))
    return (
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
    """One run's thread and its turn."""

    index: int
    task: Callable[[], Any]
    thread: threading.Thread | None = None
    rng: dict[str, Any] | None = None
    request: _Request | None = None
    result: Any = None
    error: BaseException | None = None
    finished: bool = False


class Cancelled(RuntimeError):
    """Raised in a packed run's thread when the packer stops (another run failed, or the caller was interrupted)."""


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
    """Runs tasks (an experiment's cells) in threads that take turns, their training steps packed into shared batches.

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
        self._cond = threading.Condition()
        self._turn: _Run | None = None
        self._ready: list[_Run] = []  # runs waiting for their turn, in order
        self._waiting: list[_Run] = []  # runs waiting on training steps, in order of their requests
        self._queue: list[_Run] = []  # tasks not started
        self._live = 0
        self._cancelled: BaseException | None = None

    # ----------------------------------------------------------------- running
    def run(self, tasks: Sequence[Callable[[], Any]], on_done: Callable[[int, Any], None] | None = None) -> list[Any]:
        """Run every task, at most :attr:`width` at once; returns their results in order.

        Args:
            tasks: callables run in threads; each sees this packer as :func:`active_packer`.
            on_done: called (in the finished task's thread, in its turn) with the task's index and result.

        Raises:
            The first exception a task raised (the tasks still running are cancelled: they raise
            :class:`Cancelled` at their next training steps); KeyboardInterrupt likewise.
        """
        self._on_done = on_done
        runs = [_Run(i, task) for i, task in enumerate(tasks)]
        self._queue = list(runs)
        with self._cond:
            while self._queue and self._live < self.width:
                self._start(self._queue.pop(0))
            self._pass_turn()
        try:
            for r in runs:
                while True:
                    with self._cond:
                        if r.thread is None and self._cancelled is not None:
                            break  # never started
                    if r.thread is not None:
                        r.thread.join(0.2)
                        if not r.thread.is_alive():
                            break
                    else:
                        with self._cond:
                            self._cond.wait(0.2)
        except BaseException as e:  # KeyboardInterrupt: the runs stop at their next steps
            self.cancel(e)
            for r in runs:
                if r.thread is not None:
                    r.thread.join()
            raise
        errors = [r.error for r in runs if r.error is not None and not isinstance(r.error, Cancelled)]
        if errors:
            raise errors[0]
        return [r.result for r in runs]

    def cancel(self, reason: BaseException) -> None:
        """Stop: no task starts any more, and the running ones raise :class:`Cancelled` at their next steps."""
        with self._cond:
            if self._cancelled is None:
                self._cancelled = reason
            self._queue.clear()
            for r in self._waiting:
                r.request.error = Cancelled(f"stopped: {reason!r}")
                self._ready.append(r)
            self._waiting.clear()
            if self._turn is None:
                self._pass_turn()
            self._cond.notify_all()

    def _start(self, run: _Run) -> None:
        self._live += 1
        run.thread = threading.Thread(target=self._main, args=(run,), name=f"evoticket-pack-{run.index}", daemon=True)
        self._ready.append(run)
        run.thread.start()

    def _main(self, run: _Run) -> None:
        _LOCAL.packer = self
        self._wait_turn(run)
        try:
            if self._cancelled is not None:
                raise Cancelled(f"stopped: {self._cancelled!r}")
            run.result = run.task()
            if self._on_done is not None:
                self._on_done(run.index, run.result)
        except BaseException as e:
            run.error = e
            if not isinstance(e, Cancelled):
                self.cancel(e)
        finally:
            with self._cond:
                run.finished = True
                self._live -= 1
                while self._queue and self._live < self.width and self._cancelled is None:
                    self._start(self._queue.pop(0))
                self._turn = None
                self._pass_turn()
                self._cond.notify_all()

    def _wait_turn(self, run: _Run) -> None:
        with self._cond:
            while self._turn is not run:
                self._cond.wait()
        if run.rng is not None:
            restore_rng(run.rng)

    def _current(self) -> _Run:
        run = self._turn
        if run is None or run.thread is not threading.current_thread():
            raise RuntimeError("Packer: training steps requested outside the run whose turn it is")
        return run

    def _pass_turn(self) -> None:
        """Give the turn to the next ready run; with none ready and runs waiting on steps, run their steps first.
        Called with the lock held, by the run giving up its turn (or the caller, to start)."""
        while not self._ready and self._waiting and self._cancelled is None:
            self._run_round()
        self._turn = self._ready.pop(0) if self._ready else None
        self._cond.notify_all()

    # ---------------------------------------------------------------- steps
    def run_steps(self, state: TrainState, batches: torch.Tensor) -> None:
        """Take ``len(batches)`` steps of ``state``'s training, in batches shared with the other runs' trainings.

        Called by :meth:`TrainState.run_steps` in a packed run's thread; returns when the steps are done (the
        parameters, BatchNorm statistics, non-finite flags and optimizer state of ``state`` updated).

        Raises:
            Cancelled: when the packer stopped.
        """
        key = pack_key(state, batches)
        with self._cond:
            run = self._current()
            if self._cancelled is not None:
                raise Cancelled(f"stopped: {self._cancelled!r}")
            run.rng = capture_rng()
            run.request = _Request(state, batches, key)
            self._waiting.append(run)
            self._turn = None
            self._pass_turn()
        self._wait_turn(run)
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
        for run in list(self._waiting):
            request = run.request
            if request.left == 0 or request.error is not None:
                self._waiting.remove(run)
                self._ready.append(run)

    def _run_chunk(self, runs: list[_Run]) -> None:
        requests = [r.request for r in runs]
        steps = min(r.left for r in requests)
        try:
            if len(requests) == 1:
                request = requests[0]
                request.state._steps(request.batches[request.done : request.done + steps])
                self.stats.alone_steps += steps
            else:
                run_together([r.state for r in requests], [r.batches[r.done : r.done + steps] for r in requests])
                self.stats.packed_steps += steps
        except BaseException as e:  # every training of the batch fails with it
            for r in requests:
                r.error = e
            return
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
    carried = [
        _filled(s.optimizer_state(), {k: v for k, v in s.params.items() if k in trainable}, keys) for s in sources
    ]
    merged = TrainState(
        arch=first.arch,
        splits=first.splits,
        cfg=first.cfg,
        theta0=params,
        params=params,
        masks=cat(lambda s: s.masks),
        buffers={k: v.clone() for k, v in cat(lambda s: s.buffers).items()},
        scope=first.scope,
        bad=torch.zeros(len(sources) if len(sources) > len(states) else sum(sizes), dtype=torch.bool),
        meter=Meter.zeros(1),
        total=len(batches[0]),
        lr=torch.cat([s.lr for s in sources]) if first.lr is not None else None,
        carried=OptimizerState.concat(carried),
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
            s.bad |= merged.bad[part]
            s.carried = OptimizerState(
                reached.steps[part].clone(),
                {key: {n: t[part].clone() for n, t in per.items()} for key, per in reached.tensors.items()},
            )
            s._optimizer = s._gradient = None  # rebuilt from the carried state at the next steps alone
            start += p


__all__ = ["Cancelled", "PackStats", "Packer", "active_packer", "pack_key", "run_together"]
