"""The fitness cache: an unchanged individual is never fine-tuned twice under the same minibatches.

An evaluation is a function of the genome (theta0 and masks), the fine-tuning settings and the
minibatch seed, so its result can be looked up by a content hash of exactly those
(:func:`content_key`). With ``finetune.minibatches = "fixed"`` a surviving parent re-evaluated next to
the offspring is then served from the cache; so is an offspring identical to an individual evaluated
before (a crossover of two equal parents, a mutation that moved nothing).

The cache holds the results of the current and the previous generation (what the next generation can
hit: its re-evaluated parents were evaluated in the one before), and it is part of the checkpoint, so a
resumed campaign hits exactly where an uninterrupted one would. A Lamarckian evaluation changes the
genome it evaluates, so no unchanged individual is ever evaluated again: Lamarckian runs bypass it.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from evoticket.config import FinetuneConfig, OptimizerConfig
from evoticket.genome import Ticket
from evoticket.records import SPENT_KEYS
from evoticket.training import TicketResult

COMPUTE_FIELDS = SPENT_KEYS
"""Record fields set to 0 for a result served from the cache (no compute spent)."""


def _tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bool:
        return np.packbits(t.numpy().reshape(-1)).tobytes()
    return t.numpy().tobytes()


def content_key(ticket: Ticket, settings: str, seed: int) -> str:
    """SHA-256 (hex) of a ticket's theta0 and masks (names, shapes, bytes), the settings and the minibatch seed.

    Args:
        ticket: the genome.
        settings: the fine-tuning settings that change a result (:func:`settings_text`).
        seed: which minibatch sequence: the generation, or 0 with ``finetune.minibatches = "fixed"``
            (the campaign seed is the same for every key of a run).
    """
    h = hashlib.sha256()
    h.update(f"{settings}|{seed}".encode())
    for kind, tensors in (("theta0", ticket.theta0), ("masks", ticket.masks)):
        for name in sorted(tensors):
            t = tensors[name]
            h.update(f"|{kind}:{name}:{tuple(t.shape)}:{t.dtype}|".encode())
            h.update(_tensor_bytes(t))
    return h.hexdigest()


def settings_text(cfg: FinetuneConfig, optimizer: OptimizerConfig | None, extra: dict[str, Any]) -> str:
    """The fine-tuning settings of a result as canonical text: ``[finetune]``, ``[optimizer]`` and ``extra`` (e.g.
    halving)."""
    settings = {"finetune": asdict(cfg), **extra}
    if optimizer is not None:
        settings["optimizer"] = asdict(optimizer)
    return json.dumps(settings, sort_keys=True)


class FitnessCache:
    """Evaluation results by content key, for the current and the previous generation.

    Attributes:
        entries: key -> ``(generation, result)``.
        hits: results served so far (this session).
    """

    def __init__(self) -> None:
        self.entries: dict[str, tuple[int, TicketResult]] = {}
        self.hits = 0

    def get(self, key: str, generation: int) -> TicketResult | None:
        """A copy of the cached result, its compute fields zeroed and ``"cached"`` flagged; ``None`` on a miss.

        A hit counts as this generation's entry, so it stays available to the next one.
        """
        found = self.entries.get(key)
        if found is None:
            return None
        self.entries[key] = (generation, found[1])
        self.hits += 1
        res = found[1]
        fields = copy.deepcopy(res.fields)
        fields.update(dict.fromkeys(COMPUTE_FIELDS, 0))
        fields["flags"] = [*fields.get("flags", []), "cached"]
        return TicketResult(res.fitness, fields, None, res.nonfinite, res.learned)

    def put(self, key: str, generation: int, result: TicketResult) -> None:
        """Store a result (without weights) as evaluated in ``generation``."""
        stored = TicketResult(result.fitness, copy.deepcopy(result.fields), None, result.nonfinite, result.learned)
        self.entries[key] = (generation, stored)

    def prune(self, generation: int) -> None:
        """Forget results older than the previous generation of ``generation``."""
        self.entries = {k: v for k, v in self.entries.items() if v[0] >= generation - 1}

    def state(self) -> dict[str, Any]:
        """Plain data for the checkpoint."""
        return {
            k: {
                "generation": g,
                "fitness": list(r.fitness),
                "fields": r.fields,
                "nonfinite": r.nonfinite,
                "learned": r.learned,
            }
            for k, (g, r) in self.entries.items()
        }

    def load(self, state: dict[str, Any] | None) -> None:
        """Restore :meth:`state`'s entries (a checkpoint without a cache restores an empty one)."""
        self.entries = {
            k: (v["generation"], TicketResult(tuple(v["fitness"]), v["fields"], None, v["nonfinite"], v["learned"]))
            for k, v in (state or {}).items()
        }
