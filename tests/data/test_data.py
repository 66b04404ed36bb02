"""Tests for evoticket.data: the data set registry, splits and IDX files."""

from __future__ import annotations

import gzip
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from evoticket.core.errors import DataError, EvoticketError
from evoticket.data import (
    DATASETS,
    Splits,
    load_dataset,
    read_idx,
    stratified_split,
    write_idx,
)
from evoticket.data import mnist1d as mnist1d_module

N_TRAIN, N_TEST, SIDE = 50, 20, 28


# ---------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def mnist1d() -> Splits:
    return load_dataset("mnist1d")


@pytest.fixture(scope="module")
def idx_arrays() -> dict[str, np.ndarray]:
    """Tiny MNIST-like data: 50 train and 20 test 28x28 images, labels 0..9."""
    rng = np.random.default_rng(123)
    train = rng.integers(0, 256, size=(N_TRAIN, SIDE, SIDE), dtype=np.uint8)
    train[:, 0, 0] = np.arange(N_TRAIN)  # every row unique
    train[0, 1, :2] = (0, 255)  # the extremes occur
    return {
        "train-images-idx3-ubyte": train,
        "train-labels-idx1-ubyte": (np.arange(N_TRAIN) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, size=(N_TEST, SIDE, SIDE), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": ((np.arange(N_TEST) * 3) % 10).astype(np.uint8),
    }


def write_tiny(directory: Path, arrays: dict[str, np.ndarray], gz: bool = False) -> Path:
    for filename, array in arrays.items():
        write_idx(directory / (filename + (".gz" if gz else "")), array)
    return directory


def sorted_rows(x: np.ndarray) -> np.ndarray:
    return x[np.lexsort(x.T[::-1])]


# ---------------------------------------------------------------------------
# Registry and arguments


def test_registry_names() -> None:
    assert set(DATASETS) == {"mnist1d", "digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "npz"}
    assert all(callable(loader) for loader in DATASETS.values())


def test_unknown_name_suggests() -> None:
    with pytest.raises(DataError, match="did you mean 'mnist'") as info:
        load_dataset("mnsit")
    assert isinstance(info.value, EvoticketError)
    assert "\n" not in str(info.value)
    assert "fashion_mnist" in str(info.value)


@pytest.mark.parametrize("fraction", [0, 0.0, 1, 1.0, -0.1, 1.5, math.nan, True, "0.1", None])
def test_val_fraction_out_of_range(fraction: object) -> None:
    with pytest.raises(DataError, match=r"data\.val_fraction"):
        load_dataset("mnist1d", val_fraction=fraction)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", [-1, 1.5, None, True])
def test_bad_seed(seed: object) -> None:
    with pytest.raises(DataError, match=r"data\.seed"):
        load_dataset("mnist1d", seed=seed)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# stratified_split


def test_stratified_split_partition_and_counts() -> None:
    y = np.repeat(np.arange(4), [100, 37, 12, 2])
    keep, held = stratified_split(y, 0.2, seed=5)
    assert keep.dtype == np.int64 and held.dtype == np.int64
    assert np.all(np.diff(keep) > 0) and np.all(np.diff(held) > 0)
    np.testing.assert_array_equal(np.sort(np.concatenate([keep, held])), np.arange(len(y)))
    held_counts = np.bincount(y[held], minlength=4)
    # round(0.2 * [100, 37, 12, 2]) = [20, 7, 2, 0 -> at least 1]; 30 = round(0.2 * 151)
    np.testing.assert_array_equal(held_counts, [20, 7, 2, 1])
    assert len(held) == 30
    # 0.5 * [3, 3, 3, 3] = 1.5 each: two classes round up, two down, total 6
    keep, held = stratified_split(np.arange(12) % 4, 0.5, seed=0)
    assert sorted(np.bincount(np.arange(12)[held] % 4).tolist()) == [1, 1, 2, 2]
    assert len(held) == 6


def test_stratified_split_total_is_rounded_fraction() -> None:
    y = np.arange(4000) % 10
    y[:13] = 3  # uneven class sizes
    keep, held = stratified_split(y, 0.1, seed=0)
    assert (len(keep), len(held)) == (3600, 400)
    counts = np.bincount(y, minlength=10)
    assert np.all(np.abs(np.bincount(y[held], minlength=10) - 0.1 * counts) <= 1)


def test_stratified_split_seeded() -> None:
    y = np.arange(200) % 5
    a = stratified_split(y, 0.3, seed=1)
    b = stratified_split(y, 0.3, seed=1)
    c = stratified_split(y, 0.3, seed=2)
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])
    assert len(a[1]) == len(c[1]) == 60


