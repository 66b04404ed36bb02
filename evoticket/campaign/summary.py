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
        "matmul_precision": torch.get_float32_matmul_precision(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
    }


def is_winning(controls: dict[str, Any], theta0: str, tolerance: float) -> bool:
    """A winning ticket in the lottery-ticket paper's sense (Frankle & Carbin 2019, arXiv:1803.03635): its theta0 is an
    initialisation (or an early rewinding point, ``theta0`` of :data:`evoticket.methods.THETA0_KINDS` not
    ``"trained"``) and its mean test accuracy is at least the dense network's trained from scratch minus
    ``tolerance``."""
    return theta0 != "trained" and beats_dense_scratch(controls, tolerance)


def beats_dense_scratch(controls: dict[str, Any], tolerance: float) -> bool:
    """The ticket's mean test accuracy is at least ``dense_scratch``'s minus ``tolerance``."""
    return controls["ticket"]["test_acc_mean"] >= controls["dense_scratch"]["test_acc_mean"] - tolerance


def verdict(
    controls: dict[str, Any], theta0: str, theta0_text: str, config: CampaignConfig, search_flops: int = 0
) -> str:
    """One sentence: winning ticket or not (in the paper's sense), against the dense network trained from scratch, with
    the random mask from scratch beside it; for a ticket whose theta0 holds trained weights, what it is instead (and the
    training its search spent first, ``search_flops``)."""
    t, d, r = (controls[k]["test_acc_mean"] for k in ("ticket", "dense_scratch", "random_scratch"))
    tol = config.campaign.winning_tolerance
    against = f"{t:.4f} test accuracy vs {d:.4f} for a dense network trained from scratch (tolerance {tol})"
    tail = f"; a random mask from scratch {r:.4f}"
    if theta0 == "trained":
        where = "above" if t > d + tol else "level with" if t >= d - tol else "below"
        w = controls["dense"]["test_acc_mean"]
        spent = f" after a search that spent {search_flops / 1e9:.3g} GFLOP of training" if search_flops else ""
        return (
            f"not a winning ticket in the lottery-ticket sense: its theta0 is {theta0_text}, not an initialisation. "
            f"Trained again{spent}, this sparse network is {where} dense training from scratch: {against}{tail}; "
            f"the dense control warm-started from the same theta0 reaches {w:.4f}. For the comparison at equal "
            "compute: evoticket experiment configs/why-not-both-quick.toml"
        )
    head = "a winning ticket" if is_winning(controls, theta0, tol) else "not a winning ticket"
    return f"{head}: {against}{tail}"


def _flops(spent: dict[str, int]) -> str:
    return (
        f"{spent['train_steps']:,} steps, {spent['train_flops'] / 1e9:.3g} GFLOP training, "
        f"{spent['eval_flops'] / 1e9:.3g} GFLOP evaluation"
    )


def ensemble_lines(ensemble: dict[str, Any] | None) -> list[str]:
    """The final comparison table's ensemble row (its members' mean density, the ensemble's test and validation
    accuracy) and the line that says what it is and what it costs; none without ``summary.json["ensemble"]`` (see
    :func:`evoticket.campaign.ensemble.train_ensemble`)."""
    if not ensemble:
        return []
    n = ensemble["size"]
    density = sum(ensemble["density_total"]) / n
    row = (
        f"{f'ensemble of {n}':<15} {'members':<11} {'members':<9} {density:>8.4f} "
        f"{ensemble['test_acc_mean']:>9.4f} +- {ensemble['test_acc_std']:.4f} {ensemble['val_acc_mean']:>8.4f}"
    )
    who = {1: "the ticket alone", 2: "the ticket and the next best ticket the method kept"}.get(
        n, f"the ticket and the {n - 1} next best tickets the method kept"
    )
    short = ""
    if n < ensemble["requested"]:
        short = f" (asked {ensemble['requested']}: the method kept {n} ticket{'s' if n > 1 else ''})"
    ratio = ensemble["inference_flops"] / max(ensemble["ticket_inference_flops"], 1)
    uids = ", ".join(str(u) for u in ensemble["members"])
    return [
        row,
        f"Ensemble ({ensemble['citation']}) of {who}{short} (uids {uids}), softmax averaged: test accuracy "
        f"{ensemble['test_acc_mean']:.4f} vs {ensemble['ticket_test_acc_mean']:.4f} for the ticket alone; inference "
        f"{ensemble['inference_flops']:,} FLOPs per example ({ratio:.2f}x the ticket's); the other members' "
        f"training {ensemble['extra_train_flops'] / 1e9:.3g} GFLOP, in no budget",
    ]


