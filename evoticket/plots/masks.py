"""The masks figure: the best ticket's pruning mask per layer as an image, with per-layer density bars.

Each mask is drawn as a (out, in) image (a convolution's (out, in, k) kernel is flattened to
(out, in x k)): a kept weight is dark. Below, the number of kept weights per input of the first layer
(for MNIST-1D its 40 inputs are positions of the signal, so spatial structure shows) and each layer's
density against the run's target density.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evoticket.core import paths
from evoticket.genome.files import read_ticket_file
from evoticket.plots import common


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
    ticket, _, config = read_ticket_file(ticket_path)
    masks = {name: m.reshape(m.shape[0], -1).to("cpu").numpy() for name, m in ticket.masks.items()}
    names = list(masks)
    fig = plt.figure(figsize=(2 * common.COLUMN_WIDTH, 4.6), constrained_layout=True)
    grid = fig.add_gridspec(2, len(names), height_ratios=(3, 1.4))
    for j, name in enumerate(names):
        ax = fig.add_subplot(grid[0, j])
        m = masks[name]
        ax.imshow(m, cmap="Greys", aspect="auto", interpolation="nearest", vmin=0, vmax=1)
        ax.set_title(f"{name}  {m.shape[0]} x {m.shape[1]}\n{int(m.sum()):,} kept ({m.mean():.1%})", fontsize=7)
        ax.set_xlabel("input unit")
        ax.set_ylabel("output unit" if j == 0 else "")
        ax.grid(False)
    first = masks[names[0]]
    ax = fig.add_subplot(grid[1, : max(1, len(names) - 1)])
    ax.bar(range(first.shape[1]), first.sum(axis=0), color="0.3", width=0.85)
    ax.axhline(first.sum() / first.shape[1], color="tab:red", lw=0.8, ls="--", label="uniform")
    ax.set_xlabel(f"input of {names[0]} (for MNIST-1D: position in the signal)")
    ax.set_ylabel("kept weights")
    ax.legend(loc="upper right")
    ax = fig.add_subplot(grid[1, -1]) if len(names) > 1 else None
    if ax is not None:
        dens = [float(masks[n].mean()) for n in names]
        ax.bar(range(len(names)), dens, color="tab:blue")
        ax.set_xticks(range(len(names)), [n.removesuffix(".weight") for n in names])
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
