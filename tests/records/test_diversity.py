"""The population diversity recorded in generations.csv, against hand computations."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from evoticket.records import population_diversity


def ticket(mask_bits, weights):
    mask = torch.tensor(mask_bits, dtype=torch.bool)
    return SimpleNamespace(
        masks={"w": mask}, theta0={"w": torch.tensor(weights, dtype=torch.float32), "b": torch.zeros(1)}
    )


def test_mask_jaccard_and_theta0_spread_by_hand():
    a = ticket([1, 1, 0, 0], [1.0, -1.0, 1.0, -1.0])
    b = ticket([1, 0, 1, 0], [1.0, -1.0, 1.0, -1.0])
    c = ticket([0, 0, 1, 1], [1.0, -1.0, 1.0, -1.0])
    got = population_diversity([a, b, c])
    # pairs: a-b 1 - 1/3, a-c 1 - 0/4, b-c 1 - 1/3
    assert got["mask_jaccard"] == pytest.approx(((2 / 3) + 1 + (2 / 3)) / 3)
    assert got["theta0_spread"] == 0.0  # one theta0 shared by all
    d = ticket([1, 1, 0, 0], [-1.0, 1.0, -1.0, 1.0])  # every weight's sign flipped: sd 1 around mean 0, RMS 1
    spread = population_diversity([a, d])
    assert spread == {"mask_jaccard": 0.0, "theta0_spread": pytest.approx(1.0)}
    assert population_diversity([a]) == {"mask_jaccard": 0.0, "theta0_spread": 0.0}
    assert population_diversity([a, a, b]) == population_diversity([a, a, b])  # the same bits every time
