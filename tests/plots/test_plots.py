"""Figures from small synthetic record sets: genealogy against a hand-made family tree, gains, every figure."""

from __future__ import annotations

import itertools
import json
import math

import pytest

from evoticket.cli import main
from evoticket.core import paths
from evoticket.core.errors import EvoticketError
from evoticket.plots import ancestors, genealogy, plot_fitness, plot_run
from evoticket.plots.diversity import founder_diversity, jaccard_distance
from evoticket.plots.fitness import x_values, y_limits
from evoticket.plots.lineage import hall_of_fame, main_line
from evoticket.plots.operators import NOISE, compare, draw_operators, gains, what_is_compared
from evoticket.records import RecordWriter

CX, MUT = "cxMaskUniform", "mutMaskSwap"


def rec(uid, gen, parents=(), ops=("initTicket",), acc=0.5, before=0.1, reev=False, diverged=False):
    return {
        "uid": uid,
        "generation": gen,
        "parents": list(parents),
        "operators": list(ops),
        "density": {"fc1.weight": 0.1, "fc2.weight": 0.1},
        "density_total": 0.1,
        "val_acc_before": before,
        "val_loss_before": 2.3,
        "val_acc": 0.0 if diverged else acc,
        "val_loss": None if diverged else 1.5,
        "flags": ["nonfinite"] if diverged else [],
        "reevaluated": reev,
        "train_steps": 10,
        "train_flops": 1000,
        "eval_flops": 10,
    }


# A hand-made family tree: founders 0, 1, 2; 0 survives into generation 1 and is re-evaluated there.
TREE = [
    rec(0, 0, acc=0.40),
    rec(1, 0, acc=0.30),
    rec(2, 0, acc=0.20),
    rec(0, 1, acc=0.44, reev=True),
    rec(3, 1, (0, 1), (CX, MUT), acc=0.45),
    rec(4, 1, (2,), (MUT,), acc=0.25),
    rec(5, 2, (3,), (MUT,), acc=0.50),
    rec(6, 2, (3, 4), (CX, MUT), acc=0.35),
    rec(7, 2, (4,), (MUT,), acc=0.1, diverged=True),
]


def write_run(root, recs, summary=None, name="toy"):
    run = root / "runs" / name
    run.mkdir(parents=True)
    w = RecordWriter(run)
    w.write_individuals(recs)
    for g in sorted({r["generation"] for r in recs}):
        accs = [r["val_acc"] for r in recs if r["generation"] == g]
        bef = [r["val_acc_before"] for r in recs if r["generation"] == g]
        w.write_generation(
            {
                "generation": g,
                "nevals": len(accs),
                "val_acc_max": max(accs),
                "val_acc_avg": sum(accs) / len(accs),
                "val_acc_min": min(accs),
                "val_acc_std": 0.0,
                "val_acc_before_max": max(bef),
                "val_acc_before_avg": sum(bef) / len(bef),
                "val_acc_before_min": min(bef),
                "density_avg": 0.1,
                "best_uid": 0,
                "best_density": 0.1,
                "seconds": 1.0,
                "finetune_seconds": 1.0,
                "train_steps": 10 * len(accs),
                "train_flops": 1000 * len(accs),
                "eval_flops": 10,
            }
        )
    if summary is not None:
        paths.summary(run).write_text(json.dumps(summary), encoding="utf-8")
    return run


def inside(box, figure):
    """Whether a display-space box lies inside the figure's box."""
    return figure.x0 <= box.x0 and box.x1 <= figure.x1 and figure.y0 <= box.y0 and box.y1 <= figure.y1


SUMMARY = {
    "best": {"uid": 5, "generation": 2, "val_acc": 0.5},
    "hall_of_fame": [{"uid": 5, "generation": 2, "val_acc": 0.5}, {"uid": 3, "generation": 1, "val_acc": 0.45}],
    "controls": {
        "dense": {"test_acc_mean": 0.62, "test_acc_std": 0.02, "test_acc": [0.6, 0.64], "density": 1.0},
        "random": {"test_acc_mean": 0.55, "test_acc_std": 0.01, "test_acc": [0.54, 0.56], "density": 0.1},
    },
}


