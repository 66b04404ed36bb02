"""Shared fixtures: tiny, fast campaign configurations."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from evoticket.config import CampaignConfig

FAST = [
    "model.hidden=[16]",
    "ga.population=6",
    "ga.offspring=6",
    "ga.generations=2",
    "finetune.steps=5",
    # the GA's mechanics under the settings before the hybrid levers issue (the defaults now halve and
    # inherit: tests of those set them themselves)
    "finetune.mode=baldwinian",
    "ga.halving_rungs=1",
    "ga.mutations=['mutMaskSwap']",
    "optimizer.batch_size=50",
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


def evoticket_cli(root, overrides, *args, kill_at=None) -> subprocess.CompletedProcess:
    """Run ``python -m evoticket.cli ARGS --set=O ...`` in ``root``, optionally killed at a fault point."""
    env = {k: v for k, v in os.environ.items() if k != "EVOTICKET_KILL_AT"}
    if kill_at:
        env["EVOTICKET_KILL_AT"] = kill_at
    sets = [f"--set={o}" for o in overrides]
    return subprocess.run(
        [sys.executable, "-m", "evoticket.cli", *args, *sets],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def cli():
    """:func:`evoticket_cli`: the command in a subprocess, as a user (or a killed job) runs it."""
    return evoticket_cli
