"""Fully connected models: ``mlp``, ``mlp_bn`` and ``mlp_residual``.

* ``mlp``: fully connected ReLU network, hidden sizes configurable, default ``[300, 100]``
  (LeNet-300-100, LeCun et al. 1998; the LTH paper's network, Frankle & Carbin 2019,
  arXiv:1803.03635).
* ``mlp_bn``: ``mlp`` with BatchNorm after each hidden layer (Linear -> BatchNorm -> ReLU; the hidden
  layers have no bias, BatchNorm's shift replaces it).
* ``mlp_residual``: the MNIST-1D reference MLP, ``in-100-100-10`` with a residual middle layer
  (Greydanus 2020, arXiv:2011.14439).

The batched forward pass keeps activations feature-major, ``(P, features, B)``: the first layer
of the whole population is one large matmul over the shared input (or a batched matmul over
per-network inputs ``(P, B, ...)``, ``optimizer.data_order = "individual"``), later layers are batched
matmuls. :class:`MLPFastGradient` is the opt-in fast path of ``mlp`` and ``mlp_residual``: a
hand-written backward pass into preallocated buffers, tested equal to autograd.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from evoticket.core.errors import ConfigError
from evoticket.models.norm import batch_norm_batched
from evoticket.models.spec import Architecture, LayerSpec, NormSpec

GRAD_BLOCK_BYTES = {"cpu": 2 * 2**20, "cuda": 256 * 2**20}
"""Device type -> size of the scratch block in which a masked weight's gradient is computed, a
slice of the population at a time, before its kept entries are gathered (bytes). On the CPU a
block that stays in the core's cache makes the gather cheap and the dense gradient is never
written to memory."""


class Packing(Protocol):
    """Where a packed optimizer keeps the kept entries of each masked weight
    (:class:`evoticket.training.MaskedOptimizer` is one).

    Attributes:
        index: weight name -> ``(kept,)`` int64 ascending flat positions in the ``(P, *shape)`` tensor.
        packed_grads: weight name -> ``(kept,)`` buffer to receive the kept entries' gradients.
    """

    index: dict[str, torch.Tensor]
    packed_grads: dict[str, torch.Tensor]


def _features(input_shape: Sequence[int]) -> int:
    n = 1
    for s in input_shape:
        n *= int(s)
    return n


def _linear_first(
    w: torch.Tensor, b: torch.Tensor | None, x: torch.Tensor, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Shared input ``(B, in)`` through P linear layers ``(P, out, in)``.

    One ``(P*out, in) x (in, B)`` matmul with the bias fused in.

    Args:
        w: ``(P, out, in)`` weights; b: ``(P, out)`` biases or ``None``; x: ``(B, in)``.
        out: optional ``(P, out, B)`` contiguous buffer to write into (the fast backward's).

    Returns:
        Pre-activations ``(P, out, B)``, contiguous.
    """
    p, n_out, n_in = w.shape
    flat = None if out is None else out.view(p * n_out, x.shape[0])
    if b is None:
        h = torch.mm(w.reshape(p * n_out, n_in), x.T, out=flat)
    else:
        h = torch.addmm(b.reshape(p * n_out, 1), w.reshape(p * n_out, n_in), x.T, out=flat)  # (P*out, B)
    return h.view(p, n_out, x.shape[0])


def _linear_input(
    w: torch.Tensor, b: torch.Tensor | None, x: torch.Tensor, out: torch.Tensor | None = None
) -> torch.Tensor:
    """The first layer: a shared input ``(B, in)`` (:func:`_linear_first`) or per-network inputs ``(P, B, in)``
    (:func:`_linear_next` on each network's own minibatch); pre-activations ``(P, out, B)``."""
    if x.dim() == 3:
        return _linear_next(w, b, x.transpose(1, 2), out=out)
    return _linear_first(w, b, x, out=out)


