"""``rigl_tuned``: RigL with its learning rate and update fraction tuned at equal compute.

RigL's result depends on its learning rate and on alpha, the initial share of each layer's kept weights dropped
and grown per update. Tuned RigL is the baseline the hybrid must beat once its own hyperparameters are genes
(``finetune.genes``): ``rigl_tuned.runs`` (N) RigL runs, the i-th with learning rate ``lr_i`` drawn
log-uniformly in ``rigl_tuned.lr_range`` and ``alpha_i`` uniformly in ``rigl_tuned.alpha_range`` (one generator
seeded from ``campaign.seed``), all from the same start (theta0 and random mask, drawn as ``rigl``'s) on the
same data order, so that they differ only in those two numbers. They share the compute of one RigL run: each
trains ``train.steps // N`` steps (under ``budget.train_flops``, the most steps a run of which N fit the budget),
all N in one batch of the training engine (per-network learning rates, a drop-and-grow update whose fraction
is ``rigl_fraction(step, alpha_i, T_end)`` for each network). Their total training FLOPs are one RigL run's at
``train.steps`` but for the dense-gradient passes of the updates (each run updates every ``rigl.delta_t`` steps
until its own T_end, ``rigl.end`` of its steps).

The run with the best validation accuracy at its early-stopping step is the reported network (its mask at that
step; its learning rate goes with the ticket, so the final comparison trains it at that rate); the record and
``summary.json["rigl_tuned"]["runs"]`` list every run's lr, alpha, validation and test accuracy.

Sources: Evci et al. 2020, arXiv:1911.11134 (RigL); random search for hyperparameters: Bergstra & Bengio 2012.
"""

from __future__ import annotations

from typing import Any

import torch

from evoticket.core.errors import ConfigError
from evoticket.core.seeds import derive_seed
from evoticket.genome import Ticket
from evoticket.methods.base import Method
from evoticket.methods.onerun import OneRun
from evoticket.methods.rigl import RigL
from evoticket.operators import draw_genes
from evoticket.resolve import Resolved
from evoticket.training import Callback, EarlyStopping, MaskUpdate, TrainState
from evoticket.training.dynamic import DropAndGrow, rigl_fraction


def draw_settings(config: Any) -> list[dict[str, float]]:
    """Each run's ``{"lr": ..., "alpha": ...}``: lr log-uniform in ``rigl_tuned.lr_range``, alpha uniform in
    ``rigl_tuned.alpha_range``, drawn in turn (lr, then alpha, run by run) from one generator seeded from
    ``campaign.seed``.

    Returns:
        ``rigl_tuned.runs`` dicts, the learning rate (> 0) and alpha (in (0, 1)) of each run.
    """
    t = config.rigl_tuned
    gen = torch.Generator().manual_seed(derive_seed(config.campaign.seed, "rigl_tuned"))
    return [draw_genes(("lr", "alpha"), gen, lr_range=t.lr_range, alpha_range=t.alpha_range) for _ in range(t.runs)]


