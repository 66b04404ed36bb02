"""What fine-tuning learned about a ticket, kept compactly so that variation can use it.

A GA that keeps only the fitness of a fine-tuning throws away what IMP uses: the trained magnitudes.
When an operator asks for them (``mutMagnitudeSwap``), the evaluator returns, per individual and per
layer, the *learned traits*:

* ``magnitudes``: the fine-tuned magnitude ``|w_T|`` of every kept weight, as ``(index, value)``:
  int32 flat positions ``(k,)`` and float16 magnitudes ``(k,)`` (6 bytes per kept weight);
* ``gradients`` (optional): the pruned positions where the dense gradient at the end of fine-tuning is
  largest (RigL's growth criterion, Evci et al. 2020, arXiv:1911.11134), as ``(index, value)`` of at
  most as many positions as the layer keeps, float16 ``|dL/dw|``.

Traits are plain data ``{"magnitudes": {name: (index, value)}, "gradients": {name: (index, value)}}``,
treated as immutable like a ticket's tensors. They travel with the individual to its children (a clone
shares them; a crossover child gets both parents' traits, :func:`merge_learned`) and are kept in the
checkpoint with the ticket, so a resumed campaign varies its individuals exactly as an uninterrupted one.
A position kept by a child but not by the ancestor that was measured has no known magnitude.
"""

from __future__ import annotations

import torch

Learned = dict[str, dict[str, tuple[torch.Tensor, torch.Tensor]]]
"""``{"magnitudes": {weight name: (index int32 (k,), value float16 (k,))}, "gradients": {...}}``."""

LEARNED_KINDS = ("none", "magnitudes", "gradients")
"""What an evaluation returns: nothing, fine-tuned magnitudes, or magnitudes and dense-gradient candidates."""


def compact_learned(
    weights: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor],
    grads: dict[str, torch.Tensor] | None = None,
) -> list[Learned]:
    """The learned traits of P fine-tuned networks, one compact dict per network.

    Args:
        weights: weight name -> ``(P, *shape)`` fine-tuned effective weights (any device).
        masks: weight name -> ``(P, *shape)`` bool masks.
        grads: weight name -> ``(P, *shape)`` dense gradient at the end of fine-tuning, or ``None``.

    Returns:
        P dicts of :data:`Learned` (CPU tensors): each kept weight's ``|w|`` in flat index order, and
        with ``grads`` the pruned positions of largest ``|grad|`` (as many as the layer keeps, at most
        all pruned ones), largest first.
    """
    out: list[Learned] = [{"magnitudes": {}, "gradients": {}} for _ in range(next(iter(masks.values())).shape[0])]
    for name, mask in masks.items():
        flat = mask.reshape(mask.shape[0], -1).cpu()
        magnitude = weights[name].detach().reshape(flat.shape).abs().cpu()
        score = None
        if grads is not None:
            score = grads[name].detach().reshape(flat.shape).abs().cpu().float()
            score = score.masked_fill(flat, -1.0)  # kept positions are never growth candidates
        for p in range(flat.shape[0]):
            kept = flat[p].nonzero().squeeze(1)
            out[p]["magnitudes"][name] = (kept.to(torch.int32), magnitude[p, kept].to(torch.float16))
            if score is not None:
                g = min(kept.numel(), flat.shape[1] - kept.numel())
                value, index = score[p].topk(g, sorted=True)
                out[p]["gradients"][name] = (index.to(torch.int32), value.to(torch.float16))
    return out


def known_magnitudes(learned: Learned | None, name: str, numel: int) -> torch.Tensor:
    """A layer's known fine-tuned magnitudes as a dense float32 ``(numel,)`` tensor, NaN where unknown."""
    out = torch.full((numel,), float("nan"))
    if learned and name in learned.get("magnitudes", {}):
        index, value = learned["magnitudes"][name]
        out[index.long()] = value.float()
    return out


def growth_candidates(learned: Learned | None, name: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    """A layer's dense-gradient growth candidates ``(index int64, |grad| float32)``, largest first, or ``None``."""
    if not learned or name not in learned.get("gradients", {}):
        return None
    index, value = learned["gradients"][name]
    return index.long(), value.float()


def _merge_pairs(
    a: tuple[torch.Tensor, torch.Tensor] | None, b: tuple[torch.Tensor, torch.Tensor] | None, numel: int
) -> tuple[torch.Tensor, torch.Tensor] | None:
    if a is None or b is None:
        return a if b is None else b
    dense = torch.full((numel,), float("nan"))
    for index, value in (b, a):  # a's value wins where both know a position
        dense[index.long()] = value.float()
    index = (~dense.isnan()).nonzero().squeeze(1)
    return index.to(torch.int32), dense[index].to(a[1].dtype)


def merge_learned(a: Learned | None, b: Learned | None, sizes: dict[str, int]) -> Learned | None:
    """The traits a crossover child inherits: every position either parent's traits know.

    Where both know a position, ``a``'s value is kept. Gradient candidates are merged the same way
    and re-sorted, largest first.

    Args:
        a, b: the parents' traits (either may be ``None``).
        sizes: weight name -> the layer's number of weights.
    """
    if a is None or b is None:
        return a if b is None else b
    out: Learned = {"magnitudes": {}, "gradients": {}}
    for kind in ("magnitudes", "gradients"):
        for name in dict.fromkeys([*a.get(kind, {}), *b.get(kind, {})]):
            merged = _merge_pairs(a.get(kind, {}).get(name), b.get(kind, {}).get(name), sizes[name])
            if merged is not None and kind == "gradients":
                order = merged[1].float().argsort(descending=True, stable=True)
                merged = (merged[0][order], merged[1][order])
            if merged is not None:
                out[kind][name] = merged
    return out


def learned_nbytes(learned: Learned | None) -> int:
    """Bytes the traits' tensors take (their compactness: 6 bytes per known position)."""
    if not learned:
        return 0
    return sum(t.numel() * t.element_size() for kind in learned.values() for pair in kind.values() for t in pair)
