"""A whole campaign: evolve tickets, then compare the best with the lottery-ticket controls.

:func:`run_campaign` evolves a population of tickets (:func:`evoticket.evolution.evolve`),
writing records as it goes, then trains the best ticket fully from theta0 with
its mask, next to the controls of Frankle & Carbin 2019 (arXiv:1803.03635),
all with the same training budget (``campaign.final_steps`` steps, repeated
over ``campaign.final_seeds`` data orders):

* ``ticket``: the best ticket of the hall of fame;
* ``dense``: the same theta0 with no mask;
* ``random``: a random mask with the ticket's per-layer densities on the same theta0;
* ``reinit``: the ticket's mask on a freshly drawn theta0 (the paper's
  "randomly reinitialised" control).

The ticket is called a *winning ticket* when its mean test accuracy (at the
early-stopping step) is at least the dense network's minus
``campaign.winning_tolerance``.
"""

from __future__ import annotations

import random
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
from torch import nn

from evoticket import paths
from evoticket.config import CampaignConfig
from evoticket.data import Splits
from evoticket.errors import EvoticketError, RunExistsError
from evoticket.evolution import GenerationRecord, Hook, derive_seed, evolve, make_toolbox
from evoticket.finetune import minibatch_indices, train_early_stopping
from evoticket.genome import Ticket, stack_tickets, ticket_from_state
from evoticket.models import Architecture, architecture_from_dict
from evoticket.plots import plot_fitness
from evoticket.records import RecordWriter, generation_row, write_json

TICKET_FORMAT = "evoticket-ticket-v1"
CONTROLS = ("ticket", "dense", "random", "reinit")
"""Rows of the final comparison, in the order printed."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class CampaignResult:
    """What :func:`run_campaign` returns.

    Attributes:
        run_dir: ``runs/NAME``.
        plot_dir: ``plots/NAME``.
        summary: the content of ``summary.json``.
        best: the best ticket found.
    """

    run_dir: Path
    plot_dir: Path
    summary: dict[str, Any]
    best: Ticket


def default_name(config: CampaignConfig) -> str:
    """``DATA-MODEL-YYYYmmdd-HHMMSS``: a new run name that does not clash with older runs."""
    return f"{config.data.name}-{config.model.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def prepare_run_dir(runs_dir: Path, name: str, force: bool) -> Path:
    """Check that ``runs_dir/name`` may be written; with ``force``, clear an old run there.

    Raises:
        EvoticketError: for a name that is not a plain file name.
        RunExistsError: if the run exists and ``force`` is false, or the
            directory exists but holds no evoticket run (never removed).
    """
    if not _NAME.match(name):
        raise EvoticketError(
            f"--name {name!r}: use letters, digits, '.', '_' and '-' only, starting with a letter or digit"
        )
    run_dir = Path(runs_dir) / name
    if run_dir.exists():
        if not force:
            raise RunExistsError(
                f"run {str(run_dir)!r} already exists; choose another --name or pass --force to replace it"
            )
        if any(run_dir.iterdir()) and not paths.config(run_dir).exists():
            raise RunExistsError(f"{str(run_dir)!r} exists and is not an evoticket run; not replacing it")
    return run_dir


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and CUDA)."""
    random.seed(derive_seed(seed, "python"))
    np.random.seed(derive_seed(seed, "numpy"))
    torch.manual_seed(derive_seed(seed, "torch"))