def test_stratified_split_keeps_one_of_each_class() -> None:
    y = np.array([0, 0, 1, 1, 1])
    keep, held = stratified_split(y, 0.9, seed=0)
    assert set(y[keep]) == {0, 1} and set(y[held]) == {0, 1}


def test_stratified_split_errors() -> None:
    with pytest.raises(DataError, match="at least 2"):
        stratified_split(np.array([0, 0, 1]), 0.5, seed=0)
    with pytest.raises(DataError, match="non-empty 1-D"):
        stratified_split(np.zeros((2, 2), dtype=int), 0.5, seed=0)
    with pytest.raises(DataError, match=r"\(0, 1\)"):
        stratified_split(np.array([0, 0, 1, 1]), 1.0, seed=0)


# ---------------------------------------------------------------------------
# MNIST-1D


def test_mnist1d_shapes_and_dtypes(mnist1d: Splits) -> None:
    s = mnist1d
    assert s.name == "mnist1d"
    assert s.sizes() == {"train": 3600, "val": 400, "test": 1000}
    assert s.input_shape == (40,)
    assert s.num_classes == 10
    assert s.device == torch.device("cpu")
    for x, y in ((s.x_train, s.y_train), (s.x_val, s.y_val), (s.x_test, s.y_test)):
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.is_contiguous() and y.is_contiguous()
        assert x.device.type == "cpu" and y.device.type == "cpu"
        assert int(y.min()) >= 0 and int(y.max()) <= 9
        assert torch.isfinite(x).all()
    # all classes in every split
    for y in (s.y_train, s.y_val, s.y_test):
        assert set(y.tolist()) == set(range(10))


def test_mnist1d_values_unscaled(mnist1d: Splits) -> None:
    _, _, x_test, y_test = mnist1d_module._mnist1d_arrays()
    torch.testing.assert_close(mnist1d.x_test, torch.from_numpy(x_test.astype(np.float32)))
    torch.testing.assert_close(mnist1d.y_test, torch.from_numpy(y_test.copy()))
    # standardised by the generator, not rescaled to [0, 1]
    assert float(mnist1d.x_train.min()) < -1 and float(mnist1d.x_train.max()) > 1


def test_mnist1d_train_and_val_are_the_training_set(mnist1d: Splits) -> None:
    x, y, _, _ = mnist1d_module._mnist1d_arrays()
    combined = torch.cat([mnist1d.x_train, mnist1d.x_val]).numpy()
    labels = torch.cat([mnist1d.y_train, mnist1d.y_val]).numpy()
    expected = np.column_stack([x.astype(np.float32), y])
    got = np.column_stack([combined, labels])
    np.testing.assert_array_equal(sorted_rows(got), sorted_rows(expected))
    # disjoint: no training row occurs in the validation split
    train_rows = {row.tobytes() for row in mnist1d.x_train.numpy()}
    assert not any(row.tobytes() in train_rows for row in mnist1d.x_val.numpy())


def test_mnist1d_stratified(mnist1d: Splits) -> None:
    counts = np.bincount(torch.cat([mnist1d.y_train, mnist1d.y_val]).numpy(), minlength=10)
    val_counts = np.bincount(mnist1d.y_val.numpy(), minlength=10)
    assert np.all(np.abs(val_counts - 0.1 * counts) <= 1)
    assert val_counts.min() >= 1


