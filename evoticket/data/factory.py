"""A data set of one's own from Python code: ``data.name = "package.module:factory"``.

The named callable is called as ``factory(root)`` with ``data.root`` (a string, ``""`` when unset) and returns
either

* a mapping of arrays (NumPy arrays or tensors) named as for ``data.name = "npz"``: ``x_train``, ``y_train``,
  ``x_test``, ``y_test`` and optionally ``x_val``, ``y_val``; or
* a pair ``(train_dataset, test_dataset)`` of map-style :class:`torch.utils.data.Dataset` (anything with
  ``len()`` and ``[i]``) whose items are pairs ``(x, y)``: ``x`` a tensor or array (one input, e.g.
  ``(3, 32, 32)`` after torchvision's ``ToTensor``), ``y`` an integer class. Every item is read once, in
  order, and stacked into tensors; the validation split is then carved out of the training split.

Either way the arrays get the checks of :func:`evoticket.data.arrays.check_arrays`. The module is imported with
:func:`evoticket.core.plugins.import_object`, so it must be importable in every process that loads the run (the
resume, plot and export commands load it again).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from evoticket.core.errors import DataError
from evoticket.core.plugins import import_object
from evoticket.data.arrays import splits_from_arrays
from evoticket.data.layout import apply_layout, check_layout
from evoticket.data.splits import Splits, _check_fraction, _check_seed

_EXPECTED = (
    "a mapping of arrays (x_train, y_train, x_test, y_test[, x_val, y_val]) or a pair (train_dataset, test_dataset)"
)


def is_factory_spec(name: object) -> bool:
    """Whether a data set name is a ``"package.module:factory"`` import path (it holds a colon)."""
    return isinstance(name, str) and ":" in name


def a_type(obj: object) -> str:
    """``"an int"``, ``"a list"``: the type of ``obj`` with its article, for error messages."""
    name = type(obj).__name__
    return ("an " if name[:1].lower() in "aeiou" else "a ") + name


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def materialise(dataset: Any, what: str, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Read every item ``(x, y)`` of a map-style dataset into arrays.

    Args:
        dataset: anything with ``len()`` and ``[i]`` returning a pair ``(x, y)``.
        what: its name in errors, e.g. ``"train_dataset"``.
        source: put in front of every error, e.g. ``"data.name: 'my_pkg.data:make'"``.

    Returns:
        ``(x, y)``: the inputs stacked, ``(N, *input_shape)`` in their own dtype, and the labels ``(N,)``.

    Raises:
        DataError: one line naming the item that cannot be read, is no pair, has another input shape than item
            0, or a label that is not an integer; or a dataset without ``len()`` or with no items.
    """
    try:
        n = len(dataset)
    except Exception:
        raise DataError(f"{source}: {what} is {a_type(dataset)} without len(); {_EXPECTED}") from None
    if n == 0:
        raise DataError(f"{source}: {what} is empty; every split needs at least one example")
    xs: list[np.ndarray] = []
    ys: list[int] = []
    for i in range(n):
        try:
            item = dataset[i]
        except Exception as exc:
            raise DataError(f"{source}: {what}[{i}] raised {_one_line(exc)}") from None
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise DataError(f"{source}: {what}[{i}] is {a_type(item)}, not a pair (x, y)")
        x, y = item
        x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        if xs and x.shape != xs[0].shape:
            raise DataError(f"{source}: {what}[{i}] has input shape {x.shape} but {what}[0] has {xs[0].shape}")
        if (isinstance(y, torch.Tensor) and y.numel() == 1) or (isinstance(y, np.ndarray) and y.size == 1):
            y = y.item()  # a 0-d (or one-element) tensor or array: its number
        if isinstance(y, bool) or not isinstance(y, int | np.integer):
            raise DataError(f"{source}: {what}[{i}] has label {y!r}; labels must be integers (class indices)")
        xs.append(x)
        ys.append(int(y))
    return np.stack(xs), np.asarray(ys, dtype=np.int64)


def load_factory(
    spec: str,
    *,
    root: str | os.PathLike[str] | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    layout: str = "auto",
) -> Splits:
    """Load a data set from a ``"package.module:factory"`` callable; see the module docstring.

    Args:
        spec: the import path (``data.name``).
        root: passed to the factory as a string (``data.root``; ``""`` when ``None``).
        val_fraction: without ``x_val``, the fraction of the training split held out for validation; in (0, 1).
        seed: seed of that split.
        layout: ``"auto"`` (the arrays' own shape), ``"flat"`` or ``"image"`` (see :mod:`evoticket.data.layout`).

    Returns:
        The :class:`Splits` on the CPU, named ``spec``.

    Raises:
        ConfigError: ``data.name: ...`` if the factory cannot be imported or is not callable, or ``layout`` is
            unknown or does not fit.
        DataError: ``data.name: ...``, one line, if the factory raises or returns something else, or its data
            are refused (:func:`evoticket.data.arrays.check_arrays`).
    """
    check_layout(layout)
    val_fraction = _check_fraction(val_fraction, "data.val_fraction")
    seed = _check_seed(seed)
    factory = import_object(spec, "data.name")
    source = f"data.name: {spec!r}"
    if not callable(factory):
        raise DataError(f"{source} is {a_type(factory)}, not a callable factory(root)")
    try:
        result = factory("" if root is None else str(root))
    except Exception as exc:
        raise DataError(f"{source}: the factory raised {_one_line(exc)}") from None
    if isinstance(result, Mapping):
        arrays: Mapping[str, Any] = result
    elif isinstance(result, tuple | list) and len(result) == 2 and not isinstance(result[0], str):
        x_train, y_train = materialise(result[0], "train_dataset", source)
        x_test, y_test = materialise(result[1], "test_dataset", source)
        arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    else:
        raise DataError(f"{source}: the factory returned {a_type(result)}; expected {_EXPECTED}")
    splits = splits_from_arrays(spec, arrays, val_fraction=val_fraction, seed=seed, source=source)
    return apply_layout(splits, layout)


__all__ = ["a_type", "is_factory_spec", "load_factory", "materialise"]
