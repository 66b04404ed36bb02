"""Packing at the engine: N trainings of P networks each, one after another or packed, timed side by side.

Each training is :func:`evoticket.training.train` of P MNIST-1D ``mlp`` 40-300-100-10 tickets (density 0.1, batch
100, Adam) for ``--steps`` steps with a validation every 100 steps, as a one-run method's cell trains. Three ways,
alternating, ``--repeats`` times:

* ``common alone``: the default data order (one minibatch sequence per training), one training after another;
* ``individual alone``: ``optimizer.data_order = "individual"``, one after another;
* ``individual packed``: the same trainings in a :class:`evoticket.training.packing.Packer` (all N at once), their
  steps in shared batches; the packed networks' final weights are checked equal to the alone ones, bit for bit.

    python benchmarks/pack_engine.py --json benchmarks/results/pack-engine-cpu.json

Run it alone on the machine (two PyTorch processes on two cores slow each other about tenfold).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from evoticket.config import CampaignConfig, OptimizerConfig
from evoticket.data import load_data
from evoticket.genome import Ticket, stack_tickets
from evoticket.models import build_architecture
from evoticket.operators import initTicket
from evoticket.training import Evaluate, TrainState, minibatch_indices, train
from evoticket.training.packing import Packer


def trainings(cfg: OptimizerConfig, n: int, p: int, steps: int) -> list[Callable[[], TrainState]]:
    """N trainings of P networks each (seeds 0..N-1)."""
    splits = load_data(CampaignConfig.from_dict({"data": {"name": "mnist1d"}}).data)
    arch = build_architecture("mlp", tuple(splits.x_train.shape[1:]), splits.num_classes, [300, 100])
    out = []
    for seed in range(n):
        g = torch.Generator().manual_seed(seed)
        theta0, masks = stack_tickets([initTicket(Ticket, arch, 0.1, rng=g) for _ in range(p)])
        own = range(p) if cfg.data_order == "individual" else None
        batches = minibatch_indices(splits.x_train.shape[0], steps, cfg.batch_size, seed, individuals=own)
        out.append(lambda t=theta0, m=masks, b=batches: train(arch, t, m, splits, cfg, b, callbacks=[Evaluate(100)]))
    return out


def main() -> None:
    """Time the three ways and print (and optionally write) the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trainings", type=int, default=6, help="N trainings (default 6)")
    parser.add_argument("--networks", type=int, default=2, help="P networks each (default 2)")
    parser.add_argument("--steps", type=int, default=600, help="steps of each training (default 600)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of each way, alternating (default 3)")
    parser.add_argument("--json", metavar="PATH", help="also write the measurements as JSON")
    args = parser.parse_args()
    common = OptimizerConfig(lr=0.02, batch_size=100)
    individual = dataclasses.replace(common, data_order="individual")
    times: dict[str, list[float]] = {"common alone": [], "individual alone": [], "individual packed": []}
    for _ in range(args.repeats):
        for name in times:
            tasks = trainings(
                common if name == "common alone" else individual, args.trainings, args.networks, args.steps
            )
            start = time.perf_counter()
            if name.endswith("packed"):
                packed = Packer(args.trainings).run(tasks)
            else:
                results = [task() for task in tasks]
            times[name].append(time.perf_counter() - start)
            if name == "individual alone":
                alone = results
        same = all(torch.equal(a.params[k], b.params[k]) for a, b in zip(alone, packed, strict=True) for k in a.params)
    medians = {k: statistics.median(v) for k, v in times.items()}
    for name, value in medians.items():
        print(f"{name:18s} {value:6.2f} s  ({', '.join(f'{t:.2f}' for t in times[name])})")
    ratio = medians["common alone"] / medians["individual packed"]
    print(f"packed: {ratio:.2f}x the common order alone; packed weights equal the alone ones: {same}")
    if args.json:
        out = {
            "torch_version": torch.__version__,
            "threads": torch.get_num_threads(),
            "machine": platform.processor() or platform.machine(),
            "settings": vars(args),
            "seconds": times,
            "median_seconds": medians,
            "packed_vs_common_alone": ratio,
            "packed_equal_alone": same,
        }
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
