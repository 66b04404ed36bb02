"""Network architectures, their initialisers and a population-batched forward pass.

An :class:`Architecture` describes a small classifier by its prunable layers
(``Linear`` and ``Conv1d`` weights; biases are never pruned, as in Frankle &
Carbin 2019, arXiv:1803.03635). It can

* draw initial parameters ``theta0`` with a named initialiser,
* run a *batched* forward pass for P individuals at once, parameters stacked
  along a leading population axis, and
* build a plain :class:`torch.nn.Module` with the same parameter names (used by
  :func:`evoticket.load_ticket` and by the serial reference in the tests).

Registered models (:data:`MODELS`):

* ``mlp``: fully connected ReLU network, hidden sizes configurable, default
  ``[300, 100]`` (LeNet-300-100, LeCun et al. 1998; the LTH paper's network).
* ``mlp_residual``: the MNIST-1D reference MLP, ``in-100-100-10`` with a
  residual middle layer (Greydanus 2020, arXiv:2011.14439).
* ``cnn1d``: the MNIST-1D reference CNN, three ``Conv1d`` layers of 25
  channels (kernel 5, 3, 3; stride 2; padding 1) and a linear read-out.

Initialisers (:data:`INITIALISERS`): ``kaiming_normal`` (He et al. 2015,
arXiv:1502.01852), ``glorot_normal`` (Glorot & Bengio 2010; the LTH paper's) and
``signed_constant`` (Zhou et al. 2019, arXiv:1905.01067; Ramanujan et al. 2020,
arXiv:1911.13299): every weight is ``+-sqrt(2 / fan_in)`` with a random sign.
Biases start at zero under every initialiser.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from evoticket.errors import ConfigError, unknown_name

INITIALISERS = ("kaiming_normal", "glorot_normal", "signed_constant")
"""Names of the weight initialisers; see :func:`init_std`."""


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
    """

    name: str
    kind: str
    in_features: int
    out_features: int
    kernel_size: int = 1
    stride: int = 1
    padding: int = 0

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


