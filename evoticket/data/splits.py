"""The :class:`Splits` container and the seeded, stratified validation split every data set uses.

Every data set loads into a :class:`Splits` on the CPU: float32 inputs of any shape ``(N, *input_shape)``
(flat vectors ``(F,)`` or channels-first images ``(C, H, W)``, see ``data.layout``), and int64 class labels in
``[0, num_classes)``. The validation split is always carved out of the *training* split (:func:`stratified_split`);
the test split is never touched.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch

from evoticket.core.errors import DataError
from evoticket.data.augment import AUGMENTATIONS

_SPLIT_NAMES = ("train", "val", "test")


@dataclass(frozen=True, eq=False)
class Splits:
    """A data set split into training, validation and test parts.

    Inputs have any shape ``(N, *input_shape)`` shared by the three splits: flat vectors, e.g. ``(N, 40)`` for
    MNIST-1D, or channels-first images, e.g. ``(N, 3, 32, 32)`` for CIFAR-10 (``data.layout``).

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
        augment: the augmentation the training loop applies to training minibatches
            (:func:`evoticket.data.augment.augment_batch`): ``"none"`` or ``"crop_flip"`` (images
            ``(C, H, W)`` only); the tensors themselves are never augmented.

    Raises:
        DataError: (on construction) if a tensor has the wrong dtype or
            number of dimensions, inputs and labels of a split differ in
            length, the splits' input shapes differ, the tensors are on
            different devices, ``num_classes`` is not a positive integer,
            or ``augment`` is unknown or needs images the inputs are not.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    augment: str = "none"

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
        if self.augment not in AUGMENTATIONS:
            raise DataError(
                f"data set {self.name!r}: unknown augment {self.augment!r}; valid: {', '.join(AUGMENTATIONS)}"
            )
        if self.augment != "none" and self.x_train.dim() != 4:
            raise DataError(
                f"data set {self.name!r}: augment {self.augment!r} needs images (C, H, W), "
                f"got input shape {tuple(self.x_train.shape[1:])}"
            )

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
            A new :class:`Splits` with the same name, data, ``num_classes`` and ``augment``.

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
            f"num_classes={self.num_classes}, device={str(self.device)!r}"
            + (f", augment={self.augment!r})" if self.augment != "none" else ")")
        )


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
            f"cannot split: class {classes[k].item()!r} has only {counts[k]} example; every class needs at least 2"
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
