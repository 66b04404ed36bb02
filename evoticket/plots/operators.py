"""The operators figure: for each operator, the distribution of child-minus-parent fitness at equal training.

A child's gain is its validation accuracy minus its parent's, both read after the same fine-tuning. With
successive halving (``ga.halving_rungs`` > 1) an individual's ``val_acc`` is read at the last rung it
reached (``rung``; rung r trains a further ``2**r * finetune.steps`` steps), so comparing ``val_acc``
would set a child stopped at rung 0 against a parent trained to rung 2. Records that carry
``rung_val_acc`` (the accuracy at each rung reached, rung 0 first) are compared at rung 0, the one rung
everyone reaches; older records only where child and parent reached the same rung, and the pairs left
out are counted.

The parent's evaluation is the one the child can fairly be compared with: with ``ga.reevaluate`` a
surviving parent is fine-tuned again in its child's generation, in the same batch, on the same
minibatches, so that re-evaluation is used when there is one; else the parent's latest evaluation
before the child's generation. For a crossover child the better of its parents counts (does the child
beat what it came from?). Children are grouped by the exact sequence of operators that made them
(``cxMaskUniform → mutMaskSwap``): operators applied together cannot be told apart. A last group shows
the gain of re-evaluating the *same* ticket against its previous evaluation, at equal rungs too: the
noise of one fine-tuning.

A negative mean says that an operator's children are on average worse than their parents at equal
training. Selection keeps the few children that improve, so a negative mean does not make an operator
useless: compare its share of gains > 0 and its best children with the re-evaluation noise.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evoticket.plots import common


def _horizontal() -> dict[str, Any]:
    """``boxplot``'s argument for horizontal boxes: ``orientation`` from matplotlib 3.10, ``vert`` before."""
    import matplotlib

    if tuple(int(x) for x in matplotlib.__version__.split(".")[:2]) < (3, 10):  # pragma: no cover
        return {"vert": False}
    return {"orientation": "horizontal"}


NOISE = "re-evaluation (same ticket)"
"""The group of re-evaluations: the noise floor of a fitness difference."""


@dataclass(frozen=True)
class Comparison:
    """Child-minus-parent gains at equal training, and how they were read (see the module docstring)."""

    gains: dict[str, list[float]] = field(default_factory=dict)
    """Group name (operators joined by ``" → "``, or :data:`NOISE`) -> gains in [-1, 1], in record order."""
    left_out: dict[str, int] = field(default_factory=dict)
    """Group name -> pairs left out because child and parent reached different rungs (records without
    ``rung_val_acc``); groups with none left out are absent."""
    at_rung0: int = 0
    """Pairs compared at rung 0 through ``rung_val_acc``; the others were compared at the one rung both reached."""
    rungs: frozenset[int] = frozenset()
    """The rungs of the pairs compared by ``val_acc`` (empty when every pair used ``rung_val_acc``)."""

    @property
    def pairs(self) -> int:
        """Pairs compared (all groups)."""
        return sum(len(v) for v in self.gains.values())


def _rung(record: dict[str, Any]) -> int:
    """The last successive-halving rung a record reached (0 without halving, or in records older than rungs)."""
    return int(record.get("rung") or 0)


def _rung0(record: dict[str, Any]) -> float | None:
    """Validation accuracy at rung 0 in [0, 1] from ``rung_val_acc`` (0.0 where non-finite); ``None`` without it."""
    values = record.get("rung_val_acc")
    if not values:
        return None
    value = values[0]
    return float(value) if value is not None and math.isfinite(value) else 0.0


def _pair(child: dict[str, Any], parents: list[dict[str, Any]]) -> tuple[float, float, int | None] | None:
    """(child's accuracy, best parent's accuracy, rung or ``None`` for rung 0 via ``rung_val_acc``) at equal
    training, or ``None`` when the records cannot tell (different rungs, no ``rung_val_acc``)."""
    child0, parents0 = _rung0(child), [_rung0(p) for p in parents]
    if child0 is not None and all(v is not None for v in parents0):
        return child0, max(v for v in parents0 if v is not None), None
    rung = _rung(child)
    if all(_rung(p) == rung for p in parents):
        return common.fitness(child), max(common.fitness(p) for p in parents), rung
    return None


def compare(recs: list[dict[str, Any]]) -> Comparison:
    """Child-minus-parent validation accuracy at equal training, grouped by operator sequence.

    See the module docstring for which evaluations are compared.

    Args:
        recs: ``individuals.jsonl`` records in evaluation order.

    Returns:
        The gains in [-1, 1] per group in record order, the pairs left out per group, and how the pairs were
        read. Founders (no parents) and children whose parents are not in the records are left out without
        being counted; a diverged evaluation counts as accuracy 0.0.
    """
    evaluations: dict[int, list[dict[str, Any]]] = {}  # uid -> its records, in order
    for r in recs:
        evaluations.setdefault(int(r["uid"]), []).append(r)
    gains: dict[str, list[float]] = {}
    left_out: dict[str, int] = {}
    at_rung0, rungs = 0, set()
    seen: dict[int, int] = {}  # uid -> evaluations met so far
    for r in recs:
        uid, gen = int(r["uid"]), int(r["generation"])
        earlier = evaluations[uid][: seen.get(uid, 0)]
        seen[uid] = seen.get(uid, 0) + 1
        if r.get("reevaluated") and earlier:
            group, parents = NOISE, [earlier[-1]]
        elif r.get("parents") and not earlier:
            group, parents = " → ".join(r.get("operators", ())) or "none", []
            for p in r["parents"]:
                evals = evaluations.get(int(p), [])
                same = [e for e in evals if int(e["generation"]) == gen and e.get("reevaluated")]
                before = [e for e in evals if int(e["generation"]) < gen]
                if same or before:
                    parents.append((same or before)[-1])
            if not parents:
                continue
        else:
            continue
        pair = _pair(r, parents)
        if pair is None:
            left_out[group] = left_out.get(group, 0) + 1
            continue
        child, parent, rung = pair
        gains.setdefault(group, []).append(child - parent)
        if rung is None:
            at_rung0 += 1
        else:
            rungs.add(rung)
    return Comparison(gains, left_out, at_rung0, frozenset(rungs))


