"""``evoticket bench``: whole-population fine-tuning against the machine's limit, measured.

Four evaluators fine-tune the same P tickets (same theta0, masks and
minibatch sequence) and are timed side by side:

``batched``
    evoticket's own path, exactly as the campaign runs it:
    :func:`evoticket.training.finetune_tickets` (chunks of
    :func:`evoticket.training.population_chunk` individuals through
    :func:`evoticket.training.finetune_stacked`), timed by its
    ``BatchResult.train_seconds`` (the optimizer steps; validation excluded).
``generic``
    the same as ``batched``, but a built-in model runs as any ``nn.Module``
    does: through :mod:`evoticket.models.generic` (``torch.func.functional_call``
    under ``vmap``, autograd) instead of its hand-batched forward pass and
    hand-written backward. Measured for the built-in models only (a generic
    model's ``batched`` row is this path already).
``loop``
    what a DEAP user would write: one ``nn.Module`` per individual, masks via
    ``torch.nn.utils.prune``, ``torch.optim.Adam``, a Python loop over
    individuals (module construction and pruning are timed too).
``vmap``
    a plain ``torch.func`` reference: ``vmap(grad(loss))`` over the stacked
    parameters with ``functional_call``, masked gradients and a hand-written
    Adam update over the stacked tensors.

For each model and population size P it reports individual fine-tuning steps
per second, the achieved GFLOP/s and its fraction of the measured float32
matmul peak (a ``2048^3`` matmul on the CPU, ``8192^3`` on a GPU, timed in the
same run; on a GPU also the TF32 and bfloat16 peaks), and the peak memory.

FLOPs are *counted*, not measured: ``6 x (weights + biases) x positions x B``
per individual step for each prunable layer (forward 2, backward 4 per
parameter and example; positions 1 for a linear layer, ``L_out`` for a
``Conv1d``, ``H_out x W_out`` for a ``Conv2d``, from ``FlopCounterMode``).
Pruned weights are counted (the computation is dense) and the first layer's
unneeded input gradient is counted too.

The CIFAR-sized convolutional rows (``cifar-conv2``, ``cifar-resnet20``) are
measured on request (``--models``), at their own population sizes
(:data:`MODEL_POPULATIONS`) and batch size (:data:`MODEL_BATCH`): on 2 CPU
cores one of them takes minutes.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` above the memory in
use before the run; on the CPU the growth of the process's resident set
(``VmHWM`` from ``/proc/self/status``, reset through ``/proc/self/clear_refs``,
after glibc's ``malloc_trim`` has returned freed memory, in a separate untimed run) -- or, where that is not possible, the analytic estimate of
:func:`evoticket.training.bytes_per_individual` (the JSON says which).
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.utils import prune

from evoticket.config import OptimizerConfig
from evoticket.core.device import resolve_device
from evoticket.core.errors import ConfigError, unknown_name
from evoticket.data import Splits
from evoticket.genome import Ticket, stack_tickets
from evoticket.models import Architecture, build_architecture
from evoticket.operators import initTicket
from evoticket.training import (
    bytes_per_individual,
    chunk_size,
    finetune_tickets,
    minibatch_indices,
    output_positions,
    population_chunk,
)

BENCH_MODELS: dict[str, tuple[str, Callable[[], Architecture]]] = {
    "mnist1d-mlp": ("mlp 40-300-100-10 (MNIST-1D)", lambda: build_architecture("mlp", (40,), 10, [300, 100])),
    "lenet-300-100": ("mlp 784-300-100-10 (LeNet-300-100)", lambda: build_architecture("mlp", (784,), 10, [300, 100])),
    "mnist1d-cnn1d": ("cnn1d 25 channels (MNIST-1D)", lambda: build_architecture("cnn1d", (40,), 10, [25])),
    "cifar-conv2": (
        "conv2 on 3x32x32 (Frankle & Carbin's Conv-2)",
        lambda: build_architecture("conv2", (3, 32, 32), 10),
    ),
    "cifar-resnet20": (
        "resnet20 on 3x32x32 (He et al.'s CIFAR ResNet)",
        lambda: build_architecture("resnet20", (3, 32, 32), 10),
    ),
}
"""Benchmarked model key -> (description, architecture builder)."""

DEFAULT_MODELS = ("mnist1d-mlp", "lenet-300-100", "mnist1d-cnn1d")
"""The models ``evoticket bench`` measures unless ``--models`` says otherwise."""

MODEL_POPULATIONS: dict[str, tuple[int, ...]] = {"cifar-conv2": (8, 64), "cifar-resnet20": (8,)}
"""Population sizes of the convolutional rows (instead of the mode's)."""

MODEL_BATCH: dict[str, int] = {"cifar-conv2": 60, "cifar-resnet20": 128}
"""Batch sizes of the convolutional rows: Conv-2's 60 (Frankle & Carbin 2019, Figure 2) and the CIFAR ResNet's
128 (He et al. 2016); the others use ``OptimizerConfig().batch_size`` (100)."""

CONV_N_TRAIN, CONV_N_VAL = 2000, 500
"""Sizes of the random splits of the convolutional rows."""

DENSITY = 0.1
"""Fraction of every layer's weights kept by the benchmarked tickets."""

N_TRAIN, N_VAL = 4000, 1000
"""Sizes of the random training and validation splits (MNIST-1D's)."""


@dataclass(frozen=True)
class Mode:
    """How much a bench run measures.

    Attributes:
        populations: population sizes P.
        max_steps: timed steps per run, at most (fewer when a run would exceed ``target_seconds``).
        min_steps: timed steps per run, at least.
        target_seconds: aimed wall time of one timed run (s).
        repeats: timed runs per measurement; the median is reported.
        memory_population: P of the memory-budget check.
    """

    populations: tuple[int, ...]
    max_steps: int
    min_steps: int
    target_seconds: float
    repeats: int
    memory_population: int


FULL = Mode(
    populations=(1, 16, 64, 256), max_steps=50, min_steps=10, target_seconds=3.0, repeats=3, memory_population=64
)
QUICK = Mode(populations=(1, 64), max_steps=20, min_steps=3, target_seconds=1.0, repeats=2, memory_population=64)
GPU_POPULATIONS = (1024,)
"""Population sizes added on a GPU."""


@dataclass
class Row:
    """One measurement: one model, population size and evaluator.

    Attributes:
        model: key of :data:`BENCH_MODELS`.
        population: P.
        evaluator: ``batched``, ``generic``, ``loop`` or ``vmap``.
        device: where it ran, e.g. ``cpu`` or ``cuda:0``.
        batch_size: examples per minibatch, B.
        steps: timed steps per individual in each run.
        indiv_steps_per_s: individual fine-tuning steps per second (P x steps / median wall time).
        gflops: counted GFLOP/s (see the module docstring).
        peak_gflops: the measured float32 matmul peak (GFLOP/s).
        fraction_of_peak: ``gflops / peak_gflops``.
        peak_memory_mb: peak memory of one run (MiB), as ``memory_method`` says.
        individuals_held: individuals in memory at once: P for ``vmap``, the
            chunk size for ``batched`` (:func:`population_chunk`), 1 for ``loop``.
        peak_memory_mb_per_individual: ``peak_memory_mb / individuals_held``.
        memory_method: ``rss_hwm`` (CPU resident set growth), ``cuda_max_allocated`` or ``analytic``.
        seconds: the wall times of the timed runs (s).
        estimated: always False: every number is measured, none extrapolated.
    """

    model: str
    population: int
    evaluator: str
    device: str
    batch_size: int
    steps: int
    indiv_steps_per_s: float
    gflops: float
    peak_gflops: float
    fraction_of_peak: float
    peak_memory_mb: float
    peak_memory_mb_per_individual: float
    memory_method: str
    individuals_held: int
    seconds: list[float]
    estimated: bool = False


# ---------------------------------------------------------------------------
# counting and clocks


def step_flops(arch: Architecture, batch: int) -> int:
    """Counted FLOPs of one individual's training step.

    ``6 x (weights + biases) x positions x B`` summed over the prunable layers (positions: 1 for a linear
    layer, ``L_out`` for a ``Conv1d``, ``H_out x W_out`` for a ``Conv2d``;
    :func:`evoticket.training.output_positions`).

    Args:
        arch: the architecture.
        batch: examples per minibatch, B.

    Returns:
        FLOPs (dense count, pruned weights included).
    """
    positions = output_positions(arch)
    total = 0
    for spec in arch.layers:
        params = math.prod(spec.weight_shape) + (spec.out_features if spec.use_bias else 0)
        total += params * positions[spec.name]
    return 6 * total * batch


def cpu_busy(seconds: float = 0.5) -> float | None:
    """Fraction of the machine's CPU time spent busy over the next ``seconds`` (0..1), from ``/proc/stat``.

    Returns None where ``/proc/stat`` is not readable.
    """

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        return sum(values), idle

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return 1.0 - (idle1 - idle0) / max(1, total1 - total0)


def _now(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def matmul_peak(device: torch.device, dtype: torch.dtype = torch.float32, tf32: bool = False) -> float:
    """Measured matmul throughput of one large square matmul (GFLOP/s, median of repeats).

    Args:
        device: where to measure; ``2048^3`` on the CPU, ``8192^3`` on a GPU.
        dtype: ``torch.float32`` or ``torch.bfloat16``.
        tf32: on CUDA, allow TF32 for float32 (restored afterwards).
    """
    n = 8192 if device.type == "cuda" else 2048
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, generator=gen).to(dtype)
    b = torch.randn(n, n, device=device, generator=gen).to(dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    try:
        for _ in range(2):
            torch.mm(a, b, out=out)
        times = []
        deadline = time.perf_counter() + 1.5
        while len(times) < 5 or (time.perf_counter() < deadline and len(times) < 50):
            start = _now(device)
            torch.mm(a, b, out=out)
            times.append(_now(device) - start)
    finally:
        torch.set_float32_matmul_precision(previous)
    return 2 * n**3 / statistics.median(times) / 1e9


# ---------------------------------------------------------------------------
# memory


def _malloc_trim() -> None:
    """Return freed heap memory to the system (glibc), so reused memory shows up as resident-set growth."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


class MemoryMeter:
    """Peak memory of a block of work (MiB) on one device.

    On CUDA: ``torch.cuda.max_memory_allocated`` above the allocation at
    :meth:`start`. On the CPU: the growth of the resident set's high-water
    mark (``VmHWM``, reset by writing ``5`` to ``/proc/self/clear_refs``) over
    the resident set at :meth:`start`; ``method`` is ``analytic`` where that
    is not available (then :meth:`stop` returns ``None``).
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.method = "cuda_max_allocated" if device.type == "cuda" else "rss_hwm"
        self._base = 0.0
        if self.method == "rss_hwm" and not self._reset_hwm():
            self.method = "analytic"

    @staticmethod
    def _status(key: str) -> float:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024  # kB -> MiB
        raise OSError(f"/proc/self/status has no {key}")

    @staticmethod
    def _reset_hwm() -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            MemoryMeter._status("VmHWM")
        except OSError:
            return False
        return True

    def start(self) -> None:
        """Begin a measurement (on the CPU, first hand freed heap memory back to the system)."""
        if self.method == "cuda_max_allocated":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device) / 2**20
        elif self.method == "rss_hwm":
            _malloc_trim()
            self._reset_hwm()
            self._base = self._status("VmRSS")

    def stop(self) -> float | None:
        """Peak memory since :meth:`start` (MiB), or None for ``analytic``."""
        if self.method == "cuda_max_allocated":
            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device) / 2**20 - self._base
        if self.method == "rss_hwm":
            return max(0.0, self._status("VmHWM") - self._base)
        return None


