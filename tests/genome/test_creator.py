"""DEAP classes per fitness weights: runs in one process may choose different weights."""

from __future__ import annotations

import pickle

import torch

from evoticket.genome import FITNESS_WEIGHTS, Ticket, ensure_creator, ticket_from_state
from evoticket.models import build_architecture
from evoticket.operators import initTicket


def test_each_set_of_weights_gets_its_own_classes_and_pickles_back():
    default, other = ensure_creator(), ensure_creator((1.0, -1.0, -1.0))
    assert default is ensure_creator(FITNESS_WEIGHTS) and default.__name__ == "EvoTicket"
    assert other is not default and other is ensure_creator([1.0, -1.0, -1.0])
    arch = build_architecture("mlp", (8,), 3, [4])
    ind = initTicket(other, arch, 0.5, rng=torch.Generator().manual_seed(0))
    ind.fitness.values = (0.5, 1.2, 0.3)
    assert ind.fitness.weights == (1.0, -1.0, -1.0)
    back = pickle.loads(pickle.dumps(ind))
    assert type(back) is other and back.fitness.values == (0.5, 1.2, 0.3)
    rebuilt = ticket_from_state(ind.state_dict())
    assert type(rebuilt) is other and rebuilt.fitness_weights == (1.0, -1.0, -1.0)
    plain = initTicket(default, arch, 0.5, rng=torch.Generator().manual_seed(0))
    plain.fitness.values = (0.5, 1.2)
    assert "fitness_weights" not in plain.state_dict()  # the default weights are not written
    assert type(ticket_from_state(plain.state_dict())) is default
    assert Ticket(ind.theta0, ind.masks, "kaiming_normal", ind.init_std).fitness_weights is None
