"""Ways of finding tickets, one registry: every method runs in the same campaign harness.

:data:`METHODS` maps the top-level configuration key ``method`` to a
:class:`~evoticket.methods.base.Method`; the GA (``ga``) is the first entry. Each method's own
settings live in the configuration section of its name. :func:`resolve_run` is the one resolve
step of a run: the method's name, settings that belong to another method, then every check of
:func:`evoticket.resolve.resolve` and the method's own.
"""

from __future__ import annotations

from evoticket.config import CampaignConfig
from evoticket.core.errors import ConfigError, unknown_name
from evoticket.data import Splits
from evoticket.methods.base import Budget, Hook, Method, MethodResult, MethodRun
from evoticket.methods.ga import GA, GARun
from evoticket.methods.imp import IMP, IMPRun
from evoticket.resolve import Resolved, resolve

METHODS: dict[str, Method] = {"ga": GA(), "imp": IMP()}
"""Method name -> :class:`~evoticket.methods.base.Method`."""


def get_method(name: str) -> Method:
    """Look a method up by name.

    Raises:
        ConfigError: ``method: unknown method ...; valid: ...``.
    """
    if name not in METHODS:
        raise ConfigError("method: " + unknown_name("method", name, METHODS))
    return METHODS[name]


def check_foreign_sections(config: CampaignConfig) -> None:
    """Refuse settings of another method's section (they would be silently ignored).

    Raises:
        ConfigError: naming the first such key, its method and the chosen one.
    """
    default = CampaignConfig().to_dict()
    raw = config.to_dict()
    mine = get_method(config.method).section
    for other in METHODS.values():
        if other.section is None or other.section == mine:
            continue
        for key, value in raw[other.section].items():
            if value != default[other.section][key]:
                raise ConfigError(
                    f"{other.section}.{key}: a setting of method {other.name!r}, but method = {config.method!r}; "
                    f"remove it or set method = {other.name!r}"
                )


def resolve_run(config: CampaignConfig, *, splits: Splits | None = None) -> tuple[Method, Resolved]:
    """The one resolve step of a run, before anything is written.

    Args:
        config: the configuration.
        splits: data to use instead of loading ``config.data``.

    Returns:
        ``(method, resolved)``.

    Raises:
        ConfigError, DataError: for an unknown method, a setting of another method, or any check
            of :func:`evoticket.resolve.resolve` or of the method.
    """
    method = get_method(config.method)
    check_foreign_sections(config)
    resolved = resolve(config, splits=splits)
    method.check(resolved)
    return method, resolved


__all__ = [
    "GA",
    "IMP",
    "METHODS",
    "Budget",
    "GARun",
    "Hook",
    "IMPRun",
    "Method",
    "MethodResult",
    "MethodRun",
    "check_foreign_sections",
    "get_method",
    "resolve_run",
]
