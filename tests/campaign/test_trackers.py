"""Experiment trackers (``campaign.trackers``): each started for real, locally, and read back with its own reader.

TensorBoard through its ``EventAccumulator``, MLflow through ``MlflowClient`` on the run's SQLite store, W&B
offline through its own protobuf records (``wandb.proto``) in the offline run's ``.wandb`` file, which is all an
offline run of wandb >= 0.19 writes (no ``config.yaml`` or ``wandb-summary.json``); the file's framing (LevelDB's
log format) is read here, as wandb no longer ships a Python reader of it.
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import pytest

from evoticket.campaign import resume_campaign, run_campaign
from evoticket.cli import main
from evoticket.config import CampaignConfig
from evoticket.core import paths
from evoticket.core.errors import ConfigError
from evoticket.records import TIMING_COLUMNS, read_generations, read_summary
from evoticket.records import trackers as tracking
from tests.conftest import FAST

pytest.importorskip("tensorboard")
pytest.importorskip("mlflow")
pytest.importorskip("wandb")

ALL = "campaign.trackers=['tensorboard', 'mlflow', 'wandb']"


@pytest.fixture(scope="module")
def quiet_wandb(tmp_path_factory):
    """W&B strictly offline, its caches and settings in a temporary folder."""
    home = tmp_path_factory.mktemp("wandb-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_SILENT", "true")
        for key in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
            mp.setenv(key, str(home / key.lower()))
        mp.delenv("WANDB_PROJECT", raising=False)
        yield


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory) -> str:
    """An MLflow store outside the runs (``campaign.tracking_uri``), created once: its tables take seconds."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'shared.db'}"
    MlflowClient(tracking_uri=uri).search_experiments()
    return uri


def campaign(root: Path, name: str, *sets: str):
    """A 2-generation campaign (``tests/conftest.py``'s ``FAST``) in ``root``."""
    config = CampaignConfig().with_overrides([*FAST, *sets])
    return run_campaign(config, name=name, runs_dir=root / "runs", plots_dir=root / "plots", out=io.StringIO())


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, quiet_wandb):
    """The same campaign without trackers and with all three, each logging where it does by default."""
    root = tmp_path_factory.mktemp("tracked")
    plain = campaign(root, "plain")
    run = campaign(root, "tracked", ALL)
    return plain.run_dir, run.run_dir


def wandb_records(run_dir: Path) -> list:
    """Every record of a W&B offline run folder, in order, as ``wandb.proto`` ``Record`` messages."""
    from wandb.proto import wandb_internal_pb2

    (path,) = run_dir.glob("*.wandb")
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    out, pos, block, pending = [], 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:
            break
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            out.append(record)
            pending = b""
    return out


