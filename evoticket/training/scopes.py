"""Trainable scopes: which parameters a training run updates.

A scope names the parameters that receive gradients; every other parameter stays at its start
value. Masks apply in every scope: a pruned weight never moves.

* ``kept``: the kept weights, every bias and every BatchNorm affine parameter (ordinary sparse
  training; the GA's fine-tuning and the lottery-ticket controls).
* ``biases``: the biases only.
* ``bn``: the BatchNorm affine parameters only (Frankle et al. 2020, arXiv:2003.00152).
* ``output``: the output layer's kept weights and bias only: random features, a trained read-out
  (an extreme learning machine, Huang et al. 2006; random convolutions in the spirit of ROCKET,
  Dempster et al. 2020, arXiv:1910.13051).
* ``scores``: no weight moves; a score per weight is learnt and each layer keeps its top-k weights
  by score, with a straight-through gradient (edge-popup, Ramanujan et al. 2020, arXiv:1911.13299).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from evoticket.core.errors import ConfigError, unknown_name
from evoticket.models import Architecture


@dataclass(frozen=True)
class Scope:
    """A trainable scope.

    Attributes:
        name: registry name.
        select: ``arch -> names of the parameters that receive gradients``.
        scores: True for edge-popup's per-weight scores (weights frozen, masks learnt).
    """

    name: str
    select: Callable[[Architecture], frozenset[str]]
    scores: bool = False

    def trainable(self, arch: Architecture) -> frozenset[str]:
        """Names of the parameters of ``arch`` that this scope trains."""
        return self.select(arch)


def _biases(arch: Architecture) -> frozenset[str]:
    return frozenset(spec.bias for spec in arch.layers if spec.use_bias)


SCOPES: dict[str, Scope] = {
    "kept": Scope("kept", lambda arch: frozenset(arch.param_shapes)),
    "biases": Scope("biases", _biases),
    "bn": Scope("bn", lambda arch: frozenset(arch.norm_param_names)),
    "output": Scope("output", lambda arch: frozenset(arch.output_params)),
    "scores": Scope("scores", lambda arch: frozenset(), scores=True),
}
"""Scope name -> :class:`Scope`."""


def get_scope(name: str | Scope, arch: Architecture) -> Scope:
    """Look a scope up and check that it trains something in ``arch``.

    Raises:
        ConfigError: for an unknown name, or ``bn`` on a model without BatchNorm.
    """
    scope = name if isinstance(name, Scope) else SCOPES.get(name)
    if scope is None:
        raise ConfigError(unknown_name("trainable scope", name, SCOPES))
    if not scope.scores and not scope.trainable(arch):
        raise ConfigError(f"trainable scope {scope.name!r}: model {arch.name!r} has no such parameters")
    return scope
