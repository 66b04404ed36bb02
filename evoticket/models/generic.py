"""Any ``nn.Module`` as a population of tickets, batched with ``torch.func``.

A *factory* ``factory(input_shape, num_classes) -> nn.Module`` builds the network.
:func:`build_generic` calls it once and probes the module on one batch of the data's shape:

* **What is pruned.** Every weight of an ``nn.Linear``, ``nn.Conv1d`` or ``nn.Conv2d`` layer that the
  forward pass uses, in the order the forward pass calls them, keyed by the module's own parameter
  names (``features.0.weight``, the names ``torch.nn.utils.prune`` uses). ``ticket.prune`` narrows the
  choice with parameter names or ``fnmatch`` patterns. Biases and normalisation layers are never
  pruned (Frankle & Carbin 2019, arXiv:1803.03635).
* **The compute meter.** ``torch.utils.flop_counter.FlopCounterMode`` counts each prunable layer's
  forward FLOPs on one example; divided by ``2 x`` the weight's size it gives the layer's output
  positions (1 for a ``Linear`` on a vector, ``H_out x W_out`` for a ``Conv2d``), which the meter
  scales by the kept weights (:mod:`evoticket.training.meter`). FLOPs outside the prunable layers
  (layers ``ticket.prune`` leaves dense, products of activations) are counted dense.
* **Memory.** The bytes autograd saves for the backward pass per example, measured with
  ``torch.autograd.graph.saved_tensors_hooks``, size the population chunks
  (:mod:`evoticket.training.memory`).

A population of P copies then trains as one computation: ``torch.func.functional_call`` of the module
on parameters and buffers stacked along a leading population axis, mapped with ``torch.func.vmap``
(``randomness="different"``: dropout draws independently per individual). Buffers are per individual,
so every individual keeps its own BatchNorm running statistics.

The built-in models keep their hand-batched forward passes (and the MLPs' hand-written backward) as fast
paths; the same networks through this path give the same losses and gradients (tested).
"""

from __future__ import annotations

import copy
import fnmatch
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from evoticket.core.errors import ConfigError
from evoticket.models.init import draw_init, init_std
from evoticket.models.spec import Architecture, LayerSpec, NormSpec

Factory = Callable[[tuple[int, ...], int], nn.Module]
"""``factory(input_shape, num_classes) -> nn.Module``: builds one network for inputs ``(B, *input_shape)``
and ``num_classes`` logits."""

PRUNABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d)
"""Layers whose ``weight`` is prunable."""

NORM_TYPES: tuple[type[nn.Module], ...] = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)
"""Normalisation layers: never pruned; their affine parameters form the ``bn`` trainable scope."""

_KIND = {nn.Linear: "linear", nn.Conv1d: "conv1d", nn.Conv2d: "conv2d"}

PROBE_SEED = 0
"""Seed of the global random generator while a factory builds the template module, so that parameters
evoticket does not draw itself (embeddings, custom parameters) start the same in every process."""


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")


