"""MNIST and Fashion-MNIST from IDX files on disk (plain or gzip, flat or torchvision's layout)."""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from evoticket.core.errors import DataError
from evoticket.data.layout import apply_layout, check_layout
from evoticket.data.splits import Splits, _build_splits, _check_fraction, _check_seed

_IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

_IDX_UBYTE = 0x08  # IDX type code of unsigned bytes


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Write an array as an IDX file of unsigned bytes.

    The header is the magic number ``0x000008DD`` (``DD`` = number of
    dimensions, e.g. ``0x00000803`` for images ``(N, rows, cols)`` and
    ``0x00000801`` for labels ``(N,)``), then each dimension as a big-endian
    uint32, then the bytes in C order. Parent directories are created. The
    file is gzip-compressed if ``path`` ends with ``.gz``.

    Args:
        path: where to write.
        array: an array with 1 to 255 dimensions and values in [0, 255];
            uint8, or an integer dtype whose values fit in uint8.

    Returns:
        ``path`` as a :class:`pathlib.Path`.

    Raises:
        ValueError: if ``array`` has no dimensions, more than 255, or values
            that are not integers in [0, 255].
    """
    array = np.asarray(array)
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"IDX needs 1 to 255 dimensions, got shape {array.shape}")
    if array.dtype != np.uint8:
        if array.dtype.kind not in "iu" or (array.size and (array.min() < 0 or array.max() > 255)):
            raise ValueError(f"IDX of unsigned bytes needs integers in [0, 255], got {array.dtype}")
        array = array.astype(np.uint8)
    header = bytes([0, 0, _IDX_UBYTE, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(array).tobytes()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wb") as fh:
            fh.write(payload)
    else:
        path.write_bytes(payload)
    return path


def read_idx(path: str | os.PathLike[str], ndim: int | None = None) -> np.ndarray:
    """Read an IDX file of unsigned bytes (gzip-compressed if it ends with ``.gz``).

    Args:
        path: the file.
        ndim: the number of dimensions the file must have (3 for images,
            1 for labels), or ``None`` to accept any.

    Returns:
        A writable uint8 array with the shape given in the header, values in
        [0, 255]; e.g. ``(60000, 28, 28)`` for MNIST's training images.

    Raises:
        DataError: naming the file if it cannot be read or decompressed, has
            a bad magic number (not unsigned bytes, or not ``ndim``
            dimensions), or its size does not match its header (truncated or
            with extra bytes).
    """
    path = Path(path)
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                data = fh.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot read IDX file {str(path)!r}: {exc}") from exc
    if len(data) < 4:
        raise DataError(f"IDX file {str(path)!r} is truncated: {len(data)} bytes, no header")
    magic = int.from_bytes(data[:4], "big")
    file_ndim = magic & 0xFF
    if magic >> 16 != 0 or (magic >> 8) & 0xFF != _IDX_UBYTE or file_ndim == 0:
        raise DataError(
            f"IDX file {str(path)!r} has bad magic number 0x{magic:08x} "
            "(expected 0x000008NN: unsigned bytes in NN dimensions)"
        )
    if ndim is not None and file_ndim != ndim:
        raise DataError(
            f"IDX file {str(path)!r} has magic number 0x{magic:08x} but should have 0x{0x800 | ndim:08x} ({ndim}-D)"
        )
    header_size = 4 + 4 * file_ndim
    if len(data) < header_size:
        raise DataError(
            f"IDX file {str(path)!r} is truncated: {len(data)} bytes, shorter than its {header_size}-byte header"
        )
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=file_ndim, offset=4))
    expected = math.prod(shape)
    found = len(data) - header_size
    if found < expected:
        raise DataError(
            f"IDX file {str(path)!r} is truncated: header says shape {shape} "
            f"({expected} bytes) but only {found} bytes follow"
        )
    if found > expected:
        raise DataError(
            f"IDX file {str(path)!r} does not match its header: shape {shape} "
            f"({expected} bytes) but {found} bytes follow"
        )
    return np.frombuffer(data, dtype=np.uint8, count=expected, offset=header_size).reshape(shape).copy()


def _find_idx_files(name: str, root: str | os.PathLike[str] | None, subdir: str) -> list[Path]:
    """Locate the four IDX files for ``name`` under ``root``.

    Searches ``root`` and then ``root/<subdir>/raw``; in each, a plain file
    is preferred over its ``.gz`` version. All four files must be in one
    directory.

    Returns:
        The paths of train images, train labels, test images, test labels.

    Raises:
        DataError: if ``root`` is ``None``, or no searched directory holds all
            four files (naming the missing files and the directories searched).
    """
    if root is None:
        raise DataError(
            f"data set {name!r} needs data.root: a directory holding "
            + ", ".join(f"{f}[.gz]" for f in _IDX_FILES)
            + f" (or the torchvision layout ROOT/{subdir}/raw)"
        )
    base = Path(root).expanduser()
    candidates = [base, base / subdir / "raw"]
    best_missing: list[str] | None = None
    best_dir = base
    for directory in candidates:
        found: list[Path] = []
        missing: list[str] = []
        for filename in _IDX_FILES:
            plain, packed = directory / filename, directory / f"{filename}.gz"
            if plain.is_file():
                found.append(plain)
            elif packed.is_file():
                found.append(packed)
            else:
                missing.append(filename)
        if not missing:
            return found
        if directory.is_dir() and (best_missing is None or len(missing) < len(best_missing)):
            best_missing, best_dir = missing, directory
    if best_missing is None:
        searched = " or ".join(str(d) for d in candidates)
        raise DataError(
            f"data set {name!r}: data.root {str(base)!r} holds no IDX files "
            f"({', '.join(f + '[.gz]' for f in _IDX_FILES)}): no directory {searched}"
        )
    raise DataError(
        f"data set {name!r}: missing {', '.join(f + '[.gz]' for f in best_missing)} "
        f"in {str(best_dir)!r}; searched {', '.join(str(d) for d in candidates)}"
    )


def _load_idx_dataset(
    name: str,
    subdir: str,
    root: str | os.PathLike[str] | None,
    val_fraction: float,
    seed: int,
    layout: str = "auto",
) -> Splits:
    """Load an MNIST-format data set from its four IDX files; see :func:`load_mnist`."""
    check_layout(layout)
    val_fraction = _check_fraction(val_fraction, "data.val_fraction")
    seed = _check_seed(seed)
    paths = _find_idx_files(name, root, subdir)
    train_images, train_labels, test_images, test_labels = (
        read_idx(path, ndim) for path, ndim in zip(paths, (3, 1, 3, 1), strict=True)
    )
    for images, labels, img_path, lbl_path in (
        (train_images, train_labels, paths[0], paths[1]),
        (test_images, test_labels, paths[2], paths[3]),
    ):
        if images.shape[0] != labels.shape[0]:
            raise DataError(
                f"data set {name!r}: {str(img_path)!r} has {images.shape[0]} images "
                f"but {str(lbl_path)!r} has {labels.shape[0]} labels"
            )
        if labels.size and labels.max() >= 10:
            raise DataError(
                f"data set {name!r}: {str(lbl_path)!r} has label {int(labels.max())}; labels must be in [0, 10)"
            )
    if train_images.shape[1:] != test_images.shape[1:]:
        raise DataError(
            f"data set {name!r}: {str(paths[0])!r} has images of shape {train_images.shape[1:]} "
            f"but {str(paths[2])!r} has {test_images.shape[1:]}"
        )
    scale = np.float32(255.0)
    x_train = train_images.reshape(train_images.shape[0], -1).astype(np.float32) / scale
    x_test = test_images.reshape(test_images.shape[0], -1).astype(np.float32) / scale
    splits = _build_splits(
        name,
        x_train,
        train_labels.astype(np.int64),
        x_test,
        test_labels.astype(np.int64),
        10,
        val_fraction,
        seed,
    )
    return apply_layout(splits, layout, (1, *train_images.shape[1:]))


def load_mnist(
    *,
    root: str | os.PathLike[str] | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    layout: str = "auto",
) -> Splits:
    """Load MNIST (LeCun et al. 1998) from IDX files in ``root``.

    ``root`` (or ``root/MNIST/raw``, torchvision's layout) must hold
    ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each plain or
    gzip-compressed with a ``.gz`` suffix. Inputs are scaled to [0, 1] by
    dividing by 255 and flattened to ``(rows * cols,)`` float32, i.e.
    ``(784,)``; labels are int64 in [0, 10). With ``val_fraction=0.1`` the
    real data give 54000 train, 6000 val and 10000 test images.

    Args:
        root: the directory with the IDX files.
        val_fraction: fraction of the training images held out for
            validation, in (0, 1).
        seed: seed of the validation split.
        layout: ``"auto"`` or ``"flat"`` (``(rows * cols,)``) or ``"image"``
            (``(1, rows, cols)``, e.g. ``(1, 28, 28)``; the same values).

    Returns:
        The :class:`Splits` on the CPU.

    Raises:
        ConfigError: if ``layout`` is unknown.
        DataError: if ``root`` is ``None``; a file is missing, unreadable,
            corrupt or truncated; image and label counts differ; a label is
            not in [0, 10); or ``val_fraction`` or ``seed`` is invalid.
    """
    return _load_idx_dataset("mnist", "MNIST", root, val_fraction, seed, layout)


def load_fashion_mnist(
    *,
    root: str | os.PathLike[str] | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    layout: str = "auto",
) -> Splits:
    """Load Fashion-MNIST (Xiao et al. 2017) from IDX files in ``root``.

    Same file names, format, scaling and shapes as :func:`load_mnist`; the
    torchvision layout is ``root/FashionMNIST/raw``. Inputs ``(784,)``
    float32 in [0, 1]; labels int64 in [0, 10).

    Args:
        root: the directory with the IDX files.
        val_fraction: fraction of the training images held out for
            validation, in (0, 1).
        seed: seed of the validation split.
        layout: ``"auto"``, ``"flat"`` or ``"image"`` (``(1, 28, 28)``).

    Returns:
        The :class:`Splits` on the CPU.

    Raises:
        ConfigError: if ``layout`` is unknown.
        DataError: as for :func:`load_mnist`.
    """
    return _load_idx_dataset("fashion_mnist", "FashionMNIST", root, val_fraction, seed, layout)
