"""A user's own network and data from the command line: bad input is one line naming model.name or data.*, exit 2,
nothing written; good input runs (the issue's acceptance: an nn.Module and an .npz through ``evoticket run``)."""

from __future__ import annotations

import json
import pickle
import textwrap

import numpy as np
import pytest

NETS = textwrap.dedent(
    """
    import torch
    from torch import nn


    class NoLayers(nn.Module):
        def forward(self, x):
            return x.flatten(1)[:, :10]


    class Small(nn.Module):
        def __init__(self, input_shape, num_classes):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(input_shape[0], 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
            self.head = nn.Linear(4 * input_shape[1] * input_shape[2], num_classes)

        def forward(self, x):
            return self.head(self.body(x).flatten(1))


    def not_module(input_shape, num_classes):
        return 42


    def no_layers(input_shape, num_classes):
        return NoLayers()


    def wrong_input(input_shape, num_classes):
        return nn.Linear(10, num_classes)


    def small(input_shape, num_classes):
        return Small(input_shape, num_classes)
    """
)

TINY = [
    "--set=campaign.final_steps=10",
    "--set=campaign.final_eval_every=5",
    "--set=campaign.final_seeds=1",
    "--set=campaign.plots=none",
    "--set=campaign.progress=false",
    "--set=optimizer.batch_size=20",
]


def write_npz(path, **changes):
    g = np.random.default_rng(0)
    arrays = {
        "x_train": g.normal(size=(60, 1, 6, 6)).astype(np.float32),
        "y_train": np.arange(60) % 3,
        "x_test": g.normal(size=(20, 1, 6, 6)).astype(np.float32),
        "y_test": np.arange(20) % 3,
    }
    arrays.update(changes)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})


def write_cifar_without(folder, missing):
    folder.mkdir(parents=True)
    for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]:
        if name != missing:
            batch = {b"labels": [0, 1], b"data": np.zeros((2, 3072), dtype=np.uint8)}
            (folder / name).write_bytes(pickle.dumps(batch))


CASES = {
    "not importable": (["--set=model.name=nets:nothere"], "model.name: cannot import 'nets:nothere'"),
    "no module": (["--set=model.name=no_such_module_xyz:make"], "model.name: cannot import 'no_such_module_xyz:make'"),
    "not a module": (
        ["--set=model.name=nets:not_module"],
        "model.name: 'nets:not_module' returned a int, not a torch.nn.Module",
    ),
    "no prunable layer": (["--set=model.name=nets:no_layers"], "model.name: 'nets:no_layers' has no prunable layer"),
    "input shape": (
        ["--set=model.name=nets:wrong_input"],
        "model.name: 'nets:wrong_input' does not accept the data's inputs of shape (B, 64)",
    ),
    "cifar missing batch": (
        ["--set=data.name=cifar10", "--set=data.root=cifar"],
        "data set 'cifar10': missing data_batch_3 in",
    ),
    "npz missing array": (["--set=data.name=npz", "--set=data.root=no_y_test.npz"], "y_test"),
    "npz labels out of range": (
        ["--set=data.name=npz", "--set=data.root=bad_labels.npz"],
        "y_test holds label 7 but y_train's classes are 0..2",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_own_input_is_one_line_exit_2_and_nothing_written(case, tmp_path, cli):
    (tmp_path / "nets.py").write_text(NETS)
    write_cifar_without(tmp_path / "cifar" / "cifar-10-batches-py", "data_batch_3")
    write_npz(tmp_path / "no_y_test.npz", y_test=None)
    write_npz(tmp_path / "bad_labels.npz", y_test=np.full(20, 7))
    (tmp_path / "runs" / "earlier").mkdir(parents=True)
    (tmp_path / "runs" / "earlier" / "keep.txt").write_text("an earlier run")
    sets, message = CASES[case]
    base = ["data.name=digits", "method=dense", "train.steps=10", *[s[6:] for s in TINY]]
    done = cli(tmp_path, [*base, *[s[6:] for s in sets]], "run")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert message in lines[0], lines[0]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["earlier"]
    assert (tmp_path / "runs" / "earlier" / "keep.txt").read_text() == "an earlier run"
    assert not (tmp_path / "plots").exists()


def test_a_users_module_on_a_users_npz_runs_and_is_read_back(tmp_path, cli):
    (tmp_path / "nets.py").write_text(NETS)
    write_npz(tmp_path / "mine.npz")
    sets = ["model.name=nets:small", "data.name=npz", "data.root=mine.npz", "method=imp", "imp.steps=10"]
    sets += ["imp.eval_every=5", "imp.max_rounds=2", *[s[6:] for s in TINY]]
    done = cli(tmp_path, sets, "run", "--name", "mine")
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "runs" / "mine" / "summary.json").read_text())
    arch = summary["architecture"]
    assert arch["generic"] and [layer["name"] for layer in arch["layers"]] == ["body.0", "head"]
    assert [n["name"] for n in arch["norms"]] == ["body.1"]
    assert summary["best"]["density_total"] < 1.0
    # the model's code is found again by its import path in a later process
    done = cli(tmp_path, [], "export", "runs/mine", "--compact", "--out", "mine.compact.pt")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "mine.compact.pt").is_file()


def test_a_users_batchnorm_network_killed_and_resumed_equals_an_uninterrupted_run(tmp_path, cli):
    """Per-individual BatchNorm buffers (num_batches_tracked included) survive the checkpoint: SIGKILL during
    generation 1's fine-tuning, then resume, gives the uninterrupted run's records and ticket."""
    import signal

    (tmp_path / "nets.py").write_text(NETS)
    write_npz(tmp_path / "mine.npz")
    sets = ["model.name=nets:small", "data.name=npz", "data.root=mine.npz", "ga.population=4", "ga.offspring=4"]
    sets += ["ga.generations=2", "finetune.steps=5", *[s[6:] for s in TINY]]
    done = cli(tmp_path, sets, "run", "--name", "whole")
    assert done.returncode == 0, done.stderr
    killed = cli(tmp_path, sets, "run", "--name", "cut", kill_at="finetune:3")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = cli(tmp_path, [], "resume", "runs/cut")
    assert resumed.returncode == 0, resumed.stderr
    whole, cut = tmp_path / "runs" / "whole", tmp_path / "runs" / "cut"
    assert (cut / "individuals.jsonl").read_bytes() == (whole / "individuals.jsonl").read_bytes()
    assert (cut / "best_ticket.pt").read_bytes() == (whole / "best_ticket.pt").read_bytes()
    a, b = (json.loads((d / "summary.json").read_text()) for d in (whole, cut))
    assert a["controls"] == b["controls"] and a["best"] == b["best"]


def test_evoticket_models_lists_names_and_shows_a_network(capsys):
    from evoticket.cli import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("mlp", "cnn1d", "lenet5", "conv2", "conv4", "conv6", "resnet20"):
        assert any(line.split()[0] == name for line in out.splitlines()), name
    assert main(["models", "conv2", "--input-shape", "1,8,8", "--prune", "features.*"]) == 0
    out = capsys.readouterr().out
    assert "features.0.weight        conv2d  64x1x3x3" in out and "classifier.0.weight" not in out.split("MFLOP")[1]
    assert "outside the pruned layers (counted dense)" in out
    assert main(["models", "conv2", "--input-shape", "64"]) == 2
    assert "model.name: 'conv2' needs images" in capsys.readouterr().err
