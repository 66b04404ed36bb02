"""How well does the GA's short-fine-tuning fitness rank tickets by their accuracy after full training?

For one MNIST-1D ``mlp`` 40-300-100-10 and one theta0 (one init seed), a sample of tickets that differ
only in their masks, all at the LTH-like allocation (10.7% of fc1 and fc2, 34.8% of fc3: 11.3% in all):

* ``random``: ``--random`` random masks of those per-layer counts (the GA's initial population);
* ``magnitude``: ``--magnitude`` one-shot magnitude masks: the same theta0 trained densely for t steps
  (t cycling over ``--prune-steps``, default 0, 25, ..., 1500, each repetition of a t with its own
  data order; t = 0 once, as its mask does not depend on the order), each layer keeping its largest |w|
  at the same counts. Short t gives near-random masks, long t IMP-like (one-shot) ones.

Every ticket is then measured with evoticket's own engine:

* fitness after s steps (``--steps``, default 25 100 400): validation accuracy after
  :func:`~evoticket.training.finetune_tickets` (Adam, lr 0.02, batch 100; one minibatch sequence per s,
  shared by the whole sample, as the GA does); ``s = 0`` (theta0 * mask, untrained) is reported too;
* final accuracy: test accuracy at the early-stopping step of
  :func:`~evoticket.training.train_early_stopping` (``--final-steps`` 1500 steps, validation accuracy
  checked every 100), under two data orders, as the campaign's final comparison trains.

Reported: Spearman's rho (``scipy.stats.spearmanr``, with its two-sided p-value) of fitness after s steps
against the final accuracy (the mean of the two orders), over the whole sample and per group; the
final-vs-final rho between the two orders (the noise ceiling: how well one full training ranks the
tickets by another); the std and range of the final accuracy per group. The table goes to stdout, the
numbers (settings, per-ticket values, correlations, wall times, torch version, machine) to
``--out`` and a figure (one panel per s) to ``--figure``.

Run (the defaults take about 70 s on 2 idle CPU cores: 6 s for the sample, 13 s fitness, 46 s full
training; everything is seeded: the same arguments give the same numbers on the same machine)::

    nice -n 10 python benchmarks/rank_correlation.py [--random 24] [--magnitude 24] [--final-steps 1500] \\
        [--steps 25 100 400] [--out benchmarks/results/rank-correlation.json] \\
        [--figure benchmarks/results/figures/rank-correlation.png]
    python benchmarks/rank_correlation.py --quick --out /tmp/rc.json --figure /tmp/rc.png   # ~2 s + imports
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

from evoticket import CampaignConfig
from evoticket.core.seeds import derive_seed
from evoticket.genome import Ticket, random_masks_like, stack_tickets, ticket_densities
from evoticket.models import Architecture
from evoticket.operators import initTicket
from evoticket.resolve import Resolved, resolve
from evoticket.training import (
    SaveWeights,
    finetune_tickets,
    minibatch_indices,
    population_chunk,
    topk_masks,
    train,
    train_early_stopping,
)

DENSITY = 0.107
"""``ticket.density``: fc1 and fc2 keep this fraction (``allocation = uniform``)."""
FC3_DENSITY = 0.348
"""``ticket.layer_densities.fc3.weight``: the output layer's density (LTH-like: pruned at half the rate)."""
PRUNE_STEPS = (0, 25, 50, 100, 200, 400, 800, 1500)
"""Dense training steps before the one-shot magnitude pruning, cycled over the magnitude masks."""
FIT_STEPS = (25, 100, 400)
"""Fine-tuning steps of the fitness."""
FINAL_ORDERS = 2
"""Data orders of the full training (their rho is the noise ceiling)."""
GROUPS = ("all", "random", "magnitude")
"""Ticket groups the correlations and spreads are reported for."""
DEFAULT_OUT = "benchmarks/results/rank-correlation.json"
DEFAULT_FIGURE = "benchmarks/results/figures/rank-correlation.png"
QUICK = {"random": 4, "magnitude": 4, "steps": [5, 10], "final_steps": 50, "eval_every": 25, "prune_steps": [0, 10, 25]}
"""What ``--quick`` sets (a few seconds: for tests)."""


