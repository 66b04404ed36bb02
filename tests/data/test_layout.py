"""Tests of data.layout: auto (each data set's own), flat and image, values unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from evoticket.core.errors import ConfigError
from evoticket.data.digits import load_digits
from evoticket.data.idx import load_mnist, write_idx
from evoticket.data.layout import LAYOUTS, apply_layout, image_shape_of
from evoticket.data.mnist1d import load_mnist1d
from evoticket.data.splits import Splits

FIELDS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


def _same_values(a: Splits, b: Splits) -> None:
    """Equal labels, and inputs equal once flattened, in the same order."""
    for field in FIELDS:
        x, y = getattr(a, field), getattr(b, field)
        assert x.is_contiguous() and y.is_contiguous()
        assert torch.equal(x.reshape(x.shape[0], -1), y.reshape(y.shape[0], -1)), field


def test_digits_as_images_are_the_flat_digits_reshaped() -> None:
    pytest.importorskip("sklearn")
    flat = load_digits()
    image = load_digits(layout="image")
    assert flat.input_shape == (64,) and image.input_shape == (1, 8, 8)
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(image, f"x_{split}"), getattr(flat, f"x_{split}").reshape(-1, 1, 8, 8))
        assert torch.equal(getattr(image, f"y_{split}"), getattr(flat, f"y_{split}"))
    assert load_digits(layout="flat").input_shape == (64,)
    _same_values(load_digits(layout="auto"), flat)


def test_mnist1d_as_image_is_one_channel() -> None:
    flat = load_mnist1d()
    image = load_mnist1d(layout="image")
    assert image.input_shape == (1, 40) and load_mnist1d(layout="flat").input_shape == (40,)
    _same_values(image, flat)


def test_mnist_as_images(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    write_idx(tmp_path / "train-images-idx3-ubyte", rng.integers(0, 256, (30, 28, 28), dtype=np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte", (np.arange(30) % 10).astype(np.uint8))
    write_idx(tmp_path / "t10k-images-idx3-ubyte", rng.integers(0, 256, (10, 28, 28), dtype=np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", (np.arange(10) % 10).astype(np.uint8))
    flat = load_mnist(root=tmp_path)
    image = load_mnist(root=tmp_path, layout="image")
    assert flat.input_shape == (784,) and image.input_shape == (1, 28, 28)
    _same_values(image, flat)
    # row-major: pixel (r, c) of the image is feature 28 * r + c
    assert torch.equal(image.x_test[3, 0, 5, 7], flat.x_test[3, 28 * 5 + 7])


def _toy(shape: tuple[int, ...]) -> Splits:
    n = 4
    x = torch.arange(n * int(np.prod(shape)), dtype=torch.float32).reshape(n, *shape)
    y = torch.zeros(n, dtype=torch.int64)
    return Splits("toy", x, y, x.clone(), y.clone(), x.clone(), y.clone(), 1)


@pytest.mark.parametrize(
    ("shape", "image"),
    [((40,), (1, 40)), ((5, 6), (1, 5, 6)), ((3, 4, 4), (3, 4, 4))],
)
def test_generic_layouts(shape: tuple[int, ...], image: tuple[int, ...]) -> None:
    s = _toy(shape)
    assert apply_layout(s, "auto") is s
    assert image_shape_of(shape) == image
    as_image = apply_layout(s, "image")
    assert as_image.input_shape == image
    as_flat = apply_layout(s, "flat")
    assert as_flat.input_shape == (int(np.prod(shape)),)
    _same_values(as_image, s)
    _same_values(as_flat, s)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_keeps_the_values_labels_and_augment(layout: str) -> None:
    s = _toy((3, 4, 4))
    out = apply_layout(s, layout)
    _same_values(out, s)
    assert out.num_classes == s.num_classes and out.augment == s.augment and out.name == s.name


def test_layout_errors() -> None:
    with pytest.raises(ConfigError, match=r"^data\.layout: unknown layout 'images' \(did you mean 'image'\?\)"):
        apply_layout(_toy((4,)), "images")
    with pytest.raises(ConfigError, match=r"^data\.layout: 'image' needs inputs of 1 to 3 axes"):
        apply_layout(_toy((1, 2, 2, 2)), "image")
    with pytest.raises(ConfigError, match=r"^data\.layout: image shape \(1, 9, 9\) does not fit"):
        apply_layout(_toy((64,)), "image", (1, 9, 9))
    with pytest.raises(ConfigError, match=r"^data\.layout:"):
        load_mnist1d(layout="square")
