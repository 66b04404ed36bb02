"""scikit-learn's hand-written digits (1797 8x8 images, 10 classes); needs scikit-learn."""

from __future__ import annotations

import os

import numpy as np

from evoticket.core.errors import DataError
from evoticket.data.layout import apply_layout, check_layout
from evoticket.data.splits import Splits, _build_splits, _check_fraction, _check_seed, stratified_split

DIGITS_IMAGE_SHAPE = (1, 8, 8)
"""The digits' shape as images (``data.layout = "image"``): one channel of 8x8 pixels."""

#: Fraction of all digits images that form the test split.
DIGITS_TEST_FRACTION = 0.2

#: Seed of the digits test split; fixed so every run shares one test set.
DIGITS_TEST_SEED = 0


def load_digits(
    *,
    root: str | os.PathLike[str] | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    layout: str = "auto",
) -> Splits:
    """Load scikit-learn's 8x8 hand-written digits.

    Inputs are scaled to [0, 1] by dividing by 16 and flattened to ``(64,)``
    float32 (``layout="image"``: ``(1, 8, 8)``, the same values). The 1797 images have no official test split: a stratified 20 %
    (359 images) becomes the test split with the fixed seed
    :data:`DIGITS_TEST_SEED`, so all runs share one test set; then
    ``val_fraction`` of the remaining 1438 is held out for validation with
    ``seed`` (144 images for 0.1, leaving 1294 for training). 10 classes.

    Args:
        root: ignored (the data ship with scikit-learn).
        val_fraction: fraction of the non-test images held out for
            validation, in (0, 1).
        seed: seed of the validation split.
        layout: ``"auto"`` or ``"flat"`` (``(64,)``) or ``"image"`` (``(1, 8, 8)``).

    Returns:
        The :class:`Splits` on the CPU.

    Raises:
        ConfigError: if ``layout`` is unknown.
        DataError: if scikit-learn is not installed, or ``val_fraction`` or
            ``seed`` is invalid.
    """
    del root
    check_layout(layout)
    val_fraction = _check_fraction(val_fraction, "data.val_fraction")
    seed = _check_seed(seed)
    try:
        from sklearn.datasets import load_digits as sklearn_load_digits
    except ImportError as exc:
        raise DataError("data set 'digits' needs scikit-learn: pip install 'evoticket[digits]'") from exc
    bunch = sklearn_load_digits()
    x = (np.asarray(bunch.data, dtype=np.float32) / np.float32(16.0)).reshape(-1, 64)
    y = np.asarray(bunch.target).astype(np.int64)
    rest, test = stratified_split(y, DIGITS_TEST_FRACTION, DIGITS_TEST_SEED)
    splits = _build_splits("digits", x[rest], y[rest], x[test], y[test], 10, val_fraction, seed)
    return apply_layout(splits, layout, DIGITS_IMAGE_SHAPE)
