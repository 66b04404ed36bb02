"""The one resolve step: every check that needs data, a model or a registry, before anything is written."""

from __future__ import annotations

import pytest

from evoticket import cli
from evoticket.config import CampaignConfig, ModelConfig
from evoticket.core.errors import ConfigError
from evoticket.evolution import check_toolbox
from evoticket.methods import METHODS, resolve_run
from evoticket.models import build_architecture
from evoticket.resolve import resolve


def test_a_model_size_that_does_not_fit_is_accepted_by_the_dataclass_and_refused_by_resolve():
    config = CampaignConfig(model=ModelConfig(name="cnn1d", hidden=(1, 2)))  # the dataclass alone cannot know
    with pytest.raises(ConfigError, match=r"^model.hidden: 'cnn1d' takes one channel count"):
        resolve(config)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "method=gaa",
            "method: unknown method 'gaa' (did you mean 'ga'?); valid: bn_only, dense, edge_popup, ga, gmp, imp, output_only, random, random_search, rigl, "
            "rigl_tuned, supermask_ga",
        ),
        ("data.name=mnsit", "data.name: unknown data set 'mnsit' (did you mean 'mnist'?)"),
        ("data.name=cifar", "data.name: unknown data set 'cifar' (did you mean 'cifar10'?)"),
        ("data.name=evoticket_nope:load", "data.name: cannot import 'evoticket_nope:load'"),
        ("data.augment=crop_flip", "data.augment: 'crop_flip' needs images (C, H, W); mnist1d holds sequences"),
        ("model.name=cnn", "model.name: unknown model 'cnn'"),
        ("ga.crossover=cxNope", "ga.crossover: unknown crossover 'cxNope'"),
        ("ga.survival=selBest", "ga.survival: unknown survivor scheme 'selBest'; valid: selElitistTournament"),
        ("ga.operator_args.mutMaskSwap.sigma=1", "ga.operator_args.mutMaskSwap.sigma: unknown argument; valid: indpb"),
        ("ticket.layer_densities.fc9.weight=0.5", "ticket.layer_densities.fc9.weight: not a prunable weight of 'mlp'"),
    ],
)
def test_resolve_names_the_key(override, message):
    with pytest.raises(ConfigError) as info:
        resolve_run(CampaignConfig().with_overrides([override]))
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


def test_every_method_is_registered_under_its_name():
    assert "ga" in METHODS
    for name, method in METHODS.items():
        assert method.name == name
        assert method.section is None or method.section in CampaignConfig().to_dict()


def test_bad_input_on_the_command_line_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "--set", "model.name=cnn1d", "--set", "model.hidden=[1, 2]", "--name", "x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["evoticket: error: model.hidden: 'cnn1d' takes one channel count >= 1, e.g. [25], got [1, 2]"]
    assert not (tmp_path / "runs").exists() and not (tmp_path / "plots").exists()


def test_memory_error_gives_its_figure_once():
    config = CampaignConfig().with_overrides(["ga.population=1000000000", "ga.offspring=1"])
    arch = build_architecture("mlp", (40,), 10)
    with pytest.raises(ConfigError) as info:
        check_toolbox(config, arch, n_train=3600, available=2**34)
    message = str(info.value)
    assert message.startswith("ga.population: 1000000000 needs about 197 TiB of memory, which this machine's 16 GiB")
    assert "in all" not in message and "with the rest" not in message
    # where the other keys add up to a visible share, the total is given once, separately
    config = CampaignConfig().with_overrides(["ga.population=60000", "ga.offspring=50000"])
    with pytest.raises(ConfigError, match=r"^ga.population: 60000 needs about .* \(.* with the rest\)"):
        check_toolbox(config, arch, n_train=3600, available=2**34)


def test_offspring_default_to_the_population_size():
    config = CampaignConfig().with_overrides(["ga.population=8"])
    assert config.ga.offspring == 0 and config.ga.num_offspring == 8
    assert CampaignConfig().with_overrides(["ga.offspring=5"]).ga.num_offspring == 5
