"""Ticket files: a ticket with its architecture and configuration, written whole, read back.

``best_ticket.pt`` holds the best ticket's theta0, masks, lineage and fitness; ``trained_ticket.pt``
the networks the final comparison trained from it (every seed and control, at the early-stopping
step). The public loader is :func:`evoticket.load_ticket` (these files and recipes, as a plain
``torch.nn.Module``, masks applied the way ``torch.nn.utils.prune`` does); the readers here are its
helpers: :func:`read_ticket_file` gives ``best_ticket.pt``'s genome, :func:`read_ticket_module` either
file as a module, :func:`masked_module` builds the module.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from evoticket.config import CampaignConfig
from evoticket.core.errors import EvoticketError
from evoticket.core.io import atomic_open, load_format
from evoticket.genome.ticket import Ticket, ticket_from_state
from evoticket.models import Architecture, architecture_from_dict

TICKET_FORMAT = "evoticket-ticket-v1"
"""Format tag of ``best_ticket.pt``: a ticket at its initial weights."""

TRAINED_FORMAT = "evoticket-trained-v1"
"""Format tag of ``trained_ticket.pt``: the networks the final comparison trained, per seed and control."""


def save_ticket(path: Path, ticket: Ticket, arch: Architecture, config: CampaignConfig) -> None:
    """Write a ticket (theta0, masks, lineage, fitness), its architecture and config.

    Written to a temporary file and renamed, so a crash never leaves half a
    file. The bytes depend only on the content (see :func:`_canonical`), so a
    resumed campaign writes the same file as an uninterrupted one.
    """
    payload = {
        "format": TICKET_FORMAT,
        "ticket": ticket.state_dict(),
        "architecture": arch.to_dict(),
        "config": config.to_dict(),
    }
    save_canonical(path, payload)


def save_canonical(path: Path, payload: dict[str, Any]) -> None:
    """``torch.save`` a payload atomically (:func:`evoticket.core.io.atomic_open`), its bytes a function of its
    content alone (:func:`_canonical`): the same content always writes the same file."""
    with atomic_open(path, "wb") as f:
        torch.save(_canonical(payload), f)


def _canonical(obj: Any) -> Any:
    """A copy whose pickle depends only on content, not on which objects happened to be shared.

    Pickle writes a shared object once and refers to it afterwards, so the same
    content pickles differently depending on object identity. Fresh containers,
    interned strings and fresh tensor storage remove that dependence.
    """
    if isinstance(obj, dict):
        return {_canonical(k): _canonical(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_canonical(v) for v in obj)
    if isinstance(obj, str):
        return sys.intern(obj)
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    return obj


def read_ticket_file(path: str | Path) -> tuple[Ticket, Architecture, CampaignConfig]:
    """Read the genome in a ticket file written by a campaign (``best_ticket.pt``).

    The ticket is the DEAP individual with its fitness, theta0 at every position and masks; for the
    network as a module use :func:`evoticket.load_ticket`.

    Returns:
        ``(ticket, architecture, config)``.

    Raises:
        EvoticketError: if the file is missing or is not an evoticket ticket.
    """
    path = Path(path)
    if not path.is_file():
        raise EvoticketError(f"{path}: no such ticket file (a campaign writes runs/NAME/best_ticket.pt)")
    data = load_format(path, (TICKET_FORMAT,), "ticket file", EvoticketError, weights_only=True)
    return (
        ticket_from_state(data["ticket"]),
        architecture_from_dict(data["architecture"]),
        CampaignConfig.from_dict(data["config"]),
    )


def save_trained(
    path: Path, trained: list[dict[str, dict[str, Any]]], arch: Architecture, config: CampaignConfig
) -> None:
    """Write what the final comparison trained: per seed, per control, the weights at the early-stopping step.

    Args:
        path: the file, e.g. ``runs/NAME/trained_ticket.pt``.
        trained: one dict per seed: control name (``ticket``, ``dense``, ``random``, ``reinit``) ->
            ``weights`` (parameter and BatchNorm buffer name -> tensor), ``masks``, ``best_step``
            (optimizer steps) and ``test_acc`` (in [0, 1]).
        arch: the architecture.
        config: the run's configuration.
    """
    payload = {"format": TRAINED_FORMAT, "seeds": trained, "architecture": arch.to_dict(), "config": config.to_dict()}
    save_canonical(path, payload)


def select_trained(path: Path, data: dict[str, Any], *, seed: int, control: str) -> dict[str, Any]:
    """One seed's and control's network from a loaded ``trained_ticket.pt`` payload.

    Args:
        path: the file ``data`` was read from (named in errors).
        data: the payload of a ``TRAINED_FORMAT`` file (see :func:`save_trained`).
        seed: which final-comparison seed, in [0, campaign.final_seeds).
        control: ``ticket``, ``dense``, ``random`` or ``reinit``.

    Returns:
        The entry: ``weights`` (name -> tensor), ``masks`` (weight name -> bool tensor),
        ``best_step`` (optimizer steps) and ``test_acc`` (in [0, 1]).

    Raises:
        EvoticketError: (one line naming ``path`` and the valid values) if the seed or control does not exist.
    """
    seeds = data["seeds"]
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < len(seeds):
        raise EvoticketError(f"{path}: seed {seed!r} does not exist; valid: 0 to {len(seeds) - 1}")
    if control not in seeds[seed]:
        raise EvoticketError(f"{path}: control {control!r} does not exist; valid: {', '.join(seeds[seed])}")
    return seeds[seed][control]


def read_ticket_module(path: str | Path, *, seed: int = 0, control: str = "ticket") -> nn.Module:
    """Read a ticket file as a plain ``torch.nn.Module`` (:func:`evoticket.load_ticket`'s reader of ``.pt`` files).

    ``best_ticket.pt`` gives the ticket at its initial weights theta0; ``trained_ticket.pt`` gives
    the network the final comparison trained from it (``control`` and ``seed`` choose which), with
    the weights of its early-stopping step. The masks are applied the way ``torch.nn.utils.prune``
    does: each pruned layer has a ``weight_orig`` parameter, a ``weight_mask`` buffer and
    ``weight = weight_orig * weight_mask``, so training the module keeps pruned weights at zero.

    Args:
        path: a ``best_ticket.pt`` or ``trained_ticket.pt`` file.
        seed: which final-comparison seed (``trained_ticket.pt`` only), in [0, campaign.final_seeds).
        control: ``ticket``, ``dense``, ``random`` or ``reinit`` (``trained_ticket.pt`` only).

    Returns:
        The module, on the CPU, in training mode, with ``network_only = False`` (:func:`masked_module`).

    Raises:
        EvoticketError: if the file is missing or is not an evoticket ticket, or the seed or
            control does not exist in it.
    """
    path = Path(path)
    if not path.is_file():
        raise EvoticketError(f"{path}: no such ticket file (a campaign writes runs/NAME/best_ticket.pt)")
    data = load_format(path, (TICKET_FORMAT, TRAINED_FORMAT), "ticket file", EvoticketError, weights_only=True)
    arch = architecture_from_dict(data["architecture"])
    if data["format"] == TICKET_FORMAT:
        ticket = ticket_from_state(data["ticket"])
        state, masks = ticket.theta0, ticket.masks
    else:
        entry = select_trained(path, data, seed=seed, control=control)
        state, masks = entry["weights"], entry["masks"]
    return masked_module(arch, state, masks)


def masked_module(
    arch: Architecture,
    state: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor],
    *,
    network_only: bool = False,
) -> nn.Module:
    """``arch``'s module with ``state`` loaded and ``masks`` applied as ``torch.nn.utils.prune`` does.

    Args:
        arch: the architecture.
        state: parameter (and BatchNorm buffer) name -> tensor.
        masks: weight name -> bool tensor of the weight's shape.
        network_only: whether ``state`` holds only the masked network: its values at pruned positions are
            placeholders (0.0), not the ticket's theta0 (a recipe written with ``--network-only``).

    Returns:
        The module, on the CPU, in training mode (``weight = weight_orig * weight_mask`` per masked layer),
        with a plain attribute ``network_only`` (bool): when ``True``, ``weight_orig`` at pruned positions is
        not the ticket's and only ``weight_orig * weight_mask`` is.
    """
    from torch.nn.utils import prune

    module = arch.build_module()
    module.load_state_dict(state, strict=not arch.buffer_shapes)
    for name, mask in masks.items():
        layer = module.get_submodule(name.rsplit(".", 1)[0])
        prune.custom_from_mask(layer, "weight", mask)
    module.network_only = bool(network_only)
    return module
