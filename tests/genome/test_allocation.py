"""Per-layer densities from a total: uniform, ERK and LTH against hand computations."""

from __future__ import annotations

import math

import pytest

from evoticket.core.errors import ConfigError
from evoticket.genome import ALLOCATIONS, layer_densities
from evoticket.models import build_architecture

MLP = build_architecture("mlp", (40,), 10, [300, 100])  # weights 12,000 / 30,000 / 1,000


def kept_total(arch, densities):
    return sum(d * math.prod(s.weight_shape) for d, s in zip(densities.values(), arch.layers, strict=True))


def test_erk_by_hand():
    # raw (sum of dims / weights): 340/12000, 400/30000, 110/1000; scale 4300 / (340 + 400 + 110)
    eps = 0.1 * 43000 / 850
    got = layer_densities(MLP, 0.1, "erk")
    assert got == pytest.approx(
        {"fc1.weight": eps * 340 / 12000, "fc2.weight": eps * 400 / 30000, "fc3.weight": eps * 0.11}
    )
    assert [round(100 * d) for d in got.values()] == [14, 7, 56]  # the "roughly 14% / 7% / 56%"
    assert kept_total(MLP, got) == pytest.approx(4300)


def test_erk_keeps_a_layer_dense_that_would_exceed_one_and_rescales_the_rest():
    got = layer_densities(MLP, 0.5, "erk")
    # fc3 would get 25.3 * 0.11 > 1: dense; the rest share 0.5 * 43000 - 1000 kept weights by 340 : 400
    eps = (0.5 * 12000 + 0.5 * 30000 - 0.5 * 1000) / (340 + 400)
    assert got == pytest.approx({"fc1.weight": eps * 340 / 12000, "fc2.weight": eps * 400 / 30000, "fc3.weight": 1.0})
    assert kept_total(MLP, got) == pytest.approx(21500)


def test_erk_of_a_convolution_counts_its_kernel():
    cnn = build_architecture("cnn1d", (40,), 10, [25])
    got = layer_densities(cnn, 0.2, "erk")
    shapes = {s.weight: s.weight_shape for s in cnn.layers}
    raw = {k: sum(v) / math.prod(v) for k, v in shapes.items()}  # (out + in + k) / (out * in * k)
    ratios = {k: got[k] / raw[k] for k in got if got[k] < 1}
    assert max(ratios.values()) == pytest.approx(min(ratios.values()))  # one scale for every sparse layer
    assert kept_total(cnn, got) == pytest.approx(0.2 * cnn.num_prunable())


def test_lth_prunes_the_output_layer_at_half_the_rate():
    got = layer_densities(MLP, 0.1, "lth")
    hidden = got["fc1.weight"]
    assert got["fc2.weight"] == hidden
    rounds = math.log(hidden) / math.log(0.8)  # 20% of a hidden layer per round, 10% of the output layer
    assert got["fc3.weight"] == pytest.approx(0.9**rounds)
    assert kept_total(MLP, got) == pytest.approx(4300, rel=1e-9)
    assert 10 < rounds < 11 and 0.3 < got["fc3.weight"] < 0.35


def test_uniform_and_bad_input():
    assert layer_densities(MLP, 0.3) == dict.fromkeys(MLP.weight_names, 0.3)
    assert set(ALLOCATIONS) == {"uniform", "erk", "lth"}
    for allocation in ALLOCATIONS:
        assert layer_densities(MLP, 1.0, allocation) == pytest.approx(dict.fromkeys(MLP.weight_names, 1.0))
    with pytest.raises(ConfigError, match="unknown allocation 'erm'"):
        layer_densities(MLP, 0.1, "erm")


def test_the_ga_draws_its_initial_masks_from_the_allocation(fast_config):
    from evoticket.evolution import make_toolbox
    from evoticket.methods import resolve_run

    toolbox = make_toolbox(fast_config.with_overrides(["ticket.allocation=erk", "ticket.density=0.2"]))
    ind = toolbox.individual()
    want = layer_densities(toolbox.arch, 0.2, "erk")
    assert ind.density() == pytest.approx(want, abs=2e-3)
    with pytest.raises(ConfigError, match="^ticket.allocation: unknown allocation 'erm'"):
        resolve_run(fast_config.with_overrides(["ticket.allocation=erm"]))
