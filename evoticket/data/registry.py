"""Data sets by name: the built-in ones, those registered in-process, plugins, and ``package.module:factory``.

A name (``data.name``) is looked up in this order:

1. a name with a colon, ``"package.module:factory"``, is a factory of one's own (:mod:`evoticket.data.factory`);
2. :data:`DATASETS`: the built-in data sets (:data:`BUILTINS`) and those added with :func:`register`;
3. the entry points of the group ``evoticket.datasets`` of every installed distribution, read only when the
   name is none of the above (:mod:`evoticket.core.plugins`).

A registered or plugin data set is a loader with the built-in loaders' signature,
``loader(*, root, val_fraction, seed) -> Splits`` (``root`` is ``data.root`` or ``None``);
:func:`evoticket.data.splits_from_arrays` turns arrays into :class:`Splits` with the checks of ``npz``.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from evoticket.core.errors import ConfigError, DataError, unknown_name
from evoticket.core.plugins import entry_point_names, import_object, load_entry_point
from evoticket.data.arrays import load_npz
from evoticket.data.augment import AUGMENTATIONS
from evoticket.data.cifar import load_cifar10, load_cifar100
from evoticket.data.digits import load_digits
from evoticket.data.factory import a_type, is_factory_spec, load_factory
from evoticket.data.idx import load_fashion_mnist, load_mnist
from evoticket.data.layout import apply_layout, check_layout
from evoticket.data.mnist1d import load_mnist1d
from evoticket.data.splits import Splits, _check_fraction

if TYPE_CHECKING:
    from evoticket.config.schema import DataConfig

Loader = Callable[..., Splits]
"""``loader(*, root, val_fraction, seed) -> Splits``; the built-in ones also take ``layout``."""

PLUGIN_GROUP = "evoticket.datasets"
"""The entry-point group whose names are data sets."""

BUILTINS: dict[str, Loader] = {
    "mnist1d": load_mnist1d,
    "digits": load_digits,
    "mnist": load_mnist,
    "fashion_mnist": load_fashion_mnist,
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "npz": load_npz,
}
"""The built-in data sets: name -> loader (each also takes ``layout``)."""

DATASETS: dict[str, Loader] = dict(BUILTINS)
"""Loaders by data set name: the built-in ones and those added with :func:`register` (not the plugins, which
are looked up when a name is none of these). Each takes keyword arguments ``root``, ``val_fraction`` and
``seed`` and returns a :class:`Splits` on the CPU."""

IMAGE_DATASETS: dict[str, str] = {
    "cifar10": "native",
    "cifar100": "native",
    "digits": "(1, 8, 8)",
    "mnist": "(1, 28, 28)",
    "fashion_mnist": "(1, 28, 28)",
}
"""Built-in data sets that are images: ``native`` ones are images with ``data.layout = "auto"``, the others only
with ``"image"`` (their shape as images). MNIST-1D's ``"image"`` is a one-channel sequence ``(1, 40)``."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_FACTORY_HINT = ", or a 'package.module:factory' of your own"