def test_mnist1d_deterministic(mnist1d: Splits) -> None:
    again = load_dataset("mnist1d", seed=0)
    for field in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert torch.equal(getattr(again, field), getattr(mnist1d, field))
    other = load_dataset("mnist1d", seed=1)
    assert other.sizes() == mnist1d.sizes()
    assert not torch.equal(other.x_val, mnist1d.x_val)
    assert torch.equal(other.x_test, mnist1d.x_test)


def test_mnist1d_val_fraction() -> None:
    s = load_dataset("mnist1d", val_fraction=0.25, seed=3)
    assert s.sizes() == {"train": 3000, "val": 1000, "test": 1000}


def test_mnist1d_leaves_global_rng_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(mnist1d_module.CACHE_ENV, "off")  # the generator itself, not the cache file
    mnist1d_module._mnist1d_arrays.cache_clear()
    np.random.seed(77)
    random.seed(77)
    expected_np, expected_py = np.random.random(), random.random()
    np.random.seed(77)
    random.seed(77)
    load_dataset("mnist1d")
    assert np.random.random() == expected_np
    assert random.random() == expected_py


def test_mnist1d_cache_file_is_the_generators_output_bit_for_bit(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(mnist1d_module.CACHE_ENV, "off")
    mnist1d_module._mnist1d_arrays.cache_clear()
    generated = mnist1d_module._mnist1d_arrays()
    assert not list(tmp_path.iterdir())
    monkeypatch.setenv(mnist1d_module.CACHE_ENV, str(tmp_path / "cache"))
    mnist1d_module._mnist1d_arrays.cache_clear()
    first = mnist1d_module._mnist1d_arrays()  # generated, then written
    (cached,) = (tmp_path / "cache").glob("mnist1d-*.npz")
    mnist1d_module._mnist1d_arrays.cache_clear()
    monkeypatch.setattr(mnist1d_module, "_generate", lambda *a: pytest.fail("read the cache instead"))
    second = mnist1d_module._mnist1d_arrays()  # read back
    for a, b, c in zip(generated, first, second, strict=True):
        assert a.dtype == b.dtype == c.dtype and np.array_equal(a, b) and np.array_equal(a, c)
        assert not c.flags.writeable
    # a damaged cache file is regenerated and rewritten whole
    cached.write_bytes(cached.read_bytes()[:1000])
    monkeypatch.undo()
    monkeypatch.setenv(mnist1d_module.CACHE_ENV, str(tmp_path / "cache"))
    mnist1d_module._mnist1d_arrays.cache_clear()
    again = mnist1d_module._mnist1d_arrays()
    assert all(np.array_equal(a, b) for a, b in zip(generated, again, strict=True))
    assert mnist1d_module._read_cache(cached) is not None
    mnist1d_module._mnist1d_arrays.cache_clear()


def test_mnist1d_results_do_not_alias_cache(mnist1d: Splits) -> None:
    s = load_dataset("mnist1d")
    s.x_test[0, 0] = 1e6
    s.y_test[0] = 9 - int(s.y_test[0])
    assert torch.equal(load_dataset("mnist1d").x_test, mnist1d.x_test)
    assert torch.equal(load_dataset("mnist1d").y_test, mnist1d.y_test)


# ---------------------------------------------------------------------------
# Splits


def test_to_cpu_returns_same_data(mnist1d: Splits) -> None:
    moved = mnist1d.to("cpu")
    assert isinstance(moved, Splits) and moved is not mnist1d
    assert moved.device == torch.device("cpu")
    assert moved.name == mnist1d.name and moved.num_classes == mnist1d.num_classes
    for field in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert torch.equal(getattr(moved, field), getattr(mnist1d, field))
    assert mnist1d.to(torch.device("cpu")).sizes() == mnist1d.sizes()


def test_splits_repr_is_short(mnist1d: Splits) -> None:
    text = repr(mnist1d)
    assert "mnist1d" in text and "3600" in text and len(text) < 200


def test_splits_is_frozen(mnist1d: Splits) -> None:
    with pytest.raises(AttributeError):
        mnist1d.num_classes = 3  # type: ignore[misc]


def _tiny_splits(**overrides: object) -> Splits:
    fields: dict[str, object] = {
        "name": "tiny",
        "x_train": torch.zeros(4, 3),
        "y_train": torch.zeros(4, dtype=torch.int64),
        "x_val": torch.zeros(2, 3),
        "y_val": torch.zeros(2, dtype=torch.int64),
        "x_test": torch.zeros(1, 3),
        "y_test": torch.zeros(1, dtype=torch.int64),
        "num_classes": 2,
    }
    fields.update(overrides)
    return Splits(**fields)  # type: ignore[arg-type]


def test_splits_validates() -> None:
    assert _tiny_splits().sizes() == {"train": 4, "val": 2, "test": 1}
    assert _tiny_splits().input_shape == (3,)
    with pytest.raises(DataError, match="x_val"):
        _tiny_splits(x_val=torch.zeros(2, 3, dtype=torch.float64))
    with pytest.raises(DataError, match="y_train"):
        _tiny_splits(y_train=torch.zeros(4, dtype=torch.int32))
    with pytest.raises(DataError, match="rows"):
        _tiny_splits(y_test=torch.zeros(3, dtype=torch.int64))
    with pytest.raises(DataError, match="input shape"):
        _tiny_splits(x_test=torch.zeros(1, 4))
    with pytest.raises(DataError, match="num_classes"):
        _tiny_splits(num_classes=0)


# ---------------------------------------------------------------------------
# digits


def test_digits() -> None:
    pytest.importorskip("sklearn")
    s = load_dataset("digits")
    sizes = s.sizes()
    assert sum(sizes.values()) == 1797
    assert sizes == {"train": 1294, "val": 144, "test": 359}
    assert s.input_shape == (64,) and s.num_classes == 10
    for x in (s.x_train, s.x_val, s.x_test):
        assert x.dtype == torch.float32 and x.is_contiguous()
        assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    # values are multiples of 1/16
    assert torch.equal(s.x_train * 16, (s.x_train * 16).round())
    other = load_dataset("digits", seed=1)
    assert torch.equal(other.x_test, s.x_test)  # one fixed test set
    assert not torch.equal(other.x_val, s.x_val)


def test_digits_without_sklearn(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(DataError, match=r"pip install 'evoticket\[digits\]'"):
        load_dataset("digits")


# ---------------------------------------------------------------------------
# IDX files


def test_write_idx_header(tmp_path: Path) -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = write_idx(tmp_path / "img", images).read_bytes()
    assert raw[:4] == b"\x00\x00\x08\x03"
    assert raw[4:16] == b"\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00\x04"
    assert raw[16:] == images.tobytes()
    labels = np.array([1, 2, 3], dtype=np.int64)
    packed = write_idx(tmp_path / "sub" / "lbl.gz", labels)
    assert gzip.decompress(packed.read_bytes())[:8] == b"\x00\x00\x08\x01\x00\x00\x00\x03"
    np.testing.assert_array_equal(read_idx(packed), labels)
    np.testing.assert_array_equal(read_idx(tmp_path / "img", ndim=3), images)
    with pytest.raises(ValueError):
        write_idx(tmp_path / "bad", np.array([256]))
    with pytest.raises(ValueError):
        write_idx(tmp_path / "bad", np.array([0.5]))


@pytest.mark.parametrize(
    ("name", "layout", "gz"),
    [
        ("mnist", "", False),
        ("mnist", "", True),
        ("mnist", "MNIST/raw", False),
        ("fashion_mnist", "", True),
        ("fashion_mnist", "FashionMNIST/raw", True),
    ],
)
def test_idx_dataset(tmp_path: Path, idx_arrays: dict[str, np.ndarray], name: str, layout: str, gz: bool) -> None:
    write_tiny(tmp_path / layout, idx_arrays, gz=gz)
    s = load_dataset(name, root=tmp_path)
    assert s.name == name
    # 5 images per class: round(0.5) -> at least 1 per class goes to val
    assert s.sizes() == {"train": 40, "val": 10, "test": 20}
    assert s.input_shape == (784,) and s.num_classes == 10
    assert sorted(s.y_val.tolist()) == list(range(10))
    for x in (s.x_train, s.x_val, s.x_test):
        assert x.dtype == torch.float32 and x.is_contiguous()
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert s.y_train.dtype == torch.int64
    # pixel values round-trip exactly; test split keeps its order
    test_bytes = idx_arrays["t10k-images-idx3-ubyte"].reshape(N_TEST, -1)
    assert torch.equal(s.x_test * 255, torch.from_numpy(test_bytes).float())
    assert torch.equal(s.y_test, torch.from_numpy(idx_arrays["t10k-labels-idx1-ubyte"]).long())
    # train + val is exactly the training set, with matching labels
    train_bytes = idx_arrays["train-images-idx3-ubyte"].reshape(N_TRAIN, -1)
    labels = idx_arrays["train-labels-idx1-ubyte"]
    got = torch.cat([s.x_train, s.x_val]) * 255
    got_labels = torch.cat([s.y_train, s.y_val]).numpy()
    expected = np.column_stack([train_bytes, labels]).astype(np.int64)
    got_rows = np.column_stack([got.numpy().astype(np.int64), got_labels])
    np.testing.assert_array_equal(sorted_rows(got_rows), sorted_rows(expected))
    assert float(s.x_train.max()) == 1.0 or float(s.x_val.max()) == 1.0


def test_idx_dataset_mixed_gz_and_root_as_str(tmp_path: Path, idx_arrays: dict[str, np.ndarray]) -> None:
    for i, (filename, array) in enumerate(idx_arrays.items()):
        write_idx(tmp_path / (filename + (".gz" if i % 2 else "")), array)
    s = load_dataset("mnist", root=str(tmp_path), seed=4)
    assert s.sizes() == {"train": 40, "val": 10, "test": 20}


def test_idx_dataset_deterministic(tmp_path: Path, idx_arrays: dict[str, np.ndarray]) -> None:
    write_tiny(tmp_path, idx_arrays)
    a = load_dataset("mnist", root=tmp_path, seed=0)
    b = load_dataset("mnist", root=tmp_path, seed=0)
    c = load_dataset("mnist", root=tmp_path, seed=1)
    assert torch.equal(a.x_val, b.x_val) and torch.equal(a.x_train, b.x_train)
    assert not torch.equal(a.x_val, c.x_val)


def test_idx_missing_root() -> None:
    with pytest.raises(DataError, match="needs data.root") as info:
        load_dataset("mnist")
    assert "train-images-idx3-ubyte[.gz]" in str(info.value)
    assert "MNIST/raw" in str(info.value)
    with pytest.raises(DataError, match="FashionMNIST/raw"):
        load_dataset("fashion_mnist", root=None)


def test_idx_missing_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError) as info:
        load_dataset("mnist", root=missing)
    message = str(info.value)
    assert "\n" not in message
    assert str(missing) in message and "train-images-idx3-ubyte" in message


def test_idx_missing_file(tmp_path: Path, idx_arrays: dict[str, np.ndarray]) -> None:
    write_tiny(tmp_path, idx_arrays)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError) as info:
        load_dataset("mnist", root=tmp_path)
    message = str(info.value)
    assert "t10k-labels-idx1-ubyte" in message
    assert "train-images-idx3-ubyte" not in message
    assert str(tmp_path) in message and str(tmp_path / "MNIST" / "raw") in message
    assert "\n" not in message


