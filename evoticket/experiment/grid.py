"""The experiment's grid: methods x seeds x densities x data sets x allocations x budgets, as cells.

An experiment file is TOML, for example:

    [experiment]
    seeds = [0, 1, 2]
    methods = ["dense", "imp", "rigl", "ga", "ga_lamarckian"]
    densities = [0.5, 0.1]
    datasets = ["mnist1d"]
    allocations = ["uniform"]
    budgets = [1]                 # multiples of what imp spends to reach the cell's density

    [[experiment.extra]]          # more sub-grids (any axis above; the others as the main grid)
    densities = [0.1]
    budgets = [4, 16]
    methods = ["imp", "rigl", "dense", "ga"]

    [base]                        # a campaign configuration every cell starts from
    campaign.final_seeds = 1
    finetune.steps = 100          # a method's own section: only the cells of methods that read it

    [datasets.mnist1d]            # each data set's settings (over [base])
    data.name = "mnist1d"
    model.hidden = [300, 100]

    [variants.ga_lamarckian]      # a method name of the grid that is a method with settings
    method = "ga"
    finetune.mode = "lamarckian"

The main grid is the full product of its axes; each ``extra`` grid is the product of its own axes
(unset ones taken from the main grid); a cell in several grids runs once. Cell names are
``METHOD-DATASET-dDENSITY-ALLOCATION-xBUDGET-sSEED``.

The budget of a cell is ``budget x`` the training FLOPs layer-wise IMP spends to reach the cell's
density on the data set's architecture (:func:`evoticket.methods.imp.imp_flops`, exact: the meter
counts). Each method spends it the way its paper would: IMP by ``budget x imp.steps`` per round, the
GA by generations, the one-run methods (dense, RigL, ...) by longer training; ``budget.train_flops``
stops each at the budget. ``supermask_ga`` trains nothing, so no budget binds it.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from evoticket.config import CampaignConfig
from evoticket.core.errors import ConfigError

AXES = ("methods", "datasets", "densities", "allocations", "budgets", "seeds")
"""The grid's axes, in the order a cell's name gives them (seeds last)."""

DEFAULT_AXES: dict[str, list[Any]] = {
    "seeds": [0, 1, 2],
    "allocations": ["uniform"],
    "budgets": [1],
}
"""Axes an experiment may leave out."""


@dataclass(frozen=True)
class Cell:
    """One run of the experiment.

    Attributes:
        method: the grid's method name (a method of :data:`evoticket.methods.METHODS`, or a variant).
        dataset: the grid's data set name (a key of ``[datasets]``).
        density: the target density in (0, 1].
        allocation: ``ticket.allocation``.
        budget: multiple of IMP's spend (>= 0; 0 is no budget).
        seed: ``campaign.seed``.
        overrides: the cell's campaign configuration as nested plain data (before the budget is set).
    """

    method: str
    dataset: str
    density: float
    allocation: str
    budget: float
    seed: int
    overrides: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def name(self) -> str:
        """``METHOD-DATASET-dDENSITY-ALLOCATION-xBUDGET-sSEED`` (a valid run name)."""
        return f"{self.method}-{self.dataset}-d{self.density:g}-{self.allocation}-x{self.budget:g}-s{self.seed}"

    @property
    def group(self) -> tuple[str, str, float, str, float]:
        """The cell without its seed: the rows ``results.md`` aggregates."""
        return (self.method, self.dataset, self.density, self.allocation, self.budget)


@dataclass(frozen=True)
class Experiment:
    """A parsed experiment file.

    Attributes:
        raw: the file as plain data (stored in the experiment directory to refuse a changed resume).
        cells: every cell, in run order (main grid first, then each extra grid).
    """

    raw: dict[str, Any]
    cells: tuple[Cell, ...]


def merge_tables(base: dict[str, Any], more: Mapping[str, Any]) -> dict[str, Any]:
    """A deep merge of nested tables (``more`` wins); neither argument is changed."""
    out = copy.deepcopy(base)
    for key, value in more.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge_tables(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _axis(table: Mapping[str, Any], name: str, where: str, main: Mapping[str, list] | None) -> list[Any]:
    if name in table:
        values = table[name]
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}.{name}: must be a non-empty list, got {values!r}")
        return list(values)
    if main is not None:
        return list(main[name])
    if name in DEFAULT_AXES:
        return list(DEFAULT_AXES[name])
    raise ConfigError(f"{where}.{name}: missing; give a list, e.g. {name} = {['ga'] if name == 'methods' else '[...]'}")


def base_for(method: str, base: Mapping[str, Any]) -> dict[str, Any]:
    """The ``[base]`` settings a cell of ``method`` starts from: every shared section, and of the methods' own
    sections (``[finetune]`` and ``[ga]`` of the GA, ``[imp]``, ...) only those ``method`` reads.

    Raises:
        ConfigError: for an unknown method (with the valid ones).
    """
    from evoticket.methods import get_method, method_sections

    mine, theirs = set(get_method(method).sections), method_sections()
    return {k: copy.deepcopy(v) for k, v in base.items() if k not in theirs or k in mine}


def parse_experiment(raw: Mapping[str, Any]) -> Experiment:
    """Expand an experiment file's grids into cells, checking every cell's configuration.

    Raises:
        ConfigError: for an unknown table or axis, a bad axis value, an unknown data set or method, or
            a cell whose campaign configuration is invalid (the message names the cell).
    """
    from evoticket.methods import METHODS, check_foreign_sections, configure

    raw = dict(raw)
    known = {"experiment", "base", "datasets", "variants"}
    for key in raw:
        if key not in known:
            raise ConfigError(f"{key}: unknown table of an experiment file; valid: {', '.join(sorted(known))}")
    exp = raw.get("experiment")
    if not isinstance(exp, Mapping):
        raise ConfigError("experiment: missing table [experiment] with the grid's axes (methods, densities, datasets)")
    for key in exp:
        if key not in (*AXES, "extra"):
            raise ConfigError(f"experiment.{key}: unknown axis; valid: {', '.join((*AXES, 'extra'))}")
    base = raw.get("base", {})
    datasets = raw.get("datasets", {})
    variants = raw.get("variants", {})
    main = {name: _axis(exp, name, "experiment", None) for name in AXES}
    grids = [main]
    for i, extra in enumerate(exp.get("extra", [])):
        for key in extra:
            if key not in AXES:
                raise ConfigError(f"experiment.extra[{i}].{key}: unknown axis; valid: {', '.join(AXES)}")
        grids.append({name: _axis(extra, name, f"experiment.extra[{i}]", main) for name in AXES})
    cells: list[Cell] = []
    seen: set[str] = set()
    for grid in grids:
        for method, dataset, density, allocation, budget, seed in itertools.product(*(grid[a] for a in AXES)):
            if dataset not in datasets:
                raise ConfigError(
                    f"experiment.datasets: {dataset!r} has no [datasets.{dataset}] table; "
                    f"valid: {', '.join(sorted(datasets)) or 'none defined'}"
                )
            if method not in variants and method not in METHODS:
                raise ConfigError(
                    f"experiment.methods: unknown method {method!r}; valid: {', '.join(sorted({*METHODS, *variants}))}"
                )
            if not (isinstance(density, int | float) and 0 < density <= 1):
                raise ConfigError(f"experiment.densities: must be numbers in (0, 1], got {density!r}")
            if not (isinstance(budget, int | float) and budget >= 0):
                raise ConfigError(f"experiment.budgets: must be multiples >= 0 of IMP's spend, got {budget!r}")
            variant = variants.get(method, {"method": method})
            cell = Cell(method, dataset, float(density), str(allocation), float(budget), int(seed))
            if cell.name in seen:
                continue
            seen.add(cell.name)
            try:
                overrides = merge_tables(base_for(variant.get("method", method), base), datasets[dataset])
                overrides = merge_tables(overrides, variant)
                overrides.setdefault("method", method)
                overrides = merge_tables(
                    overrides,
                    {
                        "ticket": {"density": float(density), "allocation": allocation},
                        "campaign": {"seed": int(seed), "progress": False},
                    },
                )
                check_foreign_sections(configure(CampaignConfig.from_dict(overrides)))
            except ConfigError as e:
                raise ConfigError(f"cell {cell.name}: {e}") from None
            cell = dataclasses.replace(cell, overrides=overrides)
            cells.append(cell)
    return Experiment(raw, tuple(cells))


def cell_config(cell: Cell, imp_spend: int) -> CampaignConfig:
    """The campaign configuration of a cell, with its budget ``cell.budget x imp_spend`` training FLOPs.

    Each method spends it its own way (:meth:`evoticket.methods.Method.budget_overrides`): IMP by that many
    times more steps per round, the GA by generations until the budget, the one-run methods by a longer run.
    A budget of 0 leaves the cell unlimited.
    """
    from evoticket.methods import get_method

    raw = copy.deepcopy(cell.overrides)
    if cell.budget > 0:
        config = CampaignConfig.from_dict(raw)
        raw.setdefault("budget", {})["train_flops"] = round(cell.budget * imp_spend)
        raw = merge_tables(raw, get_method(config.method).budget_overrides(config, cell.budget))
    return CampaignConfig.from_dict(raw)


__all__ = [
    "AXES",
    "Cell",
    "Experiment",
    "base_for",
    "cell_config",
    "merge_tables",
    "parse_experiment",
]