# ---------------------------------------------------------------------------
# the problem and the three evaluators


@dataclass
class Problem:
    """P stacked tickets, random data and the fine-tuning settings, on one device.

    Attributes:
        arch: the architecture.
        tickets: the P tickets (CPU).
        theta0: parameter name -> ``(P, *shape)`` initial weights, on the device.
        masks: weight name -> ``(P, *shape)`` bool masks, on the device.
        splits: random training/validation data, on the device.
        cfg: fine-tuning settings (Adam, batch 100 by default).
    """

    arch: Architecture
    tickets: list[Ticket]
    theta0: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor]
    splits: Splits
    cfg: OptimizerConfig

    @property
    def population(self) -> int:
        """P."""
        return len(self.tickets)

    def batches(self, steps: int, seed: int = 0) -> torch.Tensor:
        """``(steps, B)`` minibatch indices on the device."""
        return minibatch_indices(self.splits.x_train.shape[0], steps, self.cfg.batch_size, seed, self.splits.device)


def make_problem(
    arch: Architecture,
    population: int,
    device: torch.device,
    cfg: OptimizerConfig | None = None,
    *,
    density: float = DENSITY,
    n_train: int = N_TRAIN,
    n_val: int = N_VAL,
    seed: int = 0,
) -> Problem:
    """Random tickets (``initTicket``, kaiming normal) and random data of the architecture's shape.

    Args:
        arch: the architecture.
        population: P >= 1.
        device: where the stacked tensors and data go.
        cfg: the optimizer's settings; default ``OptimizerConfig()`` (Adam, lr 2e-2, batch 100).
        density: kept fraction of every layer, in (0, 1].
        n_train, n_val: sizes of the random splits.
        seed: seed of tickets and data.
    """
    cfg = cfg or OptimizerConfig()
    gen = torch.Generator().manual_seed(seed)
    tickets = [initTicket(Ticket, arch, density, rng=gen) for _ in range(population)]
    theta0, masks = stack_tickets(tickets, device)

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.randn(n, *arch.input_shape, generator=gen), torch.randint(0, arch.num_classes, (n,), generator=gen)

    splits = Splits("random", *split(n_train), *split(n_val), *split(n_val), arch.num_classes).to(device)
    return Problem(arch, tickets, theta0, masks, splits, cfg)


