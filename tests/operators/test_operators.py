"""Tests of the DEAP operators in :mod:`evoticket.operators`.

Contract tests are parametrised over the registries, so a new operator is
checked automatically; invariant tests check each operator's promise.
"""

from __future__ import annotations

import math
import pickle
import random

import pytest
import torch
from deap import algorithms, base
from hypothesis import given, settings
from hypothesis import strategies as st

from evoticket import models
from evoticket.genome import Ticket, ensure_creator
from evoticket.models import build_architecture
from evoticket.operators import (
    CROSSOVERS,
    INITS,
    MUTATIONS,
    Operator,
    cxInitBlend,
    cxLayerSwap,
    cxMaskUniform,
    initTicket,
    mutInitGaussian,
    mutInitReseed,
    mutMaskFlip,
    mutMaskSwap,
    mutSignFlip,
)
from evoticket.operators import OPERATORS as REGISTRY

FITNESS = (0.5, 1.25)
OPERATORS = {**MUTATIONS, **CROSSOVERS}
DEFAULTS = {name: dict(REGISTRY[name].defaults) for name in OPERATORS}
DENSITY_PRESERVING = frozenset(name for name in OPERATORS if REGISTRY[name].density_preserving)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def arch():
    return build_architecture("mlp", (12,), 4, hidden=[8, 6])


@pytest.fixture(scope="module")
def big_arch():
    return build_architecture("mlp", (40,), 4, hidden=[200])


def make(arch, seed: int, density: float = 0.3, **kwargs) -> Ticket:
    ticket = initTicket(ensure_creator(), arch, density, rng=gen(seed), **kwargs)
    ticket.genes = {"lr": 0.01, "alpha": 0.1}  # hyperparameter genes, for mutGenesPerturb
    return ticket


def evaluated(arch, seed: int, uid: int, **kwargs) -> Ticket:
    """A ticket as the algorithm leaves it after evaluation: uid and fitness set."""
    ticket = make(arch, seed, **kwargs)
    ticket.uid = uid
    ticket.fitness.values = FITNESS
    return ticket


def strong(name: str) -> dict:
    """Default hyper-parameters with ``indpb`` raised, so something surely changes."""
    params = dict(DEFAULTS[name])
    if "indpb" in params:
        params["indpb"] = 0.5
    return params


def snapshot(ticket: Ticket) -> dict[str, torch.Tensor]:
    saved = {f"theta0/{k}": v.clone() for k, v in ticket.theta0.items()}
    saved.update({f"masks/{k}": v.clone() for k, v in ticket.masks.items()})
    saved.update({f"genes/{k}": torch.tensor(v) for k, v in ticket.genes.items()})
    return saved


def same(ticket: Ticket, saved: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(v, saved[k]) for k, v in snapshot(ticket).items())


def kept(ticket: Ticket) -> dict[str, int]:
    return {k: int(m.sum()) for k, m in ticket.masks.items()}


def vary(name: str, tickets: list[Ticket], seed: int = 1, **params) -> tuple:
    params = params or strong(name)
    return OPERATORS[name](*tickets, **params, rng=gen(seed))


def n_inputs(name: str) -> int:
    return 2 if name in CROSSOVERS else 1


def check_types(ticket: Ticket, arch) -> None:
    assert list(ticket.theta0) == list(arch.param_shapes)
    for k, shape in arch.param_shapes.items():
        assert ticket.theta0[k].dtype == torch.float32
        assert tuple(ticket.theta0[k].shape) == shape
    assert list(ticket.masks) == list(arch.weight_names)
    for k in arch.weight_names:
        assert ticket.masks[k].dtype == torch.bool
        assert tuple(ticket.masks[k].shape) == arch.param_shapes[k]
        assert ticket.masks[k].any()


# ------------------------------------------------------------------ registries


