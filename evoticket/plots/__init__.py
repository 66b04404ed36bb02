"""Figures made from a run's files on disk, never from live objects; one module per figure.

:func:`plot_run` writes every figure that applies to a run as PNG and PDF into its plot folder:
``fitness``, ``lineage``, ``lineage_fitness``, ``operators``, ``density``, ``diversity`` (from the
records) and ``masks`` (from ``best_ticket.pt``); the population figures (:data:`POPULATION_FIGURES`) only for a
run whose records hold a population (:func:`evoticket.plots.common.has_population`); ``imp_rounds`` for a run
whose records hold rounds with their own random control; for a multi-objective run ``pareto`` (with an IMP run's
rounds overlaid when one is given). A figure whose inputs are absent (a campaign still
running: no summary, no best ticket yet) is skipped or drawn without them.
"""

from __future__ import annotations

from pathlib import Path

from evoticket.core.io import write_csv
from evoticket.plots import common
from evoticket.plots.density import draw_density
from evoticket.plots.diversity import draw_diversity
from evoticket.plots.fitness import X_AXES, draw_fitness, plot_fitness
from evoticket.plots.imp_rounds import draw_imp_rounds, imp_rounds
from evoticket.plots.lineage import ancestors, draw_lineage, genealogy
from evoticket.plots.lineage_fitness import draw_lineage_fitness
from evoticket.plots.masks import draw_best_masks, draw_masks
from evoticket.plots.operators import draw_operators
from evoticket.plots.pareto import VS_IMP_COLUMNS, draw_pareto, pareto_vs_imp

FIGURES = {
    "lineage": draw_lineage,
    "lineage_fitness": draw_lineage_fitness,
    "operators": draw_operators,
    "density": draw_density,
    "masks": draw_best_masks,
    "diversity": draw_diversity,
    "imp_rounds": draw_imp_rounds,
    "pareto": draw_pareto,
}
"""Figure name -> drawing function ``(run_dir) -> Figure | None``, after ``fitness``."""

POPULATION_FIGURES = frozenset({"lineage", "lineage_fitness", "operators", "diversity"})
"""Figures of a population, skipped for a method whose records hold one network per row (IMP's rounds, a one-run
method's run)."""


def plot_run(
    run_dir: Path,
    out_dir: Path,
    *,
    x_axis: str = "generation",
    formats: tuple[str, ...] = common.FORMATS,
    imp_run: Path | None = None,
) -> list[Path]:
    """Write every figure that applies to a run, as PNG and PDF.

    Args:
        run_dir: a run directory (holding ``generations.csv``).
        out_dir: the plot folder, e.g. ``plots/NAME``; created if needed.
        x_axis: the fitness figure's x axis, ``"generation"`` or ``"train_flops"``.
        formats: file formats to write, ``("png", "pdf")`` by default.
        imp_run: an IMP run of the same network, overlaid on the ``pareto`` figure; the comparison at each of its
            rounds' densities is also written as ``pareto-vs-imp.csv`` (:func:`pareto_vs_imp`).

    Returns:
        The written paths (``fitness.png`` first), PNG before PDF for each figure.

    Raises:
        EvoticketError: if ``run_dir`` is not a run directory, holds no generation, or ``x_axis`` is unknown; if
            ``imp_run`` is not an IMP run, or is given for a run without a Pareto front.
    """
    run_dir = common.require_run(run_dir)
    written = common.save_all(draw_fitness(run_dir, x_axis=x_axis), out_dir, "fitness", formats)
    population = common.has_population(run_dir)
    for name, draw in FIGURES.items():
        if name in POPULATION_FIGURES and not population:
            continue
        fig = draw_pareto(run_dir, imp_run) if name == "pareto" else draw(run_dir)
        if fig is not None:
            written += common.save_all(fig, out_dir, name, formats)
    if imp_run is not None:
        rows = pareto_vs_imp(run_dir, imp_run)
        table = Path(out_dir) / "pareto-vs-imp.csv"
        table.parent.mkdir(parents=True, exist_ok=True)
        write_csv(table, VS_IMP_COLUMNS, rows)
        written.append(table)
    return written


__all__ = [
    "FIGURES",
    "POPULATION_FIGURES",
    "X_AXES",
    "ancestors",
    "draw_density",
    "draw_diversity",
    "draw_fitness",
    "draw_imp_rounds",
    "draw_lineage",
    "draw_lineage_fitness",
    "draw_masks",
    "draw_operators",
    "draw_pareto",
    "genealogy",
    "imp_rounds",
    "pareto_vs_imp",
    "plot_fitness",
    "plot_run",
]
