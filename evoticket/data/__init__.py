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

import os
from collections.abc import Callable

from evoticket.core.errors import DataError, unknown_name
from evoticket.data.digits import DIGITS_TEST_FRACTION, DIGITS_TEST_SEED, load_digits
from evoticket.data.idx import load_fashion_mnist, load_mnist, read_idx, write_idx
from evoticket.data.mnist1d import load_mnist1d
from evoticket.data.splits import Splits, _check_fraction, stratified_split

__all__ = [
    "DATASETS",
    "DIGITS_TEST_FRACTION",
    "DIGITS_TEST_SEED",
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
