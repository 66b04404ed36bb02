"""Campaigns that survive: SIGKILL at any moment, Ctrl-C, damaged checkpoints, full disks, bad resumes."""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from evoticket.campaign import resume_campaign, run_campaign
from evoticket.campaign.checkpoint import KEEP, list_checkpoints, load_checkpoint, load_latest
from evoticket.cli import main
from evoticket.core import paths
from evoticket.core.errors import CheckpointError, ConfigError, DivergedError, EvoticketError, StorageError
from evoticket.records import TIMING_COLUMNS

TINY = [
    "model.hidden=[16]",
    "ga.population=6",
    "ga.offspring=6",
    "ga.generations=3",
    "finetune.steps=5",
    "finetune.mode=baldwinian",
    "ga.halving_rungs=1",
    "ga.mutations=['mutMaskSwap']",
    "optimizer.batch_size=50",
    "campaign.final_steps=20",
    "campaign.final_eval_every=10",
    "campaign.final_seeds=2",
    "campaign.device=cpu",
    "campaign.plots=fitness",
]


def start(cwd: Path, *args: str, kill_at: str | None = None, overrides=TINY) -> subprocess.Popen:
    """The command line in the background, as a user's job (``overrides`` go to ``run`` only)."""
    env = {k: v for k, v in os.environ.items() if k != "EVOTICKET_KILL_AT"}
    if kill_at:
        env["EVOTICKET_KILL_AT"] = kill_at
    sets = [f"--set={o}" for o in overrides] if args and args[0] == "run" else []
    return subprocess.Popen(
        [sys.executable, "-m", "evoticket.cli", *args, *sets, "--no-progress"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def cli(tmp_path: Path, *args: str, kill_at: str | None = None, overrides=TINY) -> subprocess.CompletedProcess:
    """The command line, run to its end (at most 300 s)."""
    proc = start(tmp_path, *args, kill_at=kill_at, overrides=overrides)
    try:
        out, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def outputs(root: Path, name: str) -> dict[str, object]:
    """Every output file of a run, timing fields aside, for comparison."""
    run_dir = root / "runs" / name
    summary = json.loads(paths.summary(run_dir).read_text())
    del summary["timing"]
    with open(paths.generations_csv(run_dir), newline="") as f:
        gens = [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(f)]
    return {
        "run_dir": run_dir,
        "config.toml": paths.config(run_dir).read_bytes(),
        "individuals.jsonl": paths.individuals_jsonl(run_dir).read_bytes(),
        "generations.csv": gens,
        "summary.json": summary,
        "best_ticket.pt": paths.best_ticket(run_dir).read_bytes(),
        "fitness.png": paths.fitness_plot(root / "plots" / name).read_bytes(),
    }


def assert_same_outputs(root: Path, name: str, reference: dict[str, object], context: object = "") -> None:
    """Every output file equals the reference byte for byte (timing fields aside), naming the files that differ."""
    got = outputs(root, name)
    differ = [k for k in got if k != "run_dir" and got[k] != reference[k]]
    assert not differ, f"differ from the uninterrupted run: {differ} {context}"


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, object]:
    """The same campaign run without interruption."""
    root = tmp_path_factory.mktemp("reference")
    warm = [sys.executable, "-c", "import evoticket.cli, evoticket.plots, matplotlib.pyplot as plt; plt.figure()"]
    # first-time costs (bytecode, font cache) stay out of the timing
    subprocess.run(warm, check=True, capture_output=True)
    launched = time.perf_counter()
    proc = start(root, "run", "--name", "r")
    assert _armed(proc, ("run",), root / "runs" / "r")
    armed = time.perf_counter()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return {
        **outputs(root, "r"),
        "startup_seconds": armed - launched,
        "seconds_after_startup": time.perf_counter() - armed,
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    "kill_at",
    [
        # (kills in generation 0's fine-tuning and between generation 0's records and its checkpoint were two more
        # points here; the random-moment test below lands in both, and records:2 rolls the records back the same way)
        "finetune:3",  # during generation 2's fine-tuning
        "records:2",  # between individuals.jsonl and generations.csv of generation 1
        "checkpoint:3",  # checkpoint of generation 1 written to its temporary file, not renamed
        "final:1",  # during the final comparison, after the last checkpoint
        "figures:1",  # summary.json written, the figures not yet drawn: the resume draws them
    ],
)
def test_sigkill_then_resume_equals_uninterrupted(tmp_path, reference, kill_at):
    killed = cli(tmp_path, "run", "--name", "r", kill_at=kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not _complete(tmp_path / "runs" / "r")
    resumed = cli(tmp_path, "resume", "runs/r")
    assert resumed.returncode == 0, resumed.stderr
    said = r"resuming runs/r: the campaign is complete; drawing its figures" if kill_at == "figures:1" else None
    assert re.search(said or r"resuming runs/r after (generation \d+|its start)", resumed.stderr)
    assert_same_outputs(tmp_path, "r", reference)
    assert len(list_checkpoints(tmp_path / "runs" / "r")) == KEEP
    assert not list(paths.checkpoint_dir(tmp_path / "runs" / "r").glob("*.tmp"))


@pytest.mark.slow
def test_killed_twice_including_during_resume(tmp_path, reference):
    assert cli(tmp_path, "run", "--name", "r", kill_at="records:2").returncode == -signal.SIGKILL
    assert cli(tmp_path, "resume", "runs/r", kill_at="checkpoint:2").returncode == -signal.SIGKILL
    resumed = cli(tmp_path, "resume", "runs/r")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_outputs(tmp_path, "r", reference)


@pytest.mark.slow
def test_truncated_checkpoint_falls_back_to_the_previous_one(tmp_path, reference):
    assert cli(tmp_path, "run", "--name", "r", kill_at="finetune:4").returncode == -signal.SIGKILL
    newest = list_checkpoints(tmp_path / "runs" / "r")[0]
    newest.write_bytes(newest.read_bytes()[:100])
    resumed = cli(tmp_path, "resume", "runs/r")
    assert resumed.returncode == 0, resumed.stderr
    warning = [line for line in resumed.stderr.splitlines() if "falling back to the previous checkpoint" in line]
    assert len(warning) == 1 and warning[0].startswith("evoticket: warning: runs/r/checkpoints/gen-"), warning
    assert "Traceback" not in resumed.stderr and "UserWarning" not in resumed.stderr
    assert_same_outputs(tmp_path, "r", reference)


def test_no_usable_checkpoint_is_a_clean_error(tmp_path):
    config_overrides = [*TINY, "campaign.progress=false"]
    from evoticket.config import CampaignConfig

    config = CampaignConfig().with_overrides(config_overrides)
    run_campaign(config, name="r", runs_dir=tmp_path / "runs", plots_dir=tmp_path / "plots", out=io.StringIO())
    run_dir = tmp_path / "runs" / "r"
    paths.summary(run_dir).unlink()
    for ckpt in list_checkpoints(run_dir):
        ckpt.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="falling back"), pytest.raises(CheckpointError, match="no usable checkpoint"):
        load_latest(run_dir)
    done = cli(tmp_path, "resume", "runs/r")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("evoticket: error: runs/r: no usable checkpoint")
    assert "Traceback" not in done.stderr


LONG = [o for o in TINY if not o.startswith("ga.generations")] + ["ga.generations=40"]


@pytest.fixture(scope="module")
def reference_long(tmp_path_factory) -> dict[str, object]:
    """The 40-generation campaign run without interruption."""
    root = tmp_path_factory.mktemp("reference_long")
    done = cli(root, "run", "--name", "r", overrides=LONG)
    assert done.returncode == 0, done.stderr
    return outputs(root, "r")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_stop_signal_leaves_a_valid_checkpoint_and_resumes(tmp_path, reference_long, signum):
    proc = start(tmp_path, "run", "--name", "r", overrides=LONG)
    gens = tmp_path / "runs" / "r" / "generations.csv"
    deadline = time.time() + 120
    while time.time() < deadline and (not gens.exists() or gens.read_text().count("\n") < 3):
        time.sleep(0.05)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err
    assert f"interrupted ({signal.Signals(signum).name})" in err
    assert "Resume with: evoticket resume runs/r" in err and "Traceback" not in err
    run_dir = tmp_path / "runs" / "r"
    ckpt = load_checkpoint(list_checkpoints(run_dir)[0])
    assert 1 <= ckpt.generation < 40
    assert f"the checkpoint of generation {ckpt.generation} is valid" in err
    assert paths.generations_csv(run_dir).read_text().count("\n") == ckpt.generation + 2  # header + gens 0..g
    assert not paths.summary(run_dir).exists()
    resumed = cli(tmp_path, "resume", "runs/r")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_outputs(tmp_path, "r", reference_long)


@pytest.mark.slow
def test_ctrl_c_during_the_final_comparison_stops_at_once(tmp_path, reference):
    done = cli(tmp_path, "run", "--name", "r", kill_at="final:1:SIGINT")
    assert done.returncode == 130, done.stderr
    assert "the checkpoint of generation 3 is valid. Resume with: evoticket resume runs/r" in done.stderr
    assert "Traceback" not in done.stderr
    assert not paths.summary(tmp_path / "runs" / "r").exists()
    resumed = cli(tmp_path, "resume", "runs/r")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_outputs(tmp_path, "r", reference)


def _complete(run_dir: Path) -> bool:
    """The campaign and its figures are done: ``summary.json`` exists and no longer says the figures are pending."""
    return paths.summary(run_dir).exists() and json.loads(paths.summary(run_dir).read_text())["figures"] != "pending"


def _armed(proc: subprocess.Popen, args: tuple[str, ...], run_dir: Path) -> bool:
    """Wait until the job is past start-up: the run directory exists (run) or it says it resumes (resume)."""
    if args[0] == "resume":
        for line in proc.stderr:
            if "resuming" in line:
                return True
        return False
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if run_dir.exists():
            return True
        time.sleep(0.01)
    return False


def _kill_at_random_moments(root: Path, reference: dict[str, object], rng: random.Random, scale: float) -> list:
    """Start the job, kill it at a random moment, resume, again and again (at most six kills), then let it finish."""
    run_dir = root / "runs" / "r"
    moments = []
    while len(moments) < 6 and not _complete(run_dir):
        args = ("resume", "runs/r") if run_dir.exists() else ("run", "--name", "r")
        proc = start(root, *args)
        if rng.random() < 0.2:
            where, delay = "start-up", rng.uniform(0.1, 1.0) * reference["startup_seconds"]
        else:
            where, delay = "after start-up", rng.uniform(0.0, scale) * reference["seconds_after_startup"]
            if not _armed(proc, args, run_dir):
                where = "finished before armed"
        time.sleep(delay)
        if proc.poll() is None:
            proc.kill()
            moments.append((args[0], where, round(delay, 2)))
        proc.communicate()
    if not _complete(run_dir):
        args = ("resume", "runs/r") if run_dir.exists() else ("run", "--name", "r")
        done = cli(root, *args)
        assert done.returncode == 0, (moments, done.stderr)
    return moments


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_equals_uninterrupted(tmp_path, reference):
    """Kill the job at random moments, again and again, then let it finish.

    Most kills land at a random moment after the job is past start-up (fine-tuning, records, checkpoints,
    the final comparison, plotting, a resume's rollback), some during start-up itself. The delays are
    fractions of how long the uninterrupted run took on this machine, so each job gets at most a fifth of
    the way before it is killed. A shared machine's speed varies between the reference and these jobs: when
    a campaign finishes after fewer than three kills, it is run again from nothing with shorter delays.
    """
    rng = random.Random(20261122)
    tries = []
    for attempt, scale in enumerate((0.2, 0.07, 0.02)):
        root = tmp_path / f"try{attempt}"
        root.mkdir()
        moments = _kill_at_random_moments(root, reference, rng, scale)
        assert not paths.staging(root / "runs" / "r").exists()
        assert_same_outputs(root, "r", reference, context=moments)
        tries.append(moments)
        if len(moments) >= 3:
            break
    assert len(tries[-1]) >= 3, (tries, reference["startup_seconds"], reference["seconds_after_startup"])


def test_a_run_is_created_whole_or_not_at_all(tmp_path, monkeypatch):
    """Killed while the run directory is being created: no run appears, and the same name is free again."""
    from evoticket.campaign import run as campaign
    from evoticket.config import CampaignConfig

    config = CampaignConfig().with_overrides([*TINY, "campaign.progress=false"])
    real = campaign._save_checkpoint

    def dies(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt  # stands for a kill between the first checkpoint and the rename

    monkeypatch.setattr(campaign, "_save_checkpoint", dies)
    with pytest.raises(KeyboardInterrupt):
        run_campaign(config, name="r", runs_dir=tmp_path / "runs", plots_dir=tmp_path / "plots", out=io.StringIO())
    assert not (tmp_path / "runs" / "r").exists()
    assert paths.staging(tmp_path / "runs" / "r").is_dir()  # left behind, replaced by the next run
    monkeypatch.setattr(campaign, "_save_checkpoint", real)
    result = run_campaign(config, name="r", runs_dir=tmp_path / "runs", plots_dir=tmp_path / "plots", out=io.StringIO())
    assert result.summary["individuals_evaluated"] > 0
    assert not paths.staging(tmp_path / "runs" / "r").exists()
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["r"]


def test_all_nan_generation_stops_with_the_likely_cause(tmp_path):
    from evoticket.config import CampaignConfig

    config = CampaignConfig().with_overrides(
        [*TINY, "campaign.progress=false", "optimizer.optimizer=sgd", "optimizer.lr=1e30"]
    )
    with pytest.raises(DivergedError, match=r"generation 0: .*diverged.*optimizer.lr = 1e\+30"):
        run_campaign(config, name="nan", runs_dir=tmp_path / "runs", plots_dir=tmp_path / "plots", out=io.StringIO())
    run_dir = tmp_path / "runs" / "nan"
    assert load_checkpoint(list_checkpoints(run_dir)[0]).generation == -1  # the checkpoint is kept
    assert not paths.individuals_jsonl(run_dir).exists()  # the diverged generation is not recorded
    done = cli(tmp_path, "run", "--name", "nan2", overrides=[*TINY, "optimizer.optimizer=sgd", "optimizer.lr=1e30"])
    assert done.returncode == 1
    assert "likely too high" in done.stderr and "Traceback" not in done.stderr


def copy_of_reference(reference: dict[str, object], root: Path) -> None:
    """The reference run (``runs/r``, ``plots/r``) copied under ``root``, as if ``run --name r`` had run there."""
    source = Path(reference["run_dir"]).parents[1]
    for part in ("runs", "plots"):
        shutil.copytree(source / part / "r", root / part / "r")


def test_resume_refuses_changed_configuration_and_allows_more_generations(tmp_path, reference):
    copy_of_reference(reference, tmp_path)  # a finished run of TINY
    before = paths.individuals_jsonl(tmp_path / "runs" / "r").read_bytes()
    bad = cli(tmp_path, "resume", "runs/r", "--set", "ga.population=10", "--set", "optimizer.lr=0.1")
    assert bad.returncode == 2
    line = bad.stderr.strip()
    assert line.startswith("evoticket: error: cannot resume runs/r with a changed configuration")
    assert "ga.population (6 -> 10)" in line and "optimizer.lr (0.02 -> 0.1)" in line and "ga.generations" in line
    done = cli(tmp_path, "resume", "runs/r")
    assert done.returncode == 2 and "already complete" in done.stderr
    assert paths.individuals_jsonl(tmp_path / "runs" / "r").read_bytes() == before  # nothing touched
    # extending a finished campaign equals running the longer one straight away
    more = cli(tmp_path, "resume", "runs/r", "--set", "ga.generations=5")
    assert more.returncode == 0, more.stderr
    straight = tmp_path / "straight"
    straight.mkdir()
    longer = [o for o in TINY if not o.startswith("ga.generations")] + ["ga.generations=5"]
    assert cli(straight, "run", "--name", "r", overrides=longer).returncode == 0
    assert_same_outputs(tmp_path, "r", outputs(straight, "r"))


@pytest.mark.slow
def test_an_ensemble_killed_in_its_training_resumes_to_the_same_files_and_can_be_added_on_resume(tmp_path, reference):
    ensemble = [*TINY, "campaign.ensemble=2"]
    straight, killed, added = (tmp_path / name for name in ("straight", "killed", "added"))
    for root in (straight, killed, added):
        root.mkdir()
    assert cli(straight, "run", "--name", "r", overrides=ensemble).returncode == 0
    expected = outputs(straight, "r")  # with the ensemble from the start
    assert expected["summary.json"]["ensemble"]["size"] == 2
    # the controls pass the kill point once per seed (two), then the ensemble once per seed: killed in its first
    done = cli(killed, "run", "--name", "r", kill_at="final:3", overrides=ensemble)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert not _complete(killed / "runs" / "r")
    resumed = cli(killed, "resume", "runs/r")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_outputs(killed, "r", expected)
    # campaign.ensemble may change on resume: added to a finished run, the same files as with it from the start
    copy_of_reference(reference, added)
    assert "ensemble" not in json.loads(paths.summary(added / "runs" / "r").read_text())
    more = cli(added, "resume", "runs/r", "--set", "campaign.ensemble=2")
    assert more.returncode == 0, more.stderr
    assert_same_outputs(added, "r", expected)


def test_edited_config_file_is_refused(tmp_path):
    assert cli(tmp_path, "run", "--name", "r", kill_at="finetune:3").returncode == -signal.SIGKILL
    cfg = tmp_path / "runs" / "r" / "config.toml"
    cfg.write_text(cfg.read_text().replace("density = 0.1", "density = 0.2"))
    done = cli(tmp_path, "resume", "runs/r")
    assert done.returncode == 2
    assert "ticket.density (0.1 -> 0.2)" in done.stderr


@pytest.mark.slow
def test_force_killed_before_the_new_run_exists_leaves_the_old_run_whole(tmp_path, reference):
    """``run --force`` over a finished run, killed while the new run is staged: the old run is untouched."""
    import shutil

    shutil.copytree(reference["run_dir"], tmp_path / "runs" / "r")
    shutil.copytree(reference["run_dir"].parents[1] / "plots", tmp_path / "plots")
    other_seed = [*TINY, "campaign.seed=5"]
    killed = cli(tmp_path, "run", "--name", "r", "--force", kill_at="checkpoint:1", overrides=other_seed)
    assert killed.returncode == -signal.SIGKILL
    assert_same_outputs(tmp_path, "r", reference)
    assert cli(tmp_path, "run", "--name", "r", "--force", overrides=other_seed).returncode == 0
    assert outputs(tmp_path, "r")["individuals.jsonl"] != reference["individuals.jsonl"]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["r"]


def test_resume_of_a_non_run_is_a_clean_error(tmp_path):
    (tmp_path / "empty").mkdir()
    expected = {
        "empty": "empty: not an evoticket run (no config.toml); give runs/NAME",
        "missing": "missing: no such run directory; give runs/NAME",
    }
    for target, message in expected.items():
        done = cli(tmp_path, "resume", target)
        assert done.returncode == 2
        assert done.stderr.strip() == f"evoticket: error: {message}"


@pytest.mark.slow
def test_killed_before_the_first_checkpoint_leaves_no_run_and_says_so(tmp_path, reference, capsys):
    """Killed while the run directory is still staged: resume says to start again, and a new run works."""
    assert cli(tmp_path, "run", "--name", "r", kill_at="checkpoint:1").returncode == -signal.SIGKILL
    assert not (tmp_path / "runs" / "r").exists()
    capsys.readouterr()
    assert main(["resume", str(tmp_path / "runs" / "r")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"evoticket: error: {tmp_path / 'runs' / 'r'}: the run was never created (its start was interrupted before "
        "the first checkpoint); start it again: evoticket run --name r"
    )
    assert cli(tmp_path, "run", "--name", "r").returncode == 0
    assert not paths.staging(tmp_path / "runs" / "r").exists()
    assert_same_outputs(tmp_path, "r", reference)


@pytest.fixture
def small_disk(tmp_path):
    """A real 300 KiB file system (tmpfs), mounted for the test; skips where mounting is not permitted."""
    mount = tmp_path / "disk"
    mount.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mount)], capture_output=True)
    except OSError as e:  # no mount command
        pytest.skip(f"cannot mount a tmpfs here: {e}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.slow
def test_a_real_full_disk_stops_cleanly_and_resume_continues(small_disk, tmp_path):
    """The records outgrow a 300 KiB disk part of the way: a clean stop, then a resume once there is room."""
    long = [o for o in TINY if not o.startswith(("ga.generations", "campaign.final_seeds"))]
    long += ["ga.generations=80", "campaign.final_seeds=1"]
    full = cli(small_disk, "run", "--name", "r", overrides=long)
    assert full.returncode == 1, full.stderr
    line = full.stderr.strip().splitlines()[-1]
    assert line.startswith("evoticket: error: cannot ") and "No space left on device" in line, line
    assert "evoticket resume runs/r" in line and "Traceback" not in full.stderr
    generation = load_latest(small_disk / "runs" / "r").generation
    assert 10 < generation < 80
    subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)
    resumed = cli(small_disk, "resume", "runs/r")
    assert resumed.returncode == 0, resumed.stderr
    straight = tmp_path / "straight"
    straight.mkdir()
    assert cli(straight, "run", "--name", "r", overrides=long).returncode == 0
    assert_same_outputs(small_disk, "r", outputs(straight, "r"))


