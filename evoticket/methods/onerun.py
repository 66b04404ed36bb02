"""The methods that train one network in one run: ``dense``, ``random``, ``gmp``, ``rigl``, ``edge_popup``,
``bn_only`` and ``output_only``.

Each draws its start from ``campaign.seed`` as the GA draws its first individual (theta0 from
``model.init``; a random mask at the ``[ticket]`` densities where it needs one), trains it for
``train.steps`` steps with the ``[finetune]`` optimizer in the one training engine
(:func:`evoticket.training.train`) and reports the network at its early-stopping step (checked
every ``train.eval_every`` steps; test accuracy there). What changes between them is only what
training may touch:

============== ============================================================================
``dense``      every weight, no mask
``random``     the kept weights of a random mask at the target densities (Frankle & Carbin 2019,
               arXiv:1803.03635)
``gmp``        every weight at first; every ``gmp.every`` steps the smallest magnitudes are pruned
               along the cubic schedule to each layer's target density (Zhu & Gupta 2017,
               arXiv:1710.01878)
``rigl``       a random mask at the target densities; every ``rigl.delta_t`` steps it drops the
               smallest-magnitude kept weights and grows as many where the dense gradient is
               largest (``rigl.grow = "random"``: at random, SET), with a cosine-decayed fraction
               (Evci et al. 2020, arXiv:1911.11134; Mocanu et al. 2018, arXiv:1707.04780). A
               static copy of its start mask trains next to it in the same batch.
``edge_popup`` no weight: a score per weight, each layer keeps its top-k by |score| with a
               straight-through gradient (Ramanujan et al. 2020, arXiv:1911.13299). Its own
               result is the accuracy with frozen weights; a random mask of the same per-layer
               densities on the same frozen weights is evaluated next to it.
``bn_only``    the BatchNorm affine parameters only (Frankle et al. 2020, arXiv:2003.00152)
``output_only`` the output layer only: random features and a trained read-out (Huang et al. 2006;
               for ``cnn1d``, random convolutions in the spirit of ROCKET, Dempster et al. 2020,
               arXiv:1910.13051)
============== ============================================================================

The run is one record (generation 0, one individual: uid 0, operator the method's name) with the
network's own result in ``summary.json[METHOD]``: test accuracy at the early-stopping step, its
compute, its controls and its training curve (step, validation and test accuracy and density at
every check; the run's ``fitness`` figure). The reported ticket is theta0 with the mask of that step; the campaign's final
comparison trains it from theta0 next to the lottery-ticket controls, as for every method. A
checkpoint is written before and after the run, so a run killed during its training starts that
training again (deterministically: the same records), and one killed later resumes after it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from deap import tools

from evoticket.core.errors import BudgetError, ConfigError
from evoticket.core.seeds import capture_rng, derive_seed, restore_rng
from evoticket.evolution import SPENT_KEYS, GenerationRecord, make_statistics
from evoticket.genome import Ticket, ensure_creator, kept_count, random_masks_like, stack_tickets, ticket_densities
from evoticket.methods.base import Budget, Hook, Method, MethodResult, MethodRun, kept_weights, training_flops
from evoticket.models import Architecture
from evoticket.operators import initTicket
from evoticket.resolve import Resolved
from evoticket.training import (
    Callback,
    EarlyStopping,
    MaskUpdate,
    TrainState,
    backward_flops,
    dense_gradient,
    evaluate_ticket,
    forward_flops,
    minibatch_indices,
    train,
)

# ---------------------------------------------------------------------------
# mask arithmetic of gradual pruning and RigL (one network's weights, any shape)


def keep_largest(score: torch.Tensor, candidates: torch.Tensor, keep: int) -> torch.Tensor:
    """The ``keep`` candidate positions of largest score, as a bool mask.

    Args:
        score: scores of one tensor (any shape); larger is kept first.
        candidates: bool, the same shape: the positions that may be chosen.
        keep: how many to choose, clipped to ``[0, candidates.sum()]``.

    Returns:
        A bool tensor of ``score``'s shape with exactly ``min(keep, #candidates)`` True entries, all
        among the candidates. Ties go to the lower flat position (stable sort), so the result is
        deterministic.
    """
    flat, allowed = score.reshape(-1), candidates.reshape(-1)
    pos = allowed.nonzero().squeeze(1)
    keep = max(0, min(int(keep), pos.numel()))
    order = flat[pos].argsort(descending=True, stable=True)[:keep]
    out = torch.zeros_like(allowed)
    out[pos[order]] = True
    return out.view(score.shape)


def cubic_density(step: int, start: int, end: int, final: float) -> float:
    """Zhu & Gupta's (arXiv:1710.01878) density at ``step``: 1 before ``start``, ``final`` from ``end`` on.

    ``d_t = final + (1 - final) * (1 - (t - start) / (end - start))**3`` in between (sparsity
    ``s_t = s_f (1 - (1 - p)**3)``, with initial sparsity 0).
    """
    if step <= start:
        return 1.0
    if step >= end:
        return float(final)
    progress = (step - start) / (end - start)
    return float(final) + (1.0 - float(final)) * (1.0 - progress) ** 3


def cubic_kept(step: int, start: int, end: int, final: float, numel: int) -> int:
    """Weights a layer of ``numel`` keeps after gradual pruning at ``step``: the cubic schedule's density,
    never below the target's kept count (:func:`evoticket.genome.kept_count`)."""
    return max(kept_count(final, numel), round(cubic_density(step, start, end, final) * numel))


