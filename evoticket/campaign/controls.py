"""The final comparison: the reported ticket trained fully next to the lottery-ticket controls.

Every method's ticket is trained from its theta0 with its mask, next to the controls of Frankle
& Carbin 2019 (arXiv:1803.03635), all with the same training budget (``campaign.final_steps``
steps, repeated over ``campaign.final_seeds`` data orders). Two starting points times three masks:

================== ====================== =================================================
control            theta0                 mask
================== ====================== =================================================
``ticket``         the ticket's           the ticket's
``dense``          the ticket's           none
``random``         the ticket's           random, with the ticket's per-layer densities
``reinit``         a fresh initialisation the ticket's (the paper's "randomly reinitialised")
``dense_scratch``  the same fresh one     none: a dense network trained from scratch
``random_scratch`` the same fresh one     the same random mask
================== ====================== =================================================

The ticket's theta0 is an initialisation for most methods, but not always: a Lamarckian GA's ticket holds
its lineage's *trained* weights, so the controls from its theta0 start warm; the ones from a fresh
initialisation never do. The verdict therefore compares the ticket with ``dense_scratch``, and the
words *winning ticket* keep the paper's meaning: a ticket whose theta0 is an initialisation (or an early
rewinding point) and whose mean test accuracy (at the early-stopping step) is at least the dense
network's trained from scratch, minus ``campaign.winning_tolerance``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from evoticket.config import CampaignConfig
from evoticket.core.faults import kill_point
from evoticket.core.seeds import derive_seed
from evoticket.data import Splits
from evoticket.evolution.objectives import ticket_flops
from evoticket.genome import Ticket, random_masks_like, stack_tickets
from evoticket.models import Architecture
from evoticket.records import SPENT_KEYS as SPENT
from evoticket.training import BatchResult, OptimizerState, minibatch_indices, train_early_stopping
from evoticket.training.population import gene_values

CONTROLS = ("ticket", "dense", "random", "reinit", "dense_scratch", "random_scratch")
"""Rows of the final comparison, in the order printed."""

STARTS: dict[str, tuple[str, str]] = {
    "ticket": ("ticket", "ticket"),
    "dense": ("ticket", "none"),
    "random": ("ticket", "random"),
    "reinit": ("fresh", "ticket"),
    "dense_scratch": ("fresh", "none"),
    "random_scratch": ("fresh", "random"),
}
"""Control -> ``(theta0, mask)``: its theta0 is the ticket's or a fresh initialisation; its mask the ticket's, none,
or a random one with the ticket's per-layer densities."""

BATCHES = (("ticket", "dense", "random", "reinit"), ("dense_scratch", "random_scratch"))
"""The controls trained together in one batch (the lottery-ticket paper's four, then the two from scratch)."""


def control_tickets(ticket: Ticket, arch: Architecture, seed: int) -> dict[str, Ticket]:
    """The six tickets of the final comparison for one seed (see the module docstring and :data:`STARTS`).

    One generator seeded by ``seed`` draws the fresh theta0, then the random mask; the controls from scratch
    share both with ``reinit`` and ``random``.
    """
    gen = torch.Generator().manual_seed(seed)
    dense = {k: torch.ones_like(m) for k, m in ticket.masks.items()}
    fresh = arch.init_params(ticket.init_scheme, gen)
    random = random_masks_like(ticket.masks, gen)
    theta0 = {"ticket": ticket.theta0, "fresh": fresh}
    masks = {"ticket": ticket.masks, "none": dense, "random": random}
    out = {
        name: Ticket(theta0[start], masks[mask], ticket.init_scheme, ticket.init_std)
        for name, (start, mask) in STARTS.items()
    }
    out["ticket"].optimizer_state = getattr(ticket, "optimizer_state", None)  # the ticket continues its training
    return out


