"""Data sets by name: loading, scaling, a seeded, stratified validation split, layouts and augmentation.

Every data set loads into a :class:`Splits` on the CPU: float32 inputs of any shape ``(N, *input_shape)``
and int64 class labels in ``[0, num_classes)``. The validation split is always carved out of the *training*
split (see :func:`stratified_split`), unless one's own arrays bring their own; the test split is never touched
by it. ``data.layout`` (:mod:`evoticket.data.layout`) chooses the inputs' shape: ``auto`` (each data set's own,
below), ``flat`` (one axis) or ``image`` (channels first). ``data.augment`` (:mod:`evoticket.data.augment`)
records on the splits an augmentation of training minibatches: ``none`` or ``crop_flip`` (images only).

Built-in data sets (keys of :data:`BUILTINS`):

``mnist1d`` (the default)
    MNIST-1D, generated offline by the ``mnist1d`` package with its default
    arguments: 4000 training and 1000 test sequences of length 40, 10 classes;
    inputs ``(40,)`` (``image``: ``(1, 40)``).
    Source: S. Greydanus, "Scaling down deep learning", 2020,
    arXiv:2011.14439.
``digits``
    The scikit-learn hand-written digits (the UCI "Optical Recognition of
    Handwritten Digits" test set): 1797 8x8 images with values 0..16, 10
    classes; inputs ``(64,)`` (``image``: ``(1, 8, 8)``). Needs the optional
    dependency scikit-learn.
``mnist``
    MNIST, read from the standard IDX files in a user-given directory; inputs
    ``(784,)`` (``image``: ``(1, 28, 28)``).
    Source: Y. LeCun, L. Bottou, Y. Bengio and P. Haffner, "Gradient-based
    learning applied to document recognition", Proc. IEEE 86(11), 1998.
``fashion_mnist``
    Fashion-MNIST, read from IDX files with the same names as MNIST's.
    Source: H. Xiao, K. Rasul and R. Vollgraf, "Fashion-MNIST: a novel image
    dataset for benchmarking machine learning algorithms", 2017,
    arXiv:1708.07747.
``cifar10``, ``cifar100``
    CIFAR-10 and CIFAR-100 (fine labels), read from the official Python pickle
    batches; images ``(3, 32, 32)`` standardised per channel (``flat``:
    ``(3072,)``). Source: A. Krizhevsky, "Learning multiple layers of features
    from tiny images", technical report, University of Toronto, 2009.
``npz``
    One's own arrays from the ``.npz`` file ``data.root`` (:mod:`evoticket.data.arrays`).

Besides these, ``data.name`` may be ``"package.module:factory"``, a function of one's own that returns arrays
or a pair of torch Datasets (:mod:`evoticket.data.factory`), a name added with :func:`register`, or a name an
installed package declares in the entry-point group ``evoticket.datasets`` (:mod:`evoticket.data.registry`).

Nothing is downloaded: MNIST-1D is generated in-process, digits ships with
scikit-learn, and the IDX files for MNIST and Fashion-MNIST must already be on
disk (either directly in ``data.root`` or in torchvision's layout
``data.root/MNIST/raw`` or ``data.root/FashionMNIST/raw``), as must the CIFAR
batches (in ``data.root/cifar-10-batches-py`` or ``data.root/cifar-100-python``,
torchvision's layout, or directly in ``data.root``).
"""

from __future__ import annotations

from evoticket.data.arrays import check_arrays, load_npz, splits_from_arrays
from evoticket.data.augment import AUGMENTATIONS, CROP_PADDING, augment_batch
from evoticket.data.cifar import load_cifar10, load_cifar100
from evoticket.data.digits import DIGITS_TEST_FRACTION, DIGITS_TEST_SEED, load_digits
from evoticket.data.factory import load_factory
from evoticket.data.idx import load_fashion_mnist, load_mnist, read_idx, write_idx
from evoticket.data.layout import LAYOUTS, apply_layout
from evoticket.data.mnist1d import load_mnist1d
from evoticket.data.registry import (
    BUILTINS,
    DATASETS,
    PLUGIN_GROUP,
    check_data_config,
    check_data_name,
    dataset_names,
    load_data,
    load_dataset,
    register,
    with_augment,
)
from evoticket.data.splits import Splits, stratified_split

__all__ = [
    "AUGMENTATIONS",
    "BUILTINS",
    "CROP_PADDING",
    "DATASETS",
    "DIGITS_TEST_FRACTION",
    "DIGITS_TEST_SEED",
    "LAYOUTS",
    "PLUGIN_GROUP",
    "Splits",
    "apply_layout",
    "augment_batch",
    "check_arrays",
    "check_data_config",
    "check_data_name",
    "dataset_names",
    "load_cifar10",
    "load_cifar100",
    "load_data",
    "load_dataset",
    "load_digits",
    "load_factory",
    "load_fashion_mnist",
    "load_mnist",
    "load_mnist1d",
    "load_npz",
    "read_idx",
    "register",
    "splits_from_arrays",
    "stratified_split",
    "with_augment",
    "write_idx",
]
