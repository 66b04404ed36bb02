"""Does a sparse ticket infer faster? Dense masked ``nn.Linear`` against torch sparse CSR, side by side.

For each network, density and batch size, the same random-masked network runs twice:

* ``dense``: the project's module (``arch.build_module()``) with the masked weights stored dense
  (``weight * mask``, plain ``nn.Linear``: the pruned zeros are multiplied like any other weight);
* ``sparse``: the same module through :func:`evoticket.genome.sparse.sparsify_module`, every masked
  ``Linear`` a :class:`~evoticket.genome.SparseLinear` (CSR weight, ``torch.addmm``; what
  ``evoticket export --format sparse`` and :func:`~evoticket.genome.load_sparse` give).

Networks (``mlp``, ReLU; every layer at the same density, random masks, biases dense):

* ``mnist1d``: 40-300-100-10, the project's MNIST-1D network;
* ``lenet``: 784-300-100-10, LeNet-300-100 on MNIST (the lottery-ticket paper's network);
* ``wide``: 4096-4096-10, one wide layer (``--wide N`` changes 4096), where sparse kernels have work to
  save (Elsen et al. 2019, arXiv:1911.09723, find sparse kernels beat dense ones from about 70-80%
  sparsity for large enough layers).

Densities 10%, 5%, 2% of every weight; batch sizes 1 (latency) and 256 (throughput). Measured under
``torch.inference_mode()``, on the CPU and, when ``torch.cuda.is_available()``, on CUDA. Side by side:
after a warm-up of each, every repeat times a block of ``number`` forward passes of dense then sparse
(the order alternating between repeats), so drift in the machine's load hits both alike; reported are
the medians over repeats of the latency per forward pass (ms), the throughput (samples/s = batch /
latency), ``ratio`` = sparse latency / dense latency (< 1: sparse is faster) and the largest
difference between the two outputs (a check that they compute the same network).

Run it alone on an idle machine (other processes skew timings; a warning says when the CPUs were
busy before starting)::

    python benchmarks/sparse_inference.py [--threads N] [--repeats 15] [--device all|cpu|cuda] \\
        [--json benchmarks/results/sparse-inference-cpu.json]
    python benchmarks/sparse_inference.py --quick --json /tmp/sparse.json   # a few seconds: fewer repeats
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from evoticket.bench import cpu_busy
from evoticket.genome import kept_count, random_mask
from evoticket.genome.sparse import SparseLinear, sparsify_module
from evoticket.models import build_architecture

NETS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "mnist1d": ((40,), (300, 100)),
    "lenet": ((784,), (300, 100)),
    "wide": ((4096,), (4096,)),
}
"""Network name -> (input shape, hidden sizes) of an ``mlp`` with 10 classes; ``wide``'s sizes follow ``--wide``."""
DENSITIES = (0.10, 0.05, 0.02)
"""Fraction of every weight kept."""
BATCHES = (1, 256)
"""Samples per forward pass."""
FULL = {"repeats": 15, "min_block_s": 0.05, "warmup_s": 0.2}
"""Repeats per row, the least time of one timed block (seconds) and the warm-up per variant (seconds)."""
QUICK = {"repeats": 3, "min_block_s": 0.002, "warmup_s": 0.01}
"""``--quick``: enough to check the script works, not to trust the numbers."""
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "sparse-inference-cpu.json"


@dataclass(frozen=True)
class Row:
    """One network, density, batch size and device: dense and sparse side by side.

    Attributes:
        net: key of :data:`NETS`; sizes: the layer sizes, input to classes.
        device: ``cpu`` or ``cuda``; device_name: the processor or GPU.
        density: the requested fraction kept; nnz: the kept weights; weights: all prunable weights.
        batch: samples per forward pass.
        number: forward passes per timed block; repeats: timed blocks per variant.
        dense_ms, sparse_ms: median latency of one forward pass (milliseconds).
        dense_min_ms, sparse_min_ms: the fastest block's latency (milliseconds).
        dense_samples_per_s, sparse_samples_per_s: ``batch / latency`` at the median.
        ratio: ``sparse_ms / dense_ms``; < 1 means the sparse network is faster.
        max_abs_diff: the largest difference between the two networks' outputs on the timed input.
    """

    net: str
    sizes: list[int]
    device: str
    device_name: str
    density: float
    nnz: int
    weights: int
    batch: int
    number: int
    repeats: int
    dense_ms: float
    sparse_ms: float
    dense_min_ms: float
    sparse_min_ms: float
    dense_samples_per_s: float
    sparse_samples_per_s: float
    ratio: float
    max_abs_diff: float


