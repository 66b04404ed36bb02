"""The genome of a lottery ticket: initial weights theta0 plus one mask per layer.

A *ticket* (Frankle & Carbin 2019, arXiv:1803.03635) is a network's initial
weights together with a binary pruning mask per prunable layer; the network it
stands for has effective weights ``theta0 * mask``. :class:`Ticket` holds

* ``theta0``: parameter name -> float32 CPU tensor, for every weight and bias;
* ``masks``: weight name -> bool CPU tensor of the weight's shape (biases are
  never pruned);
* ``init_scheme`` and ``init_std``: the initialiser the weights came from and
  each layer's scale, so operators can redraw or perturb weights relative to it;
* lineage: a unique ``uid``, the ``parents``' uids and the ``operators`` that
  made it from them;
* ``recipe``: how its genome was made from evaluated ancestors by seeded operators, a tree of plain
  dicts (:mod:`evoticket.operators.recipe`), or ``None`` when it cannot be replayed;
* ``learned``: what its last fine-tuning (or an ancestor's) learned, the fine-tuned
  magnitudes and dense-gradient candidates of :mod:`evoticket.genome.learned`, when an
  operator asks for them; ``None`` otherwise. They pass to clones and children.

Tensors are treated as immutable: :meth:`Ticket.clone` shares them (copy on
write) and every operator *replaces* a tensor instead of editing it in place.
Cloning therefore costs a few dict copies, whatever the network's size.

Lineage follows the individual, not the copy: a clone keeps its parent's uid
until an operator varies it; then it gets ``uid = None``, ``parents = (parent
uid,)`` and a fresh list of operators, and receives a new uid when it is
evaluated (:class:`UidCounter`). A clone that is never varied is the same
individual and keeps the uid.

DEAP's ``creator`` classes are made lazily by :func:`ensure_creator`
(:mod:`evoticket.genome.creator`), never at import time, one pair per set of
fitness weights, and tickets pickle without them being made first.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch

from evoticket.genome.creator import FITNESS_WEIGHTS, ensure_creator
from evoticket.genome.learned import Learned, merge_learned


class Ticket:
    """Initial weights and pruning masks of one network, with lineage.

    Args:
        theta0: parameter name -> float32 tensor (weights and biases).
        masks: weight name -> bool tensor of that weight's shape.
        init_scheme: initialiser name (see :data:`evoticket.models.INITIALISERS`).
        init_std: weight name -> the layer's initial scale (> 0).
        uid: unique id; ``None`` until the ticket is first evaluated.
        parents: uids of the tickets it was made from.
        operators: names of the operators that made it, in order applied.
        genes: hyperparameters it carries (population-based training): ``"lr"`` (learning rate, > 0),
            ``"alpha"`` (drop-and-grow fraction, in (0, 1)); empty: the run's settings.

    Attributes:
        optimizer_state: the optimizer state its training reached (``finetune.optimizer_state = "inherit"``,
            Lamarckian mode): ``{"step": int, state name: {parameter name: tensor}}``
            (:meth:`evoticket.training.OptimizerState.network`); its next fine-tuning continues it. ``None``: a fresh
            optimizer.

    Raises:
        ValueError: if a mask has no matching weight or a different shape.
    """

    def __init__(
        self,
        theta0: dict[str, torch.Tensor],
        masks: dict[str, torch.Tensor],
        init_scheme: str,
        init_std: dict[str, float],
        *,
        uid: int | None = None,
        parents: Sequence[int] = (),
        operators: Sequence[str] = (),
        genes: dict[str, float] | None = None,
    ) -> None:
        for name, mask in masks.items():
            if name not in theta0 or tuple(theta0[name].shape) != tuple(mask.shape):
                raise ValueError(f"mask {name!r} has no weight of shape {tuple(mask.shape)} in theta0")
        self.theta0 = dict(theta0)
        self.masks = dict(masks)
        self.init_scheme = init_scheme
        self.init_std = dict(init_std)
        self.uid = uid
        self.parents = tuple(parents)
        self.operators = tuple(operators)
        self.genes: dict[str, float] = dict(genes or {})
        self.optimizer_state: dict[str, Any] | None = None
        self.pending_clone = False
        self.eval_record: dict[str, Any] | None = None
        self.learned: Learned | None = None
        self.recipe: dict[str, Any] | None = None

    # ------------------------------------------------------------- structure
    @property
    def layers(self) -> tuple[str, ...]:
        """Prunable weight names (the mask keys), in forward order."""
        return tuple(self.masks)

    @staticmethod
    def bias_of(weight_name: str) -> str:
        """The bias parameter belonging to a weight: ``fc1.weight -> fc1.bias``."""
        return weight_name.rsplit(".", 1)[0] + ".bias"

    def density(self) -> dict[str, float]:
        """Fraction of weights kept per layer, each in [0, 1]."""
        return {name: int(m.sum()) / m.numel() for name, m in self.masks.items()}

    def total_density(self) -> float:
        """Fraction of all prunable weights kept, in [0, 1]."""
        kept = sum(int(m.sum()) for m in self.masks.values())
        total = sum(m.numel() for m in self.masks.values())
        return kept / total

    def effective_weights(self) -> dict[str, torch.Tensor]:
        """Parameter name -> ``theta0 * mask`` (biases unchanged)."""
        return {name: value * self.masks[name] if name in self.masks else value for name, value in self.theta0.items()}

    # ----------------------------------------------------------------- copies
    def _copy(self, share: bool) -> Ticket:
        new = self.__class__.__new__(self.__class__)
        new.__dict__.update(self.__dict__)
        new.theta0 = {k: v if share else v.clone() for k, v in self.theta0.items()}
        new.masks = {k: v if share else v.clone() for k, v in self.masks.items()}
        new.init_std = dict(self.init_std)
        new.genes = dict(self.genes)
        carried = getattr(self, "optimizer_state", None)
        if carried is not None and not share:
            carried = {k: v if k == "step" else {n: t.clone() for n, t in v.items()} for k, v in carried.items()}
        new.optimizer_state = carried
        new.eval_record = copy.deepcopy(self.eval_record)
        if hasattr(self, "fitness"):
            new.fitness = copy.deepcopy(self.fitness)
        return new

    def clone(self) -> Ticket:
        """A cheap copy for variation: tensors shared, lineage pending.

        The clone keeps this ticket's uid and fitness; the first operator that
        varies it makes it a child of this ticket (see the module docstring).
        """
        new = self._copy(share=True)
        new.pending_clone = True
        return new

    def __deepcopy__(self, memo: dict) -> Ticket:
        """An exact, independent copy (tensors copied), e.g. for a hall of fame."""
        return self._copy(share=False)

    # ------------------------------------------------------------- pickling
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild the ticket, fitness included, as plain data."""
        state = {
            "theta0": self.theta0,
            "masks": self.masks,
            "init_scheme": self.init_scheme,
            "init_std": self.init_std,
            "uid": self.uid,
            "parents": list(self.parents),
            "operators": list(self.operators),
            "pending_clone": self.pending_clone,
            "eval_record": self.eval_record,
            "learned": self.learned,
            "recipe": self.recipe,
            "fitness": None,
        }
        if self.genes:
            state["genes"] = dict(self.genes)
        if getattr(self, "optimizer_state", None) is not None:
            state["optimizer_state"] = self.optimizer_state
        fitness = getattr(self, "fitness", None)
        if fitness is not None and fitness.valid:
            state["fitness"] = list(fitness.values)
        if fitness is not None and tuple(fitness.weights) != FITNESS_WEIGHTS:
            state["fitness_weights"] = list(fitness.weights)
        return state

    def __reduce__(self):
        creator_made = type(self).__module__ == "deap.creator"
        return (_rebuild, (self.state_dict(), creator_made))

    @property
    def fitness_weights(self) -> tuple[float, ...] | None:
        """The DEAP fitness weights of this individual's class; ``None`` for a plain :class:`Ticket`."""
        fitness = getattr(self, "fitness", None)
        return None if fitness is None else tuple(fitness.weights)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(uid={self.uid}, parents={list(self.parents)}, "
            f"density={self.total_density():.4f}, operators={list(self.operators)})"
        )