Evaluator = Callable[[Problem, int, int, bool], tuple[float, dict[str, torch.Tensor] | None]]
"""``(problem, steps, seed, return_weights) -> (train seconds, weights or None)``.

Every evaluator trains on the minibatch sequence ``problem.batches(steps, seed)``.

Weights are parameter name -> ``(P, *shape)`` effective weights on the CPU."""


def run_batched(
    problem: Problem, steps: int, seed: int, return_weights: bool = False
) -> tuple[float, dict[str, torch.Tensor] | None]:
    """evoticket's batched fine-tuning, the campaign's own code path (:func:`finetune_tickets`).

    The tickets are stacked per chunk (:func:`population_chunk`) and
    fine-tuned by :func:`evoticket.training.finetune_stacked`; the time is the
    chunks' summed ``train_seconds`` (stacking and validation excluded).
    """
    p = problem
    result = finetune_tickets(p.tickets, p.arch, p.splits, p.cfg, seed, steps=steps, return_weights=return_weights)
    return result.train_seconds, result.weights


def generic_twin(arch: Architecture) -> Architecture:
    """A built-in model's network as the generic path runs it (every prunable layer named in ``ticket.prune``)."""
    if arch.generic:
        return arch
    return build_architecture(arch.name, arch.input_shape, arch.num_classes, arch.hidden, prune=["*"])


