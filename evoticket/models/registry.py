"""The model registry: built-in models with hand-batched forward passes, and factories of any ``nn.Module``.

A *built-in* :class:`ModelEntry` of :data:`MODELS` (``mlp``, ``mlp_bn``, ``mlp_residual``, ``cnn1d``,
``cnn1d_bn``) gives

* ``build(input_shape, num_classes, hidden) -> Architecture``, which checks the sizes;
* ``forward(arch, params, x, *, buffers, train)``: feature-major logits ``(P, C, B)`` of P
  stacked networks, differentiated by autograd;
* ``module(arch)``: a plain ``nn.Module`` with the same parameter names (for
  :func:`evoticket.load_ticket` and serial references);
* ``fast_gradient``: optionally, a class computing the summed loss's gradients by hand
  (``mlp``, ``mlp_residual``); the training engine uses it where the trainable scope allows,
  and a test checks that it equals autograd.

A *factory* entry holds ``factory(input_shape, num_classes) -> nn.Module``; its networks run through
:mod:`evoticket.models.generic`. The seed papers' networks (:mod:`evoticket.models.zoo`: ``lenet5``,
``conv2``, ``conv4``, ``conv6``, ``resnet20``) are factory entries, and so is every model a user adds:

* ``evoticket.models.register("name", factory)`` in-process (notebooks, scripts, tests);
* an entry point of the ``evoticket.models`` group, for every process where the package is installed
  (:mod:`evoticket.core.plugins`);
* ``model.name = "package.module:factory"``, imported where it is needed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from evoticket.core.errors import ConfigError, unknown_name
from evoticket.core.plugins import entry_point_names, import_object, load_entry_point
from evoticket.models.cnn1d import CNN1D, build_cnn1d, build_cnn1d_bn, cnn1d_forward
from evoticket.models.generic import Factory, build_generic
from evoticket.models.mlp import MLP, MLPFastGradient, build_mlp, build_mlp_bn, build_mlp_residual, mlp_forward
from evoticket.models.spec import Architecture
from evoticket.models.zoo import DESCRIPTIONS, ZOO


@dataclass(frozen=True)
class ModelEntry:
    """One registered model: a built-in (``build``, ``forward``, ``module``) or a factory of any ``nn.Module``.

    Attributes:
        build: ``(input_shape, num_classes, hidden) -> Architecture``; raises ``ConfigError`` for sizes that
            do not fit (``None`` for a factory entry).
        forward: ``(arch, params, x, *, buffers, train) -> (P, num_classes, B)`` logits (built-ins).
        module: ``arch -> nn.Module`` with the same parameter names (built-ins).
        default_hidden: hidden sizes (or channels) when ``model.hidden`` is empty.
        fast_gradient: optional hand-written gradient class ``(arch, params, batch, packing)``,
            called as ``grad(x, y) -> (P,) losses`` filling ``grad.grads``.
        factory: ``factory(input_shape, num_classes) -> nn.Module`` (factory entries only).
        description: one line for ``evoticket models``.
    """

    build: Callable[..., Architecture] | None
    forward: Callable[..., Any] | None
    module: Callable[[Architecture], nn.Module] | None
    default_hidden: tuple[int, ...]
    fast_gradient: type | None = None
    factory: Factory | None = None
    description: str = ""


def _factory_entry(factory: Factory, description: str = "") -> ModelEntry:
    doc = (getattr(factory, "__doc__", None) or "").strip().splitlines()
    return ModelEntry(None, None, None, (), factory=factory, description=description or (doc[0] if doc else ""))


BUILTIN = ("mlp", "mlp_bn", "mlp_residual", "cnn1d", "cnn1d_bn")
"""The models with hand-batched forward passes (their generic twins are tested equal)."""

MODELS: dict[str, ModelEntry] = {
    "mlp": ModelEntry(
        build_mlp,
        mlp_forward,
        MLP,
        (300, 100),
        MLPFastGradient,
        description="fully connected ReLU network, LeNet-300-100 by default",
    ),
    "mlp_bn": ModelEntry(
        build_mlp_bn, mlp_forward, MLP, (300, 100), description="mlp with BatchNorm after each hidden layer"
    ),
    "mlp_residual": ModelEntry(
        build_mlp_residual,
        mlp_forward,
        MLP,
        (100,),
        MLPFastGradient,
        description="the MNIST-1D reference MLP (a residual middle layer)",
    ),
    "cnn1d": ModelEntry(build_cnn1d, cnn1d_forward, CNN1D, (25,), description="the MNIST-1D reference 1D CNN"),
    "cnn1d_bn": ModelEntry(
        build_cnn1d_bn, cnn1d_forward, CNN1D, (25,), description="cnn1d with BatchNorm after each convolution"
    ),
    **{name: _factory_entry(factory, DESCRIPTIONS.get(name, "")) for name, factory in ZOO.items()},
}
"""Model name -> :class:`ModelEntry`: the built-in models, the seed papers' networks and in-process registrations."""