def rigl_fraction(step: int, alpha: float, end: int) -> float:
    """RigL's cosine-decayed update fraction ``alpha / 2 * (1 + cos(pi * step / end))``; 0 from ``end`` on."""
    if step >= end:
        return 0.0
    return alpha / 2 * (1 + math.cos(math.pi * step / end))


def drop_and_grow(weight: torch.Tensor, mask: torch.Tensor, grow_score: torch.Tensor, fraction: float) -> torch.Tensor:
    """One RigL/SET update of one layer: drop the smallest-magnitude kept weights, grow as many elsewhere.

    Args:
        weight: the layer's current weights (any shape).
        mask: bool, the same shape: its kept weights.
        grow_score: where to grow, larger first: the dense gradient's magnitude (RigL) or random
            numbers (SET), the same shape.
        fraction: share of the kept weights to replace, in [0, 1].

    Returns:
        The new bool mask, with exactly as many kept weights as ``mask``. ``floor(fraction * kept)``
        kept weights of smallest magnitude are dropped, then as many positions of largest
        ``grow_score`` grow among those not kept after the drop (a just-dropped weight may grow
        back, keeping its value, as in RigL's default).
    """
    kept = int(mask.sum())
    n = int(fraction * kept)
    if n == 0:
        return mask.clone()
    survivors = keep_largest(weight.abs(), mask, kept - n)
    grown = keep_largest(grow_score, ~survivors, n)
    return survivors | grown


# ---------------------------------------------------------------------------
# the callbacks of gmp and rigl


class GradualPruning:
    """``MaskUpdate`` function of ``gmp``: prune each layer to its cubic-schedule density by magnitude.

    Args:
        final: weight name -> the layer's target density in (0, 1].
        start, end: the schedule's first and last pruning steps (t_0, t_1).
    """

    def __init__(self, final: dict[str, float], start: int, end: int) -> None:
        self.final, self.start, self.end = final, start, end

    def __call__(self, state: TrainState) -> dict[str, torch.Tensor]:
        """New masks at ``state.step`` (a subset of the current ones)."""
        out = {}
        for name, mask in state.masks.items():
            target = cubic_kept(state.step, self.start, self.end, self.final[name], mask[0].numel())
            weights = state.params[name].detach()
            out[name] = torch.stack([keep_largest(weights[p].abs(), mask[p], target) for p in range(mask.shape[0])])
        return out