def test_idx_wrong_layout(tmp_path: Path, idx_arrays: dict[str, np.ndarray]) -> None:
    write_tiny(tmp_path / "FashionMNIST" / "raw", idx_arrays)
    with pytest.raises(DataError, match="MNIST"):
        load_dataset("mnist", root=tmp_path)


def test_idx_bad_magic(tmp_path: Path, idx_arrays: dict[str, np.ndarray]) -> None:
    write_tiny(tmp_path, idx_arrays)
    path = tmp_path / "train-images-idx3-ubyte"
    raw = bytearray(path.read_bytes())
    raw[2] = 0x0D  # float type code instead of unsigned bytes
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="magic") as info:
        load_dataset("mnist", root=tmp_path)
    assert "train-images-idx3-ubyte" in str(info.value)


def test_idx_labels_swapped_for_images(tmp_path: Path, idx_arrays: dict[str, np.ndarray]) -> None:
    write_tiny(tmp_path, idx_arrays)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", idx_arrays["t10k-labels-idx1-ubyte"])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.*0x00000801"):
        load_dataset("mnist", root=tmp_path)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_truncated(tmp_path: Path, idx_arrays: dict[str, np.ndarray], gz: bool) -> None:
    write_tiny(tmp_path, idx_arrays, gz=gz)
    path = tmp_path / ("t10k-images-idx3-ubyte" + (".gz" if gz else ""))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 100])
    with pytest.raises(DataError) as info:
        load_dataset("mnist", root=tmp_path)
    assert "t10k-images-idx3-ubyte" in str(info.value)
    if not gz:
        assert "truncated" in str(info.value)


