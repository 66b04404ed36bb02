"""The seed papers' image networks as plain ``nn.Module``s: ``lenet5``, ``conv2``, ``conv4``, ``conv6``, ``resnet20``.

Each factory ``factory(input_shape, num_classes) -> nn.Module`` takes one example's shape
``(C, H, W)`` and returns a module mapping ``(B, C, H, W)`` to logits ``(B, num_classes)``.
The modules use standard layers only (``nn.Conv2d``, ``nn.Linear``, ``nn.BatchNorm2d``,
``nn.MaxPool2d``, ``nn.AdaptiveAvgPool2d``, ``nn.ReLU``), no in-place operations and no
data-dependent control flow, so P copies run together through ``torch.func.functional_call``
under ``torch.func.vmap`` (parameters and buffers stacked along a new dimension 0); the
fully connected input is sized arithmetically from the image size.

Sources:

* ``lenet5``: LeCun, Bottou, Bengio & Haffner 1998, "Gradient-based learning applied to
  document recognition", Proc. IEEE 86(11), Section II.B.
* ``conv2``, ``conv4``, ``conv6``: Frankle & Carbin 2019, arXiv:1803.03635, Figure 2 and
  Appendix H.1 (VGG-like networks for CIFAR-10).
* ``resnet20``: He, Zhang, Ren & Sun 2016, arXiv:1512.03385, Section 4.2 (the CIFAR-10
  ResNet with n = 3), as used by Frankle et al. 2020 (arXiv:1912.05671) and for
  BatchNorm-only training (Frankle, Schwab & Morcos, arXiv:2003.00152, ICLR 2021).

Weights keep PyTorch's default initialisation; the caller draws theta0 (the lottery-ticket
paper used Gaussian Glorot for its networks and He et al. their own normal initialisation).
Weight counts below are those of the ``nn.Conv2d`` and ``nn.Linear`` weights, without biases
and BatchNorm parameters, which is what Frankle & Carbin's Figure 2 counts (it gives
LeNet-300-100 266K weights: 784*300 + 300*100 + 100*10 = 266,200).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from evoticket.core.errors import ConfigError


def _image_shape(name: str, input_shape: Sequence[int], num_classes: int, min_size: int) -> tuple[int, int, int]:
    """Check that ``input_shape`` is an image ``(C, H, W)`` with ``H, W >= min_size``.

    Returns:
        ``(C, H, W)`` as ints.

    Raises:
        ConfigError: (one line, naming ``model.name``) if the shape is not three positive
            sizes with ``H, W >= min_size``, or ``num_classes < 1``.
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or shape[0] < 1 or min(shape[1:]) < min_size:
        raise ConfigError(
            f"model.name: {name!r} needs images (C, H, W) with C >= 1 and H, W >= {min_size}, got input shape {shape} "
            "(digits, mnist and fashion_mnist serve images with data.layout = 'image')"
        )
    if int(num_classes) < 1:
        raise ConfigError(f"model.name: {name!r} needs num_classes >= 1, got {num_classes}")
    c, h, w = shape
    return c, h, w


# ------------------------------------------------------------------------------------------ LeNet-5


