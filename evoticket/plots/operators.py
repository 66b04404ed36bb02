"""The operators figure: for each operator, the distribution of child-minus-parent fitness.

A child's gain is its first evaluation's validation accuracy minus its parent's fitness when the child
was made (the parent's latest evaluation before the child's generation); for a crossover child, minus
the better of its two parents (does the child beat what it came from?). Children are grouped by the
exact sequence of operators that made them (``cxMaskUniform → mutMaskSwap``): operators applied
together cannot be told apart. A last group shows the gain of re-evaluating the *same* ticket, i.e.
the noise of one fine-tuning: an operator pays only where it beats that.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evoticket.plots import common

_HORIZONTAL = {"orientation": "horizontal"}
if tuple(int(x) for x in __import__("matplotlib").__version__.split(".")[:2]) < (3, 10):  # pragma: no cover
    _HORIZONTAL = {"vert": False}

NOISE = "re-evaluation (same ticket)"
"""The group of re-evaluations: the noise floor of a fitness difference."""


def gains(recs: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Child-minus-parent validation accuracy, grouped by operator sequence (see the module docstring).

    Args:
        recs: ``individuals.jsonl`` records in evaluation order.

    Returns:
        Group name (operators joined by ``" → "``, or :data:`NOISE`) -> gains in [-1, 1], in record order;
        founders (no parents) and children whose parents are not in the records are left out.
    """
    history: dict[int, list[tuple[int, float]]] = {}  # uid -> [(generation, fitness)]
    out: dict[str, list[float]] = {}
    for r in recs:
        uid, gen, acc = int(r["uid"]), int(r["generation"]), common.fitness(r)
        if r.get("reevaluated") and uid in history:
            out.setdefault(NOISE, []).append(acc - history[uid][-1][1])
        elif r.get("parents") and uid not in history:
            parents = []
            for p in r["parents"]:
                before = [f for g, f in history.get(int(p), []) if g < gen]
                if before:
                    parents.append(before[-1])
            if parents:
                out.setdefault(" → ".join(r.get("operators", ())) or "none", []).append(acc - max(parents))
        history.setdefault(uid, []).append((gen, acc))
    return out


def draw_operators(run_dir: Path) -> Any:
    """The operators figure of a run (a matplotlib Figure), or ``None`` when no child was evaluated yet."""
    plt = common.pyplot()
    import numpy as np

    groups = gains(common.read_individuals(common.require_run(run_dir)))
    if not groups:
        return None
    names = sorted((k for k in groups if k != NOISE), key=lambda k: (-len(groups[k]), k))
    if NOISE in groups:
        names.append(NOISE)
    fig, ax = plt.subplots(figsize=(2 * common.COLUMN_WIDTH, 0.9 + 0.75 * len(names)))
    rng = np.random.default_rng(0)  # jitter only; fixed, so the figure is a function of the records
    for i, name in enumerate(names):
        values = np.asarray(groups[name])
        colour = "0.5" if name == NOISE else f"C{i}"
        ax.boxplot(
            values,
            positions=[i],
            **_HORIZONTAL,
            widths=0.55,
            showfliers=False,
            medianprops={"color": "black"},
            boxprops={"color": colour},
            whiskerprops={"color": colour},
            capprops={"color": colour},
        )
        ax.scatter(values, i + rng.uniform(-0.22, 0.22, len(values)), s=3, color=colour, alpha=0.35, lw=0)
        ax.plot([values.mean()], [i], marker="D", color="crimson", ms=4, zorder=3)
        ax.annotate(
            f"n = {len(values)}, mean {values.mean():+.4f}, {np.mean(values > 0):.0%} > 0",
            (1.0, i + 0.32),
            xycoords=("axes fraction", "data"),
            ha="right",
            fontsize=6.5,
        )
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(names)), names)
    ax.set_ylim(-0.6, len(names) - 0.4 + 0.2)
    ax.invert_yaxis()
    ax.set_xlabel("child minus parent validation accuracy (better parent for a crossover)")
    ax.plot([], [], marker="D", ls="", color="crimson", ms=4, label="mean")
    ax.legend(loc="lower left", framealpha=0.9)
    ax.set_title(common.run_title(run_dir, "Which operators pay"))
    fig.tight_layout()
    return fig