def register(name: str, loader: Loader, *, replace: bool = False) -> Loader:
    """Add a data set to :data:`DATASETS` for this process (``data.name = name``).

    For every process, declare an entry point in the group ``evoticket.datasets`` instead.

    Args:
        name: letters, digits, ``.``, ``_`` and ``-``, starting with a letter or digit (it starts the run
            directory's default name); not a built-in name.
        loader: ``loader(*, root, val_fraction, seed) -> Splits`` on the CPU.
        replace: allow replacing a data set registered under ``name`` before.

    Returns:
        ``loader``.

    Raises:
        ValueError: for a name that is not a plain file name or is built in, a loader that is not callable, or
            a name taken by another loader without ``replace``.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"data set name {name!r}: use letters, digits, '.', '_' and '-', starting with a letter or digit"
        )
    if name in BUILTINS:
        raise ValueError(f"data set {name!r} is built in; register yours under another name")
    if not callable(loader):
        raise ValueError(f"data set {name!r}: the loader must be callable, got {type(loader).__name__}")
    if name in DATASETS and DATASETS[name] is not loader and not replace:
        raise ValueError(f"data set {name!r} is registered already (replace=True to replace it)")
    DATASETS[name] = loader
    return loader


def dataset_names() -> list[str]:
    """Every data set name known now: built-in, registered and plugin names, sorted (factories aside)."""
    return sorted(set(DATASETS) | set(entry_point_names(PLUGIN_GROUP)))


def _unknown(name: object) -> str:
    return unknown_name("data set", str(name), dataset_names()) + _FACTORY_HINT


def check_data_name(name: object) -> None:
    """Check ``data.name`` without loading any data (a factory's module is imported).

    Raises:
        ConfigError: ``data.name: unknown data set ... (did you mean ...); valid: ...``, or for a
            ``package.module:factory`` that cannot be imported or is not callable.
    """
    if is_factory_spec(name):
        factory = import_object(str(name), "data.name")
        if not callable(factory):
            raise ConfigError(f"data.name: {name!r} is {a_type(factory)}, not a callable factory(root)")
        return
    if not isinstance(name, str) or not name:
        raise ConfigError("data.name: " + _unknown(name))
    if name in DATASETS or name in entry_point_names(PLUGIN_GROUP):
        return
    raise ConfigError("data.name: " + _unknown(name))


def check_augment(name: str, layout: str, augment: str) -> None:
    """Refuse, before loading, an augmentation the inputs cannot take (``data.augment`` against ``data.layout``).

    Checked here: ``crop_flip`` with ``layout = "flat"``, with MNIST-1D, and with a built-in data set of flat
    vectors under ``layout = "auto"``; the other data sets' shapes are checked once loaded (:func:`with_augment`).

    Raises:
        ConfigError: naming ``data.augment`` and what would be valid.
    """
    check_layout(layout)
    if augment not in AUGMENTATIONS:
        raise ConfigError("data.augment: " + unknown_name("augmentation", str(augment), AUGMENTATIONS))
    if augment == "none":
        return
    if layout == "flat":
        raise ConfigError(
            f"data.augment: {augment!r} needs images (C, H, W), but data.layout = 'flat' gives vectors; "
            "use data.layout = 'image' (or 'auto' for an image data set) or data.augment = 'none'"
        )
    if name == "mnist1d":
        raise ConfigError(
            f"data.augment: {augment!r} needs images (C, H, W); mnist1d holds sequences ((40,), or (1, 40) "
            "with data.layout = 'image'); use data.augment = 'none'"
        )
    if layout == "auto" and IMAGE_DATASETS.get(name, "native") != "native":
        raise ConfigError(
            f"data.augment: {augment!r} needs images (C, H, W), but data set {name!r} is flat vectors with "
            f"data.layout = 'auto'; use data.layout = 'image' (images {IMAGE_DATASETS[name]})"
        )


def with_augment(splits: Splits, augment: str) -> Splits:
    """``splits`` with ``augment`` recorded (the training loop applies it to training minibatches).

    Returns:
        ``splits`` itself if it records ``augment`` already, else a copy sharing its tensors.

    Raises:
        ConfigError: naming ``data.augment`` for an unknown augmentation or inputs that are no images.
    """
    if augment not in AUGMENTATIONS:
        raise ConfigError("data.augment: " + unknown_name("augmentation", str(augment), AUGMENTATIONS))
    if splits.augment == augment:
        return splits
    if augment != "none" and splits.x_train.dim() != 4:
        fix = "data.layout = 'image' or " if len(splits.input_shape) == 2 else ""  # (H, W) -> (1, H, W)
        raise ConfigError(
            f"data.augment: {augment!r} needs images (C, H, W), but data set {splits.name!r} has input shape "
            f"{splits.input_shape}; use {fix}data.augment = 'none'"
        )
    return dataclasses.replace(splits, augment=augment)


def _find_loader(name: str) -> tuple[Loader, bool]:
    """The loader of a name and whether it is built in (and so takes ``layout``).

    Raises:
        DataError: for an unknown name (with a "did you mean" hint and the valid names).
        ConfigError: for a plugin that cannot be imported.
    """
    if name in BUILTINS and DATASETS.get(name) is BUILTINS[name]:
        return BUILTINS[name], True
    if name in DATASETS:
        return DATASETS[name], False
    plugin = load_entry_point(PLUGIN_GROUP, name)
    if plugin is None:
        raise DataError(_unknown(name))
    if not callable(plugin):
        raise ConfigError(
            f"data.name: plugin {name!r} ({PLUGIN_GROUP}) is {a_type(plugin)}, not a loader "
            "(loader(*, root, val_fraction, seed) -> Splits)"
        )
    return plugin, False


def load_dataset(
    name: str,
    *,
    root: str | os.PathLike[str] | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    layout: str = "auto",
    augment: str = "none",
) -> Splits:
    """Load a data set by name (see the module docstring for the lookup) on the CPU.

    Args:
        name: a built-in name (``"mnist1d"``, ``"digits"``, ``"mnist"``, ``"fashion_mnist"``, ``"cifar10"``,
            ``"cifar100"``, ``"npz"``), a registered or plugin name, or ``"package.module:factory"``.
        root: ``data.root``: the folder of the IDX files (``mnist``, ``fashion_mnist``) or of the CIFAR batches,
            the ``.npz`` file (``npz``), the factory's argument; ignored by ``mnist1d`` and ``digits``.
        val_fraction: fraction of the training split held out for validation, in (0, 1) exclusive.
        seed: seed of the stratified validation split.
        layout: ``"auto"`` (the data set's own shape), ``"flat"`` or ``"image"`` (:mod:`evoticket.data.layout`).
        augment: ``"none"`` or ``"crop_flip"`` (images only), recorded as ``Splits.augment``.

    Returns:
        The :class:`Splits`: contiguous CPU tensors, float32 inputs ``(N, *input_shape)`` and int64 labels in
        ``[0, num_classes)``. With ``layout="auto"`` and ``augment="none"`` a built-in data set is exactly
        what its loader returns.

    Raises:
        DataError: if ``name`` is unknown (with a "did you mean" hint), ``val_fraction`` is not in (0, 1), the
            data set cannot be found, read or split, or a loader returns something else than a :class:`Splits`.
        ConfigError: for an unknown ``layout`` or ``augment``, an augmentation the inputs cannot take, or a
            factory or plugin that cannot be imported.
    """
    if not isinstance(name, str):
        raise DataError(_unknown(name))
    check_augment(name, layout, augment)
    if is_factory_spec(name):
        splits = load_factory(name, root=root, val_fraction=val_fraction, seed=seed, layout=layout)
        return with_augment(splits, augment)
    loader, builtin = _find_loader(name)
    val_fraction = _check_fraction(val_fraction, "data.val_fraction")
    if builtin:
        splits = loader(root=root, val_fraction=val_fraction, seed=seed, layout=layout)
    else:
        splits = loader(root=root, val_fraction=val_fraction, seed=seed)
        if not isinstance(splits, Splits):
            raise DataError(f"data set {name!r}: its loader returned {a_type(splits)}, not an evoticket.data.Splits")
        splits = apply_layout(splits, layout)
    return with_augment(splits, augment)


def check_data_config(data: DataConfig) -> None:
    """Every check of the ``[data]`` section that needs the registries, before any data are loaded.

    Raises:
        ConfigError: for an unknown ``data.name``, ``data.mnist1d`` with another data set, or a
            ``data.augment`` that ``data.layout`` or the data set cannot take.
    """
    check_data_name(data.name)
    if data.mnist1d and data.name != "mnist1d":
        raise ConfigError(
            f"data.mnist1d: MNIST-1D's generator arguments need data.name = 'mnist1d', got {data.name!r} "
            "(or data.mnist1d = {})"
        )
    check_augment(data.name, data.layout, data.augment)


def load_data(data: DataConfig) -> Splits:
    """Load the data set a ``[data]`` section names, with its layout, augmentation and MNIST-1D arguments.

    Args:
        data: the configuration's ``data`` section.

    Returns:
        The :class:`Splits` on the CPU.

    Raises:
        ConfigError: as :func:`check_data_config`.
        DataError: as :func:`load_dataset`.
    """
    check_data_config(data)
    if data.mnist1d:  # a variant of MNIST-1D, generated with its own arguments
        splits = load_mnist1d(val_fraction=data.val_fraction, seed=data.seed, args=data.mnist1d, layout=data.layout)
        return with_augment(splits, data.augment)
    return load_dataset(
        data.name,
        root=data.root or None,
        val_fraction=data.val_fraction,
        seed=data.seed,
        layout=data.layout,
        augment=data.augment,
    )


__all__ = [
    "BUILTINS",
    "DATASETS",
    "IMAGE_DATASETS",
    "PLUGIN_GROUP",
    "Loader",
    "check_augment",
    "check_data_config",
    "check_data_name",
    "dataset_names",
    "load_data",
    "load_dataset",
    "register",
    "with_augment",
]
