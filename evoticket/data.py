"""Data sets by name: loading, scaling and a seeded, stratified validation split.

Every data set loads into a :class:`Splits` on the CPU: float32 inputs,
flattened to one feature axis, and int64 class labels in ``[0, num_classes)``.
The validation split is always carved out of the *training* split (see
:func:`stratified_split`); the test split is never touched by it.

Data sets (keys of :data:`DATASETS`):

``mnist1d`` (the default)
    MNIST-1D, generated offline by the ``mnist1d`` package with its default
    arguments: 4000 training and 1000 test sequences of length 40, 10 classes.
    Source: S. Greydanus, "Scaling down deep learning", 2020,
    arXiv:2011.14439.
``digits``
    The scikit-learn hand-written digits (the UCI "Optical Recognition of
    Handwritten Digits" test set): 1797 8x8 images with values 0..16, 10
    classes. Needs the optional dependency scikit-learn.
``mnist``
    MNIST, read from the standard IDX files in a user-given directory.
    Source: Y. LeCun, L. Bottou, Y. Bengio and P. Haffner, "Gradient-based
    learning applied to document recognition", Proc. IEEE 86(11), 1998.
``fashion_mnist``
    Fashion-MNIST, read from IDX files with the same names as MNIST's.
    Source: H. Xiao, K. Rasul and R. Vollgraf, "Fashion-MNIST: a novel image
    dataset for benchmarking machine learning algorithms", 2017,
    arXiv:1708.07747.

Nothing is downloaded: MNIST-1D is generated in-process, digits ships with
scikit-learn, and the IDX files for MNIST and Fashion-MNIST must already be on
disk (either directly in ``data.root`` or in torchvision's layout
``data.root/MNIST/raw`` or ``data.root/FashionMNIST/raw``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gzip
import io
import math
import os
import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from evoticket.errors import DataError, unknown_name

__all__ = [
    "DATASETS",
    "Splits",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "load_mnist1d",
    "read_idx",
    "stratified_split",
    "write_idx",
]

#: Fraction of all digits images that form the test split.
DIGITS_TEST_FRACTION = 0.2
#: Seed of the digits test split; fixed so every run shares one test set.
DIGITS_TEST_SEED = 0

_IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_IDX_UBYTE = 0x08  # IDX type code of unsigned bytes
_SPLIT_NAMES = ("train", "val", "test")


@dataclass(frozen=True, eq=False)
class Splits:
    """A data set split into training, validation and test parts.

    Attributes:
        name: the data set's name, e.g. ``"mnist1d"``.
        x_train: training inputs, shape ``(N_train, *input_shape)``, float32.
        y_train: training labels, shape ``(N_train,)``, int64 in
            ``[0, num_classes)``.
        x_val: validation inputs, shape ``(N_val, *input_shape)``, float32.
        y_val: validation labels, shape ``(N_val,)``, int64.
        x_test: test inputs, shape ``(N_test, *input_shape)``, float32.
        y_test: test labels, shape ``(N_test,)``, int64.
        num_classes: the number of classes.

    Raises:
        DataError: (on construction) if a tensor has the wrong dtype or
            number of dimensions, inputs and labels of a split differ in
            length, the splits' input shapes differ, the tensors are on
            different devices, or ``num_classes`` is not a positive integer.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int

    def __post_init__(self) -> None:
        """Check dtypes, shapes and devices; see the class docstring."""
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int):
            raise DataError(f"data set {self.name!r}: num_classes must be an int")
        if self.num_classes < 1:
            raise DataError(f"data set {self.name!r}: num_classes must be >= 1")
        devices = set()
        for split, (x, y) in zip(_SPLIT_NAMES, self._pairs(), strict=True):
            if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
                raise DataError(f"data set {self.name!r}: {split} inputs and labels must be tensors")
            if x.dtype != torch.float32 or x.dim() < 2:
                raise DataError(
                    f"data set {self.name!r}: x_{split} must be float32 with shape (N, ...), "
                    f"got {x.dtype} {tuple(x.shape)}"
                )
            if y.dtype != torch.int64 or y.dim() != 1:
                raise DataError(
                    f"data set {self.name!r}: y_{split} must be int64 with shape (N,), got {y.dtype} {tuple(y.shape)}"
                )
            if x.shape[0] != y.shape[0]:
                raise DataError(
                    f"data set {self.name!r}: x_{split} has {x.shape[0]} rows but y_{split} has {y.shape[0]}"
                )
            if x.shape[1:] != self.x_train.shape[1:]:
                raise DataError(
                    f"data set {self.name!r}: x_{split} has input shape {tuple(x.shape[1:])}, "
                    f"x_train has {tuple(self.x_train.shape[1:])}"
                )
            devices.update((x.device, y.device))
        if len(devices) != 1:
            raise DataError(f"data set {self.name!r}: tensors are on several devices: {devices}")

    def _pairs(self) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
        return (
            (self.x_train, self.y_train),
            (self.x_val, self.y_val),
            (self.x_test, self.y_test),
        )

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one input, ``x_train.shape[1:]``, e.g. ``(40,)``."""
        return tuple(self.x_train.shape[1:])

    @property
    def device(self) -> torch.device:
        """The device that holds all six tensors."""
        return self.x_train.device

    def to(self, device: str | torch.device) -> Splits:
        """Return a copy with all six tensors moved to ``device``.

        Each tensor is moved exactly once; tensors already on ``device`` are
        shared, not copied. ``self`` is left unchanged.

        Args:
            device: the target device, e.g. ``"cpu"`` or ``"cuda:0"``.

        Returns:
            A new :class:`Splits` with the same name, data and ``num_classes``.

        Raises:
            RuntimeError: if ``device`` is not a valid or available device.
        """
        device = torch.device(device)
        moved = {
            field: getattr(self, field).to(device)
            for field in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")
        }
        return dataclasses.replace(self, **moved)

    def sizes(self) -> dict[str, int]:
        """Return the number of examples per split.

        Returns:
            ``{"train": N_train, "val": N_val, "test": N_test}``.
        """
        return {split: int(y.shape[0]) for split, (_, y) in zip(_SPLIT_NAMES, self._pairs(), strict=True)}

    def __repr__(self) -> str:
        """Summarise the splits without printing their tensors."""
        return (
            f"Splits(name={self.name!r}, sizes={self.sizes()}, input_shape={self.input_shape}, "
            f"num_classes={self.num_classes}, device={str(self.device)!r})"
        )


# ---------------------------------------------------------------------------
# Splitting


def _check_fraction(fraction: object, what: str) -> float:
    """Return ``fraction`` as a float if it lies strictly inside (0, 1).

    Raises:
        DataError: naming ``what`` if ``fraction`` is not a number in (0, 1).
    """
    if isinstance(fraction, bool) or not isinstance(fraction, int | float | np.floating):
        raise DataError(f"{what} must be a number in (0, 1), got {fraction!r}")
    value = float(fraction)
    if not 0.0 < value < 1.0:  # also rejects NaN
        raise DataError(f"{what} must be in (0, 1) (exclusive), got {fraction!r}")
    return value


def _check_seed(seed: object) -> int:
    """Return ``seed`` as an int if it is a non-negative integer.

    Raises:
        DataError: if ``seed`` is not a non-negative integer.
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise DataError(f"data.seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split example indices into a kept and a held-out part, stratified by class.

    Each class ``c`` with ``n_c`` examples sends ``floor(fraction * n_c)`` or
    ``ceil(fraction * n_c)`` of them to the held-out part, but at least 1 and
    at most ``n_c - 1``. The rounding is apportioned by largest remainder so
    that the held-out total is ``round(fraction * N)`` whenever the minimum of
    1 per class allows it (e.g. 400 of MNIST-1D's 4000 training examples for
    ``fraction=0.1``). Which examples of a class are held out is drawn with
    ``numpy.random.default_rng(seed)``, so the split is a deterministic
    function of ``(y, fraction, seed)``.

    Args:
        y: class labels, shape ``(N,)``, any integer (or otherwise sortable)
            dtype.
        fraction: the fraction to hold out, in (0, 1) exclusive.
        seed: a non-negative integer seed.

    Returns:
        ``(keep_idx, held_idx)``: sorted int64 index arrays into ``y``,
        disjoint, together exactly ``arange(N)``.

    Raises:
        DataError: if ``y`` is not 1-D, is empty, or has a class with fewer
            than 2 examples; if ``fraction`` is not in (0, 1); or if ``seed``
            is not a non-negative integer.
    """
    y = np.asarray(y)
    fraction = _check_fraction(fraction, "split fraction")
    seed = _check_seed(seed)
    if y.ndim != 1 or y.shape[0] == 0:
        raise DataError(f"cannot split labels of shape {y.shape}: need a non-empty 1-D array")
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    if (counts < 2).any():
        k = int(np.argmin(counts))
        raise DataError(
            f"cannot split: class {classes[k]!r} has only {counts[k]} example; every class needs at least 2"
        )
    exact = fraction * counts
    floors = np.floor(exact).astype(np.int64)
    held_counts = np.clip(floors, 1, counts - 1)
    target = math.floor(fraction * y.shape[0] + 0.5)
    short = target - int(held_counts.sum())
    if short > 0:
        # round up the classes with the largest remainders (ties: lower class
        # first), skipping those already raised to the minimum of 1 or full
        by_remainder = np.argsort(-(exact - floors), kind="stable")
        eligible = (held_counts == floors) & (held_counts < counts - 1)
        held_counts[by_remainder[eligible[by_remainder]][:short]] += 1

    rng = np.random.default_rng(seed)
    held_parts = [rng.permutation(np.flatnonzero(inverse == k))[: held_counts[k]] for k in range(len(classes))]
    held_idx = np.sort(np.concatenate(held_parts)).astype(np.int64)
    keep_mask = np.ones(y.shape[0], dtype=bool)
    keep_mask[held_idx] = False
    keep_idx = np.flatnonzero(keep_mask).astype(np.int64)
    return keep_idx, held_idx


def _tensor(array: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """Return a contiguous CPU tensor of ``dtype`` holding ``array``'s values.

    Read-only arrays (such as the cached MNIST-1D arrays) are copied first, so
    the tensor never aliases them.
    """
    array = np.ascontiguousarray(array)
    if not array.flags.writeable:
        array = array.copy()
    return torch.from_numpy(array).to(dtype).contiguous()


def _build_splits(
    name: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    num_classes: int,
    val_fraction: float,
    seed: int,
) -> Splits:
    """Carve a stratified validation split out of the training data.

    Args:
        name: the data set's name.
        x_train: training inputs, shape ``(N, ...)``, float32.
        y_train: training labels, shape ``(N,)``, integers in
            ``[0, num_classes)``.
        x_test: test inputs, shape ``(M, ...)``, float32.
        y_test: test labels, shape ``(M,)``.
        num_classes: the number of classes.
        val_fraction: the fraction of the training data that becomes the
            validation split.
        seed: the split's seed.

    Returns:
        The :class:`Splits` on the CPU.

    Raises:
        DataError: if the split is impossible (see :func:`stratified_split`).
    """
    keep, held = stratified_split(y_train, val_fraction, seed)
    return Splits(
        name=name,
        x_train=_tensor(x_train[keep], torch.float32),
        y_train=_tensor(y_train[keep], torch.int64),
        x_val=_tensor(x_train[held], torch.float32),
        y_val=_tensor(y_train[held], torch.int64),
        x_test=_tensor(x_test, torch.float32),
        y_test=_tensor(y_test, torch.int64),
        num_classes=num_classes,
    )


# ---------------------------------------------------------------------------
# MNIST-1D


@functools.lru_cache(maxsize=1)
def _mnist1d_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Generate MNIST-1D once per process (about 1 s) and cache it.

    The generator reseeds Python's and NumPy's global random generators; their
    states are restored afterwards so that callers are not affected.

    Returns:
        Read-only ``(x, y, x_test, y_test)``: float64 ``(4000, 40)``, int64
        ``(4000,)``, float64 ``(1000, 40)``, int64 ``(1000,)``.

    Raises:
        DataError: if the ``mnist1d`` package is not installed.
    """
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as exc:
        raise DataError("data set 'mnist1d' needs the mnist1d package: pip install mnist1d") from exc
    np_state = np.random.get_state()
    py_state = random.getstate()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            raw = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    arrays = (
        np.asarray(raw["x"]),
        np.asarray(raw["y"]).astype(np.int64),
        np.asarray(raw["x_test"]),
        np.asarray(raw["y_test"]).astype(np.int64),
    )
    for array in arrays:
        array.setflags(write=False)
    return arrays


def load_mnist1d(
    *,
    root: str | os.PathLike[str] | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> Splits:
    """Load MNIST-1D (Greydanus 2020), generated offline with default arguments.

    Inputs are the generator's values as float32, unscaled (standardised
    overall to mean 0 and standard deviation 1, roughly in [-6, 5]), shape
    ``(40,)``. With ``val_fraction=0.1`` the sizes are 3600 train, 400 val and
    1000 test; 10 classes.

    Args:
        root: ignored (MNIST-1D needs no files).
        val_fraction: fraction of the 4000 training sequences held out for
            validation, in (0, 1).
        seed: seed of the validation split.

    Returns:
        The :class:`Splits` on the CPU.

    Raises:
        DataError: if ``val_fraction`` or ``seed`` is invalid, or ``mnist1d``
            is not installed.
    """
    del root
    val_fraction = _check_fraction(val_fraction, "data.val_fraction")
    seed = _check_seed(seed)
    x, y, x_test, y_test = _mnist1d_arrays()
    return _build_splits(
        "mnist1d",
        x.astype(np.float32),
        y,
        x_test.astype(np.float32),
        y_test,
        10,
        val_fraction,
        seed,
    )


# ---------------------------------------------------------------------------
# scikit-learn digits


def load_digits(
    *,
    root: str | os.PathLike[str] | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> Splits:
    """Load scikit-learn's 8x8 hand-written digits.

    Inputs are scaled to [0, 1] by dividing by 16 and flattened to ``(64,)``
    float32. The 1797 images have no official test split: a stratified 20 %
    (359 images) becomes the test split with the fixed seed
    :data:`DIGITS_TEST_SEED`, so all runs share one test set; then
    ``val_fraction`` of the remaining 1438 is held out for validation with
    ``seed`` (144 images for 0.1, leaving 1294 for training). 10 classes.

    Args:
        root: ignored (the data ship with scikit-learn).
        val_fraction: fraction of the non-test images held out for
            validation, in (0, 1).
        seed: seed of the validation split.

    Returns:
        The :class:`Splits` on the CPU.

    Raises:
        DataError: if scikit-learn is not installed, or ``val_fraction`` or
            ``seed`` is invalid.
    """
    del root
    val_fraction = _check_fraction(val_fraction, "data.val_fraction")
    seed = _check_seed(seed)
    try:
        from sklearn.datasets import load_digits as sklearn_load_digits
    except ImportError as exc:
        raise DataError("data set 'digits' needs scikit-learn: pip install 'evoticket[digits]'") from exc
    bunch = sklearn_load_digits()
    x = (np.asarray(bunch.data, dtype=np.float32) / np.float32(16.0)).reshape(-1, 64)
    y = np.asarray(bunch.target).astype(np.int64)
    rest, test = stratified_split(y, DIGITS_TEST_FRACTION, DIGITS_TEST_SEED)
    return _build_splits("digits", x[rest], y[rest], x[test], y[test], 10, val_fraction, seed)


# ---------------------------------------------------------------------------
# IDX files (MNIST, Fashion-MNIST)


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
        ``path`` as a :class:`~pathlib.Path`.

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
) -> Splits:
    """Load an MNIST-format data set from its four IDX files; see :func:`load_mnist`."""
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
    return _build_splits(
        name,
        x_train,
        train_labels.astype(np.int64),
        x_test,
        test_labels.astype(np.int64),
        10,
        val_fraction,
        seed,
    )


def load_mnist(
    *,
    root: str | os.PathLike[str] | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
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

    Returns:
        The :class:`Splits` on the CPU.

    Raises:
        DataError: if ``root`` is ``None``; a file is missing, unreadable,
            corrupt or truncated; image and label counts differ; a label is
            not in [0, 10); or ``val_fraction`` or ``seed`` is invalid.
    """
    return _load_idx_dataset("mnist", "MNIST", root, val_fraction, seed)


def load_fashion_mnist(
    *,
    root: str | os.PathLike[str] | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
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

    Returns:
        The :class:`Splits` on the CPU.

    Raises:
        DataError: as for :func:`load_mnist`.
    """
    return _load_idx_dataset("fashion_mnist", "FashionMNIST", root, val_fraction, seed)


# ---------------------------------------------------------------------------
# Registry

#: Loaders by data set name. Each takes keyword arguments ``root``,
#: ``val_fraction`` and ``seed`` and returns a :class:`Splits` on the CPU.
DATASETS: dict[str, Callable[..., Splits]] = {
    "mnist1d": load_mnist1d,
    "digits": load_digits,
    "mnist": load_mnist,
    "fashion_mnist": load_fashion_mnist,
}


def load_dataset(
    name: str,
    *,
    root: str | os.PathLike[str] | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> Splits:
    """Look up ``name`` in :data:`DATASETS` and load it on CPU.

    Args:
        name: a key of :data:`DATASETS`: ``"mnist1d"``, ``"digits"``,
            ``"mnist"`` or ``"fashion_mnist"``.
        root: directory of the IDX files (needed by ``mnist`` and
            ``fashion_mnist``; ignored by the others).
        val_fraction: fraction of the training split held out for
            validation, in (0, 1) exclusive.
        seed: seed of the stratified validation split.

    Returns:
        The :class:`Splits`: contiguous CPU tensors, float32 inputs and int64
        labels in ``[0, num_classes)``.

    Raises:
        DataError: if ``name`` is unknown (with a "did you mean" hint),
            ``val_fraction`` is not in (0, 1), or the data set cannot be
            found, read or split.
    """
    loader = DATASETS.get(name) if isinstance(name, str) else None
    if loader is None:
        raise DataError(unknown_name("data set", name, DATASETS))
    val_fraction = _check_fraction(val_fraction, "data.val_fraction")
    return loader(root=root, val_fraction=val_fraction, seed=seed)
