"""Position-aware mask operators (mutWindowShift, mutWindowGrow, mutPatternCopy) and the local initial masks.

The registry-parametrised contract tests of ``test_operators.py`` cover these operators too (DEAP's contract,
lineage, determinism, pickling); here: each one's promise on hand-made masks, kept counts per row on Linear,
Conv1d and Conv2d masks, seeded replay, argument checks, and a tiny campaign.
"""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from evoticket.campaign import run_campaign
from evoticket.campaign.export import export_run
from evoticket.config import CampaignConfig
from evoticket.core.errors import ConfigError
from evoticket.evolution.toolbox import check_operators
from evoticket.genome import Ticket, ensure_creator, kept_count, locality, position_layout, random_mask
from evoticket.genome.files import read_ticket_file
from evoticket.models import build_architecture
from evoticket.operators import OPERATORS, initTicket, mutPatternCopy, mutWindowGrow, mutWindowShift
from evoticket.operators.recipe import Seeded, SeededInit, ancestry, replay
from evoticket.records import read_individuals

POSITIONAL = {"mutWindowShift": mutWindowShift, "mutWindowGrow": mutWindowGrow, "mutPatternCopy": mutPatternCopy}


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def hand(*rows: list[int], length: int = 8, name: str = "fc1.weight") -> Ticket:
    """A one-layer ticket whose mask rows keep the given input positions."""
    mask = torch.zeros(len(rows), length, dtype=torch.bool)
    for r, kept in enumerate(rows):
        mask[r, kept] = True
    return Ticket({name: torch.randn(mask.shape, generator=gen(0))}, {name: mask}, "kaiming_normal", {name: 1.0})


def kept_rows(ticket: Ticket, name: str = "fc1.weight") -> list[list[int]]:
    return [row.nonzero().squeeze(1).tolist() for row in ticket.masks[name]]


def per_row(ticket: Ticket) -> dict[str, torch.Tensor]:
    out = {}
    for name, mask in ticket.masks.items():
        rows, _ = position_layout(mask.shape)
        out[name] = mask.reshape(rows, -1).sum(1)
    return out


def layered(seed: int, density: float) -> Ticket:
    """A ticket with a Linear, a Conv1d and a Conv2d mask, in that order (random masks at ``density``)."""
    shapes = {"fc1.weight": (6, 12), "conv.weight": (4, 3, 5), "conv2d.weight": (3, 2, 3, 3)}
    g = gen(seed)
    masks = {k: random_mask(s, kept_count(density, torch.Size(s).numel()), g) for k, s in shapes.items()}
    theta0 = {k: torch.randn(s, generator=g) for k, s in shapes.items()}
    return Ticket(theta0, masks, "kaiming_normal", dict.fromkeys(shapes, 1.0))


@pytest.fixture(scope="module")
def arch():
    return build_architecture("mlp", (40,), 10, hidden=[16])


# ------------------------------------------------------------------ counts


@pytest.mark.parametrize("name", sorted(POSITIONAL))
@pytest.mark.parametrize("layers", ["first", "all"])
@pytest.mark.parametrize("density", [0.1, 0.5, 0.9])
def test_every_row_keeps_its_count_on_linear_and_conv_masks(name, layers, density):
    ticket = layered(1, density)
    before, saved = per_row(ticket), dict(ticket.masks)
    POSITIONAL[name](ticket, indpb=1.0, layers=layers, rng=gen(2))
    after = per_row(ticket)
    for layer in before:
        assert torch.equal(after[layer], before[layer]), layer
    changed = [k for k in saved if not torch.equal(saved[k], ticket.masks[k])]
    assert set(changed) <= ({"fc1.weight"} if layers == "first" else set(saved))
    if layers == "all" and density == 0.5:
        assert "conv2d.weight" in changed  # 2D kernels are varied too, not skipped


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(sorted(POSITIONAL)),
    indpb=st.floats(0.0, 1.0),
    density=st.floats(0.01, 1.0),
    shift=st.integers(1, 5),
    seed=st.integers(0, 2**31 - 1),
)
def test_counts_property(name, indpb, density, shift, seed):
    ticket = layered(seed % 100, density)
    before = per_row(ticket)
    size = {"n": shift} if name == "mutWindowGrow" else {"max_shift": shift}
    POSITIONAL[name](ticket, indpb=indpb, layers="all", rng=gen(seed), **size)
    assert all(torch.equal(per_row(ticket)[k], v) for k, v in before.items())


