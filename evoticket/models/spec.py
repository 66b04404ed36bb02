"""What a network is: its prunable layers, normalisation layers and sizes.

An :class:`Architecture` describes a small classifier by its prunable layers (``Linear`` and
``Conv1d`` weights; biases are never pruned, as in Frankle & Carbin 2019, arXiv:1803.03635) and,
for the BatchNorm variants, its normalisation layers (:class:`NormSpec`; never pruned either).
How it computes is the registry's business (:mod:`evoticket.models.registry`): a batched forward
pass, differentiated by autograd, plus an optional hand-written fast backward.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import torch

from evoticket.models.init import draw_init, init_std

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class LayerSpec:
    """One prunable layer: a ``Linear`` or ``Conv1d`` weight and its bias.

    Attributes:
        name: module name, e.g. ``"fc1"``; parameters are ``name.weight`` and
            ``name.bias``.
        kind: ``"linear"`` or ``"conv1d"``.
        in_features: input features (linear) or input channels (conv1d).
        out_features: output features (linear) or output channels (conv1d).
        kernel_size: conv kernel width; 1 for linear layers.
        stride: conv stride; 1 for linear layers.
        padding: conv zero padding on each side; 0 for linear layers.
        use_bias: whether the layer has a bias; False before a BatchNorm, whose shift makes a
            bias redundant (its gradient is zero, and Adam would turn rounding noise into steps).
    """

    name: str
    kind: str
    in_features: int
    out_features: int
    kernel_size: int = 1
    stride: int = 1
    padding: int = 0
    use_bias: bool = True

    @property
    def weight_shape(self) -> tuple[int, ...]:
        """Shape of the weight: ``(out, in)`` or ``(out, in, kernel)``."""
        if self.kind == "linear":
            return (self.out_features, self.in_features)
        return (self.out_features, self.in_features, self.kernel_size)

    @property
    def fan_in(self) -> int:
        """Inputs feeding one output unit: ``in * kernel``."""
        return self.in_features * self.kernel_size

    @property
    def fan_out(self) -> int:
        """Outputs fed by one input unit: ``out * kernel``."""
        return self.out_features * self.kernel_size

    @property
    def weight(self) -> str:
        """Parameter name of the weight, e.g. ``"fc1.weight"``."""
        return f"{self.name}.weight"

    @property
    def bias(self) -> str:
        """Parameter name of the bias, e.g. ``"fc1.bias"``."""
        return f"{self.name}.bias"


@dataclass(frozen=True)
class NormSpec:
    """A BatchNorm layer after the prunable layer ``after`` (Ioffe & Szegedy 2015, arXiv:1502.03167).

    Its affine parameters ``name.weight`` (gamma, starts at 1) and ``name.bias`` (beta, starts at 0)
    have shape ``(features,)``; its running statistics ``name.running_mean`` and
    ``name.running_var`` are buffers, not parameters.

    Attributes:
        name: module name, e.g. ``"bn1"``.
        features: normalised features (linear) or channels (conv1d).
        after: name of the prunable layer whose output it normalises, e.g. ``"fc1"``.
    """

    name: str
    features: int
    after: str

    @property
    def weight(self) -> str:
        """Parameter name of the scale gamma, e.g. ``"bn1.weight"``."""
        return f"{self.name}.weight"

    @property
    def bias(self) -> str:
        """Parameter name of the shift beta, e.g. ``"bn1.bias"``."""
        return f"{self.name}.bias"

    @property
    def running_mean(self) -> str:
        """Buffer name of the running mean."""
        return f"{self.name}.running_mean"

    @property
    def running_var(self) -> str:
        """Buffer name of the running variance."""
        return f"{self.name}.running_var"


@dataclass(frozen=True)
class Architecture:
    """A registered model with fixed sizes.

    Attributes:
        name: registry name (a key of :data:`evoticket.models.MODELS`).
        input_shape: shape of one input example, e.g. ``(40,)``.
        num_classes: number of output logits.
        hidden: hidden sizes (``mlp``, ``mlp_residual``) or channels (``cnn1d``).
        layers: the prunable layers in forward order.
        norms: the BatchNorm layers, in forward order (empty for models without).
    """

    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    hidden: tuple[int, ...]
    layers: tuple[LayerSpec, ...] = field(default=())
    norms: tuple[NormSpec, ...] = field(default=())

    # ----------------------------------------------------------------- sizes
    @property
    def weight_names(self) -> tuple[str, ...]:
        """Names of the prunable weights, in forward order."""
        return tuple(spec.weight for spec in self.layers)

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Parameter name -> shape: each layer's weight and bias, then its BatchNorm's, in forward order."""
        shapes: dict[str, tuple[int, ...]] = {}
        after = {n.after: n for n in self.norms}
        for spec in self.layers:
            shapes[spec.weight] = spec.weight_shape
            if spec.use_bias:
                shapes[spec.bias] = (spec.out_features,)
            if spec.name in after:
                norm = after[spec.name]
                shapes[norm.weight] = (norm.features,)
                shapes[norm.bias] = (norm.features,)
        return shapes

    @property
    def buffer_shapes(self) -> dict[str, tuple[int, ...]]:
        """Buffer name -> shape: the BatchNorm running statistics (empty without BatchNorm)."""
        shapes: dict[str, tuple[int, ...]] = {}
        for norm in self.norms:
            shapes[norm.running_mean] = (norm.features,)
            shapes[norm.running_var] = (norm.features,)
        return shapes

    @property
    def norm_param_names(self) -> tuple[str, ...]:
        """Names of the BatchNorm affine parameters (gamma and beta of every norm layer)."""
        return tuple(name for norm in self.norms for name in (norm.weight, norm.bias))

    @property
    def output_layer(self) -> LayerSpec:
        """The last prunable layer, the read-out that produces the logits."""
        return self.layers[-1]

    def num_prunable(self) -> int:
        """Number of prunable weights (biases and BatchNorm parameters excluded)."""
        return sum(math.prod(spec.weight_shape) for spec in self.layers)

    def num_params(self) -> int:
        """Number of parameters: weights, biases and BatchNorm affine parameters."""
        return sum(math.prod(s) for s in self.param_shapes.values())

    def to_dict(self) -> dict:
        """JSON-able description; :func:`evoticket.models.architecture_from_dict` inverts it."""
        return asdict(self)

    # ------------------------------------------------------------ initialise
    def init_params(self, scheme: str, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Draw theta0 for every parameter.

        Args:
            scheme: weight initialiser, one of :data:`evoticket.models.INITIALISERS`.
            generator: CPU random generator.

        Returns:
            Parameter name -> float32 CPU tensor, in :attr:`param_shapes` order (weights drawn,
            biases zero, BatchNorm gamma one and beta zero).
        """
        gammas = {n.weight for n in self.norms}
        params: dict[str, torch.Tensor] = {}
        draws = {spec.weight: spec for spec in self.layers}
        for name, shape in self.param_shapes.items():
            if name in draws:
                spec = draws[name]
                params[name] = draw_init(scheme, init_std(spec, scheme), spec.weight_shape, generator)
            elif name in gammas:
                params[name] = torch.ones(shape)
            else:
                params[name] = torch.zeros(shape)
        return params

    def init_buffers(self, population: int = 0, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
        """Fresh BatchNorm running statistics: means 0, variances 1.

        Args:
            population: 0 for one network's ``(features,)`` buffers, P for stacked ``(P, features)``.
            device: where they go.

        Returns:
            Buffer name -> float32 tensor (empty for a model without BatchNorm).
        """
        lead = (population,) if population else ()
        out = {}
        for norm in self.norms:
            out[norm.running_mean] = torch.zeros(*lead, norm.features, device=device)
            out[norm.running_var] = torch.ones(*lead, norm.features, device=device)
        return out

    # --------------------------------------------------------------- forward
    def forward_batched(
        self,
        params: dict[str, torch.Tensor],
        x: torch.Tensor,
        *,
        buffers: dict[str, torch.Tensor] | None = None,
        train: bool = False,
    ) -> torch.Tensor:
        """Logits of P networks on one shared input batch (the registry entry's forward pass).

        Args:
            params: parameter name -> tensor of shape ``(P, *shape)``.
            x: inputs, shape ``(B, *input_shape)``.
            buffers: buffer name -> ``(P, *shape)`` BatchNorm running statistics; ``None`` for a
                model without BatchNorm. With ``train`` they are updated in place.
            train: BatchNorm uses each individual's batch statistics (and updates the running
                ones) when True, the running statistics when False. Models without BatchNorm
                ignore it.

        Returns:
            Logits of shape ``(P, B, num_classes)`` (a transposed view of a contiguous
            ``(P, num_classes, B)`` tensor).
        """
        from evoticket.models.registry import MODELS

        return MODELS[self.name].forward(self, params, x, buffers=buffers, train=train).transpose(1, 2)

    def build_module(self) -> nn.Module:
        """A plain ``nn.Module`` with this architecture's parameter (and buffer) names."""
        from evoticket.models.registry import MODELS

        return MODELS[self.name].module(self)
