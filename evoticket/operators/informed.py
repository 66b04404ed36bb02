"""Mutations informed by what fine-tuning learned: the evolutionary side of IMP and RigL.

IMP wins because it chooses the mask with the trained magnitudes; a GA that keeps only a fitness number
throws them away. :func:`mutMagnitudeSwap` uses the learned traits an evaluation leaves on each
individual (:mod:`evoticket.genome.learned`): it prunes the kept weights whose fine-tuned magnitude is
smallest (Frankle & Carbin 2019, arXiv:1803.03635) and grows as many pruned positions, at random as
SET does (Mocanu et al. 2018, arXiv:1707.04780) or where the dense gradient at the end of fine-tuning
was largest, as RigL does (Evci et al. 2020, arXiv:1911.11134).

The operator keeps DEAP's contract (in place, tensors replaced, fitness left alone, ``(individual,)``
returned; randomness only from the keyword ``rng``). An evaluator returns the traits when an operator
of the run needs them (:data:`LEARNED_NEEDED`).
"""

from __future__ import annotations

import torch

from evoticket.genome import Ticket, growth_candidates, known_magnitudes, note_variation
from evoticket.operators.mutation import _check_fraction

GROWTH = ("random", "gradient")
"""Where :func:`mutMagnitudeSwap` grows: at random (SET) or by the dense gradient's magnitude (RigL)."""


def mutMagnitudeSwap(
    individual: Ticket, fraction: float = 0.1, grow: str = "gradient", *, rng: torch.Generator
) -> tuple[Ticket]:
    """Prune the kept weights of smallest fine-tuned magnitude, grow as many pruned ones.

    Per layer with ``k`` kept and ``z`` pruned weights, ``n = min(floor(fraction * k), z)`` kept
    positions whose fine-tuned magnitude (``individual.learned``) is smallest are pruned; a kept
    position whose magnitude is unknown (kept by this individual but not by the ancestor whose
    fine-tuning was measured) is never pruned, so fewer than ``n`` may move. As many positions grow
    among those pruned before the move: uniformly at random (``grow="random"``, SET) or in the order
    of the dense gradient's magnitude at the end of fine-tuning (``grow="gradient"``, RigL; random
    for the rest when fewer candidates are left than needed). An individual with no learned traits
    is mutated as SET does: its ``n`` pruned weights chosen at random.

    Invariant: every layer's kept count is exactly unchanged; theta0 and the learned traits are
    untouched (a grown weight starts from its theta0 value).

    Args:
        individual: the ticket to mutate in place (its mask dict entries are replaced).
        fraction: share of each layer's kept weights moved, in (0, 1].
        grow: ``"random"`` or ``"gradient"``.
        rng: CPU random generator.

    Returns:
        ``(individual,)``.

    Raises:
        ValueError: if ``fraction`` is not in (0, 1] or ``grow`` is not one of :data:`GROWTH`.
    """
    fraction = _check_fraction(fraction)
    if grow not in GROWTH:
        raise ValueError(f"grow: must be one of {', '.join(map(repr, GROWTH))}, got {grow!r}")
    learned = individual.learned
    for name, mask in individual.masks.items():
        flat = mask.reshape(-1)
        kept = flat.nonzero().squeeze(1)  # (k,)
        pruned = (~flat).nonzero().squeeze(1)  # (z,)
        n = min(int(fraction * kept.numel()), pruned.numel())
        if n == 0:
            continue
        if learned is None:
            off = kept[torch.randperm(kept.numel(), generator=rng)[:n]]
        else:
            magnitude = known_magnitudes(learned, name, flat.numel())[kept]  # NaN: unknown
            known = (~magnitude.isnan()).nonzero().squeeze(1)
            order = magnitude[known].argsort(stable=True)
            off = kept[known[order[:n]]]
        if off.numel() == 0:
            continue
        on = _grow(name, learned, flat, pruned, off.numel(), grow, rng)
        new = flat.clone()
        new[off] = False
        new[on] = True
        individual.masks[name] = new.view(mask.shape)
    note_variation(individual, "mutMagnitudeSwap")
    return (individual,)


def _grow(
    name: str, learned, flat: torch.Tensor, pruned: torch.Tensor, n: int, grow: str, rng: torch.Generator
) -> torch.Tensor:
    """``n`` positions among ``pruned`` to grow: gradient candidates first (RigL), then at random."""
    chosen = torch.empty(0, dtype=torch.long)
    candidates = growth_candidates(learned, name) if grow == "gradient" else None
    if candidates is not None:
        index = candidates[0]
        chosen = index[~flat[index]][:n]  # still pruned, largest gradient first
    if chosen.numel() < n:
        free = torch.ones(flat.numel(), dtype=torch.bool)
        free[chosen] = False
        rest = pruned[free[pruned]]
        chosen = torch.cat([chosen, rest[torch.randperm(rest.numel(), generator=rng)[: n - chosen.numel()]]])
    return chosen


LEARNED_NEEDED = {"mutMagnitudeSwap": lambda kwargs: "gradients" if kwargs.get("grow") == "gradient" else "magnitudes"}
"""Operator name -> ``kwargs -> what it needs an evaluation to return`` (a kind of
:data:`evoticket.genome.LEARNED_KINDS`)."""
