"""Sparse ticket files: the trained ticket of the final comparison with its pruned weights in CSR form.

``evoticket export RUN_DIR --format sparse`` writes one seed's and control's network of
``trained_ticket.pt`` with :func:`write_sparse`: every masked weight as the compressed sparse row
(CSR) arrays of its kept entries (exactly the mask's nnz, so a kept weight that happens to be 0
stays stored), the rest (biases, BatchNorm, unmasked weights) dense. :func:`load_sparse` reads it
back as a plain ``torch.nn.Module`` for inference whose masked ``Linear`` layers are
:class:`SparseLinear` (a torch sparse CSR weight, multiplied with ``torch.addmm``); its outputs
equal those of the dense masked module of :func:`evoticket.load_ticket` in eval mode up to
float rounding (the sums run in another order).

Convolutions (``cnn1d``) are stored in CSR too, as ``(out, in * kernel)``, but loaded dense: torch
has no sparse convolution kernel, and at MNIST-1D sizes a dense ``conv1d`` is cheap. Whether CSR
pays at all depends on the sizes (see ``benchmarks/sparse_inference.py``; Elsen et al. 2019,
arXiv:1911.09723, on when sparse kernels beat dense ones).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from evoticket.core.errors import EvoticketError
from evoticket.core.io import load_format
from evoticket.genome.files import TRAINED_FORMAT, save_canonical, select_trained
from evoticket.models import architecture_from_dict

SPARSE_FORMAT = "evoticket-sparse-v1"
"""Format tag of a sparse ticket file (``trained_ticket.sparse.pt``): one trained network, CSR weights."""

_BETA = "Sparse CSR tensor support is in beta"


def csr_arrays(weight: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """The CSR arrays of ``weight``'s kept entries, a weight of more than two dims read as ``(out, rest)``.

    Args:
        weight: ``(out, *rest)`` float tensor.
        mask: bool tensor of ``weight``'s shape; True = kept.

    Returns:
        ``crow_indices`` ``(out + 1,)``, ``col_indices`` ``(nnz,)`` (int32 when they fit, else int64),
        ``values`` ``(nnz,)`` (``weight``'s dtype) and ``shape`` (``weight``'s shape, a ``(d,)`` int64
        tensor), with ``nnz = mask.sum()``.
    """
    rows = weight.shape[0]
    w2 = weight.detach().reshape(rows, -1).cpu()
    m2 = mask.reshape(rows, -1).cpu().bool()
    index = torch.int32 if max(m2.numel(), w2.shape[1]) < 2**31 else torch.int64
    crow = torch.zeros(rows + 1, dtype=torch.int64)
    crow[1:] = m2.sum(1).cumsum(0)
    return {
        "crow_indices": crow.to(index),
        "col_indices": m2.nonzero()[:, 1].to(index),  # row-major, as w2[m2] below
        "values": w2[m2].clone(),
        "shape": torch.tensor(weight.shape, dtype=torch.int64),
    }


def csr_tensor(arrays: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """A torch sparse CSR tensor ``(out, prod(rest))`` from :func:`csr_arrays`' arrays (no beta warning)."""
    shape = [int(s) for s in arrays["shape"]]
    rows = shape[0]
    cols = 1
    for s in shape[1:]:
        cols *= s
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_BETA, category=UserWarning)
        return torch.sparse_csr_tensor(
            arrays["crow_indices"], arrays["col_indices"], arrays["values"], (rows, cols), check_invariants=True
        )