def test_idx_truncated_header(tmp_path: Path, idx_arrays: dict[str, np.ndarray]) -> None:
    write_tiny(tmp_path, idx_arrays)
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:6])
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.*truncated"):
        load_dataset("mnist", root=tmp_path)


def test_idx_extra_bytes(tmp_path: Path, idx_arrays: dict[str, np.ndarray]) -> None:
    write_tiny(tmp_path, idx_arrays)
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes() + b"\x00\x01")
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.*does not match its header"):
        load_dataset("mnist", root=tmp_path)


def test_idx_count_mismatch(tmp_path: Path, idx_arrays: dict[str, np.ndarray]) -> None:
    write_tiny(tmp_path, idx_arrays)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", idx_arrays["t10k-labels-idx1-ubyte"][:-1])
    with pytest.raises(DataError, match=r"20 images.*19 labels"):
        load_dataset("mnist", root=tmp_path)


def test_idx_label_out_of_range(tmp_path: Path, idx_arrays: dict[str, np.ndarray]) -> None:
    write_tiny(tmp_path, idx_arrays)
    labels = idx_arrays["train-labels-idx1-ubyte"].copy()
    labels[3] = 10
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels)
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.*label 10"):
        load_dataset("mnist", root=tmp_path)


def test_idx_val_fraction_checked_before_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data\.val_fraction"):
        load_dataset("mnist", root=tmp_path, val_fraction=1.0)


