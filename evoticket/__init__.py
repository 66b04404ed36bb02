"""evoticket: evolve lottery tickets with a genetic algorithm and batched gradient fine-tuning.

A DEAP genetic algorithm evolves a population of tickets (initial weights
theta0 plus a pruning mask per layer; Frankle & Carbin 2019, arXiv:1803.03635).
Every individual gets a short gradient fine-tuning, the whole population
batched at once, and its validation accuracy after fine-tuning is its fitness.
The GA is one method of :data:`evoticket.methods.METHODS`; every method runs
in the same harness (training engine, records, compute meter, final comparison).

Main entry points, from Python:

    import evoticket
    config = evoticket.CampaignConfig().with_overrides(["ga.generations=5"])
    result = evoticket.run_campaign(config, name="demo")
    model = evoticket.load_ticket(result.run_dir / "best_ticket.pt")   # or a recipe (evoticket export --compact)
    rows = evoticket.records.read_individuals(result.run_dir)
    evoticket.resume_campaign(result.run_dir, ["ga.generations=10"])

The package follows the flow ``core -> config -> data, models -> genome -> operators ->
training -> resolve -> evolution -> methods -> records -> plots -> campaign -> experiment -> bench -> cli``:
each stage imports only the stages before it (checked by import-linter, see ``setup.cfg``).
"""

from __future__ import annotations

import warnings
from typing import Any

__version__ = "0.2.0"

from evoticket import operators, records
from evoticket.campaign import CampaignResult, RunRecorder, resume_campaign, run_campaign
from evoticket.config import CampaignConfig, load_config
from evoticket.core.errors import BudgetError, ConfigError, DataError, EvoticketError
from evoticket.evolution import evolve, make_toolbox
from evoticket.genome import Ticket
from evoticket.operators.recipe import load_ticket

__all__ = [
    "BudgetError",
    "CampaignConfig",
    "CampaignResult",
    "ConfigError",
    "DataError",
    "EvoticketError",
    "RunRecorder",
    "Ticket",
    "__version__",
    "evolve",
    "load_config",
    "load_ticket",
    "make_toolbox",
    "operators",
    "records",
    "resume_campaign",
    "run_campaign",
]


def __getattr__(name: str) -> Any:
    """``load_ticket_state``, removed in favour of :func:`load_ticket`, still given for a while with a warning."""
    if name == "load_ticket_state":
        from evoticket.genome.files import read_ticket_file

        warnings.warn(
            "evoticket.load_ticket_state is deprecated and will be removed; use evoticket.load_ticket(path) for the "
            "network, or evoticket.genome.files.read_ticket_file(path) for (ticket, architecture, config)",
            DeprecationWarning,
            stacklevel=2,
        )
        return read_ticket_file
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