class SparseLinear(nn.Module):
    """A ``Linear`` layer for inference whose weight is a torch sparse CSR tensor.

    ``y = x W^T + b`` computed as ``addmm(b, W, x^T)^T``: CSR times a dense matrix, the one sparse
    product torch runs fast on the CPU (MKL) and CUDA (cuSPARSE). The output is a transposed view of
    a contiguous ``(out, B)`` tensor, so a following :class:`SparseLinear` reads its input with no copy.
    No gradient flows into the weight (use :func:`evoticket.load_ticket` to train).

    Args:
        weight: ``(out, in)`` sparse CSR float tensor.
        bias: ``(out,)`` float tensor, or ``None``.

    Attributes:
        in_features, out_features: the sizes.
        weight: the CSR weight (a buffer: moves with ``.to()``).
        bias: ``(out,)`` parameter (``requires_grad=False``) or ``None``.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        if weight.layout != torch.sparse_csr or weight.dim() != 2:
            raise ValueError(
                f"SparseLinear: weight must be a 2-d sparse CSR tensor, got {weight.layout} {weight.dim()}-d"
            )
        self.out_features, self.in_features = (int(s) for s in weight.shape)
        self.register_buffer("weight", weight)
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=False)

    @classmethod
    def from_dense(cls, weight: torch.Tensor, mask: torch.Tensor, bias: torch.Tensor | None) -> SparseLinear:
        """The layer keeping ``weight``'s entries where ``mask`` is True (``(out, in)`` each; exactly ``mask.sum()`` nnz)."""
        return cls(csr_tensor(csr_arrays(weight, mask)), bias)

    @property
    def nnz(self) -> int:
        """Stored (kept) weights."""
        return int(self.weight.values().numel())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs ``(*, out)`` of inputs ``(*, in)``."""
        flat = x.reshape(-1, self.in_features)  # (B, in)
        if self.bias is None:
            y = torch.mm(self.weight, flat.T)  # (out, B)
        else:
            y = torch.addmm(self.bias.unsqueeze(1), self.weight, flat.T)  # (out, B)
        return y.T.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        """``in_features=.., out_features=.., nnz=.., bias=..``."""
        return f"in_features={self.in_features}, out_features={self.out_features}, nnz={self.nnz}, bias={self.bias is not None}"


def sparsify_module(module: nn.Module, masks: Mapping[str, torch.Tensor]) -> nn.Module:
    """Replace, in place, every ``nn.Linear`` whose weight ``masks`` names by a :class:`SparseLinear`.

    Other layers (convolutions, BatchNorm, unmasked ``Linear``) stay as they are. A layer pruned
    with ``torch.nn.utils.prune`` works too (its effective ``weight`` is read).

    Args:
        module: the network, e.g. from ``arch.build_module()``.
        masks: weight name (``"fc1.weight"``) -> bool mask of the weight's shape.

    Returns:
        ``module``, in eval mode, with no parameter requiring gradients.
    """
    for name, mask in masks.items():
        layer_name = name.rsplit(".", 1)[0]
        layer = module.get_submodule(layer_name)
        if isinstance(layer, nn.Linear):
            bias = None if layer.bias is None else layer.bias.detach()
            _set_submodule(module, layer_name, SparseLinear.from_dense(layer.weight.detach(), mask, bias))
    return module.eval().requires_grad_(False)


def _set_submodule(module: nn.Module, name: str, child: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(module.get_submodule(parent) if parent else module, leaf, child)


def write_sparse(source: Path, out: Path, *, seed: int, control: str) -> None:
    """Write one trained network of ``trained_ticket.pt`` with its masked weights in CSR form.

    The file (format :data:`SPARSE_FORMAT`, ``torch.save``, loadable with ``weights_only=True``)
    holds the architecture, the run's config, ``seed``, ``control``, ``best_step`` (optimizer
    steps) and ``test_acc`` (in [0, 1]), ``sparse`` (weight name -> :func:`csr_arrays`) and
    ``dense`` (every other parameter and buffer name -> tensor). Written atomically; the same
    source gives the same bytes.

    Args:
        source: a ``trained_ticket.pt`` (:data:`evoticket.genome.files.TRAINED_FORMAT`).
        out: the file to write; must not exist.
        seed: which final-comparison seed, in [0, campaign.final_seeds).
        control: ``ticket``, ``dense``, ``random`` or ``reinit``.

    Raises:
        EvoticketError: (one line naming the file and what is valid) if ``source`` is missing or not a
            trained-ticket file, the seed or control does not exist in it, or ``out`` exists.
    """
    source, out = Path(source), Path(out)
    if not source.is_file():
        raise EvoticketError(f"{source}: no such file (the final comparison writes trained_ticket.pt)")
    data = load_format(source, TRAINED_FORMAT, "trained-ticket file", EvoticketError, weights_only=True)
    entry = select_trained(source, data, seed=seed, control=control)
    if out.exists():
        raise EvoticketError(f"{out}: already exists; a sparse export never overwrites a file")
    masks, weights = entry["masks"], entry["weights"]
    payload = {
        "format": SPARSE_FORMAT,
        "architecture": data["architecture"],
        "config": data["config"],
        "seed": seed,
        "control": control,
        "best_step": int(entry["best_step"]),
        "test_acc": float(entry["test_acc"]),
        "sparse": {k: csr_arrays(weights[k], m) for k, m in masks.items()},
        "dense": {k: v for k, v in weights.items() if k not in masks},
    }
    save_canonical(out, payload)


def read_sparse(path: str | Path) -> dict[str, Any]:
    """The payload of a sparse ticket file (see :func:`write_sparse` for its keys).

    Raises:
        EvoticketError: (one line naming ``path``) if it is missing or not a sparse ticket file.
    """
    path = Path(path)
    if not path.is_file():
        raise EvoticketError(
            f"{path}: no such sparse ticket file (evoticket export RUN_DIR --format sparse writes one)"
        )
    return load_format(path, SPARSE_FORMAT, "sparse ticket file", EvoticketError, weights_only=True)


def load_sparse(path: str | Path) -> nn.Module:
    """Load a sparse ticket file as a module for inference.

    Masked ``Linear`` layers become :class:`SparseLinear` with the stored CSR weight (exactly the
    mask's nnz); convolutions are densified (torch has no sparse convolution); biases and BatchNorm
    are dense. The forward pass equals that of the dense masked module
    (:func:`evoticket.load_ticket` with the same seed and control, in eval mode) up to float
    rounding: inputs ``(B, *input_shape)`` -> logits ``(B, num_classes)``.

    Args:
        path: a file written by :func:`write_sparse`.

    Returns:
        The module, on the CPU, in eval mode, no parameter requiring gradients (``.to("cuda")`` moves
        the CSR weights too).

    Raises:
        EvoticketError: (one line naming ``path``) if it is missing or not a sparse ticket file.
    """
    data = read_sparse(path)
    arch = architecture_from_dict(data["architecture"])
    module = arch.build_module()
    csr = {k: csr_tensor(a) for k, a in data["sparse"].items()}
    state = dict(data["dense"])
    for k, a in data["sparse"].items():
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_BETA, category=UserWarning)
            state[k] = csr[k].to_dense().reshape([int(s) for s in a["shape"]])
    module.load_state_dict(state, strict=not arch.buffer_shapes)
    for name, weight in csr.items():
        layer_name = name.rsplit(".", 1)[0]
        layer = module.get_submodule(layer_name)
        if isinstance(layer, nn.Linear):
            bias = None if layer.bias is None else layer.bias.detach()
            _set_submodule(module, layer_name, SparseLinear(weight, bias))
    return module.eval().requires_grad_(False)


def sparse_summary(path: str | Path) -> dict[str, Any]:
    """What a sparse ticket file holds and what it costs.

    Returns:
        ``file_bytes`` (on disk), ``nnz`` (stored weights), ``weights`` (entries of the masked
        weights, dense), ``density`` (``nnz / weights``), ``seed``, ``control``, ``test_acc``.

    Raises:
        EvoticketError: as :func:`read_sparse`.
    """
    data = read_sparse(path)
    nnz = sum(int(a["values"].numel()) for a in data["sparse"].values())
    total = sum(int(torch.prod(a["shape"])) for a in data["sparse"].values())
    return {
        "file_bytes": Path(path).stat().st_size,
        "nnz": nnz,
        "weights": total,
        "density": nnz / total if total else 1.0,
        "seed": data["seed"],
        "control": data["control"],
        "test_acc": data["test_acc"],
    }
