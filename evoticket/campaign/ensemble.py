"""The method's best few tickets as one ensemble of sparse networks, reported beside the single ticket.

FreeTickets (Liu et al. 2022, arXiv:2106.14568) read the sparse networks one training run passes through as an
ensemble: each member predicts its softmax probabilities, the ensemble their mean. Here the members are the tickets a
method keeps (:attr:`evoticket.methods.MethodResult.tickets`, best first: the GA's hall of fame, IMP's best rounds at
their own densities): with ``campaign.ensemble = N``, the reported ticket, then the next best kept tickets, up to
``N`` members in all (fewer where the run kept fewer, and the report says so).

Each member is trained exactly as the final comparison trains the ticket
(:func:`evoticket.campaign.controls.train_as_final`: ``campaign.final_steps`` steps on the data order of each of the
``campaign.final_seeds`` seeds, ``campaign.early_stopping``). The reported ticket's own networks of the final
comparison are its member's, so an ensemble of one is the ticket; the other members are trained in one batch per
seed. Per seed, the ensemble predicts ``argmax_c mean_m softmax(logits_m)_c`` from every member's network at its
early-stopping step, on the validation and the test split (a member whose training diverged spoils it: ``nonfinite``
says so). The members' networks are not written to ``trained_ticket.pt``.

What it costs beyond the single ticket is reported apart (``summary.json["compute"]["ensemble"]``, and in
``summary.json["budget"]["ensemble_train_flops"]`` one seed's training of the other members), never in a method's
budget: the other members' training and the ensemble's evaluations. Its inference cost is the sum of its members'
forward FLOPs per example.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from evoticket.campaign.controls import FinalComparison, train_as_final
from evoticket.config import CampaignConfig
from evoticket.core.faults import kill_point
from evoticket.data import Splits
from evoticket.evolution.objectives import ticket_flops
from evoticket.genome import Ticket
from evoticket.models import Architecture
from evoticket.records import SPENT_KEYS
from evoticket.training import EVAL_BATCH

CITATION = "Liu et al. 2022, arXiv:2106.14568"
"""Where the ensemble of sparse networks comes from (FreeTickets)."""


def ensemble_members(best: Ticket, tickets: list[Ticket], size: int) -> list[Ticket]:
    """The members of an ensemble of ``size``: ``best`` first, then the other ``tickets`` in their order.

    Args:
        best: the reported ticket.
        tickets: the tickets the method keeps, best first (its hall of fame; ``best`` may be among them).
        size: the members asked for, >= 1.

    Returns:
        At most ``size`` tickets, fewer when ``tickets`` holds fewer others; none twice (by uid).
    """
    members = [best]
    for t in tickets:
        if len(members) >= size:
            break
        if t is not best and not any(t.uid is not None and t.uid == m.uid for m in members):
            members.append(t)
    return members[:size]


@torch.no_grad()
def ensemble_accuracy(
    arch: Architecture,
    params: dict[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    buffers: dict[str, torch.Tensor] | None = None,
) -> float:
    """Accuracy of M networks as one ensemble: the argmax of their mean softmax probabilities.

    Args:
        arch: the architecture.
        params: parameter name -> ``(M, *shape)`` effective weights of the members.
        x: inputs ``(N, *input_shape)``; y: labels ``(N,)``.
        buffers: BatchNorm running statistics ``(M, *shape)`` (evaluation mode); ``None`` without BatchNorm.

    Returns:
        The fraction of the N examples whose ensemble prediction is the label, in [0, 1].
    """
    correct = 0
    for start in range(0, x.shape[0], EVAL_BATCH):
        xb, yb = x[start : start + EVAL_BATCH], y[start : start + EVAL_BATCH]
        logits = arch.forward_batched(params, xb, buffers=buffers)  # (M, b, C)
        probs = torch.softmax(logits.float(), dim=-1).mean(0)  # (b, C)
        correct += int((probs.argmax(-1) == yb).sum())
    return correct / x.shape[0]


@dataclass
class Ensemble:
    """What :func:`train_ensemble` measured.

    Attributes:
        report: ``summary.json["ensemble"]`` (see :func:`train_ensemble`).
        spent: ``train_steps``, ``train_flops`` and ``eval_flops`` beyond the single ticket's final comparison.
    """

    report: dict[str, Any]
    spent: dict[str, int]


def train_ensemble(
    best: Ticket,
    tickets: list[Ticket],
    final: FinalComparison,
    arch: Architecture,
    splits: Splits,
    config: CampaignConfig,
) -> Ensemble:
    """Train the ensemble's members as the final comparison trains the ticket and measure the ensemble.

    Args:
        best: the reported ticket (trained in ``final``).
        tickets: the tickets the method keeps, best first (:attr:`evoticket.methods.MethodResult.tickets`).
        final: the final comparison of ``best`` (its ``ticket`` networks are the first member's).
        arch, splits, config: as for :func:`evoticket.campaign.controls.compare_controls`;
            ``config.campaign.ensemble`` >= 1 members are asked for.

    Returns:
        An :class:`Ensemble` whose ``report`` holds ``requested`` (``campaign.ensemble``), ``size`` (the members
        there were: fewer when the method kept fewer tickets), ``members`` (uids, the ticket first), per member
        ``density_total`` (fraction of prunable weights kept), ``flops`` (forward FLOPs per example) and
        ``member_test_acc_mean`` (alone, mean over seeds); the ensemble's per-seed ``test_acc``, ``val_acc`` and
        ``nonfinite`` (a member's training diverged), ``test_acc_mean``, ``test_acc_std`` and ``val_acc_mean``; the
        single ticket's ``ticket_test_acc_mean``; ``inference_flops`` (the ensemble's forward FLOPs per example,
        its members' summed) beside ``ticket_inference_flops``; ``extra_train_flops`` (the other members' training
        FLOPs, summed over seeds) and ``citation``. Accuracies in [0, 1].
    """
    c = config.campaign
    members = ensemble_members(best, tickets, c.ensemble)
    others = members[1:]
    ticket = final.controls["ticket"]
    flops = [ticket_flops(t, arch) for t in members]
    member_acc: list[list[float]] = [list(ticket["test_acc"])] + [[] for _ in others]
    spent = dict.fromkeys(SPENT_KEYS, 0)
    per_seed: dict[str, list] = {"test_acc": [], "val_acc": [], "nonfinite": []}
    buffer_names = set(arch.buffer_shapes)
    for s in range(c.final_seeds):
        own = final.trained[s]["ticket"]["weights"]
        weights = {k: v.unsqueeze(0) for k, v in own.items()}  # (1, *shape)
        nonfinite = bool(ticket["nonfinite"][s])
        if others:
            res = train_as_final(others, arch, splits, config, order=s, keep_weights=True)
            weights = {k: torch.cat([v, res.weights[k]]) for k, v in weights.items()}  # (M, *shape)
            for i in range(len(others)):
                member_acc[i + 1].append(float(res.test_acc[i]))
            nonfinite = nonfinite or bool(res.nonfinite.any())
            for f in SPENT_KEYS:
                spent[f] += int(getattr(res.meter, f).sum())
        params = {k: v.to(splits.device) for k, v in weights.items() if k not in buffer_names}
        buffers = {k: v.to(splits.device) for k, v in weights.items() if k in buffer_names} or None
        per_seed["val_acc"].append(ensemble_accuracy(arch, params, splits.x_val, splits.y_val, buffers))
        per_seed["test_acc"].append(ensemble_accuracy(arch, params, splits.x_test, splits.y_test, buffers))
        per_seed["nonfinite"].append(nonfinite)
        spent["eval_flops"] += (splits.x_val.shape[0] + splits.x_test.shape[0]) * sum(flops)
        kill_point("final")
    report = {
        "requested": c.ensemble,
        "size": len(members),
        "members": [t.uid for t in members],
        "density_total": [t.total_density() for t in members],
        "flops": flops,
        "member_test_acc_mean": [float(np.mean(a)) for a in member_acc],
        **per_seed,
        "test_acc_mean": float(np.mean(per_seed["test_acc"])),
        "test_acc_std": float(np.std(per_seed["test_acc"])),
        "val_acc_mean": float(np.mean(per_seed["val_acc"])),
        "ticket_test_acc_mean": float(ticket["test_acc_mean"]),
        "inference_flops": int(sum(flops)),
        "ticket_inference_flops": int(flops[0]),
        "extra_train_flops": int(spent["train_flops"]),
        "citation": CITATION,
    }
    return Ensemble(report, spent)


__all__ = ["CITATION", "Ensemble", "ensemble_accuracy", "ensemble_members", "train_ensemble"]