DEFAULT_HIDDEN = {name: entry.default_hidden for name, entry in MODELS.items() if name in BUILTIN}
"""Each built-in model's hidden sizes when the configuration leaves ``model.hidden`` empty."""

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_PATHS: dict[str, str] = {}  # in-process registrations: name -> import path of the factory ("" when none)


def factory_path(factory: Callable[..., Any]) -> str:
    """``"package.module:qualname"`` of ``factory`` when a later process can import it from there, else ``""``
    (a lambda, a closure, or a function of a script run as ``__main__``)."""
    module, qualname = getattr(factory, "__module__", None), getattr(factory, "__qualname__", None)
    if not module or not qualname or module == "__main__" or "<" in qualname:
        return ""
    try:
        found = import_object(f"{module}:{qualname}", "model.name")
    except ConfigError:
        return ""
    return f"{module}:{qualname}" if found is factory else ""


def register(name: str, factory: Factory, *, description: str = "", replace: bool = False) -> None:
    """Register a model factory under ``name`` for this process (``model.name = name``).

    A later process (``evoticket resume``, ``load_ticket``) finds it again when the factory lives in an
    importable module (its import path is recorded with the run's architecture); a factory defined in a
    script or a notebook must be registered again there. For every process, declare an entry point of the
    ``evoticket.models`` group instead (:mod:`evoticket.core.plugins`).

    Args:
        name: the model's name: letters, digits, ``_``, ``.``, ``-``; not one of the built-in models.
        factory: ``factory(input_shape, num_classes) -> nn.Module``, e.g. ``(3, 32, 32), 10``.
        description: one line for ``evoticket models``; default the factory's first docstring line.
        replace: replace an earlier registration of ``name`` (a notebook cell run twice).

    Raises:
        ValueError: for an invalid name, a built-in or zoo name, a name already registered (without
            ``replace``), or a factory that is not callable.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"model name {name!r}: use letters, digits, '_', '.' and '-' (no ':'), starting with a letter")
    if name in BUILTIN or name in ZOO:
        raise ValueError(f"model name {name!r} is a built-in model; choose another name")
    if name in MODELS and not replace:
        raise ValueError(f"model name {name!r} is already registered; pass replace=True to replace it")
    if not callable(factory):
        raise ValueError(f"model {name!r}: the factory must be callable as factory(input_shape, num_classes)")
    MODELS[name] = _factory_entry(factory, description)
    _PATHS[name] = factory_path(factory)


def unregister(name: str) -> None:
    """Remove a model :func:`register` added (built-in models cannot be removed).

    Raises:
        ValueError: for a name that :func:`register` did not add.
    """
    if name not in _PATHS:
        raise ValueError(f"model name {name!r} was not registered with evoticket.models.register")
    del MODELS[name], _PATHS[name]


def model_names() -> list[str]:
    """Every model name this process can use: registered ones, then the installed plugins' entry points."""
    return [*MODELS, *(n for n in entry_point_names("evoticket.models") if n not in MODELS)]


