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

import os
import random
import re
import shutil
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
from torch import nn

from evoticket import paths
from evoticket.checkpoint import (
    Checkpoint,
    capture_rng,
    list_checkpoints,
    load_format,
    load_latest,
    record_sizes,
    restore_rng,
    rollback_records,
    save_checkpoint,
)
from evoticket.config import CampaignConfig, load_config
from evoticket.data import Splits
from evoticket.errors import ConfigError, EvoticketError, Interrupted, RunExistsError, StorageError
from evoticket.evolution import EvolutionState, GenerationRecord, Hook, derive_seed, evolve, make_toolbox
from evoticket.faults import kill_point
from evoticket.finetune import minibatch_indices, train_early_stopping
from evoticket.genome import Ticket, stack_tickets, ticket_from_state
from evoticket.models import Architecture, architecture_from_dict
from evoticket.plots import plot_fitness
from evoticket.records import RecordWriter, atomic_open, atomic_write_text, fsync_dir, generation_row, write_json

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

    def __init__(self, total: int, enabled: bool, initial: int = 0) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=total, initial=initial, desc="generations", unit="gen", disable=not enabled, dynamic_ncols=True
        )

    def __call__(self, generation: int, population: list, record: GenerationRecord) -> None:
        fit = record.stats["fitness"]
        rate = len(record.evaluated) / record.finetune_seconds if record.finetune_seconds > 0 else 0.0
        self.bar.set_postfix(best=f"{fit['max']:.4f}", mean=f"{fit['avg']:.4f}", ind_per_s=f"{rate:.1f}")
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


SAFE_ON_RESUME = frozenset(
    {
        "ga.generations",
        "campaign.progress",
        "campaign.device",
        "campaign.final_steps",
        "campaign.final_seeds",
        "campaign.final_eval_every",
        "campaign.early_stopping",
        "campaign.winning_tolerance",
        "finetune.max_memory_mb",
    }
)
"""Keys that ``evoticket resume --set`` may change: they do not alter the generations already run."""

