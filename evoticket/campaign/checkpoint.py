"""Checkpoints: everything needed to continue a campaign exactly where it stopped.

A checkpoint is written after every generation (and once before generation
0), atomically: to a temporary file, flushed and fsynced, then renamed over
its final name, so a job killed at any moment leaves the previous checkpoint
intact. The last :data:`KEEP` checkpoints are kept; a corrupted or truncated
one is skipped (with a warning) in favour of the one before it.

A checkpoint holds what every run has: the generation (round) number, the
configuration and its hash, the global random generators' states (Python
``random``, NumPy, torch CPU and CUDA), the campaign's counters and the byte
sizes of the record files at that moment (on resume, records written after the
checkpoint are cut off, so the resumed campaign writes exactly what an
uninterrupted one would have: no line missing, none duplicated); and the
method's own state, opaque here (:meth:`evoticket.methods.MethodRun.snapshot`:
the GA's population, hall of fame, logbook, uid counter, operators' generator
and fitness cache; IMP's next mask and rewind weights; ...).

Checkpoints of evoticket 0.2 (format v1) are read too: their population, hall of
fame, logbook, counter and extra entries become the method's state.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from evoticket.core import paths
from evoticket.core.errors import CheckpointError, StorageError
from evoticket.core.faults import kill_point
from evoticket.core.io import atomic_open, load_format

FORMAT = "evoticket-checkpoint-v2"

OLD_FORMATS = ("evoticket-checkpoint-v1",)
"""Formats still read (converted on load)."""

KEEP = 2
"""Checkpoints kept on disk (the newest ones)."""

_NAME = re.compile(r"^gen-(-?\d+)\.pt$")


@dataclass
class Checkpoint:
    """The state of a run after a completed generation (round).

    Attributes:
        generation: last completed generation (round); -1 before the first.
        config: the resolved configuration (plain data) and ``config_hash`` its hash.
        rng: the global random generators' states (:func:`evoticket.core.seeds.capture_rng`).
        records: record file name -> byte size at this checkpoint.
        counters: evaluated individuals and accumulated timings (seconds).
        state: the method's own state (:meth:`evoticket.methods.MethodRun.snapshot`), opaque to the campaign.
    """

    generation: int
    config: dict[str, Any]
    config_hash: str
    rng: dict[str, Any]
    records: dict[str, int] = field(default_factory=dict)
    counters: dict[str, float] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)


def record_sizes(run_dir: Path) -> dict[str, int]:
    """Byte size of each record file (0 where it does not exist yet)."""
    files = (paths.individuals_jsonl(run_dir), paths.generations_csv(run_dir), paths.pareto_csv(run_dir))
    return {p.name: p.stat().st_size if p.exists() else 0 for p in files}


def rollback_records(run_dir: Path, sizes: dict[str, int]) -> dict[str, int]:
    """Cut each record file back to its size at a checkpoint.

    Returns:
        File name -> bytes removed (only files that had grown).

    Raises:
        CheckpointError: if a record file is shorter than the checkpoint says
            (records were lost or replaced: resuming would leave a gap).
    """
    removed = {}
    for name, size in sizes.items():
        path = Path(run_dir) / name
        current = path.stat().st_size if path.exists() else 0
        if current < size:
            raise CheckpointError(
                f"{path}: has {current} bytes but the checkpoint recorded {size}; the records were truncated or replaced"
            )
        if current > size:
            with open(path, "r+b") as f:
                f.truncate(size)
                f.flush()
                os.fsync(f.fileno())
            removed[name] = current - size
    return removed


def _to_payload(ckpt: Checkpoint) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "generation": ckpt.generation,
        "config": ckpt.config,
        "config_hash": ckpt.config_hash,
        "rng": ckpt.rng,
        "records": ckpt.records,
        "counters": ckpt.counters,
        "state": ckpt.state,
    }


def _from_payload(data: dict[str, Any]) -> Checkpoint:
    if data["format"] in OLD_FORMATS:  # v1: the GA-shaped fields at the top become the method's state
        rng = dict(data["rng"])
        state = {
            "generation": data["generation"],
            "population": data["population"],
            "hall_of_fame": data["hall_of_fame"],
            "logbook": data["logbook"],
            "next_uid": data["next_uid"],
            "operators_rng": rng.pop("operators"),
            **(data.get("extra") or {}),
        }
        return Checkpoint(
            data["generation"], data["config"], data["config_hash"], rng, data["records"], data["counters"], state
        )
    return Checkpoint(
        data["generation"],
        data["config"],
        data["config_hash"],
        data["rng"],
        data["records"],
        data["counters"],
        data["state"],
    )


def save_checkpoint(run_dir: Path, ckpt: Checkpoint) -> Path:
    """Write a checkpoint atomically and keep only the newest :data:`KEEP`.

    Returns:
        The checkpoint's path, ``RUN_DIR/checkpoints/gen-NNNNNN.pt``.

    Raises:
        StorageError: on an I/O error (e.g. disk full); the previous checkpoints are intact.
    """
    path = paths.checkpoint(run_dir, ckpt.generation)
    try:
        paths.checkpoint_dir(run_dir).mkdir(exist_ok=True)
        with atomic_open(path, "wb") as f:
            torch.save(_to_payload(ckpt), f)
            kill_point("checkpoint")
    except OSError as e:
        raise StorageError(
            f"cannot write checkpoint {path}: {e.strerror or e}; the previous checkpoint is intact"
        ) from None
    for old in list_checkpoints(run_dir)[KEEP:]:
        old.unlink(missing_ok=True)
    return path


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoint files of a run, newest generation first (temporary files ignored)."""
    folder = paths.checkpoint_dir(run_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def load_checkpoint(path: Path) -> Checkpoint:
    """Read one checkpoint file.

    Raises:
        CheckpointError: if the file is unreadable, truncated or not a checkpoint.
    """
    data = load_format(path, (FORMAT, *OLD_FORMATS), "checkpoint", CheckpointError, weights_only=False)
    try:
        return _from_payload(data)
    except Exception as e:
        raise CheckpointError(f"{path}: damaged checkpoint ({type(e).__name__}: {e})") from None


def load_latest(run_dir: Path) -> Checkpoint:
    """The newest usable checkpoint of a run; damaged ones are skipped with a warning.

    Raises:
        CheckpointError: if the run has no usable checkpoint.
    """
    candidates = list_checkpoints(run_dir)
    problems = []
    for path in candidates:
        try:
            ckpt = load_checkpoint(path)
        except CheckpointError as e:
            problems.append(str(e))
            warnings.warn(f"{e}; falling back to the previous checkpoint", stacklevel=2)
            continue
        return ckpt
    if not candidates:
        raise CheckpointError(
            f"{run_dir}: no checkpoint to resume from (expected {paths.checkpoint_dir(run_dir)}/gen-*.pt)"
        )
    raise CheckpointError(f"{run_dir}: no usable checkpoint: " + "; ".join(problems))
