"""A whole run: a method finds tickets, then the reported ticket meets the lottery-ticket controls.

:func:`run_campaign` resolves the configuration (every check, before anything is written),
creates the run directory whole, runs the configured method (``method``, the GA by default) with
records, a checkpoint after every generation and a progress bar as hooks, then trains the
reported ticket fully next to the controls (:mod:`evoticket.campaign.controls`; with ``campaign.ensemble``,
its ensemble beside it: :mod:`evoticket.campaign.ensemble`) and writes the best ticket, the trained networks,
``summary.json`` (the run is complete) and the figures. :func:`resume_campaign` continues from the newest usable
checkpoint. One process at a time writes a run
(:mod:`evoticket.campaign.lock`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from evoticket.campaign.checkpoint import (
    Checkpoint,
    list_checkpoints,
    load_latest,
    record_sizes,
    rollback_records,
    save_checkpoint,
)
from evoticket.campaign.controls import FRONT_COLUMNS, compare_controls, train_front
from evoticket.campaign.ensemble import train_ensemble
from evoticket.campaign.lock import RunLock
from evoticket.campaign.rundir import check_name, create_run_dir, default_name, prepare_run_dir
from evoticket.campaign.signals import StopOnSignal
from evoticket.campaign.summary import (
    TIMING_KEYS,
    beats_dense_scratch,
    format_summary,
    is_winning,
    timing,
    verdict,
)
from evoticket.config import CampaignConfig, read_toml
from evoticket.core import paths
from evoticket.core.device import device_settings, resolve_device
from evoticket.core.errors import ConfigError, EvoticketError, Interrupted, StorageError
from evoticket.core.faults import kill_point
from evoticket.core.io import atomic_write_text, write_csv, write_json
from evoticket.core.seeds import capture_rng, restore_rng, seed_everything
from evoticket.data import Splits
from evoticket.genome import Ticket, save_ticket, save_trained
from evoticket.methods import Budget, Method, MethodRun, configure, get_method, resolve_run
from evoticket.plots import plot_fitness, plot_run
from evoticket.records import SPENT_KEYS, Hook, RecordWriter, read_summary
from evoticket.records.trackers import Trackers, TrackingTarget


@dataclass
class CampaignResult:
    """What :func:`run_campaign` returns.

    Attributes:
        run_dir: ``runs/NAME``.
        plot_dir: ``plots/NAME``.
        summary: the content of ``summary.json``.
        best: the best ticket found (``None`` when ``run --resume`` found the run already complete).
    """

    run_dir: Path
    plot_dir: Path
    summary: dict[str, Any]
    best: Ticket | None


class _Progress:
    """A tqdm bar over the method's units (generations, rounds) showing best and mean fitness and individuals/s."""

    def __init__(self, total: int, enabled: bool, initial: int = 0, method: Method | None = None) -> None:
        from tqdm.auto import tqdm

        units = method.units if method is not None else "generations"
        unit = method.unit[:3] if method is not None else "gen"
        self.population = method.population if method is not None else True
        self.bar = tqdm(total=total, initial=initial, desc=units, unit=unit, disable=not enabled, dynamic_ncols=True)

    def __call__(self, generation: int, population: list, record: Any) -> None:
        fit = record.stats["fitness"]
        if self.population:
            rate = len(record.evaluated) / record.finetune_seconds if record.finetune_seconds > 0 else 0.0
            self.bar.set_postfix(best=f"{fit['max']:.4f}", mean=f"{fit['avg']:.4f}", ind_per_s=f"{rate:.1f}")
        else:
            self.bar.set_postfix(val_acc=f"{fit['max']:.4f}")
        self.bar.update(1)

    def close(self) -> None:
        """Close the bar."""
        self.bar.close()


