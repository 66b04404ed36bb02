"""What a network is: its prunable layers, normalisation layers and sizes.

An :class:`Architecture` describes a classifier by its prunable layers (``Linear``, ``Conv1d`` and
``Conv2d`` weights; biases are never pruned, as in Frankle & Carbin 2019, arXiv:1803.03635) and its
normalisation layers (:class:`NormSpec`; never pruned either). How it computes is the registry's
business (:mod:`evoticket.models.registry`): the built-in models have a hand-batched forward pass
(plus an optional hand-written backward); any other ``nn.Module`` (a *generic* architecture,
:mod:`evoticket.models.generic`) runs through ``torch.func``. A generic architecture is plain data
(names, shapes), so a run's files can be read, plotted and exported without the module's code.
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
    """One prunable layer: a ``Linear``, ``Conv1d`` or ``Conv2d`` weight and its bias.

    Attributes:
        name: module name, e.g. ``"fc1"`` or ``"features.0"``; parameters are ``name.weight`` and
            ``name.bias``.
        kind: ``"linear"``, ``"conv1d"`` or ``"conv2d"``.
        in_features: input features (linear) or input channels (convolutions).
        out_features: output features (linear) or output channels (convolutions).
        kernel_size: the built-in ``cnn1d``'s kernel width; 1 otherwise (a generic layer's
            kernel is in ``shape``).
        stride: the built-in ``cnn1d``'s stride; 1 otherwise.
        padding: the built-in ``cnn1d``'s zero padding on each side; 0 otherwise.
        use_bias: whether the layer has a bias; False before a BatchNorm, whose shift makes a
            bias redundant (its gradient is zero, and Adam would turn rounding noise into steps).
        shape: the weight's shape where it is given (generic layers: ``(out, in / groups, *kernel)``);
            empty for the built-in layers, whose shape follows from the sizes above.
    """

    name: str
    kind: str
    in_features: int
    out_features: int
    kernel_size: int = 1
    stride: int = 1
    padding: int = 0
    use_bias: bool = True
    shape: tuple[int, ...] = ()

    @property
    def weight_shape(self) -> tuple[int, ...]:
        """Shape of the weight: ``(out, in)``, ``(out, in, kernel)`` or ``(out, in, kh, kw)``."""
        if self.shape:
            return tuple(self.shape)
        if self.kind == "linear":
            return (self.out_features, self.in_features)
        return (self.out_features, self.in_features, self.kernel_size)

    @property
    def fan_in(self) -> int:
        """Inputs feeding one output unit: ``in * prod(kernel)`` (PyTorch's ``fan_in``)."""
        return math.prod(self.weight_shape[1:])

    @property
    def fan_out(self) -> int:
        """Outputs fed by one input unit: ``out * prod(kernel)`` (PyTorch's ``fan_out``)."""
        shape = self.weight_shape
        return shape[0] * math.prod(shape[2:])

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
    """A network with fixed sizes: a registered model, or any ``nn.Module`` (``generic``).

    Attributes:
        name: ``model.name``: a key of :data:`evoticket.models.MODELS`, an entry point of the
            ``evoticket.models`` group, or ``"package.module:factory"``.
        input_shape: shape of one input example, e.g. ``(40,)`` or ``(3, 32, 32)``.
        num_classes: number of output logits.
        hidden: hidden sizes (``mlp``, ``mlp_residual``) or channels (``cnn1d``); empty for a
            model that takes no sizes.
        layers: the prunable layers in forward order.
        norms: the normalisation layers with affine parameters, in forward order (empty for
            models without).
        generic: True when the network runs as an ``nn.Module`` through ``torch.func``
            (:mod:`evoticket.models.generic`) rather than a built-in batched forward pass.
        factory: where a later process imports the module's factory from
            (``"package.module:qualname"``), when ``name`` alone may not find it (a model
            registered in-process); empty otherwise.
        prune: ``ticket.prune``: parameter names or patterns narrowing the prunable weights;
            empty prunes every ``Linear``/``Conv1d``/``Conv2d`` weight.
        param_list: a generic network's parameters ``(name, shape)`` in ``named_parameters()``
            order (empty for the built-in models, whose parameters follow from ``layers``).
        buffer_list: a generic network's buffers ``(name, shape, dtype)``, e.g.
            ``("bn1.running_mean", (64,), "float32")``.
        output: a generic network's read-out: the last ``Linear``/``Conv`` layer its forward pass calls, pruned
            or not (empty: the last prunable layer).
    """

    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    hidden: tuple[int, ...]
    layers: tuple[LayerSpec, ...] = field(default=())
    norms: tuple[NormSpec, ...] = field(default=())
    generic: bool = False
    factory: str = ""
    prune: tuple[str, ...] = ()
    param_list: tuple[tuple[str, tuple[int, ...]], ...] = ()
    buffer_list: tuple[tuple[str, tuple[int, ...], str], ...] = ()
    output: str = ""

    # ----------------------------------------------------------------- sizes
    @property
    def weight_names(self) -> tuple[str, ...]:
        """Names of the prunable weights, in forward order."""
        return tuple(spec.weight for spec in self.layers)

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Parameter name -> shape: each layer's weight and bias, then its BatchNorm's, in forward order
        (a generic network: every parameter, in ``named_parameters()`` order)."""
        if self.generic:
            return {name: tuple(shape) for name, shape in self.param_list}
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
        """Buffer name -> shape: the BatchNorm running statistics (empty without BatchNorm; a generic
        network: every buffer, e.g. ``num_batches_tracked`` too)."""
        if self.generic:
            return {name: tuple(shape) for name, shape, _ in self.buffer_list}
        shapes: dict[str, tuple[int, ...]] = {}
        for norm in self.norms:
            shapes[norm.running_mean] = (norm.features,)
            shapes[norm.running_var] = (norm.features,)
        return shapes

    @property
    def norm_param_names(self) -> tuple[str, ...]:
        """Names of the normalisation layers' affine parameters (gamma and beta of every norm layer)."""
        names = tuple(name for norm in self.norms for name in (norm.weight, norm.bias))
        shapes = self.param_shapes
        return tuple(name for name in names if name in shapes)

    @property
    def output_layer(self) -> LayerSpec:
        """The last prunable layer (the read-out that produces the logits, unless ``ticket.prune`` left it dense)."""
        return self.layers[-1]

    @property
    def output_params(self) -> tuple[str, ...]:
        """The read-out's weight and bias (the ``output`` trainable scope), pruned or not."""
        name = self.output or self.output_layer.name
        shapes = self.param_shapes
        return tuple(p for p in (f"{name}.weight", f"{name}.bias") if p in shapes)

    @property
    def output_weight(self) -> str:
        """The read-out's weight name (pruned at ``imp.output_rate``, when it is pruned)."""
        return f"{self.output or self.output_layer.name}.weight"

    def num_prunable(self) -> int:
        """Number of prunable weights (biases and BatchNorm parameters excluded)."""
        return sum(math.prod(spec.weight_shape) for spec in self.layers)

    def num_params(self) -> int:
        """Number of parameters: weights, biases, normalisation and any other parameters."""
        return sum(math.prod(s) for s in self.param_shapes.values())

    def to_dict(self) -> dict:
        """JSON-able description; :func:`evoticket.models.architecture_from_dict` inverts it."""
        d = asdict(self)
        if not self.generic:  # as earlier evoticket wrote it: a built-in is rebuilt from its sizes
            for key in ("generic", "factory", "prune", "param_list", "buffer_list", "output"):
                del d[key]
            for layer in d["layers"]:
                del layer["shape"]
        return d

    # ------------------------------------------------------------ initialise
    def init_params(self, scheme: str, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Draw theta0 for every parameter.

        Args:
            scheme: weight initialiser, one of :data:`evoticket.models.INITIALISERS`.
            generator: CPU random generator.

        Returns:
            Parameter name -> float32 CPU tensor, in :attr:`param_shapes` order (weights drawn,
            biases zero, BatchNorm gamma one and beta zero; a generic network's other parameters
            as its factory made them).
        """
        if self.generic:
            from evoticket.models.generic import init_params

            return init_params(self, scheme, generator)
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
        """Fresh buffers: BatchNorm running means 0 and variances 1 (a generic network: its factory's buffers).

        Args:
            population: 0 for one network's ``(*shape)`` buffers, P for stacked ``(P, *shape)``.
            device: where they go.

        Returns:
            Buffer name -> tensor (empty for a model without buffers).
        """
        if self.generic:
            from evoticket.models.generic import init_buffers

            return init_buffers(self, population, device)
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
        """Logits of P networks on one shared input batch, or on one minibatch each.

        Args:
            params: parameter name -> tensor of shape ``(P, *shape)``.
            x: inputs, shape ``(B, *input_shape)`` shared by the P networks, or ``(P, B, *input_shape)``
                (per-network minibatches, ``optimizer.data_order = "individual"``).
            buffers: buffer name -> ``(P, *shape)`` running statistics; ``None`` for a model
                without buffers (a generic network then uses its factory's). With ``train`` they
                are updated in place.
            train: training mode (BatchNorm uses each individual's batch statistics and updates
                the running ones; dropout draws, independently per individual) when True,
                evaluation mode when False.

        Returns:
            Logits of shape ``(P, B, num_classes)`` (for a built-in model, a transposed view of a
            contiguous ``(P, num_classes, B)`` tensor).
        """
        if self.generic:
            from evoticket.models.generic import generic_forward

            return generic_forward(self, params, x, buffers=buffers, train=train)
        from evoticket.models.registry import MODELS

        return MODELS[self.name].forward(self, params, x, buffers=buffers, train=train).transpose(1, 2)

    def build_module(self) -> nn.Module:
        """A plain ``nn.Module`` with this architecture's parameter (and buffer) names: the user's own
        class for a generic network, freshly built by its factory."""
        if self.generic:
            from evoticket.models.generic import build_module

            return build_module(self)
        from evoticket.models.registry import MODELS

        return MODELS[self.name].module(self)