class RigLTuned(RigL):
    """``rigl_tuned``: N RigL runs of drawn learning rate and alpha sharing one run's compute; the best by validation.

    Settings: ``[rigl_tuned]`` (runs, lr_range, alpha_range), ``[rigl]`` (grow, delta_t, end) and ``[train]``.
    Evci et al. 2020, arXiv:1911.11134.
    """

    name = section = "rigl_tuned"
    sections = ("train", "rigl", "rigl_tuned")
    baseline = True
    citation = "Evci et al. 2020, arXiv:1911.11134 (tuned by random search at equal compute)"

    def members(self, run: OneRun) -> list[Ticket]:
        """N copies of the start ticket, each carrying its run's ``lr`` and ``alpha`` (:func:`draw_settings`)."""
        s = run.start
        return [Ticket(s.theta0, s.masks, s.init_scheme, s.init_std, genes=g) for g in draw_settings(run.config)]

    def companions(self, run: OneRun) -> list[Ticket]:
        """None: the runs themselves are the comparison (no static control)."""
        return []

    def companion_results(self, run: OneRun, state: TrainState, stopping: EarlyStopping) -> dict[str, Any]:
        """None."""
        return {}

    def run_flops(self, resolved: Resolved, kept: dict[str, int], steps: int) -> int:
        """N RigL runs of ``steps`` steps each (:meth:`evoticket.methods.rigl.RigL.run_flops` times N)."""
        return resolved.config.rigl_tuned.runs * super().run_flops(resolved, kept, steps)

    def planned_steps(self, resolved: Resolved, kept: dict[str, int]) -> int:
        """Each run's steps: ``train.steps // rigl_tuned.runs``; with ``budget.train_flops`` the most steps T such that
        N runs of T steps fit it.

        Raises:
            BudgetError: naming ``budget.train_flops`` when it does not pay for N runs of two steps.
        """
        c = resolved.config
        if not c.budget.train_flops:
            return c.train.steps // c.rigl_tuned.runs
        return super().planned_steps(resolved, kept)

    def check(self, resolved: Resolved) -> None:
        """Each run trains at least two steps and updates its mask at least once; ``rigl.alpha`` is not set (alpha is
        drawn); a budget pays for N runs of two steps.

        Raises:
            ConfigError: naming ``train.steps``, ``rigl.delta_t`` or ``rigl.alpha``.
            BudgetError: naming ``budget.train_flops``.
        """
        c = resolved.config
        runs = c.rigl_tuned.runs
        if c.rigl.alpha != type(c.rigl)().alpha:
            raise ConfigError(
                f"rigl.alpha: method 'rigl_tuned' draws each run's alpha from rigl_tuned.alpha_range "
                f"({list(c.rigl_tuned.alpha_range)}); remove rigl.alpha = {c.rigl.alpha}, or set "
                f"rigl_tuned.alpha_range = [{c.rigl.alpha}, {c.rigl.alpha}]"
            )
        if not c.budget.train_flops and c.train.steps // runs < 2:
            raise ConfigError(
                f"train.steps: method 'rigl_tuned' gives each of its {runs} runs train.steps // {runs} steps; "
                f"must be >= {2 * runs} (two steps a run), got {c.train.steps}"
            )
        super().check(resolved)
        steps = self.planned_steps(resolved, self.start_kept(resolved))
        end = round(c.rigl.end * steps)
        if c.rigl.delta_t >= end:
            raise ConfigError(
                f"rigl.delta_t: each of rigl_tuned's {runs} runs trains {steps} steps and changes its mask until step "
                f"{end} (rigl.end = {c.rigl.end}); must be < {end} for at least one drop-and-grow update, "
                f"got {c.rigl.delta_t}"
            )

    def callbacks(self, run: OneRun, population: int) -> list[Callback]:
        """Drop and grow every network every ``rigl.delta_t`` steps until its T_end, each at its own alpha."""
        c = run.config
        end = round(c.rigl.end * run.steps)
        alphas = [float(m.genes["alpha"]) for m in run.members]

        def fraction(step: int) -> torch.Tensor:
            return torch.tensor([rigl_fraction(step, a, end) for a in alphas], dtype=torch.float64)  # (N,)

        update = DropAndGrow(c.rigl.grow, fraction, updated=None, seed=derive_seed(c.campaign.seed, "rigl-grow"))
        return [MaskUpdate(update, every=c.rigl.delta_t)]

    def subtitle(self, config: Any, steps: int | None = None) -> str:
        """E.g. "RigL tuned: 8 runs of 187 steps, lr and alpha drawn" (SET with random growth).

        Args:
            config: the run's configuration.
            steps: each run's steps (a finished run's); default ``train.steps // rigl_tuned.runs``, or under
                ``budget.train_flops`` the share of the steps the budget pays for.
        """
        name = "RigL" if config.rigl.grow == "gradient" else "SET"
        runs = config.rigl_tuned.runs
        if steps is not None:
            length = f"of {steps:,} steps"
        elif config.budget.train_flops:
            length = f"sharing the steps {config.budget.train_flops / 1e12:.3g} TFLOP of training pay for"
        else:
            length = f"of {config.train.steps // runs:,} steps"
        return f"{name} tuned: {runs} runs {length}, lr and alpha drawn"

    def report(self, config: Any, summary: dict[str, Any] | None = None) -> dict[str, Any]:
        """:meth:`Method.report`, whose subtitle gives each run's steps once the run has trained."""
        out = Method.report(self, config, summary)
        steps = ((summary or {}).get(self.name) or {}).get("steps")
        out["subtitle"] = self.subtitle(config, int(steps) if steps else None)
        return out

    def summary_lines(self, summary: dict[str, Any]) -> list[str]:
        """The runs (lr, alpha, validation and test accuracy each) and the one reported."""
        own = summary.get(self.name) or {}
        if "test_acc" not in own:
            return []
        runs, chosen = own.get("runs") or [], own.get("chosen", 0)
        lines = [
            f"{self.name}: {len(runs)} RigL runs of {own.get('steps', 0):,} steps in one batch, lr and alpha drawn; "
            f"the best by validation, run {chosen}, at its early-stopping step {own['best_step']}: test accuracy "
            f"{own['test_acc']:.4f}, density {own['density_total']:.4f}"
        ]
        for i, r in enumerate(runs):
            mark = " (reported)" if i == chosen else ""
            lines.append(
                f"  run {i}: lr {r['lr']:.3g}, alpha {r['alpha']:.3f}: validation accuracy {r['val_acc']:.4f}, test "
                f"accuracy {r['test_acc']:.4f} at step {r['best_step']}{mark}"
            )
        return lines


__all__ = ["RigLTuned", "draw_settings"]
