"""The Ray backend against the local one: per-generation wall time, one worker against two, and Ray's overhead.

For the default campaign's network (MNIST-1D, ``mlp`` 40-300-100-10, 10% density) with 100 fine-tuning steps
of batch 100 (the default before the hybrid levers issue) and populations of 32 and 128, each backend evaluates the same
population for a few generations, side by side in one process:

* ``local``: the whole population in this process (torch's default threads), in the CPU's population blocks
  of 64;
* ``ray x1``: one actor with all the CPUs (``campaign.worker_cpus`` = CPUs);
* ``ray x2``: two actors with half the CPUs each, the population in two blocks (``campaign.population_block`` =
  half the population, so each actor trains one; with the CPU's default block of 64 a population of 32 would
  run on one actor: Ray's shards are whole blocks).

Per generation: the median wall time of ``backend.evaluate`` (s), its ratio to local, and Ray's overhead:
the wall time not spent fine-tuning or evaluating in the slowest shard (serialising genomes and results,
scheduling, gathering), as a fraction of the generation. Generation 0 of each Ray backend (actor start,
data to the object store) is reported apart and left out of the medians.

Run alone (two PyTorch processes on 2 cores slow each other about tenfold)::

    python benchmarks/ray_scaling.py [--generations 3] [--out benchmarks/results/ray-scaling-cpu.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from evoticket.config import CampaignConfig
from evoticket.evolution import LocalBackend, make_toolbox
from evoticket.evolution.evaluator import Evaluator
from evoticket.evolution.ray_backend import RayBackend


def measure(backend, population, generations):
    """Seconds of the first call and of each later one, and the summed overhead of the later ones."""
    first = time.perf_counter()
    backend.evaluate(population, 0)
    start_s = time.perf_counter() - first
    walls, overhead0 = [], getattr(backend, "overhead_seconds", 0.0)
    for g in range(1, generations + 1):
        t = time.perf_counter()
        backend.evaluate(population, g)
        walls.append(time.perf_counter() - t)
    overhead = getattr(backend, "overhead_seconds", 0.0) - overhead0
    return start_s, walls, overhead


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=3, help="timed generations after the first (default 3)")
    parser.add_argument("--populations", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--out", default="benchmarks/results/ray-scaling-cpu.json")
    args = parser.parse_args()

    import ray

    cpus = os.cpu_count() or 1
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    config = (
        CampaignConfig().with_overrides(  # the evaluation measured in the README: 100 steps, as the default had then
            ["campaign.device=cpu", "campaign.progress=false", "finetune.steps=100", "finetune.mode=baldwinian"]
        )
    )
    toolbox = make_toolbox(config)
    rows = []
    for size in args.populations:
        population = toolbox.population(size)
        local = LocalBackend(
            Evaluator(toolbox.arch, toolbox.splits, config.finetune, config.optimizer, config.campaign.seed)
        )
        _, walls, _ = measure(local, population, args.generations)
        base = statistics.median(walls)
        rows.append({"backend": "local", "workers": 0, "population": size, "first_s": None, "gen_s": base})
        for workers in (1, 2):
            backend = RayBackend(
                Evaluator(
                    toolbox.arch,
                    toolbox.splits,
                    config.finetune,
                    config.optimizer,
                    config.campaign.seed,
                    block=-(-size // workers),
                ),
                workers=workers,
                worker_cpus=max(1, cpus // workers),
            )
            first, walls, overhead = measure(backend, population, args.generations)
            gen = statistics.median(walls)
            rows.append(
                {
                    "backend": "ray",
                    "workers": workers,
                    "population": size,
                    "first_s": first,
                    "gen_s": gen,
                    "block": -(-size // workers),
                    "vs_local": gen / base,
                    "overhead_fraction": overhead / sum(walls),
                }
            )
            backend.close()
    ray.shutdown()
    print(
        f"{'backend':<8} {'workers':>7} {'population':>10} {'first gen s':>11} {'gen s':>7} {'vs local':>8} {'overhead':>8}"
    )
    for r in rows:
        first = "" if r["first_s"] is None else f"{r['first_s']:.2f}"
        vs = f"{r['vs_local']:.2f}" if "vs_local" in r else "1.00"
        oh = f"{100 * r['overhead_fraction']:.1f}%" if "overhead_fraction" in r else ""
        print(
            f"{r['backend']:<8} {r['workers']:>7} {r['population']:>10} {first:>11} {r['gen_s']:>7.2f} {vs:>8} {oh:>8}"
        )
    meta = {
        "machine": f"{platform.processor() or platform.machine()}, {cpus} CPUs",
        "torch": torch.__version__,
        "ray": ray.__version__,
        "generations_timed": args.generations,
        "config": "MNIST-1D mlp 40-300-100-10, density 0.1, finetune.steps 100, batch 100",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