class _Progress:
    """A tqdm bar over generations showing best and mean fitness and individuals/s."""

    def __init__(self, total: int, enabled: bool) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc="generations", unit="gen", disable=not enabled, dynamic_ncols=True)

    def __call__(self, generation: int, population: list, record: GenerationRecord) -> None:
        fit = record.stats["fitness"]
        rate = len(record.evaluated) / record.finetune_seconds if record.finetune_seconds > 0 else 0.0
        self.bar.set_postfix(best=f"{fit['max']:.4f}", mean=f"{fit['avg']:.4f}", ind_per_s=f"{rate:.1f}")
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def run_campaign(
    config: CampaignConfig | None = None,
    *,
    name: str | None = None,
    runs_dir: str | Path = "runs",
    plots_dir: str | Path = "plots",
    force: bool = False,
    hooks: tuple[Hook, ...] = (),
    splits: Splits | None = None,
    out: TextIO | None = None,
) -> CampaignResult:
    """Run a campaign end to end and write its records, best ticket, plot and summary.

    Args:
        config: the configuration; default ``CampaignConfig()``.
        name: run name (``runs_dir/name``); default :func:`default_name`.
        runs_dir: parent of run directories.
        plots_dir: parent of plot directories.
        force: replace an existing run of the same name.
        hooks: extra ``(generation, population, record) -> None`` hooks.
        splits: data to use instead of loading ``config.data`` (tests).
        out: where the summary table is printed; default stdout, ``None`` for stdout.

    Returns:
        A :class:`CampaignResult`.

    Raises:
        EvoticketError: for bad input (configuration, data, device, run name);
            nothing is written then.
    """
    config = config or CampaignConfig()
    out = out or sys.stdout
    name = name or default_name(config)
    run_dir = prepare_run_dir(Path(runs_dir), name, force)
    plot_dir = Path(plots_dir) / name
    wall_start = time.perf_counter()
    seed_everything(config.campaign.seed)
    toolbox = make_toolbox(config, splits=splits)  # loads the data: bad input fails before anything is written

    if run_dir.exists():
        shutil.rmtree(run_dir)
    if plot_dir.exists() and force:
        shutil.rmtree(plot_dir)
    run_dir.mkdir(parents=True)
    paths.config(run_dir).write_text(config.to_toml(), encoding="utf-8")
    writer = RecordWriter(run_dir)
    io_seconds = 0.0

    def write_records(generation: int, population: list, record: GenerationRecord) -> None:
        nonlocal io_seconds
        start = time.perf_counter()
        writer.write_individuals(ind.eval_record for ind in record.evaluated)
        writer.write_generation(
            generation_row(generation, population, record.stats, record.seconds, record.finetune_seconds)
        )
        io_seconds += time.perf_counter() - start

    progress = _Progress(config.ga.generations + 1, config.campaign.progress)
    try:
        evo_start = time.perf_counter()
        population, _, hof = evolve(toolbox, config, hooks=(write_records, progress, *hooks))
        evolution_seconds = time.perf_counter() - evo_start
    finally:
        progress.close()

    # The final population was evaluated under one minibatch sequence; the hall of fame mixes generations.
    best = max(population, key=lambda ind: ind.fitness.wvalues)
    save_ticket(paths.best_ticket(run_dir), best, toolbox.arch, config)
    final_start = time.perf_counter()
    controls = compare_controls(best, toolbox.arch, toolbox.splits, config)
    final_seconds = time.perf_counter() - final_start
    plot_start = time.perf_counter()
    plot_fitness(run_dir, paths.fitness_plot(plot_dir))
    plot_seconds = time.perf_counter() - plot_start

    evaluator = toolbox.evaluator
    dense = controls["dense"]["test_acc_mean"]
    ticket = controls["ticket"]["test_acc_mean"]
    winning = ticket >= dense - config.campaign.winning_tolerance
    summary = {
        "name": name,
        "config_hash": config.hash(),
        "data": config.data.name,
        "model": config.model.name,
        "architecture": toolbox.arch.to_dict(),
        "best": {
            "uid": best.uid,
            "generation": best.eval_record["generation"],
            "val_acc": best.fitness.values[0],
            "val_loss": best.fitness.values[1],
            "density_total": best.total_density(),
            "density": best.density(),
        },
        "hall_of_fame": [
            {"uid": ind.uid, "generation": ind.eval_record["generation"], "val_acc": ind.fitness.values[0]}
            for ind in hof
        ],
        "controls": controls,
        "winning_ticket": bool(winning),
        "beats_random_mask": bool(ticket > controls["random"]["test_acc_mean"]),
        "verdict": _verdict(winning, controls, config),
        "individuals_evaluated": evaluator.evaluated,
        "device": str(toolbox.splits.device),
        "timing": {
            "wall_seconds": round(time.perf_counter() - wall_start, 3),
            "evolution_seconds": round(evolution_seconds, 3),
            "finetune_seconds": round(evaluator.seconds, 3),
            "records_seconds": round(io_seconds, 3),
            "final_comparison_seconds": round(final_seconds, 3),
            "plot_seconds": round(plot_seconds, 3),
            "individuals_per_second": round(evaluator.evaluated / max(evaluator.seconds, 1e-9), 3),
            "torch_version": torch.__version__,
            "threads": torch.get_num_threads(),
        },
    }
    write_json(paths.summary(run_dir), summary)
    print(format_summary(summary, run_dir, plot_dir, config), file=out)
    return CampaignResult(run_dir, plot_dir, summary, best)