class DropAndGrow:
    """``MaskUpdate`` function of ``rigl``: drop and grow in the first ``updated`` individuals of the batch.

    The dense gradient (RigL) is taken on the minibatch of the step just run; its cost (one forward
    and one backward pass with dense weight gradients over that batch) is added to the meter's
    training FLOPs.

    Args:
        arch: the architecture.
        cfg: the ``[rigl]`` settings.
        end: T_end, the step from which the masks stay.
        updated: how many individuals (from the first) change masks; the rest stay static.
        seed: seed of SET's random growth.
    """

    def __init__(self, arch: Architecture, cfg: Any, end: int, updated: int, seed: int) -> None:
        self.arch, self.cfg, self.end, self.updated = arch, cfg, end, updated
        self.gen = torch.Generator().manual_seed(seed)
        self.updates = 0

    def __call__(self, state: TrainState) -> dict[str, torch.Tensor] | None:
        """New masks at ``state.step``, or ``None`` from T_end on."""
        fraction = rigl_fraction(state.step, self.cfg.alpha, self.end)
        if fraction <= 0:
            return None
        if self.cfg.grow == "gradient":
            grads = dense_gradient(state, state.batches[state.step - 1], metered=self.updated)
        out = {}
        for name, mask in state.masks.items():
            new = mask.clone()
            for p in range(self.updated):
                if self.cfg.grow == "gradient":
                    score = grads[name][p].abs()
                else:
                    score = torch.rand(mask[p].shape, generator=self.gen).to(mask.device)
                new[p] = drop_and_grow(state.params[name][p].detach(), mask[p], score, fraction)
            out[name] = new
        self.updates += 1
        return out


# ---------------------------------------------------------------------------
# the run