def test_registries_consistent():
    """One registry: the views by kind are its entries, each entry's defaults pass its own checks."""
    assert set(REGISTRY) == {*INITS, *MUTATIONS, *CROSSOVERS}
    assert all(REGISTRY[n].kind == "mutation" for n in MUTATIONS) and all(
        REGISTRY[n].kind == "crossover" for n in CROSSOVERS
    )
    assert DENSITY_PRESERVING <= set(OPERATORS)
    assert "cxLayerSwap" not in DENSITY_PRESERVING
    assert "mutMaskFlip" not in DENSITY_PRESERVING
    for name, op in REGISTRY.items():
        assert op.func.__name__ == name
        assert name.startswith(("init", "mut", "cx"))
        assert all(op.checks[arg][0](value) for arg, value in op.defaults.items() if arg in op.checks), name
    assert REGISTRY["mutMagnitudeSwap"].needed({"grow": "gradient"}) == "gradients"
    assert REGISTRY["mutMagnitudeSwap"].needed({"grow": "random"}) == "magnitudes"
    assert REGISTRY["mutMaskSwap"].needed() == "none"


def test_a_registered_operator_joins_its_kind_and_reports_what_it_needs():
    """register_operator: the new entry appears in the view of its kind, its arguments are checked, and the traits it
    needs are read from a toolbox that registered it (a user's own DEAP search sets nothing by hand)."""
    import functools

    from evoticket.core.errors import ConfigError
    from evoticket.operators import register_operator, traits_needed

    def mutTestOnly(individual, strength=1.0, *, rng):
        return (individual,)

    entry = Operator(
        "mutTestOnly",
        mutTestOnly,
        "mutation",
        {"strength": 1.0},
        {"strength": (lambda v: v > 0, "must be > 0")},
        needs=lambda kw: "magnitudes" if kw["strength"] > 2 else "none",
    )
    register_operator(entry)
    try:
        assert MUTATIONS["mutTestOnly"] is mutTestOnly and "mutTestOnly" not in CROSSOVERS
        with pytest.raises(ConfigError, match=r"^ga.operator_args.mutTestOnly.strength: must be > 0, got -1"):
            entry.check_arguments({"strength": -1})
        with pytest.raises(
            ConfigError, match=r"^ga.operator_args.mutTestOnly.power: unknown argument; valid: strength"
        ):
            entry.check_arguments({"power": 1})
        toolbox = base.Toolbox()
        toolbox.register("mutate", mutTestOnly, strength=3.0, rng=gen(0))
        toolbox.register("mate", cxMaskUniform, rng=gen(0))
        assert traits_needed(toolbox.mutate, toolbox.mate) == "magnitudes"
        toolbox.register("mutate", functools.partial(mutTestOnly, strength=1.0))
        assert traits_needed(toolbox.mutate, toolbox.mate) == "none"
        with pytest.raises(ValueError, match="registered already"):
            register_operator(Operator("mutTestOnly", mutMaskSwap, "mutation"))
    finally:
        REGISTRY.pop("mutTestOnly", None)
    assert "mutTestOnly" not in MUTATIONS


# -------------------------------------------------------------------- contract


