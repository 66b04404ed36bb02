"""The genealogy of a run as a ``networkx.DiGraph``, rebuilt from ``individuals.jsonl`` alone.

Every record names its ``uid``, its ``parents``' uids and the ``operators`` that made it, so the family
tree needs no copies of networks (DEAP's ``History`` deep-copies every individual). A uid can appear in
several generations (a surviving parent is fine-tuned again when ``ga.reevaluate`` is on); a node's
``generation`` is the one it was first evaluated in, and its ``fitness`` (= ``val_acc``) that first
evaluation's, what selection saw when the individual was born. The mean and the best over all its
evaluations are kept too (``val_acc_mean``, ``val_acc_best``, ``evaluations``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evoticket.core import paths
from evoticket.core.errors import EvoticketError
from evoticket.records.readers import read_individuals

if TYPE_CHECKING:  # networkx is imported where a graph is built or drawn (it costs 0.15 s at start-up)
    import networkx as nx


def fitness(record: dict[str, Any]) -> float:
    """An individual's validation accuracy after fine-tuning in [0, 1]; 0.0 for a diverged one."""
    value = record.get("val_acc")
    if value is None or not math.isfinite(value):
        return 0.0
    return float(value)


EDGE_KINDS = {
    "crossover + mutation": ("tab:purple", "-"),
    "crossover": ("tab:blue", "-"),
    "mutation": ("tab:orange", "--"),
    "other": ("0.5", ":"),
}
"""How an edge is drawn, by the kind of variation that made the child: colour and line style."""


def edge_kind(operators: Iterable[str]) -> str:
    """The kind of variation a list of operator names amounts to.

    DEAP's naming convention decides: ``cx*`` is a crossover, ``mut*`` a mutation.

    Returns:
        One of the keys of :data:`EDGE_KINDS`.
    """
    ops = list(operators)
    cx = any(op.startswith("cx") for op in ops)
    mut = any(op.startswith("mut") for op in ops)
    if cx and mut:
        return "crossover + mutation"
    if cx:
        return "crossover"
    if mut:
        return "mutation"
    return "other"


def lineage_graph(records: Path | str | Iterable[dict[str, Any]]) -> nx.DiGraph:
    """The family tree of every evaluated individual, from ``individuals.jsonl`` records.

    Args:
        records: a run directory (its ``individuals.jsonl`` is read), or records in evaluation order
            (each with ``uid``, ``generation``, ``parents``, ``operators``, ``val_acc``,
            ``val_acc_before``, ``density_total``, ``flags``).

    Returns:
        A DiGraph whose nodes are uids with attributes ``generation`` (first evaluation), ``operators``
        (tuple, as the child was made), ``fitness`` (validation accuracy after fine-tuning at the first
        evaluation, in [0, 1], what selection saw; equal to ``val_acc``), ``val_acc`` and ``val_acc_before`` (first evaluation, in [0, 1];
        0.0 for a diverged one), ``val_acc_mean`` and ``val_acc_best`` (over every evaluation),
        ``evaluations`` (count), ``density_total`` and ``diverged`` (any evaluation non-finite); and an
        edge parent -> child for every parent, with attributes ``operators`` and ``kind``
        (:func:`edge_kind`). A parent absent from the records (cut off in a partial record set) is
        still a node, with ``generation`` ``None``.

    Raises:
        EvoticketError: if a run directory holds no ``individuals.jsonl``.
    """
    import networkx as nx

    if isinstance(records, str | Path):
        run_dir = Path(records)
        if not paths.individuals_jsonl(run_dir).is_file():
            raise EvoticketError(f"{run_dir}: not a run directory (no individuals.jsonl)")
        records = read_individuals(run_dir)
    graph = nx.DiGraph()
    scores: dict[int, list[float]] = {}
    for r in records:
        uid = int(r["uid"])
        acc = fitness(r)
        if uid not in scores:
            scores[uid] = []
            ops = tuple(r.get("operators", ()))
            graph.add_node(
                uid,
                generation=int(r["generation"]),
                operators=ops,
                fitness=acc,
                val_acc=acc,
                val_acc_before=float(r.get("val_acc_before") or 0.0),
                density_total=r.get("density_total"),
                diverged=False,
            )
            for p in r.get("parents", ()):
                p = int(p)
                if p not in graph:
                    graph.add_node(p, generation=None)
                graph.add_edge(p, uid, operators=ops, kind=edge_kind(ops))
        elif graph.nodes[uid].get("generation") is None:  # a parent seen before its own record
            graph.nodes[uid].update(generation=int(r["generation"]), operators=tuple(r.get("operators", ())))
        scores[uid].append(acc)
        if "nonfinite" in (r.get("flags") or ()):
            graph.nodes[uid]["diverged"] = True
    for uid, values in scores.items():
        graph.nodes[uid].update(
            val_acc_mean=sum(values) / len(values), val_acc_best=max(values), evaluations=len(values)
        )
    return graph


def ancestors(graph: nx.DiGraph, uids: Iterable[int]) -> set[int]:
    """The given uids and all their ancestors (back to the founders).

    Raises:
        EvoticketError: if a uid is not in the graph.
    """
    import networkx as nx

    found: set[int] = set()
    for uid in uids:
        if uid not in graph:
            raise EvoticketError(f"individual {uid} is not in the records")
        found.add(uid)
        found |= nx.ancestors(graph, uid)
    return found


def founders(graph: nx.DiGraph, uids: Iterable[int]) -> set[int]:
    """The generation-0 individuals (no parents) that ``uids`` descend from."""
    return {u for u in ancestors(graph, uids) if graph.in_degree(u) == 0}