# ------------------------------------------------------------------ each operator's promise


def test_shift_moves_the_pattern_and_regrows_at_the_edge():
    seen = set()
    for seed in range(12):
        ticket = hand([1, 2, 4], [5, 6, 7], [0, 1, 2])
        mutWindowShift(ticket, indpb=1.0, max_shift=1, rng=gen(seed))
        inner, edge, left = kept_rows(ticket)
        assert inner in ([0, 1, 3], [2, 3, 5])  # moved by -1 or +1
        assert edge in ([4, 5, 6], [5, 6, 7])  # +1 pushes 7 off the edge: it regrows at 5, nearest the window
        assert left in ([0, 1, 2], [1, 2, 3])  # -1 pushes 0 off the edge: it regrows next to the window
        seen.add(inner[0])
    assert seen == {0, 2}  # both directions drawn
    ticket = hand([1, 2, 4])
    mutWindowShift(ticket, indpb=0.0, rng=gen(0))
    assert kept_rows(ticket) == [[1, 2, 4]]


def test_shift_moves_a_2d_kernel_pattern_by_a_vector():
    mask = torch.zeros(1, 1, 3, 3, dtype=torch.bool)
    mask[0, 0, 1, 1] = True
    moved = set()
    for seed in range(40):
        ticket = Ticket({"c.weight": torch.zeros(1, 1, 3, 3)}, {"c.weight": mask}, "kaiming_normal", {"c.weight": 1.0})
        mutWindowShift(ticket, indpb=1.0, max_shift=1, rng=gen(seed))
        (position,) = ticket.masks["c.weight"].reshape(-1).nonzero().squeeze(1).tolist()
        moved.add(position)
    assert moved == {0, 1, 2, 3, 5, 6, 7, 8}  # every neighbour of the centre, never the centre


def test_grow_makes_windows_more_contiguous(arch):
    ticket = initTicket(Ticket, arch, 0.25, rng=gen(3))
    before = ticket.masks["fc1.weight"]
    mutWindowGrow(ticket, indpb=1.0, n=3, rng=gen(4))
    after = ticket.masks["fc1.weight"]
    assert locality(after).score > locality(before).score
    pairs = lambda m: (m[:, :-1] & m[:, 1:]).sum(1)  # noqa: E731
    assert bool((pairs(after) >= pairs(before)).all())  # no row loses an adjacent pair
    assert torch.equal(ticket.masks["fc2.weight"], initTicket(Ticket, arch, 0.25, rng=gen(3)).masks["fc2.weight"])
    mutWindowGrow(ticket, indpb=1.0, n=40, rng=gen(5))
    full = ticket.masks["fc1.weight"]
    rows = int((full.sum(1) > 0).sum())
    assert locality(full).score == pytest.approx(1 - rows / int(full.sum()))  # every row one window


def test_grow_leaves_a_window_alone_and_moves_an_outlier_inwards():
    ticket = hand([2, 3, 4], [0, 3, 4, 5])
    mutWindowGrow(ticket, indpb=1.0, n=1, rng=gen(0))
    assert kept_rows(ticket) == [[2, 3, 4], [2, 3, 4, 5]]  # 0 is farthest from the centre 3: it moves next to 3


def test_copy_makes_the_destination_the_shifted_source():
    for seed in range(10):
        ticket = hand([2, 3, 5], [3, 4, 6], length=10)
        mutPatternCopy(ticket, indpb=1.0, max_shift=1, rng=gen(seed))
        first, second = kept_rows(ticket)
        assert second in ([1, 2, 4], [2, 3, 5], [3, 4, 6])  # row 0's pattern shifted by -1, 0 or +1
        assert first in ([2, 3, 5], [3, 4, 6], [4, 5, 7])  # row 1's
    for seed in range(10):  # the destination keeps its own count: the copy's positions nearest its centre
        ticket = hand([3, 4, 5, 6], [0, 9], length=10)
        mutPatternCopy(ticket, indpb=1.0, max_shift=1, rng=gen(seed))
        first, second = kept_rows(ticket)
        assert second in ([3, 4], [4, 5], [5, 6])
        assert len(first) == 4


