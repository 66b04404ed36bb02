"""Records of a run: their schema (:mod:`.schema`), the writer hook (:mod:`.writer`) and readers (:mod:`.readers`).

For users' own analysis the records come back as lists of dicts (:func:`read_individuals`,
:func:`read_generations`), as pandas DataFrames when pandas is installed (:func:`individuals_frame`,
:func:`generations_frame`), and the genealogy as a ``networkx.DiGraph`` (:func:`lineage_graph`).

Writers append and fsync; a resumed campaign cuts off whatever was written after its checkpoint.
Readers are what plots and comparisons use: they read files, never live objects.
"""

from __future__ import annotations

from evoticket.records.frames import generations_frame, individuals_frame
from evoticket.records.lineage import ancestors, edge_kind, fitness, founders, lineage_graph
from evoticket.records.readers import read_generations, read_individuals, read_summary
from evoticket.records.schema import (
    GENERATION_COLUMNS,
    INDIVIDUAL_FIELDS,
    PARETO_COLUMNS,
    TIMING_COLUMNS,
    generation_row,
    population_diversity,
)
from evoticket.records.writer import RecordWriter

__all__ = [
    "GENERATION_COLUMNS",
    "INDIVIDUAL_FIELDS",
    "PARETO_COLUMNS",
    "TIMING_COLUMNS",
    "RecordWriter",
    "ancestors",
    "edge_kind",
    "fitness",
    "founders",
    "generation_row",
    "generations_frame",
    "individuals_frame",
    "lineage_graph",
    "population_diversity",
    "read_generations",
    "read_individuals",
    "read_summary",
]
