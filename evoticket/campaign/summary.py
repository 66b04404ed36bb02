"""``summary.json``'s timing and verdict, and the table printed at the end of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from evoticket.campaign.controls import CONTROLS
from evoticket.config import CampaignConfig

TIMING_KEYS = (
    "finetune_seconds",
    "evaluation_seconds",
    "variation_selection_seconds",
    "records_seconds",
    "checkpoint_seconds",
    "final_comparison_seconds",
    "plot_seconds",
)


def timing(counters: dict[str, float]) -> dict[str, Any]:
    """Where the wall time went (seconds) and rates.

    ``wall_seconds`` and its parts are summed over every session of the run (the first one and each
    resume); ``sessions`` counts them and ``session_wall_seconds`` is the last session's own.
    """
    wall = counters["wall_seconds"]
    parts = {k: round(counters[k], 3) for k in TIMING_KEYS}
    parts["other_seconds"] = round(max(0.0, wall - sum(counters[k] for k in TIMING_KEYS)), 3)
    compute = counters["finetune_seconds"] + counters["evaluation_seconds"]
    evolution_overhead = (
        counters["variation_selection_seconds"] + counters["records_seconds"] + counters["checkpoint_seconds"]
    )
    return {
        "wall_seconds": round(wall, 3),
        "sessions": int(counters.get("sessions", 1)),
        "session_wall_seconds": round(counters.get("session_wall_seconds", wall), 3),
        **parts,
        "evolution_overhead_fraction": round(evolution_overhead / max(wall, 1e-9), 4),
        "individuals_per_second": round(counters["evaluated"] / max(compute, 1e-9), 3),
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def verdict(winning: bool, controls: dict, config: CampaignConfig) -> str:
    """One sentence: winning ticket or not, the ticket's and the dense network's test accuracy, the random mask's."""
    t, d, r = (controls[k]["test_acc_mean"] for k in ("ticket", "dense", "random"))
    tol = config.campaign.winning_tolerance
    if winning:
        head = f"a winning ticket: {t:.4f} test accuracy vs {d:.4f} dense (tolerance {tol})"
    else:
        head = f"not a winning ticket: {t:.4f} test accuracy vs {d:.4f} dense (tolerance {tol})"
    return f"{head}; random mask of the same density {r:.4f}"


def _flops(spent: dict[str, int]) -> str:
    return f"{spent['train_steps']:,} steps, {spent['train_flops'] / 1e9:.3g} GFLOP training, {spent['eval_flops'] / 1e9:.3g} GFLOP evaluation"


def format_summary(summary: dict, run_dir: Path, plot_dir: Path, config: CampaignConfig) -> str:
    """The summary table printed at the end of a campaign."""
    seeds = config.campaign.final_seeds
    lines = [
        "",
        f"Final comparison: {config.campaign.final_steps} training steps each, test accuracy at the "
        f"early-stopping step ({config.campaign.early_stopping}), mean +- std over {seeds} seed(s)",
        f"{'control':<8} {'density':>8} {'test acc':>17} {'val acc':>8} {'stop step':>10}",
    ]
    for key in CONTROLS:
        c = summary["controls"][key]
        lines.append(
            f"{key:<8} {c['density']:>8.4f} {c['test_acc_mean']:>9.4f} +- {c['test_acc_std']:.4f} "
            f"{c['val_acc_mean']:>8.4f} {c['best_step_mean']:>10.0f}"
        )
    t = summary["timing"]
    wall = max(t["wall_seconds"], 1e-9)
    sessions = ""
    if t.get("sessions", 1) > 1:
        sessions = f" over {t['sessions']} sessions (this one {t['session_wall_seconds']:.1f} s)"
    where = ", ".join(
        f"{label} {t[key]:.1f} s ({100 * t[key] / wall:.0f}%)"
        for label, key in (
            ("fine-tuning", "finetune_seconds"),
            ("evaluation", "evaluation_seconds"),
            ("variation+selection", "variation_selection_seconds"),
            ("records", "records_seconds"),
            ("checkpoints", "checkpoint_seconds"),
            ("final comparison", "final_comparison_seconds"),
            ("plot", "plot_seconds"),
            ("other", "other_seconds"),
        )
    )
    own = summary.get(summary.get("method", ""))
    if isinstance(own, dict) and "test_acc" in own:  # the method's own result, where it differs from the controls
        controls = "".join(
            f"; {name} {c['test_acc']:.4f}" for name, c in own.get("controls", {}).items() if "test_acc" in c
        )
        step = f" at step {own['best_step']}" if "best_step" in own else " untrained"
        lines += [
            "",
            f"{summary['method']} itself: test accuracy {own['test_acc']:.4f}{step}, density "
            f"{own['density_total']:.4f}{controls}",
        ]
    lines += [
        "",
        f"Best ticket: uid {summary['best']['uid']} (generation {summary['best']['generation']}), "
        f"validation accuracy {summary['best']['val_acc']:.4f} after fine-tuning, "
        f"density {summary['best']['density_total']:.4f}",
        f"Verdict: {summary['verdict']}",
        f"Wall time {t['wall_seconds']:.1f} s{sessions}, {summary['individuals_evaluated']} individuals fine-tuned "
        f"({t['individuals_per_second']:.1f}/s): {where}",
        f"Compute: search {_flops(summary['compute']['search'])}; final comparison "
        f"{_flops(summary['compute']['final_comparison'])}",
        f"Records: {run_dir}/   Plots: {plot_dir}/",
    ]
    return "\n".join(lines)