def test_genealogy_helpers_on_the_hand_made_tree():  # the tree itself: tests/records/test_lineage.py
    g = genealogy(TREE)
    assert ancestors(g, [5]) == {5, 3, 0, 1}
    assert main_line(g, 6) == [0, 3, 6]  # 3 (0.45) is fitter than 4 (0.25); 0 (0.40) than 1 (0.30)


def test_gains_compare_a_child_with_its_better_parent_and_reevaluations_with_the_last_one():
    out = gains(TREE)
    assert out[f"{CX} → {MUT}"] == pytest.approx([0.45 - 0.44, 0.35 - 0.45])  # 0's re-evaluation in gen 1
    assert out[MUT] == pytest.approx([0.25 - 0.20, 0.50 - 0.45, 0.0 - 0.25])
    assert out[NOISE] == pytest.approx([0.44 - 0.40])


def rung(record, last, values=None):
    """``record`` read at successive-halving rung ``last``, with ``rung_val_acc`` when ``values`` are given."""
    record = {**record, "rung": last}
    if values is not None:
        record["rung_val_acc"] = list(values)
    return record


# Parent 0 reached rung 2 in generation 0 and rung 1 when re-evaluated with its children in generation 1;
# child 3 stopped at rung 0, child 4 reached rung 1 like 0's re-evaluation, child 5 (of 2, not re-evaluated)
# reached rung 2 like 2's generation-0 evaluation. The rungs' accuracies rise with training.
RUNGS = [
    rung(rec(0, 0, acc=0.60), 2, [0.40, 0.50, 0.60]),
    rung(rec(1, 0, acc=0.30), 0, [0.30]),
    rung(rec(2, 0, acc=0.55), 2, [0.35, 0.45, 0.55]),
    rung(rec(0, 1, acc=0.52, reev=True), 1, [0.42, 0.52]),
    rung(rec(1, 1, acc=0.33, reev=True), 0, [None]),  # diverged at rung 0: counts as 0.0
    rung(rec(3, 1, (0,), (MUT,), acc=0.45), 0, [0.45]),
    rung(rec(4, 1, (0, 1), (CX, MUT), acc=0.50), 1, [0.41, 0.50]),
    rung(rec(5, 1, (2,), (MUT,), acc=0.58), 2, [0.36, 0.47, 0.58]),
]


def test_gains_compare_at_rung_0_with_the_parents_same_generation_reevaluation():
    out = compare(RUNGS)
    assert out.gains[MUT] == pytest.approx([0.45 - 0.42, 0.36 - 0.35])  # 0 re-evaluated in gen 1; 2 not
    assert out.gains[f"{CX} → {MUT}"] == pytest.approx([0.41 - 0.42])  # the better parent at rung 0
    assert out.gains[NOISE] == pytest.approx([0.42 - 0.40, 0.0 - 0.30])
    assert out.left_out == {} and out.at_rung0 == 5 and out.rungs == frozenset()
    assert gains(RUNGS) == out.gains


def test_gains_without_rung_accuracies_keep_only_pairs_at_equal_rungs():
    old = [{k: v for k, v in r.items() if k != "rung_val_acc"} for r in RUNGS]
    out = compare(old)
    # 3 (rung 0) against 0's re-evaluation (rung 1): left out, not 0.45 - 0.52 nor 0.45 - 0.60
    assert out.gains[MUT] == pytest.approx([0.58 - 0.55])  # 5 and 2 both at rung 2
    assert f"{CX} → {MUT}" not in out.gains  # 4 at rung 1, parent 1 at rung 0
    assert out.gains[NOISE] == pytest.approx([0.33 - 0.30])  # 0: rung 2 then rung 1, left out
    assert out.left_out == {MUT: 1, f"{CX} → {MUT}": 1, NOISE: 1}
    assert out.at_rung0 == 0 and out.rungs == {0, 2}
    assert what_is_compared(out, {"finetune": {"steps": 34}, "ga": {"halving_rungs": 3}}) == (
        "at equal successive-halving rungs"
    )
    assert what_is_compared(compare(RUNGS), {"finetune": {"steps": 34}, "ga": {"halving_rungs": 3}}) == (
        "at rung 0, i.e. after 34 fine-tuning steps"
    )
    assert what_is_compared(compare(TREE), {"finetune": {"steps": 10}}) == "after 10 fine-tuning steps"