def test_operators_change_only_masks_and_replace_tensors(arch):
    for name, op in POSITIONAL.items():
        ticket = initTicket(Ticket, arch, 0.3, rng=gen(0))
        theta0, masks = dict(ticket.theta0), {k: v.clone() for k, v in ticket.masks.items()}
        shared = ticket.masks["fc1.weight"]
        op(ticket, indpb=1.0, rng=gen(1))
        assert all(ticket.theta0[k] is v for k, v in theta0.items()), name
        assert torch.equal(shared, masks["fc1.weight"]), name  # the old tensor was replaced, not edited
        assert not torch.equal(ticket.masks["fc1.weight"], masks["fc1.weight"]), name


# ------------------------------------------------------------------ determinism, replay


@pytest.mark.parametrize("name", sorted(POSITIONAL))
def test_same_seed_same_masks_other_seed_other_masks(name, arch):
    def run(seed):
        ticket = initTicket(Ticket, arch, 0.3, rng=gen(0))
        return POSITIONAL[name](ticket, indpb=0.5, layers="all", rng=gen(seed))[0].masks

    a, b, c = run(7), run(7), run(8)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_seeded_operators_replay_from_their_recipe(arch):
    """A local initial ticket, then each positional operator seeded: the recipe graph rebuilds the ticket bit for
    bit (what ``evoticket export --compact`` does with a run's best ticket)."""
    rng = gen(11)
    init = SeededInit(Ticket, arch, 0.3, {"init": "kaiming_normal", "placement": "local"}, rng)
    ticket = init()
    trees = {0: ticket.recipe}
    ticket.uid, ticket.recipe = 0, {"uid": 0}  # as the evolution loop leaves an evaluated individual
    for uid, name in enumerate(POSITIONAL, start=1):
        seeded = Seeded(name, OPERATORS[name].func, OPERATORS[name].arguments({"indpb": 0.5, "layers": "all"}), rng)
        ticket = seeded(ticket.clone())[0]
        assert ticket.recipe["op"] == name and ticket.recipe["of"] == [{"uid": uid - 1}]
        trees[uid] = ticket.recipe
        ticket.uid, ticket.recipe = uid, {"uid": uid}
    again = replay(ancestry(3, trees), 3, arch)
    for k in ticket.masks:
        assert torch.equal(again.masks[k], ticket.masks[k]), k
        assert torch.equal(again.theta0[k], ticket.theta0[k]), k
    assert locality(again.masks["fc1.weight"]).ratio > 1.5


# ------------------------------------------------------------------ local initial masks


def test_local_init_keeps_the_random_inits_counts_in_windows(arch):
    layer_densities = {"fc2.weight": 0.5}
    random = initTicket(Ticket, arch, 0.2, rng=gen(0), layer_densities=layer_densities)
    local = initTicket(Ticket, arch, 0.2, rng=gen(0), layer_densities=layer_densities, placement="local")
    plain = initTicket(Ticket, arch, 0.2, rng=gen(0), layer_densities=layer_densities, placement="random")
    assert all(torch.equal(plain.masks[k], random.masks[k]) for k in random.masks)  # the default is unchanged
    assert {k: int(m.sum()) for k, m in local.masks.items()} == {k: int(m.sum()) for k, m in random.masks.items()}
    assert all(torch.equal(local.theta0[k], random.theta0[k]) for k in random.theta0)
    first = local.masks["fc1.weight"]
    assert locality(first).score == pytest.approx(1 - 16 / int(first.sum()))  # 16 windows
    assert locality(first).ratio > 3 > locality(random.masks["fc1.weight"]).ratio
    with pytest.raises(ValueError, match="placement"):
        initTicket(ensure_creator(), arch, 0.2, rng=gen(0), placement="windows")


