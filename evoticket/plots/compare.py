"""Comparing runs: their fitness curves overlaid in one figure, and a table of their final results.

:func:`compare_runs` draws ``compare.png``/``compare.pdf`` (the validation accuracy each run's search reached, one
colour per run, against its cumulative training FLOPs by default, so a GA's generations, IMP's rounds and a one-run
method's single run share one meaningful axis; or against each run's own unit) and writes ``compare.csv`` and
``compare.json``: one row per run with its method, data set, model, the ticket's density, the final comparison's
test accuracies (mean and sd over seeds) of the ticket and each control, the two kinds of dense network in
separate columns (``dense``: from the ticket's theta0, warm when that theta0 holds trained weights;
``dense_scratch``: from a fresh initialisation), and the search's compute. A run still running (no
``summary.json``) is listed with its last generation and empty final columns.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evoticket import records
from evoticket.core.errors import EvoticketError
from evoticket.core.io import atomic_open
from evoticket.plots import common
from evoticket.plots.fitness import x_values, y_limits

CONTROLS = ("ticket", "dense", "dense_scratch", "random", "random_scratch", "reinit")
"""The final comparison's arms, as ``summary.json["controls"]`` names them, in the table's order (runs of evoticket
0.2 have no ``*_scratch`` controls: their cells stay empty)."""

HEADINGS = {
    "ticket": "ticket",
    "dense": "dense (ticket's theta0)",
    "dense_scratch": "dense (fresh init)",
    "random": "random (ticket's theta0)",
    "random_scratch": "random (fresh init)",
    "reinit": "reinit",
}
"""Each control's column heading in the printed table."""

COLUMNS = (
    "run",
    "method",
    "data",
    "model",
    "density",
    "theta0",
    "last_generation",
    "finished",
    *(f"{c}_test_acc_{s}" for c in CONTROLS for s in ("mean", "std")),
    "search_train_steps",
    "search_train_flops",
)
"""Columns of ``compare.csv`` (and keys of each ``compare.json`` row): accuracies in [0, 1], density the
fraction of weights kept, ``theta0`` what the ticket's theta0 is (``init``, ``rewound`` or ``trained``), compute
in optimizer steps and FLOPs; ``None`` (an empty cell) where unknown."""


def run_row(run_dir: Path) -> dict[str, Any]:
    """The final results of one run, as a row of :data:`COLUMNS`.

    Args:
        run_dir: a run directory, finished or not.

    Raises:
        EvoticketError: if ``run_dir`` is not a run directory.
    """
    run_dir = common.require_run(run_dir)
    summary = common.read_summary(run_dir) or {}
    config = common.read_config(run_dir) or {}
    gens = records.read_generations(run_dir)
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    controls = summary.get("controls") or {}
    density = (controls.get("ticket") or {}).get("density", (summary.get("best") or {}).get("density_total"))
    row.update(
        run=run_dir.name,
        method=summary.get("method") or config.get("method") or common.run_method(run_dir),
        data=summary.get("data") or config.get("data", {}).get("name"),
        model=summary.get("model") or config.get("model", {}).get("name"),
        density=density if density is not None else (gens[-1]["best_density"] if gens else None),
        theta0=(summary.get("theta0") or {}).get("kind"),
        last_generation=int(gens[-1]["generation"]) if gens else None,
        finished=bool(summary),
    )
    for c in CONTROLS:
        for s in ("mean", "std"):
            row[f"{c}_test_acc_{s}"] = (controls.get(c) or {}).get(f"test_acc_{s}")
    search = (summary.get("compute") or {}).get("search") or {}
    row.update(search_train_steps=search.get("train_steps"), search_train_flops=search.get("train_flops"))
    return row


def _cell(value: Any, key: str) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan"
    if key == "search_train_flops":
        return f"{value / 1e9:.3g} GFLOP"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as a plain-text table: accuracies as ``mean ± sd``, compute in GFLOP.

    Returns:
        The table, one line per run after a header and a rule, without a trailing newline.
    """
    head = ["run", "method", "data", "model", "density", "theta0", "gen", *(HEADINGS[c] for c in CONTROLS)]
    head += ["search steps", "search compute"]
    body = []
    for r in rows:
        accs = []
        for c in CONTROLS:
            m, s = r[f"{c}_test_acc_mean"], r[f"{c}_test_acc_std"]
            accs.append("" if m is None else f"{m:.4f} ± {s or 0.0:.4f}")
        body.append(
            [
                *(_cell(r[k], k) for k in ("run", "method", "data", "model", "density", "theta0", "last_generation")),
                *accs,
                _cell(r["search_train_steps"], "search_train_steps"),
                _cell(r["search_train_flops"], "search_train_flops"),
            ]
        )
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths, strict=True)).rstrip() for b in body]
    return "\n".join(line.rstrip() for line in lines)


def _labels(run_dirs: Sequence[Path]) -> list[str]:
    """Each run's name, or the path as given where two runs share a name."""
    names = [Path(d).name for d in run_dirs]
    return [str(d) if names.count(n) > 1 else n for d, n in zip(run_dirs, names, strict=True)]


