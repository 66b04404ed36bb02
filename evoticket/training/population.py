"""Population fine-tuning: the GA's short training of many tickets at once, in blocks that fit memory.

:func:`finetune_tickets` stacks P tickets and runs :func:`evoticket.training.loop.train` on them in
population blocks (:func:`population_block`): validation before and after, optionally the fine-tuned
weights, the weights at a rewinding step and what fine-tuning learned (fine-tuned magnitudes,
dense-gradient growth candidates). Every individual of a call sees the same minibatch sequence (common
random numbers; ``optimizer.data_order = "individual"``: each its own), and the block size is a function of the batch alone (never of where it runs), so a
backend that splits a batch at block boundaries (:mod:`evoticket.evolution.ray_backend`) computes every
block exactly as a local run does.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from evoticket.config import OptimizerConfig
from evoticket.data import Splits
from evoticket.genome import Ticket, compact_learned, stack_tickets
from evoticket.models import Architecture
from evoticket.training.batches import minibatch_indices
from evoticket.training.callbacks import Callback, Evaluate, MaskUpdate, SaveWeights
from evoticket.training.dynamic import DropAndGrow, DynamicSparse
from evoticket.training.evaluate import nonfinite, now
from evoticket.training.loop import train
from evoticket.training.memory import population_chunk
from evoticket.training.optimizer import OptimizerState
from evoticket.training.results import BatchResult
from evoticket.training.scopes import Scope
from evoticket.training.state import TrainState


class _Timed(Evaluate):
    """Validation before and after training, with the wall time of evaluations and of training."""

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.device = device
        self.eval_seconds = 0.0
        self.train_start = 0.0
        self.train_seconds = 0.0

    def __call__(self, state: TrainState) -> None:
        if state.step > 0:
            self.train_seconds = now(self.device) - self.train_start
        start = now(self.device)
        super().__call__(state)
        self.eval_seconds += now(self.device) - start
        self.train_start = now(self.device)


def learned_traits(state: TrainState, kind: str) -> list:
    """What the networks of ``state`` learned: their magnitudes and, for ``"gradients"``, RigL's growth candidates.

    The dense gradient is taken on the minibatch of the last step (or the first one, before any
    step); its cost, one forward and one backward pass with dense weight gradients, is added to
    the meter's training FLOPs.

    Args:
        state: the state after training.
        kind: ``"magnitudes"`` or ``"gradients"``.

    Returns:
        One :data:`evoticket.genome.Learned` per network (:func:`evoticket.genome.compact_learned`).
    """
    grads = None
    if kind == "gradients" and len(state.batches):
        grads = state.dense_gradient(state.batches[max(0, state.step - 1)])
    return compact_learned({k: state.params[k] for k in state.masks}, state.masks, grads)


def finetune_stacked(
    arch: Architecture,
    theta0: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor],
    splits: Splits,
    cfg: OptimizerConfig,
    batches: torch.Tensor,
    *,
    return_weights: bool = False,
    scope: str | Scope = "kept",
    learned: str = "none",
    inherit_step: int = 0,
    lr: torch.Tensor | None = None,
    dynamic: DynamicSparse | None = None,
    alpha: torch.Tensor | None = None,
    grow_seed: int = 0,
    optimizer_state: OptimizerState | None = None,
    return_optimizer_state: bool = False,
) -> BatchResult:
    """Fine-tune P stacked networks together, then evaluate them on validation.

    Args:
        arch, theta0, masks, splits, cfg, batches, scope: as for :func:`evoticket.training.train`.
        return_weights: also return the fine-tuned weights (on the CPU).
        learned: ``"none"``, ``"magnitudes"`` (return each network's fine-tuned magnitudes) or
            ``"gradients"`` (also the dense gradient's largest pruned positions, from one dense
            backward pass on the last step's minibatch, its FLOPs added to the meter, as RigL counts it).
        inherit_step: with ``return_weights``, also return the weights at this step as ``rewound``
            (late rewinding as inheritance, Frankle et al. 2019, arXiv:1903.01611); 0 or
            ``len(batches)``: none (the final weights are the ones to inherit).
        lr: ``(P,)`` each network's learning rate (its ``lr`` gene), overriding ``cfg.lr``.
        dynamic: drop and grow every ``dynamic.delta_t`` steps (RigL or SET, :mod:`evoticket.training.dynamic`);
            the masks reached are returned (``BatchResult.masks``). ``None``: static masks.
        alpha: ``(P,)`` each network's drop-and-grow fraction (its ``alpha`` gene); default ``dynamic.alpha``.
        grow_seed: seed of SET's random growth (the same for every block, so a block computes the same wherever
            it runs).
        optimizer_state: the optimizer state each network continues from (:class:`OptimizerState`); ``None``: fresh.
        return_optimizer_state: also return the optimizer state reached (``BatchResult.optimizer_state``, CPU).

    Returns:
        The :class:`BatchResult` of the P networks, with the wall time of the training steps and of the
        two validation passes.
    """
    timer = _Timed(splits.device)
    callbacks: list[Callback] = [timer]
    rewind = return_weights and 0 < inherit_step < len(batches)
    if rewind:
        callbacks.append(SaveWeights([inherit_step]))
    if dynamic is not None:
        fractions = alpha if alpha is not None else dynamic.alpha
        update = DropAndGrow(dynamic.grow, lambda step: fractions, seed=grow_seed)
        callbacks.append(MaskUpdate(update, every=dynamic.delta_t))
    state = train(
        arch,
        theta0,
        masks,
        splits,
        cfg,
        batches,
        scope=scope,
        callbacks=callbacks,
        lr=lr,
        optimizer_state=optimizer_state,
    )
    reached = state.optimizer_state() if return_optimizer_state else None
    if return_optimizer_state and reached is None:  # nothing carried, nothing trained: a fresh optimizer's state
        reached = OptimizerState(torch.zeros(state.population, dtype=torch.int64), {})
    (before, after) = timer.history[0], timer.history[-1]
    bad = state.bad | nonfinite(state.params, after["val_loss"])
    return BatchResult(
        val_acc_before=before["val_acc"].cpu(),
        val_loss_before=before["val_loss"].cpu(),
        val_acc=after["val_acc"].cpu(),
        val_loss=after["val_loss"].cpu(),
        nonfinite=bad.cpu(),
        meter=state.meter,
        weights={k: v.detach().cpu() for k, v in state.params.items()} if return_weights else None,
        rewound={k: v.cpu() for k, v in callbacks[1].saved[inherit_step].items()} if rewind else None,
        masks={k: m.detach().cpu() for k, m in state.masks.items()} if dynamic is not None else None,
        learned=learned_traits(state, learned) if learned != "none" else None,
        optimizer_state=_to_cpu(reached) if reached is not None else None,
        train_seconds=timer.train_seconds,
        eval_seconds=timer.eval_seconds,
    )


def _to_cpu(state: OptimizerState) -> OptimizerState:
    return OptimizerState(
        state.steps.cpu(), {k: {n: t.detach().cpu() for n, t in per.items()} for k, per in state.tensors.items()}
    )


def population_block(
    tickets: Sequence[Ticket],
    arch: Architecture,
    n_val: int,
    cfg: OptimizerConfig,
    device: str | torch.device,
    *,
    max_memory_mb: float = 2048.0,
    limit: int = 0,
) -> int:
    """How many of ``tickets`` one batched computation holds: :func:`evoticket.training.memory.population_chunk`
    at the highest density among them (``limit``, or the device's block, or fewer to fit ``max_memory_mb``); >= 1.

    A function of the whole batch, the settings and the device type only, so every backend cuts a batch into the
    same blocks (``limit``: ``campaign.population_block``, 0 for the device's default).
    """
    density = max((t.total_density() for t in tickets), default=1.0)
    return population_chunk(arch, cfg, n_val, density, device, max_memory_mb=max_memory_mb, block=limit)


def finetune_tickets(
    tickets: Sequence[Ticket],
    arch: Architecture,
    splits: Splits,
    cfg: OptimizerConfig,
    seed: int,
    *,
    steps: int,
    max_memory_mb: float = 2048.0,
    block: int | None = None,
    return_weights: bool = False,
    learned: str = "none",
    inherit_step: int = 0,
    dynamic: DynamicSparse | None = None,
    optimizer_state: bool = False,
    first: int = 0,
) -> BatchResult:
    """Fine-tune and evaluate P tickets in population blocks that fit the memory budget.

    Each ticket's genes (``ticket.genes``: ``lr``, ``alpha``) override the run's learning rate and drop-and-grow
    fraction for that ticket alone (population-based training, Jaderberg et al. 2017, arXiv:1711.09846). With
    ``optimizer_state``, each ticket's training continues the optimizer state it carries (``ticket.optimizer_state``,
    fresh where it has none), and the state reached comes back (``BatchResult.optimizer_state``).

    Args:
        tickets: the P tickets (CPU tensors).
        arch: their architecture.
        splits: the data; its device is where the work runs.
        cfg: the optimizer's settings (``[optimizer]``).
        seed: seed of the minibatch sequence (shared by all P; under ``optimizer.data_order = "individual"`` of each
            ticket's own, by its place ``first + i`` in the batch).
        steps: optimizer steps, >= 0.
        max_memory_mb: memory budget of one block (MiB; ``campaign.max_memory_mb``).
        block: networks per batched computation; default :func:`population_block` of ``tickets``.
        return_weights: also return the fine-tuned weights.
        learned, inherit_step, dynamic: as for :func:`finetune_stacked`.
        optimizer_state: continue and return each ticket's optimizer state (``finetune.optimizer_state = "inherit"``).
        first: the place of ``tickets[0]`` in the whole batch (a backend that splits a batch passes its shard's start).

    Returns:
        The concatenated :class:`BatchResult`, in the order of ``tickets``, with the blocks' training and
        evaluation times summed.
    """
    device = splits.device
    individuals = range(first, first + len(tickets)) if cfg.data_order == "individual" else None
    batches = minibatch_indices(splits.x_train.shape[0], steps, cfg.batch_size, seed, device, individuals)
    if block is None:
        block = population_block(tickets, arch, splits.x_val.shape[0], cfg, device, max_memory_mb=max_memory_mb)
    parts = []
    for start in range(0, len(tickets), block):
        part = tickets[start : start + block]
        theta0, masks = stack_tickets(part, device)
        parts.append(
            finetune_stacked(
                arch,
                theta0,
                masks,
                splits,
                cfg,
                batches if batches.dim() == 2 else batches[:, start : start + block],
                return_weights=return_weights,
                learned=learned,
                inherit_step=inherit_step,
                lr=gene_values(part, "lr", cfg.lr),
                dynamic=dynamic,
                alpha=gene_values(part, "alpha", dynamic.alpha) if dynamic is not None else None,
                grow_seed=seed,
                optimizer_state=(
                    OptimizerState.stack([getattr(t, "optimizer_state", None) for t in part], theta0)
                    if optimizer_state
                    else None
                ),
                return_optimizer_state=optimizer_state,
            )
        )
    return BatchResult.concat(parts)


def gene_values(tickets: Sequence[Ticket], gene: str, default: float) -> torch.Tensor | None:
    """``(P,)`` the value of ``gene`` of each ticket (``default`` where it has none); ``None`` when none has it."""
    genes = [getattr(t, "genes", None) or {} for t in tickets]
    if not any(gene in g for g in genes):
        return None
    return torch.tensor([float(g.get(gene, default)) for g in genes], dtype=torch.float32)


__all__ = ["finetune_stacked", "finetune_tickets", "gene_values", "learned_traits", "population_block"]
