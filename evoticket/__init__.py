"""evoticket: evolve lottery tickets with a genetic algorithm and batched gradient fine-tuning.

A DEAP genetic algorithm evolves a population of tickets (initial weights
theta0 plus a pruning mask per layer; Frankle & Carbin 2019, arXiv:1803.03635).
Every individual gets a short gradient fine-tuning, the whole population
batched at once, and its validation accuracy after fine-tuning is its fitness.

Main entry points::

    import evoticket
    config = evoticket.CampaignConfig().with_overrides(["ga.generations=5"])
    result = evoticket.run_campaign(config, name="demo")
    model = evoticket.load_ticket(result.run_dir / "best_ticket.pt")
    rows = evoticket.records.read_individuals(result.run_dir)
"""

from __future__ import annotations

__version__ = "0.1.0"

from evoticket import records
from evoticket.campaign import CampaignResult, load_ticket, load_ticket_state, run_campaign
from evoticket.config import CampaignConfig, load_config
from evoticket.errors import ConfigError, DataError, EvoticketError
from evoticket.evolution import evolve, make_toolbox
from evoticket.genome import Ticket

__all__ = [
    "CampaignConfig",
    "CampaignResult",
    "ConfigError",
    "DataError",
    "EvoticketError",
    "Ticket",
    "__version__",
    "evolve",
    "load_config",
    "load_ticket",
    "load_ticket_state",
    "make_toolbox",
    "records",
    "run_campaign",
]
