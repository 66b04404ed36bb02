"""Reproduce the baselines' published effects in evoticket's harness (the methods issue's "must reproduce").

Each entry runs real campaigns (``evoticket.run_campaign``) over 3 seeds and prints a table; all rows
also go to ``benchmarks/results/reproduce-ENTRY.json``. Every row gives its compute from the meter
(``train_steps``, ``train_flops``) and its wall time.

``imp``
    Iterative magnitude pruning on MNIST-1D (Frankle & Carbin 2019, arXiv:1803.03635): ``mlp``
    40-300-100-10, Adam lr 0.02, batch 100, 1500 steps per round, 20% of each hidden layer and 10% of
    the output layer pruned per round, rewinding to theta0, 10 rounds (11.3% of the weights left).
    Target: the ticket is a winning ticket (mean test accuracy at least the dense network's) and
    beats the random mask of the same per-layer densities by at least 4 points.

``edge_popup``
    Edge-popup on MNIST-1D (Ramanujan et al. 2020, arXiv:1911.13299): ``mlp`` 40-300-100-10 with 50% of
    each layer's weights kept, 1500 steps of Adam on the scores (lr 0.005), weights frozen at theta0
    (kaiming normal, and signed constant). Target: the supermask's test accuracy with frozen weights is
    well above (>= 20 points) a random mask of the same per-layer densities on the same frozen weights.

``rigl``
    RigL on MNIST-1D (Evci et al. 2020, arXiv:1911.11134) at 10% density per layer, 1500 steps, drop and
    grow every 100 steps until 75% of training (update fraction 0.3, cosine-decayed); SET's random growth
    beside it. Target: RigL beats the static random mask of the same per-layer densities trained for the
    same steps in the same batch.

``supermask``
    Supermasks on scikit-learn's digits (Zhou et al. 2019, arXiv:1905.01067), ``mlp`` 64-300-100-10 with
    signed-constant weights and 50% density: edge-popup (1500 steps) and ``supermask_ga`` (no gradient;
    64 + 64 for 60 generations, as ``configs/supermask.toml``). Target: >= 80% test accuracy untrained.

``bn_output``
    ``bn_only`` (Frankle et al. 2020, arXiv:2003.00152) and ``output_only`` (random features, a trained
    read-out) against ``dense`` on MNIST-1D for ``mlp_bn`` and ``cnn1d_bn``, 1500 steps. No target: the
    honest numbers.

``allocation``
    The GA at the default budget before the hybrid levers issue (40 generations of 32 + 32, Baldwinian, 100 steps,
    mutMaskSwap) with ``ticket.allocation`` = uniform, erk and lth:
    the evolved ticket and its random control in the final comparison.

Run::

    python benchmarks/reproduce.py imp            # about 4 minutes on 2 CPU cores
    python benchmarks/reproduce.py imp --seeds 1  # a quicker look
    python benchmarks/reproduce.py all            # every entry, about 35 minutes

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
from collections.abc import Callable
from pathlib import Path

import torch

import evoticket
from evoticket.records import read_individuals

RESULTS = Path(__file__).resolve().parent / "results"

IMP = [
    "method=imp",
    "model.name=mlp",
    "model.hidden=[300, 100]",
    "optimizer.lr=0.02",
    "optimizer.batch_size=100",
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


# ---------------------------------------------------------------------------
# the other entries: one campaign per (row, seed), summarised from summary.json

BASE = ["campaign.progress=false", "campaign.device=cpu", "campaign.plots=none"]


def _campaigns(label: str, overrides: list[str], seeds: int) -> list[dict]:
    """``seeds`` campaigns of one row; each gives its summary and wall time."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(seeds):
            config = evoticket.CampaignConfig().with_overrides([*BASE, *overrides, f"campaign.seed={seed}"])
            start = time.perf_counter()
            result = evoticket.run_campaign(
                config, name=f"r-{seed}", runs_dir=Path(tmp) / "runs", plots_dir=Path(tmp) / "plots", out=io.StringIO()
            )
            wall = time.perf_counter() - start
            out.append({"seed": seed, "wall_seconds": round(wall, 1), "summary": result.summary})
            print(f"{label} seed {seed}: {wall:.0f} s", file=sys.stderr)
    return out


def _row(label: str, overrides: list[str], seeds: int, own: Callable[[dict], dict[str, float]]) -> dict:
    """Run a row and keep, per seed, ``own(summary)`` (accuracies), its search compute and wall time."""
    runs = _campaigns(label, overrides, seeds)
    per_seed = []
    for r in runs:
        s = r["summary"]
        per_seed.append(
            {
                "seed": r["seed"],
                **own(s),
                "density": s["controls"]["ticket"]["density"],
                "train_steps": s["compute"]["search"]["train_steps"],
                "train_flops": s["compute"]["search"]["train_flops"],
                "wall_seconds": r["wall_seconds"],
            }
        )
    return {"label": label, "settings": overrides, "seeds": per_seed}