def test_disk_full_while_checkpointing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    from evoticket.campaign import checkpoint as ckpt_module
    from evoticket.config import CampaignConfig

    config = CampaignConfig().with_overrides([*TINY, "campaign.progress=false"])
    real_save = torch.save
    calls = {"n": 0}

    def failing_save(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # the checkpoint after generation 1
            f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(ckpt_module.torch, "save", failing_save)
    with pytest.raises(
        StorageError, match=r"cannot write checkpoint .*gen-000001.pt: No space left on device; the previous"
    ):
        run_campaign(config, name="full", runs_dir=tmp_path / "runs", plots_dir=tmp_path / "plots", out=io.StringIO())
    run_dir = tmp_path / "runs" / "full"
    assert [p.name for p in list_checkpoints(run_dir)] == ["gen-000000.pt", "gen--00001.pt"]
    assert load_checkpoint(list_checkpoints(run_dir)[0]).generation == 0
    assert not list(paths.checkpoint_dir(run_dir).glob("*.tmp"))
    monkeypatch.setattr(ckpt_module.torch, "save", real_save)
    result = resume_campaign(run_dir, plots_dir=tmp_path / "plots", out=io.StringIO())
    assert result.summary["individuals_evaluated"] > 0


def test_io_error_while_writing_records_is_a_clean_stop(tmp_path, monkeypatch):
    from evoticket.config import CampaignConfig
    from evoticket.records import RecordWriter

    def broken(self, row):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(RecordWriter, "write_generation", broken)
    config = CampaignConfig().with_overrides([*TINY, "campaign.progress=false"])
    with pytest.raises(StorageError, match=r"cannot write records in .*Input/output error.*evoticket resume"):
        run_campaign(config, name="io", runs_dir=tmp_path / "runs", plots_dir=tmp_path / "plots", out=io.StringIO())
    assert load_latest(tmp_path / "runs" / "io").generation == -1


def test_resume_config_errors_are_config_errors(tmp_path):
    from evoticket.config import CampaignConfig

    config = CampaignConfig().with_overrides([*TINY, "campaign.progress=false"])
    run_campaign(config, name="r", runs_dir=tmp_path / "runs", plots_dir=tmp_path / "plots", out=io.StringIO())
    with pytest.raises(ConfigError, match=r"^ga.generations: .* has already completed generation 3; must be >= 3"):
        resume_campaign(tmp_path / "runs" / "r", ["ga.generations=1"], plots_dir=tmp_path / "plots")
    with pytest.raises(EvoticketError, match="already complete"):
        resume_campaign(tmp_path / "runs" / "r", plots_dir=tmp_path / "plots")


def test_atomic_open_replaces_whole_or_not_at_all(tmp_path):
    from evoticket.core.io import atomic_open

    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_open(path, "wb") as f:
        f.write(b"half of the n")
        raise RuntimeError("killed mid-write")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]
    with atomic_open(path, "wb") as f:
        f.write(b"new")
    assert path.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]
    with pytest.raises(FileNotFoundError), atomic_open(tmp_path / "missing" / "g.txt") as f:
        f.write("never")
    assert path.read_bytes() == b"new"