@dataclass
class Sample:
    """The tickets of the sample and where each came from.

    Attributes:
        tickets: every ticket (random masks first, then magnitude masks), all on the same theta0.
        group: ``"random"`` or ``"magnitude"`` per ticket.
        prune_step: dense training steps before magnitude pruning (``None`` for random masks).
        prune_order: data-order index of that dense training (``None`` for random masks and t = 0).
    """

    tickets: list[Ticket]
    group: list[str]
    prune_step: list[int | None]
    prune_order: list[int | None]


def make_config(seed: int, finetune_steps: int) -> CampaignConfig:
    """The campaign configuration of the benchmark: MNIST-1D, ``mlp``, the LTH-like allocation, on the CPU.

    Args:
        seed: ``campaign.seed``, the root of every seed of the benchmark.
        finetune_steps: ``finetune.steps`` (only checked by the configuration; every call passes its steps).

    Returns:
        The configuration (Adam, lr 0.02, batch 100: :class:`~evoticket.config.OptimizerConfig`'s defaults).
    """
    return CampaignConfig().with_overrides(
        {
            "data.name": "mnist1d",
            "model.name": "mlp",
            "ticket.density": DENSITY,
            "ticket.layer_densities.fc3.weight": FC3_DENSITY,
            "finetune.steps": finetune_steps,
            "campaign.seed": seed,
            "campaign.device": "cpu",
            "campaign.progress": False,
        }
    )


def magnitude_schedule(n: int, prune_steps: Sequence[int]) -> list[tuple[int, int | None]]:
    """The (t, data order) of each magnitude mask: t = 0 once, then the other t cycled, one new order per cycle.

    Args:
        n: number of magnitude masks, >= 0.
        prune_steps: the dense training steps t to spread the masks over (>= 0 each).

    Returns:
        ``n`` pairs ``(t, order)``; ``order`` is ``None`` for t = 0 (magnitude at initialisation does not
        depend on the data order, so a second t = 0 mask would repeat the first).
    """
    steps = sorted({int(t) for t in prune_steps})
    out: list[tuple[int, int | None]] = [(0, None)] if 0 in steps else []
    trained = [t for t in steps if t > 0]
    order = 0
    while len(out) < n and trained:
        out.extend((t, order) for t in trained)
        order += 1
    if not trained:  # only t = 0 asked for: a single mask
        return out[: min(n, 1)]
    return out[:n]


def magnitude_masks(
    resolved: Resolved, base: Ticket, schedule: Sequence[tuple[int, int | None]], seed: int
) -> list[dict[str, torch.Tensor]]:
    """One-shot magnitude masks of ``base.theta0`` trained densely, at ``base``'s per-layer kept counts.

    For each data order, the dense network (every mask True) is trained once with
    :func:`~evoticket.training.train` for the largest t of that order, the weights saved at every t of
    the order (:class:`~evoticket.training.SaveWeights`); each layer then keeps its largest |w|
    (:func:`~evoticket.training.topk_masks`, ties by position).

    Args:
        resolved: the resolved configuration (data, architecture, fine-tuning settings).
        base: the ticket whose theta0 is trained and whose mask gives the kept counts.
        schedule: ``(t, order)`` per mask, from :func:`magnitude_schedule`.
        seed: root seed; order k trains on ``minibatch_indices(..., derive_seed(seed, "dense", k))``.

    Returns:
        Weight name -> bool mask, one dict per entry of ``schedule``.
    """
    arch, splits, cfg = resolved.arch, resolved.splits, resolved.config.optimizer
    dense = Ticket(base.theta0, {k: torch.ones_like(m) for k, m in base.masks.items()}, base.init_scheme, base.init_std)
    theta0, masks = stack_tickets([dense], splits.device)
    kept = {k: torch.tensor([int(m.sum())]) for k, m in base.masks.items()}
    weights: dict[tuple[int, int | None], dict[str, torch.Tensor]] = {}
    for order in sorted({o for _, o in schedule if o is not None}):
        steps = sorted({t for t, o in schedule if o == order})
        batches = minibatch_indices(
            splits.x_train.shape[0], max(steps), cfg.batch_size, derive_seed(seed, "dense", order), splits.device
        )
        saver = SaveWeights(steps)
        train(arch, theta0, masks, splits, cfg, batches, callbacks=[saver])
        weights.update({(t, order): saver.saved[t] for t in steps})
    out = []
    for t, order in schedule:
        w = theta0 if t == 0 else weights[(t, order)]
        chosen = topk_masks({k: w[k] for k in base.masks}, kept)
        out.append({k: m[0].cpu() for k, m in chosen.items()})
    return out


