"""MNIST-1D, generated offline by the ``mnist1d`` package (Greydanus 2020, arXiv:2011.14439).

Generating the data set takes a few seconds (on this project's 2-core machines about 5 s, the
``mnist1d`` import included), every time a process starts. The arrays are therefore kept in a cache
file, ``$EVOTICKET_CACHE/mnist1d-<key>.npz`` (default ``~/.cache/evoticket``), whose key is the
installed ``mnist1d`` version (its default arguments are fixed per release) and, for a variant of the task,
the overridden generator arguments (``data.mnist1d``, e.g. ``{"corr_noise_scale": 0.5}``); a cached copy is
the generator's output bit for bit.
A cache file that cannot be read is regenerated; one that cannot be written is skipped.
``EVOTICKET_CACHE=off`` turns the cache off.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import os
import random
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from evoticket.config.schema import MNIST1D_ARGS, check_mnist1d_args
from evoticket.core.errors import DataError
from evoticket.core.io import atomic_open
from evoticket.data.layout import apply_layout, check_layout
from evoticket.data.splits import Splits, _build_splits, _check_fraction, _check_seed

CACHE_ENV = "EVOTICKET_CACHE"
"""Environment variable naming the cache folder (``off``: no cache)."""

_KEYS = ("x", "y", "x_test", "y_test")


def cache_dir() -> Path | None:
    """The folder of evoticket's data cache, or ``None`` when ``EVOTICKET_CACHE=off``."""
    value = os.environ.get(CACHE_ENV, "")
    if value.lower() in ("off", "0", "no", "false"):
        return None
    return Path(value) if value else Path.home() / ".cache" / "evoticket"


Overrides = tuple[tuple[str, int | float], ...]
"""Generator-argument overrides in canonical form: sorted ``(name, value)`` pairs, integers as ``int``."""


def _canonical(args: Mapping[str, float] | None) -> Overrides:
    """Check the overrides and put them in canonical form (hashable, for the caches).

    Raises:
        ConfigError: for an unknown argument or a bad value (see :func:`check_mnist1d_args`).
    """
    args = dict(args or {})
    check_mnist1d_args(args)
    return tuple(sorted((k, int(v) if MNIST1D_ARGS[k][3] else float(v)) for k, v in args.items()))


def _cache_file(overrides: Overrides = ()) -> Path | None:
    folder = cache_dir()
    if folder is None:
        return None
    import importlib.metadata

    try:  # the default arguments are fixed per release: the version is the key (no slow import of mnist1d)
        version = importlib.metadata.version("mnist1d")
    except importlib.metadata.PackageNotFoundError:
        return None
    text = f"mnist1d {version} get_dataset_args()"
    if overrides:  # the default data set keeps the key it always had
        text += " " + json.dumps(dict(overrides), sort_keys=True)
    key = hashlib.sha256(text.encode()).hexdigest()[:16]
    return folder / f"mnist1d-{key}.npz"


def _read_cache(path: Path) -> tuple[np.ndarray, ...] | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = tuple(np.array(data[k]) for k in _KEYS)
    except Exception:  # missing, truncated, not an npz: generate instead
        return None
    x, y, x_test, y_test = arrays
    if x.shape != (y.shape[0], 40) or x_test.shape != (y_test.shape[0], 40) or y.dtype != np.int64:
        return None
    return arrays


def _write_cache(path: Path, arrays: tuple[np.ndarray, ...]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "wb") as f:
            np.savez(f, **dict(zip(_KEYS, arrays, strict=True)))
    except OSError:  # a read-only or full disk: no cache, nothing else changes
        pass


@functools.lru_cache(maxsize=4)
def _mnist1d_arrays(overrides: Overrides = ()) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST-1D's arrays, generated once per process, or read from the cache file (see the module docstring).

    The generator reseeds Python's and NumPy's global random generators; their
    states are restored afterwards so that callers are not affected.

    Args:
        overrides: canonical overrides of ``get_dataset_args()`` (:func:`_canonical`); () for the default.

    Returns:
        Read-only ``(x, y, x_test, y_test)``: float64 ``(4000, 40)``, int64
        ``(4000,)``, float64 ``(1000, 40)``, int64 ``(1000,)`` with the default
        arguments (``num_samples * train_split`` and the rest with others).

    Raises:
        DataError: if the ``mnist1d`` package is not installed.
    """
    cached_at = _cache_file(overrides)
    arrays = _read_cache(cached_at) if cached_at is not None else None
    if arrays is None:
        try:
            from mnist1d.data import get_dataset_args, make_dataset
        except ImportError as exc:
            raise DataError("data set 'mnist1d' needs the mnist1d package: pip install mnist1d") from exc
        arrays = _generate(get_dataset_args, make_dataset, overrides)
        if cached_at is not None:
            _write_cache(cached_at, arrays)
    for array in arrays:
        array.setflags(write=False)
    return arrays


def _generate(get_dataset_args, make_dataset, overrides: Overrides = ()) -> tuple[np.ndarray, ...]:
    """Run the generator (with ``overrides`` set on its default arguments), the global random states saved and restored."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    args = get_dataset_args()
    for name, value in overrides:
        setattr(args, name, value)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            raw = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return (
        np.asarray(raw["x"]),
        np.asarray(raw["y"]).astype(np.int64),
        np.asarray(raw["x_test"]),
        np.asarray(raw["y_test"]).astype(np.int64),
    )


def load_mnist1d(
    *,
    root: str | os.PathLike[str] | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    args: Mapping[str, float] | None = None,
    layout: str = "auto",
) -> Splits:
    """Load MNIST-1D (Greydanus 2020, arXiv:2011.14439), generated offline.

    Inputs are the generator's values as float32, unscaled (standardised
    overall to mean 0 and standard deviation 1, roughly in [-6, 5]), shape
    ``(40,)``. With the default arguments and ``val_fraction=0.1`` the sizes
    are 3600 train, 400 val and 1000 test; 10 classes.

    Args:
        root: ignored (MNIST-1D needs no files).
        val_fraction: fraction of the training sequences (4000 by default)
            held out for validation, in (0, 1).
        seed: seed of the validation split.
        args: overrides of ``mnist1d.data.get_dataset_args()`` (``data.mnist1d``;
            names and ranges in :data:`evoticket.config.schema.MNIST1D_ARGS`),
            e.g. ``{"corr_noise_scale": 0.5, "shear_scale": 1.5}``; None or {}:
            the default data set, bit for bit.
        layout: ``"auto"`` or ``"flat"`` (``(40,)``) or ``"image"`` (one channel,
            ``(1, 40)``; the same values).

    Returns:
        The :class:`Splits` on the CPU.

    Raises:
        ConfigError: if ``args`` names an unknown argument or a value out of
            its range, or ``layout`` is unknown.
        DataError: if ``val_fraction`` or ``seed`` is invalid, or ``mnist1d``
            is not installed.
    """
    del root
    check_layout(layout)
    overrides = _canonical(args)
    val_fraction = _check_fraction(val_fraction, "data.val_fraction")
    seed = _check_seed(seed)
    x, y, x_test, y_test = _mnist1d_arrays(overrides)
    splits = _build_splits(
        "mnist1d",
        x.astype(np.float32),
        y,
        x_test.astype(np.float32),
        y_test,
        10,
        val_fraction,
        seed,
    )
    return apply_layout(splits, layout, (1, x.shape[1]))