def draw_compare(run_dirs: Sequence[Path], *, x_axis: str = "train_flops") -> Any:
    """The search curves of several runs in one figure (a matplotlib Figure; the caller saves and closes it).

    A run whose records hold a population (the GA) is drawn as its best (solid) and mean (dashed) validation accuracy
    after fine-tuning per generation; any other as one point per record row, in its own unit (IMP: one per round,
    its validation accuracy at the round's early-stopping step; a one-run method: its single run's). Against
    cumulative training FLOPs (the default) every method sits on the same axis; against ``"generation"`` each run
    counts its own unit, and the legend says which.

    Args:
        run_dirs: run directories; one without a record yet is named in the legend without a curve.
        x_axis: ``"train_flops"`` (cumulative search train FLOPs, in TFLOP; a log scale when the runs' compute
            spans more than a factor of 100) or ``"generation"`` (each run's own unit).

    Raises:
        EvoticketError: if a path is not a run directory, or for an unknown ``x_axis``.
    """
    plt = common.pyplot()
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(2 * common.COLUMN_WIDTH, 3.6))
    colours = plt.get_cmap("tab10")
    values: list[float] = []
    xs_all: list[float] = []
    handles = []
    units_seen: dict[str, None] = {}
    population_seen = False
    xlabel = x_values([], x_axis)[1]
    for i, (run_dir, label) in enumerate(zip(run_dirs, _labels(run_dirs), strict=True)):
        rows = records.read_generations(common.require_run(run_dir))
        colour = colours(i % 10)
        unit, units = common.units(run_dir)
        population = common.has_population(run_dir)
        if rows:
            units_seen[unit] = None
            xs, xlabel = x_values(rows, x_axis)
            best, mean = [r["val_acc_max"] for r in rows], [r["val_acc_avg"] for r in rows]
            if population:
                population_seen = True
                marker = "o" if len(xs) == 1 else None
                ax.plot(xs, best, color=colour, lw=1.6, marker=marker, ms=3)
                ax.plot(xs, mean, color=colour, lw=1.0, ls="--", marker=marker, ms=2)
                values += best + mean
            else:
                ax.plot(xs, best, color=colour, lw=1.0, marker="o", ms=4)
                values += best
            xs_all += xs
        method = common.run_method(run_dir)
        state = "" if common.read_summary(run_dir) is not None else ", running" if rows else ", nothing recorded yet"
        count = f"{len(rows)} {unit if len(rows) == 1 else units}" if rows else ""
        what = f"{method}: {count}" if count else method
        handles.append(
            Line2D([], [], color=colour, lw=1.6, marker=None if population else "o", label=f"{label} ({what}{state})")
        )
    if population_seen:
        handles += [
            Line2D([], [], color="0.2", lw=1.6, label="population: best"),
            Line2D([], [], color="0.2", lw=1.0, ls="--", label="population: mean"),
        ]
    ax.set_ylim(*y_limits(values))
    positive = [x for x in xs_all if x > 0]
    if x_axis == "train_flops" and positive and max(positive) > 100 * min(positive):
        ax.set_xscale("log")  # runs whose compute differs by orders of magnitude
        xlabel += ", log scale"
    if x_axis == "generation" and units_seen:
        xlabel = " / ".join(units_seen) + " (each run's own unit)" if len(units_seen) > 1 else next(iter(units_seen))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("validation accuracy\nreached in the search")
    ax.set_title(f"Search of {len(run_dirs)} run{'s' if len(run_dirs) != 1 else ''}")
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), framealpha=0.9)
    fig.tight_layout()
    return fig


def compare_runs(
    run_dirs: Sequence[Path],
    out_dir: Path,
    *,
    x_axis: str = "train_flops",
    formats: tuple[str, ...] = common.FORMATS,
) -> tuple[list[Path], list[dict[str, Any]]]:
    """Overlay the fitness curves of several runs and tabulate their final results.

    Args:
        run_dirs: one or more run directories (finished, running or resumed).
        out_dir: the folder to write into (created if needed).
        x_axis: ``"train_flops"`` (the default) or ``"generation"`` (each run's own unit).
        formats: figure formats, ``("png", "pdf")`` by default.

    Returns:
        ``(written, rows)``: the written paths (``compare.png``, ``compare.pdf``, ``compare.csv``,
        ``compare.json``) and one row of :data:`COLUMNS` per run, in the order given.

    Raises:
        EvoticketError: if no run is given, a path is not a run directory, or ``x_axis`` is unknown.
    """
    if not run_dirs:
        raise EvoticketError("compare needs at least one run directory")
    run_dirs = [Path(d) for d in run_dirs]
    rows = [run_row(d) for d in run_dirs]
    for row, label in zip(rows, _labels(run_dirs), strict=True):
        row["run"] = label
    written = common.save_all(draw_compare(run_dirs, x_axis=x_axis), out_dir, "compare", formats)
    table = Path(out_dir) / "compare.csv"
    with atomic_open(table, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in rows)
    doc = Path(out_dir) / "compare.json"
    with atomic_open(doc, "w", encoding="utf-8") as f:
        json.dump({"x_axis": x_axis, "runs": rows}, f, indent=2, sort_keys=True)
        f.write("\n")
    return [*written, table, doc], rows