_THETA0_WORDS = {"ticket": "ticket's", "fresh": "fresh init"}
_MASK_WORDS = {"ticket": "ticket's", "none": "none", "random": "random"}


def format_summary(summary: dict, run_dir: Path, plot_dir: Path, config: CampaignConfig) -> str:
    """The summary table printed at the end of a campaign: the final comparison (what each control starts from, and
    the ensemble where ``summary.json`` has one), the method's own lines
    (:meth:`evoticket.methods.Method.summary_lines`), the verdict, time and compute."""
    seeds = config.campaign.final_seeds
    theta0 = summary.get("theta0") or {"kind": "init", "text": "an initialisation"}
    lines = [
        "",
        f"Final comparison: every network trained {config.campaign.final_steps} steps, test accuracy at the "
        f"early-stopping step ({config.campaign.early_stopping}), mean +- std over {seeds} seed(s).",
        f"The ticket's theta0 is {theta0['text']}"
        + (
            ": the controls from it start warm; those from a fresh initialisation (fresh init) do not."
            if theta0["kind"] == "trained"
            else "."
        ),
        f"{'control':<15} {'theta0':<11} {'mask':<9} {'density':>8} {'test acc':>17} {'val acc':>8} {'stop step':>10}",
    ]
    for key in CONTROLS:
        c = summary["controls"].get(key)
        if c is None:
            continue
        lines.append(
            f"{key:<15} {_THETA0_WORDS.get(c.get('theta0'), '?'):<11} {_MASK_WORDS.get(c.get('mask'), '?'):<9} "
            f"{c['density']:>8.4f} {c['test_acc_mean']:>9.4f} +- {c['test_acc_std']:.4f} "
            f"{c['val_acc_mean']:>8.4f} {c['best_step_mean']:>10.0f}"
        )
    lines += ensemble_lines(summary.get("ensemble"))
    t = summary["timing"]
    wall = max(t["wall_seconds"], 1e-9)
    sessions = ""
    if t.get("sessions", 1) > 1:
        sessions = f" over {t['sessions']} sessions (this one {t['session_wall_seconds']:.1f} s)"
    where = ", ".join(
        f"{label} {t[key]:.1f} s ({100 * t[key] / wall:.0f}%)"
        for label, key in (
            ("training", "finetune_seconds"),
            ("evaluation", "evaluation_seconds"),
            ("variation+selection", "variation_selection_seconds"),
            ("records", "records_seconds"),
            ("checkpoints", "checkpoint_seconds"),
            ("final comparison", "final_comparison_seconds"),
            ("plot", "plot_seconds"),
            ("other", "other_seconds"),
        )
    )
    report = summary.get("report") or {}
    own = report.get("lines") or []
    lines += ["", *own] if own else []
    rate = ""
    if report.get("population"):
        rate = f"; {t['individuals_per_second']:.1f} individuals fine-tuned per second of training and evaluation"
    lines += [
        f"Verdict: {summary['verdict']}",
        f"Wall time {t['wall_seconds']:.1f} s{sessions}: {where}{rate}",
        f"Compute: search {_flops(summary['compute']['search'])}; final comparison "
        f"{_flops(summary['compute']['final_comparison'])}"
        + (f"; ensemble {_flops(summary['compute']['ensemble'])}" if "ensemble" in summary["compute"] else ""),
        f"Records: {run_dir}/   Plots: {plot_dir}/",
    ]
    return "\n".join(lines)
