"""Plugins: registries that other packages extend, through Python entry points or in-process.

A package registers models, data sets, operators and methods for every process by declaring entry points in
its own metadata, one group per registry (``evoticket.models``, ``evoticket.datasets``, ``evoticket.operators``,
``evoticket.methods``), e.g. in its ``pyproject.toml``:

    [project.entry-points."evoticket.models"]
    my_net = "my_package.nets:make_net"

Each registry reads its group once, the first time a name is looked up that it does not hold
(:func:`entry_point_names`, :func:`load_entry_point`), so a run directory whose configuration names a plugin's
model is read back by ``resume``, ``plot`` and ``export`` in any later process where the plugin is installed.
In-process registration (``evoticket.models.register("name", factory)``) is for notebooks and tests.

What each group's entry points name:

* ``evoticket.models``: a factory ``factory(input_shape, num_classes) -> nn.Module``;
* ``evoticket.datasets``: a loader ``loader(*, root, val_fraction, seed) -> Splits``;
* ``evoticket.operators``: an :class:`evoticket.operators.Operator` whose ``name`` is the entry point's;
* ``evoticket.methods``: an :class:`evoticket.methods.Method` whose ``name`` is the entry point's; with a
  configuration section, its ``section`` names it and its ``settings`` attribute is the section's dataclass.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from evoticket.core.errors import ConfigError

GROUPS = ("evoticket.models", "evoticket.datasets", "evoticket.operators", "evoticket.methods")
"""The entry-point groups evoticket reads."""


def _entry_points(group: str) -> list[metadata.EntryPoint]:
    return list(metadata.entry_points(group=group))


def entry_point_names(group: str) -> list[str]:
    """The names declared in an entry-point group by every installed distribution, sorted."""
    return sorted({ep.name for ep in _entry_points(group)})


def load_entry_point(group: str, name: str) -> Any | None:
    """The object an installed distribution declares as ``name`` in ``group``, or ``None`` when none does.

    Raises:
        ConfigError: when the declared object cannot be imported (one line naming the entry point and why).
    """
    for ep in _entry_points(group):
        if ep.name == name:
            try:
                return ep.load()
            except Exception as e:  # an installed plugin that does not import: say which and why
                raise ConfigError(
                    f"plugin {name!r} ({group} = {ep.value}): cannot be loaded: {type(e).__name__}: {e}"
                ) from None
    return None


_LOADED: dict[str, dict[str, Any]] = {}


def load_group(group: str) -> dict[str, Any]:
    """Every object an entry-point group declares, loaded once per process: name -> object.

    Raises:
        ConfigError: when a declared object cannot be imported (one line naming the entry point and why).
    """
    if group not in _LOADED:
        _LOADED[group] = {name: load_entry_point(group, name) for name in entry_point_names(group)}
    return _LOADED[group]


def _import_module(name: str) -> Any:
    """``importlib.import_module``, then once more with the current working directory on ``sys.path``."""
    import importlib
    import os
    import sys

    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        here = os.getcwd()
        top = name.split(".")[0]
        if e.name != top or here in sys.path or "" in sys.path:
            raise
        sys.path.append(here)  # after everything installed: a file here never shadows a package
        return importlib.import_module(name)


def import_object(spec: str, key: str) -> Any:
    """The object named by ``"package.module:attribute"`` (dots allowed after the colon for nested attributes).

    The module is looked up on ``sys.path`` and then in the current working directory (as ``python -m`` and
    ``uvicorn`` find a module beside you), so ``evoticket run --set model.name=mynets:make`` finds ``./mynets.py``.

    Args:
        spec: the import path.
        key: the configuration key it comes from, named in errors (``model.name``, ``data.name``).

    Raises:
        ConfigError: ``KEY: cannot import 'spec': ...`` when the module or the attribute is missing.
    """

    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(f"{key}: {spec!r} is not 'package.module:name'")
    try:
        obj: Any = _import_module(module_name)
    except Exception as e:
        hint = "; give a module importable from here (or install its package)" if isinstance(e, ImportError) else ""
        raise ConfigError(f"{key}: cannot import {spec!r}: {type(e).__name__}: {e}{hint}") from None
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"{key}: cannot import {spec!r}: module {module_name!r} has no attribute {attribute!r}")
        obj = getattr(obj, part)
    return obj


__all__ = ["GROUPS", "entry_point_names", "import_object", "load_entry_point", "load_group"]
