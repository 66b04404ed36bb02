"""CIFAR-10 and CIFAR-100 from the official Python pickle batches on disk (Krizhevsky 2009).

Source: A. Krizhevsky, "Learning multiple layers of features from tiny images", technical report, University of
Toronto, 2009 (https://www.cs.toronto.edu/~kriz/cifar.html). The "CIFAR-10 python version" is the folder
``cifar-10-batches-py`` holding ``data_batch_1`` .. ``data_batch_5`` (10000 images each) and ``test_batch``
(10000); the "CIFAR-100 python version" is ``cifar-100-python`` holding ``train`` (50000) and ``test`` (10000).
Each file is a pickled dictionary (written by Python 2) whose ``data`` is a uint8 array ``(N, 3072)``, one row
per 32x32 colour image, the red, green and blue planes one after the other in row-major order, and whose
``labels`` (CIFAR-10) or ``fine_labels`` (CIFAR-100's 100 classes; ``coarse_labels`` are its 20 superclasses,
unused) are lists of ints. These are the files torchvision's ``CIFAR10(root, download=True)`` and
``CIFAR100`` leave in ``root``.

The pickles are read with an unpickler that builds nothing but NumPy arrays, lists, dicts, strings and numbers,
so a file that is not a CIFAR batch cannot run code. Nothing is downloaded.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evoticket.core.errors import DataError
from evoticket.data.layout import apply_layout, check_layout
from evoticket.data.splits import Splits, _build_splits, _check_fraction, _check_seed

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
"""CIFAR-10's per-channel (red, green, blue) mean of the training images, pixel values scaled to [0, 1]."""
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
"""CIFAR-10's per-channel standard deviation of the training images, pixel values scaled to [0, 1]."""
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
"""CIFAR-100's per-channel mean of the training images, pixel values scaled to [0, 1]."""
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
"""CIFAR-100's per-channel standard deviation of the training images, pixel values scaled to [0, 1]."""

IMAGE_SHAPE = (3, 32, 32)
"""One CIFAR image, channels first."""


@dataclass(frozen=True)
class _Format:
    name: str
    folder: str
    train_files: tuple[str, ...]
    test_file: str
    label_key: str
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    release: str

    def files(self) -> tuple[str, ...]:
        return (*self.train_files, self.test_file)


_CIFAR10 = _Format(
    "cifar10",
    "cifar-10-batches-py",
    tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test_batch",
    "labels",
    10,
    CIFAR10_MEAN,
    CIFAR10_STD,
    "the CIFAR-10 python version",
)
_CIFAR100 = _Format(
    "cifar100",
    "cifar-100-python",
    ("train",),
    "test",
    "fine_labels",
    100,
    CIFAR100_MEAN,
    CIFAR100_STD,
    "the CIFAR-100 python version",
)

# what a CIFAR batch may hold: arrays (NumPy 1 and 2 spell the reconstructor's module differently) and the
# byte strings that Python 3's protocol-2 pickles encode through _codecs
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


def _multiarray() -> Any:
    """NumPy's ``multiarray`` module: ``numpy._core`` from NumPy 2 on (which warns on ``numpy.core``), else ``numpy.core``."""
    import importlib

    try:
        return importlib.import_module("numpy._core.multiarray")
    except ImportError:
        return importlib.import_module("numpy.core.multiarray")


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that refuses every global but those a CIFAR batch needs."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR batch holds only arrays")
        if module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            return getattr(_multiarray(), name)
        return super().find_class(module, name)


def _spec(fmt: _Format) -> str:
    return (
        f"the folder holding {fmt.folder}/ or that folder itself, with {', '.join(fmt.files())} "
        f"({fmt.release}, e.g. as torchvision downloads it)"
    )


