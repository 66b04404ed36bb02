"""The model registry: a model is a spec builder plus a batched forward pass (plus an optional fast backward).

Each :class:`ModelEntry` of :data:`MODELS` gives

* ``build(input_shape, num_classes, hidden) -> Architecture``, which checks the sizes;
* ``forward(arch, params, x, *, buffers, train)``: feature-major logits ``(P, C, B)`` of P
  stacked networks, differentiated by autograd;
* ``module(arch)``: a plain ``nn.Module`` with the same parameter names (for
  :func:`evoticket.load_ticket` and serial references);
* ``fast_gradient``: optionally, a class computing the summed loss's gradients by hand
  (``mlp``, ``mlp_residual``); the training engine uses it where the trainable scope allows,
  and a test checks that it equals autograd.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from evoticket.core.errors import ConfigError, unknown_name
from evoticket.models.cnn1d import CNN1D, build_cnn1d, build_cnn1d_bn, cnn1d_forward
from evoticket.models.mlp import MLP, MLPFastGradient, build_mlp, build_mlp_bn, build_mlp_residual, mlp_forward
from evoticket.models.spec import Architecture


@dataclass(frozen=True)
class ModelEntry:
    """One registered model.

    Attributes:
        build: ``(input_shape, num_classes, hidden) -> Architecture``; raises ``ConfigError`` for sizes that do not fit.
        forward: ``(arch, params, x, *, buffers, train) -> (P, num_classes, B)`` logits.
        module: ``arch -> nn.Module`` with the same parameter names.
        default_hidden: hidden sizes (or channels) when ``model.hidden`` is empty.
        fast_gradient: optional hand-written gradient class ``(arch, params, batch, packing)``,
            called as ``grad(x, y) -> (P,) losses`` filling ``grad.grads``.
    """

    build: Callable[..., Architecture]
    forward: Callable[..., Any]
    module: Callable[[Architecture], nn.Module]
    default_hidden: tuple[int, ...]
    fast_gradient: type | None = None


MODELS: dict[str, ModelEntry] = {
    "mlp": ModelEntry(build_mlp, mlp_forward, MLP, (300, 100), MLPFastGradient),
    "mlp_bn": ModelEntry(build_mlp_bn, mlp_forward, MLP, (300, 100)),
    "mlp_residual": ModelEntry(build_mlp_residual, mlp_forward, MLP, (100,), MLPFastGradient),
    "cnn1d": ModelEntry(build_cnn1d, cnn1d_forward, CNN1D, (25,)),
    "cnn1d_bn": ModelEntry(build_cnn1d_bn, cnn1d_forward, CNN1D, (25,)),
}
"""Model name -> :class:`ModelEntry`."""

DEFAULT_HIDDEN = {name: entry.default_hidden for name, entry in MODELS.items()}
"""Each model's hidden sizes when the configuration leaves ``model.hidden`` empty."""


def build_architecture(
    name: str, input_shape: Sequence[int], num_classes: int, hidden: Sequence[int] | None = None
) -> Architecture:
    """Look a model up in :data:`MODELS` and size it for a data set.

    Args:
        name: registry name.
        input_shape: shape of one example, e.g. ``(40,)``.
        num_classes: number of classes.
        hidden: hidden sizes; ``None`` or empty takes the model's default.

    Raises:
        ConfigError: if ``name`` is unknown or ``hidden`` does not fit the model.
    """
    if name not in MODELS:
        raise ConfigError(unknown_name("model.name", name, MODELS))
    entry = MODELS[name]
    return entry.build(tuple(input_shape), int(num_classes), tuple(hidden or entry.default_hidden))


def architecture_from_dict(d: dict) -> Architecture:
    """Rebuild an :class:`Architecture` from :meth:`Architecture.to_dict`."""
    return build_architecture(d["name"], d["input_shape"], d["num_classes"], d["hidden"])
