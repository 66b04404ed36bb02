"""The resolve step: every check that needs a data set, a model or a registry, run once, before anything is written.

:func:`resolve` turns a :class:`evoticket.config.CampaignConfig` (whose dataclasses checked each
key's type and range) into a :class:`Resolved`: the device, the loaded data on it and the sized
architecture, after checking

* registry names: data set, model, initialiser, allocation, crossover, mutations, survivor scheme;
* model sizes (``model.hidden``) against the data's input shape;
* layer names (``ticket.layer_densities``) against the architecture;
* operator arguments (``ga.operator_args``) against each operator's parameters and ranges;
* memory: a population, offspring count, network or minibatch plan that cannot fit this machine;
* the device (``campaign.device``), and for the Ray backend that Ray is installed and the
  cluster's address (``campaign.ray_address``) answers.

The configuration stage imports nothing downstream, so these checks live here, above the stages
they ask (data, models, operators, training). :func:`evoticket.methods.resolve_run` adds the
method's own checks on top.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from evoticket.config import CampaignConfig
from evoticket.core.cluster import check_backend
from evoticket.core.device import format_bytes, host_memory_bytes, resolve_device
from evoticket.core.errors import ConfigError, unknown_name
from evoticket.data import DATASETS, Splits, load_dataset, load_mnist1d
from evoticket.genome import ALLOCATIONS
from evoticket.models import INITIALISERS, MODELS, Architecture, build_architecture
from evoticket.operators import ARG_CHECKS, CROSSOVER_DEFAULTS, CROSSOVERS, MUTATION_DEFAULTS, MUTATIONS, SURVIVORS


@dataclass(frozen=True)
class Resolved:
    """A configuration checked against its data and model, ready to run.

    Attributes:
        config: the configuration.
        device: where training runs.
        splits: the data, on ``device``.
        arch: the architecture, sized for the data.
    """

    config: CampaignConfig
    device: torch.device
    splits: Splits
    arch: Architecture


def _unknown(key: str, what: str, name: str, valid: Any) -> ConfigError:
    return ConfigError(f"{key}: " + unknown_name(what, name, valid))


def check_names(config: CampaignConfig) -> None:
    """Registry names of the configuration: data set, model, initialiser, operators, survivor scheme.

    Raises:
        ConfigError: naming the key, with the valid names.
    """
    if config.data.name not in DATASETS:
        raise _unknown("data.name", "data set", config.data.name, DATASETS)
    if config.data.mnist1d and config.data.name != "mnist1d":
        raise ConfigError(
            f"data.mnist1d: MNIST-1D's generator arguments need data.name = 'mnist1d', got {config.data.name!r} "
            "(or data.mnist1d = {})"
        )
    if config.model.name not in MODELS:
        raise _unknown("model.name", "model", config.model.name, MODELS)
    if config.model.init not in INITIALISERS:
        raise _unknown("model.init", "initialiser", config.model.init, INITIALISERS)
    if config.ticket.allocation not in ALLOCATIONS:
        raise _unknown("ticket.allocation", "allocation", config.ticket.allocation, ALLOCATIONS)
    ga = config.ga
    if ga.crossover not in CROSSOVERS:
        raise _unknown("ga.crossover", "crossover", ga.crossover, CROSSOVERS)
    for op in ga.mutations:
        if op not in MUTATIONS:
            raise _unknown("ga.mutations", "mutation", op, MUTATIONS)
    if ga.survival not in SURVIVORS:
        raise _unknown("ga.survival", "survivor scheme", ga.survival, SURVIVORS)
    defaults = {**MUTATION_DEFAULTS, **CROSSOVER_DEFAULTS}
    for op, args in ga.operator_args.items():
        if op not in defaults:
            raise _unknown("ga.operator_args", "operator", op, defaults)
        for arg, value in args.items():
            if arg not in defaults[op]:
                valid = ", ".join(defaults[op]) or "none"
                raise ConfigError(f"ga.operator_args.{op}.{arg}: unknown argument; valid: {valid}")
            if arg in ARG_CHECKS and not ARG_CHECKS[arg][0](value):
                raise ConfigError(f"ga.operator_args.{op}.{arg}: {ARG_CHECKS[arg][1]}, got {value!r}")


def check_layer_names(config: CampaignConfig, arch: Architecture) -> None:
    """``ticket.layer_densities`` names prunable weights of ``arch``.

    Raises:
        ConfigError: naming the key and the valid weight names.
    """
    for name in config.ticket.layer_densities:
        if name not in arch.weight_names:
            raise ConfigError(
                f"ticket.layer_densities.{name}: not a prunable weight of {arch.name!r}; "
                f"valid: {', '.join(arch.weight_names)}"
            )


def check_memory(config: CampaignConfig, arch: Architecture, n_train: int, available: int | None = None) -> None:
    """Refuse, before anything runs, a campaign whose tickets or minibatch plan cannot fit in memory.

    Counted: theta0 (float32) and masks (bool) of ``ga.population`` + offspring tickets and the
    hall of fame, and the int64 minibatch index tensors of ``finetune.steps`` and
    ``campaign.final_steps`` steps. A fine-tuning's working set is bounded separately by
    ``finetune.max_memory_mb``.

    Args:
        config: the campaign configuration.
        arch: the architecture of the tickets.
        n_train: training examples (caps the minibatch size).
        available: memory to check against (bytes); default :func:`evoticket.core.device.host_memory_bytes`.

    Raises:
        ConfigError: naming the key that asks for the most memory, and how much fits.
    """
    available = host_memory_bytes() if available is None else available
    if available is None:
        return
    ga, ft, c = config.ga, config.finetune, config.campaign
    ticket = arch.num_params() * 4 + arch.num_prunable()  # bytes
    batch = min(ft.batch_size, n_train)
    need = {
        "model.hidden": ticket,
        "ga.population": (ga.population + ga.hall_of_fame) * ticket,
        "ga.offspring": ga.num_offspring * ticket,
        "finetune.steps": ft.steps * batch * 8,
        "campaign.final_steps": c.final_steps * batch * 8,
    }
    total = sum(need.values())
    if total <= available:
        return
    key = max(need, key=need.get)
    if key == "model.hidden" or ticket * 4 > available:
        raise ConfigError(
            f"model.hidden: {list(config.model.hidden) or 'default'} makes a {arch.name} of {arch.num_params():,} "
            f"parameters, {format_bytes(ticket)} per ticket; this machine has {format_bytes(available)} for "
            f"{ga.population + ga.num_offspring} tickets: use smaller layers"
        )
    section, name = key.split(".")
    value = getattr(getattr(config, section), name)
    room = available - (total - need[key])
    unit = ticket if key.startswith("ga.") else batch * 8
    fits = max(0, room // unit - (ga.hall_of_fame if key == "ga.population" else 0))
    alone = "" if format_bytes(need[key]) == format_bytes(total) else f" ({format_bytes(total)} with the rest)"
    raise ConfigError(
        f"{key}: {value} needs about {format_bytes(need[key])} of memory{alone}, which this machine's "
        f"{format_bytes(available)} cannot hold; at most about {fits:,} would fit"
    )


def resolve(config: CampaignConfig, *, splits: Splits | None = None) -> Resolved:
    """Check a configuration against its data, model and this machine; load the data onto the device.

    Args:
        config: the configuration.
        splits: data to use instead of loading ``config.data`` (moved to the device).

    Returns:
        The :class:`Resolved` configuration.

    Raises:
        ConfigError: for a bad name, size, layer name, operator argument, memory plan or device.
        DataError: when the data set cannot be found or read.
    """
    check_names(config)
    check_backend(config.campaign.backend, config.campaign.ray_address)
    device = resolve_device(config.campaign.device)
    if splits is None and config.data.mnist1d:  # a variant of MNIST-1D (check_names: data.name is mnist1d)
        splits = load_mnist1d(val_fraction=config.data.val_fraction, seed=config.data.seed, args=config.data.mnist1d)
    elif splits is None:
        splits = load_dataset(
            config.data.name,
            root=config.data.root or None,
            val_fraction=config.data.val_fraction,
            seed=config.data.seed,
        )
    splits = splits.to(device)
    arch = build_architecture(config.model.name, splits.input_shape, splits.num_classes, config.model.hidden)
    check_layer_names(config, arch)
    check_memory(config, arch, splits.x_train.shape[0])
    return Resolved(config, device, splits, arch)