def _find_batches(fmt: _Format, root: str | os.PathLike[str] | None) -> list[Path]:
    """Locate the batch files of ``fmt`` under ``root``: in ``root/<folder>``, else in ``root`` itself.

    Returns:
        The training files' paths, then the test file's.

    Raises:
        DataError: if ``root`` is ``None`` or does not exist, or neither place holds every file (naming the
            missing files and what the folder should hold).
    """
    if root is None or str(root) == "":
        raise DataError(f"data set {fmt.name!r} needs data.root: {_spec(fmt)}")
    base = Path(root).expanduser()
    if not base.is_dir():
        raise DataError(f"data set {fmt.name!r}: data.root {str(base)!r} is not a folder; it should be {_spec(fmt)}")
    for directory in (base / fmt.folder, base):
        if directory.is_dir():
            missing = [f for f in fmt.files() if not (directory / f).is_file()]
            if not missing:
                return [directory / f for f in fmt.files()]
            if directory != base or any((directory / f).is_file() for f in fmt.files()):
                raise DataError(
                    f"data set {fmt.name!r}: missing {', '.join(missing)} in {str(directory)!r}; "
                    f"it should hold {', '.join(fmt.files())} ({fmt.release})"
                )
    raise DataError(f"data set {fmt.name!r}: data.root {str(base)!r} holds no {fmt.folder}/; it should be {_spec(fmt)}")


