"""``imp``: iterative magnitude pruning, the lottery-ticket paper's way of finding a winning ticket.

Each round trains the current mask from the rewind weights for ``imp.steps`` steps (test accuracy
at the early-stopping step), then prunes ``imp.rate`` of each layer's remaining weights by final
magnitude (``imp.output_rate`` for the output layer), or one global magnitude threshold over every
layer (``imp.scope = "global"``), and resets the survivors to the rewind weights: theta0, or the
weights at step ``imp.rewind_step`` of round 0 (late rewinding). Rounds go on until the total
density reaches ``ticket.density``; the last round trains that final mask.

Every round is a record: one line of ``individuals.jsonl`` (uid = round, parent = the previous
round, operator ``pruneMagnitude``) and one row of ``generations.csv``, with the round's own
control: a random mask of the same per-layer densities on the same weights, trained next to it in
the same batch. Only the ticket's training counts as the method's compute; the control's is
recorded beside it.

Sources: Frankle & Carbin 2019, arXiv:1803.03635; Frankle et al. 2019, arXiv:1903.01611.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from deap import tools

from evoticket.core.errors import BudgetError, Interrupted
from evoticket.core.seeds import derive_seed
from evoticket.genome import Ticket, ensure_creator, random_masks_like, same_uid, stack_tickets
from evoticket.genome.allocation import lth_rates
from evoticket.genome.snapshot import pack_hall_of_fame, pack_tickets, unpack_hall_of_fame, unpack_tickets
from evoticket.methods.base import Budget, Method, MethodResult, MethodRun, training_flops
from evoticket.models import Architecture, init_std
from evoticket.records import SPENT_KEYS, Hook, evaluation_fields, fitness_of, individual_record, report_generation
from evoticket.resolve import Resolved
from evoticket.training import EarlyStopping, SaveWeights, minibatch_indices, train

HALL_OF_FAME = 5
"""Rounds kept in the hall of fame (best validation accuracy), as reported in ``summary.json``."""


def layer_rates(arch: Architecture, rate: float, output_rate: float, conv_rate: float = 0.0) -> dict[str, float]:
    """Weight name -> the fraction of its remaining weights pruned per round: the output layer's is
    ``output_rate``, a convolution's ``conv_rate`` (0: the LTH paper's for the model where it gives one, else
    ``rate``; :func:`evoticket.genome.allocation.lth_rates`), every other layer's ``rate``."""
    return lth_rates(arch, rate, output_rate, conv_rate)


def prune_magnitude(
    weights: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor],
    rates: dict[str, float],
    scope: str = "layer",
) -> dict[str, torch.Tensor]:
    """Prune the smallest-magnitude kept weights of one network.

    Args:
        weights: weight name -> trained weights of one network (any shape).
        masks: weight name -> bool mask of the same shape.
        rates: weight name -> fraction of the layer's kept weights to prune, in [0, 1); with
            ``scope = "global"`` every layer's rate must be the same.
        scope: ``layer`` (each layer prunes ``round(rate * kept)`` of its own) or ``global`` (the
            ``round(rate * total kept)`` smallest magnitudes over all layers).

    Returns:
        Weight name -> the new bool masks (a subset of the old; a layer never empties). Ties are
        broken by position (stable sort), so the result is deterministic.

    Raises:
        ValueError: for an unknown scope, or a global scope with different rates.
    """
    if scope == "layer":
        out = {}
        for name, mask in masks.items():
            flat_mask = mask.reshape(-1)
            kept = flat_mask.nonzero().squeeze(1)
            n_prune = min(round(rates[name] * kept.numel()), kept.numel() - 1)
            magnitude = weights[name].reshape(-1)[kept].abs()
            drop = kept[magnitude.argsort(stable=True)[:n_prune]]
            new = flat_mask.clone()
            new[drop] = False
            out[name] = new.view(mask.shape)
        return out
    if scope != "global":
        raise ValueError(f"imp.scope must be 'layer' or 'global', got {scope!r}")
    if len(set(rates.values())) != 1:
        raise ValueError("a global scope prunes every layer at one rate")
    rate = next(iter(rates.values()))
    names = list(masks)
    kept = [masks[n].reshape(-1).nonzero().squeeze(1) for n in names]
    magnitude = torch.cat([weights[n].reshape(-1)[k].abs() for n, k in zip(names, kept, strict=True)])
    owner = torch.cat([torch.full((k.numel(),), i) for i, k in enumerate(kept)])
    position = torch.cat(kept)
    order = magnitude.argsort(stable=True)[: round(rate * magnitude.numel())]
    out = {n: masks[n].reshape(-1).clone() for n in names}
    for i, n in enumerate(names):
        drop = position[order[owner[order] == i]]
        drop = drop[: max(0, kept[i].numel() - 1)]  # never empty a layer
        out[n][drop] = False
    return {n: out[n].view(masks[n].shape) for n in names}