SAFE_ON_RESUME = frozenset(
    {
        "ga.generations",
        "campaign.progress",
        "campaign.plots",
        "campaign.device",
        "campaign.backend",
        "campaign.ray_address",
        "campaign.workers",
        "campaign.worker_cpus",
        "campaign.final_steps",
        "campaign.final_seeds",
        "campaign.final_eval_every",
        "campaign.early_stopping",
        "campaign.winning_tolerance",
        "campaign.ensemble",
        "campaign.max_memory_mb",
        "campaign.trackers",
        "campaign.tracking_uri",
    }
)
"""Keys that ``evoticket resume --set`` may change: they do not alter the generations already run."""


def _new_counters() -> dict[str, float]:
    return {"evaluated": 0, "wall_seconds": 0.0, "sessions": 0, **dict.fromkeys(TIMING_KEYS, 0.0)}


def run_campaign(
    config: CampaignConfig | None = None,
    *,
    name: str | None = None,
    runs_dir: str | Path = "runs",
    plots_dir: str | Path = "plots",
    force: bool = False,
    resume: bool = False,
    hooks: tuple[Hook, ...] = (),
    splits: Splits | None = None,
    out: TextIO | None = None,
    tracking: TrackingTarget | None = None,
) -> CampaignResult:
    """Run a campaign end to end and write its records, checkpoints, tickets, plot and summary.

    Args:
        config: the configuration; default ``CampaignConfig()``.
        name: run name (``runs_dir/name``); default :func:`evoticket.campaign.rundir.default_name`.
        runs_dir: parent of run directories.
        plots_dir: parent of plot directories.
        force: replace an existing run of the same name.
        resume: requeue-friendly start: continue ``name`` if it exists (refusing a different
            configuration, as :func:`resume_campaign` does; a finished run is returned as it is),
            otherwise start it. Needs ``name``.
        hooks: extra ``(generation, population, record) -> None`` hooks.
        splits: data to use instead of loading ``config.data`` (tests).
        out: where the summary table is printed; default stdout.
        tracking: where ``campaign.trackers`` log a new tracked run (an experiment's cell: grouped under the
            experiment); default the run directory (:meth:`evoticket.records.trackers.TrackingTarget.of_run`).

    Returns:
        A :class:`CampaignResult`.

    Raises:
        EvoticketError: for bad input (configuration, data, device, run name, a tracker not installed); nothing is
            written then. ``RunLockedError`` when another process writes the run,
            ``StorageError`` when writing fails and ``DivergedError`` when a whole generation
            diverged; the last checkpoint is kept for both.
        Interrupted: after Ctrl-C, once the current generation is checkpointed.
    """
    config = configure(config or CampaignConfig())  # the configuration the method runs with, as config.toml records it
    if resume and not name:
        raise EvoticketError("--resume: give the run's --name (a default name is new every time)")
    name = name or default_name(config)
    check_name(name)
    run_dir = Path(runs_dir) / name
    if resume and not force and paths.config(run_dir).is_file():
        return _resume(
            run_dir, config, plots_dir=plots_dir, hooks=hooks, splits=splits, out=out, requeue=True, tracking=tracking
        )
    prepare_run_dir(Path(runs_dir), name, force)
    plot_dir = Path(plots_dir) / name
    wall_start = time.perf_counter()
    seed_everything(config.campaign.seed)
    method, resolved = resolve_run(config, splits=splits)  # bad input fails before anything is written
    with RunLock(run_dir):
        prepare_run_dir(Path(runs_dir), name, force)  # again, now that no other process can create it
        run = method.prepare(resolved)
        counters = _new_counters()

        def first(folder: Path) -> None:  # in the staged folder: the run exists whole or not at all
            write_json(paths.method_report(folder), method.report(config))
            _save_checkpoint(folder, config, run, counters)

        create_run_dir(run_dir, plot_dir, force, config, first)
        return _execute(config, method, run, run_dir, plot_dir, counters, hooks, out, wall_start, tracking)


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

    Records written after that checkpoint are cut off first, so the resumed campaign ends with
    exactly the files an uninterrupted one writes. Only the keys in :data:`SAFE_ON_RESUME` may be
    changed, and only explicitly, with ``overrides``; e.g. ``["ga.generations=60"]`` extends a
    campaign (also a finished one).

    Args:
        run_dir: the run directory (``runs/NAME``).
        overrides: ``section.key=value`` changes of safe keys.
        plots_dir: parent of plot directories.
        hooks, splits, out: as for :func:`run_campaign`.

    Raises:
        EvoticketError: for a missing run, a changed configuration (naming the keys that differ),
            no usable checkpoint, a finished campaign with nothing to add, or another process
            writing the run (``RunLockedError``).
    """
    run_dir = Path(run_dir)
    _check_resumable(run_dir)
    stored = CampaignConfig.from_stored(read_toml(paths.config(run_dir)))
    config = stored.with_overrides(list(overrides)) if overrides else stored
    return _resume(run_dir, config, plots_dir=plots_dir, hooks=hooks, splits=splits, out=out)


def _check_resumable(run_dir: Path) -> None:
    if not run_dir.exists():
        if paths.staging(run_dir).exists():
            raise EvoticketError(
                f"{run_dir}: the run was never created (its start was interrupted before the first checkpoint); "
                f"start it again: evoticket run --name {run_dir.name}"
            )
        raise EvoticketError(f"{run_dir}: no such run directory; give runs/NAME")
    if not paths.config(run_dir).is_file():
        raise EvoticketError(f"{run_dir}: not an evoticket run (no {paths.config(run_dir).name}); give runs/NAME")


def _resume(
    run_dir: Path,
    config: CampaignConfig,
    *,
    plots_dir: str | Path,
    hooks: tuple[Hook, ...],
    splits: Splits | None,
    out: TextIO | None,
    requeue: bool = False,
    tracking: TrackingTarget | None = None,
) -> CampaignResult:
    """Resume ``run_dir`` with ``config``, under the run's lock: checks first (nothing written), then on."""
    wall_start = time.perf_counter()
    _check_resumable(run_dir)
    config = configure(config)
    with RunLock(run_dir):
        ckpt = load_latest(run_dir)
        saved = CampaignConfig.from_stored(ckpt.config)
        changed = changed_keys(saved, config)
        unsafe = [k for k in changed if k not in SAFE_ON_RESUME]
        if unsafe:
            what = ", ".join(f"{k} ({saved.lookup(k)!r} -> {config.lookup(k)!r})" for k in unsafe)
            raise ConfigError(
                f"cannot resume {run_dir} with a changed configuration: {what}; "
                f"only these may change on resume: {', '.join(sorted(SAFE_ON_RESUME))}"
            )
        finished = paths.summary(run_dir).exists()
        if finished and not changed and read_summary(run_dir).get("figures") == "pending":
            return _finish_figures(config, run_dir, Path(plots_dir) / run_dir.name, out, tracking)
        if finished and not changed:
            if requeue:
                print(f"evoticket: {run_dir} is already complete; nothing to do", file=sys.stderr)
                return CampaignResult(run_dir, Path(plots_dir) / run_dir.name, read_summary(run_dir), None)
            more = get_method(config.method).extend_hint(run_dir)
            raise EvoticketError(f"{run_dir}: the campaign is already complete (summary.json); {more}")
        method, resolved = resolve_run(config, splits=splits)
        run = method.prepare(resolved)
        run.check_resume(ckpt.generation, run_dir)
        where = f"{method.unit} {ckpt.generation}" if ckpt.generation >= 0 else "its start"
        removed = rollback_records(run_dir, ckpt.records)
        if removed:
            detail = ", ".join(f"{n} bytes of {name}" for name, n in removed.items())
            print(
                f"evoticket: rolled back records written after {where}: {detail}",
                file=sys.stderr,
            )
        if changed or saved.to_dict() != load_config_raw(run_dir):
            atomic_write_text(paths.config(run_dir), config.to_toml())  # changed, or written by an earlier evoticket
            paths.summary(run_dir).unlink(missing_ok=True)  # stale: the campaign goes on
        if not paths.method_report(run_dir).is_file():  # a run of an earlier evoticket
            write_json(paths.method_report(run_dir), method.report(config))
        run.restore(ckpt.state)
        restore_rng(ckpt.rng)
        counters = {**_new_counters(), **ckpt.counters}
        print(f"evoticket: resuming {run_dir} after {where}", file=sys.stderr)
        plot_dir = Path(plots_dir) / run_dir.name
        return _execute(config, method, run, run_dir, plot_dir, counters, hooks, out, wall_start, tracking)