# ---------------------------------------------------------------------------
# MNIST-1D variants (data.mnist1d)


def _variant(args: dict[str, float] | None) -> Splits:
    mnist1d_module._mnist1d_arrays.cache_clear()
    try:
        return mnist1d_module.load_mnist1d(args=args)
    finally:
        mnist1d_module._mnist1d_arrays.cache_clear()


def test_mnist1d_overrides_change_the_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from evoticket.config import CampaignConfig
    from evoticket.resolve import resolve

    monkeypatch.setenv(mnist1d_module.CACHE_ENV, str(tmp_path))
    small = _variant({"num_samples": 1000})  # 800 training sequences: 720 train, 80 val, 200 test
    assert small.sizes() == {"train": 720, "val": 80, "test": 200} and small.input_shape == (40,)
    sheared = _variant({"num_samples": 1000, "shear_scale": 1.5, "iid_noise_scale": 0.1})
    assert sheared.sizes() == small.sizes() and sheared.input_shape == (40,)
    assert not torch.equal(sheared.x_test, small.x_test)
    assert len(list(tmp_path.glob("mnist1d-*.npz"))) == 2  # one cache file per variant
    monkeypatch.setattr(mnist1d_module, "_generate", lambda *a: pytest.fail("read the cache instead"))
    again = _variant({"iid_noise_scale": 0.1, "shear_scale": 1.5, "num_samples": 1000.0})  # order, int/float
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert torch.equal(getattr(again, name), getattr(sheared, name))
    config = CampaignConfig().with_overrides(
        ["data.mnist1d={num_samples = 1000, shear_scale = 1.5, iid_noise_scale = 0.1}", "campaign.device=cpu"]
    )
    mnist1d_module._mnist1d_arrays.cache_clear()
    assert torch.equal(resolve(config).splits.x_test, sheared.x_test)  # the resolve step loads the variant
    mnist1d_module._mnist1d_arrays.cache_clear()


