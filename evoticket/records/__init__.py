"""Records of a run: their schema (:mod:`.schema`), the writer hook (:mod:`.writer`) and readers (:mod:`.readers`).

Writers append and fsync; a resumed campaign cuts off whatever was written after its checkpoint.
Readers are what plots and comparisons use: they read files, never live objects.
"""

from __future__ import annotations

from evoticket.records.readers import read_generations, read_individuals, read_summary
from evoticket.records.schema import GENERATION_COLUMNS, INDIVIDUAL_FIELDS, TIMING_COLUMNS, generation_row
from evoticket.records.writer import RecordWriter

__all__ = [
    "GENERATION_COLUMNS",
    "INDIVIDUAL_FIELDS",
    "TIMING_COLUMNS",
    "RecordWriter",
    "generation_row",
    "read_generations",
    "read_individuals",
    "read_summary",
]