TIMING_KEYS = (
    "finetune_seconds",
    "evaluation_seconds",
    "variation_selection_seconds",
    "records_seconds",
    "checkpoint_seconds",
    "final_comparison_seconds",
    "plot_seconds",
)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""Signals that stop a campaign cleanly: Ctrl-C, and the SIGTERM a batch scheduler sends before SIGKILL."""


class _StopOnSignal:
    """Handler of :data:`STOP_SIGNALS`.

    During evolution the first signal asks the loop to stop after the current generation and its
    checkpoint; a second one stops at once (``KeyboardInterrupt``). After the last checkpoint (final
    comparison, plot, summary), when nothing is left that a resume would not redo, set
    :attr:`immediate` and the first signal stops at once.

    Attributes:
        requested: a stop was asked for.
        signum: the signal that asked for it.
        immediate: stop at the first signal.
    """

    def __init__(self) -> None:
        self.requested = False
        self.signum = signal.SIGINT
        self.immediate = False
        self.previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._handle) for s in STOP_SIGNALS}

    def uninstall(self) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)
        self.previous = {}

    def _handle(self, signum: int, frame: Any) -> None:
        first = not self.requested
        self.requested, self.signum = True, signum
        if self.immediate or not first:
            raise KeyboardInterrupt
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        print(
            f"\nevoticket: {name}: stopping after this generation and its checkpoint ({name} again to stop now)",
            file=sys.stderr,
        )

    def __call__(self) -> bool:
        return self.requested


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
    """Run a campaign end to end and write its records, checkpoints, best ticket, plot and summary.

    Args:
        config: the configuration; default ``CampaignConfig()``.
        name: run name (``runs_dir/name``); default :func:`default_name`.
        runs_dir: parent of run directories.
        plots_dir: parent of plot directories.
        force: replace an existing run of the same name.
        hooks: extra ``(generation, population, record) -> None`` hooks.
        splits: data to use instead of loading ``config.data`` (tests).
        out: where the summary table is printed; default stdout.

    Returns:
        A :class:`CampaignResult`.

    Raises:
        EvoticketError: for bad input (configuration, data, device, run name);
            nothing is written then. ``StorageError`` when writing fails and
            ``DivergedError`` when a whole generation diverged; the last
            checkpoint is kept for both.
        Interrupted: after Ctrl-C, once the current generation is checkpointed.
    """
    config = config or CampaignConfig()
    name = name or default_name(config)
    run_dir = prepare_run_dir(Path(runs_dir), name, force)
    plot_dir = Path(plots_dir) / name
    wall_start = time.perf_counter()
    seed_everything(config.campaign.seed)
    toolbox = make_toolbox(config, splits=splits)  # loads the data: bad input fails before anything is written

    state = EvolutionState.initial(config)
    counters: dict[str, float] = {"evaluated": 0, "wall_seconds": 0.0, **dict.fromkeys(TIMING_KEYS, 0.0)}
    _create_run_dir(run_dir, plot_dir, force, config, toolbox, state, counters)
    return _execute(config, toolbox, run_dir, plot_dir, state, counters, hooks, out, wall_start)


def _create_run_dir(
    run_dir: Path,
    plot_dir: Path,
    force: bool,
    config: CampaignConfig,
    toolbox: Any,
    state: EvolutionState,
    counters: dict[str, float],
) -> None:
    """Make ``run_dir`` with its configuration and first checkpoint, all at once.

    Both are written into :func:`evoticket.paths.staging`, which is then renamed to
    ``run_dir`` (replacing an old run only now, with ``force``): a job killed at any
    moment leaves either no run or a run with a checkpoint to resume from.

    Raises:
        StorageError: if writing fails; an old run is then left untouched.
    """
    staging = paths.staging(run_dir)
    try:
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        atomic_write_text(paths.config(staging), config.to_toml())
        _save_checkpoint(staging, config, toolbox, state, counters)
    except (OSError, StorageError) as e:
        shutil.rmtree(staging, ignore_errors=True)
        detail = (e.strerror or e) if isinstance(e, OSError) else e
        raise StorageError(f"cannot create the run {run_dir}: {detail}") from None
    # An old run (with --force) is renamed aside, not removed in place: a kill never leaves half of one.
    replaced = paths.replaced(run_dir)
    if replaced.exists():
        shutil.rmtree(replaced)
    if run_dir.exists():
        os.replace(run_dir, replaced)
    os.replace(staging, run_dir)
    fsync_dir(run_dir.parent)
    shutil.rmtree(replaced, ignore_errors=True)
    if plot_dir.exists() and force:
        shutil.rmtree(plot_dir)


def resume_campaign(
    run_dir: str | Path,
    overrides: Sequence[str] = (),
    *,
    plots_dir: str | Path = "plots",
    hooks: tuple[Hook, ...] = (),
    splits: Splits | None = None,
    out: TextIO | None = None,
) -> CampaignResult:
    """Continue a campaign from its newest usable checkpoint.

    Records written after that checkpoint are cut off first, so the resumed
    campaign ends with exactly the files an uninterrupted one writes. Only the
    keys in :data:`SAFE_ON_RESUME` may be changed, and only explicitly, with
    ``overrides``; e.g. ``["ga.generations=60"]`` extends a campaign (also a
    finished one).

    Args:
        run_dir: the run directory (``runs/NAME``).
        overrides: ``section.key=value`` changes of safe keys.
        plots_dir: parent of plot directories.
        hooks, splits, out: as for :func:`run_campaign`.

    Raises:
        EvoticketError: for a missing run, a changed configuration (naming the
            keys that differ), no usable checkpoint, or a finished campaign
            with nothing to add.
    """
    wall_start = time.perf_counter()
    run_dir = Path(run_dir)
    if not run_dir.exists():
        if paths.staging(run_dir).exists():
            raise EvoticketError(
                f"{run_dir}: the run was never created (its start was interrupted before the first checkpoint); "
                f"start it again: evoticket run --name {run_dir.name}"
            )
        raise EvoticketError(f"{run_dir}: no such run directory; give runs/NAME")
    if not paths.config(run_dir).is_file():
        raise EvoticketError(f"{run_dir}: not an evoticket run (no {paths.config(run_dir).name}); give runs/NAME")
    stored = load_config(paths.config(run_dir))
    ckpt = load_latest(run_dir)
    saved = CampaignConfig.from_dict(ckpt.config)
    config = stored.with_overrides(list(overrides)) if overrides else stored
    changed = changed_keys(saved, config)
    unsafe = [k for k in changed if k not in SAFE_ON_RESUME]
    if unsafe:
        what = ", ".join(f"{k} ({_lookup(saved, k)!r} -> {_lookup(config, k)!r})" for k in unsafe)
        raise ConfigError(
            f"cannot resume {run_dir} with a changed configuration: {what}; "
            f"only these may change on resume: {', '.join(sorted(SAFE_ON_RESUME))}"
        )
    if config.ga.generations < ckpt.generation:
        raise ConfigError(
            f"ga.generations: {run_dir} has already completed generation {ckpt.generation}; "
            f"must be >= {ckpt.generation}, got {config.ga.generations}"
        )
    finished = paths.summary(run_dir).exists()
    if finished and not changed:
        raise EvoticketError(
            f"{run_dir}: the campaign is already complete (summary.json); "
            f"to extend it: evoticket resume {run_dir} --set ga.generations=N"
        )
    toolbox = make_toolbox(config, splits=splits)
    removed = rollback_records(run_dir, ckpt.records)
    if removed:
        detail = ", ".join(f"{n} bytes of {name}" for name, n in removed.items())
        print(f"evoticket: rolled back records written after generation {ckpt.generation}: {detail}", file=sys.stderr)
    if changed:
        atomic_write_text(paths.config(run_dir), config.to_toml())
        paths.summary(run_dir).unlink(missing_ok=True)  # stale: the campaign goes on
    toolbox.counter.next_uid = ckpt.next_uid
    restore_rng(ckpt.rng, toolbox.rng)
    state = EvolutionState(ckpt.generation, ckpt.population, ckpt.logbook, ckpt.hall_of_fame)
    counters = {"evaluated": 0, "wall_seconds": 0.0, **dict.fromkeys(TIMING_KEYS, 0.0), **ckpt.counters}
    print(f"evoticket: resuming {run_dir} after generation {ckpt.generation}", file=sys.stderr)
    return _execute(config, toolbox, run_dir, Path(plots_dir) / run_dir.name, state, counters, hooks, out, wall_start)


def changed_keys(old: CampaignConfig, new: CampaignConfig) -> list[str]:
    """Dotted keys whose values differ between two configurations."""
    a, b = old.to_dict(), new.to_dict()
    return [f"{section}.{key}" for section in a for key in a[section] if a[section][key] != b[section][key]]


def _lookup(config: CampaignConfig, dotted: str) -> Any:
    section, key = dotted.split(".", 1)
    return config.to_dict()[section][key]


def _save_checkpoint(
    run_dir: Path, config: CampaignConfig, toolbox: Any, state: EvolutionState, counters: dict[str, float]
) -> None:
    save_checkpoint(
        run_dir,
        Checkpoint(
            state.generation,
            state.population,
            state.hall_of_fame,
            state.logbook,
            toolbox.counter.next_uid,
            config.to_dict(),
            config.hash(),
            capture_rng(toolbox.rng),
            record_sizes(run_dir),
            dict(counters),
        ),
    )


def _execute(
    config: CampaignConfig,
    toolbox: Any,
    run_dir: Path,
    plot_dir: Path,
    state: EvolutionState,
    counters: dict[str, float],
    hooks: Sequence[Hook],
    out: TextIO | None,
    wall_start: float,
) -> CampaignResult:
    """Evolve from ``state`` to the last generation, then run the final comparison and write the summary."""
    out = out or sys.stdout
    evaluator = toolbox.evaluator
    evaluator.evaluated = int(counters["evaluated"])
    writer = RecordWriter(run_dir)
    session_start = wall_start
    previous_wall = counters["wall_seconds"]

    def update_counters() -> None:
        counters["evaluated"] = evaluator.evaluated
        counters["wall_seconds"] = previous_wall + time.perf_counter() - session_start

    def write_records(generation: int, population: list, record: GenerationRecord) -> None:
        start = time.perf_counter()
        try:
            writer.write_individuals(ind.eval_record for ind in record.evaluated)
            kill_point("records")
            writer.write_generation(
                generation_row(generation, population, record.stats, record.seconds, record.finetune_seconds)
            )
        except OSError as e:
            raise StorageError(
                f"cannot write records in {run_dir}: {e.strerror or e}; the checkpoint of generation "
                f"{generation - 1} is intact: free space and run: evoticket resume {run_dir}"
            ) from None
        counters["records_seconds"] += time.perf_counter() - start
        counters["variation_selection_seconds"] += record.variation_seconds

    def checkpoint(generation: int, population: list, record: GenerationRecord) -> None:
        start = time.perf_counter()
        counters["finetune_seconds"] += evaluator.train_seconds
        counters["evaluation_seconds"] += evaluator.eval_seconds
        evaluator.train_seconds = evaluator.eval_seconds = 0.0
        update_counters()
        try:
            _save_checkpoint(run_dir, config, toolbox, record.state, counters)
        except StorageError as e:
            raise StorageError(f"{e}; free space and run: evoticket resume {run_dir}") from None
        counters["checkpoint_seconds"] += time.perf_counter() - start

    stop = _StopOnSignal()
    progress = _Progress(config.ga.generations + 1, config.campaign.progress, initial=state.generation + 1)
    stop.install()
    try:
        try:
            population, _, hof = evolve(
                toolbox, config, hooks=(write_records, checkpoint, progress, *hooks), state=state, should_stop=stop
            )
        finally:
            progress.close()
        if stop.requested:
            raise KeyboardInterrupt
        stop.immediate = True  # from here on a resume redoes everything that is left
        return _finish(config, toolbox, run_dir, plot_dir, population, hof, counters, update_counters, out)
    except (Interrupted, KeyboardInterrupt):
        raise Interrupted(str(run_dir), _last_checkpoint_generation(run_dir), stop.signum) from None
    finally:
        stop.uninstall()


def _finish(
    config: CampaignConfig,
    toolbox: Any,
    run_dir: Path,
    plot_dir: Path,
    population: list[Ticket],
    hof: Any,
    counters: dict[str, float],
    update_counters: Any,
    out: TextIO,
) -> CampaignResult:
    """After the last generation: best ticket, final comparison, plot and ``summary.json`` (written last)."""
    evaluator = toolbox.evaluator
    # The final population was evaluated under one minibatch sequence; the hall of fame mixes generations.
    best = max(population, key=lambda ind: ind.fitness.wvalues)
    save_ticket(paths.best_ticket(run_dir), best, toolbox.arch, config)
    final_start = time.perf_counter()
    controls = compare_controls(best, toolbox.arch, toolbox.splits, config)
    counters["final_comparison_seconds"] += time.perf_counter() - final_start
    plot_start = time.perf_counter()
    plot_fitness(run_dir, paths.fitness_plot(plot_dir))
    counters["plot_seconds"] += time.perf_counter() - plot_start
    update_counters()

    dense = controls["dense"]["test_acc_mean"]
    ticket = controls["ticket"]["test_acc_mean"]
    winning = ticket >= dense - config.campaign.winning_tolerance
    summary = {
        "name": run_dir.name,
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
        "timing": _timing(counters),
    }
    write_json(paths.summary(run_dir), summary)
    print(format_summary(summary, run_dir, plot_dir, config), file=out)
    return CampaignResult(run_dir, plot_dir, summary, best)


def _last_checkpoint_generation(run_dir: Path) -> int:
    found = list_checkpoints(run_dir)
    return int(found[0].stem.split("-", 1)[1]) if found else -1


def _timing(counters: dict[str, float]) -> dict[str, Any]:
    """Where the wall time went (seconds, summed over resumed sessions) and rates."""
    wall = counters["wall_seconds"]
    parts = {k: round(counters[k], 3) for k in TIMING_KEYS}
    parts["other_seconds"] = round(max(0.0, wall - sum(counters[k] for k in TIMING_KEYS)), 3)
    compute = counters["finetune_seconds"] + counters["evaluation_seconds"]
    evolution_overhead = (
        counters["variation_selection_seconds"] + counters["records_seconds"] + counters["checkpoint_seconds"]
    )
    return {
        "wall_seconds": round(wall, 3),
        **parts,
        "evolution_overhead_fraction": round(evolution_overhead / max(wall, 1e-9), 4),
        "individuals_per_second": round(counters["evaluated"] / max(compute, 1e-9), 3),
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
    }


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
    wall = max(t["wall_seconds"], 1e-9)
    where = ", ".join(
        f"{label} {t[key]:.1f} s ({100 * t[key] / wall:.0f}%)"
        for label, key in (
            ("fine-tuning", "finetune_seconds"),
            ("evaluation", "evaluation_seconds"),
            ("variation+selection", "variation_selection_seconds"),
            ("records", "records_seconds"),
            ("checkpoints", "checkpoint_seconds"),
            ("final comparison", "final_comparison_seconds"),
            ("plot", "plot_seconds"),
            ("other", "other_seconds"),
        )
    )
    lines += [
        "",
        f"Best ticket: uid {summary['best']['uid']} (generation {summary['best']['generation']}), "
        f"validation accuracy {summary['best']['val_acc']:.4f} after fine-tuning, "
        f"density {summary['best']['density_total']:.4f}",
        f"Verdict: {summary['verdict']}",
        f"Wall time {t['wall_seconds']:.1f} s, {summary['individuals_evaluated']} individuals fine-tuned "
        f"({t['individuals_per_second']:.1f}/s): {where}",
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
        kill_point("final")
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

    Written to a temporary file and renamed, so a crash never leaves half a
    file. The bytes depend only on the content (see :func:`_canonical`), so a
    resumed campaign writes the same file as an uninterrupted one.
    """
    payload = {
        "format": TICKET_FORMAT,
        "ticket": ticket.state_dict(),
        "architecture": arch.to_dict(),
        "config": config.to_dict(),
    }
    with atomic_open(path, "wb") as f:
        torch.save(_canonical(payload), f)


def _canonical(obj: Any) -> Any:
    """A copy whose pickle depends only on content, not on which objects happened to be shared.

    Pickle writes a shared object once and refers to it afterwards, so the same
    content pickles differently depending on object identity. Fresh containers,
    interned strings and fresh tensor storage remove that dependence.
    """
    if isinstance(obj, dict):
        return {_canonical(k): _canonical(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_canonical(v) for v in obj)
    if isinstance(obj, str):
        return sys.intern(obj)
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    return obj


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
    data = load_format(path, TICKET_FORMAT, "ticket file", EvoticketError, weights_only=True)
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