def find_factory(name: str, path: str = "", hidden: Sequence[int] = ()) -> Factory:
    """The factory ``model.name`` names.

    Looked up in order: :data:`MODELS` (a built-in model's factory builds its ``nn.Module`` at ``hidden``),
    the ``evoticket.models`` entry points, ``"package.module:factory"``, then ``path`` (the import path a run
    recorded for a model registered in-process).

    Raises:
        ConfigError: (one line naming ``model.name``) if none finds it, or the import fails.
    """
    entry = MODELS.get(name)
    if entry is not None and entry.factory is not None:
        return entry.factory
    if entry is not None:

        def builtin(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
            arch = entry.build(tuple(input_shape), int(num_classes), tuple(hidden or entry.default_hidden))
            return entry.module(arch)

        return builtin
    plugin = load_entry_point("evoticket.models", name)
    if plugin is not None:
        return plugin
    if ":" in name:
        return import_object(name, "model.name")
    if path:
        return import_object(path, "model.name")
    raise ConfigError(
        "model.name: "
        + unknown_name("model", name, model_names())
        + "; or name a factory as 'package.module:factory' (a model registered in-process with "
        "evoticket.models.register must be registered again in each process, or installed as a plugin)"
    )


def build_architecture(
    name: str,
    input_shape: Sequence[int],
    num_classes: int,
    hidden: Sequence[int] | None = None,
    *,
    prune: Sequence[str] = (),
) -> Architecture:
    """Size a model for a data set: a built-in model, or the ``nn.Module`` a factory builds.

    Args:
        name: ``model.name``: a key of :data:`MODELS`, an ``evoticket.models`` entry point, or
            ``"package.module:factory"``.
        input_shape: shape of one example, e.g. ``(40,)`` or ``(3, 32, 32)``.
        num_classes: number of classes.
        hidden: a built-in model's hidden sizes; ``None`` or empty takes its default. A factory takes none.
        prune: ``ticket.prune`` (parameter names or patterns); a built-in model with a non-empty ``prune``
            runs as a generic network.

    Raises:
        ConfigError: if ``name`` is unknown or cannot be imported, ``hidden`` does not fit, or the network
            fails its probe (see :func:`evoticket.models.generic.build_generic`).
    """
    entry = MODELS.get(name)
    if entry is not None and entry.factory is None:
        arch = entry.build(tuple(input_shape), int(num_classes), tuple(hidden or entry.default_hidden))
        if not prune:
            return arch
        return build_generic(
            name, find_factory(name, hidden=arch.hidden), input_shape, num_classes, prune=prune, hidden=arch.hidden
        )
    factory = find_factory(name)
    if hidden:
        raise ConfigError(
            f"model.hidden: {list(hidden)} sizes a built-in model ({', '.join(BUILTIN)}); {name!r} takes its sizes "
            "from its own code: leave model.hidden = []"
        )
    path = _PATHS.get(name, "")
    return build_generic(name, factory, input_shape, num_classes, prune=prune, factory_path=path)


def architecture_from_dict(d: dict) -> Architecture:
    """Rebuild an :class:`Architecture` from :meth:`Architecture.to_dict`, without importing a generic network's code."""
    if not d.get("generic"):
        return build_architecture(d["name"], d["input_shape"], d["num_classes"], d["hidden"])
    from evoticket.models.spec import LayerSpec, NormSpec

    layers = tuple(LayerSpec(**{**layer, "shape": tuple(layer["shape"])}) for layer in d["layers"])
    return Architecture(
        d["name"],
        tuple(d["input_shape"]),
        int(d["num_classes"]),
        tuple(d["hidden"]),
        layers,
        tuple(NormSpec(**n) for n in d["norms"]),
        generic=True,
        factory=d.get("factory", ""),
        prune=tuple(d.get("prune", ())),
        param_list=tuple((n, tuple(s)) for n, s in d["param_list"]),
        buffer_list=tuple((n, tuple(s), t) for n, s, t in d["buffer_list"]),
        output=d.get("output", ""),
    )