def call_factory(name: str, factory: Factory, input_shape: Sequence[int], num_classes: int) -> nn.Module:
    """Build one module with ``factory``, on the CPU, the global random generator seeded with :data:`PROBE_SEED`.

    Args:
        name: ``model.name``, named in errors.
        factory: the factory.
        input_shape: one example's shape.
        num_classes: logits.

    Raises:
        ConfigError: (one line naming ``model.name``) if the factory raises or returns something that is
            not an ``nn.Module``.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(PROBE_SEED)
        try:
            module = factory(tuple(int(s) for s in input_shape), int(num_classes))
        except ConfigError:  # the factory's own one-line message
            raise
        except Exception as e:
            raise ConfigError(
                f"model.name: {name!r}: factory(input_shape={tuple(input_shape)}, num_classes={num_classes}) "
                f"raised {_first_line(e)}"
            ) from None
    if not isinstance(module, nn.Module):
        raise ConfigError(
            f"model.name: {name!r} returned a {type(module).__name__}, not a torch.nn.Module; a model factory is "
            "factory(input_shape, num_classes) -> nn.Module"
        )
    return module


@dataclass(frozen=True)
class Probe:
    """What one run of a module on example inputs shows (:func:`probe_module`).

    Attributes:
        order: leaf module names in the order the forward pass first calls them.
        flops: module name -> forward FLOPs of one example (``FlopCounterMode``; every called
            ``Linear``/``Conv`` layer).
        total_flops: forward FLOPs of one example, all modules.
        saved_bytes: bytes autograd saves for the backward pass per example (training mode).
    """

    order: tuple[str, ...]
    flops: dict[str, int]
    total_flops: int
    saved_bytes: int


def _example(input_shape: Sequence[int], batch: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(PROBE_SEED)
    return torch.randn(batch, *input_shape, generator=gen)


def probe_module(module: nn.Module, input_shape: Sequence[int], num_classes: int, name: str = "") -> Probe:
    """Run ``module`` on example inputs: call order, FLOPs per layer, saved activations per example.

    The module is copied, so its BatchNorm statistics do not change.

    Args:
        module: the network.
        input_shape: one example's shape.
        num_classes: the logits it must return.
        name: ``model.name``, named in errors.

    Raises:
        ConfigError: (one line naming ``model.name``) if the module does not accept inputs
            ``(B, *input_shape)`` or does not return logits ``(B, num_classes)``.
    """
    module = copy.deepcopy(module).cpu()
    order: list[str] = []
    names = {m: n for n, m in module.named_modules()}
    called: set[str] = set()

    def hook(mod: nn.Module, args: Any, output: Any) -> None:
        n = names.get(mod)
        if n is not None and n not in called:
            called.add(n)
            order.append(n)

    handles = [m.register_forward_hook(hook) for m in module.modules() if not list(m.children())]
    shape = tuple(input_shape)
    try:
        module.eval()
        with torch.no_grad():
            out = module(_example(shape, 2))
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            module(_example(shape, 1))
    except Exception as e:
        raise ConfigError(
            f"model.name: {name!r} does not accept the data's inputs of shape (B, {', '.join(map(str, shape))}): "
            f"{_first_line(e)}"
        ) from None
    finally:
        for h in handles:
            h.remove()
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(
            f"model.name: {name!r} returns {got} for a batch of 2 inputs; expected logits (2, {num_classes}) for the "
            f"data's {num_classes} classes"
        )
    root = type(module).__name__
    counts = counter.get_flop_counts()
    flops = {}
    for n in order:
        if isinstance(module.get_submodule(n), PRUNABLE_TYPES):
            flops[n] = int(sum(counts.get(f"{root}.{n}", {}).values()))
    saved = _saved_bytes(module, shape, 4) - _saved_bytes(module, shape, 2)
    return Probe(tuple(order), flops, int(counter.get_total_flops()), max(0, saved // 2))


def _saved_bytes(module: nn.Module, shape: tuple[int, ...], batch: int) -> int:
    """Bytes autograd saves for the backward pass of one training-mode forward pass of ``batch`` examples."""
    module = copy.deepcopy(module).train()
    seen: set[int] = set()
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        key = t.untyped_storage().data_ptr()
        if key not in seen:
            seen.add(key)
            total += t.untyped_storage().nbytes()
        return t

    x = _example(shape, batch)
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x)
    return total  # parameters count alike at every batch size: the caller takes a difference


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def build_generic(
    name: str,
    factory: Factory,
    input_shape: Sequence[int],
    num_classes: int,
    *,
    prune: Sequence[str] = (),
    hidden: Sequence[int] = (),
    factory_path: str = "",
) -> Architecture:
    """The :class:`Architecture` of the module ``factory`` builds, probed on the data's input shape.

    Args:
        name: ``model.name`` (recorded; named in errors).
        factory: ``factory(input_shape, num_classes) -> nn.Module``.
        input_shape: one example's shape, e.g. ``(3, 32, 32)``.
        num_classes: number of classes.
        prune: ``ticket.prune``: parameter or layer names, or ``fnmatch`` patterns of them (``"features.*"``),
            choosing among the prunable weights (``Linear``/``Conv1d``/``Conv2d`` weights the forward pass uses;
            biases and other parameters a pattern matches are not pruned); empty prunes every one.
        hidden: a built-in model's sizes (recorded only).
        factory_path: where a later process imports the factory from, when ``name`` does not say; default
            the factory's own module and name where they import it
            (:func:`evoticket.models.registry.factory_path`).

    Returns:
        A generic architecture (``generic = True``), its module cached as the population's template.

    Raises:
        ConfigError: (one line naming ``model.name`` or ``ticket.prune``) if the factory fails or does not
            return an ``nn.Module``, the module rejects the data's inputs or returns the wrong shape, it has no
            prunable layer, or a ``ticket.prune`` entry matches no prunable weight.
    """
    input_shape = tuple(int(s) for s in input_shape)
    if not factory_path and ":" not in name:
        from evoticket.models.registry import BUILTIN
        from evoticket.models.registry import factory_path as path_of

        factory_path = "" if name in BUILTIN else path_of(factory)
    module = call_factory(name, factory, input_shape, num_classes)
    probe = probe_module(module, input_shape, num_classes, name)
    modules = dict(module.named_modules())
    candidates = [
        n for n in probe.order if isinstance(modules[n], PRUNABLE_TYPES) and isinstance(modules[n].weight, nn.Parameter)
    ]
    weights = [f"{n}.weight" for n in candidates]
    if prune:
        for pattern in prune:
            if not any(_matches(w, [pattern]) or _matches(w.rsplit(".", 1)[0], [pattern]) for w in weights):
                raise ConfigError(
                    f"ticket.prune: {pattern!r} matches no prunable weight of {name!r} (the weights of the Linear, "
                    f"Conv1d and Conv2d layers its forward pass uses): {', '.join(weights) or 'none'}"
                )
        candidates = [n for n in candidates if _matches(f"{n}.weight", prune) or _matches(n, prune)]
    if not candidates:
        raise ConfigError(
            f"model.name: {name!r} has no prunable layer: its forward pass uses no nn.Linear, nn.Conv1d or nn.Conv2d "
            "weight"
        )
    layers = []
    for n in candidates:
        m = modules[n]
        if isinstance(m, nn.Linear):
            n_in, n_out = m.in_features, m.out_features
        else:
            n_in, n_out = m.in_channels, m.out_channels
        kind = next(k for t, k in _KIND.items() if isinstance(m, t))
        layers.append(LayerSpec(n, kind, n_in, n_out, use_bias=m.bias is not None, shape=tuple(m.weight.shape)))
    norms = []
    last = candidates[0]
    for n in probe.order:
        if n in candidates:
            last = n
        m = modules[n]
        if isinstance(m, NORM_TYPES) and isinstance(getattr(m, "weight", None), nn.Parameter):
            norms.append(NormSpec(n, int(m.weight.numel()), last))
    dense_or_pruned = [n for n in probe.order if isinstance(modules[n], PRUNABLE_TYPES)]
    arch = Architecture(
        name,
        input_shape,
        int(num_classes),
        tuple(int(h) for h in hidden),
        tuple(layers),
        tuple(norms),
        generic=True,
        factory=factory_path,
        prune=tuple(prune),
        param_list=tuple((n, tuple(p.shape)) for n, p in module.named_parameters()),
        buffer_list=tuple((n, tuple(b.shape), str(b.dtype).removeprefix("torch.")) for n, b in module.named_buffers()),
        output=dense_or_pruned[-1],
    )
    _TEMPLATES[arch] = module
    _PROBES[arch] = probe
    _FACTORIES[arch] = factory
    return arch


_TEMPLATES: dict[Architecture, nn.Module] = {}
_PROBES: dict[Architecture, Probe] = {}
_FACTORIES: dict[Architecture, Factory] = {}


def _factory(arch: Architecture) -> Factory:
    found = _FACTORIES.get(arch)
    if found is None:
        from evoticket.models.registry import find_factory

        found = _FACTORIES[arch] = find_factory(arch.name, arch.factory, arch.hidden)
    return found


def template(arch: Architecture) -> nn.Module:
    """The module a generic architecture runs as (built once per process by its factory).

    Raises:
        ConfigError: if the factory cannot be found (see :func:`evoticket.models.registry.find_factory`) or now
            builds a network with other parameters than ``arch`` records.
    """
    module = _TEMPLATES.get(arch)
    if module is not None:
        return module
    module = call_factory(arch.name, _factory(arch), arch.input_shape, arch.num_classes)
    have = tuple((n, tuple(p.shape)) for n, p in module.named_parameters())
    if have != arch.param_list:
        mine = dict(arch.param_list)
        diff = next(
            (f"{n} {s}" for n, s in have if mine.get(n) != s),
            next((f"no {n}" for n in mine if n not in dict(have)), ""),
        )
        raise ConfigError(
            f"model.name: {arch.name!r} now builds a different network than the one recorded ({diff}); "
            "restore the model's code as it was"
        )
    _TEMPLATES[arch] = module
    return module


def probe(arch: Architecture) -> Probe:
    """The probe of ``arch``'s module (:func:`probe_module`), computed once per process; built-in models too.

    The global random generator is left as it was (the probe draws from a fork of it), so that a run draws the same
    numbers whether or not an earlier run in the process (an experiment's cells, packed runs) probed first."""
    found = _PROBES.get(arch)
    if found is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(PROBE_SEED)
            module = template(arch) if arch.generic else arch.build_module()
            found = _PROBES[arch] = probe_module(module, arch.input_shape, arch.num_classes, arch.name)
    return found


def layer_positions(arch: Architecture) -> dict[str, int]:
    """Prunable layer name -> output positions per example: its forward FLOPs (``FlopCounterMode``) over
    ``2 x`` its weight's size (1 for a ``Linear`` on a vector, ``L_out`` for a ``Conv1d``, ``H_out x W_out``
    for a ``Conv2d``; times the number of calls for a layer called more than once)."""
    p = probe(arch)
    out = {}
    for spec in arch.layers:
        numel = math.prod(spec.weight_shape)
        flops = p.flops.get(spec.name, 0)
        if flops % (2 * numel):
            raise ValueError(f"{arch.name}: layer {spec.name}: {flops} FLOPs is not a multiple of 2 x {numel} weights")
        out[spec.name] = flops // (2 * numel)
    return out


def dense_flops(arch: Architecture) -> int:
    """Forward FLOPs of one example outside the prunable layers (layers left dense, products of activations)."""
    p = probe(arch)
    return p.total_flops - sum(p.flops.get(spec.name, 0) for spec in arch.layers)


def param_owners(arch: Architecture) -> dict[str, int]:
    """Parameter name -> index (in ``arch.layers``) of the last prunable layer the forward pass calls at or
    before the parameter's module (0 when none is): a backward pass that trains the parameter reaches down to
    that layer."""
    order = probe(arch).order
    index = {spec.name: i for i, spec in enumerate(arch.layers)}
    position: dict[str, int] = {}
    current = 0
    for n in order:
        current = index.get(n, current)
        position[n] = current
    out = {}
    for name in arch.param_shapes:
        module = name.rsplit(".", 1)[0] if "." in name else ""
        out[name] = position.get(module, index.get(module, 0))
    return out


def activation_bytes(arch: Architecture) -> int:
    """Bytes autograd saves for the backward pass per training example (one network)."""
    return probe(arch).saved_bytes


# ------------------------------------------------------------------ state
def init_params(arch: Architecture, scheme: str, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """theta0 of a generic network.

    Every ``Linear``/``Conv1d``/``Conv2d`` weight (pruned or not) is drawn with evoticket's initialiser, in
    ``named_parameters()`` order; their biases and normalisation shifts start at 0, normalisation scales at 1;
    any other parameter keeps the value its factory gave it (the same in every individual).

    Args:
        arch: a generic architecture.
        scheme: one of :data:`evoticket.models.INITIALISERS`.
        generator: CPU random generator.

    Returns:
        Parameter name -> float32 CPU tensor, in ``named_parameters()`` order.
    """
    module = template(arch)
    layers: dict[str, LayerSpec] = {}
    zeros, ones = set(), set()
    for n, m in module.named_modules():
        prefix = f"{n}." if n else ""
        if isinstance(m, PRUNABLE_TYPES):
            kind = next(k for t, k in _KIND.items() if isinstance(m, t))
            layers[prefix + "weight"] = LayerSpec(n, kind, 1, 1, shape=tuple(m.weight.shape))
            zeros.add(prefix + "bias")
        elif isinstance(m, NORM_TYPES):
            ones.add(prefix + "weight")
            zeros.add(prefix + "bias")
    out = {}
    for n, p in module.named_parameters():
        if n in layers:
            spec = layers[n]
            out[n] = draw_init(scheme, init_std(spec, scheme), spec.weight_shape, generator)
        elif n in ones:
            out[n] = torch.ones(p.shape)
        elif n in zeros:
            out[n] = torch.zeros(p.shape)
        else:
            out[n] = p.detach().to("cpu", torch.float32).clone()
    return out


def init_buffers(
    arch: Architecture, population: int = 0, device: str | torch.device = "cpu"
) -> dict[str, torch.Tensor]:
    """A generic network's buffers as its factory made them (BatchNorm: means 0, variances 1, 0 batches tracked).

    Args:
        arch: a generic architecture.
        population: 0 for one network's buffers, P for stacked ``(P, *shape)`` copies.
        device: where they go.
    """
    out = {}
    for n, b in template(arch).named_buffers():
        b = b.detach().to(device)
        out[n] = b.expand(population, *b.shape).clone() if population else b.clone()
    return out


def build_module(arch: Architecture) -> nn.Module:
    """A fresh module of the user's own class (its factory's), on the CPU, in training mode."""
    template(arch)  # finds the factory and checks it still builds this network
    return call_factory(arch.name, _factory(arch), arch.input_shape, arch.num_classes).train()


# ------------------------------------------------------------------ forward
def generic_forward(
    arch: Architecture,
    params: dict[str, torch.Tensor],
    x: torch.Tensor,
    *,
    buffers: dict[str, torch.Tensor] | None = None,
    train: bool = False,
) -> torch.Tensor:
    """Logits of P copies of a generic network on one shared input batch.

    ``torch.func.functional_call`` of the template module, mapped over the population axis of the
    parameters and buffers with ``torch.func.vmap`` (``randomness="different"``).

    Args:
        arch: a generic architecture.
        params: parameter name -> ``(P, *shape)``; every parameter of the module.
        x: inputs ``(B, *input_shape)``, shared by the population, or ``(P, B, *input_shape)``, one minibatch each.
        buffers: buffer name -> ``(P, *shape)``, updated in place in training mode; ``None`` uses the
            factory's buffers for every individual (evaluation mode only, when the module has any).
        train: training mode (``module.train()``: batch statistics, dropout) or evaluation mode.

    Returns:
        Logits ``(P, B, num_classes)``.
    """
    module = template(arch)
    module.train(train)
    x_dim = 0 if x.dim() == len(arch.input_shape) + 2 else None  # per-network minibatches (P, B, ...)
    if buffers is None:
        fixed = {n: b.to(x.device) for n, b in module.named_buffers()}
        if train and fixed:
            raise ValueError(f"{arch.name}: training mode needs per-individual buffers")

        def one_fixed(p: dict[str, torch.Tensor], xb: torch.Tensor) -> torch.Tensor:
            return torch.func.functional_call(module, (p, fixed), (xb,))

        return torch.func.vmap(one_fixed, in_dims=(0, x_dim), randomness="different")(params, x)

    def one(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], xb: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(module, (p, b), (xb,))

    return torch.func.vmap(one, in_dims=(0, 0, x_dim), randomness="different")(params, buffers, x)


__all__ = [
    "NORM_TYPES",
    "PRUNABLE_TYPES",
    "Factory",
    "Probe",
    "activation_bytes",
    "build_generic",
    "build_module",
    "call_factory",
    "dense_flops",
    "generic_forward",
    "init_buffers",
    "init_params",
    "layer_positions",
    "param_owners",
    "probe",
    "probe_module",
    "template",
]
