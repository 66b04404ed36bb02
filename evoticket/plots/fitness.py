"""The fitness figure: validation accuracy per generation, before and after fine-tuning.

The gap between the two families of curves is the Baldwin effect: what 100 steps of fine-tuning add
to a ticket at its initial weights. When ``summary.json`` exists, the final comparison's test
accuracies of the dense network and of a random mask at the ticket's density are drawn as reference
lines (with their spread over seeds), so the reader sees where the search stands.

A method that trains one network in one run (``dense``, ``rigl``, ``gmp``, ...) has one generation,
so its figure is its training curve instead (:func:`draw_training_curve`): validation and test
accuracy at every check, the early-stopping step, the density where it changes (gradual pruning),
and the same reference lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evoticket import records
from evoticket.core.errors import EvoticketError
from evoticket.plots import common

X_AXES = ("generation", "train_flops")
"""What the x axis can be: the generation, or the search's cumulative train FLOPs (compute meter)."""

_AFTER, _BEFORE = "tab:blue", "tab:orange"
_REFERENCES = {
    "dense": ("dense network", "0.25"),
    "random": ("random mask", "tab:red"),
    "dense_scratch": ("dense network from scratch", "0.25"),
    "random_scratch": ("random mask from scratch", "tab:red"),
    "ticket": ("ticket", "tab:green"),
}


def x_values(rows: list[dict[str, Any]], x_axis: str) -> tuple[list[float], str]:
    """The x coordinates of generation rows and the axis label.

    Args:
        rows: ``generations.csv`` rows, in order.
        x_axis: ``"generation"`` or ``"train_flops"`` (cumulative train FLOPs at the end of each generation).

    Returns:
        ``(xs, label)``; with ``"train_flops"`` the values are in TFLOP.

    Raises:
        EvoticketError: for another ``x_axis``.
    """
    if x_axis == "generation":
        return [r["generation"] for r in rows], "generation"
    if x_axis == "train_flops":
        xs, total = [], 0
        for r in rows:
            total += int(r["train_flops"])
            xs.append(total / 1e12)
        return xs, "cumulative search compute (train TFLOP)"
    raise EvoticketError(f"unknown x axis {x_axis!r}; valid: {', '.join(X_AXES)}")


def y_limits(values: list[float], margin: float = 0.08) -> tuple[float, float]:
    """Limits that fit ``values`` (accuracies in [0, 1]) with a relative margin, clipped to [0, 1].

    Returns:
        ``(low, high)`` with ``high - low >= 0.02``.
    """
    finite = [v for v in values if v == v]
    if not finite:
        return 0.0, 1.0
    low, high = min(finite), max(finite)
    span = max(high - low, 0.02)
    return max(0.0, low - margin * span), min(1.0, high + margin * span)


