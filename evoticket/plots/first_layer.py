"""Comparing first-layer masks: several runs' tickets side by side, each unit's kept inputs and their locality.

One panel per run: the first masked layer's mask with its inputs in order on the x axis (for MNIST-1D the 40
positions of the signal) and its units on the y axis, sorted by the centre of their kept inputs so that windows
show as a diagonal band; a kept weight is dark. Each panel's title names the run, its method in the method's own
words (``summary.json``'s report, else ``method.json``: :func:`evoticket.plots.common.read_report`) and the mask's
locality score against a random mask of the same density (:func:`evoticket.genome.locality`): lottery masks
pruned on MNIST-1D keep more adjacent inputs than random ones (Greydanus 2020, arXiv:2011.14439; Pellegrini &
Biroli 2021, arXiv:2104.13343). A convolution is drawn as one row per output and input channel over its kernel
positions (a 2D kernel's flattened row by row).

Which file: every method's run writes its reported ticket to ``best_ticket.pt`` (the GA's winning ticket, IMP's
reported round, RigL's mask at its early-stopping step, ...), and the final comparison trains exactly that mask,
unchanged (its ``trained_ticket.pt`` holds the same masks with the trained weights). So ``best_ticket.pt`` is
the mask that was trained, for every method, and is what is drawn (:func:`ticket_file`). A run still running has
none yet: its panel says so.

Drawn by ``evoticket compare RUN_DIR ... --masks`` (``first_layer_masks.png``/``.pdf`` next to the comparison).
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evoticket.core import paths
from evoticket.core.errors import EvoticketError
from evoticket.genome import Locality, locality, position_layout
from evoticket.genome.files import read_ticket_file
from evoticket.plots import common

PER_ROW = 4
"""Panels per row of the figure."""

FIGURE = "first_layer_masks"
"""The figure's file name (without extension)."""


def ticket_file(run_dir: Path) -> Path:
    """The ticket file whose mask a run trained: ``best_ticket.pt`` for every method (see the module docstring)."""
    return paths.best_ticket(run_dir)


def sort_by_centre(rows: np.ndarray) -> np.ndarray:
    """The rows of a mask ordered by the mean position of their kept entries (empty rows last, ties stable).

    Args:
        rows: bool array of shape ``(units, positions)``.

    Returns:
        The row indices, an int array of shape ``(units,)``.
    """
    kept = rows.sum(axis=1)
    centre = (rows * np.arange(rows.shape[1])).sum(axis=1) / np.maximum(kept, 1)
    centre = np.where(kept > 0, centre, np.inf)
    return np.argsort(centre, kind="stable")


def first_layer(run_dir: Path) -> tuple[str, torch.Tensor, str] | None:
    """The first masked layer of a run's trained ticket: ``(weight name, bool mask, data set name)``.

    Returns:
        ``None`` while the run has no ticket file yet.

    Raises:
        EvoticketError: if ``run_dir`` is not a run directory or its ticket file is not an evoticket ticket.
    """
    path = ticket_file(common.require_run(run_dir))
    if not path.is_file():
        return None
    ticket, _, config = read_ticket_file(path)
    name = next(iter(ticket.masks))
    return name, ticket.masks[name].to("cpu"), config.data.name


def _labels(run_dirs: Sequence[Path]) -> list[str]:
    """Each run's name, or the path as given where two runs share a name."""
    names = [Path(d).name for d in run_dirs]
    return [str(d) if names.count(n) > 1 else n for d, n in zip(run_dirs, names, strict=True)]


def method_words(run_dir: Path) -> str:
    """The run's method in its own words: its report's subtitle, prefixed by the method's name unless the subtitle
    starts with it (e.g. "ga: lamarckian fine-tuning, 34 steps", "RigL, update every 100 steps, 1500 steps")."""
    method = common.run_method(run_dir)
    subtitle = (common.read_report(run_dir) or {}).get("subtitle") or ""
    if not subtitle or subtitle.lower().startswith(method.lower()):
        return subtitle or method
    return f"{method}: {subtitle}"