def changed_keys(old: CampaignConfig, new: CampaignConfig) -> list[str]:
    """Dotted keys whose values differ between two configurations."""
    a, b = old.flat(), new.flat()
    return [key for key in a if a[key] != b[key]]


def load_config_raw(run_dir: Path) -> dict[str, Any]:
    """A run's ``config.toml`` as written (plain data)."""
    return read_toml(paths.config(run_dir))


def _save_checkpoint(run_dir: Path, config: CampaignConfig, run: MethodRun, counters: dict[str, float]) -> None:
    save_checkpoint(
        run_dir,
        Checkpoint(
            run.generation,
            config.to_dict(),
            config.hash(),
            capture_rng(),
            record_sizes(run_dir),
            dict(counters),
            run.snapshot(),
        ),
    )


def _execute(config: CampaignConfig, *args: Any, **kwargs: Any) -> CampaignResult:
    """:func:`_run_method` (same arguments) under the campaign's numeric settings (``campaign.matmul_precision``,
    ``campaign.deterministic``), the previous ones put back after."""
    c = config.campaign
    with device_settings(c.matmul_precision, c.deterministic, str(resolve_device(c.device))):
        return _run_method(config, *args, **kwargs)


def _run_method(
    config: CampaignConfig,
    method: Method,
    run: MethodRun,
    run_dir: Path,
    plot_dir: Path,
    counters: dict[str, float],
    hooks: Sequence[Hook],
    out: TextIO | None,
    wall_start: float,
    tracking: TrackingTarget | None = None,
) -> CampaignResult:
    """Run the method from where it stands to the end, then the final comparison and the summary; the trackers
    (``campaign.trackers``) log after each checkpoint and are closed however the run ends."""
    out = out or sys.stdout
    run.evaluated = int(counters["evaluated"])
    writer = RecordWriter(run_dir)
    session_start = wall_start
    previous_wall = counters["wall_seconds"]
    counters["sessions"] = int(counters.get("sessions", 0)) + 1

    def update_counters() -> None:
        counters["evaluated"] = run.evaluated
        counters["session_wall_seconds"] = time.perf_counter() - session_start
        counters["wall_seconds"] = previous_wall + counters["session_wall_seconds"]

    def write_records(generation: int, population: list, record: Any) -> None:
        start = time.perf_counter()
        try:
            writer(generation, population, record)
        except OSError as e:
            raise StorageError(
                f"cannot write records in {run_dir}: {e.strerror or e}; the checkpoint of generation "
                f"{generation - 1} is intact: free space and run: evoticket resume {run_dir}"
            ) from None
        counters["records_seconds"] += time.perf_counter() - start
        counters["variation_selection_seconds"] += record.variation_seconds

    def checkpoint(generation: int, population: list, record: Any) -> None:
        start = time.perf_counter()
        for key, seconds in run.seconds().items():
            counters[key] += seconds
        update_counters()
        try:
            _save_checkpoint(run_dir, config, run, counters)
        except StorageError as e:
            raise StorageError(f"{e}; free space and run: evoticket resume {run_dir}") from None
        counters["checkpoint_seconds"] += time.perf_counter() - start

    trackers = Trackers(config.campaign.trackers, run_dir, tracking, config.campaign.tracking_uri)
    trackers.start(config.to_dict(), config.to_toml())
    finished = False
    stop = StopOnSignal()
    progress = _Progress(run.total_generations + 1, config.campaign.progress, initial=run.generation + 1, method=method)
    stop.install()
    try:
        try:
            budget = Budget(train_flops=config.budget.train_flops or None)
            result = run.run((write_records, checkpoint, trackers, progress, *hooks), stop, budget)
        finally:
            progress.close()
        if stop.requested:
            raise KeyboardInterrupt
        stop.immediate = True  # from here on a resume redoes everything that is left
        done = _finish(config, method, run, run_dir, plot_dir, result, counters, update_counters, out, trackers)
        finished = True
        return done
    except (Interrupted, KeyboardInterrupt):
        raise Interrupted(str(run_dir), _last_checkpoint_generation(run_dir), stop.signum, method.unit) from None
    finally:
        stop.uninstall()
        trackers.close(finished)


