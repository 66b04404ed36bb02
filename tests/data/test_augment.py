"""Tests of evoticket.data.augment (crop_flip) and of the augment setting recorded on Splits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from evoticket.core.errors import ConfigError, DataError
from evoticket.data.augment import AUGMENTATIONS, CROP_PADDING, augment_batch
from evoticket.data.splits import Splits


def _images(b: int = 64, c: int = 3, h: int = 8, w: int = 8) -> torch.Tensor:
    """Every pixel distinct and non-zero, so a crop's offset and a flip can be read off the output."""
    return torch.arange(1, b * c * h * w + 1, dtype=torch.float32).reshape(b, c, h, w)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_none_is_the_input_itself_and_draws_nothing() -> None:
    x = _images()
    g = _gen(0)
    state = g.get_state()
    assert augment_batch(x, "none", g) is x
    assert torch.equal(g.get_state(), state)
    flat = torch.zeros(3, 5)  # "none" takes any shape
    assert augment_batch(flat, "none", g) is flat


def test_crop_flip_keeps_shape_dtype_and_is_deterministic_per_seed() -> None:
    x = _images()
    a = augment_batch(x, "crop_flip", _gen(1))
    b = augment_batch(x, "crop_flip", _gen(1))
    c = augment_batch(x, "crop_flip", _gen(2))
    assert a.shape == x.shape and a.dtype == x.dtype and a.device == x.device
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(x, _images())  # the input is left alone


def _reference(x: torch.Tensor, dy: int, dx: int, flip: bool) -> torch.Tensor:
    """torchvision's RandomCrop(padding=4) then RandomHorizontalFlip, for one image (C, H, W)."""
    p = CROP_PADDING
    h, w = x.shape[-2:]
    crop = F.pad(x, (p, p, p, p))[:, dy : dy + h, dx : dx + w]
    return crop.flip(-1) if flip else crop


def test_each_output_is_a_crop_of_the_padded_image_possibly_flipped() -> None:
    x = _images(b=200)
    out = augment_batch(x, "crop_flip", _gen(3))
    offsets, flips = set(), []
    for i in range(x.shape[0]):
        matches = [
            (dy, dx, flip)
            for dy in range(2 * CROP_PADDING + 1)
            for dx in range(2 * CROP_PADDING + 1)
            for flip in (False, True)
            if torch.equal(out[i], _reference(x[i], dy, dx, flip))
        ]
        assert len(matches) == 1, i
        dy, dx, flip = matches[0]
        offsets.add((dy, dx))
        flips.append(flip)
    # crops and flips happen: many offsets, about half flipped, and some images moved
    assert len(offsets) > 20
    assert 60 <= sum(flips) <= 140
    assert any(o != (CROP_PADDING, CROP_PADDING) for o in offsets)
    # padding is zero (the mean colour of normalised data)
    assert (out == 0).any()


def test_crop_flip_follows_the_documented_draws() -> None:
    x = _images(b=5)
    g = _gen(4)
    dy = torch.randint(0, 2 * CROP_PADDING + 1, (5,), generator=g)
    dx = torch.randint(0, 2 * CROP_PADDING + 1, (5,), generator=g)
    flip = torch.rand((5,), generator=g) < 0.5
    out = augment_batch(x, "crop_flip", _gen(4))
    for i in range(5):
        assert torch.equal(out[i], _reference(x[i], int(dy[i]), int(dx[i]), bool(flip[i])))


def test_crop_flip_on_an_empty_batch_and_a_single_channel() -> None:
    assert augment_batch(torch.zeros(0, 3, 32, 32), "crop_flip", _gen(0)).shape == (0, 3, 32, 32)
    assert augment_batch(_images(b=4, c=1, h=28, w=28), "crop_flip", _gen(0)).shape == (4, 1, 28, 28)


@pytest.mark.parametrize("shape", [(4, 64), (4, 1, 40), (4, 1, 2, 3, 4)])
def test_crop_flip_refuses_what_is_no_image_batch(shape: tuple[int, ...]) -> None:
    with pytest.raises(DataError, match=r"^data\.augment: 'crop_flip' needs floating-point images") as info:
        augment_batch(torch.zeros(shape), "crop_flip", _gen(0))
    assert "\n" not in str(info.value)


def test_unknown_kind() -> None:
    with pytest.raises(ConfigError, match=r"^data\.augment: unknown augmentation 'crop'.*valid: crop_flip, none"):
        augment_batch(_images(), "crop", _gen(0))


def _splits(x: torch.Tensor, augment: str = "none") -> Splits:
    y = torch.zeros(x.shape[0], dtype=torch.int64)
    return Splits("toy", x, y, x[:2], y[:2], x[:2], y[:2], 1, augment)


def test_splits_record_augment_and_keep_it_when_moved() -> None:
    s = _splits(_images(b=4), "crop_flip")
    assert s.augment == "crop_flip" and s.to("cpu").augment == "crop_flip"
    assert "augment='crop_flip'" in repr(s)
    assert _splits(_images(b=4)).augment == "none"
    with pytest.raises(DataError, match="needs images"):
        _splits(torch.zeros(4, 64), "crop_flip")
    with pytest.raises(DataError, match="unknown augment"):
        _splits(_images(b=4), "flip")


@pytest.mark.parametrize("kind", AUGMENTATIONS)
def test_every_augmentation_keeps_the_batch_shape_and_is_reproducible(kind: str) -> None:
    x = _images(b=6)
    a, b = augment_batch(x, kind, _gen(9)), augment_batch(x, kind, _gen(9))
    assert a.shape == x.shape and torch.equal(a, b)