def _locality_line(score: Locality) -> str:
    ratio = score.ratio
    times = f", {ratio:.1f}x" if math.isfinite(ratio) else ""
    return f"locality {score.score:.2f} vs {score.expected:.2f} random{times}"


def draw_first_layer_masks(run_dirs: Sequence[Path]) -> Any:
    """The first-layer masks of several runs, one panel each (a matplotlib Figure; the caller saves and closes it).

    Args:
        run_dirs: run directories (any method; one without a ticket yet gets an empty panel saying so).

    Raises:
        EvoticketError: if no run is given, a path is not a run directory or a ticket file is unreadable.
    """
    if not run_dirs:
        raise EvoticketError("the first-layer masks figure needs at least one run directory")
    run_dirs = [Path(d) for d in run_dirs]
    layers = [first_layer(d) for d in run_dirs]  # every path checked before anything is drawn
    plt = common.pyplot()
    per_row = min(len(run_dirs), PER_ROW)
    rows = -(-len(run_dirs) // per_row)
    width = max(common.COLUMN_WIDTH, 2.4 * per_row)
    chars = int((width / per_row - 0.45) * 72 / 3.4)  # title characters per line at 6 points over one axes
    fig, axes = plt.subplots(rows, per_row, figsize=(width, 0.6 + 2.9 * rows), squeeze=False, constrained_layout=True)
    for ax in axes.flat[len(run_dirs) :]:
        ax.set_visible(False)
    for ax, run_dir, label, layer in zip(axes.flat, run_dirs, _labels(run_dirs), layers, strict=False):
        name_lines = [label[i : i + chars] for i in range(0, len(label), chars)]  # a run name has no spaces to wrap at
        head = [*name_lines, *textwrap.wrap(method_words(run_dir), chars)]
        ax.grid(False)
        if layer is None:
            ax.set_title("\n".join(head), fontsize=6)
            ax.text(0.5, 0.5, "no ticket yet\n(still running)", ha="center", va="center", fontsize=7, color="0.4")
            ax.axis("off")
            continue
        name, mask, data = layer
        units, grid = position_layout(mask.shape)
        image = mask.reshape(units, -1).numpy()
        image = image[sort_by_centre(image)]
        score = locality(mask)
        ax.imshow(image, cmap="Greys", aspect="auto", interpolation="nearest", vmin=0, vmax=1)
        shape = " x ".join(map(str, mask.shape))
        kept = f"{name.removesuffix('.weight')} {shape}, {image.mean():.0%} kept"
        ax.set_title("\n".join([*head, kept, _locality_line(score)]), fontsize=6)
        if mask.dim() == 2:
            hint = " (position in the signal)" if data == "mnist1d" else ""
            ax.set_xlabel(f"input{hint}", fontsize=7)
            ax.set_ylabel("unit (sorted by window centre)", fontsize=7)
        else:
            kernel = "kernel position" + (" (row by row)" if len(grid) > 1 else "")
            ax.set_xlabel(kernel, fontsize=7)
            ax.set_ylabel("output x input channel\n(sorted by window centre)", fontsize=7)
        ax.tick_params(labelsize=6)
    fig.suptitle(
        "First-layer masks (kept weights dark)\nlocality: share of kept weights whose next input is kept",
        fontsize=7.5,
    )
    return fig


def plot_first_layer_masks(
    run_dirs: Sequence[Path], out_dir: Path, formats: tuple[str, ...] = common.FORMATS
) -> list[Path]:
    """Write :func:`draw_first_layer_masks` as ``OUT_DIR/first_layer_masks.png`` and ``.pdf``.

    Args:
        run_dirs: run directories.
        out_dir: the folder to write into (created if needed).
        formats: figure formats, ``("png", "pdf")`` by default.

    Returns:
        The written paths, PNG first.

    Raises:
        EvoticketError: as :func:`draw_first_layer_masks`.
    """
    return common.save_all(draw_first_layer_masks(run_dirs), out_dir, FIGURE, formats)


__all__ = [
    "FIGURE",
    "draw_first_layer_masks",
    "first_layer",
    "method_words",
    "plot_first_layer_masks",
    "sort_by_centre",
    "ticket_file",
]