CONFIG = "[finetune]\nsteps = 34\n\n[ga]\nhalving_rungs = 3\n"


@pytest.mark.parametrize("with_rungs", [True, False])
def test_operators_figure_says_what_is_compared_and_what_was_left_out(tmp_path, with_rungs):
    recs = RUNGS if with_rungs else [{k: v for k, v in r.items() if k != "rung_val_acc"} for r in RUNGS]
    run = write_run(tmp_path, recs, name="a-run-name-as-long-as-evoticket-makes-them-20250611-093015")
    paths.config(run).write_text(CONFIG, encoding="utf-8")
    fig = draw_operators(run)
    fig.canvas.draw()
    ax, renderer = fig.axes[0], fig.canvas.get_renderer()
    title, note = ax.get_title().replace("\n", " "), fig.texts[0].get_text().replace("\n", " ")
    if with_rungs:
        assert "at rung 0, i.e. after 34 fine-tuning steps" in title and "left out" not in note
    else:
        assert "at equal successive-halving rungs" in title and "3 of 5 pairs left out" in note
    assert "negative mean does not make an operator useless" in note
    assert inside(ax.title.get_window_extent(renderer), fig.bbox)
    assert inside(fig.texts[0].get_window_extent(renderer), fig.bbox)


# A long lineage in one crowded row: ticket g (generation g) is a mutation of ticket g - 1; odd generations
# improve on their parent, even ones fall back, so half the steps carry a gain label.
CHAIN = [rec(0, 0, acc=0.5)] + [
    rec(g, g, (g - 1,), (MUT,), acc=0.5 + 0.001 * g + (0.01 if g % 2 else 0.0)) for g in range(1, 121)
]
CHAIN_SUMMARY = {
    "best": {"uid": 120, "generation": 120, "val_acc": 0.62},
    "hall_of_fame": [{"uid": u, "generation": u, "val_acc": 0.6} for u in (60, 61, 63, 64, 119)],
}
LONG_NAME = "mnist1d-mlp-a-run-name-as-long-as-evoticket-makes-them-20250611-093015"


def test_lineage_title_fits_and_each_uid_label_is_nearest_its_own_node(tmp_path):
    from evoticket.plots.lineage import draw_lineage, layout

    run = write_run(tmp_path, CHAIN, CHAIN_SUMMARY, name=LONG_NAME)
    fig = draw_lineage(run)
    fig.canvas.draw()
    ax, renderer = fig.axes[0], fig.canvas.get_renderer()
    assert inside(ax.title.get_window_extent(renderer), fig.bbox)
    pos = layout(genealogy(CHAIN))  # the chain is its own ancestry
    shown = {n: ax.transData.transform(p) for n, p in pos.items()}
    boxes = {int(t.get_text()): t.get_window_extent(renderer) for t in ax.texts}
    assert sorted(boxes) == [60, 61, 63, 64, 119, 120]

    def distance(point, box):
        x, y = point
        return math.hypot(max(box.x0 - x, 0, x - box.x1), max(box.y0 - y, 0, y - box.y1))

    for uid, box in boxes.items():
        own = distance(shown[uid], box)
        assert own < min(distance(p, box) for n, p in shown.items() if n != uid), uid
        assert own < 20  # right next to its ring (display pixels at 100 dpi)
    legend = ax.get_legend().get_window_extent(renderer)
    assert not any(a.overlaps(b) for a, b in itertools.combinations([*boxes.values(), legend], 2))


