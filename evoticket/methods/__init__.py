"""Ways of finding tickets, one registry: every method runs in the same campaign harness.

:data:`METHODS` maps the top-level configuration key ``method`` to a
:class:`evoticket.methods.base.Method`; the GA (``ga``) is the first entry. Each method's own
settings live in the configuration section of its name. :func:`resolve_run` is the one resolve
step of a run: the method's name, settings that belong to another method, then every check of
:func:`evoticket.resolve.resolve` and the method's own.
"""

from __future__ import annotations

from evoticket.config import CampaignConfig
from evoticket.core.errors import ConfigError, unknown_name
from evoticket.data import Splits
from evoticket.methods.base import Budget, Hook, Method, MethodResult, MethodRun
from evoticket.methods.ga import GA, GARun, SupermaskGA, SupermaskRun
from evoticket.methods.imp import IMP, IMPRun
from evoticket.methods.onerun import ONE_RUN_METHODS, OneRun, OneRunMethod
from evoticket.resolve import Resolved, resolve

METHODS: dict[str, Method] = {
    "ga": GA(),
    "imp": IMP(),
    **{m.name: m for m in ONE_RUN_METHODS},
    "supermask_ga": SupermaskGA(),
}
"""Method name -> :class:`evoticket.methods.base.Method`: ``ga``, ``imp``, ``dense``, ``random``, ``gmp``,
``rigl``, ``edge_popup``, ``bn_only``, ``output_only``, ``supermask_ga``."""

METHOD_SECTIONS: frozenset[str] = frozenset(s for m in METHODS.values() for s in m.sections)
"""Configuration sections that belong to methods (a setting there is refused under a method that does not read it)."""


def get_method(name: str) -> Method:
    """Look a method up by name.

    Raises:
        ConfigError: ``method: unknown method ...; valid: ...``.
    """
    if name not in METHODS:
        raise ConfigError("method: " + unknown_name("method", name, METHODS))
    return METHODS[name]


def check_foreign_sections(config: CampaignConfig) -> None:
    """Refuse settings in a method section the chosen method does not read (they would be silently ignored).

    Raises:
        ConfigError: naming the first such key, a method that reads it and the chosen one.
    """
    default = CampaignConfig().to_dict()
    raw = config.to_dict()
    mine = set(get_method(config.method).sections)
    for section in sorted(METHOD_SECTIONS - mine):
        owners = [m.name for m in METHODS.values() if section in m.sections]
        for key, value in raw[section].items():
            if value != default[section][key]:
                who = f"method {owners[0]!r}" if len(owners) == 1 else "methods " + ", ".join(owners)
                raise ConfigError(
                    f"{section}.{key}: a setting of {who}, but method = {config.method!r}; "
                    f"remove it or set method = {owners[0]!r}"
                )


def configure(config: CampaignConfig) -> CampaignConfig:
    """The configuration the chosen method runs with (:meth:`Method.configure`; e.g. ``supermask_ga``'s ``finetune.steps = 0``).

    Raises:
        ConfigError: for an unknown method or a setting the method cannot honour.
    """
    return get_method(config.method).configure(config)


def resolve_run(config: CampaignConfig, *, splits: Splits | None = None) -> tuple[Method, Resolved]:
    """The one resolve step of a run, before anything is written.

    Args:
        config: the configuration.
        splits: data to use instead of loading ``config.data``.

    Returns:
        ``(method, resolved)``; ``resolved.config`` is the configuration the method runs with
        (:func:`configure`).

    Raises:
        ConfigError, DataError: for an unknown method, a setting of another method, or any check
            of :func:`evoticket.resolve.resolve` or of the method.
    """
    method = get_method(config.method)
    config = method.configure(config)
    check_foreign_sections(config)
    resolved = resolve(config, splits=splits)
    method.check(resolved)
    return method, resolved


__all__ = [
    "GA",
    "IMP",
    "METHODS",
    "METHOD_SECTIONS",
    "Budget",
    "GARun",
    "Hook",
    "IMPRun",
    "Method",
    "MethodResult",
    "MethodRun",
    "OneRun",
    "OneRunMethod",
    "SupermaskGA",
    "SupermaskRun",
    "check_foreign_sections",
    "configure",
    "get_method",
    "resolve_run",
]
