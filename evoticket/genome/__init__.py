"""The genome of a lottery ticket: initial weights theta0 plus one mask per layer, with lineage.

:mod:`.ticket` holds :class:`Ticket` (copy-on-write clones, lineage, pickling) and stacking;
:mod:`.masks` the random and local masks and their locality; :mod:`.allocation` the per-layer densities (uniform, ERK, LTH); :mod:`.creator` the DEAP classes per fitness weights;
:mod:`.files` the ticket files (read back by :func:`evoticket.load_ticket`, the one public loader); :mod:`.sparse`
sparse CSR ticket files for inference (:func:`write_sparse`, :func:`load_sparse`); :mod:`.learned` what fine-tuning
learned (magnitudes, gradients).
"""

from __future__ import annotations

import warnings
from typing import Any

from evoticket.genome import files
from evoticket.genome.allocation import (
    ALLOCATIONS,
    erk_densities,
    layer_densities,
    lth_densities,
    ticket_densities,
)
from evoticket.genome.creator import FITNESS_WEIGHTS, ensure_creator
from evoticket.genome.files import (
    TICKET_FORMAT,
    TRAINED_FORMAT,
    save_ticket,
    save_trained,
)
from evoticket.genome.learned import (
    LEARNED_KINDS,
    Learned,
    compact_learned,
    growth_candidates,
    known_magnitudes,
    learned_nbytes,
    merge_learned,
)
from evoticket.genome.masks import (
    Locality,
    keep_largest,
    kept_count,
    local_mask,
    locality,
    position_layout,
    random_mask,
    random_masks_like,
)
from evoticket.genome.sparse import SPARSE_FORMAT, SparseLinear, load_sparse, sparse_summary, write_sparse
from evoticket.genome.ticket import (
    Ticket,
    UidCounter,
    note_crossover,
    note_variation,
    same_uid,
    stack_tickets,
    ticket_from_state,
)

__all__ = [
    "ALLOCATIONS",
    "FITNESS_WEIGHTS",
    "LEARNED_KINDS",
    "SPARSE_FORMAT",
    "TICKET_FORMAT",
    "TRAINED_FORMAT",
    "Learned",
    "Locality",
    "SparseLinear",
    "Ticket",
    "UidCounter",
    "compact_learned",
    "ensure_creator",
    "erk_densities",
    "growth_candidates",
    "keep_largest",
    "kept_count",
    "known_magnitudes",
    "layer_densities",
    "learned_nbytes",
    "load_sparse",
    "local_mask",
    "locality",
    "lth_densities",
    "merge_learned",
    "note_crossover",
    "note_variation",
    "position_layout",
    "random_mask",
    "random_masks_like",
    "same_uid",
    "save_ticket",
    "save_trained",
    "sparse_summary",
    "stack_tickets",
    "ticket_densities",
    "ticket_from_state",
    "write_sparse",
]

_DEPRECATED = {
    "load_ticket": ("read_ticket_module", "evoticket.load_ticket(path, seed=..., control=...)"),
    "load_ticket_state": ("read_ticket_file", "evoticket.genome.files.read_ticket_file(path)"),
}


def __getattr__(name: str) -> Any:
    """The names this package exported before ``evoticket.load_ticket`` became the one loader, with a warning."""
    if name in _DEPRECATED:
        helper, instead = _DEPRECATED[name]
        warnings.warn(
            f"evoticket.genome.{name} is deprecated and will be removed; use {instead}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(files, helper)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