def test_mnist1d_default_is_bit_identical_to_before(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib
    import importlib.metadata

    from mnist1d.data import get_dataset_args, make_dataset

    monkeypatch.setenv(mnist1d_module.CACHE_ENV, str(tmp_path))
    version = importlib.metadata.version("mnist1d")  # the default's cache key is the one it always had
    key = hashlib.sha256(f"mnist1d {version} get_dataset_args()".encode()).hexdigest()[:16]
    assert mnist1d_module._cache_file() == tmp_path / f"mnist1d-{key}.npz"
    assert mnist1d_module._cache_file(mnist1d_module._canonical({"seed": 1})) != mnist1d_module._cache_file()
    np_state, py_state = np.random.get_state(), random.getstate()
    raw = make_dataset(get_dataset_args())  # the generator, called as the package documents it
    np.random.set_state(np_state)
    random.setstate(py_state)
    expected = [
        raw["x"],
        np.asarray(raw["y"]).astype(np.int64),
        raw["x_test"],
        np.asarray(raw["y_test"]).astype(np.int64),
    ]
    default = load_dataset("mnist1d")
    for args in (None, {}):
        s = _variant(args)
        for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
            assert torch.equal(getattr(s, name), getattr(default, name))
    mnist1d_module._mnist1d_arrays.cache_clear()
    for got, want in zip(mnist1d_module._mnist1d_arrays(), expected, strict=True):
        assert got.dtype == want.dtype and np.array_equal(got, want)
    mnist1d_module._mnist1d_arrays.cache_clear()


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (
            "{shear = 1.5}",
            r"^data\.mnist1d\.shear: unknown mnist1d argument \(did you mean 'data\.mnist1d\.shear_scale'\?\); valid: .*data\.mnist1d\.max_translation",
        ),
        ("{final_seq_length = 80}", r"^data\.mnist1d\.final_seq_length: unknown .*valid: "),
        ("{max_translation = 100}", r"^data\.mnist1d\.max_translation: must be an integer in \[1, 72\], got 100$"),
        ("{max_translation = 2.5}", r"^data\.mnist1d\.max_translation: must be an integer"),
        ("{corr_noise_scale = -0.1}", r"^data\.mnist1d\.corr_noise_scale: must be a number in \[0, 10\]"),
        ("{scale_coeff = 2}", r"^data\.mnist1d\.scale_coeff: must be a number in \[0, 2\)"),
        ("{num_samples = 1005}", r"^data\.mnist1d\.num_samples: .*multiple of 10"),
        ("{seed = 'a'}", r"^data\.mnist1d\.seed: must be a number"),
        ("{shuffle_seq = true}", r"^data\.mnist1d\.shuffle_seq: must be a number"),
        ("0.5", r"^data\.mnist1d: must be a table"),
    ],
)
def test_mnist1d_bad_override_names_the_key(value: str, match: str) -> None:
    from evoticket.config import CampaignConfig
    from evoticket.core.errors import ConfigError

    with pytest.raises(ConfigError, match=match) as info:
        CampaignConfig().with_overrides([f"data.mnist1d={value}"])
    assert "\n" not in str(info.value)


def test_mnist1d_override_checked_by_the_loader_and_the_resolve_step() -> None:
    from evoticket.config import CampaignConfig
    from evoticket.core.errors import ConfigError
    from evoticket.resolve import resolve

    with pytest.raises(ConfigError, match=r"^data\.mnist1d\.padding: unknown mnist1d argument"):
        mnist1d_module.load_mnist1d(args={"padding": 10})
    with pytest.raises(ConfigError, match=r"^data\.mnist1d\.iid_noise_scale: must be a number in \[0, 10\]"):
        mnist1d_module.load_mnist1d(args={"iid_noise_scale": 11.0})
    digits = CampaignConfig().with_overrides(["data.name=digits", "data.mnist1d={shear_scale = 1.5}"])
    with pytest.raises(ConfigError, match=r"^data\.mnist1d: .*need data\.name = 'mnist1d', got 'digits'"):
        resolve(digits)