def test_lineage_fitness_title_fits_and_gain_labels_do_not_overlap(tmp_path):
    from evoticket.plots.lineage_fitness import draw_lineage_fitness

    run = write_run(tmp_path, CHAIN, CHAIN_SUMMARY, name=LONG_NAME)
    fig = draw_lineage_fitness(run)
    fig.canvas.draw()
    ax, renderer = fig.axes[0], fig.canvas.get_renderer()
    assert inside(ax.title.get_window_extent(renderer), fig.bbox)
    boxes = [t.get_window_extent(renderer) for t in ax.texts]
    assert all(t.get_text().endswith(" mut") for t in ax.texts) and len(boxes) >= 10
    assert not any(a.overlaps(b) for a, b in itertools.combinations(boxes, 2))
    assert not any(b.overlaps(ax.get_legend().get_window_extent(renderer)) for b in boxes)
    assert f"{60 - len(boxes)} of 60 gains not labelled" in ax.get_xlabel()  # the 60 odd generations


def test_hall_of_fame_from_the_summary_or_from_the_records(tmp_path):
    g = genealogy(TREE)
    assert hall_of_fame(write_run(tmp_path / "a", TREE, SUMMARY), g) == [5, 3]
    assert hall_of_fame(write_run(tmp_path / "b", TREE), g, size=2) == [5, 3]


def test_diversity_counts_founders_and_jaccard():
    rows = founder_diversity(TREE)
    assert [r["founders"] for r in rows] == [3, 3, 3]
    assert rows[0]["founder_jaccard"] == 1.0  # three distinct founders
    assert jaccard_distance({1, 2}, {2, 3}) == pytest.approx(2 / 3)


def test_axes_fit_the_data_and_compute_accumulates():
    low, high = y_limits([0.40, 0.43])
    assert 0.39 < low < 0.40 and 0.43 < high < 0.44
    rows = [{"generation": 0, "train_flops": 2e12}, {"generation": 1, "train_flops": 3e12}]
    assert x_values(rows, "train_flops")[0] == [2.0, 5.0]
    with pytest.raises(EvoticketError):
        x_values(rows, "seconds")


def test_plot_run_writes_every_figure_deterministically(tmp_path):
    run = write_run(tmp_path, TREE, SUMMARY)
    first = plot_run(run, tmp_path / "p1")
    names = sorted({p.stem for p in first})
    assert names == sorted(["fitness", "lineage", "lineage_fitness", "operators", "density", "diversity"])
    assert all(p.stat().st_size > 5000 for p in first)
    assert all(p.read_bytes()[:4] == (b"\x89PNG" if p.suffix == ".png" else b"%PDF") for p in first)
    second = plot_run(run, tmp_path / "p2", x_axis="train_flops")
    again = plot_run(run, tmp_path / "p3")
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in again]
    assert second[0].read_bytes() != first[0].read_bytes()


def test_partial_records_plot(tmp_path):
    run = write_run(tmp_path, TREE[:5])  # killed in generation 1: no summary, no best ticket
    written = plot_run(run, tmp_path / "plots")
    assert {p.stem for p in written} >= {"fitness", "lineage", "operators"}
    assert "masks" not in {p.stem for p in written}


