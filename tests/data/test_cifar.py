"""Tests of CIFAR-10 and CIFAR-100 read from tiny batch folders written in the official Python pickle format."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from evoticket.core.errors import DataError
from evoticket.data.cifar import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR100_MEAN,
    CIFAR100_STD,
    load_cifar10,
    load_cifar100,
    read_batch,
)

PER_BATCH = 4  # 5 batches of 4: 20 training images, 2 per class
N_TEST = 6


class _Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Pickles as Python 2's cPickle wrote the CIFAR files: protocol 2, strings as BINSTRING (Python 2's ``str``)."""

    dispatch: ClassVar[dict] = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]

    def _save_string(self, obj: str | bytes) -> None:
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = _save_string
    dispatch[bytes] = _save_string


def write_py2_pickle(path: Path, obj: object) -> None:
    """Write ``obj`` as a Python 2 pickle of NumPy 1 (its reconstructor under ``numpy.core.multiarray``)."""
    import io

    buffer = io.BytesIO()
    _Py2Pickler(buffer, protocol=2).dump(obj)
    raw = buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    assert b"numpy._core" not in raw and b"_codecs" not in raw
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)


def _images(rng: np.random.Generator, n: int, first: int) -> np.ndarray:
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    data[:, 0] = np.arange(first, first + n)  # every image unique
    return data