def round_kept_counts(
    arch: Architecture, target: float, rates: dict[str, float], max_rounds: int
) -> list[dict[str, int]]:
    """Weight name -> kept weights of each round layer-wise IMP trains (round 0 dense), until the total density
    reaches ``target`` or ``max_rounds`` prunes; as :func:`prune_magnitude` counts them (a layer never empties)."""
    kept = {spec.weight: math.prod(spec.weight_shape) for spec in arch.layers}
    total = sum(kept.values())
    rounds = [kept]
    while sum(kept.values()) > target * total + 1e-9 and len(rounds) <= max_rounds:
        kept = {k: n - min(round(rates[k] * n), n - 1) for k, n in kept.items()}
        rounds.append(kept)
    return rounds


def expected_rounds(arch: Architecture, target: float, rates: dict[str, float], max_rounds: int) -> int:
    """Prune rounds a layer-wise IMP needs to bring the total density to ``target`` or below (at most ``max_rounds``)."""
    return len(round_kept_counts(arch, target, rates, max_rounds)) - 1


class IMPRun(MethodRun):
    """An IMP run in progress: the current round's ticket, its next mask and the rewind weights.

    Attributes:
        ticket: the last trained round's ticket (theta0 = rewind weights), with fitness and record.
        next_masks: the mask the next round trains (``None`` once the target density is reached).
        rewind: the weights survivors are reset to (theta0, or round 0's weights at ``imp.rewind_step``).
    """

    def __init__(self, resolved: Resolved) -> None:
        self.resolved = resolved
        self.config = resolved.config
        self.arch = resolved.arch
        c = self.config
        self.rates = layer_rates(self.arch, c.imp.rate, c.imp.output_rate, c.imp.conv_rate)
        if c.imp.scope == "global":
            self.rates = dict.fromkeys(self.rates, c.imp.rate)
        self.cls = ensure_creator()
        self.rng = torch.Generator().manual_seed(derive_seed(c.campaign.seed, "operators"))
        theta0 = self.arch.init_params(c.model.init, self.rng)
        self.rewind: dict[str, torch.Tensor] = theta0
        self.init_std = {s.weight: init_std(s, c.model.init) for s in self.arch.layers}
        self.next_masks: dict[str, torch.Tensor] | None = {
            s.weight: torch.ones(s.weight_shape, dtype=torch.bool) for s in self.arch.layers
        }
        self.ticket: Ticket | None = None
        self.round = -1
        self.hall_of_fame = tools.HallOfFame(HALL_OF_FAME, similar=same_uid)
        self.logbook = tools.Logbook()
        self.spent = dict.fromkeys(SPENT_KEYS, 0)
        self._evaluated = 0
        self._seconds = {"finetune_seconds": 0.0, "evaluation_seconds": 0.0}
        self.total_generations = expected_rounds(self.arch, c.ticket.density, self.rates, c.imp.max_rounds)

    @property
    def generation(self) -> int:
        """Last completed round; -1 before round 0."""
        return self.round

    @property
    def evaluated(self) -> int:
        """Networks trained so far (the rounds' tickets, controls excluded)."""
        return self._evaluated

    @evaluated.setter
    def evaluated(self, n: int) -> None:
        """Set the count (a resumed run starts from its checkpoint's)."""
        self._evaluated = int(n)

    def seconds(self) -> dict[str, float]:
        """Training seconds since the last call (the rounds' training, controls included)."""
        out, self._seconds = self._seconds, {"finetune_seconds": 0.0, "evaluation_seconds": 0.0}
        return out

    def snapshot(self) -> dict[str, Any]:
        """Round, ticket, hall of fame, logbook, next mask, rewind weights, its generator and compute spent."""
        return {
            "generation": self.round,
            "population": pack_tickets(None if self.ticket is None else [self.ticket]),
            "hall_of_fame": pack_hall_of_fame(self.hall_of_fame),
            "logbook": self.logbook,
            "operators_rng": self.rng.get_state(),
            "next_masks": self.next_masks,
            "rewind": self.rewind,
            "spent": dict(self.spent),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`snapshot`."""
        self.rng.set_state(state["operators_rng"])
        self.round = state["generation"]
        population = unpack_tickets(state["population"])
        self.ticket = population[0] if population else None
        self.hall_of_fame = unpack_hall_of_fame(state["hall_of_fame"])
        self.logbook = state["logbook"]
        self.next_masks = state["next_masks"]
        self.rewind = state["rewind"]
        self.spent = {**dict.fromkeys(SPENT_KEYS, 0), **state["spent"]}

    def round_flops(self) -> int:
        """Training FLOPs of the next round's ticket (its control not counted), as the meter counts them."""
        kept = {k: int(m.sum()) for k, m in self.next_masks.items()}
        return training_flops(self.arch, kept, self.config.imp.steps, self.config.optimizer.batch_size)

    # ------------------------------------------------------------------ rounds
    def _train_round(self, r: int) -> tuple[Ticket, dict[str, Any], dict[str, torch.Tensor]]:
        """Train round ``r``'s mask (and its random control); returns the ticket, its record fields, final weights."""
        c, splits = self.config, self.resolved.splits
        masks = self.next_masks
        ticket = self.cls(self.rewind, masks, c.model.init, self.init_std, uid=r, parents=[r - 1] if r else [])
        ticket.operators = ("initTicket",) if r == 0 else ("pruneMagnitude",)
        members = [ticket]
        dense = all(bool(m.all()) for m in masks.values())
        if not dense:  # the round's own control: a random mask of the same per-layer densities, same weights
            gen = torch.Generator().manual_seed(derive_seed(c.campaign.seed, "imp-control", r))
            members.append(Ticket(self.rewind, random_masks_like(masks, gen), c.model.init, self.init_std))
        theta0, stacked = stack_tickets(members, splits.device)
        batches = minibatch_indices(
            splits.x_train.shape[0],
            c.imp.steps,
            c.optimizer.batch_size,
            derive_seed(c.campaign.seed, "imp", r),
            splits.device,
            range(len(members)) if c.optimizer.data_order == "individual" else None,
        )
        stopping = EarlyStopping(c.imp.eval_every, c.campaign.early_stopping)
        saver = SaveWeights([c.imp.rewind_step] if r == 0 and c.imp.rewind_step > 0 else [])
        start = time.perf_counter()
        state = train(self.resolved.arch, theta0, stacked, splits, c.optimizer, batches, callbacks=[stopping, saver])
        self._seconds["finetune_seconds"] += time.perf_counter() - start
        if saver.saved:  # late rewinding: round 0's weights at step k become the rewind point
            self.rewind = {k: v[0].detach().cpu().clone() for k, v in saver.saved[c.imp.rewind_step].items()}
            ticket.theta0 = dict(self.rewind)
        bad = bool(state.bad[0]) or not math.isfinite(float(stopping.best["loss"][0]))
        acc, loss = float(stopping.best["acc"][0]), float(stopping.best["loss"][0])
        first_acc, first_loss = (float(v[0]) for v in stopping.first)
        spent = {k: int(getattr(state.meter, k)[0]) for k in SPENT_KEYS}
        fields = {
            **evaluation_fields(first_acc, first_loss, acc, loss, bad, spent),
            "test_acc": float(stopping.best["test"][0]),
            "best_step": int(stopping.best["step"][0]),
            "controls": {},
        }
        if not dense:
            fields["controls"]["random"] = {
                "test_acc": float(stopping.best["test"][1]),
                "val_acc": float(stopping.best["acc"][1]),
                "best_step": int(stopping.best["step"][1]),
                "train_flops": int(state.meter.train_flops[1]),
            }
        ticket.fitness.values = fitness_of(acc, loss, bad)
        final = {k: state.params[k][0].detach().cpu() for k in self.arch.weight_names}
        return ticket, fields, final

    def run(self, hooks: Sequence[Hook], should_stop: Callable[[], bool] | None, budget: Budget) -> MethodResult:
        """Train, prune and rewind round after round until the target density's mask is trained.

        Raises:
            Interrupted: when ``should_stop`` asked for it, after a round's hooks.
        """
        c = self.config
        limit = budget.train_flops if budget is not None else None
        stopped = False
        while self.next_masks is not None:
            r = self.round + 1
            if limit and self.ticket is not None and self.spent["train_flops"] + self.round_flops() > limit:
                stopped = True  # the next round would pass the budget: report the last trained one
                break
            start = time.perf_counter()
            ticket, fields, final = self._train_round(r)
            finetune = time.perf_counter() - start
            ticket.eval_record = individual_record(ticket, r, fields)
            prune_start = time.perf_counter()
            reached = ticket.total_density() <= c.ticket.density + 1e-9 or r >= c.imp.max_rounds
            self.next_masks = None if reached else prune_magnitude(final, ticket.masks, self.rates, c.imp.scope)
            variation = time.perf_counter() - prune_start
            self.round, self.ticket = r, ticket
            self._evaluated += 1
            for k in SPENT_KEYS:
                self.spent[k] += int(fields[k])
            report_generation(
                r,
                [ticket],
                [ticket],
                hooks=hooks,
                hall_of_fame=self.hall_of_fame,
                logbook=self.logbook,
                seconds=time.perf_counter() - start,
                finetune_seconds=finetune,
                variation_seconds=variation,
            )
            if should_stop is not None and should_stop() and self.next_masks is not None:
                raise Interrupted("", r)
        last = self.ticket.eval_record or {}
        densities = self.logbook.chapters["density"].select("avg") if self.logbook.chapters else []
        info = {
            "imp": {
                "rounds": self.round + 1,
                "prunes": self.round,
                "density_total": self.ticket.total_density(),
                "target_density": c.ticket.density,
                "rate": c.imp.rate,
                "output_rate": c.imp.output_rate,
                "steps": c.imp.steps,
                "previous_density": densities[-2] if len(densities) > 1 else None,
                "reached_target": self.ticket.total_density() <= c.ticket.density + 1e-9,
                "test_acc": last.get("test_acc"),
                "best_step": last.get("best_step"),
                "random_test_acc": (last.get("controls", {}).get("random") or {}).get("test_acc"),
            }
        }
        if limit:
            info["budget"] = {"train_flops": int(limit), "rounds": self.round + 1, "stopped_by_budget": stopped}
        result = MethodResult(self.ticket, list(self.hall_of_fame), dict(self.spent), info)
        if c.imp.rewind_step:
            result.theta0 = "rewound"
            result.theta0_text = f"round 0's weights at step {c.imp.rewind_step} (late rewinding)"
        return result


def imp_flops(arch: Architecture, config: Any) -> int:
    """Training FLOPs layer-wise IMP spends to reach ``ticket.density``: every round's ticket, controls not counted.

    Exact (the meter counts, it does not time): round ``r`` trains ``imp.steps`` steps at the kept counts
    after ``r`` prunes. ``imp.scope = "global"`` depends on trained magnitudes and has no closed form.

    Raises:
        ValueError: for the global scope.
    """
    c = config
    if c.imp.scope != "layer":
        raise ValueError("imp_flops: only the layer-wise scope has a closed form")
    rates = layer_rates(arch, c.imp.rate, c.imp.output_rate, c.imp.conv_rate)
    rounds = round_kept_counts(arch, c.ticket.density, rates, c.imp.max_rounds)
    return sum(training_flops(arch, kept, c.imp.steps, c.optimizer.batch_size) for kept in rounds)


class IMP(Method):
    """The ``imp`` method; settings in ``[imp]`` (and ``[optimizer]``)."""

    name = "imp"
    section = "imp"
    citation = "Frankle & Carbin 2019, arXiv:1803.03635; Frankle et al. 2019, arXiv:1903.01611"
    unit, units = "round", "rounds"
    baseline = True

    def check(self, resolved: Resolved) -> None:
        """A budget must pay for round 0.

        Raises:
            BudgetError: naming ``budget.train_flops`` and the budget needed.
        """
        c, arch = resolved.config, resolved.arch
        limit = c.budget.train_flops
        dense = round_kept_counts(arch, 1.0, {}, 0)[0]
        first = training_flops(arch, dense, c.imp.steps, c.optimizer.batch_size)
        if limit and first > limit:
            raise BudgetError(
                f"budget.train_flops: {limit:,} does not pay for IMP's round 0 ({first:,}); must be >= {first:,}",
                needed=first,
            )

    def kept_tickets(self, config: Any) -> tuple[int, str]:
        """Its hall of fame: the :data:`HALL_OF_FAME` rounds of best validation accuracy (each at its own density,
        often denser than the reported last round's ticket)."""
        return HALL_OF_FAME, "its hall of fame of the best rounds"

    def prepare(self, resolved: Resolved) -> IMPRun:
        """A fresh IMP run (theta0 drawn from ``campaign.seed``, nothing trained)."""
        return IMPRun(resolved)

    def budget_overrides(self, config: Any, multiple: float) -> dict[str, Any]:
        """IMP spends ``multiple`` times its own FLOPs by training every round ``multiple`` times longer."""
        return {"imp": {"steps": round(config.imp.steps * multiple)}}

    def subtitle(self, config: Any) -> str:
        """E.g. "IMP: prune 0.2 per round, 1500 steps per round"."""
        return f"IMP: prune {config.imp.rate:g} per round, {config.imp.steps} steps per round"

    def report(self, config: Any, summary: dict[str, Any] | None = None) -> dict[str, Any]:
        """As every method's; ``density`` says the target and, once finished, the density reached."""
        out = super().report(config)
        reached = ((summary or {}).get("imp") or {}).get("density_total")
        target = config.ticket.density
        if reached is not None and abs(reached - target) > 1e-9:
            out["density"] = f"density {reached:.4f} (target {target:g})"
        else:
            out["density"] = f"target density {target:g}"
        return out

    def summary_lines(self, summary: dict[str, Any]) -> list[str]:
        """Rounds, the density reached and why it differs from the target, and the last round's own result."""
        own = summary.get("imp") or {}
        reached, target = own.get("density_total"), own.get("target_density")
        lines = [
            f"IMP: {own.get('rounds')} rounds ({own.get('prunes')} prunes), {own.get('steps')} steps each; "
            f"reached density {reached:.4f}"
        ]
        if target is not None and abs(reached - target) > 1e-9:
            why = (
                f"  (asked {target:g}: each round prunes {own.get('rate'):g} of every layer's remaining weights "
                f"({own.get('output_rate'):g} of the output layer's), so the densities IMP can reach come in steps"
            )
            if own.get("previous_density") is not None:
                why += f": {own['previous_density']:.4f} before the last prune, {reached:.4f} after it"
            if own.get("reached_target"):
                why += "; IMP stops at the first round at or below the target)"
            else:
                why += "; the run stopped before the target: the budget or imp.max_rounds)"
            lines.append(why)
        if own.get("test_acc") is not None:
            line = (
                f"Last round itself: test accuracy {own['test_acc']:.4f} at its early-stopping step {own['best_step']}"
            )
            if own.get("random_test_acc") is not None:
                line += f"; its random mask of the same densities {own['random_test_acc']:.4f}"
            lines.append(line)
        return lines

    def extend_hint(self, run_dir: Any) -> str:
        """A finished IMP run has reached its density: a new run with a lower ``ticket.density`` goes further."""
        return "method 'imp' has nothing more to run: it reached its density (start a run with a lower ticket.density)"


__all__ = ["IMP", "IMPRun", "expected_rounds", "imp_flops", "layer_rates", "prune_magnitude", "round_kept_counts"]
