"""What every figure shares: the matplotlib setup, the run's title, reading records, saving PNG and PDF.

Figures are deterministic functions of the records: no timestamps, no wall-clock columns, and the
PNG and PDF files carry no creation date or software version, so a resumed run draws the same bytes
as an uninterrupted one.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from evoticket import records
from evoticket.core import paths
from evoticket.core.errors import EvoticketError
from evoticket.core.io import atomic_open

FORMATS = ("png", "pdf")
"""Every figure is written as a raster PNG (screens, README) and a vector PDF (papers)."""

COLUMN_WIDTH = 3.4
"""A paper's column width in inches; figures are sized in multiples of it so fonts stay legible."""

_METADATA = {"png": {"Software": None}, "pdf": {"CreationDate": None, "Producer": None, "Creator": None}}

_STYLE = {
    "font.size": 8,
    "axes.titlesize": 8.5,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 6.5,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "pdf.fonttype": 42,
    "svg.hashsalt": "evoticket",
}


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend, with evoticket's paper style applied."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(_STYLE)
    return plt


def require_run(run_dir: Path) -> Path:
    """Check that ``run_dir`` is a run directory (holds ``generations.csv``).

    Raises:
        EvoticketError: if the folder is missing or holds no ``generations.csv``.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise EvoticketError(f"{run_dir}: no such run directory")
    if not paths.generations_csv(run_dir).is_file():
        raise EvoticketError(f"{run_dir}: not a run directory (no generations.csv)")
    return run_dir


def read_config(run_dir: Path) -> dict[str, Any] | None:
    """The run's resolved ``config.toml`` as a dict, or ``None`` when it is absent."""
    cfg = paths.config(run_dir)
    if not cfg.is_file():
        return None
    return tomllib.loads(cfg.read_text(encoding="utf-8"))


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    """The run's ``summary.json``, or ``None`` while the campaign is still running (or was killed)."""
    return records.read_summary(run_dir) if paths.summary(run_dir).is_file() else None


def read_individuals(run_dir: Path) -> list[dict[str, Any]]:
    """The run's ``individuals.jsonl`` records ([] when the file is absent or empty)."""
    return records.read_individuals(run_dir) if paths.individuals_jsonl(run_dir).is_file() else []


def read_report(run_dir: Path) -> dict[str, Any] | None:
    """What the run's method calls things (:meth:`evoticket.methods.Method.report`): from ``summary.json`` when the
    run finished, else ``method.json`` (written when the run was created); ``None`` for a run of an earlier evoticket."""
    summary = read_summary(run_dir)
    if summary is not None and summary.get("report"):
        return summary["report"]
    path = paths.method_report(run_dir)
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    return None


def run_title(run_dir: Path, what: str) -> str:
    """A figure title: ``what`` then the run's name, and its data set, model, density and method in the method's own
    words (:func:`read_report`)."""
    title = f"{what}: {Path(run_dir).name}"
    c = read_config(run_dir)
    if c is not None:
        report = read_report(run_dir) or {}
        try:
            span = c["ticket"].get("density_range") or []
            if span:
                density = f"densities {span[0]:g}-{span[1]:g}"
            else:
                density = report.get("density") or f"density {c['ticket']['density']}"
            subtitle = report.get("subtitle") or str(c.get("method", "ga"))
            title += f"\n{c['data']['name']}, {c['model']['name']}, {density}, {subtitle}"
        except KeyError:
            title = title.split("\n")[0]
    return title


def has_population(run_dir: Path) -> bool:
    """Whether the run's records hold a population per generation (the lineage, operators and diversity figures
    apply): the method's report says so; for a run without one, whether any generation evaluated several individuals."""
    report = read_report(run_dir)
    if report is not None and "population" in report:
        return bool(report["population"])
    return any(int(r.get("nevals") or 0) > 1 for r in records.read_generations(run_dir))


def units(run_dir: Path) -> tuple[str, str]:
    """What one row of the run's ``generations.csv`` is, singular and plural (``generation``, ``round``, ``run``).

    From the method's report; for a run written before reports existed, from its records: rows that each hold one
    trained network with its own training curve are a one-run method's run, rows that each hold a trained network's
    test accuracy without one are rounds (IMP's), anything else generations.
    """
    report = read_report(run_dir)
    if report is not None and "unit" in report:
        return report["unit"], report.get("units", report["unit"] + "s")
    recs = read_individuals(run_dir)
    if recs and any("curve" in r for r in recs):
        return "run", "runs"
    if recs and all("test_acc" in r for r in recs):
        return "round", "rounds"
    return "generation", "generations"


def fitness(record: dict[str, Any]) -> float:
    """An individual's validation accuracy after fine-tuning in [0, 1]; 0.0 for a diverged one."""
    return records.fitness(record)


def save(fig: Any, out: Path) -> Path:
    """Write ``fig`` to ``out`` atomically, in the format named by its suffix (png or pdf), without dates.

    Returns:
        ``out``.
    """
    out = Path(out)
    fmt = out.suffix.lstrip(".").lower() or "png"
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(out, "wb") as f:
        fig.savefig(f, format=fmt, metadata=_METADATA.get(fmt))
    return out


def save_all(fig: Any, plot_dir: Path, name: str, formats: tuple[str, ...] = FORMATS) -> list[Path]:
    """Write ``fig`` as ``plot_dir/NAME.png`` and ``plot_dir/NAME.pdf`` (or the given ``formats``) and close it.

    Returns:
        The written paths, in the order of ``formats`` (PNG first by default).
    """
    written = [save(fig, paths.plot_file(plot_dir, name, ext)) for ext in formats]
    pyplot().close(fig)
    return written


def run_method(run_dir: Path) -> str:
    """The method that found the run's tickets: ``"ga"``, ``"imp"``, ...

    From ``summary.json`` (a finished run), else the method's report (``method.json``), else ``config.toml``'s
    ``method``, else ``"ga"`` (the default).
    """
    summary = read_summary(run_dir)
    if summary is not None and summary.get("method"):
        return str(summary["method"])
    report = read_report(run_dir)
    if report is not None and report.get("method"):
        return str(report["method"])
    config = read_config(run_dir)
    if config is not None and config.get("method"):
        return str(config["method"])
    return "ga"