def _linear_next(
    w: torch.Tensor, b: torch.Tensor | None, h: torch.Tensor, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-individual inputs ``(P, in, B)`` through P linear layers ``(P, out, in)``.

    Args:
        w: ``(P, out, in)``; b: ``(P, out)`` or ``None``; h: ``(P, in, B)``.
        out: optional ``(P, out, B)`` buffer to write into.

    Returns:
        Pre-activations ``(P, out, B)``.
    """
    if b is None:
        return torch.bmm(w, h, out=out)
    return torch.baddbmm(b.unsqueeze(2), w, h, out=out)  # (P, out, B)


def mlp_forward(
    arch: Architecture,
    params: dict[str, torch.Tensor],
    x: torch.Tensor,
    *,
    buffers: dict[str, torch.Tensor] | None = None,
    train: bool = False,
) -> torch.Tensor:
    """Feature-major logits ``(P, num_classes, B)`` of P stacked ``mlp``/``mlp_bn``/``mlp_residual`` networks.

    Args:
        arch: the architecture.
        params: parameter name -> ``(P, *shape)``.
        x: inputs ``(B, *input_shape)`` shared by the P networks, or ``(P, B, *input_shape)``, one minibatch each.
        buffers, train: BatchNorm running statistics and mode (see
            :meth:`evoticket.models.Architecture.forward_batched`); unused without BatchNorm.
    """
    x = x.reshape(*x.shape[: x.dim() - len(arch.input_shape)], -1)  # (B, in) or (P, B, in)
    first, *rest = arch.layers
    norms = {n.after: n for n in arch.norms}

    def hidden(spec: LayerSpec, h: torch.Tensor) -> torch.Tensor:
        if spec.name in norms:
            h = batch_norm_batched(h, norms[spec.name], params, buffers, train, (2,))
        # in-place ReLU is safe under autograd: matmuls save their inputs, not their outputs
        return h.relu_()

    h = hidden(first, _linear_input(params[first.weight], params.get(first.bias), x))
    if arch.name == "mlp_residual":
        mid, last = rest
        h = h + _linear_next(params[mid.weight], params[mid.bias], h).relu_()
        return _linear_next(params[last.weight], params[last.bias], h)
    for spec in rest[:-1]:
        h = hidden(spec, _linear_next(params[spec.weight], params.get(spec.bias), h))
    last = rest[-1] if rest else first
    return _linear_next(params[last.weight], params[last.bias], h)


class MLP(nn.Module):
    """Fully connected ReLU classifier (``mlp``, ``mlp_bn``, ``mlp_residual``); layers ``fc1 .. fcN``,
    BatchNorm layers ``bn1 .. bnN-1`` for ``mlp_bn``."""

    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.names = [spec.name for spec in arch.layers]
        self.residual = arch.name == "mlp_residual"
        self.norms = {n.after: n.name for n in arch.norms}
        for spec in arch.layers:
            self.add_module(spec.name, nn.Linear(spec.in_features, spec.out_features, bias=spec.use_bias))
            if spec.name in self.norms:
                self.add_module(self.norms[spec.name], nn.BatchNorm1d(spec.out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, classes)`` of inputs ``(B, *input_shape)``."""
        h = x.reshape(x.shape[0], -1)
        layers = [getattr(self, n) for n in self.names]
        if self.residual:
            h = layers[0](h).relu()
            h = h + layers[1](h).relu()
            return layers[2](h)
        for name, layer in zip(self.names[:-1], layers[:-1], strict=True):
            h = layer(h)
            if name in self.norms:
                h = getattr(self, self.norms[name])(h)
            h = h.relu()
        return layers[-1](h)


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


def build_mlp_bn(input_shape: Sequence[int], num_classes: int, hidden: Sequence[int] = (300, 100)) -> Architecture:
    """``mlp_bn``: ``mlp`` with BatchNorm after each hidden layer (``fcK -> bnK -> ReLU``).

    Raises:
        ConfigError: if ``hidden`` is empty or holds a size < 1.
    """
    hidden = tuple(int(h) for h in hidden)
    if not hidden or min(hidden) < 1:
        raise ConfigError(f"model.hidden: need one or more sizes >= 1 for 'mlp_bn', got {list(hidden)}")
    base = build_mlp(input_shape, num_classes, hidden)
    layers = tuple(dataclasses.replace(s, use_bias=False) for s in base.layers[:-1]) + base.layers[-1:]
    norms = tuple(NormSpec(f"bn{i + 1}", spec.out_features, spec.name) for i, spec in enumerate(layers[:-1]))
    return Architecture("mlp_bn", base.input_shape, num_classes, hidden, layers, norms)


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


class MLPFastGradient:
    """Summed loss and its gradients for P stacked ``mlp``/``mlp_residual`` networks.

    A hand-written backward pass, feature-major ``(P, features, B)``, into
    buffers allocated once: no autograd graph, no population-sized allocation
    per step. The gradients equal autograd's on
    :meth:`evoticket.models.Architecture.forward_batched` with
    :func:`evoticket.models.loss.per_individual_loss` (up to float rounding).

    With ``packing``, the gradient of each masked weight is computed a block
    of rows (layer 1 on a shared input) or individuals (later layers, and
    layer 1 on per-network inputs) at a time into a small
    scratch buffer, and only its kept entries are gathered into
    ``packing.packed_grads`` (see :data:`GRAD_BLOCK_BYTES`); :attr:`grads`
    then holds those packed buffers for the masked weights.

    Args:
        arch: an ``mlp`` or ``mlp_residual`` architecture.
        params: parameter name -> ``(P, *shape)`` tensors, read at every call.
        batch: examples per minibatch, B.
        packing: the optimizer whose packed gradient buffers to fill, if any.
        per_network: the minibatches are per network (``x`` ``(P, B, *input_shape)``, ``y`` ``(P, B)``;
            ``optimizer.data_order = "individual"``); else one minibatch shared by all.
    """

    def __init__(
        self,
        arch: Architecture,
        params: dict[str, torch.Tensor],
        batch: int,
        packing: Packing | None = None,
        *,
        per_network: bool = False,
    ) -> None:
        self.arch = arch
        self.params = params
        self.per_network = per_network
        first = params[arch.layers[0].weight]
        self.population = first.shape[0]
        kw = {"device": first.device, "dtype": first.dtype}
        self.blocks = self._plan_blocks(packing, GRAD_BLOCK_BYTES.get(first.device.type, 2**62))
        self.grads = {k: torch.empty(v.shape, **kw) for k, v in params.items() if k not in self.blocks}
        if packing is not None:
            self.grads.update({k: packing.packed_grads[k] for k in self.blocks})
        sizes = [(hi - lo) * self._unit(k) for k, blocks in self.blocks.items() for lo, hi, _, _ in blocks]
        self.scratch = torch.empty(max(sizes, default=0), **kw)
        # post-activation outputs of every layer (logits last) and their gradients: (P, out, B)
        self.out = [torch.empty(self.population, s.out_features, batch, **kw) for s in arch.layers]
        self.dout = [torch.empty_like(h) for h in self.out]
        if arch.name == "mlp_residual":
            self.sum = torch.empty_like(self.out[0])  # h1 + relu(fc2 h1)
            self.dsum = torch.empty_like(self.out[0])

    def _unit(self, name: str) -> int:
        """Elements of one block unit of a weight: a row of layer 1 on a shared input, else an individual's matrix."""
        spec = next(s for s in self.arch.layers if s.weight == name)
        if spec is self.arch.layers[0] and not self.per_network:
            return spec.in_features
        return spec.out_features * spec.in_features

    def _plan_blocks(
        self, packing: Packing | None, block_bytes: int
    ) -> dict[str, list[tuple[int, int, torch.Tensor, torch.Tensor]]]:
        """Weight name -> blocks ``(first unit, end unit, kept positions within the block, packed slice)``."""
        if packing is None:
            return {}
        plan = {}
        for i, spec in enumerate(self.arch.layers):
            idx = packing.index.get(spec.weight)
            if idx is None:
                continue
            by_rows = i == 0 and not self.per_network
            units = self.population * spec.out_features if by_rows else self.population
            unit = self._unit(spec.weight)
            # per-network minibatches: no block of one network (bmm of one matrix runs another kernel than of several,
            # and a network must compute the same alone and packed: evoticket.training.packing)
            least = 2 if self.per_network else 1
            per = max(least, block_bytes // (self.params[spec.weight].element_size() * unit))
            starts = list(range(0, units, per))
            if self.per_network and len(starts) > 1 and units - starts[-1] == 1:
                starts.pop()
            bounds = torch.tensor([u * unit for u in [*starts, units]], device=idx.device)
            pos = torch.searchsorted(idx, bounds).tolist()  # kept entries before each block boundary
            ends = [*starts[1:], units]
            plan[spec.weight] = [
                (
                    lo,
                    ends[k],
                    idx[pos[k] : pos[k + 1]] - lo * unit,
                    packing.packed_grads[spec.weight][pos[k] : pos[k + 1]],
                )
                for k, lo in enumerate(starts)
            ]
        return plan

    def _weight_grad(self, i: int, d: torch.Tensor, inp: torch.Tensor, out: torch.Tensor) -> None:
        """Gradient of layer ``i``'s weight from its pre-activation gradient ``d`` ``(P, out, B)`` and input.

        ``inp`` is ``(B, in)`` for layer 0 on a shared input, ``(P, in, B)`` otherwise; ``out`` is the
        dense ``(P, out, in)`` buffer, unused for a packed (blocked) weight.
        """
        spec = self.arch.layers[i]
        batch = d.shape[2]
        blocks = self.blocks.get(spec.weight)
        if i == 0 and not self.per_network:
            rows = d.view(-1, batch)  # (P*out, B)
            if blocks is None:
                torch.mm(rows, inp, out=out.view(rows.shape[0], -1))
                return
            for lo, hi, local, packed in blocks:
                block = self.scratch[: (hi - lo) * spec.in_features].view(hi - lo, spec.in_features)
                torch.mm(rows[lo:hi], inp, out=block)
                torch.gather(block.view(-1), 0, local, out=packed)
            return
        if blocks is None:
            torch.bmm(d, inp.transpose(1, 2), out=out)
            return
        for lo, hi, local, packed in blocks:
            block = self.scratch[: (hi - lo) * self._unit(spec.weight)].view(hi - lo, *spec.weight_shape)
            torch.bmm(d[lo:hi], inp[lo:hi].transpose(1, 2), out=block)
            torch.gather(block.view(-1), 0, local, out=packed)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Fill :attr:`grads` for one minibatch.

        Args:
            x: inputs ``(B, *input_shape)``; y: labels ``(B,)`` (per network: ``(P, B, *input_shape)``, ``(P, B)``).

        Returns:
            ``(P,)`` mean cross-entropy of each individual (nats).
        """
        p, specs = self.population, self.arch.layers
        w = [self.params[s.weight].detach() for s in specs]
        b = [self.params[s.bias].detach() for s in specs]
        gw = [self.grads[s.weight] for s in specs]
        gb = [self.grads[s.bias] for s in specs]
        out, dout = self.out, self.dout
        if self.per_network:
            x = x.reshape(p, x.shape[1], -1).transpose(1, 2)  # (P, in, B): each network's own minibatch
            labels = y.view(p, 1, -1)
        else:
            x = x.reshape(x.shape[0], -1)  # (B, in)
            labels = y.view(1, 1, -1).expand(p, 1, -1)
        batch = labels.shape[2]
        residual = self.arch.name == "mlp_residual"

        # forward: the layers of mlp_forward, into the buffers kept for the backward pass
        (_linear_next if self.per_network else _linear_first)(w[0], b[0], x, out=out[0]).relu_()
        if residual:
            _linear_next(w[1], b[1], out[0], out=out[1]).relu_()  # r = relu(fc2 h1)
            torch.add(out[0], out[1], out=self.sum)
            inputs = [x, out[0], self.sum]
        else:
            for i in range(1, len(specs) - 1):
                _linear_next(w[i], b[i], out[i - 1], out=out[i]).relu_()
            inputs = [x, *out[:-1]]
        _linear_next(w[-1], b[-1], inputs[-1], out=out[-1])  # logits (P, C, B)

        # loss and d(sum of mean losses)/dlogits = (softmax - onehot) / B
        # softmax by ATen's own kernel, not torch.exp(logp): on the CPU torch.exp calls Intel MKL's VML,
        # which on some x86 hosts computes a worker thread's slice at reduced accuracy (relative error
        # ~1e-4) in some processes and not others, so a campaign's numbers depended on the process
        if self.per_network:  # one row per example, each computed as alone, whatever P (packing's bit-for-bit rule)
            rows = out[-1].transpose(1, 2).contiguous()  # (P, B, C)
            logp = torch.log_softmax(rows, 2)
            loss = logp.gather(2, labels.view(p, batch, 1)).mean((1, 2)).neg()  # (P,)
            dout[-1].copy_(torch.softmax(rows, 2).sub_(F.one_hot(y, rows.shape[2]).to(rows.dtype)).transpose(1, 2))
        else:
            logp = torch.log_softmax(out[-1], 1)  # (P, C, B)
            loss = logp.gather(1, labels).mean((1, 2)).neg()  # (P,)
            _softmax_out(out[-1], dout[-1])
            dout[-1].sub_(F.one_hot(y, out[-1].shape[1]).T.to(logp.dtype))
        dout[-1].mul_(1.0 / batch)

        # backward
        last = len(specs) - 1
        for i in range(last, -1, -1):
            d = dout[i]  # gradient w.r.t. layer i's pre-activation (P, out, B)
            self._weight_grad(i, d, inputs[i], gw[i])
            torch.sum(d, 2, out=gb[i])
            if i == 0:
                break
            if residual and i == last:  # d(h1 + r): to r through relu, and straight to h1
                torch.bmm(w[i].transpose(1, 2), d, out=self.dsum)
                _relu_backward(self.dsum, out[1], dout[1])
            elif residual:  # i == 1: dh1 = dsum + fc2^T dr
                torch.baddbmm(self.dsum, w[i].transpose(1, 2), d, out=dout[0])
                _relu_backward(dout[0], out[0], dout[0])
            else:
                torch.bmm(w[i].transpose(1, 2), d, out=dout[i - 1])
                _relu_backward(dout[i - 1], out[i - 1], dout[i - 1])
        return loss


def _softmax_out(logits: torch.Tensor, out: torch.Tensor) -> None:
    """``out = softmax(logits, dim=1)`` into a preallocated buffer, by ATen's softmax kernel."""
    torch.ops.aten._softmax.out(logits, 1, False, out=out)


def _relu_backward(grad: torch.Tensor, output: torch.Tensor, out: torch.Tensor) -> None:
    """``out = grad * (output > 0)`` for ``output = relu(a)``; ``out`` may be ``grad``."""
    torch.ops.aten.threshold_backward.grad_input(grad, output, 0, grad_input=out)
