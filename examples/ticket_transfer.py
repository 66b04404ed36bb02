"""Ticket transfer: does a ticket evolved on one data set win on another of the same input shape?

After Morcos et al. 2019, "One ticket to win them all: generalizing lottery ticket initializations across
datasets and optimizers" (arXiv:1906.02773): a GA campaign (evoticket's default hybrid, budget set by the flags)
searches a ticket on the *source* data set; the best of its final population is then trained on the *target*
data set, next to controls, all with the final comparison's budget and training routine
(``campaign.final_steps`` steps, early stopping on validation every ``campaign.final_eval_every`` steps,
``evoticket.training.train_early_stopping``, as ``evoticket.campaign.compare_controls`` trains):

* ``transferred``: the source ticket as it is, theta0 and masks;
* ``transferred_mask``: the source ticket's masks on a freshly drawn theta0 (does the mask carry over alone?);
* ``random``: a random mask with the source ticket's per-layer kept counts on the same fresh theta0;
* ``target_searched``: a ticket searched on the target itself with the same search budget (and seed);
* ``dense``: the fresh theta0 with no mask (a reference, not a ticket).

What "transferred ticket" means here. The default GA is Lamarckian (``finetune.mode = "lamarckian"``): every
evaluation writes the fine-tuned weights back into the genome, so the best ticket's theta0 is the weights its
lineage *trained on the source* (kept positions, and the biases), not an initialisation. ``transferred`` is then
a source-trained sparse network fine-tuned on the target: the analogue of Morcos et al.'s late-reset tickets
(rewound to an early training iteration), with the rewinding point at the lineage's last evaluation. With
``--set finetune.mode=baldwinian`` theta0 stays an initialisation and ``transferred`` is the paper's
transferred winning ticket. ``target_searched`` is Lamarckian too: its theta0 is the weights trained on the
target during its search.

Seeds: seed s is ``campaign.seed = s`` of both searches, the target training's data order (that of the final
comparison's first order, ``derive_seed(s, "final", 0)``) and the fresh theta0 and random mask; every arm of
a seed is trained in one batch on the same minibatch sequence, so differences are paired. Reported: test
accuracy at the early-stopping step, mean and 95% t interval over seeds (``scipy.stats.t``), and the paired
differences ``transferred - random`` and ``transferred - target_searched`` (mean, 95% t interval, paired
t-test p-value, ``scipy.stats.ttest_rel``).

Pairs (``--pair``):

* ``mnist1d``: MNIST-1D (Greydanus 2020, arXiv:2011.14439) with its default arguments to a harder variant,
  :data:`TARGET_MNIST1D` (``data.mnist1d``): 3x the i.i.d. noise, 2x the shear, shifts over 60 instead of 48
  of the 72 padded positions. A dense 40-300-100-10 MLP trained 1500 steps reaches about 62% on the source
  and 49% on the target (chance 10%).
* ``mnist-fashion``: MNIST (LeCun et al. 1998) to Fashion-MNIST (Xiao et al. 2017, arXiv:1708.07747), LeNet-300-100
  (``mlp``, 784-300-100-10), from IDX files on disk: ``--root DIR`` in torchvision's layout
  (``DIR/MNIST/raw``, ``DIR/FashionMNIST/raw``), or flat MNIST files in ``--root`` and flat Fashion-MNIST
  files in ``--target-root``. Nothing is downloaded.

Run (the first took 6 min 47 s with one thread on this project's shared 2-core CPU: per seed about 70 s for each
of the two 40-generation searches and 5 s for the five 1500-step trainings)::

    OMP_NUM_THREADS=1 python examples/ticket_transfer.py --pair mnist1d --seeds 3 --generations 40 \\
        --json benchmarks/results/transfer-mnist1d.json
    python examples/ticket_transfer.py --pair mnist-fashion --root ~/data --generations 10
    python examples/ticket_transfer.py --quick --json /tmp/transfer.json     # a tiny budget, a few seconds

``--set section.key=value`` (repeatable) changes both campaigns' configuration (e.g. ``finetune.mode=baldwinian``,
``campaign.final_steps=3000``, ``ticket.density=0.05``). Exit status 0, or 2 with one line on stderr for bad
input (a missing IDX file, a bad key, data sets of different input shapes).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

import evoticket
from evoticket import CampaignConfig, EvoticketError, Ticket
from evoticket.campaign.controls import train_as_final
from evoticket.core.seeds import derive_seed, seed_everything
from evoticket.data import Splits
from evoticket.genome import random_masks_like
from evoticket.models import Architecture
from evoticket.records import SPENT_KEYS
from evoticket.resolve import resolve

ARMS = ("transferred", "transferred_mask", "random", "target_searched", "dense")
"""Rows of the table, in the order printed (see the module docstring)."""

DIFFERENCES = (("transferred", "random"), ("transferred", "target_searched"))
"""Paired differences reported, ``a - b`` seed by seed."""

TARGET_MNIST1D: dict[str, float] = {"iid_noise_scale": 0.06, "shear_scale": 1.5, "max_translation": 60}
"""``data.mnist1d`` of the ``mnist1d`` pair's target: overrides of ``mnist1d.data.get_dataset_args()`` (defaults
0.02, 0.75 and 48)."""

QUICK = (
    "model.hidden=[16]",
    "ga.population=4",
    "ga.offspring=4",
    "ga.halving_rungs=1",
    "finetune.steps=5",
    "optimizer.batch_size=50",
    "campaign.final_steps=20",
    "campaign.final_eval_every=10",
)
"""``--quick``: a tiny budget for tests (with ``--generations 1`` and ``--seeds 2`` unless given)."""


def _toml(value: Any) -> str:
    """A value as a TOML inline value (for ``with_overrides``)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value)