def _verdict(winning: bool, controls: dict, config: CampaignConfig) -> str:
    t, d, r = (controls[k]["test_acc_mean"] for k in ("ticket", "dense", "random"))
    tol = config.campaign.winning_tolerance
    if winning:
        head = f"a winning ticket: {t:.4f} test accuracy vs {d:.4f} dense (tolerance {tol})"
    else:
        head = f"not a winning ticket: {t:.4f} test accuracy vs {d:.4f} dense (tolerance {tol})"
    return f"{head}; random mask of the same density {r:.4f}"


def format_summary(summary: dict, run_dir: Path, plot_dir: Path, config: CampaignConfig) -> str:
    """The summary table printed at the end of a campaign."""
    seeds = config.campaign.final_seeds
    lines = [
        "",
        f"Final comparison: {config.campaign.final_steps} training steps each, test accuracy at the "
        f"early-stopping step ({config.campaign.early_stopping}), mean +- std over {seeds} seed(s)",
        f"{'control':<8} {'density':>8} {'test acc':>17} {'val acc':>8} {'stop step':>10}",
    ]
    for key in CONTROLS:
        c = summary["controls"][key]
        lines.append(
            f"{key:<8} {c['density']:>8.4f} {c['test_acc_mean']:>9.4f} +- {c['test_acc_std']:.4f} "
            f"{c['val_acc_mean']:>8.4f} {c['best_step_mean']:>10.0f}"
        )
    t = summary["timing"]
    lines += [
        "",
        f"Best ticket: uid {summary['best']['uid']} (generation {summary['best']['generation']}), "
        f"validation accuracy {summary['best']['val_acc']:.4f} after fine-tuning, "
        f"density {summary['best']['density_total']:.4f}",
        f"Verdict: {summary['verdict']}",
        f"Wall time {t['wall_seconds']:.1f} s: fine-tuning {t['finetune_seconds']:.1f} s "
        f"({summary['individuals_evaluated']} individuals, {t['individuals_per_second']:.1f}/s), "
        f"final comparison {t['final_comparison_seconds']:.1f} s, records {t['records_seconds']:.2f} s",
        f"Records: {run_dir}/   Plot: {paths.fitness_plot(plot_dir)}",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# the final comparison


def _random_masks(ticket: Ticket, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Masks with the ticket's exact per-layer kept counts at uniformly random positions."""
    masks = {}
    for name, mask in ticket.masks.items():
        kept = int(mask.sum())
        flat = torch.zeros(mask.numel(), dtype=torch.bool)
        flat[torch.randperm(mask.numel(), generator=gen)[:kept]] = True
        masks[name] = flat.view(mask.shape)
    return masks


def control_tickets(ticket: Ticket, arch: Architecture, seed: int) -> dict[str, Ticket]:
    """The four tickets of the final comparison for one seed (see the module docstring)."""
    gen = torch.Generator().manual_seed(seed)
    dense = {k: torch.ones_like(m) for k, m in ticket.masks.items()}
    reinit_theta0 = arch.init_params(ticket.init_scheme, gen)
    plain = Ticket
    return {
        "ticket": plain(ticket.theta0, ticket.masks, ticket.init_scheme, ticket.init_std),
        "dense": plain(ticket.theta0, dense, ticket.init_scheme, ticket.init_std),
        "random": plain(ticket.theta0, _random_masks(ticket, gen), ticket.init_scheme, ticket.init_std),
        "reinit": plain(reinit_theta0, ticket.masks, ticket.init_scheme, ticket.init_std),
    }


def compare_controls(ticket: Ticket, arch: Architecture, splits: Splits, config: CampaignConfig) -> dict[str, dict]:
    """Train the ticket and its controls fully, batched, over ``campaign.final_seeds`` seeds.

    Returns:
        Control name -> ``density``, per-seed ``test_acc``, ``final_test_acc``,
        ``val_acc`` and ``best_step`` lists, and ``test_acc_mean``,
        ``test_acc_std``, ``val_acc_mean``, ``best_step_mean``,
        ``final_test_acc_mean``; accuracies in [0, 1], steps in optimizer steps.
    """
    c = config.campaign
    per_seed: dict[str, dict[str, list]] = {
        k: {"test_acc": [], "final_test_acc": [], "val_acc": [], "best_step": [], "nonfinite": []} for k in CONTROLS
    }
    for s in range(c.final_seeds):
        tickets = control_tickets(ticket, arch, derive_seed(c.seed, "controls", s))
        theta0, masks = stack_tickets(list(tickets.values()), splits.device)
        batches = minibatch_indices(
            splits.x_train.shape[0],
            c.final_steps,
            config.finetune.batch_size,
            derive_seed(c.seed, "final", s),
            splits.device,
        )
        res = train_early_stopping(
            arch, theta0, masks, splits, config.finetune, batches, c.final_eval_every, c.early_stopping
        )
        for i, key in enumerate(tickets):
            per_seed[key]["test_acc"].append(float(res.test_acc[i]))
            per_seed[key]["final_test_acc"].append(float(res.final_test_acc[i]))
            per_seed[key]["val_acc"].append(float(res.val_acc[i]))
            per_seed[key]["best_step"].append(int(res.best_step[i]))
            per_seed[key]["nonfinite"].append(bool(res.nonfinite[i]))
    densities = {
        "ticket": ticket.total_density(),
        "dense": 1.0,
        "random": ticket.total_density(),
        "reinit": ticket.total_density(),
    }
    result = {}
    for key, vals in per_seed.items():
        result[key] = {
            "density": densities[key],
            **vals,
            "test_acc_mean": float(np.mean(vals["test_acc"])),
            "test_acc_std": float(np.std(vals["test_acc"])),
            "final_test_acc_mean": float(np.mean(vals["final_test_acc"])),
            "val_acc_mean": float(np.mean(vals["val_acc"])),
            "best_step_mean": float(np.mean(vals["best_step"])),
        }
    return result


# ---------------------------------------------------------------------------
# tickets on disk


def save_ticket(path: Path, ticket: Ticket, arch: Architecture, config: CampaignConfig) -> None:
    """Write a ticket (theta0, masks, lineage, fitness), its architecture and config.

    Written to a temporary file and renamed, so a crash never leaves half a file.
    """
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(
        {
            "format": TICKET_FORMAT,
            "ticket": ticket.state_dict(),
            "architecture": arch.to_dict(),
            "config": config.to_dict(),
        },
        tmp,
    )
    tmp.replace(path)


def load_ticket_state(path: str | Path) -> tuple[Ticket, Architecture, CampaignConfig]:
    """Read a ticket file written by a campaign.

    Returns:
        ``(ticket, architecture, config)``.

    Raises:
        EvoticketError: if the file is missing or is not an evoticket ticket.
    """
    path = Path(path)
    if not path.is_file():
        raise EvoticketError(f"{path}: no such ticket file (a campaign writes runs/NAME/best_ticket.pt)")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise EvoticketError(f"{path}: not a readable ticket file ({type(e).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != TICKET_FORMAT:
        raise EvoticketError(f"{path}: not an evoticket ticket file (expected format {TICKET_FORMAT!r})")
    return (
        ticket_from_state(data["ticket"]),
        architecture_from_dict(data["architecture"]),
        CampaignConfig.from_dict(data["config"]),
    )


def load_ticket(path: str | Path) -> nn.Module:
    """Load a saved ticket as a plain ``torch.nn.Module`` at its initial weights.

    The masks are applied the way ``torch.nn.utils.prune`` does: each pruned
    layer has a ``weight_orig`` parameter (theta0), a ``weight_mask`` buffer and
    ``weight = weight_orig * weight_mask``, so training the module keeps pruned
    weights at zero. Biases are theta0's.

    Args:
        path: a ``best_ticket.pt`` file.

    Returns:
        The module, on the CPU, in training mode.

    Raises:
        EvoticketError: if the file is missing or is not an evoticket ticket.
    """
    from torch.nn.utils import prune

    ticket, arch, _ = load_ticket_state(path)
    module = arch.build_module()
    module.load_state_dict(ticket.theta0)
    for name, mask in ticket.masks.items():
        layer = module.get_submodule(name.rsplit(".", 1)[0])
        prune.custom_from_mask(layer, "weight", mask)
    return module
