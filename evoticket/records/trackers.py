"""Experiment trackers: TensorBoard, MLflow and Weights & Biases mirror a run (``campaign.trackers``).

A tracker receives what the run's files hold, never more and never instead: the resolved configuration,
each ``generations.csv`` row (every statistic and the compute meter: ``train_steps``, ``train_flops``,
``eval_flops``) with the generation (IMP: round) as its step, the final comparison (each control's mean test
accuracy and the verdict's booleans) and the figures (PNG). Every backend is the tracker's own library
(``torch.utils.tensorboard.SummaryWriter``, ``mlflow.tracking.MlflowClient``, ``wandb``).

:class:`Trackers` is a generation hook ``(generation, population, record) -> None`` placed after the checkpoint;
it logs the rows of ``generations.csv`` its trackers have not logged yet and keeps, in ``runs/NAME/trackers.json``,
each tracker's run (log folder, MLflow run id, W&B run id) and its last step. A resumed run so continues the same
tracked run, and logs each generation once: the ones a crash left unlogged are read back from ``generations.csv``,
the ones redone after a rollback are skipped (TensorBoard also purges events past the last step it logged). The
records never change: a tracker writes only ``trackers.json`` and its own logs.

A tracker that is not installed is refused by :func:`check_trackers`, before anything is written; one that fails
to start or to write gives one line on stderr and the run goes on without it.

Where logs go unless asked otherwise (:class:`TrackingTarget`): ``runs/NAME/tensorboard/``, the SQLite store
``runs/NAME/mlflow.db`` (``campaign.tracking_uri`` names another) and W&B offline in ``runs/NAME/wandb/``
(``WANDB_MODE=online`` streams it). An experiment's cells log under the experiment's folder, grouped: one
TensorBoard folder per cell, one MLflow experiment named after the evoticket experiment with a run per cell, one
W&B group.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from evoticket.core import paths
from evoticket.core.errors import ConfigError, EvoticketError
from evoticket.core.io import write_json
from evoticket.records.readers import read_generations

MODULES: dict[str, str] = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}
"""Tracker name -> the module it needs (installed by the extra of the same name: ``evoticket[NAME]``)."""

PROJECT = "evoticket"
"""The W&B project of every run (``WANDB_PROJECT`` overrides it) and the MLflow experiment of a run outside an
evoticket experiment."""

NOT_LOGGED = ("generation", "best_uid")
"""``generations.csv`` columns that are no metric: the step itself and an individual's id."""


def check_trackers(names: Sequence[str]) -> None:
    """Check that every tracker named in ``campaign.trackers`` can be imported.

    Args:
        names: tracker names out of :data:`evoticket.config.schema.TRACKERS`.

    Raises:
        ConfigError: naming ``campaign.trackers``, the trackers missing and the ``pip install`` that adds them.
    """
    missing = []
    for name in names:
        try:
            importlib.import_module(MODULES[name])
        except ImportError:
            missing.append(name)
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise ConfigError(
            f"campaign.trackers: {', '.join(missing)} {verb} not installed; "
            f"pip install 'evoticket[{','.join(missing)}]' (or drop it from campaign.trackers)"
        )


@dataclass(frozen=True)
class TrackingTarget:
    """Where a run's trackers log unless ``trackers.json`` or ``campaign.tracking_uri`` says otherwise.

    Attributes:
        root: the folder the default logs go under: the run directory, or an experiment's (``runs/EXPERIMENT``).
        name: the tracked run's name (the run's name, or the experiment cell's).
        group: the evoticket experiment the run is a cell of (MLflow experiment, W&B group), ``None`` for a run.
    """

    root: Path
    name: str
    group: str | None = None

    @classmethod
    def of_run(cls, run_dir: Path) -> TrackingTarget:
        """A run of its own: logs under ``run_dir``, named after it."""
        return cls(Path(run_dir), Path(run_dir).name)

    def tensorboard_dir(self) -> Path:
        """``ROOT/tensorboard`` for a run; ``ROOT/tensorboard/CELL`` for an experiment's cell."""
        base = paths.tensorboard_dir(self.root)
        return base / self.name if self.group else base