def read_batch(path: str | os.PathLike[str], label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR pickle batch.

    Args:
        path: the file, e.g. ``cifar-10-batches-py/data_batch_1``.
        label_key: ``"labels"`` (CIFAR-10) or ``"fine_labels"`` (CIFAR-100).
        num_classes: labels must lie in ``[0, num_classes)``.

    Returns:
        ``(images, labels)``: uint8 ``(N, 3, 32, 32)`` and int64 ``(N,)``.

    Raises:
        DataError: naming the file if it cannot be read or unpickled, is not a dictionary with ``data`` and
            ``label_key``, its data are not ``N`` rows of 3072 bytes, or its labels do not match them in number
            or range.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = _BatchUnpickler(fh, encoding="latin1").load()
    except Exception as exc:  # OSError, UnpicklingError, EOFError, ...: the file is not a readable batch
        message = str(exc).splitlines()[0] if str(exc) else ""
        raise DataError(f"cannot read CIFAR batch {str(path)!r}: {type(exc).__name__}: {message}") from None
    if not isinstance(raw, dict):
        raise DataError(f"CIFAR batch {str(path)!r} holds a {type(raw).__name__}, not a dictionary of data and labels")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in raw.items()}
    for key in ("data", label_key):
        if key not in batch:
            raise DataError(f"CIFAR batch {str(path)!r} has no {key!r}; keys: {', '.join(map(str, batch))}")
    data = batch["data"]
    n_values = int(np.prod(IMAGE_SHAPE))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != n_values:
        shape = data.shape if isinstance(data, np.ndarray) else type(data).__name__
        dtype = f" {data.dtype}" if isinstance(data, np.ndarray) else ""
        raise DataError(f"CIFAR batch {str(path)!r}: data must be uint8 (N, {n_values}), got{dtype} {shape}")
    try:
        labels = np.asarray(batch[label_key])
    except Exception:  # ragged or otherwise not an array: reported below
        labels = np.asarray(None)
    if labels.ndim == 1 and labels.size == 0:
        labels = labels.astype(np.int64)
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or labels.shape[0] != data.shape[0]:
        raise DataError(
            f"CIFAR batch {str(path)!r}: {label_key} must be {data.shape[0]} integers (one per image), "
            f"got {labels.dtype} {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = int(labels.min()) if labels.min() < 0 else int(labels.max())
        raise DataError(f"CIFAR batch {str(path)!r}: {label_key} holds {bad}; labels must be in [0, {num_classes})")
    return data.reshape(-1, *IMAGE_SHAPE), labels.astype(np.int64)


def _normalise(images: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """``(images / 255 - mean) / std`` per channel, float32 ``(N, 3, 32, 32)``."""
    x = images.astype(np.float32)
    x /= np.float32(255.0)
    x -= np.asarray(mean, dtype=np.float32)[:, None, None]
    x /= np.asarray(std, dtype=np.float32)[:, None, None]
    return x


def _load_cifar(
    fmt: _Format, root: str | os.PathLike[str] | None, val_fraction: float, seed: int, layout: str
) -> Splits:
    check_layout(layout)
    val_fraction = _check_fraction(val_fraction, "data.val_fraction")
    seed = _check_seed(seed)
    paths = _find_batches(fmt, root)
    parts = [read_batch(p, fmt.label_key, fmt.num_classes) for p in paths]
    train_images = np.concatenate([images for images, _ in parts[:-1]])
    train_labels = np.concatenate([labels for _, labels in parts[:-1]])
    test_images, test_labels = parts[-1]
    splits = _build_splits(
        fmt.name,
        _normalise(train_images, fmt.mean, fmt.std),
        train_labels,
        _normalise(test_images, fmt.mean, fmt.std),
        test_labels,
        fmt.num_classes,
        val_fraction,
        seed,
    )
    return apply_layout(splits, layout, IMAGE_SHAPE)


def load_cifar10(
    *,
    root: str | os.PathLike[str] | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    layout: str = "auto",
) -> Splits:
    """Load CIFAR-10 (Krizhevsky 2009) from the official Python pickle batches.

    ``root`` is the folder holding ``cifar-10-batches-py`` (torchvision's ``root``) or that folder itself, with
    ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``. Inputs are images ``(3, 32, 32)`` float32, each
    channel scaled to [0, 1] and standardised with :data:`CIFAR10_MEAN` and :data:`CIFAR10_STD` (so roughly in
    [-2, 2.1]); labels int64 in [0, 10). With ``val_fraction=0.1``: 45000 train, 5000 val, 10000 test.

    Args:
        root: the folder with the batches.
        val_fraction: fraction of the 50000 training images held out for validation, in (0, 1).
        seed: seed of the validation split.
        layout: ``"auto"`` or ``"image"`` (``(3, 32, 32)``), or ``"flat"`` (``(3072,)``, channels first).

    Returns:
        The :class:`Splits` on the CPU.

    Raises:
        ConfigError: if ``layout`` is unknown.
        DataError: if ``root`` is missing or lacks a batch file (naming it); a batch is unreadable or not in the
            CIFAR format; or ``val_fraction`` or ``seed`` is invalid.
    """
    return _load_cifar(_CIFAR10, root, val_fraction, seed, layout)


def load_cifar100(
    *,
    root: str | os.PathLike[str] | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    layout: str = "auto",
) -> Splits:
    """Load CIFAR-100 (Krizhevsky 2009) from the official Python pickle files, with its 100 fine labels.

    ``root`` is the folder holding ``cifar-100-python`` (torchvision's ``root``) or that folder itself, with
    ``train`` and ``test``. Inputs are images ``(3, 32, 32)`` float32 standardised per channel with
    :data:`CIFAR100_MEAN` and :data:`CIFAR100_STD`; labels (``fine_labels``) int64 in [0, 100). With
    ``val_fraction=0.1``: 45000 train, 5000 val, 10000 test.

    Args:
        root: the folder with the files.
        val_fraction: fraction of the 50000 training images held out for validation, in (0, 1).
        seed: seed of the validation split.
        layout: ``"auto"`` or ``"image"`` (``(3, 32, 32)``), or ``"flat"`` (``(3072,)``, channels first).

    Returns:
        The :class:`Splits` on the CPU.

    Raises:
        ConfigError: if ``layout`` is unknown.
        DataError: as for :func:`load_cifar10`.
    """
    return _load_cifar(_CIFAR100, root, val_fraction, seed, layout)


__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "IMAGE_SHAPE",
    "load_cifar10",
    "load_cifar100",
    "read_batch",
]
