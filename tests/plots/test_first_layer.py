"""The first-layer masks figure of several runs: ``evoticket compare RUN_DIR ... --masks``."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from evoticket.campaign import run_campaign
from evoticket.cli import main
from evoticket.config import CampaignConfig
from evoticket.core import paths
from evoticket.genome import locality
from evoticket.genome.files import read_ticket_file
from evoticket.plots import common
from evoticket.plots.first_layer import draw_first_layer_masks, method_words, sort_by_centre, ticket_file

COMMON = [
    "model.hidden=[16]",
    "optimizer.batch_size=50",
    "campaign.final_steps=4",
    "campaign.final_eval_every=2",
    "campaign.final_seeds=1",
    "campaign.progress=false",
    "campaign.device=cpu",
    "campaign.plots=none",
]
RUNS = {
    "ga": [
        "ga.population=4",
        "ga.offspring=4",
        "ga.generations=1",
        "finetune.steps=2",
        "ga.halving_rungs=1",
        "ticket.density=0.3",
        "ticket.placement=local",
        "ga.mutations=['mutWindowShift', 'mutWindowGrow']",
    ],
    "rigl": ["method=rigl", "train.steps=4", "train.eval_every=2", "rigl.delta_t=2", "ticket.density=0.3"],
    "imp": [
        "method=imp",
        "imp.steps=4",
        "imp.eval_every=4",
        "imp.rate=0.5",
        "imp.output_rate=0.5",
        "ticket.density=0.5",
    ],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny GA (local windows), RigL and IMP run of the same network."""
    root = tmp_path_factory.mktemp("first-layer")
    out = {}
    for name, more in RUNS.items():
        config = CampaignConfig().with_overrides([*COMMON, *more])
        result = run_campaign(
            config, name=name, runs_dir=root / "runs", plots_dir=root / "plots", out=open(os.devnull, "w")
        )
        out[name] = result.run_dir
    return out


def test_sort_by_centre_orders_rows_by_their_kept_positions():
    rows = np.array([[0, 0, 1, 1], [0, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0]], dtype=bool)
    assert sort_by_centre(rows).tolist() == [2, 3, 0, 1]  # centres 2.5, empty, 0.5, 1.5; the empty row last


def test_the_ticket_drawn_is_the_mask_each_method_trained(runs):
    """best_ticket.pt holds the mask the final comparison trained (trained_ticket.pt's ticket), for every method."""
    for run_dir in runs.values():
        best, _, _ = read_ticket_file(ticket_file(run_dir))
        trained = torch.load(paths.trained_ticket(run_dir), weights_only=True)["seeds"][0]["ticket"]["masks"]
        assert all(torch.equal(trained[k], best.masks[k]) for k in best.masks), run_dir.name


def test_compare_masks_writes_the_figure_with_methods_and_locality(runs, tmp_path, capsys):
    out = tmp_path / "cmp"
    dirs = [str(runs[n]) for n in ("ga", "rigl", "imp")]
    assert main(["compare", *dirs, "--masks", "--out", str(out)]) == 0
    png = out / "first_layer_masks.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (out / "first_layer_masks.pdf").is_file()
    assert str(png) in capsys.readouterr().out
    fig = draw_first_layer_masks([runs[n] for n in ("ga", "rigl", "imp")])
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    common.pyplot().close(fig)
    assert len(titles) == 3
    assert titles[0].startswith("ga\nga: ") and titles[1].startswith("rigl\nRigL") and "IMP" in titles[2]
    best, _, _ = read_ticket_file(ticket_file(runs["ga"]))
    score = locality(best.masks["fc1.weight"])
    assert f"locality {score.score:.2f} vs {score.expected:.2f} random, {score.ratio:.1f}x" in titles[0]
    assert method_words(runs["rigl"]).startswith("RigL")


def test_a_running_run_gets_an_empty_panel(runs, tmp_path):
    running = tmp_path / "running"
    running.mkdir()
    for name in ("generations.csv", "config.toml", "method.json"):
        (running / name).write_bytes((runs["rigl"] / name).read_bytes())
    fig = draw_first_layer_masks([runs["ga"], running])
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    common.pyplot().close(fig)
    assert any("no ticket yet" in t for t in texts)


def test_bad_runs_are_one_line_errors_and_nothing_is_written(runs, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", str(runs["ga"]), str(tmp_path / "missing"), "--masks", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("evoticket: error: ") and "missing: no such run directory" in err
    assert err.count("\n") == 1 and not out.exists()
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("generations.csv", "config.toml"):
        (broken / name).write_bytes((runs["ga"] / name).read_bytes())
    (broken / "best_ticket.pt").write_bytes(b"not a ticket")
    assert main(["compare", str(broken), "--masks", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("evoticket: error: ") and "best_ticket.pt" in err and err.count("\n") == 1
    assert not out.exists()