class Tracker:
    """One tracker of one run: the interface each backend implements.

    Args:
        target: where it logs by default.
        state: what an earlier session of the run saved (``trackers.json``); empty for a new tracked run.
        tracking_uri: ``campaign.tracking_uri`` (MLflow's).
    """

    name = ""

    def __init__(self, target: TrackingTarget, state: Mapping[str, Any], tracking_uri: str = "") -> None:
        self.target, self.state, self.tracking_uri = target, dict(state), tracking_uri

    def start(self, config: Mapping[str, Any], config_text: str) -> dict[str, Any]:
        """Open the tracked run (a new one, or the one ``state`` names) and log the configuration.

        Args:
            config: the resolved configuration, nested plain data (``CampaignConfig.to_dict()``).
            config_text: the same as TOML (``config.toml``).

        Returns:
            What a later session needs to continue this tracked run (saved in ``trackers.json``).
        """
        raise NotImplementedError

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Log numbers at ``step`` (the generation)."""
        raise NotImplementedError

    def log_final(self, metrics: Mapping[str, float], verdict: str, step: int) -> None:
        """Log the final comparison: numbers (the run's results) and the verdict's sentence, at ``step``."""
        raise NotImplementedError

    def log_figures(self, figures: Sequence[Path], step: int) -> None:
        """Log PNG figures (images or artifacts) at ``step``."""
        raise NotImplementedError

    def close(self, finished: bool) -> None:
        """Close the tracked run; ``finished`` is false when the run stopped before its end (it may resume)."""
        raise NotImplementedError


def _flat(config: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted key -> value of a nested configuration (top-level keys stay as they are)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def _scalar(value: Any) -> int | float | str | bool:
    """A configuration value as TensorBoard's hyperparameters take it: lists and tables as JSON text."""
    return value if isinstance(value, bool | int | float | str) else json.dumps(value, sort_keys=True)


class TensorBoardTracker(Tracker):
    """TensorBoard event files written by ``torch.utils.tensorboard.SummaryWriter``: scalars, the configuration as
    text and hyperparameters, the figures as images."""

    name = "tensorboard"

    def start(self, config: Mapping[str, Any], config_text: str) -> dict[str, Any]:
        """See :meth:`Tracker.start`; a resumed writer purges events past the last step logged."""
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        log_dir = Path(self.state.get("log_dir") or self.target.tensorboard_dir()).resolve()
        resumed = bool(self.state)
        self.writer = SummaryWriter(str(log_dir), purge_step=self.state.get("logged", -1) + 1 if resumed else None)
        if not resumed:
            self.writer.add_text("config", "".join(f"    {line}\n" for line in config_text.splitlines()), 0)
            values = {key: _scalar(v) for key, v in _flat(config).items()}
            for summary in hparams(values, {"final/ticket_test_acc_mean": 0.0}):
                self.writer._get_file_writer().add_summary(summary)
        self.writer.flush()
        return {"log_dir": str(log_dir)}

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """See :meth:`Tracker.log_metrics`."""
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def log_final(self, metrics: Mapping[str, float], verdict: str, step: int) -> None:
        """See :meth:`Tracker.log_final`: scalars and the verdict as text."""
        self.log_metrics(metrics, step)
        self.writer.add_text("final/verdict", verdict, step)
        self.writer.flush()

    def log_figures(self, figures: Sequence[Path], step: int) -> None:
        """See :meth:`Tracker.log_figures`: each PNG as an image, tagged ``figures/NAME``."""
        import numpy as np
        from PIL import Image

        for path in figures:
            image = np.asarray(Image.open(path).convert("RGB"))  # (H, W, 3) uint8
            self.writer.add_image(f"figures/{path.stem}", image, step, dataformats="HWC")
        self.writer.flush()

    def close(self, finished: bool) -> None:
        """See :meth:`Tracker.close`."""
        self.writer.close()


def _artifact_location(uri: str) -> str | None:
    """Where a new MLflow experiment keeps its artifacts: beside a SQLite store (``mlartifacts/`` next to
    ``mlflow.db``, never MLflow's default ``./mlruns`` in the working directory); ``None`` (the server's choice)
    for any other store."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    return paths.mlflow_artifacts(Path(uri[len(prefix) :]).parent).resolve().as_uri()


class MLflowTracker(Tracker):
    """An MLflow run through ``mlflow.tracking.MlflowClient``: the configuration as params (and ``config.toml``
    as an artifact), metrics per step, the verdict as a tag, the figures as artifacts under ``figures/``."""

    name = "mlflow"

    def start(self, config: Mapping[str, Any], config_text: str) -> dict[str, Any]:
        """See :meth:`Tracker.start`; a resumed run is the same MLflow run (its params kept, changed ones as
        ``resumed.KEY`` tags)."""
        from mlflow.entities import Param, RunTag
        from mlflow.tracking import MlflowClient

        default = f"sqlite:///{paths.mlflow_db(self.target.root).resolve()}"
        uri = self.tracking_uri or self.state.get("tracking_uri") or default
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)  # "Creating initial MLflow database ..."
        self.client = client = MlflowClient(tracking_uri=uri)
        params = {key: str(_scalar(v))[:6000] for key, v in _flat(config).items()}
        saved = self._saved_run(uri)
        if saved is not None:
            self.run_id = saved.info.run_id
            client.update_run(self.run_id, status="RUNNING")
            logged = saved.data.params
            new = {k: v for k, v in params.items() if k not in logged}
            tags = [RunTag(f"resumed.{k}", v) for k, v in params.items() if k in logged and logged[k] != v]
        else:
            experiment = self.target.group or PROJECT
            artifacts = _artifact_location(uri)
            found = client.get_experiment_by_name(experiment)
            if found is not None:
                experiment_id = found.experiment_id
            else:
                try:
                    experiment_id = client.create_experiment(experiment, artifact_location=artifacts)
                except Exception:  # another cell of the experiment created it meanwhile
                    found = client.get_experiment_by_name(experiment)
                    if found is None:
                        raise
                    experiment_id = found.experiment_id
            run = client.create_run(experiment_id, run_name=self.target.name)
            self.run_id = run.info.run_id
            new, tags = params, []
        items = [Param(k, v) for k, v in new.items()]
        for i in range(0, max(len(items), len(tags)), 100):  # MLflow takes at most 100 params and tags per batch
            client.log_batch(self.run_id, params=items[i : i + 100], tags=tags[i : i + 100])
        client.log_text(self.run_id, config_text, "config.toml")
        return {"tracking_uri": uri, "run_id": self.run_id}

    def _saved_run(self, uri: str) -> Any:
        """The MLflow run ``trackers.json`` names, when this store holds it (``campaign.tracking_uri`` may have changed
        on resume: a new store gets a new run); else ``None``."""
        from mlflow.exceptions import MlflowException

        if not self.state.get("run_id") or self.state.get("tracking_uri") != uri:
            return None
        try:
            return self.client.get_run(self.state["run_id"])
        except MlflowException:
            return None

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """See :meth:`Tracker.log_metrics`."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(key, float(value), now, step) for key, value in metrics.items()]
        for i in range(0, len(batch), 1000):  # MLflow takes at most 1000 metrics per batch
            self.client.log_batch(self.run_id, metrics=batch[i : i + 1000])

    def log_final(self, metrics: Mapping[str, float], verdict: str, step: int) -> None:
        """See :meth:`Tracker.log_final`: metrics and the tag ``verdict``."""
        self.log_metrics(metrics, step)
        self.client.set_tag(self.run_id, "verdict", verdict[:5000])

    def log_figures(self, figures: Sequence[Path], step: int) -> None:
        """See :meth:`Tracker.log_figures`: artifacts under ``figures/``."""
        for path in figures:
            self.client.log_artifact(self.run_id, str(path), "figures")

    def close(self, finished: bool) -> None:
        """See :meth:`Tracker.close`: status ``FINISHED``, or ``KILLED`` for a run that stopped early."""
        self.client.set_terminated(self.run_id, status="FINISHED" if finished else "KILLED")


class WandbTracker(Tracker):
    """A W&B run, offline unless ``WANDB_MODE`` says otherwise: the configuration as its config, ``log`` per step,
    the final comparison and the figures (``wandb.Image``) in its summary."""

    name = "wandb"

    def start(self, config: Mapping[str, Any], config_text: str) -> dict[str, Any]:
        """See :meth:`Tracker.start`; a resumed run has the same W&B run id (``resume="allow"``)."""
        import wandb

        root = Path(self.state.get("dir") or self.target.root).resolve()
        project = self.state.get("project") or os.environ.get("WANDB_PROJECT") or PROJECT
        settings = wandb.Settings(silent=True, console="off", disable_git=True, save_code=False, x_disable_stats=True)
        self.run = wandb.init(
            dir=str(root),
            project=project,
            id=self.state.get("run_id"),  # None: a new run, its id drawn by wandb
            resume="allow",
            name=self.target.name,
            group=self.target.group,
            config=dict(config),
            allow_val_change=True,
            mode=os.environ.get("WANDB_MODE") or "offline",
            settings=settings,
        )
        return {"dir": str(root), "project": project, "run_id": self.run.id}

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """See :meth:`Tracker.log_metrics`."""
        self.run.log(dict(metrics), step=step)

    def log_final(self, metrics: Mapping[str, float], verdict: str, step: int) -> None:
        """See :meth:`Tracker.log_final`: in the run's summary (``final/...``)."""
        self.run.summary.update({**metrics, "final/verdict": verdict})

    def log_figures(self, figures: Sequence[Path], step: int) -> None:
        """See :meth:`Tracker.log_figures`: ``figures/NAME`` images in the run's summary."""
        import wandb

        self.run.summary.update({f"figures/{path.stem}": wandb.Image(str(path)) for path in figures})

    def close(self, finished: bool) -> None:
        """See :meth:`Tracker.close`: exit code 0, or 1 for a run that stopped early."""
        self.run.finish(exit_code=0 if finished else 1)


BACKENDS: dict[str, type[Tracker]] = {
    "tensorboard": TensorBoardTracker,
    "mlflow": MLflowTracker,
    "wandb": WandbTracker,
}
"""Tracker name (:data:`evoticket.config.schema.TRACKERS`) -> its class."""


def final_metrics(summary: Mapping[str, Any]) -> dict[str, float]:
    """The final comparison of a ``summary.json`` as numbers: each control's (and the ticket's) mean test
    accuracy, ``final/CONTROL_test_acc_mean`` in [0, 1], and the verdict's booleans as 0/1 (``final/winning_ticket``,
    ``final/beats_dense_scratch``, ``final/beats_random_mask``)."""
    out = {
        f"final/{name}_test_acc_mean": float(row["test_acc_mean"])
        for name, row in summary.get("controls", {}).items()
        if isinstance(row, Mapping) and row.get("test_acc_mean") is not None
    }
    for key in ("winning_ticket", "beats_dense_scratch", "beats_random_mask"):
        if key in summary:
            out[f"final/{key}"] = float(bool(summary[key]))
    return out


class Trackers:
    """The trackers of one run, a generation hook (see the module docstring).

    Args:
        names: ``campaign.trackers``; none: every method is a no-op and nothing is written.
        run_dir: the run directory (``trackers.json`` goes there).
        target: where new tracked runs log; default :meth:`TrackingTarget.of_run`.
        tracking_uri: ``campaign.tracking_uri``.
        err: where warnings go; default stderr.

    Attributes:
        active: name -> the trackers still logging (a failed one is dropped).
        state: name -> what ``trackers.json`` keeps of it (its run, ``logged``: the last step logged, -1: none).
    """

    def __init__(
        self,
        names: Sequence[str],
        run_dir: Path,
        target: TrackingTarget | None = None,
        tracking_uri: str = "",
        err: TextIO | None = None,
    ) -> None:
        self.names, self.run_dir = tuple(names), Path(run_dir)
        self.target = target or TrackingTarget.of_run(self.run_dir)
        self.tracking_uri, self.err = tracking_uri, err
        self.active: dict[str, Tracker] = {}
        self.state: dict[str, dict[str, Any]] = {}

    def start(self, config: Mapping[str, Any], config_text: str) -> None:
        """Open each tracker (continuing the tracked runs of ``trackers.json``), log the configuration, then log the
        rows of ``generations.csv`` not logged yet.

        Args:
            config: the resolved configuration, nested plain data; config_text: the same as TOML.
        """
        if not self.names:
            return
        path = paths.trackers_json(self.run_dir)
        try:
            saved = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        except (OSError, ValueError):
            saved = {}
        self.state = {k: v for k, v in saved.items() if isinstance(v, dict)}
        for name in self.names:
            before = self.state.get(name, {})
            try:
                tracker = BACKENDS[name](self.target, before, self.tracking_uri)
                where = tracker.start(config, config_text)
            except Exception as e:  # a tracker never stops the run
                self._warn(name, "cannot start", e)
                continue
            self.active[name] = tracker
            same = all(before.get(key) == value for key, value in where.items())  # else a new tracked run
            self.state[name] = {**where, "logged": int(before.get("logged", -1)) if same else -1}
        self._save()
        self.sync()

    def __call__(self, generation: int, population: list, record: Any) -> None:
        """The hook ``(generation, population, record)``: log what ``generations.csv`` holds now (see :meth:`sync`)."""
        self.sync()

    def sync(self) -> None:
        """Log every ``generations.csv`` row a tracker has not logged yet, as ``generations/COLUMN`` at the row's
        generation (:data:`NOT_LOGGED` and empty cells left out)."""
        if not self.active or not paths.generations_csv(self.run_dir).is_file():
            return
        try:
            rows = read_generations(self.run_dir)
        except (OSError, ValueError):  # the records' own writes report a failing disk; these rows come next time
            return
        for name, tracker in list(self.active.items()):
            for row in rows:
                step = int(row["generation"])
                if step <= self.state[name]["logged"]:
                    continue
                metrics = {
                    f"generations/{k}": float(v)
                    for k, v in row.items()
                    if k not in NOT_LOGGED and isinstance(v, int | float) and not isinstance(v, bool)
                }
                if not self._call(name, tracker.log_metrics, metrics, step):
                    break
                self.state[name]["logged"] = step
        self._save()

    def log_final(self, summary: Mapping[str, Any]) -> None:
        """Log the final comparison of ``summary`` (:func:`final_metrics` and the verdict) at the last step."""
        metrics, verdict = final_metrics(summary), str(summary.get("verdict", ""))
        for name, tracker in list(self.active.items()):
            self._call(name, tracker.log_final, metrics, verdict, max(self.state[name]["logged"], 0))

    def log_figures(self, plot_dir: Path) -> None:
        """Log the PNG figures in ``plot_dir`` at the last step."""
        figures = sorted(Path(plot_dir).glob("*.png"))
        if not figures:
            return
        for name, tracker in list(self.active.items()):
            self._call(name, tracker.log_figures, figures, max(self.state[name]["logged"], 0))

    def close(self, finished: bool = True) -> None:
        """Close every tracker; ``finished`` is false when the run stopped before its end."""
        for name, tracker in list(self.active.items()):
            self._call(name, tracker.close, finished)
        self.active.clear()

    def _call(self, name: str, fn: Callable[..., None], *args: Any) -> bool:
        """``fn(*args)``; when it raises, one warning and the tracker is dropped. Returns whether it worked."""
        try:
            fn(*args)
            return True
        except Exception as e:  # a tracker never stops the run
            tracker = self.active.pop(name, None)
            self._warn(name, "cannot write", e)
            if tracker is not None and fn != tracker.close:
                try:
                    tracker.close(False)
                except Exception:
                    pass
            return False

    def _save(self) -> None:
        """Write ``trackers.json`` (only a run with trackers has one)."""
        try:
            write_json(paths.trackers_json(self.run_dir), self.state)
        except (OSError, EvoticketError) as e:  # StorageError: the records' own writes stop the run if the disk is full
            self._warn("state", "cannot be saved", e)

    def _warn(self, name: str, what: str, error: BaseException) -> None:
        """One line on stderr: which tracker, what failed, why; the run goes on."""
        reason = (str(error).strip().splitlines() or [""])[0][:300]
        print(
            f"evoticket: warning: tracker {name} {what} ({type(error).__name__}: {reason}); the run goes on without it",
            file=self.err or sys.stderr,
        )


__all__ = [
    "BACKENDS",
    "MODULES",
    "MLflowTracker",
    "TensorBoardTracker",
    "Tracker",
    "Trackers",
    "TrackingTarget",
    "WandbTracker",
    "check_trackers",
    "final_metrics",
]
