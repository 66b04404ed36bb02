"""The fitness figure: validation accuracy per generation, before and after fine-tuning."""

from __future__ import annotations

from pathlib import Path

from evoticket import records
from evoticket.core import paths
from evoticket.core.io import atomic_open


def plot_fitness(run_dir: Path, out: Path) -> Path:
    """Best, mean and worst validation accuracy per generation, before and after fine-tuning.

    Args:
        run_dir: a run directory holding ``generations.csv`` (and ``config.toml``).
        out: the PNG to write; its folder is created.

    Returns:
        ``out``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = records.read_generations(run_dir)
    gens = [r["generation"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    after, before = "tab:blue", "tab:orange"
    ax.fill_between(gens, [r["val_acc_min"] for r in rows], [r["val_acc_max"] for r in rows], color=after, alpha=0.15)
    ax.plot(gens, [r["val_acc_max"] for r in rows], color=after, lw=2, label="after fine-tuning: best")
    ax.plot(gens, [r["val_acc_avg"] for r in rows], color=after, lw=1.2, ls="--", label="after fine-tuning: mean")
    ax.plot(gens, [r["val_acc_min"] for r in rows], color=after, lw=0.8, ls=":", label="after fine-tuning: worst")
    ax.fill_between(
        gens, [r["val_acc_before_min"] for r in rows], [r["val_acc_before_max"] for r in rows], color=before, alpha=0.15
    )
    ax.plot(gens, [r["val_acc_before_max"] for r in rows], color=before, lw=2, label="before (step 0): best")
    ax.plot(gens, [r["val_acc_before_avg"] for r in rows], color=before, lw=1.2, ls="--", label="before (step 0): mean")
    ax.plot(gens, [r["val_acc_before_min"] for r in rows], color=before, lw=0.8, ls=":", label="before (step 0): worst")
    ax.set_xlabel("generation")
    ax.set_ylabel("validation accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    title = Path(run_dir).name
    cfg = paths.config(run_dir)
    if cfg.exists():
        import tomllib

        c = tomllib.loads(cfg.read_text(encoding="utf-8"))
        title += (
            f"  ({c['data']['name']}, {c['model']['name']}, density {c['ticket']['density']}, "
            f"{c['finetune']['mode']}, {c['finetune']['steps']} steps)"
        )
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper right", ncol=2, framealpha=0.9)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(out, "wb") as f:
        fig.savefig(f, format=out.suffix.lstrip(".") or "png")
    plt.close(fig)
    return out