def _lenet_paddings(size: int) -> tuple[int, int]:
    """Paddings of LeNet-5's two 5x5 convolutions along one image dimension of ``size`` pixels.

    * ``size >= 32``: none, as in the paper (32 -> 28 -> 14 -> 10 -> 5).
    * ``28 <= size < 32``: 2 on the first convolution only, which gives a 28x28 image the
      paper's 32x32 geometry (28 -> 28 -> 14 -> 10 -> 5; LeCun et al. padded MNIST to 32x32).
    * ``size < 28`` (e.g. digits' 8x8): 2 on both ("same" convolutions), so only the two
      poolings shrink the image (8 -> 4 -> 2); needs ``size >= 4``.
    """
    if size >= 32:
        return 0, 0
    if size >= 28:
        return 2, 0
    return 2, 2


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al. 1998, Proc. IEEE 86(11)) with ReLU and max-pooling.

    ``features``: conv 6@5x5, ReLU, 2x2 max-pool, conv 16@5x5, ReLU, 2x2 max-pool;
    ``classifier``: fc 120, ReLU, fc 84, ReLU, fc ``num_classes``. Parameter names
    ``features.0.weight``, ``features.3.weight``, ``classifier.0.weight``,
    ``classifier.2.weight``, ``classifier.4.weight`` (and biases).

    Departures from the paper: ReLU instead of the scaled tanh; max-pooling instead of the
    trainable average subsampling (and its sigmoid); the second convolution sees all six
    maps (the paper's C3 used a fixed sparse connection table, 60 of 96 pairs); a linear
    output layer instead of the fixed Euclidean RBF units. Paddings follow
    :func:`_lenet_paddings` per image dimension. With these choices the 1x32x32 and 1x28x28
    networks have 61,706 parameters (the paper: 60,000 trainable parameters): +900 for C3's
    full connectivity, -44 without trainable subsampling, +850 for the trained output layer.
    """

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        c, h, w = input_shape
        (ph1, ph2), (pw1, pw2) = _lenet_paddings(h), _lenet_paddings(w)
        self.features = nn.Sequential(
            nn.Conv2d(c, 6, 5, padding=(ph1, pw1)),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5, padding=(ph2, pw2)),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        h2 = ((h + 2 * ph1 - 4) // 2 + 2 * ph2 - 4) // 2
        w2 = ((w + 2 * pw1 - 4) // 2 + 2 * pw2 - 4) // 2
        self.classifier = nn.Sequential(
            nn.Linear(16 * h2 * w2, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)`` of images ``(B, C, H, W)``."""
        return self.classifier(self.features(x).flatten(1))


def lenet5(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """``lenet5``: LeNet-5 (LeCun et al. 1998, Proc. IEEE 86(11)), ReLU, max-pooling; see :class:`LeNet5`.

    Args:
        input_shape: one image's shape ``(C, H, W)``, ``H, W >= 4``; 1x32x32 and 1x28x28
            get the paper's geometry (16 maps of 5x5 before the fully connected layers),
            small images such as digits' 1x8x8 "same" convolutions (16 maps of 2x2).
        num_classes: number of outputs, >= 1.

    Returns:
        The network, mapping ``(B, *input_shape)`` to logits ``(B, num_classes)``.

    Raises:
        ConfigError: if ``input_shape`` is not an image of at least 4x4, or ``num_classes < 1``.
    """
    return LeNet5(_image_shape("lenet5", input_shape, num_classes, 4), int(num_classes))


# ------------------------------------------------------------------------------------ Conv-2/4/6

_CONV_CHANNELS = {"conv2": (64,), "conv4": (64, 128), "conv6": (64, 128, 256)}
"""Channels of each two-convolution module of Frankle & Carbin's Conv-2/4/6 (Figure 2)."""


class ConvNet(nn.Module):
    """Frankle & Carbin's Conv-2/4/6 (arXiv:1803.03635, Figure 2 and Appendix H.1).

    ``features``: per module, two 3x3 convolutions (padding 1) with ReLU and a 2x2
    max-pool; ``classifier``: fc 256, ReLU, fc 256, ReLU, fc ``num_classes``. Parameter
    names ``features.{i}.weight`` (convolutions at 0, 2, 5, 7, 10, 12) and
    ``classifier.{0,2,4}.weight`` (and biases).

    Args:
        input_shape: one image's shape ``(C, H, W)``.
        num_classes: number of outputs.
        channels: output channels of each module, e.g. ``(64, 128)`` for Conv-4.
    """

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, channels: Sequence[int]) -> None:
        super().__init__()
        c, h, w = input_shape
        layers: list[nn.Module] = []
        for out in channels:
            layers += [nn.Conv2d(c, out, 3, padding=1), nn.ReLU(), nn.Conv2d(out, out, 3, padding=1), nn.ReLU()]
            layers.append(nn.MaxPool2d(2))
            c, h, w = out, h // 2, w // 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(c * h * w, 256),
            nn.ReLU(),
            nn.Linear(256, 256),
            nn.ReLU(),
            nn.Linear(256, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)`` of images ``(B, C, H, W)``."""
        return self.classifier(self.features(x).flatten(1))


def _convnet(name: str, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    channels = _CONV_CHANNELS[name]
    shape = _image_shape(name, input_shape, num_classes, 2 ** len(channels))
    return ConvNet(shape, int(num_classes), channels)


def conv2(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """``conv2``: Conv-2 (Frankle & Carbin 2019, arXiv:1803.03635, Figure 2); see :class:`ConvNet`.

    Convolutions 64, 64, pool; fully connected 256, 256, ``num_classes``. On 3x32x32 with
    10 classes: 4,300,992 weights, 38,592 of them in convolutions (Figure 2: 4.3M / 38K).

    Args:
        input_shape: one image's shape ``(C, H, W)``, ``H, W >= 2`` (one pooling).
        num_classes: number of outputs, >= 1.

    Returns:
        The network, mapping ``(B, *input_shape)`` to logits ``(B, num_classes)``.

    Raises:
        ConfigError: if ``input_shape`` is not an image of at least 2x2, or ``num_classes < 1``.
    """
    return _convnet("conv2", input_shape, num_classes)


def conv4(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """``conv4``: Conv-4 (Frankle & Carbin 2019, arXiv:1803.03635, Figure 2); see :class:`ConvNet`.

    Convolutions 64, 64, pool, 128, 128, pool; fully connected 256, 256, ``num_classes``. On
    3x32x32 with 10 classes: 2,425,024 weights, 259,776 of them in convolutions (Figure 2:
    2.4M / 260K).

    Args:
        input_shape: one image's shape ``(C, H, W)``, ``H, W >= 4`` (two poolings).
        num_classes: number of outputs, >= 1.

    Returns:
        The network, mapping ``(B, *input_shape)`` to logits ``(B, num_classes)``.

    Raises:
        ConfigError: if ``input_shape`` is not an image of at least 4x4, or ``num_classes < 1``.
    """
    return _convnet("conv4", input_shape, num_classes)


def conv6(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """``conv6``: Conv-6 (Frankle & Carbin 2019, arXiv:1803.03635, Figure 2); see :class:`ConvNet`.

    Convolutions 64, 64, pool, 128, 128, pool, 256, 256, pool; fully connected 256, 256,
    ``num_classes``. On 3x32x32 with 10 classes: 2,261,184 weights, 1,144,512 of them in
    convolutions. Figure 2 prints 1.7M / 1.1M: the convolutions match, but the total does not
    follow from the architecture the paper describes (Appendix H.1), since the first fully
    connected layer alone, 4x4x256 -> 256, has 1,048,576 weights.

    Args:
        input_shape: one image's shape ``(C, H, W)``, ``H, W >= 8`` (three poolings).
        num_classes: number of outputs, >= 1.

    Returns:
        The network, mapping ``(B, *input_shape)`` to logits ``(B, num_classes)``.

    Raises:
        ConfigError: if ``input_shape`` is not an image of at least 8x8, or ``num_classes < 1``.
    """
    return _convnet("conv6", input_shape, num_classes)


# ------------------------------------------------------------------------------------- ResNet-20


class ShortcutA(nn.Module):
    """He et al.'s option A shortcut (arXiv:1512.03385, Section 3.3): no parameters.

    Subsamples by ``stride`` (takes every ``stride``-th pixel, as a stride-``stride`` 1x1
    identity convolution would) and appends zero channels up to ``out_channels``. Slicing
    and ``F.pad`` only, so it runs under ``vmap``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.extra = out_channels - in_channels
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in, H, W)`` -> ``(B, out, ceil(H / stride), ceil(W / stride))``."""
        h = x[:, :, :: self.stride, :: self.stride]
        return F.pad(h, (0, 0, 0, 0, 0, self.extra))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions (no bias), each followed by BatchNorm; ReLU after the first and after the sum.

    ``conv1 -> bn1 -> ReLU -> conv2 -> bn2``, plus ``shortcut(x)``, then ReLU (He et al. 2016,
    arXiv:1512.03385, Figure 2). ``shortcut`` is the identity, or :class:`ShortcutA` where the
    block changes the channels or the resolution.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        changes = stride != 1 or in_channels != out_channels
        self.shortcut: nn.Module = ShortcutA(in_channels, out_channels, stride) if changes else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in, H, W)`` -> ``(B, out, ceil(H / stride), ceil(W / stride))``."""
        h = self.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return self.relu(h + self.shortcut(x))


