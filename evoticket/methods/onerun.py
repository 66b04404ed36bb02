"""The methods that train one network in one run: ``dense``, ``random``, ``gmp``, ``rigl``, ``edge_popup``,
``bn_only`` and ``output_only``.

Each draws its start from ``campaign.seed`` as the GA draws its first individual (theta0 from
``model.init``; a random mask at the ``[ticket]`` densities where it needs one), trains it for
``train.steps`` steps with the ``[optimizer]`` settings in the one training engine
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

This module holds the driver they share (:class:`OneRun`, :class:`OneRunMethod`) and the methods that
differ only in their trainable scope (``dense``, ``random``, ``bn_only``, ``output_only``);
:mod:`evoticket.methods.gmp`, :mod:`evoticket.methods.rigl` and :mod:`evoticket.methods.edge_popup` hold
the others.

A method may train several networks of its own side by side and report the best (``rigl_tuned``'s runs of
drawn hyperparameters: :meth:`OneRunMethod.members`): they train in the same batch, each at its ``lr`` gene
when it carries one, and the member with the best validation accuracy at its early-stopping step is the
reported network (its ``lr`` gene goes with the reported ticket, so the final comparison trains at it); the
method's compute is theirs summed, and its own result lists each member's.

The run is one record (generation 0, one individual: uid 0, operator the method's name) with the
network's own result in ``summary.json[METHOD]``: test accuracy at the early-stopping step, its
compute, its controls and its training curve (step, validation and test accuracy and density at
every check; the run's ``fitness`` figure). The reported ticket is theta0 with the mask of that step; the campaign's final
comparison trains it from theta0 next to the lottery-ticket controls, as for every method. A
checkpoint is written before and after the run, so a run killed during its training starts that
training again (deterministically: the same records), and one killed later resumes after it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
from deap import tools

from evoticket.core.errors import BudgetError, ConfigError
from evoticket.core.seeds import derive_seed
from evoticket.genome import Ticket, ensure_creator, stack_tickets, ticket_densities
from evoticket.genome.snapshot import pack_hall_of_fame, pack_tickets, unpack_hall_of_fame, unpack_tickets
from evoticket.methods.base import Budget, Method, MethodResult, MethodRun, kept_weights, training_flops
from evoticket.operators import initTicket
from evoticket.records import SPENT_KEYS, Hook, evaluation_fields, fitness_of, individual_record, report_generation
from evoticket.resolve import Resolved
from evoticket.training import Callback, EarlyStopping, TrainState, gene_values, minibatch_indices, train


class OneRun(MethodRun):
    """One method's single training run: its start ticket, then (once trained) the reported ticket.

    Attributes:
        start: the ticket the run starts from (theta0 and the start mask).
        members: the networks the method trains and chooses among (:meth:`OneRunMethod.members`; ``[start]`` for
            most methods).
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
            self.cls,
            self.arch,
            1.0,
            rng=self.rng,
            init=c.model.init,
            layer_densities=self.densities,
            placement=c.ticket.placement,
        )
        self.start.uid = 0
        self.members: list[Ticket] = method.members(self)
        self.steps = method.planned_steps(resolved, method.start_kept(resolved))
        """Steps of the run: ``train.steps``, or with ``budget.train_flops`` as many as the budget pays for (each
        member's: ``rigl_tuned`` divides them among its runs)."""
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
        """Networks trained (0 before the run, then its members: 1 for most methods; controls excluded)."""
        return 0 if self.ticket is None else len(self.members)

    @evaluated.setter
    def evaluated(self, n: int) -> None:
        """Ignored: the count follows from the state."""

    def seconds(self) -> dict[str, float]:
        """Training seconds since the last call."""
        out, self._seconds = self._seconds, {"finetune_seconds": 0.0, "evaluation_seconds": 0.0}
        return out

    def snapshot(self) -> dict[str, Any]:
        """The trained ticket (or none yet), its own result, its generator and compute."""
        return {
            "generation": self.generation,
            "population": pack_tickets(None if self.ticket is None else [self.ticket]),
            "hall_of_fame": pack_hall_of_fame(self.hall_of_fame),
            "logbook": self.logbook,
            "operators_rng": self.rng.get_state(),
            "result": dict(self.result),
            "spent": dict(self.spent),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`snapshot`."""
        self.rng.set_state(state["operators_rng"])
        population = unpack_tickets(state["population"])
        self.ticket = population[0] if population else None
        self.hall_of_fame = unpack_hall_of_fame(state["hall_of_fame"])
        self.logbook = state["logbook"]
        self.result = dict(state.get("result") or {})
        self.spent = {**dict.fromkeys(SPENT_KEYS, 0), **(state.get("spent") or {})}

    # ------------------------------------------------------------ training
    def _train(self) -> tuple[Ticket, dict[str, Any]]:
        c, splits, method = self.config, self.resolved.splits, self.method
        steps = self.steps
        own = self.members
        m = len(own)
        members = [*own, *method.companions(self)]  # the method's networks, then its controls
        theta0, masks = stack_tickets(members, splits.device)
        optimizer = method.optimizer(c)
        lr = gene_values(members, "lr", optimizer.lr)  # (P,) where a member carries its learning rate
        batches = minibatch_indices(
            splits.x_train.shape[0],
            steps,
            c.optimizer.batch_size,
            derive_seed(c.campaign.seed, method.name),
            splits.device,
            range(len(members)) if optimizer.data_order == "individual" else None,
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
            optimizer,
            batches,
            scope=method.scope,
            callbacks=[stopping, *method.callbacks(self, len(members))],
            scores=scores,
            lr=lr,
        )
        self._seconds["finetune_seconds"] += time.perf_counter() - start
        best = stopping.best
        bad = [bool(state.bad[i]) or not math.isfinite(float(best["loss"][i])) for i in range(m)]
        # the reported member: best validation accuracy at its early-stopping step, lower loss on a tie, diverged last
        i = max(range(m), key=lambda j: (not bad[j], float(best["acc"][j]), -float(best["loss"][j]), -j))
        chosen = own[i]
        final_masks = {k: mask[i].detach().cpu().clone() for k, mask in stopping.best_masks.items()}
        lr_gene = {"lr": chosen.genes["lr"]} if "lr" in chosen.genes else None  # the final comparison trains at it
        ticket = self.cls(chosen.theta0, final_masks, chosen.init_scheme, chosen.init_std, uid=0, genes=lr_gene)
        ticket.operators = (method.name,)
        acc, loss = float(best["acc"][i]), float(best["loss"][i])
        ticket.fitness.values = fitness_of(acc, loss, bad[i])
        first_acc, first_loss = (float(v[i]) for v in stopping.first)
        result = {
            "test_acc": float(best["test"][i]),
            "val_acc": acc,
            "best_step": int(best["step"][i]),
            "final_test_acc": float(stopping.last_test_acc[i]),
            "density_total": ticket.total_density(),
            "density": ticket.density(),
            "nonfinite": bad[i],
            **{k: int(getattr(state.meter, k)[:m].sum()) for k in SPENT_KEYS},  # every member's compute
            "controls": method.companion_results(self, state, stopping),
            "curve": {
                "step": [int(h["step"]) for h in stopping.history],
                **{
                    key: [round(float(h[key][i]), 6) for h in stopping.history]
                    for key in ("val_acc", "test_acc", "density_total")
                },
            },
        }
        if m > 1:  # every member's own result, and which one is reported
            result["chosen"] = i
            result["runs"] = [
                {
                    **{k: float(v) for k, v in own[j].genes.items()},
                    "val_acc": float(best["acc"][j]),
                    "test_acc": float(best["test"][j]),
                    "best_step": int(best["step"][j]),
                    "nonfinite": bad[j],
                    **{k: int(getattr(state.meter, k)[j]) for k in SPENT_KEYS},
                }
                for j in range(m)
            ]
        spent = {k: result[k] for k in SPENT_KEYS}
        fields = {
            **evaluation_fields(first_acc, first_loss, acc, loss, bad[i], spent),
            "test_acc": result["test_acc"],
            "best_step": result["best_step"],
            "controls": result["controls"],
            "curve": result["curve"],
            **({"chosen": i, "runs": result["runs"]} if m > 1 else {}),
        }
        ticket.eval_record = individual_record(ticket, 0, fields)
        return ticket, result

    def run(self, hooks: Sequence[Hook], should_stop: Callable[[], bool] | None, budget: Budget) -> MethodResult:
        """Train the network (unless a resumed run already did), record it and return it.

        ``should_stop`` is not polled: the run is one record, after which the campaign honours a stop.
        """
        if self.ticket is None:
            start = time.perf_counter()
            ticket, own = self._train()
            finetune = time.perf_counter() - start
            self.ticket, self.result = ticket, own
            self.spent = {k: int(own[k]) for k in SPENT_KEYS}
            report_generation(
                0,
                [ticket],
                [ticket],
                hooks=hooks,
                hall_of_fame=self.hall_of_fame,
                logbook=self.logbook,
                seconds=time.perf_counter() - start,
                finetune_seconds=finetune,
            )
        info = {self.method.name: {**self.result, "steps": self.steps}}
        if self.config.budget.train_flops:
            info["budget"] = {"train_flops": int(self.config.budget.train_flops), "steps": self.steps}
        return MethodResult(self.ticket, [self.ticket], dict(self.spent), info)


class OneRunMethod(Method):
    """A method that trains one network in one run (see the module docstring); settings in ``[train]``.

    Its records have one row, its unit is the run (``steps`` of training), and its own result (test accuracy at
    the early-stopping step, its controls, its training curve) is ``summary.json[METHOD]``.

    Attributes:
        scope: the trainable scope (:data:`evoticket.training.SCOPES`).
        dense_start: the run starts from a dense mask (``dense``, ``gmp``, ``bn_only``, ``output_only``)
            rather than a random mask at the ``[ticket]`` densities.
    """

    scope = "kept"
    dense_start = False
    sections: tuple[str, ...] = ("train",)
    unit, units = "run", "runs"
    subtitle_text = ""
    """The method in a few words for its figures' titles (default: its name)."""
    control_words: ClassVar[dict[str, str]] = {}
    """Its own controls (:meth:`companion_results`) in words, for the summary (default: their names)."""

    def prepare(self, resolved: Resolved) -> OneRun:
        """A fresh run (start ticket drawn from ``campaign.seed``, nothing trained)."""
        return OneRun(resolved, self)

    def run_flops(self, resolved: Resolved, kept: dict[str, int], steps: int) -> int:
        """Training FLOPs of the reported network in a run of ``steps`` steps from start kept counts ``kept``
        (the meter's count exactly; controls trained beside it not counted)."""
        return training_flops(resolved.arch, kept, steps, resolved.config.optimizer.batch_size, self.scope)

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

    def optimizer(self, config: Any) -> Any:
        """The optimizer settings of the run (``[optimizer]``)."""
        return config.optimizer

    def members(self, run: OneRun) -> list[Ticket]:
        """The networks the method trains side by side and chooses among: ``[run.start]``.

        A method with several (``rigl_tuned``: one per drawn hyperparameter setting) returns them here; each
        trains at its ``lr`` gene when it carries one, and the one with the best validation accuracy at its
        early-stopping step is reported. Their compute is the method's (:meth:`run_flops` counts all of them).
        """
        return [run.start]

    def companions(self, run: OneRun) -> list[Ticket]:
        """Networks trained in the same batch as controls, after the members (none)."""
        return []

    def companion_results(self, run: OneRun, state: TrainState, stopping: EarlyStopping) -> dict[str, Any]:
        """The controls' results, by name (none); the controls are the networks after the members in the batch."""
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

    def subtitle(self, config: Any) -> str:
        """E.g. "dense training, 1500 steps"."""
        return f"{self.subtitle_text or self.name}, {config.train.steps} steps"

    def report(self, config: Any, summary: dict[str, Any] | None = None) -> dict[str, Any]:
        """:meth:`Method.report`; under ``budget.train_flops`` its subtitle says the budget decides the steps, and
        once the run has trained, how many it trained."""
        out = super().report(config, summary)
        steps = ((summary or {}).get(self.name) or {}).get("steps")
        if steps:
            out["subtitle"] = self.subtitle(config.with_overrides({"train.steps": int(steps), "budget.train_flops": 0}))
        elif config.budget.train_flops:  # train.steps is unused: the budget decides, the run will say how many
            planned = f"{config.train.steps} steps"
            paid = f"the steps {config.budget.train_flops / 1e12:.3g} TFLOP of training pay for"
            text = out["subtitle"]
            out["subtitle"] = text[: -len(planned)] + paid if text.endswith(planned) else f"{text}; {paid}"
        return out

    def summary_lines(self, summary: dict[str, Any]) -> list[str]:
        """The run's length, its early-stopping step, its own test accuracy and density, and its own controls."""
        own = summary.get(self.name) or {}
        if "test_acc" not in own:
            return []
        steps = own.get("steps")
        controls = "".join(
            f"; {self.control_words.get(name, name)} {c['test_acc']:.4f}"
            for name, c in (own.get("controls") or {}).items()
            if "test_acc" in c
        )
        return [
            f"{self.name}: one training run of {steps:,} steps; at its early-stopping step {own['best_step']}: "
            f"test accuracy {own['test_acc']:.4f}, density {own['density_total']:.4f}{controls}"
        ]


class Dense(OneRunMethod):
    """``dense``: theta0 trained without a mask (every weight, bias and BatchNorm parameter)."""

    name = "dense"
    dense_start = True
    baseline = True
    subtitle_text = "dense training"
    citation = "the dense baseline of Frankle & Carbin 2019, arXiv:1803.03635"


class RandomMask(OneRunMethod):
    """``random``: a random mask at the ``[ticket]`` densities, trained from theta0 (Frankle & Carbin 2019)."""

    name = "random"
    subtitle_text = "random mask"
    citation = "Frankle & Carbin 2019, arXiv:1803.03635"


class BNOnly(OneRunMethod):
    """``bn_only``: only the BatchNorm affine parameters train; every other weight stays at theta0 (arXiv:2003.00152)."""

    name = "bn_only"
    scope = "bn"
    dense_start = True
    subtitle_text = "BatchNorm parameters only"
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
    subtitle_text = "output layer only"
    citation = "Huang et al. 2006; Dempster et al. 2020, arXiv:1910.13051"


__all__ = ["BNOnly", "Dense", "OneRun", "OneRunMethod", "OutputOnly", "RandomMask"]
