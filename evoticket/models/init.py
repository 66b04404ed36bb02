"""Weight initialisers of theta0.

``kaiming_normal`` (He et al. 2015, arXiv:1502.01852), ``glorot_normal`` (Glorot & Bengio 2010; the
LTH paper's) and ``signed_constant`` (Zhou et al. 2019, arXiv:1905.01067; Ramanujan et al. 2020,
arXiv:1911.13299): every weight is ``+-sqrt(2 / fan_in)`` with a random sign. Biases start at zero
under every initialiser.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from evoticket.core.errors import ConfigError, unknown_name

if TYPE_CHECKING:
    from evoticket.models.spec import LayerSpec


INITIALISERS = ("kaiming_normal", "glorot_normal", "signed_constant")
"""Names of the weight initialisers; see :func:`init_std`."""


def init_std(spec: LayerSpec, scheme: str) -> float:
    """Scale of a layer's initial weights under an initialiser.

    Args:
        spec: the layer.
        scheme: one of :data:`INITIALISERS`.

    Returns:
        The standard deviation (``kaiming_normal``: ``sqrt(2 / fan_in)``;
        ``glorot_normal``: ``sqrt(2 / (fan_in + fan_out))``) or, for
        ``signed_constant``, the constant's magnitude ``sqrt(2 / fan_in)``.

    Raises:
        ConfigError: if ``scheme`` is unknown.
    """
    if scheme in ("kaiming_normal", "signed_constant"):
        return math.sqrt(2.0 / spec.fan_in)
    if scheme == "glorot_normal":
        return math.sqrt(2.0 / (spec.fan_in + spec.fan_out))
    raise ConfigError(unknown_name("model.init", scheme, INITIALISERS))


def draw_init(scheme: str, std: float, shape: Sequence[int], generator: torch.Generator) -> torch.Tensor:
    """Draw weights from an initialiser.

    Args:
        scheme: one of :data:`INITIALISERS`.
        std: the layer's scale from :func:`init_std`.
        shape: output shape.
        generator: CPU random generator.

    Returns:
        A float32 CPU tensor of ``shape``.

    Raises:
        ConfigError: if ``scheme`` is unknown.
    """
    if scheme in ("kaiming_normal", "glorot_normal"):
        return torch.randn(tuple(shape), generator=generator) * std
    if scheme == "signed_constant":
        signs = torch.randint(0, 2, tuple(shape), generator=generator).float() * 2 - 1
        return signs * std
    raise ConfigError(unknown_name("model.init", scheme, INITIALISERS))