def run_generic(
    problem: Problem, steps: int, seed: int, return_weights: bool = False
) -> tuple[float, dict[str, torch.Tensor] | None]:
    """:func:`run_batched` through the generic ``torch.func`` path (:func:`generic_twin` of the model)."""
    p = problem
    arch = generic_twin(p.arch)
    result = finetune_tickets(p.tickets, arch, p.splits, p.cfg, seed, steps=steps, return_weights=return_weights)
    return result.train_seconds, result.weights


def run_loop(
    problem: Problem, steps: int, seed: int, return_weights: bool = False, individuals: int | None = None
) -> tuple[float, dict[str, torch.Tensor] | None]:
    """The per-individual loop: ``nn.Module`` + ``prune.custom_from_mask`` + ``torch.optim.Adam`` each.

    Args:
        problem: the tickets and data.
        steps: steps per individual.
        seed: seed of the minibatch sequence.
        return_weights: also return the fine-tuned effective weights.
        individuals: fine-tune only the first this many (warm-up, memory); default all.
    """
    p, cfg = problem, problem.cfg
    batches = p.batches(steps, seed)
    device = p.splits.device
    count = p.population if individuals is None else min(individuals, p.population)
    x, y = p.splits.x_train, p.splits.y_train
    weights: dict[str, list[torch.Tensor]] = {k: [] for k in p.theta0}
    seconds = 0.0
    for i in range(count):
        start = _now(device)
        module = p.arch.build_module().to(device)
        module.load_state_dict({k: v[i] for k, v in p.theta0.items()}, strict=False)  # buffers: the module's own
        for name, mask in p.masks.items():
            prune.custom_from_mask(module.get_submodule(name.rsplit(".", 1)[0]), "weight", mask[i])
        if cfg.optimizer == "adam":
            opt = torch.optim.Adam(module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        else:
            opt = torch.optim.SGD(module.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        for idx in batches:
            loss = F.cross_entropy(module(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        seconds += _now(device) - start
        if return_weights:  # module.weight is only refreshed by a forward pass: recompute orig * mask
            for name in p.theta0:
                layer, kind = name.rsplit(".", 1)
                sub = module.get_submodule(layer)
                value = (
                    getattr(sub, kind + "_orig") * getattr(sub, kind + "_mask")
                    if name in p.masks
                    else getattr(sub, kind)
                )
                weights[name].append(value.detach().cpu())
    return seconds, ({k: torch.stack(v) for k, v in weights.items()} if return_weights else None)


def run_vmap(
    problem: Problem, steps: int, seed: int, return_weights: bool = False
) -> tuple[float, dict[str, torch.Tensor] | None]:
    """The ``torch.func`` reference: ``vmap(grad)`` + ``functional_call``, hand-written Adam on stacked tensors.

    Raises:
        ValueError: if the problem's optimizer is not Adam.
    """
    p, cfg = problem, problem.cfg
    if cfg.optimizer != "adam":
        raise ValueError(f"the vmap reference implements Adam only, got {cfg.optimizer!r}")
    device = p.splits.device
    batches = p.batches(steps, seed)
    start = _now(device)
    module = p.arch.build_module().to(device)

    def sample_loss(params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(torch.func.functional_call(module, params, (x,)), y)

    grads_of = torch.func.vmap(torch.func.grad(sample_loss), in_dims=(0, None, None))
    params = {k: (v * p.masks[k] if k in p.masks else v).clone() for k, v in p.theta0.items()}
    masks = {k: m.to(params[k].dtype) for k, m in p.masks.items()}
    exp_avg = {k: torch.zeros_like(v) for k, v in params.items()}
    exp_avg_sq = {k: torch.zeros_like(v) for k, v in params.items()}
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    x, y = p.splits.x_train, p.splits.y_train
    for step, idx in enumerate(batches, start=1):
        grads = grads_of(params, x[idx], y[idx])  # name -> (P, *shape)
        bias1, bias2 = 1 - beta1**step, 1 - beta2**step
        for name, param in params.items():
            grad = grads[name] * masks[name] if name in masks else grads[name]
            if cfg.weight_decay:
                grad = grad.add(param, alpha=cfg.weight_decay)
            exp_avg[name].lerp_(grad, 1 - beta1)
            exp_avg_sq[name].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denom = (exp_avg_sq[name].sqrt() / math.sqrt(bias2)).add_(eps)
            param.addcdiv_(exp_avg[name], denom, value=-cfg.lr / bias1)
    seconds = _now(device) - start
    return seconds, ({k: v.cpu() for k, v in params.items()} if return_weights else None)


EVALUATORS: dict[str, Evaluator] = {"batched": run_batched, "generic": run_generic, "loop": run_loop, "vmap": run_vmap}
"""Evaluator name -> function; see the module docstring."""


# ---------------------------------------------------------------------------
# measuring


def measure(
    problem: Problem,
    evaluator: str,
    mode: Mode,
    peak: float,
    model: str,
    meter: MemoryMeter,
) -> Row:
    """Time one evaluator on one problem: a warm-up, then ``mode.repeats`` timed runs.

    The number of timed steps is chosen from the warm-up's speed so a run takes
    about ``mode.target_seconds``, within ``[mode.min_steps, mode.max_steps]``;
    every evaluator of one problem gets its own count (recorded in the row).

    Args:
        problem: the tickets and data.
        evaluator: key of :data:`EVALUATORS`.
        mode: steps, repeats and time budget.
        peak: the float32 matmul peak (GFLOP/s) the row is compared with.
        model: key of :data:`BENCH_MODELS`, for the row.
        meter: the memory meter of the device.
    """
    run = EVALUATORS[evaluator]
    device = problem.splits.device
    p = problem.population
    warm_steps = 2
    if evaluator == "loop":  # a few individuals are enough to warm up and to estimate the speed
        warm_ind = min(p, 4)
        seconds, _ = run_loop(problem, warm_steps, 1, individuals=warm_ind)
        rate = warm_ind * warm_steps / max(seconds, 1e-9)
    else:
        run(problem, warm_steps, 1, False)
        seconds, _ = run(problem, warm_steps, 1, False)
        rate = p * warm_steps / max(seconds, 1e-9)
    steps = int(min(mode.max_steps, max(mode.min_steps, mode.target_seconds * rate / p)))
    times = [run(problem, steps, 2, False)[0] for _ in range(mode.repeats)]
    seconds = statistics.median(times)
    rate = p * steps / seconds
    gflops = rate * step_flops(problem.arch, problem.cfg.batch_size) / 1e9
    # memory: one more, untimed run (releasing freed memory first would slow a timed one);
    # the loop holds one individual at a time, so a few individuals show its peak
    meter.start()
    if evaluator == "loop":
        run_loop(problem, warm_steps, 1, individuals=min(p, 4))
    else:
        run(problem, warm_steps, 1, False)
    peak_mb = meter.stop()
    n_val = problem.splits.x_val.shape[0]
    arch = generic_twin(problem.arch) if evaluator == "generic" else problem.arch
    held = {"loop": 1, "vmap": p}.get(evaluator, min(p, population_chunk(arch, problem.cfg, n_val, DENSITY, device)))
    if peak_mb is None:
        peak_mb = held * bytes_per_individual(problem.arch, problem.cfg, n_val, DENSITY) / 2**20
    return Row(
        model=model,
        population=p,
        evaluator=evaluator,
        device=str(device),
        batch_size=problem.cfg.batch_size,
        steps=steps,
        indiv_steps_per_s=rate,
        gflops=gflops,
        peak_gflops=peak,
        fraction_of_peak=gflops / peak,
        peak_memory_mb=peak_mb,
        peak_memory_mb_per_individual=peak_mb / held,
        memory_method=meter.method,
        individuals_held=held,
        seconds=times,
    )


def memory_check(
    arch: Architecture,
    population: int,
    device: torch.device,
    meter: MemoryMeter,
    steps: int = 5,
    cfg: OptimizerConfig | None = None,
    n_train: int = N_TRAIN,
    n_val: int = N_VAL,
) -> dict[str, object]:
    """Fine-tune P tickets through :func:`finetune_tickets` under a ``max_memory_mb`` that forces chunks.

    The budget is a third of the estimated memory of the whole population, so
    the population is split into about three chunks of the size the budget
    allows (:func:`evoticket.training.chunk_size`; the CPU's smaller default
    block of a convolutional network is bypassed, so the estimate itself is
    what is tested); the measured peak should stay under the budget. The
    budget covers what grows with the population (:func:`bytes_per_individual`);
    fixed costs (the data, one block of gathered minibatches, BLAS/oneDNN
    scratch; about 20 MiB on the CPU) come on top, so budgets of a few tens of
    MiB can be exceeded by them.

    Args:
        arch: the architecture.
        population: P.
        device: where it runs.
        meter: the memory meter of the device.
        steps: fine-tuning steps.
        cfg: the optimizer's settings; default ``OptimizerConfig()``.
        n_train, n_val: sizes of the random splits.

    Returns:
        A JSON-able dict: budget, chunk size and count, estimated and measured
        peak (MiB), and whether the peak stayed within the budget.
    """
    problem = make_problem(arch, population, device, cfg, n_train=n_train, n_val=n_val)
    n_val = problem.splits.x_val.shape[0]
    per_individual = bytes_per_individual(arch, problem.cfg, n_val, DENSITY)
    budget = max(1.0, population * per_individual / 3 / 2**20)
    cfg = problem.cfg
    chunk = chunk_size(arch, cfg, n_val, DENSITY, max_memory_mb=budget)
    finetune_tickets(problem.tickets[:1], arch, problem.splits, cfg, seed=0, steps=1, block=chunk)  # warm-up
    meter.start()
    finetune_tickets(problem.tickets, arch, problem.splits, cfg, seed=0, steps=steps, max_memory_mb=budget, block=chunk)
    measured = meter.stop()
    return {
        "population": population,
        "batch_size": cfg.batch_size,
        "max_memory_mb": budget,
        "chunk_size": chunk,
        "chunks": math.ceil(population / chunk),
        "estimated_peak_mb": chunk * per_individual / 2**20,
        "measured_peak_mb": measured,
        "memory_method": meter.method,
        "within_budget": None if measured is None else measured <= budget,
    }


def model_settings(model: str, cfg: OptimizerConfig | None = None) -> tuple[OptimizerConfig, int, int]:
    """The optimizer's settings (the model's :data:`MODEL_BATCH`) and the split sizes a bench model runs with."""
    cfg = cfg or OptimizerConfig()
    if model in MODEL_BATCH:
        return dataclasses.replace(cfg, batch_size=MODEL_BATCH[model]), CONV_N_TRAIN, CONV_N_VAL
    return cfg, N_TRAIN, N_VAL


def bench_rows(
    models: Sequence[str],
    populations: Sequence[int],
    evaluators: Sequence[str],
    mode: Mode,
    device: torch.device,
    peak: float,
    cfg: OptimizerConfig | None = None,
    log: Callable[[str], None] | None = None,
) -> list[Row]:
    """Measure every (model, population, evaluator), sequentially.

    Args:
        models: keys of :data:`BENCH_MODELS`.
        populations: population sizes.
        evaluators: keys of :data:`EVALUATORS`.
        mode: steps, repeats and time budget.
        device: where everything runs.
        peak: float32 matmul peak (GFLOP/s).
        cfg: the optimizer's settings; default ``OptimizerConfig()``.
        log: called with one progress line per measurement.
    """
    meter = MemoryMeter(device)
    rows = []
    for model in models:
        arch = BENCH_MODELS[model][1]()
        model_cfg, n_train, n_val = model_settings(model, cfg)
        for p in MODEL_POPULATIONS.get(model, populations):
            problem = make_problem(arch, p, device, model_cfg, n_train=n_train, n_val=n_val)
            for evaluator in evaluators:
                if arch.generic and evaluator in ("generic", "vmap"):  # batched is the generic path already
                    continue
                row = measure(problem, evaluator, mode, peak, model, meter)
                rows.append(row)
                if log:
                    log(_format_row(row, None))
            del problem
    return rows


# ---------------------------------------------------------------------------
# reporting


_HEADER = (
    f"{'model':<14} {'P':>5} {'evaluator':<8} {'steps':>5} {'indiv steps/s':>13} {'GFLOP/s':>8} "
    f"{'% peak':>7} {'peak MiB':>9} {'MiB/indiv':>9} {'vs loop':>8}"
)


def _format_row(row: Row, loop_rate: float | None) -> str:
    speedup = f"{row.indiv_steps_per_s / loop_rate:7.1f}x" if loop_rate else f"{'':>8}"
    return (
        f"{row.model:<14} {row.population:>5} {row.evaluator:<8} {row.steps:>5} {row.indiv_steps_per_s:>13.0f} "
        f"{row.gflops:>8.1f} {100 * row.fraction_of_peak:>6.1f}% {row.peak_memory_mb:>9.1f} "
        f"{row.peak_memory_mb_per_individual:>9.2f} {speedup}"
    )


def format_table(rows: Sequence[Row]) -> str:
    """The rows as a fixed-width text table, with each row's speed-up over the ``loop`` evaluator."""
    loop = {(r.model, r.population): r.indiv_steps_per_s for r in rows if r.evaluator == "loop"}
    lines = [_HEADER, "-" * len(_HEADER)]
    lines += [_format_row(r, loop.get((r.model, r.population))) for r in rows]
    return "\n".join(lines)


def run_bench(
    quick: bool = False,
    json_path: str | os.PathLike | None = None,
    device: str = "auto",
    *,
    mode: Mode | None = None,
    models: Sequence[str] | None = None,
    memory_model: str = "lenet-300-100",
    matmul_precision: str = "highest",
    populations: Sequence[int] | None = None,
) -> int:
    """Run the benchmark, print the table and optionally write JSON.

    Args:
        quick: :data:`QUICK` mode (P in {1, 64}, fewer steps; about a minute on 2 CPU cores)
            instead of :data:`FULL` (P in {1, 16, 64, 256}, plus 1024 on a GPU).
        json_path: where to write ``{"torch_version", "threads", "device",
            "peak_gflops", "rows", "memory_check", ...}``; None writes nothing.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        mode: overrides the mode ``quick`` selects (e.g. a tiny one for tests).
        models: keys of :data:`BENCH_MODELS` to measure; default :data:`DEFAULT_MODELS`.
        memory_model: the model of the memory-budget check (at its :data:`MODEL_BATCH` and
            ``mode.memory_population``, or 16 for a convolutional model).
        matmul_precision: the float32 matmul precision of the timed rows (``campaign.matmul_precision``: highest,
            or high for TF32 on a GPU); their ``fraction_of_peak`` is then of the TF32 peak on a GPU.
        populations: the population sizes to measure (>= 1 each); default the mode's (and 1024 on a GPU).

    Returns:
        The exit status, 0.

    Raises:
        ConfigError: if ``device`` is not available.
    """
    dev = resolve_device(device)
    mode = mode or (QUICK if quick else FULL)
    models = list(models or DEFAULT_MODELS)
    unknown = [m for m in [*models, memory_model] if m not in BENCH_MODELS]
    if unknown:
        raise ConfigError(unknown_name("bench model", unknown[0], BENCH_MODELS))
    if populations is not None and (not populations or min(populations) < 1):
        raise ConfigError(f"--populations: need sizes >= 1, e.g. 1,256,1024; got {list(populations)}")
    populations = tuple(populations) if populations else mode.populations
    if dev.type == "cuda" and mode in (FULL, QUICK) and populations == mode.populations:
        populations += GPU_POPULATIONS
    busy_before = cpu_busy()
    threads = torch.get_num_threads()
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else (platform.processor() or platform.machine())
    print(f"evoticket bench: torch {torch.__version__}, device {dev} ({name}), {threads} threads, {mode}")
    if busy_before is not None and busy_before > 0.1:
        print(f"warning: the CPUs were {100 * busy_before:.0f}% busy before starting: other processes skew timings")
    started = time.perf_counter()
    peaks = {"float32": matmul_peak(dev)}
    if dev.type == "cuda":
        peaks["tf32"] = matmul_peak(dev, tf32=True)
        peaks["bfloat16"] = matmul_peak(dev, torch.bfloat16)
    print("matmul peak (GFLOP/s): " + ", ".join(f"{k} {v:.0f}" for k, v in peaks.items()))
    if matmul_precision not in ("highest", "high", "medium"):
        raise ConfigError(f"--matmul-precision: {matmul_precision!r}; valid: highest, high, medium")
    peak = peaks["tf32"] if matmul_precision != "highest" and "tf32" in peaks else peaks["float32"]
    print(
        f"matmul precision {matmul_precision}: fractions of the {'TF32' if peak is not peaks['float32'] else 'float32'} peak"
    )
    print(_HEADER)
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(matmul_precision)
    try:
        rows = bench_rows(models, populations, list(EVALUATORS), mode, dev, peak, log=print)
    finally:
        torch.set_float32_matmul_precision(previous)
    print()
    print(format_table(rows))
    meter = MemoryMeter(dev)
    memory_cfg, n_train, n_val = model_settings(memory_model)
    memory_population = 16 if memory_model in MODEL_POPULATIONS else mode.memory_population
    check = memory_check(
        BENCH_MODELS[memory_model][1](), memory_population, dev, meter, cfg=memory_cfg, n_train=n_train, n_val=n_val
    )
    check["model"] = memory_model
    measured = check["measured_peak_mb"]
    print(
        f"\nmemory budget: {memory_model} P={check['population']} under max_memory_mb={check['max_memory_mb']:.0f}: "
        f"{check['chunks']} chunks of {check['chunk_size']}, estimated peak {check['estimated_peak_mb']:.0f} MiB, "
        + (f"measured {measured:.0f} MiB ({check['memory_method']})" if measured is not None else "not measured")
    )
    elapsed = time.perf_counter() - started
    print(f"done in {elapsed:.0f} s")
    if json_path is not None:
        out = {
            "torch_version": torch.__version__,
            "threads": threads,
            "device": str(dev),
            "device_name": name,
            "mode": "quick" if mode == QUICK else "full" if mode == FULL else asdict(mode),
            "settings": {"batch_size": OptimizerConfig().batch_size, "optimizer": "adam", "density": DENSITY},
            "peak_gflops": peaks,
            "matmul_precision": matmul_precision,
            "cpu_busy_before": busy_before,
            "cpu_busy_after": cpu_busy(),
            "seconds": elapsed,
            "rows": [asdict(r) for r in rows],
            "memory_check": check,
        }
        path = Path(json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {path}")
    return 0