@dataclass
class FinalComparison:
    """What the final comparison measured and trained.

    Attributes:
        controls: control name -> its results (see :func:`compare_controls`).
        trained: one dict per seed: control name -> ``weights`` (parameter and BatchNorm buffer
            name -> tensor, at the early-stopping step), ``masks``, ``best_step`` and ``test_acc``.
        spent: ``train_steps``, ``train_flops`` and ``eval_flops`` summed over every control and seed.
    """

    controls: dict[str, dict[str, Any]]
    trained: list[dict[str, dict[str, Any]]] = field(default_factory=list)
    spent: dict[str, int] = field(default_factory=dict)


def train_as_final(
    tickets: list[Ticket],
    arch: Architecture,
    splits: Splits,
    config: CampaignConfig,
    *,
    order: int = 0,
    keep_weights: bool = False,
    lr: float | None = None,
) -> BatchResult:
    """Train tickets in one batch as the final comparison trains: ``campaign.final_steps`` steps on the final
    comparison's data order ``order`` (``derive_seed(campaign.seed, "final", order)``), a validation check every
    ``campaign.final_eval_every`` steps, the ``campaign.early_stopping`` step reported, every ticket at learning rate
    ``lr``; by default each at its own ``lr`` gene where it carries one (``finetune.genes``), else ``optimizer.lr``.
    A ticket carrying an optimizer state (``finetune.optimizer_state = "inherit"``) continues it; the others start
    a fresh optimizer.

    Returns:
        The :class:`evoticket.training.BatchResult` of :func:`evoticket.training.train_early_stopping` (per ticket:
        ``test_acc``, ``val_acc``, ``final_test_acc``, ``best_step``, ``nonfinite``, the meter; ``weights`` with
        ``keep_weights``).
    """
    c = config.campaign
    plain = [Ticket(t.theta0, t.masks, t.init_scheme, t.init_std) for t in tickets]
    theta0, masks = stack_tickets(plain, splits.device)
    carried = OptimizerState.stack([getattr(t, "optimizer_state", None) for t in tickets], theta0)
    batches = minibatch_indices(
        splits.x_train.shape[0],
        c.final_steps,
        config.optimizer.batch_size,
        derive_seed(c.seed, "final", order),
        splits.device,
        range(len(tickets)) if config.optimizer.data_order == "individual" else None,
    )
    return train_early_stopping(
        arch,
        theta0,
        masks,
        splits,
        config.optimizer if lr is None else dataclasses.replace(config.optimizer, lr=float(lr)),
        batches,
        c.final_eval_every,
        c.early_stopping,
        keep_weights=keep_weights,
        lr=gene_values(tickets, "lr", config.optimizer.lr) if lr is None else None,
        optimizer_state=carried,
    )


