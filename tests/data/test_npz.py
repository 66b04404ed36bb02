"""Tests of one's own arrays: data.name = "npz" and the checks every data set of one's own gets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from evoticket.core.errors import DataError
from evoticket.data.arrays import load_npz, splits_from_arrays


def arrays(n_train: int = 30, n_test: int = 10, shape: tuple[int, ...] = (2, 5, 5), classes: int = 3) -> dict:
    """Tiny arrays: inputs float64 of ``shape``, labels int32 cycling through ``classes``."""
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.normal(size=(n_train, *shape)),
        "y_train": (np.arange(n_train) % classes).astype(np.int32),
        "x_test": rng.normal(size=(n_test, *shape)),
        "y_test": (np.arange(n_test) % classes).astype(np.int32),
    }


def write_npz(path: Path, data: dict) -> Path:
    np.savez(path, **data)
    return path


def test_npz_carves_validation_from_train(tmp_path: Path) -> None:
    data = arrays()
    s = load_npz(root=write_npz(tmp_path / "x.npz", data), val_fraction=0.2, seed=1)
    assert s.name == "npz" and s.num_classes == 3 and s.input_shape == (2, 5, 5)
    assert s.sizes() == {"train": 24, "val": 6, "test": 10}
    assert np.bincount(s.y_val.numpy()).tolist() == [2, 2, 2]  # stratified
    assert torch.equal(s.x_test, torch.from_numpy(data["x_test"].astype(np.float32)))
    assert s.y_test.dtype == torch.int64 and s.x_train.dtype == torch.float32
    combined = torch.cat([s.x_train, s.x_val]).reshape(30, -1).numpy()
    expected = data["x_train"].astype(np.float32).reshape(30, -1)
    assert sorted(map(bytes, combined)) == sorted(map(bytes, expected))
    again = load_npz(root=str(tmp_path / "x.npz"), val_fraction=0.2, seed=1)
    assert torch.equal(again.x_val, s.x_val)


def test_npz_with_its_own_validation_split(tmp_path: Path) -> None:
    data = arrays()
    data["x_val"] = np.ones((4, 2, 5, 5), dtype=np.uint8)
    data["y_val"] = np.array([0, 1, 2, 2], dtype=np.int64)
    s = load_npz(root=write_npz(tmp_path / "x.npz", data))
    assert s.sizes() == {"train": 30, "val": 4, "test": 10}
    assert torch.equal(s.x_train, torch.from_numpy(data["x_train"].astype(np.float32)))
    assert torch.equal(s.x_val, torch.ones(4, 2, 5, 5)) and s.y_val.tolist() == [0, 1, 2, 2]


def test_npz_layouts_and_any_shape(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "x.npz", arrays(shape=(7,)))
    assert load_npz(root=path).input_shape == (7,)
    assert load_npz(root=path, layout="image").input_shape == (1, 7)
    path = write_npz(tmp_path / "y.npz", arrays(shape=(2, 5, 5)))
    assert load_npz(root=path, layout="flat").input_shape == (50,)
    assert load_npz(root=path, layout="image").input_shape == (2, 5, 5)


def test_num_classes_is_the_largest_label_plus_one() -> None:
    data = arrays()
    data["y_train"] = np.where(data["y_train"] == 2, 9, data["y_train"])  # classes 0, 1, 9
    data["y_test"] = np.array([0, 9, 1, 1, 0, 9, 0, 0, 1, 9])
    s = splits_from_arrays("mine", data)
    assert s.num_classes == 10 and s.name == "mine"


def test_tensors_are_taken_too() -> None:
    data = {k: torch.from_numpy(np.asarray(v)) for k, v in arrays().items()}
    assert splits_from_arrays("mine", data).sizes()["test"] == 10


def _bad(tmp_path: Path, change: dict, drop: tuple[str, ...] = ()) -> str:
    data = {**arrays(), **change}
    for name in drop:
        del data[name]
    path = write_npz(tmp_path / "x.npz", data)
    with pytest.raises(DataError) as info:
        load_npz(root=path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"data.root: {path}: "), message
    return message[len(f"data.root: {path}: ") :]


@pytest.mark.parametrize(
    ("change", "drop", "expected"),
    [
        ({}, ("y_test",), "no array y_test; needs x_train, y_train, x_test, y_test (and optionally x_val, y_val), "),
        ({}, ("x_train",), "no array x_train;"),
        ({"x_val": np.zeros((2, 2, 5, 5))}, (), "x_val without y_val; give both or neither"),
        ({"y_train": np.arange(30) * 0.5}, (), "y_train has dtype float64; labels must be integers"),
        ({"x_test": np.array([["a"] * 50] * 10)}, (), "x_test has dtype <U1; inputs must be real numbers"),
        ({"x_train": np.zeros(30)}, (), "x_train has shape (30,); inputs must be (N, *input_shape)"),
        ({"y_test": np.zeros((10, 1), dtype=int)}, (), "y_test has shape (10, 1); labels must be 1-D (N,)"),
        ({"y_train": np.arange(29) % 3}, (), "x_train has 30 rows but y_train has 29"),
        ({"x_test": np.zeros((10, 2, 5, 4))}, (), "x_test has input shape (2, 5, 4) but x_train has (2, 5, 5)"),
        (
            {"y_test": np.array([0, 1, 2, 12, 0, 1, 2, 0, 1, 2])},
            (),
            "y_test holds label 12 but y_train's classes are 0..2",
        ),
        ({"y_train": -(np.arange(30) % 3)}, (), "y_train holds label -2; labels must be >= 0"),
        ({"x_train": np.full((30, 2, 5, 5), np.nan)}, (), "x_train holds NaN or infinite values"),
        ({"x_test": np.zeros((0, 2, 5, 5)), "y_test": np.zeros(0, dtype=int)}, (), "x_test is empty"),
    ],
    ids=lambda v: None,
)
def test_each_bad_array_is_one_line_naming_it(tmp_path: Path, change: dict, drop: tuple, expected: str) -> None:
    assert _bad(tmp_path, change, drop).startswith(expected)


def test_a_class_with_one_training_example_cannot_be_split(tmp_path: Path) -> None:
    y = np.arange(30) % 3
    y[0] = 5  # class 5 once
    message = _bad(tmp_path, {"y_train": y})
    assert message.startswith("y_train: cannot split: class 5 has only 1 example") and "x_val and y_val" in message


def test_missing_or_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"^data set 'npz' needs data\.root: the \.npz file holding x_train"):
        load_npz()
    with pytest.raises(DataError, match=r"^data\.root: .*missing\.npz: no such file; data\.name = 'npz' reads"):
        load_npz(root=tmp_path / "missing.npz")
    with pytest.raises(DataError, match=r"^data\.root: .*: is a folder"):
        load_npz(root=tmp_path)
    (tmp_path / "junk.npz").write_text("not an archive")
    with pytest.raises(DataError, match=r"^data\.root: .*junk\.npz: cannot read it as an \.npz file: "):
        load_npz(root=tmp_path / "junk.npz")
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(DataError, match=r"^data\.root: .*one\.npy: holds a single array \(\.npy\)"):
        load_npz(root=tmp_path / "one.npy")
    np.savez(tmp_path / "objects.npz", x_train=np.array([{}, 1], dtype=object))
    with pytest.raises(DataError, match=r"^data\.root: .*objects\.npz: cannot read it as an \.npz file: ValueError"):
        load_npz(root=tmp_path / "objects.npz")
    path = write_npz(tmp_path / "x.npz", arrays())
    with pytest.raises(DataError, match=r"data\.val_fraction"):
        load_npz(root=path, val_fraction=1.5)
