"""What every figure shares: the matplotlib setup, the run's title, reading records, saving PNG and PDF.

Figures are deterministic functions of the records: no timestamps, no wall-clock columns, and the
PNG and PDF files carry no creation date or software version, so a resumed run draws the same bytes
as an uninterrupted one.
"""

from __future__ import annotations

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


ONE_RUN_TITLES: dict[str, Any] = {
    "dense": lambda c: f"dense training, {c['train']['steps']} steps",
    "random": lambda c: f"random mask, {c['train']['steps']} steps",
    "gmp": lambda c: (
        f"gradual magnitude pruning from {c['gmp']['start']:g} to {c['gmp']['end']:g} of {c['train']['steps']} steps"
    ),
    "rigl": lambda c: (
        f"{'RigL' if c['rigl']['grow'] == 'gradient' else 'SET'}, update every "
        f"{c['rigl']['delta_t']} steps, {c['train']['steps']} steps"
    ),
    "edge_popup": lambda c: f"edge-popup (frozen {c['model']['init']} weights), {c['train']['steps']} steps",
    "bn_only": lambda c: f"BatchNorm parameters only, {c['train']['steps']} steps",
    "output_only": lambda c: f"output layer only, {c['train']['steps']} steps",
}
"""Method -> the second line's tail of a one-run method's figure titles, from its configuration."""


def run_title(run_dir: Path, what: str) -> str:
    """A figure title: ``what`` then the run's name and its data set, model, density and fine-tuning (IMP: rounds)."""
    title = f"{what}: {Path(run_dir).name}"
    c = read_config(run_dir)
    if c is not None:
        try:
            span = c["ticket"].get("density_range") or []
            density = f"densities {span[0]:g}-{span[1]:g}" if span else f"density {c['ticket']['density']}"
            title += f"\n{c['data']['name']}, {c['model']['name']}, {density}, "
            method = c.get("method", "ga")
            if method == "imp":
                title += f"IMP: prune {c['imp']['rate']:g} per round, {c['imp']['steps']} steps per round"
            elif method in ONE_RUN_TITLES:
                title += ONE_RUN_TITLES[method](c)
            elif method == "supermask_ga":
                title += "supermask search (no gradient)"
            else:
                title += f"{c['finetune']['mode']} fine-tuning, {c['finetune']['steps']} steps"
        except KeyError:
            title = title.split("\n")[0]
    return title


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

    From ``summary.json`` (a finished run), else ``config.toml``'s ``method``, else ``"imp"`` when the
    individual records carry ``test_acc`` (only IMP's rounds do) and ``"ga"`` otherwise.
    """
    summary = read_summary(run_dir)
    if summary is not None and summary.get("method"):
        return str(summary["method"])
    config = read_config(run_dir)
    if config is not None and config.get("method"):
        return str(config["method"])
    return "imp" if any("test_acc" in r for r in read_individuals(run_dir)) else "ga"