def pair_configs(
    pair: str, root: str | None, target_root: str | None, overrides: Sequence[str]
) -> tuple[CampaignConfig, CampaignConfig]:
    """The source and target configurations of a pair, with ``overrides`` applied to both.

    Args:
        pair: ``"mnist1d"`` or ``"mnist-fashion"``.
        root: IDX directory of MNIST (and of Fashion-MNIST in torchvision's layout); ``mnist-fashion`` only.
        target_root: IDX directory of Fashion-MNIST; default ``root``.
        overrides: ``section.key=value`` strings.

    Raises:
        EvoticketError: for a missing ``root``, a bad override or an unknown pair.
    """
    base = CampaignConfig().with_overrides(["campaign.progress=false", *overrides])
    if pair == "mnist1d":
        if root or target_root:
            raise EvoticketError("--root: the mnist1d pair is generated, it reads no files; drop --root/--target-root")
        source = base.with_overrides(["data.name=mnist1d"])
        target = base.with_overrides(["data.name=mnist1d", f"data.mnist1d={_toml(TARGET_MNIST1D)}"])
        return source, target
    if pair == "mnist-fashion":
        if not root:
            raise EvoticketError(
                "--root: the mnist-fashion pair needs --root DIR holding MNIST's IDX files (DIR or DIR/MNIST/raw) "
                "and Fashion-MNIST's (DIR/FashionMNIST/raw, or --target-root DIR2)"
            )
        source = base.with_overrides(["data.name=mnist", f"data.root={json.dumps(str(root))}"])
        target = base.with_overrides(["data.name=fashion_mnist", f"data.root={json.dumps(str(target_root or root))}"])
        return source, target
    raise EvoticketError(f"--pair: unknown pair {pair!r}; valid: mnist1d, mnist-fashion")


def check_pair(source: Splits, target: Splits, source_arch: Architecture, target_arch: Architecture) -> None:
    """The target must take the source's tickets: the same input shape and classes, different data.

    Raises:
        EvoticketError: naming both data sets.
    """
    if source.input_shape != target.input_shape or source.num_classes != target.num_classes:
        raise EvoticketError(
            f"data: a ticket of {source.name} (input {tuple(source.input_shape)}, {source.num_classes} classes) "
            f"cannot be trained on {target.name} (input {tuple(target.input_shape)}, {target.num_classes} classes); "
            "the pair needs the same input shape and number of classes"
        )
    if source_arch.param_shapes != target_arch.param_shapes:  # pragma: no cover - follows from the shapes
        raise EvoticketError(f"model: the architectures of {source.name} and {target.name} differ")
    if source.x_train.shape == target.x_train.shape and torch.equal(source.x_train, target.x_train):
        raise EvoticketError(
            f"data: {source.name} and {target.name} read the same training data; for mnist-fashion give "
            "--root DIR with DIR/MNIST/raw and DIR/FashionMNIST/raw, or flat files in --root and --target-root"
        )