class ResNet20(nn.Module):
    """The CIFAR-10 ResNet with n = 3, ResNet-20 (He et al. 2016, arXiv:1512.03385, Section 4.2).

    ``conv1`` (3x3, 16 channels) -> ``bn1`` -> ReLU; ``layer1``, ``layer2``, ``layer3``: three
    :class:`BasicBlock` each, 16, 32 and 64 channels, the first blocks of ``layer2`` and
    ``layer3`` with stride 2 and an option A shortcut; ``avgpool`` (global average) and
    ``fc``. Convolutions have no bias (BatchNorm follows each). On 3x32x32 the stages give
    ``(16, 32, 32)``, ``(32, 16, 16)`` and ``(64, 8, 8)``; with 10 classes it has 269,722
    parameters (the paper: 0.27M), 267,696 of them convolution weights (Frankle & Carbin's
    Figure 2 lists this network as "Resnet-18", 274K / 270K weights).
    """

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(input_shape[0], 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        self.layer1 = self._stage(16, 16, 1)
        self.layer2 = self._stage(16, 32, 2)
        self.layer3 = self._stage(32, 64, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)

    @staticmethod
    def _stage(in_channels: int, out_channels: int, stride: int, blocks: int = 3) -> nn.Sequential:
        first = BasicBlock(in_channels, out_channels, stride)
        return nn.Sequential(first, *(BasicBlock(out_channels, out_channels, 1) for _ in range(blocks - 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)`` of images ``(B, C, H, W)``."""
        h = self.relu(self.bn1(self.conv1(x)))  # (B, 16, H, W)
        h = self.layer3(self.layer2(self.layer1(h)))  # (B, 64, ceil(H / 4), ceil(W / 4))
        return self.fc(self.avgpool(h).flatten(1))


def resnet20(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """``resnet20``: He et al. 2016 (arXiv:1512.03385, Section 4.2), option A shortcuts; see :class:`ResNet20`.

    Args:
        input_shape: one image's shape ``(C, H, W)``, any size (the stride-2 convolutions
            round up, global average pooling takes what is left: 8x8 -> 8, 4, 2).
        num_classes: number of outputs, >= 1.

    Returns:
        The network, mapping ``(B, *input_shape)`` to logits ``(B, num_classes)``; in training
        mode its BatchNorm layers normalise with batch statistics and update their running
        statistics.

    Raises:
        ConfigError: if ``input_shape`` is not an image ``(C, H, W)``, or ``num_classes < 1``.
    """
    return ResNet20(_image_shape("resnet20", input_shape, num_classes, 1), int(num_classes))


# -------------------------------------------------------------------------------------- registry

ZOO: dict[str, Callable[[tuple[int, ...], int], nn.Module]] = {
    "lenet5": lenet5,
    "conv2": conv2,
    "conv4": conv4,
    "conv6": conv6,
    "resnet20": resnet20,
}
"""Network name -> ``factory(input_shape, num_classes) -> nn.Module``."""

DESCRIPTIONS: dict[str, str] = {
    "lenet5": "LeNet-5 (LeCun et al. 1998): conv 6@5x5, pool, conv 16@5x5, pool, fc 120-84; ReLU, max-pooling",
    "conv2": "Conv-2 (Frankle & Carbin 2019, arXiv:1803.03635): 3x3 conv 64-64, pool, fc 256-256",
    "conv4": "Conv-4 (Frankle & Carbin 2019, arXiv:1803.03635): 3x3 conv 64-64, pool, 128-128, pool, fc 256-256",
    "conv6": "Conv-6 (Frankle & Carbin 2019, arXiv:1803.03635): 3x3 conv 64-64, pool, 128-128, pool, 256-256, pool, fc 256-256",
    "resnet20": "ResNet-20 for CIFAR (He et al. 2016, arXiv:1512.03385): 3x3 blocks of 16-32-64, BatchNorm, option A shortcuts",
}
"""Network name -> one-line description for a registry listing."""

LTH_RATES: dict[str, dict[str, float]] = {
    "lenet5": {"conv": 0.10, "fc": 0.20, "output": 0.10},
    "conv2": {"conv": 0.10, "fc": 0.20, "output": 0.10},
    "conv4": {"conv": 0.10, "fc": 0.20, "output": 0.10},
    "conv6": {"conv": 0.15, "fc": 0.20, "output": 0.10},
}
"""Network name -> layer-wise pruning rate per round of iterative magnitude pruning, by layer kind.

Each value is the fraction of a layer's remaining weights pruned per round (Frankle & Carbin 2019,
arXiv:1803.03635, Figure 2 and Appendix H): ``"conv"`` for every ``nn.Conv2d`` weight,
``"output"`` for the last ``nn.Linear`` (``classifier.4``), ``"fc"`` for the other ``nn.Linear``
weights (see :func:`layer_kinds`). Conv-2 and Conv-4 prune convolutions 10% per round, Conv-6 15%;
fully connected layers 20%, the output layer at half that rate, 10%.

``lenet5``: the paper's "Lenet" is the fully connected LeNet-300-100 (fc 20%, output 10%), so
it gives no rate for LeNet-5's convolutions. We take 10%, Conv-2's rate: like Conv-2's, LeNet-5's
two convolutions hold few of its weights (2,550 of 61,470 on 1x28x28) and the paper prunes such
convolutions more slowly than the fully connected layers.

``resnet20`` has no entry: the paper (Figure 2, "Resnet-18") prunes it globally, 20% of all
convolution weights per round ranked together, and leaves the fully connected output layer
unpruned, which is not a per-layer rate.
"""


def layer_kinds(module: nn.Module) -> dict[str, str]:
    """The :data:`LTH_RATES` kind of each prunable weight of ``module``.

    Returns:
        Parameter name (e.g. ``"features.0.weight"``) -> ``"conv"`` (``nn.Conv1d``/``nn.Conv2d``),
        ``"fc"`` (``nn.Linear``) or ``"output"`` (the last ``nn.Linear`` in module order), in
        module order.
    """
    kinds = {}
    for name, m in module.named_modules():
        if isinstance(m, nn.Conv1d | nn.Conv2d):
            kinds[f"{name}.weight"] = "conv"
        elif isinstance(m, nn.Linear):
            kinds[f"{name}.weight"] = "fc"
    last = [k for k, v in kinds.items() if v == "fc"][-1:]
    for name in last:
        kinds[name] = "output"
    return kinds
