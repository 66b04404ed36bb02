"""Running an experiment: every cell a normal run directory, resumable, with a progress bar over cells.

``runs/NAME/`` holds ``experiment.toml`` (the experiment file as run), ``cells/CELL/`` (one campaign
per cell, :func:`evoticket.run_campaign`), ``results.csv``, ``results.md`` and ``results.json``;
``plots/NAME/`` the figures. A finished cell (its ``summary.json`` exists) is skipped on resume;
a killed cell resumes from its checkpoint. One process at a time runs an experiment (the lock of
``runs/.NAME.lock``).

Packing (``pack``, ``evoticket experiment --pack N``): the cells run under the per-individual data order
(``optimizer.data_order = "individual"``), up to N at once in one process, their training steps in shared
batches (:class:`evoticket.training.packing.Packer`); each cell keeps its own run directory, records,
checkpoint and resume, and gives bit for bit what it gives alone under that order.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evoticket.campaign import run_campaign
from evoticket.campaign.lock import RunLock
from evoticket.campaign.rundir import check_name
from evoticket.config import CampaignConfig
from evoticket.config.overrides import read_toml
from evoticket.core.cluster import connect, import_ray, worker_options
from evoticket.core.errors import BudgetError, ConfigError, DataError, EvoticketError, Interrupted
from evoticket.core.io import atomic_write_text
from evoticket.data import Splits, load_data
from evoticket.experiment.grid import Cell, Experiment, base_for, cell_config, merge_tables, parse_experiment
from evoticket.experiment.results import cell_row, infeasible_row, write_results
from evoticket.methods import resolve_run
from evoticket.methods.imp import imp_flops
from evoticket.records import read_summary
from evoticket.records.trackers import TrackingTarget

EXPERIMENT_FILE = "experiment.toml"
"""The experiment file as run, in ``runs/NAME/``."""

PACKING_FILE = "packing.json"
"""How the cells of ``runs/NAME/`` run: ``{"data_order": ..., "pack": N}`` (a resume keeps the data order)."""

PACKED_ORDER = {"optimizer": {"data_order": "individual"}}
"""What packing sets in every cell's configuration."""


@dataclass
class ExperimentResult:
    """What :func:`run_experiment` returns.

    Attributes:
        run_dir: ``runs/NAME``.
        plot_dir: ``plots/NAME``.
        rows: one ``results.csv`` row per cell, in run order.
        ran: names of the cells run (or resumed) by this call; the others were already finished.
    """

    run_dir: Path
    plot_dir: Path
    rows: list[dict[str, Any]]
    ran: list[str]
    packing: dict[str, Any] | None = None


def load_experiment(path: str | os.PathLike) -> Experiment:
    """Read and expand an experiment file.

    Raises:
        ConfigError: for a missing or invalid file (naming it and the key).
    """
    try:
        return parse_experiment(read_toml(path))
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def imp_spend(exp: Experiment, cell: Cell, splits: Splits | None = None) -> int:
    """Training FLOPs IMP spends to reach ``cell.density`` on the cell's data set (its budget's unit)."""
    raw = exp.raw
    imp = merge_tables(base_for("imp", raw.get("base", {})), raw.get("datasets", {}).get(cell.dataset, {}))
    imp = merge_tables(imp, raw.get("variants", {}).get("imp", {}))
    imp = merge_tables(imp, {"method": "imp", "ticket": {"density": cell.density}, "campaign": {"progress": False}})
    _, resolved = resolve_run(CampaignConfig.from_dict(imp), splits=splits)
    return imp_flops(resolved.arch, resolved.config)


class _DataCache:
    """Each data set loaded once for the whole experiment (every cell of it reads the same splits)."""

    def __init__(self, given: Mapping[str, Splits] | None) -> None:
        self.given = dict(given or {})
        self.loaded: dict[tuple, Splits] = {}

    def get(self, dataset: str, config: CampaignConfig) -> Splits:
        """The splits of ``config.data`` (or the ones given for ``dataset``), on the CPU."""
        if dataset in self.given:
            return self.given[dataset]
        d = config.data
        key = (d.name, d.root, d.val_fraction, d.seed, d.layout, d.augment, tuple(sorted(d.mnist1d.items())))
        if key not in self.loaded:  # layout, augmentation and MNIST-1D's arguments as a campaign loads them
            self.loaded[key] = load_data(d)
        return self.loaded[key]