def build_sample(resolved: Resolved, n_random: int, n_magnitude: int, prune_steps: Sequence[int], seed: int) -> Sample:
    """The random and magnitude tickets of the sample, all on one theta0 (see the module docstring).

    Args:
        resolved: the resolved configuration.
        n_random: random masks, >= 0.
        n_magnitude: magnitude masks, >= 0.
        prune_steps: dense training steps to spread the magnitude masks over.
        seed: root seed (theta0: ``derive_seed(seed, "theta0")``; random mask i: ``(seed, "random", i)``).

    Returns:
        The :class:`Sample`, random masks first.
    """
    c = resolved.config
    arch = resolved.arch
    densities = ticket_densities(arch, c.ticket.density, c.ticket.allocation, c.ticket.layer_densities)
    rng = torch.Generator().manual_seed(derive_seed(seed, "theta0"))
    base = initTicket(Ticket, arch, c.ticket.density, rng=rng, init=c.model.init, layer_densities=densities)

    def ticket(masks: dict[str, torch.Tensor]) -> Ticket:
        return Ticket(base.theta0, masks, base.init_scheme, base.init_std)

    tickets, group, prune_step, prune_order = [], [], [], []
    for i in range(n_random):
        gen = torch.Generator().manual_seed(derive_seed(seed, "random", i))
        tickets.append(ticket(random_masks_like(base.masks, gen)))
        group.append("random")
        prune_step.append(None)
        prune_order.append(None)
    schedule = magnitude_schedule(n_magnitude, prune_steps)
    for (t, order), masks in zip(schedule, magnitude_masks(resolved, base, schedule, seed), strict=True):
        tickets.append(ticket(masks))
        group.append("magnitude")
        prune_step.append(t)
        prune_order.append(order)
    return Sample(tickets, group, prune_step, prune_order)


def final_accuracy(
    tickets: Sequence[Ticket], resolved: Resolved, steps: int, eval_every: int, seed: int
) -> dict[str, np.ndarray]:
    """Full training of every ticket under :data:`FINAL_ORDERS` data orders, as the final comparison does.

    Args:
        tickets: the tickets (one batched training per order, in memory-sized chunks).
        resolved: the resolved configuration.
        steps: training steps, >= 1.
        eval_every: steps between validation checks (early stopping on validation accuracy).
        seed: root seed; order o trains on ``derive_seed(seed, "final", o)``.

    Returns:
        ``test_acc`` (at the early-stopping step), ``best_step`` and ``val_acc``, each ``(orders, P)``.
    """
    arch, splits, cfg = resolved.arch, resolved.splits, resolved.config.optimizer
    density = max(t.total_density() for t in tickets)
    size = population_chunk(arch, cfg, splits.x_val.shape[0], density, splits.device)
    out: dict[str, list[list[float]]] = {"test_acc": [], "best_step": [], "val_acc": []}
    for order in range(FINAL_ORDERS):
        batches = minibatch_indices(
            splits.x_train.shape[0], steps, cfg.batch_size, derive_seed(seed, "final", order), splits.device
        )
        rows: dict[str, list[float]] = {k: [] for k in out}
        for start in range(0, len(tickets), size):
            theta0, masks = stack_tickets(list(tickets[start : start + size]), splits.device)
            res = train_early_stopping(arch, theta0, masks, splits, cfg, batches, eval_every, "val_acc")
            rows["test_acc"] += res.test_acc.tolist()
            rows["best_step"] += res.best_step.tolist()
            rows["val_acc"] += res.val_acc.tolist()
        for k in out:
            out[k].append(rows[k])
    return {k: np.asarray(v, dtype=float) for k, v in out.items()}


