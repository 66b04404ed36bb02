"""Network architectures: specs, initialisers, a population-batched forward pass and a registry.

An :class:`Architecture` (:mod:`.spec`) can draw theta0 with a named initialiser (:mod:`.init`),
run a batched forward pass for P individuals at once, parameters stacked along a leading
population axis, and build a plain :class:`torch.nn.Module` with the same parameter names.

Registered models (:data:`MODELS`): ``mlp`` (LeNet-300-100 by default), ``mlp_bn``,
``mlp_residual`` (the MNIST-1D reference MLP), ``cnn1d`` (the MNIST-1D reference CNN) and
``cnn1d_bn``. Biases and BatchNorm parameters are never pruned (Frankle & Carbin 2019,
arXiv:1803.03635).
"""

from __future__ import annotations

from evoticket.models.init import INITIALISERS, draw_init, init_std
from evoticket.models.loss import per_individual_loss
from evoticket.models.registry import DEFAULT_HIDDEN, MODELS, ModelEntry, architecture_from_dict, build_architecture
from evoticket.models.spec import Architecture, LayerSpec, NormSpec

__all__ = [
    "DEFAULT_HIDDEN",
    "INITIALISERS",
    "MODELS",
    "Architecture",
    "LayerSpec",
    "ModelEntry",
    "NormSpec",
    "architecture_from_dict",
    "build_architecture",
    "draw_init",
    "init_std",
    "per_individual_loss",
]
