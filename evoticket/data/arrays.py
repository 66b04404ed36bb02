"""A researcher's own arrays: checked, and turned into :class:`Splits` (``data.name = "npz"`` and factories).

The arrays are named ``x_train``, ``y_train``, ``x_test``, ``y_test`` and, optionally, ``x_val`` and ``y_val``
(without them the validation split is carved out of the training split with ``data.val_fraction``, stratified
and seeded, as for every data set). Inputs may have any shape ``(N, *input_shape)`` shared by all splits and any
real numeric dtype (they are cast to float32, and must be finite); labels are 1-D integers ``(N,)``, >= 0. The
number of classes is the largest label + 1, and every label of the validation and test splits must occur in
the training split. Other arrays in the file are ignored.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evoticket.core.errors import DataError
from evoticket.data.layout import apply_layout, check_layout
from evoticket.data.splits import Splits, _build_splits, _check_fraction, _check_seed, _tensor

REQUIRED_ARRAYS = ("x_train", "y_train", "x_test", "y_test")
"""The arrays every data set of one's own must hold."""
OPTIONAL_ARRAYS = ("x_val", "y_val")
"""A validation split of one's own (both or neither); without it one is carved out of the training split."""

_WHAT = "x_train, y_train, x_test, y_test (and optionally x_val, y_val)"


def _as_array(value: object) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _describe_classes(classes: np.ndarray) -> str:
    """``0..9`` for consecutive classes from 0, else the first few, e.g. ``0, 1, 3, 7``."""
    if classes.size and classes[0] == 0 and classes[-1] == classes.size - 1:
        return f"0..{int(classes[-1])}"
    shown = ", ".join(str(int(c)) for c in classes[:10])
    return shown + (f", ... ({classes.size} classes)" if classes.size > 10 else "")


def check_arrays(arrays: Mapping[str, Any], source: str) -> tuple[dict[str, np.ndarray], int]:
    """Check a data set's arrays; see the module docstring for what is valid.

    Args:
        arrays: array name -> array (NumPy arrays, tensors or anything :func:`numpy.asarray` takes).
        source: where they come from, put in front of every error, e.g. ``"data.root: x.npz"``.

    Returns:
        ``(checked, num_classes)``: the arrays present among :data:`REQUIRED_ARRAYS` and
        :data:`OPTIONAL_ARRAYS`, inputs float32 ``(N, *input_shape)`` and labels int64 ``(N,)``; and the number of
        classes (the largest label + 1).

    Raises:
        DataError: ``SOURCE: ...``, one line naming the first array that is missing, of a wrong dtype or shape,
            empty, non-finite, of another length than its labels or inputs, of another input shape than
            ``x_train``, with a negative label, or with a label the training split never has.
    """
    names = [n for n in (*REQUIRED_ARRAYS, *OPTIONAL_ARRAYS) if n in arrays]
    for name in REQUIRED_ARRAYS:
        if name not in arrays:
            have = ", ".join(sorted(map(str, arrays))) or "none"
            raise DataError(f"{source}: no array {name}; needs {_WHAT}, has {have}")
    if ("x_val" in arrays) != ("y_val" in arrays):
        given, lacking = ("x_val", "y_val") if "x_val" in arrays else ("y_val", "x_val")
        raise DataError(f"{source}: {given} without {lacking}; give both or neither (then val is carved from train)")
    out: dict[str, np.ndarray] = {}
    for name in names:
        try:
            array = _as_array(arrays[name])
        except Exception as exc:
            raise DataError(f"{source}: {name} is not an array: {type(exc).__name__}") from None
        if name.startswith("x"):
            if array.dtype.kind not in "biuf":
                raise DataError(
                    f"{source}: {name} has dtype {array.dtype}; inputs must be real numbers (cast to float32)"
                )
            if array.ndim < 2:
                raise DataError(f"{source}: {name} has shape {array.shape}; inputs must be (N, *input_shape)")
            array = array.astype(np.float32, copy=False)
            if not np.isfinite(array).all():
                raise DataError(f"{source}: {name} holds NaN or infinite values (after the cast to float32)")
        else:
            if array.dtype.kind not in "iu":
                raise DataError(
                    f"{source}: {name} has dtype {array.dtype}; labels must be integers (class indices 0..C-1)"
                )
            if array.ndim != 1:
                raise DataError(f"{source}: {name} has shape {array.shape}; labels must be 1-D (N,)")
            if array.size and int(array.min()) < 0:
                raise DataError(f"{source}: {name} holds label {int(array.min())}; labels must be >= 0")
            if array.size and int(array.max()) >= 2**62:
                raise DataError(f"{source}: {name} holds label {int(array.max())}; too large for a class index")
            array = array.astype(np.int64, copy=False)
        if array.shape[0] == 0:
            raise DataError(f"{source}: {name} is empty; every split needs at least one example")
        out[name] = array
    for split in ("train", "val", "test"):
        if f"x_{split}" not in out:
            continue
        x, y = out[f"x_{split}"], out[f"y_{split}"]
        if x.shape[0] != y.shape[0]:
            raise DataError(f"{source}: x_{split} has {x.shape[0]} rows but y_{split} has {y.shape[0]}")
        if split != "train" and x.shape[1:] != out["x_train"].shape[1:]:
            raise DataError(
                f"{source}: x_{split} has input shape {x.shape[1:]} but x_train has {out['x_train'].shape[1:]}"
            )
    classes = np.unique(out["y_train"])
    for split in ("val", "test"):
        if f"y_{split}" in out:
            unseen = np.setdiff1d(np.unique(out[f"y_{split}"]), classes)
            if unseen.size:
                raise DataError(
                    f"{source}: y_{split} holds label {int(unseen[0])} but y_train's classes are "
                    f"{_describe_classes(classes)}"
                )
    num_classes = int(classes[-1]) + 1
    return out, num_classes