def spearman(x: Sequence[float], y: Sequence[float]) -> dict[str, float | None]:
    """Spearman's rho and its two-sided p-value (``None`` for both when either side is constant).

    Args:
        x: first values.
        y: second values, as many.

    Returns:
        ``{"rho": ..., "p": ..., "n": ...}``.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"rho": None, "p": None, "n": len(x)}
    res = spearmanr(x, y)
    return {"rho": float(res.statistic), "p": float(res.pvalue), "n": len(x)}


def spread(values: Sequence[float]) -> dict[str, float]:
    """Population std, minimum, maximum and range of accuracies (in [0, 1])."""
    v = np.asarray(values, dtype=float)
    return {"std": float(v.std()), "min": float(v.min()), "max": float(v.max()), "range": float(np.ptp(v))}


def machine() -> dict[str, Any]:
    """The CPU model, CPU count, torch threads, OS and Python of this run."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def run(
    *,
    n_random: int = 24,
    n_magnitude: int = 24,
    fit_steps: Sequence[int] = FIT_STEPS,
    final_steps: int = 1500,
    eval_every: int = 100,
    prune_steps: Sequence[int] = PRUNE_STEPS,
    seed: int = 0,
) -> dict[str, Any]:
    """Build the sample, measure fitness and final accuracy, and correlate them.

    Args:
        n_random: random masks.
        n_magnitude: magnitude masks.
        fit_steps: fine-tuning steps of the fitness, each >= 1.
        final_steps: full training steps.
        eval_every: validation checks of the full training (early stopping).
        prune_steps: dense training steps of the magnitude masks.
        seed: root seed of everything (theta0, masks, data orders).

    Returns:
        The result as written to the JSON (see :func:`main`).
    """
    t_start = time.perf_counter()
    load_before = os.getloadavg()
    fit_steps = [int(s) for s in fit_steps]
    resolved = resolve(make_config(seed, max(fit_steps)))
    arch: Architecture = resolved.arch
    sample = build_sample(resolved, n_random, n_magnitude, prune_steps, seed)
    tickets = sample.tickets
    t_sample = time.perf_counter()

    fitness: dict[int, np.ndarray] = {}
    untrained = None
    for s in fit_steps:
        res = finetune_tickets(
            tickets, arch, resolved.splits, resolved.config.optimizer, derive_seed(seed, "fitness", s), steps=s
        )
        fitness[s] = res.val_acc.double().numpy()
        untrained = res.val_acc_before.double().numpy()
    t_fitness = time.perf_counter()

    final = final_accuracy(tickets, resolved, final_steps, eval_every, seed)
    final_mean = final["test_acc"].mean(axis=0)
    t_final = time.perf_counter()

    group = np.asarray(sample.group)
    members = {"all": np.ones(len(tickets), dtype=bool), "random": group == "random", "magnitude": group == "magnitude"}
    columns = {"0": untrained, **{str(s): fitness[s] for s in fit_steps}}
    correlations = {
        "fitness_vs_final": {
            s: {g: spearman(col[m], final_mean[m]) for g, m in members.items() if m.any()} for s, col in columns.items()
        },
        "final_vs_final": {
            g: spearman(final["test_acc"][0][m], final["test_acc"][1][m]) for g, m in members.items() if m.any()
        },
    }
    spreads = {
        g: {
            **spread(final_mean[m]),
            "n": int(m.sum()),
            "mean": float(final_mean[m].mean()),
            "order_abs_diff_mean": float(np.abs(final["test_acc"][0][m] - final["test_acc"][1][m]).mean()),
        }
        for g, m in members.items()
        if m.any()
    }
    per_ticket = [
        {
            "index": i,
            "group": sample.group[i],
            "prune_step": sample.prune_step[i],
            "prune_order": sample.prune_order[i],
            "density": ticket.total_density(),
            "layer_kept": {k: int(m.sum()) for k, m in ticket.masks.items()},
            "fitness": {s: float(col[i]) for s, col in columns.items()},
            "final_test_acc": [float(v) for v in final["test_acc"][:, i]],
            "final_test_acc_mean": float(final_mean[i]),
            "final_best_step": [int(v) for v in final["best_step"][:, i]],
            "final_val_acc": [float(v) for v in final["val_acc"][:, i]],
        }
        for i, ticket in enumerate(tickets)
    ]
    c = resolved.config
    return {
        "benchmark": "rank-correlation",
        "settings": {
            "data": c.data.name,
            "model": f"{arch.name} {'-'.join(str(n) for n in (arch.input_shape[0], *arch.hidden, arch.num_classes))}",
            "n_train": int(resolved.splits.x_train.shape[0]),
            "n_val": int(resolved.splits.x_val.shape[0]),
            "n_test": int(resolved.splits.x_test.shape[0]),
            "seed": seed,
            "init": c.model.init,
            "layer_densities": ticket_densities(arch, c.ticket.density, c.ticket.allocation, c.ticket.layer_densities),
            "total_density": tickets[0].total_density() if tickets else None,
            "random": n_random,
            "magnitude": n_magnitude,
            "prune_steps": sorted({int(t) for t in prune_steps}),
            "fitness_steps": fit_steps,
            "final_steps": final_steps,
            "final_eval_every": eval_every,
            "final_orders": FINAL_ORDERS,
            "early_stopping": "val_acc",
            "optimizer": c.optimizer.optimizer,
            "lr": c.optimizer.lr,
            "batch_size": c.optimizer.batch_size,
            "final_accuracy": "test accuracy at the early-stopping step, mean of the data orders",
            "fitness": "validation accuracy after s fine-tuning steps ('0': theta0 * mask, untrained)",
        },
        "correlations": correlations,
        "spread": spreads,
        "tickets": per_ticket,
        "wall_seconds": {
            "sample": t_sample - t_start,
            "fitness": t_fitness - t_sample,
            "final": t_final - t_fitness,
            "total": time.perf_counter() - t_start,
        },
        "torch": torch.__version__,
        "machine": {**machine(), "load_average_1min": {"before": load_before[0], "after": os.getloadavg()[0]}},
    }


