"""Shared fixtures: tiny, fast campaign configurations."""

from __future__ import annotations

import pytest

from evoticket.config import CampaignConfig

FAST = [
    "model.hidden=[16]",
    "ga.population=6",
    "ga.offspring=6",
    "ga.generations=2",
    "finetune.steps=5",
    "finetune.batch_size=50",
    "campaign.final_steps=20",
    "campaign.final_eval_every=10",
    "campaign.final_seeds=2",
    "campaign.progress=false",
    "campaign.device=cpu",
    "campaign.plots=fitness",
]


@pytest.fixture
def fast_config() -> CampaignConfig:
    """A 2-generation campaign on MNIST-1D with a 40-16-10 MLP that runs in about a second."""
    return CampaignConfig().with_overrides(FAST)
