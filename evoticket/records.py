"""Append-only campaign records on disk, and their readers.

* ``individuals.jsonl``: one JSON object per evaluated individual, in
  evaluation order: ``uid``, ``generation``, ``parents`` (uids), ``operators``,
  ``density`` (weight name -> fraction kept, in [0, 1]), ``density_total``,
  ``val_acc_before`` / ``val_loss_before`` (step 0, before fine-tuning),
  ``val_acc`` / ``val_loss`` (after fine-tuning; the fitness), ``flags``
  (e.g. ``["nonfinite"]``; a diverged individual has ``val_acc`` 0 and
  ``val_loss`` null), ``reevaluated`` (false on an individual's first
  evaluation; true when a surviving parent is fine-tuned again, ``ga.reevaluate``).
* ``generations.csv``: one row per generation with the population's
  statistics (:data:`GENERATION_COLUMNS`). The timing columns ``seconds`` and
  ``finetune_seconds`` are the only ones that differ between two runs with the
  same seed.

Lineage lives in these records, not in copies of networks.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from evoticket import paths

GENERATION_COLUMNS = (
    "generation",
    "nevals",
    "val_acc_max",
    "val_acc_avg",
    "val_acc_min",
    "val_acc_std",
    "val_acc_before_max",
    "val_acc_before_avg",
    "val_acc_before_min",
    "density_avg",
    "best_uid",
    "best_density",
    "seconds",
    "finetune_seconds",
)
"""Columns of ``generations.csv``; accuracies in [0, 1], times in seconds."""

TIMING_COLUMNS = ("seconds", "finetune_seconds")
"""Columns that measure wall time and so differ between identical runs."""


def generation_row(generation: int, population: list, stats: dict, seconds: float, finetune_seconds: float) -> dict:
    """One ``generations.csv`` row from a DEAP logbook row and the population."""
    best = max(population, key=lambda ind: ind.fitness.wvalues)
    return {
        "generation": generation,
        "nevals": stats["nevals"],
        "val_acc_max": stats["fitness"]["max"],
        "val_acc_avg": stats["fitness"]["avg"],
        "val_acc_min": stats["fitness"]["min"],
        "val_acc_std": stats["fitness"]["std"],
        "val_acc_before_max": stats["before"]["max"],
        "val_acc_before_avg": stats["before"]["avg"],
        "val_acc_before_min": stats["before"]["min"],
        "density_avg": stats["density"]["avg"],
        "best_uid": best.uid,
        "best_density": best.total_density(),
        "seconds": round(seconds, 4),
        "finetune_seconds": round(finetune_seconds, 4),
    }


class RecordWriter:
    """Appends individual and generation records to a run directory.

    Each write is flushed and fsynced before the generation's checkpoint is
    taken; a resumed campaign cuts off whatever was written after it.

    Args:
        run_dir: the run directory (must exist).
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)

    def write_individuals(self, records: Iterable[dict[str, Any]]) -> None:
        """Append one JSON line per record to ``individuals.jsonl``."""
        text = "".join(json.dumps(record, sort_keys=True) + "\n" for record in records)
        with open(paths.individuals_jsonl(self.run_dir), "a", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    def write_generation(self, row: dict[str, Any]) -> None:
        """Append a row to ``generations.csv``.

        The header goes first whenever the file is empty: missing, or cut back to 0 bytes by a
        resume's rollback to the checkpoint taken before generation 0.
        """
        with open(paths.generations_csv(self.run_dir), "a", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=GENERATION_COLUMNS)
            if f.tell() == 0:
                writer.writeheader()
            writer.writerow(row)
            f.flush()
            os.fsync(f.fileno())


def read_individuals(run_dir: Path) -> list[dict[str, Any]]:
    """All records of ``individuals.jsonl``, in evaluation order."""
    with open(paths.individuals_jsonl(run_dir), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_generations(run_dir: Path) -> list[dict[str, float]]:
    """All rows of ``generations.csv``, numbers parsed (ints stay ints)."""
    with open(paths.generations_csv(run_dir), newline="", encoding="utf-8") as f:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def read_summary(run_dir: Path) -> dict[str, Any]:
    """The campaign's ``summary.json``."""
    with open(paths.summary(run_dir), encoding="utf-8") as f:
        return json.load(f)


def fsync_dir(folder: Path) -> None:
    """Make the renames inside ``folder`` durable (fsync of the directory)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: Path, mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open ``path`` for writing atomically: a temporary file, flushed, fsynced and renamed on a clean exit.

    A crash at any moment leaves either the old file or the new one, never half of one. Every
    file evoticket writes whole (configuration, checkpoints, best ticket, summary, plots) goes
    through here.

    Args:
        path: the file to write.
        mode: ``"w"`` (text) or ``"wb"`` (binary); ``kwargs`` go to :func:`open`.

    Yields:
        The open temporary file ``path.tmp``.

    Raises:
        OSError: if writing fails; the temporary file is removed and ``path`` is untouched
            (as on any exception inside the block).
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    """Write a UTF-8 text file atomically (see :func:`atomic_open`).

    Raises:
        OSError: if writing fails (the temporary file is removed).
    """
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (see :func:`atomic_write_text`), sorted keys, 2-space indent."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _number(text: str) -> float | int | str:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text
