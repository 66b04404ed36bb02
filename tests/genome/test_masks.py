"""Masks by position: rows over ordered inputs, local masks, and the locality score against random masks."""

from __future__ import annotations

import math

import pytest
import torch

from evoticket.genome import Locality, local_mask, locality, position_layout, random_mask


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def windows(mask: torch.Tensor) -> bool:
    """Whether every row of a (rows, positions) mask keeps one contiguous window (or nothing)."""
    for row in mask:
        kept = row.nonzero().squeeze(1)
        if kept.numel() and int(kept[-1] - kept[0]) + 1 != kept.numel():
            return False
    return True


def test_position_layout_rows_and_grids():
    assert position_layout((16, 40)) == (16, (40,))
    assert position_layout((25, 1, 5)) == (25, (5,))
    assert position_layout((8, 3, 3, 3)) == (24, (3, 3))
    assert position_layout((7,)) == (1, (7,))
    with pytest.raises(ValueError, match="axis"):
        position_layout(())


def test_locality_of_a_hand_made_mask():
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [0, 1, 0, 1, 0, 1]], dtype=torch.bool)
    score = locality(mask)
    assert score.score == pytest.approx(2 / 6)  # the window's 2 pairs over 6 kept weights
    # 2 rows x 5 adjacent slots, each kept with probability K (K - 1) / (N (N - 1)), over K kept
    assert score.expected == pytest.approx(10 * 5 / (12 * 11))
    assert score.ratio == pytest.approx(score.score / score.expected)
    assert isinstance(score, Locality)
    assert locality(torch.zeros(3, 4, dtype=torch.bool)).score == 0.0
    assert math.isnan(locality(torch.tensor([[True, False]])).ratio)  # one kept weight: nothing expected


def test_random_masks_score_what_is_expected_and_windows_score_high():
    g = gen(0)
    draws = [locality(random_mask((16, 40), 160, g)) for _ in range(300)]
    mean = sum(d.score for d in draws) / len(draws)
    assert mean == pytest.approx(draws[0].expected, abs=0.01)
    assert draws[0].expected == pytest.approx(0.25 * 39 / 40, abs=0.01)  # about the density times (L - 1) / L
    local = locality(local_mask((16, 40), 160, g))
    assert local.score == pytest.approx(9 / 10)  # 16 windows of 10
    assert local.ratio > 3


@pytest.mark.parametrize("shape", [(16, 40), (7, 12), (25, 1, 5), (6, 4, 3), (4, 2, 3, 3)])
@pytest.mark.parametrize("density", [0.05, 0.3, 0.77, 1.0])
def test_local_mask_keeps_the_count_in_windows(shape, density):
    numel = math.prod(shape)
    kept = max(1, round(density * numel))
    mask = local_mask(shape, kept, gen(1))
    assert mask.shape == shape and mask.dtype == torch.bool and int(mask.sum()) == kept
    rows, grid = position_layout(shape)
    per_row = mask.reshape(rows, -1).sum(1)
    assert int(per_row.max() - per_row.min()) <= 1  # spread evenly
    if len(grid) == 1:
        assert windows(mask.reshape(rows, -1))
    assert torch.equal(mask, local_mask(shape, kept, gen(1)))


def test_local_mask_windows_start_anywhere_and_bad_counts_raise():
    starts = set()
    for seed in range(30):
        row = local_mask((1, 10), 4, gen(seed))[0]
        starts.add(int(row.nonzero()[0]))
    assert starts == set(range(7))  # every start in [0, L - k]
    with pytest.raises(ValueError, match="kept"):
        local_mask((2, 3), 7, gen(0))
