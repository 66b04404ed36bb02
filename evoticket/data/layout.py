"""The shape of one input (``data.layout``): the data set's own, flat vectors, or channels-first images.

``auto`` keeps each data set's own shape: images ``(3, 32, 32)`` for CIFAR, flat vectors for MNIST-1D ``(40,)``,
digits ``(64,)`` and (Fashion-)MNIST ``(784,)``, and the arrays' own shape for ``npz`` and a
``package.module:factory``. ``flat`` flattens every input to one axis (channels first: ``(C * H * W,)``).
``image`` gives channels-first images: each built-in data set knows its own (digits ``(1, 8, 8)``, MNIST
``(1, 28, 28)``, MNIST-1D ``(1, 40)``); other data get a channel axis in front of 1-D ``(L,) -> (1, L)`` and
2-D ``(H, W) -> (1, H, W)`` inputs, and keep 3-D ``(C, H, W)`` ones. Only the shape changes, never a value:
the tensors are reshaped views of the same memory, in the same order.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from evoticket.core.errors import ConfigError, unknown_name
from evoticket.data.splits import Splits

LAYOUTS = ("auto", "flat", "image")
"""The values of ``data.layout``."""


def check_layout(layout: object) -> str:
    """Return ``layout`` if it is one of :data:`LAYOUTS`.

    Raises:
        ConfigError: ``data.layout: unknown layout ...; valid: auto, flat, image``.
    """
    if not isinstance(layout, str) or layout not in LAYOUTS:
        raise ConfigError("data.layout: " + unknown_name("layout", str(layout), LAYOUTS))
    return layout


def image_shape_of(input_shape: Sequence[int]) -> tuple[int, ...]:
    """The channels-first image shape ``layout = "image"`` gives inputs of ``input_shape`` (no data set's own).

    Args:
        input_shape: the shape of one input, e.g. ``(40,)``, ``(28, 28)`` or ``(3, 32, 32)``.

    Returns:
        ``(1, L)`` for ``(L,)``, ``(1, H, W)`` for ``(H, W)``, ``(C, H, W)`` unchanged.

    Raises:
        ConfigError: for inputs of more than 3 axes, which are no image.
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) <= 2:
        return (1, *shape)
    if len(shape) == 3:
        return shape
    raise ConfigError(
        f"data.layout: 'image' needs inputs of 1 to 3 axes ((L,), (H, W) or (C, H, W)), got input shape {shape}; "
        "use data.layout = 'auto' or 'flat'"
    )


def apply_layout(splits: Splits, layout: str, image_shape: Sequence[int] | None = None) -> Splits:
    """Reshape every split's inputs to ``layout``.

    Args:
        splits: the data, in their own (``auto``) shape.
        layout: one of :data:`LAYOUTS`.
        image_shape: the data set's own image shape for ``image`` (e.g. ``(1, 8, 8)`` for digits), with as many
            values as the inputs; ``None``: :func:`image_shape_of` the inputs' shape.

    Returns:
        ``splits`` itself for ``auto`` (and whenever the shape does not change), else a copy whose inputs are
        ``(N, *shape)`` views of the same tensors; names, labels, ``num_classes`` and ``augment`` are kept.

    Raises:
        ConfigError: for an unknown layout, or an ``image`` shape that does not fit the inputs.
    """
    layout = check_layout(layout)
    shape = splits.input_shape
    if layout == "auto":
        return splits
    if layout == "flat":
        target: tuple[int, ...] = (math.prod(shape),)
    else:
        target = tuple(int(s) for s in image_shape) if image_shape is not None else image_shape_of(shape)
        if math.prod(target) != math.prod(shape):
            raise ConfigError(
                f"data.layout: image shape {target} does not fit data set {splits.name!r}'s input shape {shape}"
            )
    if target == shape:
        return splits
    moved = {}
    for split in ("train", "val", "test"):
        x = getattr(splits, f"x_{split}")
        moved[f"x_{split}"] = x.reshape(x.shape[0], *target).contiguous()
    return dataclasses.replace(splits, **moved)


__all__ = ["LAYOUTS", "apply_layout", "check_layout", "image_shape_of"]