def run_cell(
    config: CampaignConfig,
    name: str,
    cells_dir: Path,
    plots_dir: Path,
    splits: Splits | None,
    tracking: TrackingTarget | None = None,
) -> None:
    """Run (or resume) one cell: a normal campaign in ``cells_dir/name``, its output discarded.

    Args:
        config: the cell's configuration.
        name: the cell's name (its run directory's).
        cells_dir: parent of the cells' run directories (``runs/EXPERIMENT/cells``).
        plots_dir: parent of the cells' plot directories.
        splits: data to use instead of loading ``config.data``.
        tracking: where its trackers (``campaign.trackers``) log, grouped with the experiment's other cells;
            default the cell's own run directory.
    """
    with open(os.devnull, "w") as quiet:
        run_campaign(
            config,
            name=name,
            runs_dir=cells_dir,
            plots_dir=plots_dir,
            resume=True,
            splits=splits,
            out=quiet,
            tracking=tracking,
        )


def _cell_task(
    config: dict[str, Any], name: str, cells_dir: str, plots_dir: str, splits: Splits, tracking: TrackingTarget
) -> str:
    """A cell as a Ray task (in a worker process): returns its name."""
    run_cell(CampaignConfig.from_dict(config), name, Path(cells_dir), Path(plots_dir), splits, tracking)
    return name


def _run_on_ray(
    todo: list[Cell],
    spends: dict[tuple[str, float], int],
    data: _DataCache,
    cells_dir: Path,
    plot_dir: Path,
    address: str,
    cell_cpus: int,
    cell_gpus: float | None,
    bar: Any,
    finished: Callable[[Cell], None],
) -> None:
    """Run cells as Ray tasks, each with ``cell_cpus`` CPUs and ``cell_gpus`` GPUs, as the cluster has room."""
    ray = connect(address, key="--address")
    if cell_gpus is None:
        cell_gpus = 1.0 if ray.cluster_resources().get("GPU", 0) else 0.0
    task = ray.remote(max_retries=2)(_cell_task).options(num_cpus=cell_cpus, num_gpus=cell_gpus, **worker_options())
    refs: dict[int, Any] = {}  # each data set goes to the object store once
    pending: dict[Any, Cell] = {}
    for cell in todo:
        config = cell_config(cell, spends[(cell.dataset, cell.density)])
        splits = data.get(cell.dataset, config)
        if id(splits) not in refs:
            refs[id(splits)] = ray.put(splits.to("cpu"))
        tracking = TrackingTarget(cells_dir.parent, cell.name, cells_dir.parent.name)
        ref = task.remote(
            config.to_dict(), cell.name, str(cells_dir), str(plot_dir / "cells"), refs[id(splits)], tracking
        )
        pending[ref] = cell
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                cell = pending.pop(ref)
                try:
                    ray.get(ref)
                except ray.exceptions.RayTaskError as e:
                    if isinstance(e.cause, EvoticketError):
                        raise EvoticketError(f"cell {cell.name}: {e.cause}") from None
                    raise
                bar.set_postfix_str(cell.name)
                finished(cell)
    finally:
        for ref in pending:  # an interrupted driver cancels the cells still queued or running
            ray.cancel(ref, force=True)


def _run_packed(
    todo: list[Cell],
    spends: dict[tuple[str, float], int],
    data: _DataCache,
    run_dir: Path,
    name: str,
    plot_dir: Path,
    width: int,
    bar: Any,
    finished: Callable[[Cell], None],
) -> dict[str, Any]:
    """Run the cells ``width`` at a time as greenlets taking turns, their training steps packed
    (:class:`evoticket.training.packing.Packer`); returns what was packed."""
    from evoticket.training.packing import Packer

    cells_dir = run_dir / "cells"
    configs = [cell_config(c, spends[(c.dataset, c.density)]) for c in todo]
    budget = min((c.campaign.max_memory_mb for c in configs), default=2048.0)

    def task(cell: Cell, config: CampaignConfig) -> Callable[[], None]:
        def run() -> None:
            bar.set_postfix_str(cell.name)
            tracking = TrackingTarget(run_dir, cell.name, name)
            run_cell(config, cell.name, cells_dir, plot_dir / "cells", data.get(cell.dataset, config), tracking)

        return run

    packer = Packer(width, max_memory_mb=budget)
    received = [signal.SIGINT]

    def stop(signum: int, frame: Any) -> None:  # Ctrl-C or SIGTERM: every running cell stops where it is
        received[0] = signum
        raise KeyboardInterrupt

    main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
    try:
        packer.run([task(c, k) for c, k in zip(todo, configs, strict=True)], lambda i, _: finished(todo[i]))
    except (KeyboardInterrupt, Interrupted) as e:  # a cell stopped on the signal, and the others with it
        raise Interrupted(str(cells_dir), -1, getattr(e, "signum", received[0]), unit="cell") from None
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    st = packer.stats
    return {
        "cells": len(todo),
        "max_memory_mb": budget,
        "batches": st.rounds,
        "packed_steps": st.packed_steps,
        "alone_steps": st.alone_steps,
        "most_networks": st.networks,
    }


