"""MNIST-1D, generated offline by the ``mnist1d`` package (Greydanus 2020, arXiv:2011.14439)."""

from __future__ import annotations

import contextlib
import functools
import io
import os
import random

import numpy as np

from evoticket.core.errors import DataError
from evoticket.data.splits import Splits, _build_splits, _check_fraction, _check_seed


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