def _col(row: dict, key: str) -> list[float]:
    return [s[key] for s in row["seeds"]]


def _mean(row: dict, key: str) -> float:
    return statistics.mean(_col(row, key))


def _compute(row: dict) -> str:
    s = row["seeds"][0]
    wall = statistics.mean(_col(row, "wall_seconds"))
    return f"{s['train_steps']:>7,} {s['train_flops'] / 1e9:>8.1f} {wall:>6.0f}"


COMPUTE_HEAD = f"{'steps':>7} {'GFLOP':>8} {'wall s':>6}"


def _own(method: str, *controls: str) -> Callable[[dict], dict[str, float]]:
    """The method's own test accuracy, and its named controls' (``summary[method]["controls"]``)."""

    def get(s: dict) -> dict[str, float]:
        out = {"test_acc": s[method]["test_acc"]}
        out.update({c: s[method]["controls"][c]["test_acc"] for c in controls})
        return out

    return get


MNIST1D_MLP = ["model.name=mlp", "model.hidden=[300, 100]", "train.steps=1500", "campaign.final_seeds=1"]


def run_edge_popup(seeds: int) -> dict:
    """Edge-popup at 50% density, kaiming-normal and signed-constant frozen weights, against a random frozen mask."""
    rows = [
        _row(
            f"edge_popup {init}",
            ["method=edge_popup", *MNIST1D_MLP, "ticket.density=0.5", f"model.init={init}"],
            seeds,
            _own("edge_popup", "random_frozen"),
        )
        for init in ("kaiming_normal", "signed_constant")
    ]
    verdict = {r["label"]: _mean(r, "test_acc") - _mean(r, "random_frozen") >= 0.20 for r in rows}
    return {"entry": "edge_popup", "torch": torch.__version__, "rows": rows, "verdict": verdict}


def format_edge_popup(report: dict) -> str:
    """Edge-popup's table."""
    lines = [
        "Edge-popup on MNIST-1D, mlp 40-300-100-10, 50% of each layer kept, weights frozen; test accuracy",
        f"{'weights':<16} {'supermask':>18} {'random mask':>18} {COMPUTE_HEAD}",
    ]
    lines += [
        f"{r['label'].split()[1]:<16} {_mean_std(_col(r, 'test_acc')):>18} "
        f"{_mean_std(_col(r, 'random_frozen')):>18} {_compute(r)}"
        for r in report["rows"]
    ]
    lines.append(f"Well above the random mask (>= 20 points): {report['verdict']}")
    return "\n".join(lines)


def run_rigl(seeds: int) -> dict:
    """RigL and SET at 10% density against the static start mask trained in the same batch."""
    rows = [
        _row(
            f"rigl grow={grow}",
            ["method=rigl", *MNIST1D_MLP, "ticket.density=0.1", f"rigl.grow={grow}"],
            seeds,
            _own("rigl", "static"),
        )
        for grow in ("gradient", "random")
    ]
    verdict = {r["label"]: _mean(r, "test_acc") > _mean(r, "static") for r in rows}
    return {"entry": "rigl", "torch": torch.__version__, "rows": rows, "verdict": verdict}


def format_rigl(report: dict) -> str:
    """RigL's table."""
    lines = [
        "RigL / SET on MNIST-1D, mlp 40-300-100-10, 10% of each layer, 1500 steps; test accuracy",
        f"{'method':<18} {'drop and grow':>18} {'static mask':>18} {COMPUTE_HEAD}",
    ]
    for r in report["rows"]:
        name = "RigL (gradient)" if "gradient" in r["label"] else "SET (random)"
        lines.append(
            f"{name:<18} {_mean_std(_col(r, 'test_acc')):>18} {_mean_std(_col(r, 'static')):>18} {_compute(r)}"
        )
    lines.append(f"Beats the static random mask: {report['verdict']}")
    return "\n".join(lines)


OLD_GA = ["ga.mutations=['mutMaskSwap']", "ga.halving_rungs=1", "ga.seeded=false"]
"""The GA's operators before the hybrid levers issue (the default campaign of these measurements)."""
DIGITS = ["data.name=digits", "model.name=mlp", "model.hidden=[300, 100]", "model.init=signed_constant"]