def write_cifar10(folder: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """A tiny ``cifar-10-batches-py``: data_batch_1..5 of 4 images and a test_batch of 6, Python 2 pickles."""
    rng = np.random.default_rng(seed)
    train_x, train_y = [], []
    for i in range(1, 6):
        data = _images(rng, PER_BATCH, PER_BATCH * (i - 1))
        labels = [int(v) for v in (np.arange(PER_BATCH) + PER_BATCH * (i - 1)) % 10]
        batch = {
            "batch_label": f"training batch {i} of 5",
            "labels": labels,
            "data": data,
            "filenames": [f"img_{i}_{j}.png" for j in range(PER_BATCH)],
        }
        write_py2_pickle(folder / f"data_batch_{i}", batch)
        train_x.append(data)
        train_y += labels
    test = _images(rng, N_TEST, 100)
    test_labels = [3, 1, 4, 1, 5, 9]
    write_py2_pickle(
        folder / "test_batch",
        {"batch_label": "testing batch 1 of 1", "labels": test_labels, "data": test, "filenames": ["t"] * N_TEST},
    )
    write_py2_pickle(folder / "batches.meta", {"label_names": [f"class{i}" for i in range(10)]})
    return {
        "x": np.concatenate(train_x),
        "y": np.asarray(train_y),
        "x_test": test,
        "y_test": np.asarray(test_labels),
    }


def write_cifar100(folder: Path) -> dict[str, np.ndarray]:
    """A tiny ``cifar-100-python`` (train of 8, test of 3 images), pickled by Python 3 with bytes keys."""
    rng = np.random.default_rng(1)
    fine = np.array([0, 0, 42, 42, 99, 99, 7, 7])
    test_fine = np.array([99, 0, 42])
    folder.mkdir(parents=True, exist_ok=True)
    for name, data, labels in (("train", _images(rng, 8, 0), fine), ("test", _images(rng, 3, 50), test_fine)):
        batch = {
            b"filenames": [b"x.png"] * len(labels),
            b"batch_label": name.encode(),
            b"fine_labels": labels.tolist(),
            b"coarse_labels": (labels // 5).tolist(),
            b"data": data,
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=4))
    return {"x": _images(np.random.default_rng(1), 8, 0), "y": fine, "y_test": test_fine}


def _normalised(data: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    x = data.reshape(-1, 3, 32, 32).astype(np.float32) / np.float32(255)
    return (x - np.float32(mean)[:, None, None]) / np.float32(std)[:, None, None]


def _rows(x: torch.Tensor) -> list[bytes]:
    return sorted(row.tobytes() for row in x.reshape(x.shape[0], -1).numpy())


@pytest.mark.parametrize("inside", [True, False], ids=["root holds the folder", "root is the folder"])
def test_cifar10_both_root_conventions(tmp_path: Path, inside: bool) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    arrays = write_cifar10(folder)
    s = load_cifar10(root=tmp_path if inside else folder)
    assert s.name == "cifar10" and s.num_classes == 10 and s.augment == "none"
    assert s.input_shape == (3, 32, 32)
    assert s.sizes() == {"train": 10, "val": 10, "test": 6}  # 2 per class: at least one of each held out
    expected = _normalised(arrays["x"], CIFAR10_MEAN, CIFAR10_STD)
    assert _rows(torch.cat([s.x_train, s.x_val])) == _rows(torch.from_numpy(expected))
    assert sorted(torch.cat([s.y_train, s.y_val]).tolist()) == sorted(arrays["y"].tolist())
    assert torch.equal(s.x_test, torch.from_numpy(_normalised(arrays["x_test"], CIFAR10_MEAN, CIFAR10_STD)))
    assert s.y_test.tolist() == arrays["y_test"].tolist()
    for x in (s.x_train, s.x_val, s.x_test):
        assert x.dtype == torch.float32 and x.is_contiguous()


def test_cifar10_normalisation_values_and_channel_order(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10(folder)
    data = np.zeros((N_TEST, 3072), dtype=np.uint8)
    data[:, :1024] = 255  # red plane
    data[:, 2048:] = 51  # blue plane: 0.2
    write_py2_pickle(folder / "test_batch", {"labels": [0] * N_TEST, "data": data})
    s = load_cifar10(root=tmp_path)
    red, green, blue = s.x_test[0, 0], s.x_test[0, 1], s.x_test[0, 2]
    torch.testing.assert_close(red, torch.full((32, 32), (1 - 0.4914) / 0.2470), rtol=0, atol=1e-6)
    torch.testing.assert_close(green, torch.full((32, 32), -0.4822 / 0.2435), rtol=0, atol=1e-6)
    torch.testing.assert_close(blue, torch.full((32, 32), (0.2 - 0.4465) / 0.2616), rtol=0, atol=1e-6)
    assert CIFAR10_MEAN == (0.4914, 0.4822, 0.4465) and CIFAR10_STD == (0.2470, 0.2435, 0.2616)
    assert CIFAR100_MEAN == (0.5071, 0.4865, 0.4409) and CIFAR100_STD == (0.2673, 0.2564, 0.2762)


@pytest.mark.parametrize("inside", [True, False], ids=["root holds the folder", "root is the folder"])
def test_cifar100_fine_labels(tmp_path: Path, inside: bool) -> None:
    folder = tmp_path / "cifar-100-python"
    arrays = write_cifar100(folder)
    s = load_cifar100(root=str(tmp_path if inside else folder), seed=3)
    assert s.name == "cifar100" and s.num_classes == 100 and s.input_shape == (3, 32, 32)
    assert s.sizes() == {"train": 4, "val": 4, "test": 3}
    assert sorted(torch.cat([s.y_train, s.y_val]).tolist()) == sorted(arrays["y"].tolist())
    assert s.y_test.tolist() == arrays["y_test"].tolist()  # fine labels, not coarse ones
    expected = _normalised(arrays["x"], CIFAR100_MEAN, CIFAR100_STD)
    assert _rows(torch.cat([s.x_train, s.x_val])) == _rows(torch.from_numpy(expected))


def test_cifar_flat_layout(tmp_path: Path) -> None:
    write_cifar10(tmp_path / "cifar-10-batches-py")
    image = load_cifar10(root=tmp_path)
    flat = load_cifar10(root=tmp_path, layout="flat")
    assert flat.input_shape == (3072,)
    assert torch.equal(flat.x_test, image.x_test.reshape(-1, 3072))
    assert load_cifar10(root=tmp_path, layout="image").input_shape == (3, 32, 32)


def test_cifar_split_is_seeded(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    a, b, c = (load_cifar10(root=tmp_path, seed=seed) for seed in (0, 0, 1))
    assert torch.equal(a.x_val, b.x_val) and not torch.equal(a.x_val, c.x_val)


def _message(info: pytest.ExceptionInfo[DataError]) -> str:
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_root_folder_or_batch(tmp_path: Path) -> None:
    with pytest.raises(
        DataError, match=r"^data set 'cifar10' needs data\.root: the folder holding cifar-10-batches-py/"
    ):
        load_cifar10()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError) as info:
        load_cifar10(root=tmp_path / "empty")
    assert "holds no cifar-10-batches-py/" in _message(info) and "data_batch_1" in _message(info)
    with pytest.raises(DataError, match="is not a folder"):
        load_cifar100(root=tmp_path / "nowhere")
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10(folder)
    (folder / "data_batch_3").unlink()
    for root in (tmp_path, folder):
        with pytest.raises(DataError) as info:
            load_cifar10(root=root)
        message = _message(info)
        assert message.startswith("data set 'cifar10': missing data_batch_3 in ")
        assert (
            "it should hold data_batch_1, data_batch_2, data_batch_3, data_batch_4, data_batch_5, test_batch" in message
        )
    with pytest.raises(DataError, match=r"missing train, test in .*cifar-100-python.*it should hold train, test"):
        (tmp_path / "cifar-100-python").mkdir()
        load_cifar100(root=tmp_path)


def test_bad_batches(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10(folder)
    good = (folder / "data_batch_2").read_bytes()
    (folder / "data_batch_2").write_bytes(good[:500])
    with pytest.raises(DataError, match=r"^cannot read CIFAR batch '.*data_batch_2'"):
        load_cifar10(root=tmp_path)
    write_py2_pickle(folder / "data_batch_2", {"labels": [10, 0, 0, 0], "data": np.zeros((4, 3072), np.uint8)})
    with pytest.raises(DataError, match=r"data_batch_2'?: labels holds 10; labels must be in \[0, 10\)"):
        load_cifar10(root=tmp_path)
    write_py2_pickle(folder / "data_batch_2", {"labels": [0, 0, 0], "data": np.zeros((4, 3072), np.uint8)})
    with pytest.raises(DataError, match=r"labels must be 4 integers"):
        load_cifar10(root=tmp_path)
    write_py2_pickle(folder / "data_batch_2", {"labels": [0] * 4, "data": np.zeros((4, 32, 32), np.uint8)})
    with pytest.raises(DataError, match=r"data must be uint8 \(N, 3072\)"):
        load_cifar10(root=tmp_path)
    write_py2_pickle(folder / "data_batch_2", {"data": np.zeros((4, 3072), np.uint8)})
    with pytest.raises(DataError, match=r"has no 'labels'"):
        load_cifar10(root=tmp_path)
    write_py2_pickle(folder / "data_batch_2", [1, 2])
    with pytest.raises(DataError, match=r"holds a list, not a dictionary"):
        load_cifar10(root=tmp_path)


class _Exploit:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.getenv, ("HOME",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps({"data": _Exploit(), "labels": []}, protocol=2))
    with pytest.raises(DataError, match=r"UnpicklingError: refusing to load .*getenv"):
        read_batch(path, "labels", 10)