def splits_from_arrays(
    name: str,
    arrays: Mapping[str, Any],
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    source: str | None = None,
) -> Splits:
    """Check a data set's own arrays (:func:`check_arrays`) and build its :class:`Splits`.

    A plugin's loader can use this to turn arrays into splits with the same checks as ``data.name = "npz"``.

    Args:
        name: the data set's name, e.g. ``"npz"``.
        arrays: ``x_train``, ``y_train``, ``x_test``, ``y_test`` and optionally ``x_val``, ``y_val``: NumPy
            arrays or tensors, inputs ``(N, *input_shape)`` of any real dtype, labels ``(N,)`` integers >= 0.
        val_fraction: without ``x_val``, the fraction of the training split held out for validation (stratified
            and seeded); in (0, 1).
        seed: seed of that split; >= 0.
        source: put in front of every error; default ``data set NAME``.

    Returns:
        The :class:`Splits` on the CPU, inputs in their own shape, float32.

    Raises:
        DataError: for arrays :func:`check_arrays` refuses, a training split that cannot be split (a class with
            one example), or a bad ``val_fraction`` or ``seed``.
    """
    source = source if source is not None else f"data set {name!r}"
    val_fraction = _check_fraction(val_fraction, "data.val_fraction")
    seed = _check_seed(seed)
    a, num_classes = check_arrays(arrays, source)
    if "x_val" in a:
        return Splits(
            name=name,
            x_train=_tensor(a["x_train"], torch.float32),
            y_train=_tensor(a["y_train"], torch.int64),
            x_val=_tensor(a["x_val"], torch.float32),
            y_val=_tensor(a["y_val"], torch.int64),
            x_test=_tensor(a["x_test"], torch.float32),
            y_test=_tensor(a["y_test"], torch.int64),
            num_classes=num_classes,
        )
    try:
        return _build_splits(
            name, a["x_train"], a["y_train"], a["x_test"], a["y_test"], num_classes, val_fraction, seed
        )
    except DataError as exc:  # the stratified split: a class with a single example
        raise DataError(f"{source}: y_train: {exc} (or give x_val and y_val)") from None


def load_npz(
    *,
    root: str | os.PathLike[str] | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    layout: str = "auto",
) -> Splits:
    """Load a data set of one's own from the NumPy ``.npz`` file ``root`` (``data.name = "npz"``).

    The file holds ``x_train``, ``y_train``, ``x_test``, ``y_test`` and optionally ``x_val``, ``y_val`` (e.g.
    written by ``numpy.savez(path, x_train=..., ...)``); see the module docstring for what is valid. Arrays
    of Python objects are refused (the file is read with ``allow_pickle=False``).

    Args:
        root: the ``.npz`` file (``data.root``).
        val_fraction: without ``x_val``, the fraction of the training split held out for validation; in (0, 1).
        seed: seed of that split.
        layout: ``"auto"`` (the arrays' own shape), ``"flat"`` or ``"image"`` (see :mod:`evoticket.data.layout`).

    Returns:
        The :class:`Splits` on the CPU, named ``"npz"``.

    Raises:
        ConfigError: if ``layout`` is unknown or does not fit the inputs.
        DataError: ``data.root: FILE: ...``, one line, if the file is missing or unreadable, or its arrays are
            refused (:func:`check_arrays`).
    """
    check_layout(layout)
    val_fraction = _check_fraction(val_fraction, "data.val_fraction")
    seed = _check_seed(seed)
    if root is None or str(root) == "":
        raise DataError(f"data set 'npz' needs data.root: the .npz file holding {_WHAT}")
    path = Path(root).expanduser()
    source = f"data.root: {root!s}"
    if not path.exists():
        raise DataError(f"{source}: no such file; data.name = 'npz' reads a .npz file holding {_WHAT}")
    if path.is_dir():
        raise DataError(f"{source}: is a folder; data.name = 'npz' reads a .npz file holding {_WHAT}")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DataError(f"{source}: holds a single array (.npy), not an .npz archive of {_WHAT}")
        with loaded as npz:
            arrays = {key: npz[key] for key in npz.files}
    except DataError:
        raise
    except Exception as exc:  # not a zip, a damaged member, an array of Python objects, unreadable: say why
        message = str(exc).splitlines()[0] if str(exc) else ""
        raise DataError(f"{source}: cannot read it as an .npz file: {type(exc).__name__}: {message}") from None
    splits = splits_from_arrays("npz", arrays, val_fraction=val_fraction, seed=seed, source=source)
    return apply_layout(splits, layout)


__all__ = ["OPTIONAL_ARRAYS", "REQUIRED_ARRAYS", "check_arrays", "load_npz", "splits_from_arrays"]