def ticket_from_state(state: dict[str, Any], cls: type | None = None) -> Ticket:
    """Rebuild a ticket from :meth:`Ticket.state_dict`.

    Args:
        state: the dict written by ``state_dict``.
        cls: class to build; default the DEAP individual class of
            :func:`ensure_creator` for the state's fitness weights (so fitness is restored too).
    """
    cls = cls or ensure_creator(tuple(state.get("fitness_weights") or FITNESS_WEIGHTS))
    ticket = cls(
        state["theta0"],
        state["masks"],
        state["init_scheme"],
        state["init_std"],
        uid=state["uid"],
        parents=state["parents"],
        operators=state["operators"],
        genes=state.get("genes"),
    )
    ticket.pending_clone = state.get("pending_clone", False)
    ticket.eval_record = state.get("eval_record")
    ticket.learned = state.get("learned")
    ticket.recipe = state.get("recipe")
    ticket.optimizer_state = state.get("optimizer_state")
    if state.get("fitness") is not None and hasattr(ticket, "fitness"):
        ticket.fitness.values = tuple(state["fitness"])
    return ticket


def _rebuild(state: dict[str, Any], creator_made: bool) -> Ticket:
    if not creator_made:
        return ticket_from_state(state, Ticket)
    return ticket_from_state(state)


