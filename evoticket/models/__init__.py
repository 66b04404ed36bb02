"""Network architectures: specs, initialisers, a population-batched forward pass and a registry.

An :class:`Architecture` (:mod:`.spec`) can draw theta0 with a named initialiser (:mod:`.init`),
run a batched forward pass for P individuals at once, parameters stacked along a leading
population axis, and build a plain :class:`torch.nn.Module` with the same parameter names.

Registered models (:data:`MODELS`): ``mlp`` (LeNet-300-100 by default), ``mlp_bn``,
``mlp_residual`` (the MNIST-1D reference MLP), ``cnn1d`` (the MNIST-1D reference CNN) and
``cnn1d_bn``, with hand-batched forward passes; the seed papers' image networks ``lenet5``,
``conv2``, ``conv4``, ``conv6`` and ``resnet20`` (:mod:`.zoo`); and any ``nn.Module`` a factory
builds (:func:`register`, an ``evoticket.models`` entry point, or ``model.name =
"package.module:factory"``), batched with ``torch.func`` (:mod:`.generic`). Biases and
normalisation parameters are never pruned (Frankle & Carbin 2019, arXiv:1803.03635).
"""

from __future__ import annotations

from evoticket.models.generic import PRUNABLE_TYPES, Factory, build_generic
from evoticket.models.init import INITIALISERS, draw_init, init_std
from evoticket.models.loss import per_individual_loss
from evoticket.models.registry import (
    BUILTIN,
    DEFAULT_HIDDEN,
    MODELS,
    ModelEntry,
    architecture_from_dict,
    build_architecture,
    find_factory,
    model_names,
    register,
    unregister,
)
from evoticket.models.spec import Architecture, LayerSpec, NormSpec
from evoticket.models.zoo import LTH_RATES, ZOO

__all__ = [
    "BUILTIN",
    "DEFAULT_HIDDEN",
    "INITIALISERS",
    "LTH_RATES",
    "MODELS",
    "PRUNABLE_TYPES",
    "ZOO",
    "Architecture",
    "Factory",
    "LayerSpec",
    "ModelEntry",
    "NormSpec",
    "architecture_from_dict",
    "build_architecture",
    "build_generic",
    "draw_init",
    "find_factory",
    "init_std",
    "model_names",
    "per_individual_loss",
    "register",
    "unregister",
]