@pytest.mark.parametrize("name", sorted(OPERATORS))
@pytest.mark.parametrize("params", ["default", "strong"])
def test_operator_contract(name, params, arch):
    parents = [evaluated(arch, seed=i, uid=7 + i) for i in range(n_inputs(name))]
    saved = [snapshot(p) for p in parents]
    children = [p.clone() for p in parents]
    kwargs = DEFAULTS[name] if params == "default" else strong(name)
    out = OPERATORS[name](*children, **kwargs, rng=gen(1))

    assert isinstance(out, tuple) and len(out) == len(children)
    assert all(o is c for o, c in zip(out, children, strict=False))
    for parent, child, before in zip(parents, children, saved, strict=False):
        # copy on write: the parent's (shared) tensors are untouched
        assert same(parent, before)
        assert parent.uid in (7, 8) and parent.operators == ("initTicket",)
        # DEAP leaves fitness invalidation to the algorithm
        assert child.fitness.valid and child.fitness.values == FITNESS
        check_types(child, arch)
        # lineage: the varied clone is a new individual
        assert child.uid is None
        assert child.operators == (name,)
        assert child.parents == tuple(range(7, 7 + len(parents)))
        assert not child.pending_clone


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_mutation_changes_something(name, arch):
    parent = make(arch, 0)
    saved = snapshot(parent)
    (child,) = vary(name, [parent.clone()])
    assert not same(child, saved)


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_determinism(name, arch):
    parents = [make(arch, seed=i) for i in range(n_inputs(name))]
    a = vary(name, [p.clone() for p in parents], seed=3)
    b = vary(name, [p.clone() for p in parents], seed=3)
    for x, y in zip(a, b, strict=False):
        assert same(x, snapshot(y))


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_varied_ticket_pickles(name, arch):
    parents = [evaluated(arch, seed=i, uid=7 + i) for i in range(n_inputs(name))]
    for child in vary(name, [p.clone() for p in parents]):
        back = pickle.loads(pickle.dumps(child))
        assert type(back) is type(child)
        assert same(back, snapshot(child))
        assert (back.uid, back.parents, back.operators) == (
            child.uid,
            child.parents,
            child.operators,
        )
        assert back.fitness.values == FITNESS


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_varying_an_evaluated_ticket_in_place(name, arch):
    """Without a clone, an evaluated ticket varied in place still becomes a child."""
    tickets = [evaluated(arch, seed=i, uid=7 + i) for i in range(n_inputs(name))]
    for child in vary(name, tickets):
        assert child.uid is None and child.operators == (name,)
        assert child.parents == tuple(range(7, 7 + len(tickets)))


@pytest.mark.parametrize("name", sorted(n for n in OPERATORS if "indpb" in DEFAULTS[n]))
def test_bad_probability_raises(name, arch):
    tickets = [make(arch, seed=i) for i in range(n_inputs(name))]
    for bad in (1.5, -0.1, math.nan):
        with pytest.raises(ValueError, match="indpb"):
            vary(name, tickets, **{**DEFAULTS[name], "indpb": bad})


def test_bad_sigma_and_alpha_raise(arch):
    ticket, other = make(arch, 0), make(arch, 1)
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="sigma"):
            mutInitGaussian(ticket, 0.1, bad, rng=gen(0))
    for bad in (-0.1, math.nan):
        with pytest.raises(ValueError, match="alpha"):
            cxInitBlend(ticket, other, bad, rng=gen(0))
    assert ticket.operators == ("initTicket",)


@pytest.mark.parametrize("name", sorted(CROSSOVERS))
def test_crossover_needs_one_architecture(name, arch):
    other_arch = build_architecture("mlp", (12,), 4, hidden=[8, 5])
    with pytest.raises(ValueError, match="architecture"):
        vary(name, [make(arch, 0), make(other_arch, 1)])
    deeper = build_architecture("mlp", (12,), 4, hidden=[8, 6, 6])
    with pytest.raises(ValueError, match="architecture"):
        vary(name, [make(arch, 0), make(deeper, 1)])


# ------------------------------------------------------------------ invariants


@pytest.mark.parametrize("name", sorted(DENSITY_PRESERVING))
def test_density_preserving(name, arch):
    parents = [make(arch, seed=i, density=0.3 + 0.2 * i) for i in range(n_inputs(name))]
    counts = [kept(p) for p in parents]
    children = vary(name, [p.clone() for p in parents])
    for child, before in zip(children, counts, strict=False):
        assert kept(child) == before