def gains(recs: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Child-minus-parent validation accuracy at equal training, grouped by operator sequence.

    Children are compared with their parents at rung 0 through ``rung_val_acc`` when the records carry it,
    else only where both reached the same rung (see the module docstring and :func:`compare`, which also
    counts the pairs left out).

    Args:
        recs: ``individuals.jsonl`` records in evaluation order.

    Returns:
        Group name (operators joined by ``" → "``, or :data:`NOISE`) -> gains in [-1, 1], in record order;
        founders (no parents), children whose parents are not in the records and pairs at unequal rungs
        are left out.
    """
    return compare(recs).gains


def what_is_compared(comparison: Comparison, config: dict[str, Any] | None) -> str:
    """The figure's words for the training at which children and parents were compared.

    Args:
        comparison: from :func:`compare`.
        config: the run's ``config.toml`` as a dict, or ``None`` (then the number of steps is not said).

    Returns:
        E.g. ``"at rung 0, i.e. after 34 fine-tuning steps"``, or ``"at equal successive-halving rungs"`` for
        records without ``rung_val_acc``.
    """
    steps = (config or {}).get("finetune", {}).get("steps")
    halving = config is None or int(config.get("ga", {}).get("halving_rungs", 1)) > 1
    by_value = bool(comparison.rungs)
    if not by_value or comparison.rungs == {0}:
        if steps is None:
            return "at rung 0" if halving else "at equal fine-tuning"
        return f"at rung 0, i.e. after {steps} fine-tuning steps" if halving else f"after {steps} fine-tuning steps"
    if comparison.at_rung0:
        return "at rung 0 where recorded, else at equal rungs"
    return "at equal successive-halving rungs"


NOTE = (
    "A negative mean: the operator's children are on average worse than their parents at equal training. "
    "Selection keeps the few that improve, so a negative mean does not make an operator useless: "
    "compare its share > 0 and its best children with the re-evaluation noise."
)
"""How to read the figure's means, written under it."""


def draw_operators(run_dir: Path) -> Any:
    """The operators figure of a run (a matplotlib Figure), or ``None`` when no child was evaluated yet."""
    plt = common.pyplot()
    import numpy as np

    comparison = compare(common.read_individuals(common.require_run(run_dir)))
    groups = comparison.gains
    if not groups:
        return None
    what = what_is_compared(comparison, common.read_config(run_dir))
    names = sorted((k for k in groups if k != NOISE), key=lambda k: (-len(groups[k]), k))
    if NOISE in groups:
        names.append(NOISE)
    note = NOTE + (
        " A parent's score: its re-evaluation in the child's generation (same minibatches) where there is one, "
        "else its latest evaluation before."
    )
    left = sum(comparison.left_out.values())
    if left:
        note += (
            f" {left} of {left + comparison.pairs} pairs left out: child and parent reached different rungs "
            "(records without rung_val_acc)."
        )
    fig, ax = plt.subplots(figsize=(2 * common.COLUMN_WIDTH, 1.3 + 0.75 * len(names)))
    rng = np.random.default_rng(0)  # jitter only; fixed, so the figure is a function of the records
    for i, name in enumerate(names):
        values = np.asarray(groups[name])
        colour = "0.5" if name == NOISE else f"C{i}"
        ax.boxplot(
            values,
            positions=[i],
            **_horizontal(),
            widths=0.55,
            showfliers=False,
            medianprops={"color": "black"},
            boxprops={"color": colour},
            whiskerprops={"color": colour},
            capprops={"color": colour},
        )
        ax.scatter(values, i + rng.uniform(-0.22, 0.22, len(values)), s=3, color=colour, alpha=0.35, lw=0)
        ax.plot([values.mean()], [i], marker="D", color="crimson", ms=4, zorder=3)
        label = f"n = {len(values)}, mean {values.mean():+.4f}, {np.mean(values > 0):.0%} > 0, best {values.max():+.3f}"
        if comparison.left_out.get(name):
            label += f" ({comparison.left_out[name]} left out)"
        ax.annotate(label, (1.0, i + 0.32), xycoords=("axes fraction", "data"), ha="right", fontsize=6.5)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(names)), names)
    ax.set_ylim(-0.6, len(names) - 0.4 + 0.2)
    ax.invert_yaxis()
    ax.set_xlabel("child minus parent validation accuracy (better parent for a crossover)")
    ax.plot([], [], marker="D", ls="", color="crimson", ms=4, label="mean")
    ax.legend(loc="lower left", framealpha=0.9)
    # the note under the axes, wrapped to the figure's width; the axes are laid out above it
    text = fig.text(0.01, 0.01, note, fontsize=6, va="bottom", ha="left", color="0.25")
    renderer, room, width = fig.canvas.get_renderer(), 0.98 * fig.bbox.width, len(note)
    while text.get_window_extent(renderer).width > room and width > 20:
        width = min(width - 1, int(width * room / text.get_window_extent(renderer).width))
        text.set_text(textwrap.fill(note, width, break_on_hyphens=False))
    bottom = text.get_window_extent(renderer).y1 / fig.bbox.height + 0.01
    title = common.run_title(run_dir, f"Which operators pay: children against parents {what}")
    common.fit_title(fig, ax, title, rect=(0, bottom, 1, 1))
    return fig
