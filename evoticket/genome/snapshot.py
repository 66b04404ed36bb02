"""Tickets as plain data for a checkpoint: a population (identity kept) and a DEAP hall of fame.

A method's checkpoint state (:meth:`evoticket.methods.MethodRun.snapshot`) holds its tickets through these
helpers, so a checkpoint is plain data and tensors: :func:`pack_tickets` writes each distinct ticket once
(:meth:`Ticket.state_dict`) with the order they appear in, so the same individual listed twice stays one
object after :func:`unpack_tickets`; :func:`pack_hall_of_fame` and :func:`unpack_hall_of_fame` do the same
for a ``deap.tools.HallOfFame`` (its members' fitness restored, its keys rebuilt as ``HallOfFame.insert``
keeps them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from deap import tools

from evoticket.genome.ticket import Ticket, same_uid, ticket_from_state


def pack_tickets(tickets: Sequence[Ticket] | None) -> dict[str, Any] | None:
    """``{"individuals": [state, ...], "order": [index, ...]}``: each distinct ticket once, in order; ``None`` stays."""
    if tickets is None:
        return None
    unique: dict[int, int] = {}
    states = []
    for ticket in tickets:
        if id(ticket) not in unique:
            unique[id(ticket)] = len(states)
            states.append(ticket.state_dict())
    return {"individuals": states, "order": [unique[id(t)] for t in tickets]}


def unpack_tickets(data: dict[str, Any] | None) -> list[Ticket] | None:
    """The tickets of :func:`pack_tickets`, with their fitness, the same object where one was listed twice."""
    if data is None:
        return None
    unique = [ticket_from_state(s) for s in data["individuals"]]
    return [unique[i] for i in data["order"]]


def pack_hall_of_fame(hall_of_fame: tools.HallOfFame) -> dict[str, Any]:
    """``{"maxsize": n, "items": [state, ...]}`` of a DEAP hall of fame, best first."""
    return {"maxsize": hall_of_fame.maxsize, "items": [item.state_dict() for item in hall_of_fame]}


def unpack_hall_of_fame(data: dict[str, Any]) -> tools.HallOfFame:
    """The hall of fame of :func:`pack_hall_of_fame` (tickets compared by uid)."""
    hof = tools.HallOfFame(data["maxsize"], similar=same_uid)
    hof.items = [ticket_from_state(s) for s in data["items"]]
    hof.keys = [item.fitness for item in reversed(hof.items)]  # ascending, as HallOfFame.insert keeps them
    return hof


__all__ = ["pack_hall_of_fame", "pack_tickets", "unpack_hall_of_fame", "unpack_tickets"]