@settings(max_examples=25, deadline=None)
@given(
    indpb=st.floats(0.0, 1.0),
    density=st.floats(0.01, 1.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_mask_swap_keeps_counts_property(indpb, density, seed):
    arch = build_architecture("mlp", (12,), 4, hidden=[8, 6])
    ticket = make(arch, seed % 1000, density=density)
    before = kept(ticket)
    mutMaskSwap(ticket, indpb, rng=gen(seed))
    assert kept(ticket) == before


def test_mask_swap_changes_bits(arch):
    parent = make(arch, 0)
    (child,) = mutMaskSwap(parent.clone(), 0.5, rng=gen(1))
    for k in arch.weight_names:
        assert not torch.equal(child.masks[k], parent.masks[k])
        assert child.theta0[k] is parent.theta0[k]
    # at density 1 nothing can be swapped in, and nothing changes
    full = make(arch, 0, density=1.0)
    (same_full,) = mutMaskSwap(full.clone(), 1.0, rng=gen(1))
    assert all(m.all() for m in same_full.masks.values())


def test_mask_swap_at_indpb_one_moves_min_of_kept_and_pruned(arch):
    parent = make(arch, 0, density=0.3)
    (child,) = mutMaskSwap(parent.clone(), 1.0, rng=gen(1))
    for k, m in parent.masks.items():
        moved = int((m & ~child.masks[k]).sum())
        assert moved == min(int(m.sum()), int((~m).sum()))


def test_mask_flip_drifts_density(big_arch):
    parent = make(big_arch, 0, density=0.3)
    (child,) = mutMaskFlip(parent.clone(), 0.3, rng=gen(1))
    # expected density 0.3 + 0.3 * (1 - 0.6) = 0.42
    assert child.total_density() == pytest.approx(0.42, abs=0.03)
    assert all(child.theta0[k] is v for k, v in parent.theta0.items())


@pytest.mark.parametrize("density", [1.0, 0.3])
def test_mask_flip_never_empties_a_layer(density, arch):
    parent = make(arch, 0, density=density)
    (child,) = mutMaskFlip(parent.clone(), 1.0, rng=gen(1))
    for k, m in parent.masks.items():
        if density == 1.0:
            assert int(child.masks[k].sum()) == 1
        else:
            assert torch.equal(child.masks[k], ~m)


def test_mask_flip_zero_changes_nothing(arch):
    parent = make(arch, 0)
    (child,) = mutMaskFlip(parent.clone(), 0.0, rng=gen(1))
    assert all(child.masks[k] is v for k, v in parent.masks.items())
    assert child.operators == ("initTicket", "mutMaskFlip")  # an unevaluated ticket keeps its history


@pytest.mark.parametrize("name", ["mutInitGaussian", "mutInitReseed", "mutSignFlip"])
def test_weight_mutations_fraction_and_biases(name, big_arch):
    indpb = 0.2
    parent = make(big_arch, 0)
    (child,) = vary(name, [parent.clone()], **{**DEFAULTS[name], "indpb": indpb})
    changed = total = 0
    for k, v in parent.theta0.items():
        if k in parent.masks:
            changed += int((child.theta0[k] != v).sum())
            total += v.numel()
            assert child.masks[k] is parent.masks[k]
        else:
            assert child.theta0[k] is v  # biases never touched
    assert changed / total == pytest.approx(indpb, abs=0.03)


def test_init_gaussian_scale(big_arch):
    parent = make(big_arch, 0)
    sigma = 0.5
    (child,) = mutInitGaussian(parent.clone(), 1.0, sigma, rng=gen(1))
    for k in parent.masks:
        delta = child.theta0[k] - parent.theta0[k]
        ratio = float(delta.std()) / (sigma * parent.init_std[k])
        assert ratio == pytest.approx(1.0, abs=0.15)


def test_sign_flip_keeps_magnitudes(arch):
    parent = make(arch, 0)
    (child,) = mutSignFlip(parent.clone(), 0.5, rng=gen(1))
    for k in parent.masks:
        assert torch.equal(child.theta0[k].abs(), parent.theta0[k].abs())
        assert not torch.equal(child.theta0[k], parent.theta0[k])


def test_reseed_signed_constant_keeps_magnitude(arch):
    parent = make(arch, 0, init="signed_constant")
    (child,) = mutInitReseed(parent.clone(), 0.5, rng=gen(1))
    for k in parent.masks:
        w = child.theta0[k]
        expected = torch.full_like(w, parent.init_std[k])
        assert torch.equal(w.abs(), expected)
        assert not torch.equal(w, parent.theta0[k])


def test_reseed_draws_from_the_initialiser(big_arch):
    parent = make(big_arch, 0, init="glorot_normal")
    (child,) = mutInitReseed(parent.clone(), 1.0, rng=gen(1))
    for k in parent.masks:
        ratio = float(child.theta0[k].std()) / parent.init_std[k]
        assert ratio == pytest.approx(1.0, abs=0.15)


def test_mask_uniform_preserves_pair_multiset(arch):
    p1, p2 = make(arch, 0, density=0.3), make(arch, 1, density=0.6)
    c1, c2 = cxMaskUniform(p1.clone(), p2.clone(), rng=gen(1))
    moved = 0
    for k in arch.weight_names:
        a, b = p1.masks[k], p2.masks[k]
        x, y = c1.masks[k], c2.masks[k]
        assert torch.equal(x.int() + y.int(), a.int() + b.int())
        assert int(x.sum()) == int(a.sum()) and int(y.sum()) == int(b.sum())
        moved += int((x != a).sum())
    assert moved > 0
    for k in p1.theta0:
        assert c1.theta0[k] is p1.theta0[k] and c2.theta0[k] is p2.theta0[k]


def test_layer_swap_all_layers(arch):
    p1 = make(arch, 0, density=0.3)
    p2 = make(arch, 1, density=0.6, init="glorot_normal")
    c1, c2 = cxLayerSwap(p1.clone(), p2.clone(), 1.0, rng=gen(1))
    for k in p1.theta0:
        assert torch.equal(c1.theta0[k], p2.theta0[k])
        assert torch.equal(c2.theta0[k], p1.theta0[k])
    for k in p1.masks:
        assert torch.equal(c1.masks[k], p2.masks[k])
        assert torch.equal(c2.masks[k], p1.masks[k])
        assert c1.init_std[k] == p2.init_std[k] and c2.init_std[k] == p1.init_std[k]


def test_layer_swap_keeps_layers_whole(arch):
    p1, p2 = make(arch, 0, density=0.3), make(arch, 1, density=0.6)
    c1, c2 = cxLayerSwap(p1.clone(), p2.clone(), 0.5, rng=gen(2))
    for k in arch.weight_names:
        bias = Ticket.bias_of(k)
        from_p2 = c1.masks[k] is p2.masks[k]
        src1, src2 = (p2, p1) if from_p2 else (p1, p2)
        for key in (k, bias):
            assert c1.theta0[key] is src1.theta0[key]
            assert c2.theta0[key] is src2.theta0[key]
        assert c1.masks[k] is src1.masks[k] and c2.masks[k] is src2.masks[k]


def test_init_blend_keeps_sums(arch):
    p1, p2 = make(arch, 0), make(arch, 1)
    p2.theta0 = {k: v + 0.1 for k, v in p2.theta0.items()}  # non-zero biases too
    c1, c2 = cxInitBlend(p1.clone(), p2.clone(), 0.5, rng=gen(1))
    for k in p1.theta0:
        torch.testing.assert_close(c1.theta0[k] + c2.theta0[k], p1.theta0[k] + p2.theta0[k], rtol=0, atol=1e-5)
        assert not torch.equal(c1.theta0[k], p1.theta0[k])
    for k in p1.masks:
        assert c1.masks[k] is p1.masks[k] and c2.masks[k] is p2.masks[k]


def test_init_blend_alpha_zero_stays_between_parents(arch):
    p1, p2 = make(arch, 0), make(arch, 1)
    c1, _ = cxInitBlend(p1.clone(), p2.clone(), 0.0, rng=gen(1))
    for k in p1.masks:
        lo = torch.minimum(p1.theta0[k], p2.theta0[k]) - 1e-6
        hi = torch.maximum(p1.theta0[k], p2.theta0[k]) + 1e-6
        assert bool(((c1.theta0[k] >= lo) & (c1.theta0[k] <= hi)).all())


# ------------------------------------------------------------------ initTicket


@pytest.mark.parametrize("density", [1e-6, 0.05, 0.3, 0.5, 1.0])
def test_init_kept_counts(density, arch):
    ticket = make(arch, 0, density=density)
    for m in ticket.masks.values():
        assert int(m.sum()) == max(1, round(density * m.numel()))
    assert ticket.uid is None and ticket.parents == ()
    assert ticket.operators == ("initTicket",)
    assert ticket.fitness.valid is False
    check_types(ticket, arch)


def test_init_layer_densities(arch):
    ticket = make(arch, 0, density=0.3, layer_densities={"fc3.weight": 1.0, "fc1.weight": 0.1})
    assert int(ticket.masks["fc3.weight"].sum()) == 24
    assert int(ticket.masks["fc1.weight"].sum()) == round(0.1 * 96)
    assert int(ticket.masks["fc2.weight"].sum()) == round(0.3 * 48)


@pytest.mark.parametrize("init", models.INITIALISERS)
def test_init_std_and_scheme(init, arch):
    ticket = make(arch, 0, init=init)
    assert ticket.init_scheme == init
    assert ticket.init_std == {spec.weight: models.init_std(spec, init) for spec in arch.layers}
    for spec in arch.layers:
        assert not ticket.theta0[spec.bias].any()


def test_init_is_deterministic_and_random(arch):
    a, b, c = make(arch, 0), make(arch, 0), make(arch, 1)
    assert same(a, snapshot(b))
    assert not same(a, snapshot(c))


def test_init_plain_ticket_class(arch):
    ticket = initTicket(Ticket, arch, 0.5, rng=gen(0))
    assert type(ticket) is Ticket
    check_types(ticket, arch)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"density": 0.0}, "density"),
        ({"density": 1.5}, "density"),
        ({"density": -0.2}, "density"),
        ({"density": math.nan}, "density"),
        ({"layer_densities": {"fc9.weight": 0.5}}, "fc1.weight"),
        ({"layer_densities": {"fc1.bias": 0.5}}, "layer_densities"),
        ({"layer_densities": {"fc1.weight": 0.0}}, "layer_densities"),
        ({"init": "kaiming"}, "init"),
    ],
)
def test_init_bad_args(kwargs, match, arch):
    kwargs = {"density": 0.3, **kwargs}
    density = kwargs.pop("density")
    with pytest.raises(ValueError, match=match):
        initTicket(ensure_creator(), arch, density, rng=gen(0), **kwargs)


# ---------------------------------------------------------------- DEAP toolbox


def test_operators_work_in_deap_var_and(arch):
    g = gen(5)
    toolbox = base.Toolbox()
    toolbox.register("individual", initTicket, ensure_creator(), arch, 0.3, rng=g)
    toolbox.register("clone", Ticket.clone)
    toolbox.register("mate", cxMaskUniform, rng=g)
    toolbox.register("mutate", mutMaskSwap, indpb=0.2, rng=g)
    population = [toolbox.individual() for _ in range(4)]
    for uid, ind in enumerate(population):
        ind.uid = uid
        ind.fitness.values = FITNESS
    saved = [snapshot(ind) for ind in population]
    random.seed(0)
    offspring = algorithms.varAnd(population, toolbox, cxpb=1.0, mutpb=1.0)
    for ind, parent, before in zip(offspring, population, saved, strict=False):
        assert not ind.fitness.valid  # varAnd invalidates
        assert ind.operators == ("cxMaskUniform", "mutMaskSwap")
        assert ind.uid is None and len(ind.parents) == 2
        assert kept(ind) == kept(parent)
        assert same(parent, before) and parent.fitness.valid