def search(config: CampaignConfig, splits: Splits) -> tuple[Ticket, dict[str, int], float]:
    """A GA campaign's search: :func:`evoticket.evolve` to ``ga.generations``, seeded as ``run_campaign`` seeds it.

    Returns:
        ``(best, spent, seconds)``: the best of the final population (the campaign's reported ticket; all of it
        evaluated under one minibatch sequence), the search's ``train_steps``, ``train_flops``, ``eval_flops``,
        and its wall time in seconds.
    """
    start = time.perf_counter()
    seed_everything(config.campaign.seed)
    toolbox = evoticket.make_toolbox(config, splits=splits)
    spent = dict.fromkeys(SPENT_KEYS, 0)

    def count(generation: int, population: list, record: Any) -> None:
        for key in SPENT_KEYS:
            spent[key] += int(record.spent.get(key, 0))

    try:
        population, _, _ = evoticket.evolve(toolbox, config, hooks=(count,))
    finally:
        toolbox.backend.close()
    best = max(population, key=lambda ind: ind.fitness.wvalues)
    return best, spent, time.perf_counter() - start


def transfer_arms(source_ticket: Ticket, target_ticket: Ticket, arch: Architecture, seed: int) -> dict[str, Ticket]:
    """The tickets trained on the target for one seed (:data:`ARMS`; see the module docstring).

    ``transferred_mask``, ``random`` and ``dense`` share one fresh theta0 drawn with ``model.init``
    (``source_ticket.init_scheme``) from ``derive_seed(seed, "transfer", "init")``; the random mask keeps each
    layer's kept count of the source ticket's mask.
    """
    init_gen = torch.Generator().manual_seed(derive_seed(seed, "transfer", "init"))
    fresh = arch.init_params(source_ticket.init_scheme, init_gen)
    mask_gen = torch.Generator().manual_seed(derive_seed(seed, "transfer", "random_mask"))
    scheme, std = source_ticket.init_scheme, source_ticket.init_std
    return {
        "transferred": Ticket(source_ticket.theta0, source_ticket.masks, scheme, std),
        "transferred_mask": Ticket(fresh, source_ticket.masks, scheme, std),
        "random": Ticket(fresh, random_masks_like(source_ticket.masks, mask_gen), scheme, std),
        "target_searched": Ticket(
            target_ticket.theta0, target_ticket.masks, target_ticket.init_scheme, target_ticket.init_std
        ),
        "dense": Ticket(fresh, {k: torch.ones_like(m) for k, m in source_ticket.masks.items()}, scheme, std),
    }


def train_on_target(
    tickets: dict[str, Ticket], arch: Architecture, splits: Splits, config: CampaignConfig
) -> dict[str, dict[str, Any]]:
    """Train the arms in one batch as the final comparison trains a ticket and its controls.

    ``campaign.final_steps`` steps on the minibatch sequence of the final comparison's first data order
    (``derive_seed(campaign.seed, "final", 0)``), ``config.optimizer``'s optimizer, learning rate and batch,
    validation checks every ``campaign.final_eval_every`` steps, test accuracy at the ``campaign.early_stopping``
    step (:func:`evoticket.training.train_early_stopping`).

    Returns:
        Arm -> ``test_acc``, ``val_acc`` (in [0, 1]), ``final_test_acc`` (at the last step), ``best_step``
        (optimizer steps), ``density`` (fraction of prunable weights kept), ``nonfinite``, ``train_flops``.
    """
    res = train_as_final(list(tickets.values()), arch, splits, config)
    return {
        arm: {
            "test_acc": float(res.test_acc[i]),
            "val_acc": float(res.val_acc[i]),
            "final_test_acc": float(res.final_test_acc[i]),
            "best_step": int(res.best_step[i]),
            "density": float(ticket.total_density()),
            "nonfinite": bool(res.nonfinite[i]),
            "train_flops": int(res.meter.train_flops[i]),
        }
        for i, (arm, ticket) in enumerate(tickets.items())
    }


