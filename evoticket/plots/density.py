"""The density figure: validation accuracy against density for every evaluated individual, by generation.

The left panel puts each evaluation at its total density (fraction of prunable weights kept); when
layer densities evolve, one more panel per layer. The right panel shows, for the same evaluations,
accuracy after fine-tuning against accuracy before (step 0): after minus before is what fine-tuning lifted each individual (the Baldwin effect). Diverged individuals are crosses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evoticket.plots import common


def evolving_layers(recs: list[dict[str, Any]]) -> list[str]:
    """The layers whose density differs between individuals (sorted names); [] when every layer is fixed."""
    values: dict[str, set[float]] = {}
    for r in recs:
        for name, d in (r.get("density") or {}).items():
            values.setdefault(name, set()).add(round(float(d), 6))
    return sorted(name for name, v in values.items() if len(v) > 1)


def draw_density(run_dir: Path) -> Any:
    """The density figure of a run (a matplotlib Figure), or ``None`` without individual records."""
    plt = common.pyplot()
    recs = common.read_individuals(common.require_run(run_dir))
    if not recs:
        return None
    layers = evolving_layers(recs)
    columns = [("total", None), *((name, name) for name in layers)]
    fig, axes = plt.subplots(
        1, len(columns) + 1, figsize=(2 * common.COLUMN_WIDTH, 3.0), squeeze=False, constrained_layout=True
    )
    axes = axes[0]
    gens = [int(r["generation"]) for r in recs]
    ok = ["nonfinite" not in (r.get("flags") or ()) for r in recs]
    acc = [common.fitness(r) for r in recs]
    norm = plt.Normalize(min(gens), max(max(gens), min(gens) + 1))
    art = None
    for ax, (_label, layer) in zip(axes, columns, strict=False):
        xs = [float(r["density_total"] if layer is None else r["density"][layer]) for r in recs]
        pick = [i for i in range(len(recs)) if ok[i]]
        art = ax.scatter(
            [xs[i] for i in pick],
            [acc[i] for i in pick],
            c=[gens[i] for i in pick],
            cmap="viridis",
            norm=norm,
            s=6,
            alpha=0.7,
            lw=0,
        )
        bad = [i for i in range(len(recs)) if not ok[i]]
        if bad:
            ax.scatter(
                [xs[i] for i in bad],
                [acc[i] for i in bad],
                marker="x",
                color="crimson",
                s=14,
                label=f"diverged ({len(bad)})",
            )
            ax.legend(loc="lower right")
        ax.set_xlabel("density (fraction of weights kept)" if layer is None else f"density of {layer}")
        if len(set(xs)) == 1:
            ax.set_xlim(xs[0] - 0.05, xs[0] + 0.05)
            ax.annotate(
                f"every evaluation at density {xs[0]:.3f}\n(density does not evolve in this run)",
                (0.5, 0.03),
                xycoords="axes fraction",
                ha="center",
                fontsize=6.5,
            )
    axes[0].set_ylabel("validation accuracy after fine-tuning")
    ax = axes[-1]
    before = [float(r.get("val_acc_before") or 0.0) for r in recs]
    ax.scatter(before, acc, c=gens, cmap="viridis", norm=norm, s=6, alpha=0.7, lw=0)
    ax.set_xlabel("validation accuracy before fine-tuning (step 0)")
    ax.set_ylabel("after fine-tuning")
    lift = sum(a - b for a, b, k in zip(acc, before, ok, strict=True) if k) / max(1, sum(ok))
    ax.set_title(f"fine-tuning lifts accuracy by {lift:+.3f} on average", fontsize=7.5)
    fig.colorbar(art, ax=list(axes), label="generation", fraction=0.03, pad=0.01)
    fig.suptitle(
        common.run_title(run_dir, f"Accuracy against density and before fine-tuning ({len(recs)} evaluations)"),
        fontsize=8.5,
    )
    return fig
