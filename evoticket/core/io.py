"""Durable file writes and versioned torch files.

Every file evoticket writes whole (configuration, checkpoints, tickets, summary, plots) goes through
:func:`atomic_open`: a temporary file, flushed, fsynced and renamed, then the folder fsynced. Every
``torch.save`` file it reads back goes through :func:`load_format`, which refuses another format
with one line.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import torch


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


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """Write a CSV file whole, atomically (see :func:`atomic_write_text`): a header of ``columns``, one line per
    row (``\\n`` line ends; ``None`` is an empty cell, as the csv module writes it)."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (see :func:`atomic_write_text`), sorted keys, 2-space indent."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def load_format(
    path: Path, fmt: str | tuple[str, ...], what: str, error: type[Exception], *, weights_only: bool
) -> dict[str, Any]:
    """Read a ``torch.save`` file holding a dict with ``"format": fmt`` (or one of several formats).

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
    formats = (fmt,) if isinstance(fmt, str) else tuple(fmt)
    if not isinstance(data, dict) or data.get("format") not in formats:
        expected = " or ".join(repr(f) for f in formats)
        raise error(f"{path}: not an evoticket {what} (expected format {expected})")
    return data