class OneRun(MethodRun):
    """One method's single training run: its start ticket, then (once trained) the reported ticket.

    Attributes:
        start: the ticket the run starts from (theta0 and the start mask).
        ticket: the reported ticket once trained (theta0 and the mask of the early-stopping step),
            with fitness and record; ``None`` before.
        result: the method's own result (``summary.json[METHOD]``), once trained.
    """

    def __init__(self, resolved: Resolved, method: OneRunMethod) -> None:
        self.resolved, self.method = resolved, method
        self.config, self.arch = resolved.config, resolved.arch
        c = self.config
        self.cls = ensure_creator()
        self.rng = torch.Generator().manual_seed(derive_seed(c.campaign.seed, "operators"))
        self.densities, self.targets = method.densities(resolved)
        self.start = initTicket(
            self.cls, self.arch, 1.0, rng=self.rng, init=c.model.init, layer_densities=self.densities
        )
        self.start.uid = 0
        self.steps = method.planned_steps(resolved, method.start_kept(resolved))
        """Steps of the run: ``train.steps``, or with ``budget.train_flops`` as many as the budget pays for."""
        self.ticket: Ticket | None = None
        self.result: dict[str, Any] = {}
        self.hall_of_fame = tools.HallOfFame(1)
        self.logbook = tools.Logbook()
        self.spent = dict.fromkeys(SPENT_KEYS, 0)
        self._seconds = {"finetune_seconds": 0.0, "evaluation_seconds": 0.0}
        self.total_generations = 0

    @property
    def generation(self) -> int:
        """0 once the network is trained; -1 before."""
        return -1 if self.ticket is None else 0

    @property
    def evaluated(self) -> int:
        """Networks trained (0 or 1; controls excluded)."""
        return 0 if self.ticket is None else 1

    @evaluated.setter
    def evaluated(self, n: int) -> None:
        """Ignored: the count follows from the state."""

    def seconds(self) -> dict[str, float]:
        """Training seconds since the last call."""
        out, self._seconds = self._seconds, {"finetune_seconds": 0.0, "evaluation_seconds": 0.0}
        return out

    def snapshot(self, state: Any | None = None) -> dict[str, Any]:
        """The trained ticket (or none yet), its own result, RNG states and compute."""
        return {
            "generation": self.generation,
            "population": None if self.ticket is None else [self.ticket],
            "hall_of_fame": self.hall_of_fame,
            "logbook": self.logbook,
            "next_uid": 1,
            "rng": capture_rng(self.rng),
            "result": dict(self.result),
            "spent": dict(self.spent),
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Continue from a :meth:`snapshot`."""
        restore_rng(snapshot["rng"], self.rng)
        self.ticket = snapshot["population"][0] if snapshot["population"] else None
        self.hall_of_fame = snapshot["hall_of_fame"]
        self.logbook = snapshot["logbook"]
        self.result = dict(snapshot.get("result") or {})
        self.spent = {**dict.fromkeys(SPENT_KEYS, 0), **(snapshot.get("spent") or {})}

    # ------------------------------------------------------------ training
    def _train(self) -> tuple[Ticket, dict[str, Any]]:
        c, splits, method = self.config, self.resolved.splits, self.method
        steps = self.steps
        members = [self.start, *method.companions(self)]
        theta0, masks = stack_tickets(members, splits.device)
        batches = minibatch_indices(
            splits.x_train.shape[0],
            steps,
            c.finetune.batch_size,
            derive_seed(c.campaign.seed, method.name),
            splits.device,
        )
        stopping = EarlyStopping(
            c.train.eval_every, c.campaign.early_stopping, keep_weights=True, start=method.stopping_start(self)
        )
        scores = method.scores(self, theta0) if method.scope == "scores" else None
        start = time.perf_counter()
        state = train(
            self.arch,
            theta0,
            masks,
            splits,
            method.finetune(c),
            batches,
            scope=method.scope,
            callbacks=[stopping, *method.callbacks(self, len(members))],
            scores=scores,
        )
        self._seconds["finetune_seconds"] += time.perf_counter() - start
        best = stopping.best
        bad = bool(state.bad[0]) or not math.isfinite(float(best["loss"][0]))
        final_masks = {k: m[0].detach().cpu().clone() for k, m in stopping.best_masks.items()}
        ticket = self.cls(self.start.theta0, final_masks, self.start.init_scheme, self.start.init_std, uid=0)
        ticket.operators = (method.name,)
        acc, loss = float(best["acc"][0]), float(best["loss"][0])
        ticket.fitness.values = (0.0, float("inf")) if bad else (acc, loss)
        first_acc, first_loss = (float(v[0]) for v in stopping.first)
        own = {
            "test_acc": float(best["test"][0]),
            "val_acc": acc,
            "best_step": int(best["step"][0]),
            "final_test_acc": float(stopping.last_test_acc[0]),
            "density_total": ticket.total_density(),
            "density": ticket.density(),
            "nonfinite": bad,
            **{k: int(getattr(state.meter, k)[0]) for k in SPENT_KEYS},
            "controls": method.companion_results(self, state, stopping),
            "curve": {
                "step": [int(h["step"]) for h in stopping.history],
                **{
                    key: [round(float(h[key][0]), 6) for h in stopping.history]
                    for key in ("val_acc", "test_acc", "density_total")
                },
            },
        }
        fields = {
            "uid": 0,
            "generation": 0,
            "parents": [],
            "operators": [method.name],
            "density": ticket.density(),
            "density_total": ticket.total_density(),
            "val_acc_before": first_acc if math.isfinite(first_acc) else None,
            "val_loss_before": first_loss if math.isfinite(first_loss) else None,
            "val_acc": 0.0 if bad else acc,
            "val_loss": None if bad else loss,
            "flags": ["nonfinite"] if bad else [],
            "reevaluated": False,
            **{k: own[k] for k in SPENT_KEYS},
            "test_acc": own["test_acc"],
            "best_step": own["best_step"],
            "controls": own["controls"],
            "curve": own["curve"],
        }
        ticket.eval_record = fields
        return ticket, own

    def run(self, hooks: Sequence[Hook], should_stop: Callable[[], bool] | None, budget: Budget) -> MethodResult:
        """Train the network (unless a resumed run already did), record it and return it.

        ``should_stop`` is not polled: the run is one record, after which the campaign honours a stop.
        """
        if self.ticket is None:
            start = time.perf_counter()
            ticket, own = self._train()
            finetune = time.perf_counter() - start
            self.ticket, self.result = ticket, own
            self.hall_of_fame.update([ticket])
            row = {"gen": 0, "nevals": 1, **make_statistics().compile([ticket])}
            self.logbook.record(**row)
            spent = {k: int(own[k]) for k in SPENT_KEYS}
            self.spent = dict(spent)
            record = GenerationRecord(0, [ticket], row, time.perf_counter() - start, finetune, 0.0, None, spent)
            for hook in hooks:
                hook(0, [ticket], record)
        info = {self.method.name: dict(self.result)}
        if self.config.budget.train_flops:
            info["budget"] = {"train_flops": int(self.config.budget.train_flops), "steps": self.steps}
        return MethodResult(self.ticket, [self.ticket], dict(self.spent), info)


class OneRunMethod(Method):
    """A method that trains one network in one run (see the module docstring); settings in ``[train]``.

    Attributes:
        scope: the trainable scope (:data:`evoticket.training.SCOPES`).
        dense_start: the run starts from a dense mask (``dense``, ``gmp``, ``bn_only``, ``output_only``)
            rather than a random mask at the ``[ticket]`` densities.
    """

    scope = "kept"
    dense_start = False
    sections: tuple[str, ...] = ("train",)

    def prepare(self, resolved: Resolved) -> OneRun:
        """A fresh run (start ticket drawn from ``campaign.seed``, nothing trained)."""
        return OneRun(resolved, self)

    def run_flops(self, resolved: Resolved, kept: dict[str, int], steps: int) -> int:
        """Training FLOPs of the reported network in a run of ``steps`` steps from start kept counts ``kept``
        (the meter's count exactly; controls trained beside it not counted)."""
        return training_flops(resolved.arch, kept, steps, resolved.config.finetune.batch_size, self.scope)

    def planned_steps(self, resolved: Resolved, kept: dict[str, int]) -> int:
        """``train.steps``; with ``budget.train_flops``, the most steps whose :meth:`run_flops` fit it ("by
        longer training": the budget decides the run's length, ``train.steps`` is then unused).

        Raises:
            BudgetError: naming ``budget.train_flops`` when it does not pay for two steps.
        """
        limit = resolved.config.budget.train_flops
        if not limit:
            return resolved.config.train.steps
        if self.run_flops(resolved, kept, 2) > limit:
            need = self.run_flops(resolved, kept, 2)
            raise BudgetError(
                f"budget.train_flops: {limit:,} does not pay for two training steps of method {self.name!r} "
                f"({need:,}); must be >= {need:,}",
                needed=need,
            )
        lo, hi = 2, 4
        while self.run_flops(resolved, kept, hi) <= limit:
            lo, hi = hi, hi * 2
        while hi - lo > 1:  # the largest T with run_flops(T) <= limit (run_flops grows with T)
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if self.run_flops(resolved, kept, mid) <= limit else (lo, mid)
        return lo

    def densities(self, resolved: Resolved) -> tuple[dict[str, float], dict[str, float]]:
        """``(start, target)`` per-layer densities: the ``[ticket]`` ones (all 1.0 at the start for a dense start)."""
        t, arch = resolved.config.ticket, resolved.arch
        target = ticket_densities(arch, t.density, t.allocation, dict(t.layer_densities))
        return (dict.fromkeys(target, 1.0) if self.dense_start else target), target

    def start_kept(self, resolved: Resolved) -> dict[str, int]:
        """Kept counts of the start mask (as :func:`evoticket.operators.initTicket` draws it)."""
        return kept_weights(resolved.arch, self.densities(resolved)[0])

    def check(self, resolved: Resolved) -> None:
        """A budget must pay for a run of at least two steps.

        Raises:
            BudgetError: naming ``budget.train_flops`` and the budget needed.
        """
        if resolved.config.budget.train_flops:
            self.planned_steps(resolved, self.start_kept(resolved))

    def finetune(self, config: Any) -> Any:
        """The optimizer settings of the run (``[finetune]``'s)."""
        return config.finetune

    def companions(self, run: OneRun) -> list[Ticket]:
        """Networks trained in the same batch as controls (none)."""
        return []

    def companion_results(self, run: OneRun, state: TrainState, stopping: EarlyStopping) -> dict[str, Any]:
        """The controls' results, by name (none)."""
        return {}

    def callbacks(self, run: OneRun, population: int) -> list[Callback]:
        """Extra step callbacks (none)."""
        return []

    def stopping_start(self, run: OneRun) -> int:
        """The first step the early-stopping step may be (0)."""
        return 0

    def scores(self, run: OneRun, theta0: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
        """Initial edge-popup scores (scope ``scores`` only)."""
        return None


class Dense(OneRunMethod):
    """``dense``: theta0 trained without a mask (every weight, bias and BatchNorm parameter)."""

    name = "dense"
    dense_start = True
    citation = "the dense baseline of Frankle & Carbin 2019, arXiv:1803.03635"


class RandomMask(OneRunMethod):
    """``random``: a random mask at the ``[ticket]`` densities, trained from theta0 (Frankle & Carbin 2019)."""

    name = "random"
    citation = "Frankle & Carbin 2019, arXiv:1803.03635"


class BNOnly(OneRunMethod):
    """``bn_only``: only the BatchNorm affine parameters train; every other weight stays at theta0 (arXiv:2003.00152)."""

    name = "bn_only"
    scope = "bn"
    dense_start = True
    citation = "Frankle et al. 2020, arXiv:2003.00152"

    def check(self, resolved: Resolved) -> None:
        """The model must have BatchNorm.

        Raises:
            ConfigError: naming ``model.name`` and the BatchNorm models.
        """
        if not resolved.arch.norm_param_names:
            raise ConfigError(
                f"model.name: method 'bn_only' trains BatchNorm parameters, but {resolved.arch.name!r} has none; "
                "use mlp_bn or cnn1d_bn"
            )
        super().check(resolved)


class OutputOnly(OneRunMethod):
    """``output_only``: random frozen features, only the output layer trains (an extreme learning machine; ROCKET-like for cnn1d)."""

    name = "output_only"
    scope = "output"
    dense_start = True
    citation = "Huang et al. 2006; Dempster et al. 2020, arXiv:1910.13051"


class GMP(OneRunMethod):
    """``gmp``: gradual magnitude pruning to the ``[ticket]`` densities within one run (Zhu & Gupta 2017)."""

    name = "gmp"
    dense_start = True
    sections = ("train", "gmp")
    citation = "Zhu & Gupta 2017, arXiv:1710.01878"

    @staticmethod
    def schedule(config: Any, steps: int) -> tuple[int, int, list[int]]:
        """``(t_0, t_1, pruning steps)`` of a ``steps``-step run: every ``gmp.every`` steps from t_0, and t_1."""
        g = config.gmp
        t0, t1 = round(g.start * steps), round(g.end * steps)
        at = sorted({*range(max(t0, 1), t1, g.every), t1})
        return t0, t1, [s for s in at if 0 < s < steps]

    def run_flops(self, resolved: Resolved, kept: dict[str, int], steps: int) -> int:
        """The dense start's steps until the first pruning, then each segment at its kept counts."""
        c, arch = resolved.config, resolved.arch
        _, final = self.densities(resolved)
        numel = {spec.weight: math.prod(spec.weight_shape) for spec in arch.layers}
        t0, t1, at = self.schedule(c, steps)
        total, last, counts = 0, 0, dict(kept)
        for s in [*at, steps]:
            total += training_flops(arch, counts, s - last, c.finetune.batch_size, self.scope)
            last = s
            if s < steps:
                counts = {k: min(n, cubic_kept(s, t0, t1, final[k], numel[k])) for k, n in counts.items()}
        return total

    def check(self, resolved: Resolved) -> None:
        """The schedule must prune at least once before the last step (and a budget pay for the run).

        Raises:
            ConfigError: naming ``gmp.end`` or ``budget.train_flops``.
        """
        super().check(resolved)
        steps = self.planned_steps(resolved, self.start_kept(resolved))
        _, t1, at = self.schedule(resolved.config, steps)
        if not at or t1 >= steps:
            raise ConfigError(
                f"gmp.end: the pruning must end before the last of the run's {steps} steps (train.steps or the budget); "
                f"got step {t1} (gmp.end = {resolved.config.gmp.end})"
            )

    def callbacks(self, run: OneRun, population: int) -> list[Callback]:
        """Prune on the cubic schedule."""
        t0, t1, at = self.schedule(run.config, run.steps)
        return [MaskUpdate(GradualPruning(run.targets, t0, t1), at=at)]

    def stopping_start(self, run: OneRun) -> int:
        """t_1: the reported network has the target density."""
        return self.schedule(run.config, run.steps)[1]


class RigL(OneRunMethod):
    """``rigl``: sparse from the first step, drop and grow every ``rigl.delta_t`` steps (RigL, or SET)."""

    name = "rigl"
    sections = ("train", "rigl")
    citation = "Evci et al. 2020, arXiv:1911.11134; Mocanu et al. 2018, arXiv:1707.04780"

    def companions(self, run: OneRun) -> list[Ticket]:
        """The start mask kept static: the same network trained without drop and grow."""
        return [Ticket(run.start.theta0, run.start.masks, run.start.init_scheme, run.start.init_std)]

    def run_flops(self, resolved: Resolved, kept: dict[str, int], steps: int) -> int:
        """The sparse steps, plus (gradient growth) one dense-gradient minibatch at every update before T_end."""
        c, arch = resolved.config, resolved.arch
        total = super().run_flops(resolved, kept, steps)
        if c.rigl.grow == "gradient":
            end = round(c.rigl.end * steps)
            updates = len([s for s in range(c.rigl.delta_t, steps, c.rigl.delta_t) if s < end])
            weights = frozenset(arch.weight_names)
            per_example = forward_flops(arch, kept) + backward_flops(arch, kept, weights, dense_weight_grads=weights)
            total += updates * c.finetune.batch_size * int(per_example)
        return total

    def callbacks(self, run: OneRun, population: int) -> list[Callback]:
        """Drop and grow the first network every ``rigl.delta_t`` steps until T_end."""
        c = run.config
        end = round(c.rigl.end * run.steps)
        update = DropAndGrow(run.arch, c.rigl, end, 1, derive_seed(c.campaign.seed, "rigl-grow"))
        return [MaskUpdate(update, every=c.rigl.delta_t)]

    def companion_results(self, run: OneRun, state: TrainState, stopping: EarlyStopping) -> dict[str, Any]:
        """``static``: the start mask trained for the same steps without mask updates."""
        best = stopping.best
        return {
            "static": {
                "test_acc": float(best["test"][1]),
                "val_acc": float(best["acc"][1]),
                "best_step": int(best["step"][1]),
                "train_flops": int(state.meter.train_flops[1]),
            }
        }


class EdgePopup(OneRunMethod):
    """``edge_popup``: frozen weights, learnt scores, each layer's top-k by |score| (Ramanujan et al. 2020)."""

    name = "edge_popup"
    scope = "scores"
    sections = ("train", "edge_popup")
    citation = "Ramanujan et al. 2020, arXiv:1911.13299"

    def finetune(self, config: Any) -> Any:
        """``[finetune]`` with ``edge_popup.lr`` where set."""
        lr = config.edge_popup.lr
        return dataclasses.replace(config.finetune, lr=lr) if lr > 0 else config.finetune

    def scores(self, run: OneRun, theta0: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``edge_popup.score_init``: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (hidden-networks' kaiming_uniform with a = sqrt(5)), or |theta0|."""
        c = run.config
        out = {}
        gen = torch.Generator().manual_seed(derive_seed(c.campaign.seed, "edge-popup-scores"))
        for spec in run.arch.layers:
            w = theta0[spec.weight]
            if c.edge_popup.score_init == "weights":
                out[spec.weight] = w.abs().clone()
                continue
            bound = 1.0 / math.sqrt(math.prod(spec.weight_shape[1:]))
            u = torch.rand(w.shape, generator=gen, dtype=torch.float32) * 2 - 1
            out[spec.weight] = (u * bound).to(w.device, w.dtype)
        return out

    def companion_results(self, run: OneRun, state: TrainState, stopping: EarlyStopping) -> dict[str, Any]:
        """``random_frozen``: a random mask of the same per-layer densities on the same frozen weights
        (untrained); ``start``: the first top-k mask, before any score update."""
        c = run.config
        gen = torch.Generator().manual_seed(derive_seed(c.campaign.seed, "edge-popup-control"))
        masks = random_masks_like(run.start.masks, gen)
        control = Ticket(run.start.theta0, masks, run.start.init_scheme, run.start.init_std)
        val_acc, test_acc = evaluate_ticket(run.arch, control, run.resolved.splits)
        return {
            "random_frozen": {"test_acc": test_acc, "val_acc": val_acc},
            "start": {"val_acc": float(stopping.first[0][0])},
        }


ONE_RUN_METHODS: tuple[OneRunMethod, ...] = (Dense(), RandomMask(), GMP(), RigL(), EdgePopup(), BNOnly(), OutputOnly())
"""The one-run methods, in the order the README lists them."""


__all__ = [
    "GMP",
    "ONE_RUN_METHODS",
    "BNOnly",
    "Dense",
    "DropAndGrow",
    "EdgePopup",
    "GradualPruning",
    "OneRun",
    "OneRunMethod",
    "OutputOnly",
    "RandomMask",
    "RigL",
    "cubic_density",
    "drop_and_grow",
    "keep_largest",
    "rigl_fraction",
]
