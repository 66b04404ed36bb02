"""Every configuration in configs/ loads, and the examples run."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from evoticket.config import load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.toml"))


def test_there_are_configs():
    assert len(CONFIGS) >= 5


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_is_valid(path):
    config = load_config(path)
    assert config.data.name in ("mnist1d", "digits", "mnist", "fashion_mnist")


def test_default_toml_is_the_default_campaign():
    from evoticket.config import CampaignConfig

    assert load_config(ROOT / "configs" / "default.toml").with_overrides(["model.hidden=[]"]) == CampaignConfig()


def test_custom_deap_search_example_runs(capsys):
    runpy.run_path(str(ROOT / "examples" / "custom_deap_search.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "best: uid" in out and "lineage: parents" in out