@dataclass(frozen=True)
class Architecture:
    """A registered model with fixed sizes.

    Attributes:
        name: registry name (``mlp``, ``mlp_residual`` or ``cnn1d``).
        input_shape: shape of one input example, e.g. ``(40,)``.
        num_classes: number of output logits.
        hidden: hidden sizes (``mlp``, ``mlp_residual``) or channels (``cnn1d``).
        layers: the prunable layers in forward order.
    """

    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    hidden: tuple[int, ...]
    layers: tuple[LayerSpec, ...] = field(default=())

    # ----------------------------------------------------------------- sizes
    @property
    def weight_names(self) -> tuple[str, ...]:
        """Names of the prunable weights, in forward order."""
        return tuple(spec.weight for spec in self.layers)

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Parameter name -> shape, weights and biases, in forward order."""
        shapes: dict[str, tuple[int, ...]] = {}
        for spec in self.layers:
            shapes[spec.weight] = spec.weight_shape
            shapes[spec.bias] = (spec.out_features,)
        return shapes

    def num_prunable(self) -> int:
        """Number of prunable weights (biases excluded)."""
        return sum(math.prod(spec.weight_shape) for spec in self.layers)

    def num_params(self) -> int:
        """Number of parameters, weights and biases."""
        return sum(math.prod(s) for s in self.param_shapes.values())

    def to_dict(self) -> dict:
        """JSON-able description; :func:`architecture_from_dict` inverts it."""
        return asdict(self)

    # ------------------------------------------------------------ initialise
    def init_params(self, scheme: str, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Draw theta0 for every parameter.

        Args:
            scheme: weight initialiser, one of :data:`INITIALISERS`.
            generator: CPU random generator.

        Returns:
            Parameter name -> float32 CPU tensor (weights drawn, biases zero).
        """
        params: dict[str, torch.Tensor] = {}
        for spec in self.layers:
            params[spec.weight] = draw_init(scheme, init_std(spec, scheme), spec.weight_shape, generator)
            params[spec.bias] = torch.zeros(spec.out_features)
        return params

    # --------------------------------------------------------------- forward
    def forward_batched(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Logits of P networks on one shared input batch.

        The first layer is one large matmul (or convolution) over the whole
        population; later layers are batched matmuls (or grouped convolutions).
        Hidden activations are kept feature-major, ``(P, features, B)``, so every
        matmul reads and writes contiguous blocks.

        Args:
            params: parameter name -> tensor of shape ``(P, *shape)``.
            x: inputs, shape ``(B, *input_shape)``.

        Returns:
            Logits of shape ``(P, B, num_classes)`` (a transposed view of a
            contiguous ``(P, num_classes, B)`` tensor).
        """
        if self.name == "cnn1d":
            return _cnn1d_batched(self, params, x).transpose(1, 2)
        return _mlp_batched(self, params, x).transpose(1, 2)

    def build_module(self) -> nn.Module:
        """A plain ``nn.Module`` with this architecture's parameter names."""
        return _MODULES[self.name](self)


# ---------------------------------------------------------------------------
# batched forward passes


def _linear_first(w: torch.Tensor, b: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Shared input ``(B, in)`` through P linear layers ``(P, out, in)``.

    One ``(P*out, in) x (in, B)`` matmul with the bias fused in.

    Returns:
        Pre-activations ``(P, out, B)``, contiguous.
    """
    p, out, inp = w.shape
    h = torch.addmm(b.reshape(p * out, 1), w.reshape(p * out, inp), x.T)  # (P*out, B)
    return h.view(p, out, x.shape[0])


def _linear_next(w: torch.Tensor, b: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Per-individual inputs ``(P, in, B)`` through P linear layers ``(P, out, in)``.

    Returns:
        Pre-activations ``(P, out, B)``.
    """
    return torch.baddbmm(b.unsqueeze(2), w, h)  # (P, out, B)


def _mlp_batched(arch: Architecture, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Feature-major logits ``(P, num_classes, B)`` of P stacked ``mlp``/``mlp_residual`` networks."""
    x = x.reshape(x.shape[0], -1)
    first, *rest = arch.layers
    h = _linear_first(params[first.weight], params[first.bias], x)
    # in-place ReLU is safe under autograd: matmuls save their inputs, not their outputs
    if arch.name == "mlp_residual":
        h = h.relu_()
        mid, last = rest
        h = h + _linear_next(params[mid.weight], params[mid.bias], h).relu_()
        return _linear_next(params[last.weight], params[last.bias], h)
    for spec in rest:
        h = _linear_next(params[spec.weight], params[spec.bias], h.relu_())
    return h


def _cnn1d_batched(arch: Architecture, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Feature-major logits ``(P, num_classes, B)`` of P stacked ``cnn1d`` networks.

    The convolutions run as ``conv2d`` over height-1 images kept in
    channels-last memory (``(B, 1, L, P*channels)``): the first over the whole
    population (shared input), the others grouped per individual (groups = P).
    oneDNN runs these grouped convolutions several times faster channels-last
    than in ``conv1d``'s channels-first layout.
    """
    batch = x.shape[0]
    convs, last = arch.layers[:-1], arch.layers[-1]
    p = params[convs[0].weight].shape[0]
    h = x.reshape(batch, 1, 1, -1)  # (B, 1, 1, L)
    for i, spec in enumerate(convs):
        w = params[spec.weight].reshape(p * spec.out_features, spec.in_features, 1, spec.kernel_size)
        h = F.conv2d(
            h,
            w.contiguous(memory_format=torch.channels_last),
            params[spec.bias].reshape(-1),
            stride=(1, spec.stride),
            padding=(0, spec.padding),
            groups=1 if i == 0 else p,  # first layer: shared input
        )
        h = h.contiguous(memory_format=torch.channels_last).relu_()  # (B, P*out, 1, L')
    h = h.squeeze(2).unflatten(1, (p, -1)).permute(1, 2, 3, 0)  # (P, out, L', B)
    h = h.reshape(p, -1, batch)  # (P, out * L', B), channel-major like nn.Module's flatten
    return _linear_next(params[last.weight], params[last.bias], h)


# ---------------------------------------------------------------------------
# plain modules with the same parameter names


class MLP(nn.Module):
    """Fully connected ReLU classifier (``mlp``); layers ``fc1 .. fcN``."""

    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.names = [spec.name for spec in arch.layers]
        self.residual = arch.name == "mlp_residual"
        for spec in arch.layers:
            self.add_module(spec.name, nn.Linear(spec.in_features, spec.out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, classes)`` of inputs ``(B, *input_shape)``."""
        h = x.reshape(x.shape[0], -1)
        layers = [getattr(self, n) for n in self.names]
        if self.residual:
            h = layers[0](h).relu()
            h = h + layers[1](h).relu()
            return layers[2](h)
        for layer in layers[:-1]:
            h = layer(h).relu()
        return layers[-1](h)


class CNN1D(nn.Module):
    """The MNIST-1D reference CNN (``cnn1d``); layers ``conv1..conv3``, ``fc``."""

    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.names = [spec.name for spec in arch.layers]
        for spec in arch.layers:
            if spec.kind == "conv1d":
                module: nn.Module = nn.Conv1d(
                    spec.in_features,
                    spec.out_features,
                    spec.kernel_size,
                    stride=spec.stride,
                    padding=spec.padding,
                )
            else:
                module = nn.Linear(spec.in_features, spec.out_features)
            self.add_module(spec.name, module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, classes)`` of inputs ``(B, *input_shape)``."""
        h = x.reshape(x.shape[0], 1, -1)
        layers = [getattr(self, n) for n in self.names]
        for conv in layers[:-1]:
            h = conv(h).relu()
        return layers[-1](h.flatten(1))


_MODULES = {"mlp": MLP, "mlp_residual": MLP, "cnn1d": CNN1D}


# ---------------------------------------------------------------------------
# registry


def _features(input_shape: Sequence[int]) -> int:
    return math.prod(input_shape)


def build_mlp(input_shape: Sequence[int], num_classes: int, hidden: Sequence[int] = (300, 100)) -> Architecture:
    """``mlp``: ``in - hidden[0] - ... - num_classes``, ReLU; LeNet-300-100 by default.

    Raises:
        ConfigError: if ``hidden`` is empty or holds a size < 1.
    """
    hidden = tuple(int(h) for h in hidden)
    if not hidden or min(hidden) < 1:
        raise ConfigError(f"model.hidden: need one or more sizes >= 1 for 'mlp', got {list(hidden)}")
    sizes = (_features(input_shape), *hidden, num_classes)
    layers = tuple(LayerSpec(f"fc{i + 1}", "linear", sizes[i], sizes[i + 1]) for i in range(len(sizes) - 1))
    return Architecture("mlp", tuple(input_shape), num_classes, hidden, layers)


def build_mlp_residual(input_shape: Sequence[int], num_classes: int, hidden: Sequence[int] = (100,)) -> Architecture:
    """``mlp_residual``: ``in - h - h - num_classes`` with ``h = h + relu(fc2 h)``.

    Raises:
        ConfigError: if ``hidden`` is not one size >= 1.
    """
    hidden = tuple(int(h) for h in hidden)
    if len(hidden) != 1 or hidden[0] < 1:
        raise ConfigError(f"model.hidden: 'mlp_residual' takes one size >= 1, e.g. [100], got {list(hidden)}")
    h = hidden[0]
    layers = (
        LayerSpec("fc1", "linear", _features(input_shape), h),
        LayerSpec("fc2", "linear", h, h),
        LayerSpec("fc3", "linear", h, num_classes),
    )
    return Architecture("mlp_residual", tuple(input_shape), num_classes, hidden, layers)


def build_cnn1d(input_shape: Sequence[int], num_classes: int, hidden: Sequence[int] = (25,)) -> Architecture:
    """``cnn1d``: three Conv1d layers of ``hidden[0]`` channels and a linear read-out.

    The input is read as one channel of length ``prod(input_shape)``.

    Raises:
        ConfigError: if ``hidden`` is not one channel count >= 1, or the input
            is too short for three stride-2 convolutions.
    """
    hidden = tuple(int(h) for h in hidden)
    if len(hidden) != 1 or hidden[0] < 1:
        raise ConfigError(f"model.hidden: 'cnn1d' takes one channel count >= 1, e.g. [25], got {list(hidden)}")
    c = hidden[0]
    length = _features(input_shape)
    layers = []
    in_ch = 1
    for i, k in enumerate((5, 3, 3)):
        layers.append(LayerSpec(f"conv{i + 1}", "conv1d", in_ch, c, kernel_size=k, stride=2, padding=1))
        length = (length + 2 - k) // 2 + 1
        in_ch = c
    if length < 1:
        raise ConfigError(f"model.name: 'cnn1d' needs inputs of length >= 5, got {input_shape}")
    layers.append(LayerSpec("fc", "linear", c * length, num_classes))
    return Architecture("cnn1d", tuple(input_shape), num_classes, hidden, tuple(layers))


MODELS = {"mlp": build_mlp, "mlp_residual": build_mlp_residual, "cnn1d": build_cnn1d}
"""Model name -> builder ``(input_shape, num_classes, hidden) -> Architecture``."""

DEFAULT_HIDDEN = {"mlp": (300, 100), "mlp_residual": (100,), "cnn1d": (25,)}
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
    return MODELS[name](tuple(input_shape), int(num_classes), tuple(hidden or DEFAULT_HIDDEN[name]))


def architecture_from_dict(d: dict) -> Architecture:
    """Rebuild an :class:`Architecture` from :meth:`Architecture.to_dict`."""
    return build_architecture(d["name"], d["input_shape"], d["num_classes"], d["hidden"])