def interval(values: Sequence[float]) -> dict[str, Any]:
    """Mean, sample sd and 95% t interval (``scipy.stats.t``; ``None`` bounds for fewer than 2 values)."""
    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if len(x) < 2:
        return {"mean": mean, "sd": None, "ci95": [None, None]}
    sd = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.975, len(x) - 1)) * sd / math.sqrt(len(x))
    return {"mean": mean, "sd": sd, "ci95": [mean - half, mean + half]}


def summarise(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Per arm: test accuracies by seed and their interval; per difference: ``a - b`` by seed, interval, p-value."""
    arms = {}
    for arm in ARMS:
        accs = [s["arms"][arm]["test_acc"] for s in per_seed]
        arms[arm] = {
            "test_acc": accs,
            **interval(accs),
            "density": float(np.mean([s["arms"][arm]["density"] for s in per_seed])),
            "best_step_mean": float(np.mean([s["arms"][arm]["best_step"] for s in per_seed])),
        }
    diffs = {}
    for a, b in DIFFERENCES:
        xa, xb = arms[a]["test_acc"], arms[b]["test_acc"]
        d = [p - q for p, q in zip(xa, xb, strict=True)]
        p_value = None
        if len(d) >= 2 and np.std(d) > 0:
            p_value = float(stats.ttest_rel(xa, xb).pvalue)
        diffs[f"{a} - {b}"] = {"by_seed": d, **interval(d), "p_value": p_value}
    return {"arms": arms, "differences": diffs}


def _pct(x: float | None) -> str:
    return "   n/a" if x is None else f"{100 * x:5.1f}"


def format_table(result: dict[str, Any]) -> str:
    """The result as a plain-text table: test accuracy (%) per arm, then the paired differences (points)."""
    s = result["summary"]
    n = len(result["seeds"])
    lines = [
        f"Ticket transfer {result['source']['label']} -> {result['target']['label']}: "
        f"{result['settings']['final_steps']} training steps on the target, test accuracy (%) at the "
        f"{result['settings']['early_stopping']} early-stopping step, mean [95% t interval] over {n} seed(s)",
        f"{'arm':<17} {'density':>7}  {'test acc':>8}  {'95% interval':>15}  by seed",
    ]
    for arm in ARMS:
        a = s["arms"][arm]
        lo, hi = a["ci95"]
        by_seed = " ".join(_pct(v).strip() for v in a["test_acc"])
        lines.append(f"{arm:<17} {a['density']:7.4f}  {_pct(a['mean']):>8}  [{_pct(lo)}, {_pct(hi)}]  {by_seed}")
    lines.append(f"{'paired difference':<30}  {'points':>6}  {'95% interval':>15}  p (paired t)")
    for name, d in s["differences"].items():
        lo, hi = d["ci95"]
        p = "n/a" if d["p_value"] is None else f"{d['p_value']:.3f}"
        mean = f"{100 * d['mean']:+.1f}"
        ci = "[   n/a,    n/a]" if lo is None else f"[{100 * lo:+5.1f}, {100 * hi:+5.1f}]"
        lines.append(f"{name:<30}  {mean:>6}  {ci:>15}  {p}")
    lines.append(result["meaning"])
    return "\n".join(lines)


def meaning(config: CampaignConfig) -> str:
    """What "transferred" means under the configuration's fine-tuning mode (printed under the table)."""
    if config.finetune.mode == "lamarckian":
        return (
            "transferred = the source ticket's theta0 and masks; the GA is Lamarckian, so theta0 is the weights its "
            "lineage trained on the source (a late-rewound ticket), not an initialisation"
        )
    return "transferred = the source ticket's theta0 (an initialisation: the GA is Baldwinian) and masks"


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the experiment of the parsed command line and return its result (also written to ``--json``)."""
    overrides = list(QUICK) if args.quick else []
    generations = args.generations if args.generations is not None else (1 if args.quick else None)
    if generations is not None:
        overrides.append(f"ga.generations={generations}")
    overrides += args.set
    source_cfg, target_cfg = pair_configs(args.pair, args.root, args.target_root, overrides)
    seeds = args.seeds if args.seeds is not None else (2 if args.quick else 3)
    if seeds < 1:
        raise EvoticketError(f"--seeds: must be >= 1, got {seeds}")
    source_res, target_res = resolve(source_cfg), resolve(target_cfg)  # loads and checks both before any search
    check_pair(source_res.splits, target_res.splits, source_res.arch, target_res.arch)
    arch = target_res.arch
    start = time.perf_counter()
    per_seed = []
    for seed in range(seeds):
        src_cfg = source_cfg.with_overrides([f"campaign.seed={seed}"])
        tgt_cfg = target_cfg.with_overrides([f"campaign.seed={seed}"])
        source_ticket, source_spent, source_s = search(src_cfg, source_res.splits)
        target_ticket, target_spent, target_s = search(tgt_cfg, target_res.splits)
        t0 = time.perf_counter()
        arms = train_on_target(
            transfer_arms(source_ticket, target_ticket, arch, seed), arch, target_res.splits, tgt_cfg
        )
        per_seed.append(
            {
                "seed": seed,
                "arms": arms,
                "source_search": {
                    "val_acc": float(source_ticket.fitness.values[0]),
                    "seconds": source_s,
                    **source_spent,
                },
                "target_search": {
                    "val_acc": float(target_ticket.fitness.values[0]),
                    "seconds": target_s,
                    **target_spent,
                },
                "train_seconds": time.perf_counter() - t0,
            }
        )
        if args.progress:
            accs = ", ".join(f"{arm} {100 * arms[arm]['test_acc']:.1f}" for arm in ARMS)
            print(f"seed {seed}: {accs} ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)

    def side(cfg: CampaignConfig, splits: Splits) -> dict[str, Any]:
        label = cfg.data.name + (" " + _toml(cfg.data.mnist1d) if cfg.data.mnist1d else "")
        return {"label": label, "data": cfg.to_dict()["data"], "sizes": splits.sizes()}

    c = source_cfg
    result = {
        "pair": args.pair,
        "source": side(source_cfg, source_res.splits),
        "target": side(target_cfg, target_res.splits),
        "seeds": list(range(seeds)),
        "settings": {
            "overrides": overrides,
            "model": c.model.name,
            "architecture": arch.to_dict(),
            "density": c.ticket.density,
            "finetune_mode": c.finetune.mode,
            "population": c.ga.population,
            "offspring": c.ga.num_offspring,
            "generations": c.ga.generations,
            "finetune_steps": c.finetune.steps,
            "halving_rungs": c.ga.halving_rungs,
            "final_steps": c.campaign.final_steps,
            "final_eval_every": c.campaign.final_eval_every,
            "early_stopping": c.campaign.early_stopping,
            "device": str(target_res.device),
        },
        "meaning": meaning(c),
        "per_seed": per_seed,
        "summary": summarise(per_seed),
        "wall_seconds": time.perf_counter() - start,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    return result


def build_parser() -> argparse.ArgumentParser:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(
        prog="ticket_transfer.py", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--pair", choices=("mnist1d", "mnist-fashion"), default="mnist1d", help="source -> target pair")
    p.add_argument("--root", help="mnist-fashion: IDX directory (DIR or DIR/MNIST/raw, DIR/FashionMNIST/raw)")
    p.add_argument("--target-root", help="mnist-fashion: Fashion-MNIST's IDX directory, if not under --root")
    p.add_argument("--seeds", type=int, help="seeds 0..N-1 (search and training); default 3 (--quick: 2)")
    p.add_argument("--generations", type=int, help="ga.generations of each search; default the config's (120)")
    p.add_argument("--quick", action="store_true", help="a tiny budget (tests): 16-unit MLP, 4+4, 1 generation")
    p.add_argument("--json", type=Path, help="write the result here (JSON)")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override of both configurations (repeatable)"
    )
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no per-seed line on stderr")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: 0 on success, 2 (one line on stderr) for bad input."""
    args = build_parser().parse_args(argv)
    try:
        result = run(args)
    except EvoticketError as e:
        message = "".join(ch if ch.isprintable() else " " for ch in str(e))
        print(f"ticket_transfer: error: {message}", file=sys.stderr)
        return 2
    print(format_table(result))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