def build_pair(
    input_shape: Sequence[int], hidden: Sequence[int], density: float, seed: int = 0
) -> tuple[nn.Module, nn.Module, int, int]:
    """A random-masked ``mlp`` as a dense module and as a sparse one.

    Args:
        input_shape: one example's shape, e.g. ``(784,)``.
        hidden: hidden sizes.
        density: fraction of every weight kept, in (0, 1].
        seed: seed of the weights and masks.

    Returns:
        ``(dense, sparse, nnz, weights)``: the two modules in eval mode on the CPU, the kept and the
        total prunable weights.
    """
    arch = build_architecture("mlp", input_shape, 10, hidden)
    gen = torch.Generator().manual_seed(seed)
    params = arch.init_params("kaiming_normal", gen)
    masks = {}
    for spec in arch.layers:
        masks[spec.weight] = random_mask(spec.weight_shape, kept_count(density, math.prod(spec.weight_shape)), gen)
        params[spec.weight] = params[spec.weight] * masks[spec.weight]
        params[spec.bias] = torch.randn(spec.out_features, generator=gen) * 0.01
    dense = arch.build_module()
    dense.load_state_dict(params)
    dense = dense.eval().requires_grad_(False)
    sparse = arch.build_module()
    sparse.load_state_dict(params)
    sparse = sparsify_module(sparse, masks)
    nnz = sum(int(m.sum()) for m in masks.values())
    return dense, sparse, nnz, sum(m.numel() for m in masks.values())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _block(fn: Callable[[], Any], number: int, device: torch.device) -> float:
    """Seconds per call of ``fn`` over a block of ``number`` calls."""
    _sync(device)
    start = time.perf_counter()
    for _ in range(number):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / number


def time_side_by_side(
    dense: Callable[[], Any],
    sparse: Callable[[], Any],
    device: torch.device,
    *,
    repeats: int,
    min_block_s: float,
    warmup_s: float,
) -> tuple[list[float], list[float], int]:
    """Interleaved timings of two callables.

    Each is warmed up for ``warmup_s``; ``number`` is set so the slower one's block takes at least
    ``min_block_s``; then ``repeats`` rounds each time one block of each, dense first in even rounds
    and sparse first in odd ones.

    Returns:
        ``(dense, sparse, number)``: seconds per call of each block, and calls per block.
    """
    for fn in (dense, sparse):
        end = time.perf_counter() + warmup_s
        fn()
        while time.perf_counter() < end:
            fn()
    once = max(_block(dense, 1, device), _block(sparse, 1, device))
    number = max(1, int(min_block_s / max(once, 1e-7)))
    times: dict[str, list[float]] = {"dense": [], "sparse": []}
    pair = [("dense", dense), ("sparse", sparse)]
    for r in range(repeats):
        for name, fn in pair if r % 2 == 0 else pair[::-1]:
            times[name].append(_block(fn, number, device))
    return times["dense"], times["sparse"], number


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU model from ``/proc/cpuinfo`` (else ``platform.processor()``)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def bench_rows(
    devices: Sequence[torch.device],
    nets: dict[str, tuple[tuple[int, ...], tuple[int, ...]]],
    densities: Sequence[float],
    batches: Sequence[int],
    mode: dict[str, float],
    log: Callable[[str], None] = print,
) -> list[Row]:
    """Measure every device, network, density and batch size (see the module docstring)."""
    rows = []
    for dev in devices:
        name = device_name(dev)
        for net, (input_shape, hidden) in nets.items():
            for density in densities:
                dense, sparse, nnz, total = build_pair(input_shape, hidden, density)
                dense, sparse = dense.to(dev), sparse.to(dev)
                for batch in batches:
                    x = torch.randn(batch, *input_shape, generator=torch.Generator().manual_seed(batch)).to(dev)
                    with torch.inference_mode():
                        diff = float((dense(x) - sparse(x)).abs().max())
                        td, ts, number = time_side_by_side(
                            lambda d=dense, x=x: d(x),
                            lambda s=sparse, x=x: s(x),
                            dev,
                            repeats=int(mode["repeats"]),
                            min_block_s=mode["min_block_s"],
                            warmup_s=mode["warmup_s"],
                        )
                    d_ms, s_ms = 1e3 * statistics.median(td), 1e3 * statistics.median(ts)
                    row = Row(
                        net=net,
                        sizes=[*input_shape, *hidden, 10],
                        device=dev.type,
                        device_name=name,
                        density=density,
                        nnz=nnz,
                        weights=total,
                        batch=batch,
                        number=number,
                        repeats=int(mode["repeats"]),
                        dense_ms=d_ms,
                        sparse_ms=s_ms,
                        dense_min_ms=1e3 * min(td),
                        sparse_min_ms=1e3 * min(ts),
                        dense_samples_per_s=batch / (d_ms / 1e3),
                        sparse_samples_per_s=batch / (s_ms / 1e3),
                        ratio=s_ms / d_ms,
                        max_abs_diff=diff,
                    )
                    rows.append(row)
                    log(format_row(row))
    return rows