# ---------------------------------------------------------------------------
# the requeue-friendly start and one writer per run


@pytest.mark.slow
def test_run_with_resume_starts_continues_and_finishes_as_one_uninterrupted_run(tmp_path, reference):
    """``evoticket run --name r --resume``, rerun by a scheduler after each kill, ends with the same files."""
    # killed in its first seconds, while the run is still being created: there is no run yet
    killed = cli(tmp_path, "run", "--name", "r", "--resume", kill_at="checkpoint:1")
    assert killed.returncode == -signal.SIGKILL and not (tmp_path / "runs" / "r").exists()
    again = cli(tmp_path, "run", "--name", "r", "--resume", kill_at="finetune:3")  # starts it, killed in generation 2
    assert again.returncode == -signal.SIGKILL and (tmp_path / "runs" / "r").exists()
    done = cli(tmp_path, "run", "--name", "r", "--resume")
    assert done.returncode == 0, done.stderr
    assert_same_outputs(tmp_path, "r", reference)
    timing = json.loads(paths.summary(tmp_path / "runs" / "r").read_text())["timing"]
    assert timing["sessions"] == 2 and timing["session_wall_seconds"] < timing["wall_seconds"]
    assert "over 2 sessions (this one " in done.stdout
    # rerun once more, as a scheduler might: nothing to do, nothing touched, status 0
    before = {p: p.read_bytes() for p in (tmp_path / "runs" / "r").rglob("*") if p.is_file()}
    idle = cli(tmp_path, "run", "--name", "r", "--resume")
    assert idle.returncode == 0 and "already complete" in idle.stderr
    assert {p: p.read_bytes() for p in (tmp_path / "runs" / "r").rglob("*") if p.is_file()} == before
    # a different configuration is refused, as resume refuses it
    other = cli(tmp_path, "run", "--name", "r", "--resume", overrides=[*TINY, "ga.population=8"])
    assert other.returncode == 2
    assert other.stderr.strip().splitlines()[-1].startswith("evoticket: error: cannot resume")
    assert "ga.population (6 -> 8)" in other.stderr