def draw_fitness(run_dir: Path, *, x_axis: str = "generation") -> Any:
    """The fitness figure of a run (a matplotlib Figure; the caller saves and closes it).

    Args:
        run_dir: a run directory holding ``generations.csv``; ``summary.json`` adds the reference lines.
        x_axis: ``"generation"`` or ``"train_flops"`` (see :func:`x_values`).

    Raises:
        EvoticketError: if the run has no generation yet, or for an unknown ``x_axis``.
    """
    plt = common.pyplot()
    rows = records.read_generations(common.require_run(run_dir))
    if not rows:
        raise EvoticketError(f"{run_dir}: generations.csv holds no generation yet")
    xs, xlabel = x_values(rows, x_axis)
    unit = common.units(run_dir)[0]  # generation, or the method's own (random_search: batch)
    if x_axis == "generation":
        xlabel = unit
    individuals = common.read_individuals(run_dir)
    if len(individuals) == 1 and "curve" in individuals[0]:
        return draw_training_curve(run_dir)
    summary = common.read_summary(run_dir)
    fig, (ax_after, ax_before) = plt.subplots(
        2, 1, figsize=(2 * common.COLUMN_WIDTH, 5.2), sharex=True, height_ratios=(3, 2)
    )
    for ax, prefix, colour, what in (
        (ax_after, "val_acc", _AFTER, "after fine-tuning"),
        (ax_before, "val_acc_before", _BEFORE, "before fine-tuning\n(step 0)"),
    ):
        best, mean, worst = ([r[f"{prefix}_{s}"] for r in rows] for s in ("max", "avg", "min"))
        ax.fill_between(xs, worst, best, color=colour, alpha=0.15, lw=0)
        ax.plot(xs, best, color=colour, lw=1.8, marker="o" if len(xs) == 1 else None)
        ax.plot(xs, mean, color=colour, lw=1.1, ls="--")
        ax.plot(xs, worst, color=colour, lw=0.8, ls=":")
        ax.set_ylabel(f"validation accuracy\n{what}")
        ax.set_ylim(*y_limits(best + worst))
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [
        Line2D([], [], color="0.2", lw=1.8, label="best of population"),
        Line2D([], [], color="0.2", lw=1.1, ls="--", label="mean"),
        Line2D([], [], color="0.2", lw=0.8, ls=":", label="worst"),
        Patch(color="0.2", alpha=0.15, lw=0, label="range (worst to best)"),
    ]
    config = common.read_config(run_dir) or {}
    steps = config.get("campaign", {}).get("final_steps")
    refs_handles, refs = _reference_lines(ax_after, summary, f"{steps} steps, " if steps else "")
    handles += refs_handles
    if refs:
        best, worst = [r["val_acc_max"] for r in rows], [r["val_acc_min"] for r in rows]
        ax_after.set_ylim(*y_limits(best + worst + refs))
    ax_before.set_xlabel(xlabel)
    if x_axis == "generation":  # whole generations only
        from matplotlib.ticker import MaxNLocator

        ax_before.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.legend(handles=handles, loc="lower center", ncol=2 if refs else 4, framealpha=0.9, bbox_to_anchor=(0.5, 0.0))
    fig.align_ylabels((ax_after, ax_before))
    bottom = 0.035 * ((len(handles) + 1) // 2) + 0.01 if refs else 0.05
    common.fit_title(
        fig, ax_after, common.run_title(run_dir, f"Validation accuracy per {unit}"), rect=(0, bottom, 1, 1)
    )
    return fig


def _reference_lines(ax: Any, summary: dict | None, trained: str) -> tuple[list[Any], list[float]]:
    """The final comparison's dense and random-mask test accuracies as lines with their spread; legend handles.

    The controls from a fresh initialisation (``dense_scratch``, ``random_scratch``) where the run has them: the ones
    from the ticket's theta0 start warm when that theta0 holds trained weights (a Lamarckian lineage's), so they are
    no reference for what search reached; runs of evoticket 0.2 show ``dense`` and ``random``.
    """
    from matplotlib.lines import Line2D

    handles, refs = [], []
    controls = (summary or {}).get("controls", {})
    keys = ("dense_scratch", "random_scratch") if "dense_scratch" in controls else ("dense", "random")
    for key in keys:
        c = controls.get(key)
        if not c or c.get("test_acc_mean") is None:
            continue
        label, colour = _REFERENCES[key]
        mean, std = float(c["test_acc_mean"]), float(c.get("test_acc_std") or 0.0)
        n = len(c.get("test_acc", []))
        ax.axhline(mean, color=colour, lw=1.0, ls="-.")
        ax.axhspan(mean - std, mean + std, color=colour, alpha=0.08, lw=0)
        refs.append(mean)
        handles.append(
            Line2D(
                [],
                [],
                color=colour,
                lw=1.0,
                ls="-.",
                label=f"{label} (density {c.get('density', float('nan')):.2f}), final comparison: "
                f"test acc. {mean:.3f} ± {std:.3f} sd ({trained}{n} seeds)",
            )
        )
    return handles, refs


def draw_training_curve(run_dir: Path) -> Any:
    """The training curve of a one-run method: accuracy at every check, early-stopping step, density.

    Args:
        run_dir: a run whose single record carries ``curve`` (``step``, ``val_acc``, ``test_acc``,
            ``density_total`` lists).

    Returns:
        A matplotlib Figure (the caller saves and closes it).

    Raises:
        EvoticketError: if the run holds no such record.
    """
    from matplotlib.lines import Line2D

    plt = common.pyplot()
    individuals = common.read_individuals(common.require_run(run_dir))
    if not individuals or "curve" not in individuals[0]:
        raise EvoticketError(f"{run_dir}: no training curve recorded (not a one-run method's run)")
    record = individuals[0]
    curve = record["curve"]
    steps = curve["step"]
    fig, ax = plt.subplots(figsize=(2 * common.COLUMN_WIDTH, 4.2))
    ax.plot(steps, curve["val_acc"], color=_AFTER, lw=1.6, marker="o", ms=3)
    ax.plot(steps, curve["test_acc"], color=_REFERENCES["ticket"][1], lw=1.2, ls="--")
    best = record.get("best_step")
    handles = [
        Line2D([], [], color=_AFTER, lw=1.6, marker="o", ms=3, label="validation accuracy"),
        Line2D([], [], color=_REFERENCES["ticket"][1], lw=1.2, ls="--", label="test accuracy"),
    ]
    if best is not None:
        ax.axvline(best, color="0.5", lw=0.8, ls=":")
        handles.append(
            Line2D(
                [],
                [],
                color="0.5",
                lw=0.8,
                ls=":",
                label=f"early-stopping step {best} (test acc. {record['test_acc']:.3f})",
            )
        )
    config = common.read_config(run_dir) or {}
    final = config.get("campaign", {}).get("final_steps")
    refs_handles, refs = _reference_lines(ax, common.read_summary(run_dir), f"{final} steps, " if final else "")
    handles += refs_handles
    for name, c in (record.get("controls") or {}).items():
        if "test_acc" in c:
            ax.axhline(c["test_acc"], color="tab:purple", lw=0.9, ls=(0, (1, 1)))
            refs.append(c["test_acc"])
            handles.append(
                Line2D(
                    [],
                    [],
                    color="tab:purple",
                    lw=0.9,
                    ls=(0, (1, 1)),
                    label=f"{name} (this run's control): test acc. {c['test_acc']:.3f}",
                )
            )
    ax.set_ylim(*y_limits(curve["val_acc"] + curve["test_acc"] + refs))
    ax.set_xlabel("training step")
    ax.set_ylabel("accuracy")
    density = curve.get("density_total") or []
    if density and max(density) - min(density) > 1e-9:
        twin = ax.twinx()
        twin.plot(steps, density, color="0.35", lw=1.0, drawstyle="steps-post")
        twin.set_ylabel("density (fraction of weights kept)")
        twin.set_ylim(0, 1.02)
        handles.append(Line2D([], [], color="0.35", lw=1.0, label="density (right axis)"))
    fig.legend(handles=handles, loc="lower center", ncol=2, framealpha=0.9, bbox_to_anchor=(0.5, 0.0))
    bottom = 0.045 * ((len(handles) + 1) // 2) + 0.02
    common.fit_title(fig, ax, common.run_title(run_dir, "Training curve"), rect=(0, bottom, 1, 1))
    return fig


def plot_fitness(run_dir: Path, out: Path, *, x_axis: str = "generation") -> Path:
    """Best, mean and worst validation accuracy per generation, before and after fine-tuning.

    Args:
        run_dir: a run directory holding ``generations.csv`` (and ``config.toml``, ``summary.json`` when present).
        out: the file to write (its suffix, ``.png`` or ``.pdf``, picks the format); its folder is created.
        x_axis: ``"generation"`` or ``"train_flops"`` (cumulative train FLOPs of the search).

    Returns:
        ``out``.

    Raises:
        EvoticketError: if ``run_dir`` is not a run or holds no generation yet, or for an unknown ``x_axis``.
    """
    fig = draw_fitness(run_dir, x_axis=x_axis)
    try:
        return common.save(fig, out)
    finally:
        common.pyplot().close(fig)
