"""Appending records to a run directory: :class:`RecordWriter`, also a generation hook."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from evoticket.core import paths
from evoticket.core.faults import kill_point
from evoticket.records.schema import GENERATION_COLUMNS, PARETO_COLUMNS, generation_row


class RecordWriter:
    """Appends individual and generation records to a run directory.

    Each write is flushed and fsynced before the generation's checkpoint is
    taken; a resumed campaign cuts off whatever was written after it.

    Args:
        run_dir: the run directory (must exist).
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)

    def __call__(self, generation: int, population: list, record: Any) -> None:
        """The hook ``(generation, population, record)``: append the generation's individuals and its row.

        ``record`` is a :class:`evoticket.records.GenerationRecord`; its evaluated individuals'
        ``eval_record`` dicts are written, then (multi-objective runs) its Pareto front to ``pareto.csv``, then
        the ``generations.csv`` row.
        """
        self.write_individuals(ind.eval_record for ind in record.evaluated)
        kill_point("records")
        front = getattr(record, "front", None)
        if front is not None:
            self.write_front(front)
        hypervolume = getattr(record, "hypervolume", None)
        self.write_generation(
            generation_row(
                generation, population, record.stats, record.seconds, record.finetune_seconds, record.spent, hypervolume
            )
        )

    def write_individuals(self, records: Iterable[dict[str, Any]]) -> None:
        """Append one JSON line per record to ``individuals.jsonl``."""
        text = "".join(json.dumps(record, sort_keys=True) + "\n" for record in records)
        with open(paths.individuals_jsonl(self.run_dir), "a", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    def write_front(self, rows: Iterable[dict[str, Any]]) -> None:
        """Append a generation's Pareto front to ``pareto.csv`` (:data:`evoticket.records.PARETO_COLUMNS`)."""
        self._append_csv(paths.pareto_csv(self.run_dir), PARETO_COLUMNS, rows)

    def write_generation(self, row: dict[str, Any]) -> None:
        """Append a row to ``generations.csv``.

        The header goes first whenever the file is empty: missing, or cut back to 0 bytes by a
        resume's rollback to the checkpoint taken before generation 0.
        """
        self._append_csv(paths.generations_csv(self.run_dir), GENERATION_COLUMNS, [row])

    @staticmethod
    def _append_csv(path: Path, columns: tuple[str, ...], rows: Iterable[dict[str, Any]]) -> None:
        with open(path, "a", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            if f.tell() == 0:
                writer.writeheader()
            writer.writerows(rows)
            f.flush()
            os.fsync(f.fileno())