def _finish(
    config: CampaignConfig,
    method: Method,
    run: MethodRun,
    run_dir: Path,
    plot_dir: Path,
    result: Any,
    counters: dict[str, float],
    update_counters: Any,
    out: TextIO,
    trackers: Trackers,
) -> CampaignResult:
    """After the method: best ticket, final comparison (and the ensemble, with ``campaign.ensemble``), trained
    networks, ``summary.json`` (the run is complete), then the figures (which draw the final comparison) and
    ``summary.json`` again with their time."""
    arch, splits = run.resolved.arch, run.resolved.splits
    best = result.best
    save_ticket(paths.best_ticket(run_dir), best, arch, config)
    final_start = time.perf_counter()
    final = compare_controls(best, arch, splits, config)
    save_trained(paths.trained_ticket(run_dir), final.trained, arch, config)
    if result.front is not None:  # a multi-objective search: its front trained as the ticket is, for IMP's rounds
        front_rows, front_spent = train_front(result.front, arch, splits, config)
        write_csv(paths.pareto_final_csv(run_dir), FRONT_COLUMNS, front_rows)
        result.info.setdefault("pareto", {})["trained"] = front_rows
        final.spent = {k: final.spent[k] + front_spent[k] for k in SPENT_KEYS}
        result.info["pareto"]["train_flops"] = front_spent["train_flops"]
    ensemble = None
    if config.campaign.ensemble:  # the best few as one ensemble, beside the ticket (FreeTickets)
        ensemble = train_ensemble(best, result.tickets, final, arch, splits, config)
    counters["final_comparison_seconds"] += time.perf_counter() - final_start
    report = method.report(config, result.info)  # with what the run reached (e.g. IMP's density), for the figures
    write_json(paths.method_report(run_dir), report)
    update_counters()

    controls = final.controls
    tolerance = config.campaign.winning_tolerance
    ticket = controls["ticket"]["test_acc_mean"]
    search = {k: int(result.spent.get(k, 0)) for k in SPENT_KEYS}
    summary = {
        "name": run_dir.name,
        "method": config.method,
        "config_hash": config.hash(),
        "data": config.data.name,
        "model": config.model.name,
        "architecture": arch.to_dict(),
        "best": {
            "uid": best.uid,
            "generation": best.eval_record["generation"],
            "val_acc": best.fitness.values[0],
            "val_loss": (best.eval_record or {}).get("val_loss"),
            "density_total": best.total_density(),
            "density": best.density(),
        },
        "hall_of_fame": [
            {"uid": ind.uid, "generation": ind.eval_record["generation"], "val_acc": ind.fitness.values[0]}
            for ind in result.tickets
        ],
        "theta0": {"kind": result.theta0, "text": result.theta0_text},
        "controls": controls,
        "winning_ticket": is_winning(controls, result.theta0, tolerance),
        "beats_dense_scratch": beats_dense_scratch(controls, tolerance),
        "beats_random_mask": bool(ticket > controls["random"]["test_acc_mean"]),
        "verdict": verdict(controls, result.theta0, result.theta0_text, config, search["train_flops"]),
        "individuals_evaluated": run.evaluated,
        "compute": {
            "search": search,
            "final_comparison": final.spent,
            "total": {k: search[k] + final.spent[k] for k in SPENT_KEYS},
        },
        "device": str(splits.device),
        "timing": timing(counters),
        **result.info,
    }
    if ensemble is not None:  # reported beside the ticket; its extra compute apart, and in the total
        summary["ensemble"] = ensemble.report
        compute = summary["compute"]
        compute["ensemble"] = ensemble.spent
        compute["total"] = {k: compute["total"][k] + ensemble.spent[k] for k in SPENT_KEYS}
    if config.budget.train_flops:  # the budget next to what was spent against it
        final_ticket = controls["ticket"]["train_flops"] // config.campaign.final_seeds if run.final_training else 0
        summary["budget"] = {
            **result.info.get("budget", {}),
            "train_flops": int(config.budget.train_flops),
            "spent_train_flops": search["train_flops"] + int(final_ticket),
            "search_train_flops": search["train_flops"],
            "final_training_train_flops": int(final_ticket),
        }
        if ensemble is not None:  # one seed's training of the other members: beside the budget, never in it
            summary["budget"]["ensemble_train_flops"] = ensemble.spent["train_flops"] // config.campaign.final_seeds
    summary["report"] = {**report, "lines": method.summary_lines(summary)}
    summary["figures"] = "none" if config.campaign.plots == "none" else "pending"
    write_json(paths.summary(run_dir), summary)  # the run is complete; the figures then draw its final comparison
    trackers.log_final(summary)
    if summary["figures"] == "pending":
        counters["plot_seconds"] += _draw_figures(config, run_dir, plot_dir)
        update_counters()
        summary["timing"] = timing(counters)
        summary["figures"] = "drawn"
        write_json(paths.summary(run_dir), summary)
        trackers.log_figures(plot_dir)
    print(format_summary(summary, run_dir, plot_dir, config), file=out)
    return CampaignResult(run_dir, plot_dir, summary, best)