def note_variation(ind: Ticket, operator: str) -> None:
    """Record that ``operator`` varied ``ind`` (called by every operator).

    A ticket that has a uid (an evaluated individual, or a pending clone of
    one) becomes a new individual: ``uid = None``, ``parents = (old uid,)``,
    operators reset. A ticket not yet evaluated keeps its lineage and history.
    The operator's name is then appended to ``ind.operators``, and ``ind.recipe`` becomes ``None`` (the
    variation is not replayable unless a seeded wrapper, :class:`evoticket.operators.recipe.Seeded`, records it).
    Fitness is left alone, as DEAP's operator contract asks.
    """
    if ind.uid is not None:
        ind.parents = (ind.uid,)
        ind.uid = None
        ind.operators = ()
        ind.eval_record = None
    ind.pending_clone = False
    ind.operators = (*ind.operators, operator)
    ind.recipe = None


def note_crossover(ind1: Ticket, ind2: Ticket, operator: str) -> None:
    """Record a crossover: both children get both parents' uids, and each the learned traits of both
    (its own parent's first, :func:`evoticket.genome.learned.merge_learned`)."""
    note_variation(ind1, operator)
    note_variation(ind2, operator)
    parents = tuple(dict.fromkeys(ind1.parents + ind2.parents))
    ind1.parents = ind2.parents = parents
    if ind1.learned is not None or ind2.learned is not None:
        sizes = {name: m.numel() for name, m in ind1.masks.items()}
        ind1.learned, ind2.learned = (
            merge_learned(ind1.learned, ind2.learned, sizes),
            merge_learned(ind2.learned, ind1.learned, sizes),
        )


def same_uid(a: Ticket, b: Ticket) -> bool:
    """Whether two tickets are the same individual (the same uid): a hall of fame's ``similar``.

    DEAP's ``HallOfFame`` holds deep copies, so its default identity test let a surviving parent,
    re-evaluated in a later generation, enter twice.
    """
    return a.uid is not None and a.uid == b.uid


class UidCounter:
    """Hands out unique, increasing individual ids; its state is checkpointed.

    Args:
        start: the first id to hand out (>= 0).
    """

    def __init__(self, start: int = 0) -> None:
        self.next_uid = int(start)

    def __call__(self) -> int:
        """Return a new id."""
        uid = self.next_uid
        self.next_uid += 1
        return uid

    def assign(self, tickets: Sequence[Ticket]) -> None:
        """Give a new id to every ticket whose ``uid`` is ``None``, in order."""
        for ticket in tickets:
            if ticket.uid is None:
                ticket.uid = self()
                ticket.pending_clone = False


def stack_tickets(
    tickets: Sequence[Ticket], device: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Stack the theta0 and masks of P tickets along a new population axis.

    Args:
        tickets: P >= 1 tickets of one architecture.
        device: where the stacked tensors go.

    Returns:
        ``(theta0, masks)``: parameter name -> float32 tensor ``(P, *shape)``,
        and weight name -> bool tensor ``(P, *shape)``.

    Raises:
        ValueError: if ``tickets`` is empty or they do not share one architecture.
    """
    if not tickets:
        raise ValueError("stack_tickets needs at least one ticket")
    first = tickets[0]
    for t in tickets[1:]:
        if (
            t.theta0.keys() != first.theta0.keys()
            or t.masks.keys() != first.masks.keys()
            or any(t.theta0[k].shape != first.theta0[k].shape for k in first.theta0)
        ):
            raise ValueError("tickets do not share one architecture")
    theta0 = {k: torch.stack([t.theta0[k] for t in tickets]).to(device) for k in first.theta0}
    masks = {k: torch.stack([t.masks[k] for t in tickets]).to(device) for k in first.masks}
    return theta0, masks