def _fmt(c: dict[str, float | None]) -> str:
    if c["rho"] is None:
        return f"{'n/a':>7} {'':>8}"
    return f"{c['rho']:>+7.3f} {c['p']:>8.1e}"


def table(result: dict[str, Any]) -> str:
    """The correlations and spreads as a plain-text table (accuracies in %)."""
    corr, groups = result["correlations"], [g for g in GROUPS if g in result["spread"]]
    sizes = ", ".join(f"{g} {result['spread'][g]['n']}" for g in groups)
    width = 26
    head = f"{'Spearman vs final acc.':<{width}}" + "".join(f"  {g:>16}" for g in groups)
    sub = f"{'':<{width}}" + "".join(f"  {'rho':>7} {'p':>8}" for _ in groups)
    lines = [f"tickets: {sizes}", head, sub, "-" * len(head)]
    for s, row in corr["fitness_vs_final"].items():
        name = "fitness, untrained" if s == "0" else f"fitness after {s} steps"
        lines.append(f"{name:<{width}}" + "".join(f"  {_fmt(row[g])}" for g in groups))
    ceiling = corr["final_vs_final"]
    lines.append(f"{'final vs final (ceiling)':<{width}}" + "".join(f"  {_fmt(ceiling[g])}" for g in groups))
    lines += ["", f"{'final test accuracy (%)':<{width}}" + "".join(f"  {g:>16}" for g in groups), "-" * len(head)]
    labels = {"mean": "mean", "std": "std", "min": "min", "max": "max", "range": "range"}
    labels["order_abs_diff_mean"] = "mean |order 1 - order 2|"
    for key, label in labels.items():
        lines.append(f"{label:<{width}}" + "".join(f"  {100 * result['spread'][g][key]:>16.2f}" for g in groups))
    return "\n".join(lines)