def run_supermask(seeds: int) -> dict:
    """Supermasks on digits: edge-popup and the gradient-free GA, untrained test accuracy."""
    rows = [
        _row(
            "edge_popup",
            ["method=edge_popup", *DIGITS, "ticket.density=0.5", "train.steps=1500", "campaign.final_seeds=1"],
            seeds,
            _own("edge_popup", "random_frozen"),
        ),
        _row(
            "supermask_ga",
            [
                "method=supermask_ga",
                *DIGITS,
                "ticket.density=0.5",
                "ga.population=64",
                "ga.offspring=64",
                "ga.generations=60",
                "ga.operator_args.mutMaskSwap.indpb=0.02",
                *OLD_GA,
                "campaign.final_seeds=1",
            ],
            seeds,
            lambda s: {"test_acc": s["supermask_ga"]["test_acc"]},
        ),
    ]
    verdict = {r["label"]: _mean(r, "test_acc") >= 0.80 for r in rows}
    return {"entry": "supermask", "torch": torch.__version__, "rows": rows, "verdict": verdict}


def format_supermask(report: dict) -> str:
    """The supermask table."""
    lines = [
        "Supermasks on digits, mlp 64-300-100-10, signed-constant weights, 50% density; test accuracy untrained",
        f"{'method':<14} {'supermask':>18} {COMPUTE_HEAD}",
    ]
    lines += [f"{r['label']:<14} {_mean_std(_col(r, 'test_acc')):>18} {_compute(r)}" for r in report["rows"]]
    lines.append(f">= 80% test accuracy: {report['verdict']}")
    return "\n".join(lines)


def run_bn_output(seeds: int) -> dict:
    """dense, bn_only and output_only on mlp_bn and cnn1d_bn."""
    rows = [
        _row(
            f"{method} {model}",
            [f"method={method}", f"model.name={model}", "train.steps=1500", "campaign.final_seeds=1"],
            seeds,
            _own(method),
        )
        for model in ("mlp_bn", "cnn1d_bn")
        for method in ("dense", "bn_only", "output_only")
    ]
    return {"entry": "bn_output", "torch": torch.__version__, "rows": rows, "verdict": {}}


def format_bn_output(report: dict) -> str:
    """The bn_only / output_only table."""
    lines = [
        "Training some parameters only, MNIST-1D, 1500 steps; test accuracy at the early-stopping step",
        f"{'model':<9} {'method':<12} {'test acc':>18} {COMPUTE_HEAD}",
    ]
    for r in report["rows"]:
        method, model = r["label"].split()
        lines.append(f"{model:<9} {method:<12} {_mean_std(_col(r, 'test_acc')):>18} {_compute(r)}")
    return "\n".join(lines)


def run_allocation(seeds: int) -> dict:
    """The default GA campaign with each per-layer allocation."""

    def final(s: dict) -> dict[str, float]:
        return {
            "test_acc": s["controls"]["ticket"]["test_acc_mean"],
            "random": s["controls"]["random"]["test_acc_mean"],
        }

    rows = [
        _row(f"ga {a}", [f"ticket.allocation={a}", *OLD_GA, "finetune.mode=baldwinian", "finetune.steps=100",
                         "ga.population=32", "ga.generations=40"], seeds, final)
        for a in ("uniform", "erk", "lth")
    ]  # fmt: skip
    return {"entry": "allocation", "torch": torch.__version__, "rows": rows, "verdict": {}}


def format_allocation(report: dict) -> str:
    """The allocation table."""
    lines = [
        "The GA at the default budget (40 generations, 32 + 32, 100 steps) by per-layer allocation, MNIST-1D,"
        " 10% density; final comparison (1500 steps, 3 data orders), test accuracy",
        f"{'allocation':<10} {'evolved ticket':>18} {'random mask':>18} {COMPUTE_HEAD}",
    ]
    lines += [
        f"{r['label'].split()[1]:<10} {_mean_std(_col(r, 'test_acc')):>18} "
        f"{_mean_std(_col(r, 'random')):>18} {_compute(r)}"
        for r in report["rows"]
    ]
    return "\n".join(lines)


ENTRIES = {
    "imp": (run_imp, format_imp),
    "edge_popup": (run_edge_popup, format_edge_popup),
    "rigl": (run_rigl, format_rigl),
    "supermask": (run_supermask, format_supermask),
    "bn_output": (run_bn_output, format_bn_output),
    "allocation": (run_allocation, format_allocation),
}


def main(argv: list[str] | None = None) -> int:
    """Run one entry, print its table and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("entry", choices=[*ENTRIES, "all"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="default: benchmarks/results/reproduce-ENTRY.json")
    args = parser.parse_args(argv)
    for entry in ENTRIES if args.entry == "all" else [args.entry]:
        run, fmt = ENTRIES[entry]
        report = run(args.seeds)
        table = fmt(report)
        print(table)
        path = args.json or RESULTS / f"reproduce-{entry}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=1) + "\n")
        path.with_suffix(".txt").write_text(table + "\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
