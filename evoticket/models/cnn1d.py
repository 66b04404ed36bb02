"""The MNIST-1D reference CNN, ``cnn1d``, and its BatchNorm variant ``cnn1d_bn``.

Three ``Conv1d`` layers of 25 channels (kernel 5, 3, 3; stride 2; padding 1) and a linear read-out
(Greydanus 2020, arXiv:2011.14439); ``cnn1d_bn`` puts BatchNorm after each convolution (which then has
no bias: BatchNorm's shift replaces it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from evoticket.core.errors import ConfigError
from evoticket.models.mlp import _features, _linear_next
from evoticket.models.norm import batch_norm_batched
from evoticket.models.spec import Architecture, LayerSpec, NormSpec


def cnn1d_forward(
    arch: Architecture,
    params: dict[str, torch.Tensor],
    x: torch.Tensor,
    *,
    buffers: dict[str, torch.Tensor] | None = None,
    train: bool = False,
) -> torch.Tensor:
    """Feature-major logits ``(P, num_classes, B)`` of P stacked ``cnn1d`` networks.

    The convolutions run as ``conv2d`` over height-1 images kept in
    channels-last memory (``(B, 1, L, P*channels)``): the first over the whole
    population (shared input ``(B, ...)``; per-network inputs ``(P, B, ...)``
    grouped per individual), the others grouped per individual (groups = P).
    oneDNN runs these grouped convolutions several times faster channels-last
    than in ``conv1d``'s channels-first layout. ``cnn1d_bn`` normalises each
    convolution's output per individual and channel before the ReLU.
    """
    norms = {n.after: n for n in arch.norms}
    convs, last = arch.layers[:-1], arch.layers[-1]
    p = params[convs[0].weight].shape[0]
    per_network = x.dim() == len(arch.input_shape) + 2  # (P, B, ...): each network its own minibatch
    if per_network:
        batch = x.shape[1]
        h = x.reshape(p, batch, -1).transpose(0, 1).unsqueeze(2)  # (B, P, 1, L)
    else:
        batch = x.shape[0]
        h = x.reshape(batch, 1, 1, -1)  # (B, 1, 1, L)
    for i, spec in enumerate(convs):
        w = params[spec.weight].reshape(p * spec.out_features, spec.in_features, 1, spec.kernel_size)
        h = F.conv2d(
            h,
            w.contiguous(memory_format=torch.channels_last),
            params[spec.bias].reshape(-1) if spec.use_bias else None,
            stride=(1, spec.stride),
            padding=(0, spec.padding),
            groups=1 if i == 0 and not per_network else p,  # first layer on a shared input: one convolution
        )
        h = h.contiguous(memory_format=torch.channels_last)  # (B, P*out, 1, L')
        if spec.name in norms:
            b, _, _, length = h.shape
            pc = h.view(b, p, spec.out_features, length).permute(1, 2, 0, 3)  # (P, out, B, L') view
            pc = batch_norm_batched(pc, norms[spec.name], params, buffers, train, (2, 3))
            h = pc.permute(2, 0, 1, 3).reshape(b, p * spec.out_features, 1, length)
            h = h.contiguous(memory_format=torch.channels_last)
        h = h.relu_()
    h = h.squeeze(2).unflatten(1, (p, -1)).permute(1, 2, 3, 0)  # (P, out, L', B)
    h = h.reshape(p, -1, batch)  # (P, out * L', B), channel-major like nn.Module's flatten
    return _linear_next(params[last.weight], params[last.bias], h)


class CNN1D(nn.Module):
    """The MNIST-1D reference CNN (``cnn1d``, ``cnn1d_bn``); layers ``conv1..conv3``, ``fc``; ``bn1..bn3``."""

    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.names = [spec.name for spec in arch.layers]
        self.norms = {n.after: n.name for n in arch.norms}
        for spec in arch.layers:
            if spec.kind == "conv1d":
                module: nn.Module = nn.Conv1d(
                    spec.in_features,
                    spec.out_features,
                    spec.kernel_size,
                    stride=spec.stride,
                    padding=spec.padding,
                    bias=spec.use_bias,
                )
            else:
                module = nn.Linear(spec.in_features, spec.out_features)
            self.add_module(spec.name, module)
            if spec.name in self.norms:
                self.add_module(self.norms[spec.name], nn.BatchNorm1d(spec.out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, classes)`` of inputs ``(B, *input_shape)``."""
        h = x.reshape(x.shape[0], 1, -1)
        layers = [getattr(self, n) for n in self.names]
        for name, conv in zip(self.names[:-1], layers[:-1], strict=True):
            h = conv(h)
            if name in self.norms:
                h = getattr(self, self.norms[name])(h)
            h = h.relu()
        return layers[-1](h.flatten(1))


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


def build_cnn1d_bn(input_shape: Sequence[int], num_classes: int, hidden: Sequence[int] = (25,)) -> Architecture:
    """``cnn1d_bn``: ``cnn1d`` with BatchNorm after each convolution (``convK -> bnK -> ReLU``).

    Raises:
        ConfigError: as :func:`build_cnn1d`.
    """
    base = build_cnn1d(input_shape, num_classes, hidden)
    layers = tuple(dataclasses.replace(s, use_bias=False) for s in base.layers[:-1]) + base.layers[-1:]
    norms = tuple(NormSpec(f"bn{i + 1}", spec.out_features, spec.name) for i, spec in enumerate(layers[:-1]))
    return Architecture("cnn1d_bn", base.input_shape, num_classes, base.hidden, layers, norms)