def _draw_figures(config: CampaignConfig, run_dir: Path, plot_dir: Path) -> float:
    """The end-of-run figures ``campaign.plots`` asks for, drawn from the run's files; returns the seconds taken."""
    start = time.perf_counter()
    kill_point("figures")
    if config.campaign.plots in ("all", "png"):
        plot_run(run_dir, plot_dir, formats=("png", "pdf") if config.campaign.plots == "all" else ("png",))
    else:
        plot_fitness(run_dir, paths.fitness_plot(plot_dir))
    return time.perf_counter() - start


def _finish_figures(
    config: CampaignConfig, run_dir: Path, plot_dir: Path, out: TextIO | None, tracking: TrackingTarget | None
) -> CampaignResult:
    """A run stopped while drawing its figures (``summary.json`` says ``"figures": "pending"``): draw them now
    (and give them to the trackers)."""
    print(f"evoticket: resuming {run_dir}: the campaign is complete; drawing its figures", file=sys.stderr)
    summary = read_summary(run_dir)
    seconds = _draw_figures(config, run_dir, plot_dir)
    summary["timing"]["plot_seconds"] = round(summary["timing"].get("plot_seconds", 0.0) + seconds, 3)
    summary["figures"] = "drawn"
    write_json(paths.summary(run_dir), summary)
    trackers = Trackers(config.campaign.trackers, run_dir, tracking, config.campaign.tracking_uri)
    trackers.start(config.to_dict(), config.to_toml())
    try:
        trackers.log_figures(plot_dir)
    finally:
        trackers.close(True)
    print(format_summary(summary, run_dir, plot_dir, config), file=out or sys.stdout)
    return CampaignResult(run_dir, plot_dir, summary, None)


def _last_checkpoint_generation(run_dir: Path) -> int:
    found = list_checkpoints(run_dir)
    return int(found[0].stem.split("-", 1)[1]) if found else -1
