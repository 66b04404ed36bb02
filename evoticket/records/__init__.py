"""Records of a run: their schema (:mod:`.schema`), what every method reports (:mod:`.report`), the writer hook
(:mod:`.writer`) and readers (:mod:`.readers`).

:mod:`.report` is the one home of an evaluated individual's record (:func:`individual_record`,
:func:`evaluation_fields`), of the end of a generation (:func:`report_generation`: hall of fame, logbook,
:class:`GenerationRecord`, hooks) and of the population statistics (:func:`make_statistics`); the GA, IMP,
the one-run methods and :class:`evoticket.campaign.RunRecorder` all call them.

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
from evoticket.records.report import (
    WORST_FITNESS,
    GenerationRecord,
    Hook,
    evaluation_fields,
    fitness_of,
    generation_spent,
    individual_record,
    make_statistics,
    report_generation,
)
from evoticket.records.schema import (
    GENERATION_COLUMNS,
    INDIVIDUAL_FIELDS,
    PARETO_COLUMNS,
    SPENT_KEYS,
    TIMING_COLUMNS,
    generation_row,
    population_diversity,
)
from evoticket.records.writer import RecordWriter

__all__ = [
    "GENERATION_COLUMNS",
    "INDIVIDUAL_FIELDS",
    "PARETO_COLUMNS",
    "SPENT_KEYS",
    "TIMING_COLUMNS",
    "WORST_FITNESS",
    "GenerationRecord",
    "Hook",
    "RecordWriter",
    "ancestors",
    "edge_kind",
    "evaluation_fields",
    "fitness",
    "fitness_of",
    "founders",
    "generation_row",
    "generation_spent",
    "generations_frame",
    "individual_record",
    "individuals_frame",
    "lineage_graph",
    "make_statistics",
    "population_diversity",
    "read_generations",
    "read_individuals",
    "read_summary",
    "report_generation",
]
