"""Reading a run's records back: individuals, generations, summary."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from evoticket.core import paths


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


def _number(text: str) -> float | int | str:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text