def figure(result: dict[str, Any], path: str | Path) -> None:
    """One panel per fitness step count: x fitness, y final test accuracy, random and magnitude masks apart.

    Args:
        result: what :func:`run` returned.
        path: the PNG to write (its folder is created).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [str(s) for s in result["settings"]["fitness_steps"]]
    tickets = result["tickets"]
    fig, axes = plt.subplots(1, len(steps), figsize=(4.6 * len(steps), 4.8), sharey=True, squeeze=False)
    styles = {"random": ("tab:blue", "o", "random masks"), "magnitude": ("tab:orange", "^", "magnitude masks")}
    for ax, s in zip(axes[0], steps, strict=True):
        for g, (colour, marker, label) in styles.items():
            rows = [t for t in tickets if t["group"] == g]
            if not rows:
                continue
            x = [100 * t["fitness"][s] for t in rows]
            y = [100 * t["final_test_acc_mean"] for t in rows]
            ax.scatter(x, y, c=colour, marker=marker, s=30, alpha=0.8, edgecolors="none", label=label)
        corr = result["correlations"]["fitness_vs_final"][s]
        parts = [f"{g} {c['rho']:+.2f}" for g, c in corr.items() if c["rho"] is not None]
        ax.set_title(f"after {s} fine-tuning steps\nSpearman ρ: " + ", ".join(parts), fontsize=9.5)
        ax.set_xlabel(f"fitness: validation accuracy after {s} steps (%)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(
        f"test accuracy after full training (%)\n({result['settings']['final_steps']} steps, early stopping)"
    )
    axes[0][0].legend(loc="lower right", fontsize=8, framealpha=0.9)
    st = result["settings"]
    title = f"MNIST-1D {st['model']}, one theta0, {100 * st['total_density']:.1f}% density: short fine-tuning vs full training"
    ceiling = [
        f"{g} {c['rho']:+.2f}" for g, c in result["correlations"]["final_vs_final"].items() if c["rho"] is not None
    ]
    if ceiling:
        title += "\nnoise ceiling (Spearman ρ of final vs final over two data orders): " + ", ".join(ceiling)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse the command line, run the benchmark, print the table, write the JSON and the figure.

    Args:
        argv: command-line arguments (default ``sys.argv[1:]``).

    Returns:
        The result written to the JSON.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--random", type=int, default=24, help="random masks (default 24)")
    parser.add_argument("--magnitude", type=int, default=24, help="magnitude masks (default 24)")
    parser.add_argument(
        "--steps", type=int, nargs="+", default=list(FIT_STEPS), help="fitness steps (default 25 100 400)"
    )
    parser.add_argument("--final-steps", type=int, default=1500, help="full training steps (default 1500)")
    parser.add_argument("--eval-every", type=int, default=100, help="early-stopping checks every N steps (default 100)")
    parser.add_argument(
        "--prune-steps", type=int, nargs="+", default=list(PRUNE_STEPS), help="dense steps before magnitude pruning"
    )
    parser.add_argument("--seed", type=int, default=0, help="root seed (default 0)")
    parser.add_argument("--out", default=None, help=f"JSON to write (default {DEFAULT_OUT})")
    parser.add_argument("--figure", default=None, help=f"PNG to write (default {DEFAULT_FIGURE})")
    parser.add_argument("--quick", action="store_true", help="a tiny run (4 + 4 tickets, steps 5 10, 50 final steps)")
    args = parser.parse_args(argv)
    if args.quick:
        if args.out is None or args.figure is None:
            parser.error("--quick needs --out and --figure (it must not overwrite the full results)")
        for key, value in QUICK.items():
            setattr(args, key, value)
    if min(args.steps) < 1 or args.final_steps < 1 or args.eval_every < 1 or min(args.prune_steps) < 0:
        parser.error("--steps, --final-steps and --eval-every must be >= 1, --prune-steps >= 0")
    if args.random + args.magnitude < 1:
        parser.error("the sample needs at least one ticket")
    result = run(
        n_random=args.random,
        n_magnitude=args.magnitude,
        fit_steps=args.steps,
        final_steps=args.final_steps,
        eval_every=args.eval_every,
        prune_steps=args.prune_steps,
        seed=args.seed,
    )
    result["settings"]["quick"] = bool(args.quick)
    print(table(result))
    w = result["wall_seconds"]
    load = result["machine"]["load_average_1min"]
    print(
        f"\nwall: {w['total']:.1f} s (sample {w['sample']:.1f}, fitness {w['fitness']:.1f}, final {w['final']:.1f}); "
        f"1-min load average {load['before']:.2f} before, {load['after']:.2f} after, on {result['machine']['cpus']} CPUs"
    )
    out = Path(args.out or DEFAULT_OUT)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    figure(result, args.figure or DEFAULT_FIGURE)
    print(f"wrote {out} and {args.figure or DEFAULT_FIGURE}")
    return result


if __name__ == "__main__":
    main()
