"""BatchNorm for P stacked networks: batch statistics per individual, running statistics for evaluation.

Ioffe & Szegedy 2015, arXiv:1502.03167; the BatchNorm-only training it enables: Frankle et al. 2020,
arXiv:2003.00152. Matches ``torch.nn.BatchNorm1d`` (``eps = 1e-5``, ``momentum = 0.1``, biased batch
variance for normalising, unbiased for the running variance).
"""

from __future__ import annotations

import torch

from evoticket.models.spec import NormSpec

EPS = 1e-5
"""Added to the variance before the square root, as ``torch.nn.BatchNorm1d``."""

MOMENTUM = 0.1
"""Weight of the new batch statistic in the running statistics, as ``torch.nn.BatchNorm1d``."""


def batch_norm_batched(
    h: torch.Tensor,
    norm: NormSpec,
    params: dict[str, torch.Tensor],
    buffers: dict[str, torch.Tensor] | None,
    train: bool,
    dims: tuple[int, ...],
) -> torch.Tensor:
    """Normalise P individuals' activations, each with its own statistics.

    Args:
        h: activations whose reduced dimensions ``dims`` leave ``(P, features)`` in order, e.g.
            ``(P, features, B)`` with ``dims = (2,)``.
        norm: the BatchNorm layer.
        params: holds ``(P, features)`` ``norm.weight`` (gamma) and ``norm.bias`` (beta).
        buffers: holds ``(P, features)`` running statistics; updated in place when ``train``.
            ``None`` with ``train`` uses batch statistics and keeps none.
        train: batch statistics (True) or running statistics (False).
        dims: the dimensions reduced over (examples, and length for convolutions).

    Returns:
        A tensor of ``h``'s shape.

    Raises:
        ValueError: in evaluation mode without running statistics.
    """
    shape = [h.shape[0], h.shape[1]] + [1] * (h.dim() - 2)
    if train:
        var, mean = torch.var_mean(h, dim=dims, correction=0)  # (P, features) each
        if buffers is not None:
            with torch.no_grad():
                n = h.numel() // (h.shape[0] * h.shape[1])
                unbiased = var.detach() * (n / max(n - 1, 1))
                buffers[norm.running_mean].mul_(1 - MOMENTUM).add_(mean.detach(), alpha=MOMENTUM)
                buffers[norm.running_var].mul_(1 - MOMENTUM).add_(unbiased, alpha=MOMENTUM)
    else:
        if buffers is None:
            raise ValueError(f"BatchNorm {norm.name!r}: evaluation needs running statistics (buffers)")
        mean, var = buffers[norm.running_mean], buffers[norm.running_var]
    scale = params[norm.weight] * torch.rsqrt(var + EPS)  # (P, features)
    shift = params[norm.bias] - mean * scale
    return h * scale.view(shape) + shift.view(shape)