HEADER = (
    f"{'device':<6} {'net':<8} {'sizes':<16} {'density':>7} {'batch':>5} {'dense ms':>10} {'sparse ms':>10} "
    f"{'dense samples/s':>15} {'sparse samples/s':>16} {'sparse/dense':>12}"
)


def format_row(row: Row) -> str:
    """One row of the table (ratio < 1: sparse is faster)."""
    sizes = "-".join(str(s) for s in row.sizes)
    return (
        f"{row.device:<6} {row.net:<8} {sizes:<16} {100 * row.density:>6.0f}% {row.batch:>5} {row.dense_ms:>10.4f} "
        f"{row.sparse_ms:>10.4f} {row.dense_samples_per_s:>15.0f} {row.sparse_samples_per_s:>16.0f} "
        f"{row.ratio:>11.2f}x"
    )


def format_table(rows: Sequence[Row]) -> str:
    """The rows as a fixed-width text table."""
    return "\n".join([HEADER, "-" * len(HEADER), *(format_row(r) for r in rows)])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats of tiny blocks: checks the script works")
    parser.add_argument("--json", dest="json_path", default=str(DEFAULT_JSON), help="where to write the rows")
    parser.add_argument("--device", choices=("all", "cpu", "cuda"), default="all", help="all: CPU, and CUDA if any")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=None, help="timed blocks per variant (default 15; quick 3)")
    parser.add_argument("--wide", type=int, default=NETS["wide"][0][0], help="size of the wide net's layer")
    parser.add_argument("--nets", nargs="+", choices=sorted(NETS), default=list(NETS), help="networks to measure")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the table and write the JSON.

    Returns:
        What was written: ``benchmark``, ``settings``, ``torch_version``, ``threads``, ``devices``
        (type -> name), ``platform``, ``cpu_busy_before``/``after``, ``seconds`` and ``rows``
        (:class:`Row` fields).
    """
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("sparse_inference: --device cuda, but torch.cuda.is_available() is False")
    devices = [torch.device("cpu")] if args.device != "cuda" else []
    if args.device != "cpu" and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    mode = dict(QUICK if args.quick else FULL)
    if args.repeats:
        mode["repeats"] = args.repeats
    nets = {k: v for k, v in NETS.items() if k in args.nets}
    if "wide" in nets:
        nets["wide"] = ((args.wide,), (args.wide,))
    threads = torch.get_num_threads()
    busy = cpu_busy()
    names = {d.type: device_name(d) for d in devices}
    print(
        f"sparse inference: torch {torch.__version__}, {threads} threads, "
        + ", ".join(f"{k} ({v})" for k, v in names.items())
        + (", quick" if args.quick else "")
    )
    if busy is not None and busy > 0.1:
        print(f"warning: the CPUs were {100 * busy:.0f}% busy before starting: other processes skew timings")
    print(HEADER)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)
        rows = bench_rows(devices, nets, DENSITIES, BATCHES, mode)
    elapsed = time.perf_counter() - started
    print()
    print(format_table(rows))
    out = {
        "benchmark": "sparse_inference",
        "settings": {
            "quick": args.quick,
            **mode,
            "densities": list(DENSITIES),
            "batches": list(BATCHES),
            "nets": {k: [*v[0], *v[1], 10] for k, v in nets.items()},
            "sparse_layer": SparseLinear.__name__,
            "dense_layer": "torch.nn.Linear (masked weights stored dense)",
        },
        "torch_version": torch.__version__,
        "threads": threads,
        "devices": names,
        "platform": platform.platform(),
        "cpu_busy_before": busy,
        "cpu_busy_after": cpu_busy(),
        "seconds": elapsed,
        "rows": [asdict(r) for r in rows],
    }
    path = Path(args.json_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"done in {elapsed:.0f} s; wrote {path}")
    return out


if __name__ == "__main__":
    main()
