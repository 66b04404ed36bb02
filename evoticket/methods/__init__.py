"""Ways of finding tickets, one registry: every method runs in the same campaign harness.

:data:`METHODS` maps the top-level configuration key ``method`` to a
:class:`evoticket.methods.base.Method`; the GA (``ga``) is the first entry. Each method's own
settings live in the configuration section of its name. :func:`resolve_run` is the one resolve
step of a run: the method's name, settings that belong to another method, then every check of
:func:`evoticket.resolve.resolve` and the method's own.

One module per method: :mod:`.ga` (and ``supermask_ga``), :mod:`.random_search`, :mod:`.imp`, :mod:`.gmp`,
:mod:`.rigl`, :mod:`.rigl_tuned`, :mod:`.edge_popup`, and :mod:`.onerun` (the one-run driver, with ``dense``, ``random``,
``bn_only`` and ``output_only``). A method of one's own is one module (a :class:`Method` and its
:class:`MethodRun`), one call of :func:`register_method` and, when it has settings, one configuration section (a
frozen dataclass).
"""

from __future__ import annotations

from evoticket.config import CampaignConfig, all_sections, register_section, unregister_section
from evoticket.core.errors import ConfigError, unknown_name
from evoticket.core.plugins import entry_point_names, load_entry_point
from evoticket.data import Splits
from evoticket.methods.base import THETA0_KINDS, Budget, Method, MethodResult, MethodRun, check_ensemble
from evoticket.methods.edge_popup import EdgePopup
from evoticket.methods.ga import GA, GARun, SupermaskGA, SupermaskRun
from evoticket.methods.gmp import GMP
from evoticket.methods.imp import IMP, IMPRun
from evoticket.methods.onerun import BNOnly, Dense, OneRun, OneRunMethod, OutputOnly, RandomMask
from evoticket.methods.random_search import RandomSearch, RandomSearchRun
from evoticket.methods.rigl import RigL
from evoticket.methods.rigl_tuned import RigLTuned
from evoticket.records import Hook
from evoticket.records.trackers import check_trackers
from evoticket.resolve import Resolved, resolve

METHODS: dict[str, Method] = {
    "ga": GA(),
    "imp": IMP(),
    "dense": Dense(),
    "random": RandomMask(),
    "gmp": GMP(),
    "rigl": RigL(),
    "rigl_tuned": RigLTuned(),
    "edge_popup": EdgePopup(),
    "bn_only": BNOnly(),
    "output_only": OutputOnly(),
    "supermask_ga": SupermaskGA(),
    "random_search": RandomSearch(),
}
"""Method name -> :class:`evoticket.methods.base.Method`: ``ga``, ``imp``, ``dense``, ``random``, ``gmp``,
``rigl``, ``rigl_tuned``, ``edge_popup``, ``bn_only``, ``output_only``, ``supermask_ga``, ``random_search`` (and any
:func:`register_method` adds)."""

ONE_RUN_METHODS: tuple[OneRunMethod, ...] = tuple(m for m in METHODS.values() if isinstance(m, OneRunMethod))
"""The built-in methods that train one network in one run, in the order the README lists them."""


def method_sections() -> frozenset[str]:
    """Configuration sections that belong to methods (a setting there is refused under a method that does not
    read it)."""
    return frozenset(s for m in METHODS.values() for s in m.sections)


def register_method(method: Method, *, section: type | None = None, replace: bool = False) -> Method:
    """Add a method of one's own to :data:`METHODS`, and its configuration section when it has one.

    Args:
        method: the method (its ``name`` is the value of the top-level ``method`` key).
        section: the frozen dataclass of its settings, registered under ``method.section``
            (:func:`evoticket.config.register_section`).
        replace: allow replacing a method of the same name.

    Returns:
        ``method``.

    Raises:
        ValueError: for a taken name without ``replace``, or a section without ``method.section``.
    """
    if method.name in METHODS and not replace and METHODS[method.name] is not method:
        raise ValueError(f"method {method.name!r} is registered already (replace=True to replace it)")
    if section is not None:
        if not method.section:
            raise ValueError(f"method {method.name!r}: a configuration section needs method.section (its name)")
        register_section(method.section, section)
    METHODS[method.name] = method
    return method


def unregister_method(name: str) -> None:
    """Remove a method added by :func:`register_method` (and its registered section); built-ins cannot be removed.

    Raises:
        ValueError: for a built-in method.
    """
    if name in _BUILT_IN:
        raise ValueError(f"method {name!r} is built in")
    method = METHODS.pop(name, None)
    if method is not None and method.section:
        unregister_section(method.section)


_BUILT_IN = frozenset(METHODS)


def get_method(name: str) -> Method:
    """Look a method up by name: a built-in or registered one, or an installed plugin's (entry point of
    ``evoticket.methods``, registered on first use).

    Raises:
        ConfigError: ``method: unknown method ...; valid: ...``.
    """
    if name not in METHODS:
        plugin = load_entry_point("evoticket.methods", name)
        if plugin is None:
            valid = [*METHODS, *(n for n in entry_point_names("evoticket.methods") if n not in METHODS)]
            raise ConfigError("method: " + unknown_name("method", name, valid))
        if not isinstance(plugin, Method) or plugin.name != name:
            raise ConfigError(
                f"method: plugin {name!r} (evoticket.methods) is a {type(plugin).__name__}, not an "
                f"evoticket.methods.Method named {name!r}"
            )
        section = plugin.settings if plugin.section and plugin.section not in all_sections() else None
        register_method(plugin, section=section)
    return METHODS[name]


def check_foreign_sections(config: CampaignConfig) -> None:
    """Refuse settings in a method section the chosen method does not read (they would be silently ignored).

    Raises:
        ConfigError: naming the first such key, a method that reads it and the chosen one.
    """
    default = CampaignConfig().to_dict()
    raw = config.to_dict()
    mine = set(get_method(config.method).sections)
    for section in sorted(method_sections() - mine):
        owners = [m.name for m in METHODS.values() if section in m.sections]
        for key, value in raw.get(section, {}).items():
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
        ConfigError, DataError: for a tracker that is not installed (``campaign.trackers``), an unknown method, a
            setting of another method, an ensemble larger than the
            method can keep (:func:`evoticket.methods.base.check_ensemble`), or any check of
            :func:`evoticket.resolve.resolve` or of the method.
    """
    check_trackers(config.campaign.trackers)  # before the data: a missing tracker names its pip install
    method = get_method(config.method)
    config = method.configure(config)
    check_foreign_sections(config)
    check_ensemble(method, config)
    resolved = resolve(config, splits=splits)
    method.check(resolved)
    return method, resolved


__all__ = [
    "GA",
    "IMP",
    "METHODS",
    "ONE_RUN_METHODS",
    "THETA0_KINDS",
    "Budget",
    "GARun",
    "Hook",
    "IMPRun",
    "Method",
    "MethodResult",
    "MethodRun",
    "OneRun",
    "OneRunMethod",
    "RandomSearch",
    "RandomSearchRun",
    "RigLTuned",
    "SupermaskGA",
    "SupermaskRun",
    "check_ensemble",
    "check_foreign_sections",
    "configure",
    "get_method",
    "method_sections",
    "register_method",
    "resolve_run",
    "unregister_method",
]
