"""The lineage figure: the genealogy of the hall of fame back to generation 0.

The genealogy is :func:`evoticket.records.lineage_graph`, rebuilt from ``individuals.jsonl`` alone
(uid, parents, operators); :func:`genealogy` is kept here as its alias. Only ancestors of the
hall-of-fame members are drawn, laid out by generation (x = generation of birth), coloured by fitness,
with edges coloured by the operators that made the child. Each hall-of-fame member is ringed and
labelled with its uid, right next to its ring and nearer to it than to any other node
(:func:`place_labels`); the title is wrapped to the figure's width (:func:`fit_title`). Both helpers
serve the other figures too.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evoticket.core.errors import EvoticketError
from evoticket.plots import common

if TYPE_CHECKING:  # networkx is imported where a graph is built or drawn (it costs 0.15 s at start-up)
    import networkx as nx
from evoticket.records.lineage import EDGE_KINDS, ancestors, edge_kind, founders, lineage_graph

_RING_SIZE, _STAR_SIZE = 120, 220
"""Marker areas (points squared) of a hall-of-fame ring and of the best ticket's star."""
_RING, _STAR = math.sqrt(_RING_SIZE) / 2, math.sqrt(_STAR_SIZE) / 2
"""Their radii in points: how far from a node its uid label starts."""

genealogy = lineage_graph
"""Alias of :func:`evoticket.records.lineage_graph` (the name the figures were first published with)."""

__all__ = ["EDGE_KINDS", "ancestors", "draw_lineage", "edge_kind", "founders", "genealogy", "hall_of_fame", "main_line"]


def main_line(graph: nx.DiGraph, uid: int) -> list[int]:
    """The winning lineage of ``uid``: from a founder to ``uid``, following at each step the fitter parent.

    A crossover child has two parents; the line goes through the one with the higher first-evaluation
    ``val_acc`` (the smaller uid on a tie), so the line is the path of fitness that led to ``uid``.

    Returns:
        uids from a founder (first) to ``uid`` (last).

    Raises:
        EvoticketError: if ``uid`` is not in the graph.
    """
    if uid not in graph:
        raise EvoticketError(f"individual {uid} is not in the records")
    line = [uid]
    while True:
        parents = list(graph.predecessors(line[-1]))
        if not parents:
            return line[::-1]
        line.append(max(sorted(parents), key=lambda p: graph.nodes[p].get("val_acc", 0.0)))


def hall_of_fame(run_dir: Path, graph: nx.DiGraph, size: int | None = None) -> list[int]:
    """The uids of the hall of fame, best first, without duplicates.

    From ``summary.json`` when the campaign finished; otherwise (a running or killed campaign) the
    ``size`` individuals with the best evaluation so far (``ga.hall_of_fame`` of the configuration, 5
    without one). The summary's best ticket is added when it is not among them.
    """
    summary = common.read_summary(run_dir)
    uids: list[int] = []
    if summary is not None:
        uids = [int(h["uid"]) for h in summary.get("hall_of_fame", [])]
        best = summary.get("best", {}).get("uid")
        if best is not None:
            uids.append(int(best))
    else:
        if size is None:
            size = int((common.read_config(run_dir) or {}).get("ga", {}).get("hall_of_fame", 5))
        known = [u for u in graph if graph.nodes[u].get("generation") is not None]
        uids = sorted(known, key=lambda u: (-graph.nodes[u]["val_acc_best"], u))[:size]
    return [u for u in dict.fromkeys(uids) if u in graph]


def layout(graph: nx.DiGraph) -> dict[int, tuple[float, float]]:
    """Positions for a lineage subgraph: x = generation, y = rank within the generation.

    networkx's multipartite layout puts each generation in one column; within a column the nodes are
    then ordered by the mean height of their parents (one barycentric sweep, forward in generations),
    which keeps families together and edges short.
    """
    import networkx as nx

    if graph.number_of_nodes() == 0:
        return {}
    for n in graph:
        graph.nodes[n]["layer"] = graph.nodes[n].get("generation") or 0
    base = nx.multipartite_layout(graph, subset_key="layer", align="vertical")
    columns: dict[int, list[int]] = {}
    for n in sorted(graph):
        columns.setdefault(graph.nodes[n]["layer"], []).append(n)
    pos: dict[int, tuple[float, float]] = {}
    for g in sorted(columns):
        nodes = columns[g]

        def height(n: int) -> float:
            ps = [pos[p][1] for p in graph.predecessors(n) if p in pos]
            return sum(ps) / len(ps) if ps else base[n][1]

        ordered = sorted(nodes, key=lambda n: (height(n), n))
        offset = (len(ordered) - 1) / 2
        for i, n in enumerate(ordered):
            pos[n] = (float(g), float(i - offset))
    return pos