def wandb_history(run_dirs: list[Path]) -> tuple[list[dict], dict, list]:
    """History rows, the final summary and the run records of W&B offline run folders, in order."""
    rows, summary, runs = [], {}, []
    for run_dir in run_dirs:
        for record in wandb_records(run_dir):
            kind = record.WhichOneof("record_type")
            if kind == "history":
                rows.append(
                    {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
                )
            elif kind == "summary":
                for item in record.summary.update:
                    summary[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
            elif kind == "run":
                runs.append(record.run)
    return rows, summary, runs


def wandb_runs(root: Path) -> list[Path]:
    """The offline run folders under ``root/wandb``, oldest first."""
    return sorted(paths.wandb_dir(root).glob("offline-run-*"))


def tensorboard(log_dir: Path):
    """TensorBoard's own reader of a log folder, loaded."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def without_timing(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in rows]


def test_trackers_leave_the_records_as_they_are(tracked):
    plain, run = tracked
    assert paths.individuals_jsonl(run).read_bytes() == paths.individuals_jsonl(plain).read_bytes()
    assert without_timing(read_generations(run)) == without_timing(read_generations(plain))
    a, b = read_summary(plain), read_summary(run)
    for summary in (a, b):
        summary.pop("timing"), summary.pop("name")
    assert a == b  # the configuration's hash too: where a run is mirrored is not what it computes
    assert not paths.trackers_json(plain).exists() and not paths.tensorboard_dir(plain).exists()
    state = json.loads(paths.trackers_json(run).read_text())
    assert sorted(state) == ["mlflow", "tensorboard", "wandb"]
    assert all(s["logged"] == 2 for s in state.values())


def test_tensorboard_logs_generations_final_comparison_figures_and_configuration(tracked):
    _, run = tracked
    acc = tensorboard(paths.tensorboard_dir(run))
    rows = read_generations(run)
    for column in ("val_acc_max", "val_acc_avg", "train_steps", "train_flops", "eval_flops"):
        events = acc.Scalars(f"generations/{column}")
        assert [e.step for e in events] == [0, 1, 2]
        assert [e.value for e in events] == pytest.approx([float(r[column]) for r in rows])
    summary = read_summary(run)
    (ticket,) = acc.Scalars("final/ticket_test_acc_mean")
    assert ticket.step == 2 and ticket.value == pytest.approx(summary["controls"]["ticket"]["test_acc_mean"])
    assert acc.Scalars("final/winning_ticket")[0].value == float(summary["winning_ticket"])
    assert [e.step for e in acc.Images("figures/fitness")] == [2]
    assert "config/text_summary" in acc.Tags()["tensors"]
    assert "_hparams_/session_start_info" in acc.summary_metadata


def test_mlflow_logs_one_run_with_params_metrics_and_artifacts(tracked):
    from mlflow.tracking import MlflowClient

    _, run = tracked
    client = MlflowClient(tracking_uri=f"sqlite:///{paths.mlflow_db(run)}")
    experiment = client.get_experiment_by_name("evoticket")
    (found,) = client.search_runs([experiment.experiment_id])
    assert found.info.run_id == json.loads(paths.trackers_json(run).read_text())["mlflow"]["run_id"]
    assert found.info.run_name == "tracked" and found.info.status == "FINISHED"
    assert found.data.params["ga.population"] == "6" and found.data.params["campaign.trackers"].startswith("[")
    rows = read_generations(run)
    history = client.get_metric_history(found.info.run_id, "generations/train_flops")
    assert [(m.step, m.value) for m in history] == [(r["generation"], float(r["train_flops"])) for r in rows]
    summary = read_summary(run)
    assert found.data.metrics["final/dense_test_acc_mean"] == pytest.approx(
        summary["controls"]["dense"]["test_acc_mean"]
    )
    assert found.data.tags["verdict"] == summary["verdict"][:5000]
    assert [a.path for a in client.list_artifacts(found.info.run_id, "figures")] == ["figures/fitness.png"]
    assert (paths.mlflow_artifacts(run)).is_dir()  # the artifacts stay in the run directory too


def test_wandb_logs_an_offline_run_in_the_run_directory(tracked):
    _, run = tracked
    (offline,) = wandb_runs(run)
    rows, summary, runs = wandb_history([offline])
    (record,) = runs
    assert record.run_id == json.loads(paths.trackers_json(run).read_text())["wandb"]["run_id"]
    assert record.display_name == "tracked" and record.project == "evoticket"
    config = {item.key: json.loads(item.value_json) for item in record.config.update}
    assert config["ga"]["population"] == 6 and config["campaign"]["trackers"] == ["tensorboard", "mlflow", "wandb"]
    expected = read_generations(run)
    assert [r["_step"] for r in rows] == [0, 1, 2]
    assert [r["generations/val_acc_max"] for r in rows] == pytest.approx([g["val_acc_max"] for g in expected])
    assert [r["generations/eval_flops"] for r in rows] == [g["eval_flops"] for g in expected]
    final = read_summary(run)
    assert summary["final/ticket_test_acc_mean"] == pytest.approx(final["controls"]["ticket"]["test_acc_mean"])
    assert summary["final/verdict"] == final["verdict"]
    assert summary["figures/fitness"]["_type"] == "image-file"
    assert (offline / "files" / summary["figures/fitness"]["path"]).is_file()


def test_a_resumed_run_continues_the_same_tracked_runs_logging_each_generation_once(
    tmp_path, quiet_wandb, mlflow_uri, monkeypatch, capsys
):
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # MLflow's own default would put artifacts in ./mlruns
    uri = mlflow_uri  # campaign.tracking_uri: a store outside the run
    first = campaign(tmp_path, "r", ALL, "ga.generations=1", f"campaign.tracking_uri='{uri}'")
    before = json.loads(paths.trackers_json(first.run_dir).read_text())
    assert before["mlflow"]["logged"] == 1
    paths.checkpoint(first.run_dir, 1).unlink()  # generation 1 is redone: logged already, it is not logged again
    resume_campaign(first.run_dir, ["ga.generations=2"], plots_dir=tmp_path / "plots", out=io.StringIO())
    assert f"resuming {first.run_dir} after generation 0" in capsys.readouterr().err
    run = first.run_dir
    after = json.loads(paths.trackers_json(run).read_text())
    assert after["mlflow"]["run_id"] == before["mlflow"]["run_id"] and after["mlflow"]["tracking_uri"] == uri
    assert after["wandb"]["run_id"] == before["wandb"]["run_id"]
    assert not paths.mlflow_db(run).exists() and not (tmp_path / "mlruns").exists()
    assert paths.mlflow_artifacts(Path(uri.removeprefix("sqlite:///")).parent).is_dir()  # beside the store

    acc = tensorboard(paths.tensorboard_dir(run))
    assert [e.step for e in acc.Scalars("generations/val_acc_max")] == [0, 1, 2]
    assert [e.value for e in acc.Scalars("generations/train_flops")] == [
        g["train_flops"] for g in read_generations(run)
    ]

    client = MlflowClient(tracking_uri=uri)
    (found,) = client.search_runs([client.get_experiment_by_name("evoticket").experiment_id])
    history = client.get_metric_history(found.info.run_id, "generations/val_acc_max")
    assert sorted(m.step for m in history) == [0, 1, 2]
    assert found.data.params["ga.generations"] == "1" and found.data.tags["resumed.ga.generations"] == "2"

    offline = wandb_runs(run)
    rows, _, runs = wandb_history(offline)
    assert len(offline) == 2 and {r.run_id for r in runs} == {after["wandb"]["run_id"]}
    assert [r["_step"] for r in rows] == [0, 1, 2]


def test_a_failing_tracker_warns_once_and_the_run_goes_on(tmp_path, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise OSError("disk on fire\nsecond line")

    monkeypatch.setattr(tracking.TensorBoardTracker, "log_metrics", broken)
    monkeypatch.setattr(tracking.MLflowTracker, "start", broken)
    result = campaign(tmp_path, "r", "campaign.trackers=['tensorboard', 'mlflow']")
    lines = [line for line in capsys.readouterr().err.splitlines() if "warning: tracker" in line]
    assert len(lines) == 2, lines
    assert "tracker mlflow cannot start (OSError: disk on fire)" in lines[0]
    assert "tracker tensorboard cannot write (OSError: disk on fire)" in lines[1]
    assert result.summary["winning_ticket"] in (True, False)
    assert [g["generation"] for g in read_generations(result.run_dir)] == [0, 1, 2]
    assert json.loads(paths.trackers_json(result.run_dir).read_text())["tensorboard"]["logged"] == -1


@pytest.mark.parametrize("missing", ["wandb", "mlflow"])
def test_a_tracker_not_installed_is_a_config_error_before_anything_is_written(tmp_path, monkeypatch, missing):
    monkeypatch.setitem(__import__("sys").modules, missing, None)  # import fails as for a package not installed
    with pytest.raises(
        ConfigError, match=rf"campaign.trackers: {missing} is not installed; pip install 'evoticket\[{missing}\]'"
    ):
        campaign(tmp_path, "r", f"campaign.trackers=['tensorboard', '{missing}']")
    assert not (tmp_path / "runs").exists()


def test_the_command_line_says_so_in_one_line_with_exit_status_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(__import__("sys").modules, "wandb", None)
    monkeypatch.chdir(tmp_path)
    status = main(["run", "--name", "r", *(f"--set={o}" for o in FAST), "--set=campaign.trackers=['wandb']"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1, err
    assert err[0] == (
        "evoticket: error: campaign.trackers: wandb is not installed; pip install 'evoticket[wandb]' "
        "(or drop it from campaign.trackers)"
    )
    assert not (tmp_path / "runs").exists()


GRID = """
[experiment]
seeds = [0]
methods = ["dense", "ga"]
densities = [0.5]
datasets = ["mnist1d"]
budgets = [1]

[base]
model.hidden = [16]
optimizer.batch_size = 50
campaign.final_steps = 20
campaign.final_eval_every = 10
campaign.final_seeds = 1
campaign.device = "cpu"
campaign.plots = "none"
campaign.trackers = ["tensorboard", "mlflow", "wandb"]
campaign.tracking_uri = "{uri}"

[datasets.mnist1d]
data.name = "mnist1d"

[variants.dense]
train.eval_every = 10

[variants.ga]
finetune.steps = 5
ga.population = 4
"""


def test_an_experiment_tracks_one_run_per_cell_grouped_under_the_experiment(tmp_path, quiet_wandb, mlflow_uri):
    from mlflow.tracking import MlflowClient

    from evoticket.experiment import run_experiment

    (tmp_path / "grid.toml").write_text(GRID.replace("{uri}", mlflow_uri))
    result = run_experiment(
        tmp_path / "grid.toml", name="grid", runs_dir=tmp_path / "runs", plots_dir=tmp_path / "plots", progress=False
    )
    cells = sorted(p.name for p in (result.run_dir / "cells").iterdir())
    assert len(cells) == 2
    assert sorted(p.name for p in paths.tensorboard_dir(result.run_dir).iterdir()) == cells
    for cell in cells:
        acc = tensorboard(paths.tensorboard_dir(result.run_dir) / cell)
        steps = [e.step for e in acc.Scalars("generations/val_acc_max")]
        assert steps == [g["generation"] for g in read_generations(result.run_dir / "cells" / cell)]

    client = MlflowClient(tracking_uri=mlflow_uri)  # one MLflow experiment named after it, a run per cell
    runs = client.search_runs([client.get_experiment_by_name("grid").experiment_id])
    assert sorted(r.info.run_name for r in runs) == cells

    offline = wandb_runs(result.run_dir)
    _, _, records = wandb_history(offline)
    assert sorted(r.display_name for r in records) == cells and {r.run_group for r in records} == {"grid"}


def test_a_tracker_added_on_resume_logs_the_generations_run_before_it(tmp_path, mlflow_uri):
    from mlflow.tracking import MlflowClient

    first = campaign(tmp_path, "added", "ga.generations=1", "campaign.trackers=['tensorboard']")
    more = ["ga.generations=2", "campaign.trackers=['tensorboard', 'mlflow']", f"campaign.tracking_uri='{mlflow_uri}'"]
    resume_campaign(first.run_dir, more, plots_dir=tmp_path / "plots", out=io.StringIO())
    acc = tensorboard(paths.tensorboard_dir(first.run_dir))
    assert [e.step for e in acc.Scalars("generations/train_steps")] == [0, 1, 2]
    client = MlflowClient(tracking_uri=mlflow_uri)
    experiment = client.get_experiment_by_name("evoticket").experiment_id
    (found,) = client.search_runs([experiment], filter_string="attributes.run_name = 'added'")
    history = client.get_metric_history(found.info.run_id, "generations/train_steps")
    assert [(m.step, m.value) for m in history] == [
        (g["generation"], float(g["train_steps"])) for g in read_generations(first.run_dir)
    ]


def test_the_key_is_described_from_its_docstring(capsys):
    assert main(["config", "campaign.trackers"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("campaign.trackers = []") and "tensorboard, mlflow, wandb" in out
    assert "pip install 'evoticket[mlflow]'" in out
