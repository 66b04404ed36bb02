"""What every figure shares: the matplotlib setup, the run's title, reading records, saving PNG and PDF.

Figures are deterministic functions of the records: no timestamps, no wall-clock columns, and the
PNG and PDF files carry no creation date or software version, so a resumed run draws the same bytes
as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import textwrap
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
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


# ---------------------------------------------------------------------------
# layout: titles that fit, labels next to what they label


def fit_title(
    fig: Any, ax: Any, title: str, *, rect: tuple[float, float, float, float] = (0, 0, 1, 1), **kwargs: Any
) -> None:
    """Set ``ax``'s title, wrapped at spaces until it lies inside the figure, and lay the figure out.

    matplotlib's ``tight_layout`` ignores a title's width and centres the title over its axes (which a
    colour bar pushes left), so a long title is cut at the figure's edge. Each line of ``title`` is
    wrapped (at spaces only, so a run's name stays whole) to the most characters that fit.

    Args:
        fig: the matplotlib Figure.
        ax: its Axes that carries the title.
        title: the title; ``"\\n"`` starts a new line.
        rect: the part of the figure ``tight_layout`` lays the axes out in, in figure fractions
            ``(left, bottom, right, top)``.
        **kwargs: passed to ``ax.set_title`` (``pad``, ...).
    """
    renderer = fig.canvas.get_renderer()
    lines = title.split("\n")
    width = max(len(line) for line in lines)
    while True:
        ax.set_title(
            "\n".join(
                textwrap.fill(line, width, break_long_words=False, break_on_hyphens=False) or line for line in lines
            ),
            **kwargs,
        )
        fig.tight_layout(rect=rect)
        box, page = ax.title.get_window_extent(renderer), fig.bbox
        if (box.x0 >= page.x0 and box.x1 <= page.x1) or width <= 12:
            return
        centre = (box.x0 + box.x1) / 2
        room = 2 * min(centre - page.x0, page.x1 - centre) - 2
        width = max(12, min(width - 1, int(width * room / box.width)))


@dataclass(frozen=True)
class Spot:
    """Where a label may sit around its point: a direction (unit offsets), alignment and rotation."""

    dx: float
    """Horizontal direction of the offset, in units of the gap (-1 left, 1 right)."""
    dy: float
    """Vertical direction of the offset, in units of the gap (-1 below, 1 above)."""
    ha: str
    """Horizontal alignment of the text's box on the offset point."""
    va: str
    """Vertical alignment of the text's box on the offset point."""
    rotation: int = 0
    """Rotation of the text in degrees (90: read bottom to top, narrow enough for crowded rows)."""


SPOTS = (
    Spot(0, 1, "center", "bottom"),
    Spot(0, -1, "center", "top"),
    Spot(1, 0, "left", "center"),
    Spot(-1, 0, "right", "center"),
    Spot(0.75, 0.75, "left", "bottom"),
    Spot(-0.75, 0.75, "right", "bottom"),
    Spot(0.75, -0.75, "left", "top"),
    Spot(-0.75, -0.75, "right", "top"),
    Spot(0, 1, "center", "bottom", 90),
    Spot(0, -1, "center", "top", 90),
)
"""Candidate spots of :func:`place_labels`, most preferred first: above, below, right, left, the
diagonals, then rotated above and below."""


def _distance(x: float, y: float, box: Any) -> float:
    """Distance in display pixels from the point (x, y) to the box (0 inside it)."""
    return math.hypot(max(box.x0 - x, 0.0, x - box.x1), max(box.y0 - y, 0.0, y - box.y1))


def place_labels(
    ax: Any,
    labels: Sequence[tuple[str, int, float]],
    points: Sequence[tuple[float, float]],
    *,
    gaps: Sequence[float] = (2.0,),
    spots: Sequence[Spot] = SPOTS,
    avoid: Sequence[Any] = (),
    required: bool = True,
    **text: Any,
) -> list[Any]:
    """Put each label next to its own point, nearer to it than to any other point, without overlaps.

    Greedy, in the order given: for each label the ``spots`` are tried at each gap; a spot
    is feasible when the text lies inside the axes and overlaps no label placed before and no box of
    ``avoid``. Among feasible spots the first whose text is nearer to its own point than to any other
    is taken (centred above or below a point in a crowded row, a label is as near to the neighbours
    its width spans: then a rotated one, narrower, may still be nearest to its own point). The figure
    must be laid out already (the layout fixes the display positions measured here).

    Args:
        ax: the Axes the points are drawn in.
        labels: (text, index of its point in ``points``, radius of the point's marker in points).
        points: every point that a label could be mistaken for, in data coordinates.
        gaps: distances tried between a marker's edge and its label, in points, nearest first.
        spots: where around its point a label may sit, most preferred first (:data:`SPOTS` by default).
        avoid: display-space boxes (``Bbox``) no label may overlap, e.g. the legend's window extent.
        required: place a label even where no spot is feasible (the least bad one); else leave it out.
        **text: passed to ``ax.annotate`` (font size, colour, ...); a white halo keeps labels legible over lines.

    Returns:
        One Annotation per label, in order; ``None`` for a label left out (only when not ``required``).

    Raises:
        ValueError: if ``gaps`` or ``spots`` is empty.
    """
    if not gaps or not spots:
        raise ValueError("place_labels: needs at least one gap and one spot")
    from matplotlib import patheffects

    text = {"path_effects": [patheffects.withStroke(linewidth=1.5, foreground="white")], "zorder": 5, **text}
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    shown = ax.transData.transform(points) if len(points) else []
    frame = ax.get_window_extent(renderer)
    placed: list[Any] = []
    out: list[Any] = []
    for label, index, radius in labels:
        x, y = shown[index]
        others = [(float(a), float(b)) for i, (a, b) in enumerate(shown) if i != index]
        best: tuple[tuple[float, ...], Any] | None = None
        order = 0
        for gap in gaps:
            for spot in spots:
                reach = radius + gap
                ann = ax.annotate(
                    label,
                    points[index],
                    xytext=(spot.dx * reach, spot.dy * reach),
                    textcoords="offset points",
                    ha=spot.ha,
                    va=spot.va,
                    rotation=spot.rotation,
                    **text,
                )
                box = ann.get_window_extent(renderer)
                feasible = (
                    frame.x0 <= box.x0
                    and box.x1 <= frame.x1
                    and frame.y0 <= box.y0
                    and box.y1 <= frame.y1
                    and not any(box.overlaps(b) for b in [*placed, *avoid])
                )
                own = _distance(x, y, box)
                margin = min((_distance(a, b, box) for a, b in others), default=math.inf) - own
                tier = 0 if margin > 0 else 1
                key = (0 if feasible else 1, tier, order if tier == 0 else -margin)
                if best is None or key < best[0]:
                    if best is not None:
                        best[1].remove()
                    best = (key, ann)
                else:
                    ann.remove()
                order += 1
        assert best is not None  # gaps and spots are not empty
        (infeasible, tier, _), ann = best
        if not required and (infeasible or tier):
            ann.remove()
            out.append(None)
            continue
        placed.append(ann.get_window_extent(renderer))
        out.append(ann)
    return out
