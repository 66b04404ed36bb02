"""The masks figure: the best ticket's pruning mask per layer as an image, with per-layer density bars.

Each mask is drawn as a (out, in) image (a convolution's (out, in, k) or (out, in, kh, kw) kernel is
flattened to (out, in x k) or (out, in x kh x kw)): a kept weight is dark; a network of many layers (a
ResNet-20 has 20) wraps them over rows of :data:`PER_ROW`. Below, the first layer's kept weights per
input (for MNIST-1D its 40 inputs are positions of the signal, so spatial structure shows; for a 2D
convolution, per kernel position, summed over channels) and each layer's density against the run's
target density.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from evoticket.core import paths
from evoticket.genome.files import read_ticket_file
from evoticket.plots import common

PER_ROW = 6
"""Mask images per row of the figure."""


def draw_masks(ticket_path: Path, run_dir: Path | None = None) -> Any:
    """The masks figure of a ticket file (a matplotlib Figure), or ``None`` when the file is absent.

    Args:
        ticket_path: a ticket file (``best_ticket.pt``).
        run_dir: the run it belongs to, for the title (default: the ticket's folder).

    Raises:
        EvoticketError: if the file is not an evoticket ticket.
    """
    ticket_path = Path(ticket_path)
    if not ticket_path.is_file():
        return None
    plt = common.pyplot()
    from matplotlib.ticker import MaxNLocator

    ticket, _, config = read_ticket_file(ticket_path)
    raw = {name: m.to("cpu").numpy() for name, m in ticket.masks.items()}
    masks = {name: m.reshape(m.shape[0], -1) for name, m in raw.items()}
    names = list(masks)
    per_row = min(len(names), PER_ROW)
    rows = -(-len(names) // per_row)
    fig = plt.figure(figsize=(2 * common.COLUMN_WIDTH, 2.9 + 1.9 * rows), constrained_layout=True)
    grid = fig.add_gridspec(rows + 1, per_row, height_ratios=(*([3] * rows), 1.6 if rows == 1 else 2.2))
    small = 7 if rows == 1 else 6
    for j, name in enumerate(names):
        ax = fig.add_subplot(grid[j // per_row, j % per_row])
        m = masks[name]
        ax.imshow(m, cmap="Greys", aspect="auto", interpolation="nearest", vmin=0, vmax=1)
        ax.set_title(
            f"{name.removesuffix('.weight')}\n{' x '.join(map(str, raw[name].shape))}\n"
            f"{int(m.sum()):,} kept ({m.mean():.1%})",
            fontsize=small,
        )
        ax.tick_params(labelsize=small)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=3))
        if j // per_row == rows - 1 or j + per_row >= len(names):
            ax.set_xlabel("input unit", fontsize=small)
        ax.set_ylabel("output unit" if j % per_row == 0 else "", fontsize=small)
        ax.grid(False)
    first = raw[names[0]]
    split = max(1, per_row // 2) if len(names) > 4 else max(1, per_row - 1)
    ax = fig.add_subplot(grid[rows, :split])
    if first.ndim == 4:  # a 2D convolution: kept weights per kernel position
        kept = first.sum(axis=(0, 1))
        ax.imshow(kept, cmap="Greys", interpolation="nearest", vmin=0, aspect="auto")
        for (r, c), v in np.ndenumerate(kept):
            dark = v > kept.max() / 2
            ax.text(c, r, f"{int(v)}", ha="center", va="center", fontsize=6, color="white" if dark else "black")
        ax.set_title(f"kept weights of {names[0]} per kernel position", fontsize=small)
        ax.set_xlabel("kernel column")
        ax.set_ylabel("kernel row")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(False)
    else:
        per_input = masks[names[0]]
        ax.bar(range(per_input.shape[1]), per_input.sum(axis=0), color="0.3", width=0.85)
        ax.axhline(per_input.sum() / per_input.shape[1], color="tab:red", lw=0.8, ls="--", label="uniform")
        hint = " (position in the signal)" if config.data.name == "mnist1d" else ""
        ax.set_xlabel(f"input of {names[0]}{hint}")
        ax.set_ylabel("kept weights")
        ax.legend(loc="upper right")
    ax = fig.add_subplot(grid[rows, split:]) if len(names) > 1 else None
    if ax is not None:
        dens = [float(masks[n].mean()) for n in names]
        ax.bar(range(len(names)), dens, color="tab:blue")
        labels = [n.removesuffix(".weight") for n in names]
        ax.set_xticks(range(len(names)), labels, rotation=90 if len(names) > 5 else 0, fontsize=small)
        target = float(config.ticket.density)
        ax.axhline(target, color="tab:red", lw=0.8, ls="--", label=f"target {target:g}")
        ax.set_ylabel("density per layer")
        ax.set_ylim(0, max([*dens, target]) * 1.25)
        ax.legend(loc="upper right")
    uid = ticket.uid if ticket.uid is not None else "?"
    fig.suptitle(common.run_title(run_dir or ticket_path.parent, f"Masks of the best ticket (uid {uid})"), fontsize=8.5)
    return fig


def draw_best_masks(run_dir: Path) -> Any:
    """:func:`draw_masks` of the run's ``best_ticket.pt``; ``None`` while the run has none yet."""
    return draw_masks(paths.best_ticket(common.require_run(run_dir)), run_dir)
