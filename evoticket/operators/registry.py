"""One registry of operators: each entry holds everything evoticket knows about an operator.

An :class:`Operator` entry names its function, its kind (``init``, ``mutation``, ``crossover``), its
default keyword hyper-parameters, the valid range of each, whether it keeps every layer's kept count,
and what it needs an evaluation to return (the learned traits of :mod:`evoticket.operators.informed`).
:data:`OPERATORS` holds the entries by name; :func:`register_operator` adds one (a plugin, a user's own
operator), and :data:`INITS`, :data:`MUTATIONS` and :data:`CROSSOVERS` are live views of it by kind (name
-> function, as rigl's ``MASK_TYPES``). :func:`traits_needed` reads what a DEAP toolbox's ``mutate`` and
``mate`` need from the entries of the operators registered there, so a user's own toolbox gets the
learned traits without setting anything by hand.

:data:`SURVIVORS` holds the survivor schemes of (mu + lambda), each with its parent selection.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from evoticket.core.errors import ConfigError
from evoticket.core.plugins import load_entry_point
from evoticket.genome import LEARNED_KINDS

Check = tuple[Callable[[Any], bool], str]
"""``(holds(value), what would be valid)`` for one keyword hyper-parameter."""


@dataclass(frozen=True)
class Operator:
    """An operator as the registry knows it.

    Attributes:
        name: registry name (DEAP's prefixes: ``init``, ``mut``, ``cx``).
        func: ``(individual(s), **hyper, rng) -> tuple`` (DEAP's contract, :mod:`evoticket.operators`).
        kind: ``"init"``, ``"mutation"`` or ``"crossover"``.
        defaults: default keyword hyper-parameters (what ``ga.operator_args`` may override).
        checks: hyper-parameter name -> ``(holds(value), what would be valid)``.
        density_preserving: every individual keeps each layer's exact kept count.
        needs: ``kwargs -> "none" | "magnitudes" | "gradients"``: what it needs an evaluation to return
            (fine-tuned magnitudes, dense-gradient growth candidates); ``None``: nothing.
    """

    name: str
    func: Callable[..., Any]
    kind: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    checks: Mapping[str, Check] = field(default_factory=dict)
    density_preserving: bool = False
    needs: Callable[[Mapping[str, Any]], str] | None = None

    def arguments(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Its keyword arguments: :attr:`defaults` updated by ``overrides``."""
        return {**self.defaults, **(overrides or {})}

    def needed(self, kwargs: Mapping[str, Any] | None = None) -> str:
        """What it needs an evaluation to return with ``kwargs`` (one of :data:`evoticket.genome.LEARNED_KINDS`)."""
        return "none" if self.needs is None else self.needs(self.arguments(kwargs))

    def check_arguments(self, args: Mapping[str, Any], key: str = "ga.operator_args") -> None:
        """Check keyword hyper-parameters against the operator's own.

        Args:
            args: name -> value.
            key: the configuration key they come from, named in errors.

        Raises:
            ConfigError: ``KEY.NAME.ARG: unknown argument; valid: ...`` or ``KEY.NAME.ARG: must be ..., got V``.
        """
        for arg, value in args.items():
            if arg not in self.defaults:
                valid = ", ".join(self.defaults) or "none"
                raise ConfigError(f"{key}.{self.name}.{arg}: unknown argument; valid: {valid}")
            if arg in self.checks and not self.checks[arg][0](value):
                raise ConfigError(f"{key}.{self.name}.{arg}: {self.checks[arg][1]}, got {value!r}")


OPERATORS: dict[str, Operator] = {}
"""Operator name -> :class:`Operator`: every initialiser, mutation and crossover (see :func:`register_operator`)."""

KINDS = ("init", "mutation", "crossover")
"""The kinds of operator."""


def register_operator(operator: Operator, *, replace: bool = False) -> Operator:
    """Add an operator to :data:`OPERATORS` (and so to the view of its kind and to ``ga.mutations``/``ga.crossover``).

    Args:
        operator: the entry.
        replace: allow replacing an entry of the same name.

    Returns:
        ``operator``.

    Raises:
        ValueError: for an unknown kind, a default outside its own check, or a taken name without ``replace``.
    """
    if operator.kind not in KINDS:
        raise ValueError(f"operator {operator.name!r}: kind must be one of {KINDS}, got {operator.kind!r}")
    for arg, value in operator.defaults.items():
        if arg in operator.checks and not operator.checks[arg][0](value):
            raise ValueError(f"operator {operator.name!r}: default {arg} = {value!r} {operator.checks[arg][1]}")
    if operator.name in OPERATORS and not replace and OPERATORS[operator.name] != operator:
        raise ValueError(f"operator {operator.name!r} is registered already (replace=True to replace it)")
    OPERATORS[operator.name] = operator
    return operator


def load_operator_plugin(name: str) -> Operator | None:
    """The operator an installed plugin declares as ``name`` (entry point of ``evoticket.operators``), registered in
    :data:`OPERATORS` on first use; ``None`` when no plugin declares it.

    Raises:
        ConfigError: when the plugin cannot be imported or does not name an :class:`Operator` called ``name``.
    """
    if not isinstance(name, str):
        return None
    plugin = load_entry_point("evoticket.operators", name)
    if plugin is None:
        return None
    if not isinstance(plugin, Operator) or plugin.name != name:
        raise ConfigError(
            f"plugin {name!r} (evoticket.operators) is a {type(plugin).__name__}, not an evoticket.operators.Operator "
            f"named {name!r}"
        )
    return register_operator(plugin)


class KindView(Mapping[str, Callable[..., Any]]):
    """A live, read-only view of :data:`OPERATORS` of one kind: name -> function.

    Args:
        kind: one of :data:`KINDS`.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def _names(self) -> list[str]:
        return [name for name, op in OPERATORS.items() if op.kind == self.kind]

    def __getitem__(self, name: str) -> Callable[..., Any]:
        op = OPERATORS.get(name) or load_operator_plugin(name)
        if op is None or op.kind != self.kind:
            raise KeyError(name)
        return op.func

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __repr__(self) -> str:
        return f"KindView({self.kind!r}: {', '.join(self._names())})"


INITS = KindView("init")
"""Initialiser name -> function ``(container, arch, density, *, rng, ...)`` (a live view of :data:`OPERATORS`)."""

MUTATIONS = KindView("mutation")
"""Mutation name -> function ``(individual, **hyper, rng) -> (individual,)`` (a live view of :data:`OPERATORS`)."""

CROSSOVERS = KindView("crossover")
"""Crossover name -> function ``(ind1, ind2, **hyper, rng) -> (ind1, ind2)`` (a live view of :data:`OPERATORS`)."""


def _by_function(func: Callable[..., Any]) -> Operator | None:
    for op in OPERATORS.values():
        if op.func is func:
            return op
    return None


def _unwrap(entry: Any) -> Iterable[tuple[Operator, dict[str, Any]]]:
    """The registered operators inside a toolbox entry, with their keyword arguments."""
    if isinstance(entry, functools.partial):
        if "operators" in entry.keywords:  # evoticket's mutate: several operators in turn
            for inner in entry.keywords["operators"]:
                yield from _unwrap(inner)
            return
        op = _by_function(entry.func)
        if op is not None:
            yield op, {k: v for k, v in entry.keywords.items() if k != "rng"}
        else:
            yield from _unwrap(entry.func)
        return
    func, kwargs = getattr(entry, "func", None), getattr(entry, "kwargs", None)
    if callable(func) and isinstance(kwargs, Mapping):  # a seeded operator (evoticket.operators.recipe.Seeded)
        op = _by_function(func)
        if op is not None:
            yield op, dict(kwargs)
        return
    op = _by_function(entry)
    if op is not None:
        yield op, {}


def traits_needed(*entries: Any) -> str:
    """What a toolbox's operators need an evaluation to return, read from their registry entries.

    Args:
        entries: toolbox entries (``toolbox.mutate``, ``toolbox.mate``): registered functions, ``functools.partial``
            of them (as ``toolbox.register`` makes), evoticket's seeded operators, or evoticket's ``mutate`` that
            applies several operators in turn. A function evoticket does not know needs nothing.

    Returns:
        The largest need, one of :data:`evoticket.genome.LEARNED_KINDS`.
    """
    kinds = {"none"}
    for entry in entries:
        for op, kwargs in _unwrap(entry):
            kinds.add(op.needed(kwargs))
    return max(kinds, key=LEARNED_KINDS.index)


@dataclass(frozen=True)
class SurvivorScheme:
    """A survivor scheme of (mu + lambda), with the parent selection that goes with it.

    Attributes:
        name: registry name (``ga.survival``).
        select: ``(individuals, k, *, elitism, tournsize) -> k survivors`` (DEAP's ``toolbox.select``).
        select_parents: ``(individuals, k, *, tournsize) -> k parents`` (``toolbox.select_parents``).
        multi_objective: the scheme needs a multi-objective fitness (two or more ``ga.objectives``).
    """

    name: str
    select: Callable[..., list]
    select_parents: Callable[..., list]
    multi_objective: bool = False


SURVIVORS: dict[str, SurvivorScheme] = {}
"""Survivor scheme name -> :class:`SurvivorScheme` (``ga.survival``)."""


__all__ = [
    "CROSSOVERS",
    "INITS",
    "KINDS",
    "MUTATIONS",
    "OPERATORS",
    "SURVIVORS",
    "Check",
    "KindView",
    "Operator",
    "SurvivorScheme",
    "load_operator_plugin",
    "register_operator",
    "traits_needed",
]