# ------------------------------------------------------------------ arguments


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("mutWindowShift", {"max_shift": 0}, "max_shift"),
        ("mutWindowShift", {"max_shift": 1.5}, "max_shift"),
        ("mutWindowShift", {"max_shift": float("nan")}, "max_shift"),
        ("mutPatternCopy", {"max_shift": True}, "max_shift"),
        ("mutWindowGrow", {"n": 0}, "^n: must be an integer >= 1"),
        ("mutWindowGrow", {"layers": "middle"}, "layers"),
        ("mutPatternCopy", {"indpb": 2.0}, "indpb"),
    ],
)
def test_bad_arguments_raise(name, kwargs, match, arch):
    ticket = initTicket(Ticket, arch, 0.3, rng=gen(0))
    with pytest.raises(ValueError, match=match):
        POSITIONAL[name](ticket, **{**OPERATORS[name].defaults, **kwargs}, rng=gen(0))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "ga.operator_args.mutWindowShift.max_shift=0",
            "ga.operator_args.mutWindowShift.max_shift: must be an integer >= 1, got 0.0",
        ),
        ("ga.operator_args.mutWindowGrow.n=2.5", "ga.operator_args.mutWindowGrow.n: must be an integer >= 1, got 2.5"),
        (
            "ga.operator_args.mutPatternCopy.layers=middle",
            "ga.operator_args.mutPatternCopy.layers: must be one of 'first', 'all', got 'middle'",
        ),
        (
            "ga.operator_args.mutWindowShift.shift=1",
            "ga.operator_args.mutWindowShift.shift: unknown argument; valid: indpb, max_shift, layers",
        ),
    ],
)
def test_bad_operator_arguments_are_one_line_config_errors(override, message):
    config = CampaignConfig().with_overrides(["ga.mutations=['mutWindowShift', 'mutWindowGrow']", override])
    with pytest.raises(ConfigError) as e:
        check_operators(config)
    assert str(e.value) == message


def test_bad_placement_is_a_config_error():
    with pytest.raises(ConfigError, match=r"^ticket.placement: must be one of 'random', 'local'"):
        CampaignConfig().with_overrides(["ticket.placement=windows"])


# ------------------------------------------------------------------ a campaign


TINY = [
    "model.hidden=[16]",
    "ga.population=4",
    "ga.offspring=4",
    "ga.generations=1",
    "finetune.steps=2",
    "finetune.mode=baldwinian",
    "ga.halving_rungs=1",
    "optimizer.batch_size=50",
    "campaign.final_steps=4",
    "campaign.final_eval_every=2",
    "campaign.final_seeds=1",
    "campaign.progress=false",
    "campaign.device=cpu",
    "campaign.plots=none",
    "ticket.density=0.3",
]


def test_a_tiny_campaign_evolves_local_windows_and_replays_them(tmp_path):
    config = CampaignConfig().with_overrides(
        [
            *TINY,
            "ga.mutations=['mutWindowShift', 'mutWindowGrow']",
            "ga.operator_args.mutWindowShift.max_shift=3",  # read as 3.0, a whole number
            "ticket.placement=local",
        ]
    )
    result = run_campaign(
        config, name="local", runs_dir=tmp_path / "runs", plots_dir=tmp_path / "plots", out=open(os.devnull, "w")
    )
    rows = read_individuals(result.run_dir)
    ops = {op for r in rows for op in r["operators"]}
    assert {"mutWindowShift", "mutWindowGrow"} <= ops
    assert all(r["recipe"] is not None for r in rows if not r["reevaluated"])
    assert rows[0]["recipe"]["args"]["placement"] == "local"
    best, _, _ = read_ticket_file(result.run_dir / "best_ticket.pt")
    assert sum(int(m.sum()) for m in best.masks.values()) == sum(
        kept_count(0.3, m.numel()) for m in best.masks.values()
    )
    assert locality(best.masks["fc1.weight"]).ratio > 1.5
    report = export_run(result.run_dir, fmt="recipe").report
    assert report["exact"] and report["stored"] == []  # the positional operators replay from their seeds