def run_experiment(
    path: str | os.PathLike,
    *,
    name: str | None = None,
    runs_dir: str | Path = "runs",
    plots_dir: str | Path = "plots",
    resume: bool = False,
    progress: bool = True,
    splits: Mapping[str, Splits] | None = None,
    on_cell: Callable[[Cell, dict[str, Any]], None] | None = None,
    backend: str = "local",
    address: str = "",
    cell_cpus: int = 1,
    cell_gpus: float | None = None,
    pack: int = 0,
) -> ExperimentResult:
    """Run every cell of an experiment file (or the ones a killed run left), then write its results.

    Args:
        path: the experiment file (TOML, see :mod:`evoticket.experiment.grid`).
        name: the experiment's name (``runs/NAME``); default the file's stem.
        runs_dir, plots_dir: parents of the experiment and plot directories.
        resume: continue ``runs/NAME`` (refused if its experiment file differs); without it an
            existing ``runs/NAME`` is refused.
        progress: a tqdm bar over cells (with the time left).
        splits: data set name -> data to use instead of loading it (tests).
        on_cell: called after each cell with its ``results.csv`` row.
        backend: ``"local"`` (the cells one after another in this process) or ``"ray"`` (the cells as
            Ray tasks on the cluster at ``address``, as many at once as it has room for).
        address: the Ray cluster (``""``: a local instance, ``"auto"`` or ``HOST:PORT``).
        cell_cpus: CPUs of each cell's Ray task (>= 1).
        cell_gpus: GPUs of each cell's Ray task; default 1 when the cluster has GPUs, else 0.
        pack: 0 (or 1): the cells one after another, as the file says; N >= 2: up to N cells at once in this process,
            under the per-individual data order (``optimizer.data_order = "individual"`` set in every cell), their
            training steps in shared batches of at most ``campaign.max_memory_mb`` (:mod:`evoticket.training.packing`).
            Each cell gives bit for bit what it gives alone under that order (on the CPU), so ``--pack`` changes the
            results only by the data order. ``ExperimentResult.packing`` says what was packed.

    Returns:
        An :class:`ExperimentResult`.

    Raises:
        EvoticketError: for a bad experiment file or cell configuration (naming the cell, before
            anything is written), an existing experiment without ``resume`` or a changed experiment
            file with it. A cell whose budget does not pay for its method's first unit of work (the
            GA's generation 0 and final training, IMP's round 0, two steps) is not an error: it is
            recorded as ``infeasible`` in ``results.csv``, with the budget it would need. A resume with ``--pack``
            of an experiment run without it (or the reverse) is refused: its cells' data order would change.
        Interrupted: Ctrl-C or SIGTERM in a packed run (the running cells resume from their checkpoints).
    """
    if backend not in ("local", "ray"):
        raise ConfigError(f"--backend: unknown backend {backend!r}; valid: local, ray")
    if cell_cpus < 1:
        raise ConfigError(f"--cell-cpus: must be >= 1, got {cell_cpus}")
    if pack < 0:
        raise ConfigError(f"--pack: must be >= 2 cells at once (0: no packing), got {pack}")
    if pack > 1 and backend == "ray":
        raise ConfigError("--pack: packs cells on this process's device; not with --backend ray (drop one of them)")
    if backend == "ray":
        import_ray("--backend")
    exp = load_experiment(path)
    if pack > 1:  # every cell under the per-individual data order
        exp = Experiment(
            exp.raw,
            tuple(dataclasses.replace(c, overrides=merge_tables(c.overrides, PACKED_ORDER)) for c in exp.cells),
        )
    name = name or Path(path).stem
    check_name(name)
    run_dir, plot_dir = Path(runs_dir) / name, Path(plots_dir) / name
    stored = run_dir / EXPERIMENT_FILE
    if run_dir.exists() and not resume:
        raise EvoticketError(f"{run_dir} exists; continue it with: evoticket experiment {path} --name {name} --resume")
    if resume and stored.is_file() and read_toml(stored) != exp.raw:
        raise EvoticketError(
            f"{run_dir}: its {EXPERIMENT_FILE} differs from {path}; resume with the same file or give a new --name"
        )
    packing_file = run_dir / PACKING_FILE
    if resume and packing_file.is_file():
        was = json.loads(packing_file.read_text(encoding="utf-8")).get("pack", 0)
        if (was > 1) != (pack > 1):
            again = f"--pack {was}" if was > 1 else "without --pack"
            raise EvoticketError(
                f"{run_dir} was run {'with --pack ' + str(was) if was > 1 else 'without --pack'}; "
                f"resume it {again} (packing sets the cells' data order), or give a new --name"
            )
    data = _DataCache(splits)
    spends: dict[tuple[str, float], int] = {}
    needs: dict[str, int] = {}  # cells whose budget does not pay for their method's first unit of work
    for cell in exp.cells:  # every cell's configuration is checked before anything is written
        key = (cell.dataset, cell.density)
        config = cell_config(cell, 0)
        try:
            if key not in spends:
                spends[key] = imp_spend(exp, cell, data.get(cell.dataset, config))
            config = cell_config(cell, spends[key])
            resolve_run(config, splits=data.get(cell.dataset, config))
        except BudgetError as e:
            if key not in spends:
                raise ConfigError(f"cell {cell.name}: {e}") from None
            needs[cell.name] = e.needed
        except DataError as e:
            raise DataError(f"cell {cell.name}: {e}") from None
        except ConfigError as e:
            raise ConfigError(f"cell {cell.name}: {e}") from None
    run_dir.mkdir(parents=True, exist_ok=True)
    with RunLock(run_dir):
        if not stored.is_file():
            atomic_write_text(stored, Path(path).read_text(encoding="utf-8"))
        order = "individual" if pack > 1 else "as configured"
        atomic_write_text(packing_file, json.dumps({"data_order": order, "pack": pack}) + "\n")
        cells_dir = run_dir / "cells"
        from tqdm.auto import tqdm

        todo = [c for c in exp.cells if c.name not in needs and not (cells_dir / c.name / "summary.json").is_file()]
        rows, ran, packing = [], [], None
        bar = tqdm(
            total=len(exp.cells),
            initial=len(exp.cells) - len(todo),  # the time left is estimated from the cells run now
            desc="cells",
            unit="cell",
            disable=not progress,
            dynamic_ncols=True,
        )
        done: dict[str, dict[str, Any]] = {}  # cell name -> its row

        def finished(cell: Cell, count: bool = True) -> None:
            spend = spends[(cell.dataset, cell.density)]
            if cell.name in needs:  # recorded as infeasible, with the budget it needs
                row = infeasible_row(cell, spend, needs[cell.name])
            else:
                row = cell_row(cell, read_summary(cells_dir / cell.name), spend)
            done[cell.name] = row
            if on_cell is not None:
                on_cell(cell, row)
            if count:
                bar.update(1)

        try:
            for cell in exp.cells:  # finished and infeasible cells first: the bar starts where the last run stopped
                if cell not in todo:
                    finished(cell, count=False)
            if backend == "ray":
                _run_on_ray(todo, spends, data, cells_dir, plot_dir, address, cell_cpus, cell_gpus, bar, finished)
            elif pack > 1:
                packing = _run_packed(todo, spends, data, run_dir, name, plot_dir, pack, bar, finished)
            else:
                for cell in todo:
                    bar.set_postfix_str(cell.name)
                    config = cell_config(cell, spends[(cell.dataset, cell.density)])
                    tracking = TrackingTarget(run_dir, cell.name, name)  # the cells grouped under the experiment
                    run_cell(config, cell.name, cells_dir, plot_dir / "cells", data.get(cell.dataset, config), tracking)
                    finished(cell)
            ran = [c.name for c in todo]
            rows = [done[c.name] for c in exp.cells]
        finally:
            bar.close()
        write_results(
            run_dir, plot_dir, rows, copy.deepcopy(exp.raw), {"pack": pack, **(packing or {})} if pack > 1 else None
        )
    print(
        f"evoticket: experiment {name}: {len(rows)} cells ({len(ran)} run now); results in {run_dir}/", file=sys.stderr
    )
    return ExperimentResult(run_dir, plot_dir, rows, ran, packing)


__all__ = ["EXPERIMENT_FILE", "ExperimentResult", "imp_spend", "load_experiment", "run_cell", "run_experiment"]