def draw_lineage(run_dir: Path) -> Any:
    """The lineage figure of a run (a matplotlib Figure), or ``None`` without individual records.

    Raises:
        EvoticketError: if ``run_dir`` is not a run directory.
    """
    import networkx as nx

    plt = common.pyplot()
    from matplotlib.lines import Line2D

    recs = common.read_individuals(common.require_run(run_dir))
    if not recs:
        return None
    graph = genealogy(recs)
    hof = hall_of_fame(run_dir, graph)
    if not hof:
        return None
    sub = graph.subgraph(ancestors(graph, hof)).copy()
    pos = layout(sub)
    fig, ax = plt.subplots(figsize=(2 * common.COLUMN_WIDTH, 3.8))
    kinds_seen = []
    for kind, (colour, style) in EDGE_KINDS.items():
        edges = [(u, v) for u, v, k in sub.edges(data="kind") if k == kind]
        if not edges:
            continue
        kinds_seen.append(kind)
        nx.draw_networkx_edges(
            sub,
            pos,
            edgelist=edges,
            ax=ax,
            edge_color=colour,
            style=style,
            width=0.9,
            arrows=True,
            arrowsize=5,
            node_size=40,
            alpha=0.8,
        )
    nodes = sorted(sub)
    values = [sub.nodes[n].get("val_acc", 0.0) for n in nodes]
    finite = [v for n, v in zip(nodes, values, strict=True) if not sub.nodes[n].get("diverged")] or values
    vmin, vmax = min(finite), max(finite)
    art = nx.draw_networkx_nodes(
        sub,
        pos,
        nodelist=nodes,
        node_color=values,
        cmap="viridis",
        vmin=vmin,
        vmax=vmax,
        node_size=40,
        ax=ax,
        edgecolors="0.2",
        linewidths=0.4,
    )
    best = hof[0]
    summary = common.read_summary(run_dir)
    if summary is not None and summary.get("best", {}).get("uid") in sub:
        best = int(summary["best"]["uid"])
    hof_set = [n for n in hof if n in pos]
    ax.scatter(
        [pos[n][0] for n in hof_set],
        [pos[n][1] for n in hof_set],
        s=_RING_SIZE,
        facecolors="none",
        edgecolors="crimson",
        linewidths=1.2,
        zorder=3,
    )
    ax.scatter(
        [pos[best][0]], [pos[best][1]], s=_STAR_SIZE, marker="*", facecolors="none", edgecolors="crimson", zorder=3
    )
    cbar = fig.colorbar(art, ax=ax, pad=0.01, fraction=0.04)
    cbar.set_label("validation accuracy at first evaluation")
    n_founders = len(founders(graph, hof))
    handles = [
        Line2D([], [], color=EDGE_KINDS[k][0], ls=EDGE_KINDS[k][1], label=f"child made by {k}") for k in kinds_seen
    ]
    handles += [
        Line2D([], [], marker="o", ls="", markerfacecolor="none", markeredgecolor="crimson", label="hall of fame"),
        Line2D([], [], marker="*", ms=9, ls="", markerfacecolor="none", markeredgecolor="crimson", label="best ticket"),
    ]
    # the legend above the axes, under the title: inside, it would need its own band of rows
    legend = ax.legend(
        handles=handles, loc="lower left", bbox_to_anchor=(0, 1.01), borderaxespad=0, framealpha=0.9, ncol=len(handles)
    )
    gens = [p[0] for p in pos.values()]
    ax.set_xlim(min(gens) - 0.8, max(gens) + 2.5)
    ys = [p[1] for p in pos.values()]
    ax.set_ylim(min(ys) - 0.6, max(ys) + 0.6)
    ax.set_xlabel("generation of birth (first evaluation)")
    ax.set_ylabel("individuals of a generation")
    ax.set_yticks([])
    ax.tick_params(axis="x", bottom=True, labelbottom=True)
    ax.grid(axis="y", visible=False)
    common.fit_title(
        fig,
        ax,
        common.run_title(
            run_dir,
            f"Ancestry of the hall of fame ({len(hof)} tickets, {sub.number_of_nodes()} ancestors, "
            f"{n_founders} generation-0 founder{'s' if n_founders != 1 else ''})",
        ),
        pad=legend.get_window_extent(fig.canvas.get_renderer()).height * 72 / fig.dpi + 8,
    )
    # uid labels last: they are placed in display space, so after the layout
    order = sorted(pos, key=lambda n: (pos[n], n))
    index = {n: i for i, n in enumerate(order)}
    common.place_labels(
        ax,
        [(str(n), index[n], _STAR if n == best else _RING) for n in sorted(hof_set, key=lambda n: (pos[n], n))],
        [pos[n] for n in order],
        gaps=(1.5,),
        avoid=[legend.get_window_extent(fig.canvas.get_renderer())],
        fontsize=6,
        color="crimson",
    )
    return fig
