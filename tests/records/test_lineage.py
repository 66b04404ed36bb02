"""Records as Python objects: the genealogy against a hand-made family tree, and DataFrames (pandas optional)."""

from __future__ import annotations

import builtins
import json

import pytest

from evoticket import records
from evoticket.core import paths
from evoticket.core.errors import EvoticketError
from evoticket.records import ancestors, founders, lineage_graph

CX, MUT = "cxMaskUniform", "mutMaskSwap"


def rec(uid, gen, parents=(), ops=("initTicket",), acc=0.5, diverged=False, **extra):
    return {
        "uid": uid,
        "generation": gen,
        "parents": list(parents),
        "operators": list(ops),
        "density": {"fc1.weight": 0.1, "fc2.weight": 0.2},
        "density_total": 0.12,
        "val_acc_before": 0.1,
        "val_acc": None if diverged else acc,
        "flags": ["nonfinite"] if diverged else [],
        **extra,
    }


# A hand-made family tree: founders 0, 1, 2; 0 survives into generation 1 and is re-evaluated there.
TREE = [
    rec(0, 0, acc=0.40),
    rec(1, 0, acc=0.30),
    rec(2, 0, acc=0.20),
    rec(0, 1, acc=0.44, reevaluated=True),
    rec(3, 1, (0, 1), (CX, MUT), acc=0.45),
    rec(4, 1, (2,), (MUT,), acc=0.25),
    rec(5, 2, (3,), (MUT,), acc=0.50),
    rec(6, 2, (3, 4), (CX, MUT), acc=0.35),
    rec(7, 2, (4,), (MUT,), diverged=True),
]


def write(run, recs):
    run.mkdir(parents=True)
    records.RecordWriter(run).write_individuals(recs)
    return run


def test_lineage_graph_matches_the_hand_made_tree():
    g = lineage_graph(TREE)
    assert set(g.nodes) == set(range(8))
    assert set(g.edges) == {(0, 3), (1, 3), (3, 5), (3, 6), (4, 6), (2, 4), (4, 7)}
    assert g.nodes[0]["generation"] == 0  # re-evaluated in generation 1, born in 0
    assert g.nodes[0]["fitness"] == 0.40 and g.nodes[0]["val_acc_best"] == 0.44 and g.nodes[0]["evaluations"] == 2
    assert g.nodes[6]["operators"] == (CX, MUT) and g.edges[3, 6]["operators"] == (CX, MUT)
    assert g.edges[0, 3]["kind"] == "crossover + mutation" and g.edges[3, 5]["kind"] == "mutation"
    assert g.nodes[7]["diverged"] and g.nodes[7]["fitness"] == 0.0
    assert ancestors(g, [5]) == {5, 3, 0, 1} and ancestors(g, [6]) == {6, 3, 4, 0, 1, 2}
    assert founders(g, [5]) == {0, 1}
    with pytest.raises(EvoticketError):
        ancestors(g, [99])


def test_lineage_graph_from_a_run_directory_and_a_partial_record_set(tmp_path):
    run = write(tmp_path / "run", TREE)
    assert set(lineage_graph(run).edges) == set(lineage_graph(TREE).edges)
    cut = lineage_graph(TREE[4:])  # parents 0, 1, 2 cut off: still nodes, generation unknown
    assert cut.nodes[0]["generation"] is None and cut.has_edge(0, 3)
    with pytest.raises(EvoticketError, match="individuals.jsonl"):
        lineage_graph(tmp_path)


def test_the_plots_alias_is_the_records_function():
    from evoticket.plots import genealogy

    assert genealogy is lineage_graph


def test_frames_flatten_individuals_and_keep_generations(tmp_path):
    pytest.importorskip("pandas")
    imp = rec(8, 3, (5,), ("pruneMagnitude",), test_acc=0.6, controls={"random": {"test_acc": 0.5}})
    run = write(tmp_path / "run", [*TREE, imp])
    row = dict.fromkeys(records.GENERATION_COLUMNS, 0)
    records.RecordWriter(run).write_generation({**row, "val_acc_max": 0.5})
    df = records.individuals_frame(run)
    assert len(df) == 10 and list(df["uid"][:4]) == [0, 1, 2, 0]
    assert df["density.fc2.weight"].iloc[0] == 0.2 and df["controls.random.test_acc"].iloc[-1] == 0.5
    assert df["operators"].iloc[4] == [CX, MUT]
    gens = records.generations_frame(run)
    assert list(gens.columns) == list(records.GENERATION_COLUMNS) and gens["val_acc_max"].iloc[0] == 0.5
    paths.generations_csv(run).write_text("", encoding="utf-8")
    assert list(records.generations_frame(run).columns) == list(records.GENERATION_COLUMNS)
    with pytest.raises(EvoticketError, match="no such run directory"):
        records.individuals_frame(tmp_path / "missing")


def test_frames_without_pandas_say_how_to_install_it(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_pandas(name, *args, **kwargs):
        if name == "pandas":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pandas)
    run = write(tmp_path / "run", TREE)
    with pytest.raises(EvoticketError, match="pip install pandas") as e:
        records.individuals_frame(run)
    assert "\n" not in str(e.value)
    assert json.loads(paths.individuals_jsonl(run).read_text().splitlines()[0])["uid"] == 0
