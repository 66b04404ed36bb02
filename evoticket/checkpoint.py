"""Checkpoints: everything needed to continue a campaign exactly where it stopped.

A checkpoint is written after every generation (and once before generation
0), atomically: to a temporary file, flushed and fsynced, then renamed over
its final name, so a job killed at any moment leaves the previous checkpoint
intact. The last :data:`KEEP` checkpoints are kept; a corrupted or truncated
one is skipped (with a warning) in favour of the one before it.

A checkpoint holds the population (theta0, masks, fitness, uids, parents; the
same individual listed twice stays one object), the hall of fame, the
logbook, the uid counter, the generation number, the configuration and its
hash, every random number generator's state (Python ``random``, NumPy, torch
CPU and CUDA, and the operators' generator), and the byte sizes of the record
files at that moment: on resume, records written after the checkpoint are cut
off, so the resumed campaign writes exactly what an uninterrupted one would
have (no line missing, none duplicated).
"""

from __future__ import annotations

import os
import random
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from deap import tools

from evoticket import paths
from evoticket.errors import CheckpointError, StorageError
from evoticket.genome import Ticket, ticket_from_state
from evoticket.records import atomic_open

FORMAT = "evoticket-checkpoint-v1"
KEEP = 2
"""Checkpoints kept on disk (the newest ones)."""

_NAME = re.compile(r"^gen-(-?\d+)\.pt$")


@dataclass
class Checkpoint:
    """The state of a campaign after a completed generation.

    Attributes:
        generation: last completed generation; -1 before the initial population.
        population: the population (``None`` before generation 0).
        hall_of_fame: DEAP hall of fame.
        logbook: DEAP logbook.
        next_uid: the uid counter's next id.
        config: the resolved configuration (plain data) and ``config_hash`` its hash.
        rng: random generator states (see :func:`capture_rng`).
        records: record file name -> byte size at this checkpoint.
        counters: evaluated individuals and accumulated timings (seconds).
    """

    generation: int
    population: list[Ticket] | None
    hall_of_fame: tools.HallOfFame
    logbook: tools.Logbook
    next_uid: int
    config: dict[str, Any]
    config_hash: str
    rng: dict[str, Any]
    records: dict[str, int] = field(default_factory=dict)
    counters: dict[str, float] = field(default_factory=dict)


def capture_rng(operators: torch.Generator) -> dict[str, Any]:
    """States of Python's ``random``, NumPy's global generator, torch (CPU, CUDA) and the operators' generator."""
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "operators": operators.get_state(),
    }


def restore_rng(state: dict[str, Any], operators: torch.Generator) -> None:
    """Put back every generator state captured by :func:`capture_rng`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    operators.set_state(state["operators"])


def record_sizes(run_dir: Path) -> dict[str, int]:
    """Byte size of each record file (0 where it does not exist yet)."""
    files = (paths.individuals_jsonl(run_dir), paths.generations_csv(run_dir))
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
    population = None
    if ckpt.population is not None:
        unique: dict[int, int] = {}
        states = []
        for ind in ckpt.population:
            if id(ind) not in unique:
                unique[id(ind)] = len(states)
                states.append(ind.state_dict())
        population = {"individuals": states, "order": [unique[id(ind)] for ind in ckpt.population]}
    return {
        "format": FORMAT,
        "generation": ckpt.generation,
        "population": population,
        "hall_of_fame": {"maxsize": ckpt.hall_of_fame.maxsize, "items": [i.state_dict() for i in ckpt.hall_of_fame]},
        "logbook": ckpt.logbook,
        "next_uid": ckpt.next_uid,
        "config": ckpt.config,
        "config_hash": ckpt.config_hash,
        "rng": ckpt.rng,
        "records": ckpt.records,
        "counters": ckpt.counters,
    }


def _from_payload(data: dict[str, Any]) -> Checkpoint:
    population = None
    if data["population"] is not None:
        unique = [ticket_from_state(s) for s in data["population"]["individuals"]]
        population = [unique[i] for i in data["population"]["order"]]
    hof = tools.HallOfFame(data["hall_of_fame"]["maxsize"])
    hof.items = [ticket_from_state(s) for s in data["hall_of_fame"]["items"]]
    hof.keys = [item.fitness for item in reversed(hof.items)]  # ascending, as HallOfFame.insert keeps them
    return Checkpoint(
        data["generation"],
        population,
        hof,
        data["logbook"],
        data["next_uid"],
        data["config"],
        data["config_hash"],
        data["rng"],
        data["records"],
        data["counters"],
    )


def save_checkpoint(run_dir: Path, ckpt: Checkpoint) -> Path:
    """Write a checkpoint atomically and keep only the newest :data:`KEEP`.

    Returns:
        The checkpoint's path, ``RUN_DIR/checkpoints/gen-NNNNNN.pt``.

    Raises:
        StorageError: on an I/O error (e.g. disk full); the previous checkpoints are intact.
    """
    from evoticket.faults import kill_point

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


def load_format(path: Path, fmt: str, what: str, error: type[Exception], *, weights_only: bool) -> dict[str, Any]:
    """Read a ``torch.save`` file holding a dict with ``"format": fmt``.

    Raises:
        error: (one line naming ``path``) if the file is unreadable or holds another format.
    """
    try:
        with warnings.catch_warnings():
            # junk that starts like a pickle of an unusual protocol draws a multi-line torch warning before
            # the error below; evoticket writes protocol 2, so a file that draws it is refused anyway
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            data = torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as e:
        raise error(f"{path}: unreadable {what} ({type(e).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise error(f"{path}: not an evoticket {what} (expected format {fmt!r})")
    return data


def load_checkpoint(path: Path) -> Checkpoint:
    """Read one checkpoint file.

    Raises:
        CheckpointError: if the file is unreadable, truncated or not a checkpoint.
    """
    data = load_format(path, FORMAT, "checkpoint", CheckpointError, weights_only=False)
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
