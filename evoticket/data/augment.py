"""Data augmentation of image minibatches: a pure, vectorised function of the batch and a generator.

``crop_flip`` is the standard CIFAR augmentation: a random 32x32 crop of the image zero-padded by 4 pixels on
each side, then a horizontal flip with probability 1/2 (K. He, X. Zhang, S. Ren and J. Sun, "Deep residual
learning for image recognition", CVPR 2016, section 4.2, after C.-Y. Lee et al., "Deeply-supervised nets",
AISTATS 2015). The data sets hold normalised images, so the padding is 0 in normalised units: the data set's
mean colour (torchvision pads the raw image with black before normalising; the difference is only in the
4-pixel border).

The setting (``data.augment``) is recorded on :class:`evoticket.data.Splits` (``Splits.augment``); the training
loop applies :func:`augment_batch` to each training minibatch it gathers, with a generator seeded per step, so
runs stay reproducible. Validation and test inputs are never augmented.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from evoticket.core.errors import ConfigError, DataError, unknown_name

AUGMENTATIONS = ("none", "crop_flip")
"""The values of ``data.augment``: ``none`` (inputs as they are) and ``crop_flip`` (images only)."""

CROP_PADDING = 4
"""Pixels of zero padding on each side before the random crop of ``crop_flip``."""


def augment_batch(x: torch.Tensor, kind: str, generator: torch.Generator) -> torch.Tensor:
    """Augment a minibatch of images.

    ``"none"`` returns ``x`` itself and draws nothing from ``generator``. ``"crop_flip"`` draws, in this order,
    the crops' row offsets ``(B,)``, their column offsets ``(B,)`` (each uniform in ``0 .. 2 * CROP_PADDING``)
    and the flips ``(B,)`` (each with probability 1/2) on the generator's device, then gathers every output
    pixel from the zero-padded batch at once; the output is therefore a deterministic function of ``x`` and
    the generator's state, on any device. Offset ``CROP_PADDING`` in both axes without a flip is the identity.

    Args:
        x: images, shape ``(B, C, H, W)``, floating point (normalised, so padding with 0 means the mean colour).
        kind: one of :data:`AUGMENTATIONS`.
        generator: the source of randomness, e.g. ``torch.Generator().manual_seed(step_seed)``; on the CPU
            or on ``x``'s device.

    Returns:
        A new tensor of the same shape, dtype and device as ``x`` (``x`` itself for ``"none"``).

    Raises:
        ConfigError: if ``kind`` is not one of :data:`AUGMENTATIONS`.
        DataError: if ``kind`` is ``"crop_flip"`` and ``x`` is not a floating-point ``(B, C, H, W)`` tensor.
    """
    if kind == "none":
        return x
    if kind != "crop_flip":
        raise ConfigError("data.augment: " + unknown_name("augmentation", kind, AUGMENTATIONS))
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise DataError(f"data.augment: 'crop_flip' needs floating-point images (B, C, H, W), got {shape}")
    b, c, h, w = x.shape
    p = CROP_PADDING
    where = generator.device
    dy = torch.randint(0, 2 * p + 1, (b,), generator=generator, device=where).to(x.device)  # (B,)
    dx = torch.randint(0, 2 * p + 1, (b,), generator=generator, device=where).to(x.device)  # (B,)
    flip = (torch.rand((b,), generator=generator, device=where) < 0.5).to(x.device)  # (B,)
    padded = F.pad(x, (p, p, p, p))  # (B, C, H + 2p, W + 2p)
    rows = dy[:, None] + torch.arange(h, device=x.device)  # (B, H)
    cols = torch.arange(w, device=x.device).expand(b, w)  # (B, W)
    cols = dx[:, None] + torch.where(flip[:, None], w - 1 - cols, cols)  # (B, W)
    index = rows[:, :, None] * (w + 2 * p) + cols[:, None, :]  # (B, H, W), into the padded image's pixels
    out = torch.gather(
        padded.reshape(b, c, (h + 2 * p) * (w + 2 * p)), 2, index.reshape(b, 1, h * w).expand(b, c, h * w)
    )  # (B, C, H*W)
    return out.reshape(b, c, h, w)


__all__ = ["AUGMENTATIONS", "CROP_PADDING", "augment_batch"]