def test_run_resume_needs_a_name(tmp_path):
    proc = cli(tmp_path, "run", "--resume")
    assert proc.returncode == 2 and "--resume: give the run's --name" in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_a_second_writer_is_refused_with_one_line_naming_the_holder(tmp_path, monkeypatch, capsys):
    from evoticket import cli as cli_module
    from evoticket.campaign.lock import RunLock

    monkeypatch.chdir(tmp_path)
    sets = [f"--set={o}" for o in TINY] + ["--no-progress"]
    with RunLock(tmp_path / "runs" / "conc"):
        assert cli_module.main(["run", "--name", "conc", *sets]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("evoticket: error: run runs/conc is being written by process ")
        assert f"process {os.getpid()} on " in err[0]
        assert not (tmp_path / "runs" / "conc").exists()
    # free again: the run goes ahead, and a resume of it while it is held is refused too
    assert cli_module.main(["run", "--name", "conc", *sets]) == 0
    with RunLock(tmp_path / "runs" / "conc"):
        assert cli_module.main(["resume", "runs/conc", "--set", "ga.generations=4"]) == 2
        assert "is being written by process" in capsys.readouterr().err


def test_a_lock_left_by_a_dead_process_blocks_no_one(tmp_path):
    from evoticket.campaign.lock import RunLock

    run_dir = tmp_path / "runs" / "dead"
    code = (
        "import os, signal, sys\n"
        "from evoticket.campaign.lock import RunLock\n"
        f"RunLock({str(run_dir)!r}).acquire()\n"
        "print('held', flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL and proc.stdout == "held\n"
    assert paths.lock(run_dir).exists()  # the file is left behind, the lock is not
    with RunLock(run_dir) as lock:
        assert lock.fd is not None


@pytest.mark.slow
def test_a_resume_while_the_run_is_live_is_refused_and_the_records_stay_whole(tmp_path):
    """The user's report: ``resume`` during a live ``run`` rolled its records back and both wrote them."""
    slow = [*TINY, "ga.generations=12"]
    first = start(tmp_path, "run", "--name", "conc", kill_at="records:4:SIGSTOP", overrides=slow)  # paused, live
    deadline = time.time() + 120
    while time.time() < deadline and Path(f"/proc/{first.pid}/stat").read_text().split()[2] != "T":
        time.sleep(0.01)
    second = cli(tmp_path, "resume", "runs/conc")
    third = cli(tmp_path, "run", "--name", "conc", overrides=slow)
    first.send_signal(signal.SIGCONT)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert second.returncode == 2 and "runs/conc is being written by process" in second.stderr
    assert third.returncode == 2
    assert "already exists" in third.stderr or "is being written by process" in third.stderr
    rows = [json.loads(line) for line in paths.individuals_jsonl(tmp_path / "runs" / "conc").read_text().splitlines()]
    pairs = [(r["uid"], r["generation"]) for r in rows]
    assert len(pairs) == len(set(pairs))  # nothing recorded twice
    assert [r["generation"] for r in rows] == sorted(r["generation"] for r in rows)
    assert {r["generation"] for r in rows} == set(range(13))
