"""Reproduce the baselines' published effects in evoticket's harness (issue 10's "must reproduce").

Each entry runs real campaigns (``evoticket.run_campaign``) over 3 seeds and prints a table; all rows
also go to ``benchmarks/results/reproduce-ENTRY.json``. Every row gives its compute from the meter
(``train_steps``, ``train_flops``) and its wall time.

``imp``
    Iterative magnitude pruning on MNIST-1D (Frankle & Carbin 2019, arXiv:1803.03635): ``mlp``
    40-300-100-10, Adam lr 0.02, batch 100, 1500 steps per round, 20% of each hidden layer and 10% of
    the output layer pruned per round, rewinding to theta0, 10 rounds (11.3% of the weights left).
    Target: the ticket is a winning ticket (mean test accuracy at least the dense network's) and
    beats the random mask of the same per-layer densities by at least 4 points.

Run::

    python benchmarks/reproduce.py imp            # about 4 minutes on 2 CPU cores
    python benchmarks/reproduce.py imp --seeds 1  # a quicker look

Run it alone: two PyTorch processes on 2 cores slow each other about tenfold.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import evoticket
from evoticket.records import read_individuals

RESULTS = Path(__file__).resolve().parent / "results"

IMP = [
    "method=imp",
    "model.name=mlp",
    "model.hidden=[300, 100]",
    "finetune.lr=0.02",
    "finetune.batch_size=100",
    "imp.steps=1500",
    "imp.rate=0.2",
    "imp.output_rate=0.1",
    "ticket.density=0.12",  # 10 prunes: 10.7% of each hidden layer, 34.9% of the output layer, 11.3% in all
    "campaign.final_steps=1500",
    "campaign.final_seeds=3",
    "campaign.progress=false",
    "campaign.device=cpu",
]


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} +- {statistics.stdev(values):.4f}"


def run_imp(seeds: int) -> dict:
    """IMP campaigns for ``seeds`` seeds; the per-round records and the final comparison of each."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(seeds):
            config = evoticket.CampaignConfig().with_overrides([*IMP, f"campaign.seed={seed}"])
            start = time.perf_counter()
            result = evoticket.run_campaign(
                config,
                name=f"imp-{seed}",
                runs_dir=Path(tmp) / "runs",
                plots_dir=Path(tmp) / "plots",
                out=io.StringIO(),
            )
            wall = time.perf_counter() - start
            records = read_individuals(result.run_dir)
            s = result.summary
            rows.append(
                {
                    "seed": seed,
                    "wall_seconds": round(wall, 1),
                    "rounds": [
                        {
                            "round": r["generation"],
                            "density": r["density_total"],
                            "density_per_layer": r["density"],
                            "test_acc": r["test_acc"],
                            "random_test_acc": r["controls"].get("random", {}).get("test_acc"),
                            "train_steps": r["train_steps"],
                            "train_flops": r["train_flops"],
                        }
                        for r in records
                    ],
                    "final": {k: s["controls"][k]["test_acc_mean"] for k in ("ticket", "dense", "random", "reinit")},
                    "density": s["controls"]["ticket"]["density"],
                    "compute": s["compute"],
                }
            )
            print(f"seed {seed}: {wall:.0f} s, final comparison {rows[-1]['final']}", file=sys.stderr)
    ticket = [r["final"]["ticket"] for r in rows]
    dense = [r["final"]["dense"] for r in rows]
    random = [r["final"]["random"] for r in rows]
    verdict = {
        "winning_ticket": statistics.mean(ticket) >= statistics.mean(dense),
        "beats_random_by_4_points": statistics.mean(ticket) - statistics.mean(random) >= 0.04,
        "ticket_minus_dense": statistics.mean(ticket) - statistics.mean(dense),
        "ticket_minus_random": statistics.mean(ticket) - statistics.mean(random),
    }
    return {"entry": "imp", "settings": IMP, "torch": torch.__version__, "seeds": rows, "verdict": verdict}


def format_imp(report: dict) -> str:
    """The IMP table: per round, the ticket's and its random control's test accuracy; then the final comparison."""
    seeds = report["seeds"]
    lines = ["IMP on MNIST-1D, mlp 40-300-100-10, 1500 steps per round; test accuracy at the early-stopping step"]
    lines.append(f"{'round':>5} {'density':>8} {'ticket':>18} {'random mask':>18}")
    for i, first in enumerate(seeds[0]["rounds"]):
        ticket = [s["rounds"][i]["test_acc"] for s in seeds]
        random = [s["rounds"][i]["random_test_acc"] for s in seeds]
        rand = _mean_std(random) if random[0] is not None else "(dense)"
        lines.append(f"{first['round']:>5} {first['density']:>8.4f} {_mean_std(ticket):>18} {rand:>18}")
    lines.append("")
    lines.append(
        f"Final comparison at {seeds[0]['density']:.4f} (1500 steps, 3 data orders per seed), mean over seeds:"
    )
    lines.extend(
        f"  {key:<7} {_mean_std([s['final'][key] for s in seeds])}" for key in ("ticket", "dense", "random", "reinit")
    )
    steps = [s["compute"]["search"]["train_steps"] for s in seeds]
    flops = [s["compute"]["search"]["train_flops"] for s in seeds]
    wall = [s["wall_seconds"] for s in seeds]
    lines.append(
        f"Search per seed: {steps[0]:,} train steps, {flops[0] / 1e9:.1f} GFLOP training; "
        f"wall time {statistics.mean(wall):.0f} s per seed (search, controls and final comparison)"
    )
    v = report["verdict"]
    lines.append(
        f"Winning ticket (>= dense): {v['winning_ticket']} ({100 * v['ticket_minus_dense']:+.1f} points); "
        f"beats the random mask by >= 4 points: {v['beats_random_by_4_points']} ({100 * v['ticket_minus_random']:+.1f})"
    )
    return "\n".join(lines)


ENTRIES = {"imp": (run_imp, format_imp)}


def main(argv: list[str] | None = None) -> int:
    """Run one entry, print its table and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("entry", choices=sorted(ENTRIES))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="default: benchmarks/results/reproduce-ENTRY.json")
    args = parser.parse_args(argv)
    run, fmt = ENTRIES[args.entry]
    report = run(args.seeds)
    print(fmt(report))
    path = args.json or RESULTS / f"reproduce-{args.entry}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
