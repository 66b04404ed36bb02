"""Comparing runs: their fitness curves overlaid in one figure, and a table of their final results.

:func:`compare_runs` draws ``compare.png``/``compare.pdf`` (best and mean validation accuracy after
fine-tuning per generation, one colour per run, against generations or cumulative train FLOPs) and writes
``compare.csv`` and ``compare.json``: one row per run with its method, data set, model, the ticket's
density, the final comparison's test accuracies (mean and sd over seeds) and the search's compute. A run
still running (no ``summary.json``) is listed with its last generation and empty final columns.
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

CONTROLS = ("ticket", "dense", "random", "reinit")
"""The final comparison's arms, as ``summary.json["controls"]`` names them."""

COLUMNS = (
    "run",
    "method",
    "data",
    "model",
    "density",
    "last_generation",
    "finished",
    *(f"{c}_test_acc_{s}" for c in CONTROLS for s in ("mean", "std")),
    "search_train_steps",
    "search_train_flops",
)
"""Columns of ``compare.csv`` (and keys of each ``compare.json`` row): accuracies in [0, 1], density the
fraction of weights kept, compute in optimizer steps and FLOPs; ``None`` (an empty cell) where unknown."""


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
    head = ["run", "method", "data", "model", "density", "gen", *CONTROLS, "search steps", "search compute"]
    body = []
    for r in rows:
        accs = []
        for c in CONTROLS:
            m, s = r[f"{c}_test_acc_mean"], r[f"{c}_test_acc_std"]
            accs.append("" if m is None else f"{m:.4f} ± {s or 0.0:.4f}")
        body.append(
            [
                *(_cell(r[k], k) for k in ("run", "method", "data", "model", "density", "last_generation")),
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


def draw_compare(run_dirs: Sequence[Path], *, x_axis: str = "generation") -> Any:
    """The overlaid fitness curves of several runs (a matplotlib Figure; the caller saves and closes it).

    Args:
        run_dirs: run directories; one without a generation yet is named in the legend without a curve.
        x_axis: ``"generation"`` or ``"train_flops"`` (cumulative search train FLOPs, in TFLOP; a log
            scale when the runs' compute spans more than a factor of 100).

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
    xlabel = x_values([], x_axis)[1]
    for i, (run_dir, label) in enumerate(zip(run_dirs, _labels(run_dirs), strict=True)):
        rows = records.read_generations(common.require_run(run_dir))
        colour = colours(i % 10)
        if rows:
            xs, xlabel = x_values(rows, x_axis)
            best, mean = [r["val_acc_max"] for r in rows], [r["val_acc_avg"] for r in rows]
            marker = "o" if len(xs) == 1 else None
            ax.plot(xs, best, color=colour, lw=1.6, marker=marker, ms=3)
            ax.plot(xs, mean, color=colour, lw=1.0, ls="--", marker=marker, ms=2)
            values += best + mean
            xs_all += xs
        method = common.run_method(run_dir)
        state = "" if common.read_summary(run_dir) is not None else ", running" if rows else ", no generation yet"
        handles.append(Line2D([], [], color=colour, lw=1.6, label=f"{label} ({method}{state})"))
    handles += [
        Line2D([], [], color="0.2", lw=1.6, label="best of population"),
        Line2D([], [], color="0.2", lw=1.0, ls="--", label="population mean"),
    ]
    ax.set_ylim(*y_limits(values))
    positive = [x for x in xs_all if x > 0]
    if x_axis == "train_flops" and positive and max(positive) > 100 * min(positive):
        ax.set_xscale("log")  # runs whose compute differs by orders of magnitude
        xlabel += ", log scale"
    ax.set_xlabel(xlabel)
    ax.set_ylabel("validation accuracy\nafter fine-tuning")
    ax.set_title(f"Validation accuracy of {len(run_dirs)} run{'s' if len(run_dirs) != 1 else ''}")
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), framealpha=0.9)
    fig.tight_layout()
    return fig


def compare_runs(
    run_dirs: Sequence[Path],
    out_dir: Path,
    *,
    x_axis: str = "generation",
    formats: tuple[str, ...] = common.FORMATS,
) -> tuple[list[Path], list[dict[str, Any]]]:
    """Overlay the fitness curves of several runs and tabulate their final results.

    Args:
        run_dirs: one or more run directories (finished, running or resumed).
        out_dir: the folder to write into (created if needed).
        x_axis: ``"generation"`` or ``"train_flops"``.
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