def test_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(EvoticketError, match="not a run directory"):
        plot_fitness(tmp_path, tmp_path / "f.png")
    assert main(["plot", str(tmp_path / "missing")]) == 2
    assert main(["plot", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "no such run directory" in err


def test_cli_plot_writes_into_out(tmp_path, capsys):
    run = write_run(tmp_path, TREE, SUMMARY)
    assert main(["plot", str(run), "--out", str(tmp_path / "figs")]) == 0
    assert (tmp_path / "figs" / "fitness.png").is_file() and (tmp_path / "figs" / "lineage.pdf").is_file()


def imp_rec(rnd, density, acc, random_acc):
    r = rec(rnd, rnd, (rnd - 1,) if rnd else (), ("pruneMagnitude",) if rnd else ("initTicket",), acc=acc + 0.01)
    r.update(density_total=density, test_acc=acc, best_step=40 + rnd, controls={})
    if rnd:
        r["controls"] = {"random": {"test_acc": random_acc, "val_acc": random_acc, "best_step": 30, "train_flops": 9}}
    return r


IMP = [imp_rec(0, 1.0, 0.60, None), imp_rec(1, 0.8, 0.63, 0.59), imp_rec(2, 0.64, 0.65, 0.55)]
IMP_SUMMARY = {
    "method": "imp",
    "best": {"uid": 2, "generation": 2, "val_acc": 0.66},
    "controls": {
        k: {"test_acc_mean": m, "test_acc_std": 0.01, "density": 1.0 if k == "dense" else 0.64}
        for k, m in (("ticket", 0.66), ("dense", 0.6), ("random", 0.55), ("reinit", 0.58))
    },
}


def test_imp_rounds_table_keeps_each_round_and_its_random_control():
    from evoticket.plots import imp_rounds

    rows = imp_rounds([*IMP, imp_rec(2, 0.64, float("nan"), 0.5)])  # a resumed round: its last record counts
    assert [r["round"] for r in rows] == [0, 1, 2]
    assert rows[0]["random_test_acc"] is None and rows[1]["random_test_acc"] == 0.59
    assert rows[2]["test_acc"] is None and rows[1]["best_step"] == 41


def test_an_imp_run_draws_imp_rounds_and_no_population_figure(tmp_path):
    from evoticket.plots import POPULATION_FIGURES

    for name, summary in (("done", IMP_SUMMARY), ("running", None)):  # running: told by records' test_acc
        run = write_run(tmp_path / name, IMP, summary)
        stems = {p.stem for p in plot_run(run, tmp_path / name / "plots")}
        assert {"fitness", "imp_rounds"} <= stems and not stems & POPULATION_FIGURES
    assert "imp_rounds" not in {p.stem for p in plot_run(write_run(tmp_path / "ga", TREE, SUMMARY), tmp_path / "g")}


def test_cli_compare_overlays_runs_and_tabulates_them(tmp_path, capsys):
    summary = {**SUMMARY, "method": "ga", "data": "mnist1d", "model": "mlp"}
    summary["controls"] = {
        **SUMMARY["controls"],
        "ticket": {"test_acc_mean": 0.6, "test_acc_std": 0.01, "density": 0.1},
    }
    summary["compute"] = {"search": {"train_steps": 90, "train_flops": 9000}}
    done = write_run(tmp_path / "a", TREE, summary)
    running = write_run(tmp_path / "b", TREE[:5])  # no summary yet: its last generation, empty final columns
    running = running.rename(running.parent / "running")
    out = tmp_path / "cmp"
    assert main(["compare", str(done), str(running), "--out", str(out), "--x-axis", "train_flops"]) == 0
    printed = capsys.readouterr().out
    assert "0.6000 ± 0.0100" in printed and "running" in printed
    assert all((out / f"compare.{ext}").stat().st_size > 1000 for ext in ("png", "pdf"))
    import csv

    rows = list(csv.DictReader((out / "compare.csv").open(encoding="utf-8")))
    assert [r["run"] for r in rows] == ["toy", "running"]
    assert rows[0]["method"] == "ga" and rows[0]["search_train_steps"] == "90" and rows[0]["density"] == "0.1"
    assert (
        rows[1]["last_generation"] == "1" and rows[1]["ticket_test_acc_mean"] == "" and rows[1]["finished"] == "False"
    )
    doc = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    assert doc["runs"][0]["random_test_acc_mean"] == 0.55 and doc["runs"][1]["dense_test_acc_mean"] is None


def test_cli_compare_errors_are_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = write_run(tmp_path, TREE)
    assert main(["compare"]) == 2
    assert main(["compare", str(run), str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "at least one RUN_DIR" in err and "no such run directory" in err
    assert main(["compare", str(run), "--name", "x"]) == 0
    assert (tmp_path / "plots" / "compare-x" / "compare.csv").is_file()
