"""The resolve step: every check that needs a data set, a model or a registry, run once, before anything is written.

:func:`resolve` turns a :class:`evoticket.config.CampaignConfig` (whose dataclasses checked each
key's type and range) into a :class:`Resolved`: the device, the loaded data on it and the sized
architecture, after checking

* registry names: data set, model, initialiser, allocation;
* model sizes (``model.hidden``) against the data's input shape; a model factory's network against the
  data (it imports, returns an ``nn.Module`` with a prunable layer, takes the data's inputs and returns
  one logit per class; :func:`evoticket.models.build_generic`), and ``ticket.prune`` against its layers;
* layer names (``ticket.layer_densities``) against the architecture;
* memory: a network or minibatch plan that cannot fit this machine (:func:`check_memory`; a method
  adds what it holds, e.g. the GA its population);
* the device (``campaign.device``), and for the Ray backend that Ray is installed and the
  cluster's address (``campaign.ray_address``) answers.

The configuration stage imports nothing downstream, so these checks live here, above the stages
they ask (data, models). :func:`evoticket.methods.resolve_run` adds the method's own checks on top
(:meth:`evoticket.methods.Method.check`: the GA's operators, survivor scheme and population, for instance).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from evoticket.config import CampaignConfig
from evoticket.core.cluster import check_backend
from evoticket.core.device import format_bytes, host_memory_bytes, resolve_device
from evoticket.core.errors import ConfigError, unknown_name
from evoticket.data import Splits, check_data_config, load_data, with_augment
from evoticket.genome import ALLOCATIONS
from evoticket.models import INITIALISERS, MODELS, Architecture, build_architecture, find_factory


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
    """Registry names of the configuration: data set, model, initialiser, allocation.

    The data set's name may be built in, registered, a plugin's or a ``package.module:factory``
    (:func:`evoticket.data.check_data_config`, which also checks ``data.augment`` against ``data.layout``).

    Raises:
        ConfigError: naming the key, with the valid names.
    """
    check_data_config(config.data)
    if config.model.name not in MODELS:  # a plugin's entry point or 'package.module:factory', imported now
        find_factory(config.model.name)
    if config.model.init not in INITIALISERS:
        raise _unknown("model.init", "initialiser", config.model.init, INITIALISERS)
    if config.ticket.allocation not in ALLOCATIONS:
        raise _unknown("ticket.allocation", "allocation", config.ticket.allocation, ALLOCATIONS)


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


MemoryNeed = tuple[int, int, int]
"""``(bytes, bytes per unit of the key's value, units held whatever the value)`` of one configuration key."""


def check_memory(
    config: CampaignConfig,
    arch: Architecture,
    n_train: int,
    available: int | None = None,
    *,
    needs: dict[str, MemoryNeed] | None = None,
) -> None:
    """Refuse, before anything runs, a run whose tickets or minibatch plan cannot fit in memory.

    Counted for every run: one ticket (theta0 float32 and masks bool, ``model.hidden``) and the int64
    minibatch index tensor of ``campaign.final_steps`` steps; a method adds what it holds (``needs``: the GA
    its population, offspring and hall of fame, and its fine-tunings' minibatch plan). A training's working
    set is bounded separately by ``campaign.max_memory_mb``.

    Args:
        config: the configuration.
        arch: the architecture of the tickets.
        n_train: training examples (caps the minibatch size).
        available: memory to check against (bytes); default :func:`evoticket.core.device.host_memory_bytes`.
        needs: the method's own: configuration key -> :data:`MemoryNeed`.

    Raises:
        ConfigError: naming the key that asks for the most memory, and how much fits.
    """
    available = host_memory_bytes() if available is None else available
    if available is None:
        return
    ticket = ticket_bytes(arch)
    batch = min(config.optimizer.batch_size, n_train)
    need: dict[str, MemoryNeed] = {
        "model.hidden": (ticket, ticket, 0),
        "campaign.final_steps": (config.campaign.final_steps * batch * 8, batch * 8, 0),
        **(needs or {}),
    }
    total = sum(n for n, _, _ in need.values())
    if total <= available:
        return
    key = max(need, key=lambda k: need[k][0])
    tickets = sum(n for n, unit, _ in need.values() if unit == ticket) // ticket
    if key == "model.hidden" or ticket * 4 > available:
        raise ConfigError(
            f"model.hidden: {list(config.model.hidden) or 'default'} makes a {arch.name} of {arch.num_params():,} "
            f"parameters, {format_bytes(ticket)} per ticket; this machine has {format_bytes(available)} for "
            f"{tickets} tickets: use smaller layers"
        )
    bytes_, unit, held = need[key]
    value = config.lookup(key)
    room = available - (total - bytes_)
    fits = max(0, room // unit - held)
    alone = "" if format_bytes(bytes_) == format_bytes(total) else f" ({format_bytes(total)} with the rest)"
    raise ConfigError(
        f"{key}: {value} needs about {format_bytes(bytes_)} of memory{alone}, which this machine's "
        f"{format_bytes(available)} cannot hold; at most about {fits:,} would fit"
    )


def ticket_bytes(arch: Architecture) -> int:
    """Bytes of one ticket held in memory: theta0 (float32) and masks (bool)."""
    return arch.num_params() * 4 + arch.num_prunable()


def resolve(config: CampaignConfig, *, splits: Splits | None = None) -> Resolved:
    """Check a configuration against its data, model and this machine; load the data onto the device.

    Args:
        config: the configuration.
        splits: data to use instead of loading ``config.data`` (moved to the device, with
            ``config.data.augment`` recorded on them).

    Returns:
        The :class:`Resolved` configuration.

    Raises:
        ConfigError: for a bad name, size, layer name, operator argument, memory plan or device.
        DataError: when the data set cannot be found or read.
    """
    check_names(config)
    check_backend(config.campaign.backend, config.campaign.ray_address)
    device = resolve_device(config.campaign.device)
    if splits is None:
        splits = load_data(config.data)  # layout, augmentation, MNIST-1D's arguments
    else:  # given data keep their shape; the augmentation is the configuration's
        splits = with_augment(splits, config.data.augment)
    splits = splits.to(device)
    arch = build_architecture(
        config.model.name, splits.input_shape, splits.num_classes, config.model.hidden, prune=config.ticket.prune
    )
    check_layer_names(config, arch)
    check_memory(config, arch, splits.x_train.shape[0])
    return Resolved(config, device, splits, arch)
