"""examples/ticket_transfer.py: every arm and seed in its JSON, the mnist-fashion pair on tiny IDX files, and
its one-line errors."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evoticket.data import write_idx

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "ticket_transfer.py"


def load_example():
    """The example as a module (examples/ is not a package), imported once."""
    name = "example_ticket_transfer"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def write_idx_set(directory: Path, seed: int, n_train: int = 120, n_test: int = 30) -> None:
    """Four tiny MNIST-format IDX files (28x28 images, labels 0..9 in turn) in ``directory``."""
    rng = np.random.default_rng(seed)
    write_idx(directory / "train-images-idx3-ubyte", rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8))
    write_idx(directory / "train-labels-idx1-ubyte", (np.arange(n_train) % 10).astype(np.uint8))
    write_idx(directory / "t10k-images-idx3-ubyte", rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8))
    write_idx(directory / "t10k-labels-idx1-ubyte", (np.arange(n_test) % 10).astype(np.uint8))


def check_result(result: dict, seeds: int) -> None:
    tt = load_example()
    assert result["seeds"] == list(range(seeds)) and len(result["per_seed"]) == seeds
    for entry in result["per_seed"]:
        assert set(entry["arms"]) == set(tt.ARMS)
        for arm in entry["arms"].values():
            assert 0.0 <= arm["test_acc"] <= 1.0 and 0.0 <= arm["val_acc"] <= 1.0
        assert entry["arms"]["dense"]["density"] == 1.0
        assert entry["arms"]["random"]["density"] == pytest.approx(entry["arms"]["transferred"]["density"])
    summary = result["summary"]
    for arm in tt.ARMS:
        accs = [entry["arms"][arm]["test_acc"] for entry in result["per_seed"]]
        assert summary["arms"][arm]["test_acc"] == accs
        assert summary["arms"][arm]["mean"] == pytest.approx(np.mean(accs))
    for a, b in tt.DIFFERENCES:
        d = summary["differences"][f"{a} - {b}"]
        assert d["by_seed"] == pytest.approx(
            [e["arms"][a]["test_acc"] - e["arms"][b]["test_acc"] for e in result["per_seed"]]
        )


def test_quick_mnist1d_pair_writes_every_arm_and_seed(tmp_path, capsys):
    out = tmp_path / "sub" / "transfer.json"
    assert load_example().main(["--quick", "--json", str(out), "--no-progress"]) == 0
    result = json.loads(out.read_text())
    check_result(result, seeds=2)
    assert result["target"]["data"]["mnist1d"] and not result["source"]["data"]["mnist1d"]
    assert result["settings"]["finetune_mode"] == "lamarckian" and "trained on the source" in result["meaning"]
    for arm in result["summary"]["arms"].values():  # two seeds: a t interval around the mean
        low, high = arm["ci95"]
        assert low <= arm["mean"] <= high
    printed = capsys.readouterr().out
    assert "transferred - random" in printed and "target_searched" in printed and "Lamarckian" in printed


def test_quick_mnist_fashion_pair_on_tiny_idx_files(tmp_path):
    write_idx_set(tmp_path / "MNIST" / "raw", seed=1)
    write_idx_set(tmp_path / "FashionMNIST" / "raw", seed=2)
    out = tmp_path / "transfer.json"
    argv = ["--pair", "mnist-fashion", "--root", str(tmp_path), "--quick", "--seeds", "1", "--json", str(out)]
    assert load_example().main([*argv, "--no-progress", "--set", "finetune.mode=baldwinian"]) == 0
    result = json.loads(out.read_text())
    check_result(result, seeds=1)
    assert result["source"]["data"]["name"] == "mnist" and result["target"]["data"]["name"] == "fashion_mnist"
    assert result["settings"]["architecture"]["input_shape"] == [784]
    assert result["summary"]["arms"]["transferred"]["ci95"] == [None, None]  # one seed: no interval
    assert "Baldwinian" in result["meaning"]


def test_missing_idx_files_exit_2_with_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--pair", "mnist-fashion", "--root", str(tmp_path / "empty"), "--quick"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ticket_transfer: error: data set 'mnist'")
    assert "train-images-idx3-ubyte" in lines[0]


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--pair", "mnist-fashion"], r"--root: the mnist-fashion pair needs --root DIR"),
        (["--root", "x"], r"--root: the mnist1d pair is generated"),
        (["--seeds", "0"], r"--seeds: must be >= 1, got 0"),
        (["--set", "ga.populaton=3"], r"ga\.populaton: unknown key"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, match, capsys):
    assert load_example().main([*argv, "--quick"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ticket_transfer: error: ")
    assert re.search(match, err[0])


def test_the_same_files_for_source_and_target_are_refused(tmp_path, capsys):
    write_idx_set(tmp_path, seed=1)  # flat: MNIST and Fashion-MNIST would both read these
    assert load_example().main(["--pair", "mnist-fashion", "--root", str(tmp_path), "--quick"]) == 2
    assert "read the same training data" in capsys.readouterr().err