def compare_controls(ticket: Ticket, arch: Architecture, splits: Splits, config: CampaignConfig) -> FinalComparison:
    """Train the ticket and its controls fully, batched, over ``campaign.final_seeds`` seeds.

    A ticket carrying an ``lr`` gene (``finetune.genes``) is trained at that learning rate, and so are its controls:
    the learning rate is part of the recipe the search found.

    Returns:
        A :class:`FinalComparison` whose ``controls`` map each control name to ``density``, ``theta0``
        (``"ticket"`` or ``"fresh"``) and ``mask`` (``"ticket"``, ``"none"`` or ``"random"``; :data:`STARTS`),
        per-seed ``test_acc``, ``final_test_acc``, ``val_acc``, ``best_step`` and ``nonfinite``
        lists, ``test_acc_mean``, ``test_acc_std``, ``val_acc_mean``, ``best_step_mean``,
        ``final_test_acc_mean``, and its compute ``train_steps``, ``train_flops``,
        ``eval_flops`` summed over seeds; accuracies in [0, 1], steps in optimizer steps.
    """
    c = config.campaign
    lr = (getattr(ticket, "genes", None) or {}).get("lr")  # the ticket's own learning rate, for it and its controls
    per_seed: dict[str, dict[str, list]] = {
        k: {"test_acc": [], "final_test_acc": [], "val_acc": [], "best_step": [], "nonfinite": []} for k in CONTROLS
    }
    spent = {k: dict.fromkeys(SPENT, 0) for k in CONTROLS}
    trained = []
    for s in range(c.final_seeds):
        tickets = control_tickets(ticket, arch, derive_seed(c.seed, "controls", s))
        seed_trained = {}
        for names in BATCHES:  # the paper's four together, then the two from scratch: each batch as before
            res = train_as_final([tickets[n] for n in names], arch, splits, config, order=s, keep_weights=True, lr=lr)
            for i, key in enumerate(names):
                per_seed[key]["test_acc"].append(float(res.test_acc[i]))
                per_seed[key]["final_test_acc"].append(float(res.final_test_acc[i]))
                per_seed[key]["val_acc"].append(float(res.val_acc[i]))
                per_seed[key]["best_step"].append(int(res.best_step[i]))
                per_seed[key]["nonfinite"].append(bool(res.nonfinite[i]))
                for f in SPENT:
                    spent[key][f] += int(getattr(res.meter, f)[i])
                seed_trained[key] = {
                    "weights": {k: v[i].clone() for k, v in res.weights.items()},
                    "masks": {k: m.clone() for k, m in tickets[key].masks.items()},
                    "best_step": int(res.best_step[i]),
                    "test_acc": float(res.test_acc[i]),
                }
        kill_point("final")
        trained.append(seed_trained)
    result = {}
    for key, vals in per_seed.items():
        start, mask = STARTS[key]
        result[key] = {
            "density": 1.0 if mask == "none" else ticket.total_density(),
            "theta0": start,
            "mask": mask,
            **vals,
            "test_acc_mean": float(np.mean(vals["test_acc"])),
            "test_acc_std": float(np.std(vals["test_acc"])),
            "final_test_acc_mean": float(np.mean(vals["final_test_acc"])),
            "val_acc_mean": float(np.mean(vals["val_acc"])),
            "best_step_mean": float(np.mean(vals["best_step"])),
            **spent[key],
        }
    totals = {f: sum(spent[k][f] for k in CONTROLS) for f in SPENT}
    return FinalComparison(result, trained, totals)


FRONT_COLUMNS = ("uid", "density_total", "flops", "val_acc_search", "val_acc", "test_acc", "best_step", "nonfinite")
"""Columns of ``pareto_final.csv``: each front member's uid, total density, forward FLOPs per example, its
fitness accuracy in the search, and after the full training its validation and test accuracy at the
early-stopping step (in [0, 1]) and that step."""


def train_front(
    front: list[Ticket], arch: Architecture, splits: Splits, config: CampaignConfig
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Train every ticket of a Pareto front as the final comparison trains the ticket: ``campaign.final_steps``
    steps, early stopping every ``campaign.final_eval_every``, batched, on the data order of the final
    comparison's first seed, so the front can be compared with IMP's rounds at equal training.

    Returns:
        ``(rows, spent)``: one row per ticket (:data:`FRONT_COLUMNS`, by increasing density), and the compute
        (``train_steps``, ``train_flops``, ``eval_flops``) summed over the front.
    """
    if not front:
        return [], dict.fromkeys(SPENT, 0)
    res = train_as_final(front, arch, splits, config)
    rows = []
    for i, t in enumerate(front):
        rows.append(
            {
                "uid": t.uid,
                "density_total": t.total_density(),
                "flops": ticket_flops(t, arch),
                "val_acc_search": float(t.fitness.values[0]),
                "val_acc": float(res.val_acc[i]),
                "test_acc": float(res.test_acc[i]),
                "best_step": int(res.best_step[i]),
                "nonfinite": bool(res.nonfinite[i]),
            }
        )
    spent = {f: int(getattr(res.meter, f).sum()) for f in SPENT}
    return rows, spent
