"""Every configuration in configs/ loads, and the examples run."""

from __future__ import annotations

from pathlib import Path

import pytest

from evoticket.config import load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.toml"))


def test_there_are_configs():
    assert len(CONFIGS) >= 5


def is_experiment(path) -> bool:
    """An experiment file (``evoticket experiment``) rather than a campaign configuration."""
    import tomllib

    return "experiment" in tomllib.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_is_valid(path):
    if is_experiment(path):
        from evoticket.experiment import load_experiment

        exp = load_experiment(path)  # every cell's configuration is checked
        assert len({c.seed for c in exp.cells}) >= 3 and exp.cells
        return
    config = load_config(path)
    assert config.data.name in ("mnist1d", "digits", "mnist", "fashion_mnist")


def test_the_experiment_files_run_the_grids_the_readme_describes():
    from evoticket.experiment import load_experiment

    quick = load_experiment(ROOT / "configs" / "why-not-both-quick.toml")
    assert len(quick.cells) == 30 and {c.density for c in quick.cells} == {0.1}
    full = load_experiment(ROOT / "configs" / "why-not-both.toml")
    main = [c for c in full.cells if c.budget == 1 and c.allocation == "uniform"]
    assert len(main) == 9 * 4 * 2 * 3  # every method at every density and data set, 3 seeds
    assert {c.budget for c in full.cells} == {1, 4, 16} and {c.allocation for c in full.cells} == {"uniform", "erk"}
    levers = load_experiment(ROOT / "configs" / "hybrid-levers.toml")
    ones = [c for c in levers.cells if c.budget == 1]
    assert (
        len(ones) == (10 + 4) * 2 * 2 * 3
    )  # 10 methods at the uniform start, 4 at LTH's; 2 data sets x 2 densities x 3 seeds
    assert {c.dataset for c in ones} == {"mnist1d", "digits"} and {c.density for c in ones} == {0.1, 0.05}
    assert {(c.method, c.allocation) for c in levers.cells if c.budget == 4} == {
        ("dense", "uniform"), ("imp", "uniform"), ("ga", "uniform"), ("ga_best", "uniform"), ("ga_all", "lth"),
        ("ga_best", "lth"),
    }  # fmt: skip


def test_default_toml_is_the_default_campaign():
    from evoticket.config import CampaignConfig

    assert load_config(ROOT / "configs" / "default.toml").with_overrides(["model.hidden=[]"]) == CampaignConfig()
