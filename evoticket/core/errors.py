"""Errors that evoticket raises for user mistakes.

Every user-facing mistake (a bad configuration key, a missing data file, an
unknown registry name) raises a subclass of :class:`EvoticketError`. The command
line prints its message as one line and exits with status 2, without a
traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
import signal
from collections.abc import Iterable


class EvoticketError(Exception):
    """A mistake in the user's input, reported as one line without a traceback."""


class ConfigError(EvoticketError):
    """An invalid configuration key, type or value."""


class BudgetError(ConfigError):
    """A training budget (``budget.train_flops``) too small for the method's first unit of work.

    Attributes:
        needed: the smallest budget that would pay for it (training FLOPs).
    """

    def __init__(self, message: str, needed: int) -> None:
        super().__init__(message)
        self.needed = int(needed)


class DataError(EvoticketError):
    """A data set that cannot be found, read or split."""


class RunExistsError(EvoticketError):
    """A run directory that already exists (and ``--force`` was not given)."""


def unknown_name(kind: str, name: str, valid: Iterable[str]) -> str:
    """Format a one-line "unknown name" message with a "did you mean" hint.

    Args:
        kind: what was looked up, e.g. ``"data set"`` or ``"data.name"``.
        name: the name the user gave.
        valid: the names that would have been accepted.

    Returns:
        A message such as ``unknown data set 'mnsit' (did you mean 'mnist'?);
        valid: digits, fashion_mnist, mnist, mnist1d``.
    """
    valid = sorted(valid)
    close = difflib.get_close_matches(str(name), valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {kind} {name!r}{hint}; valid: {', '.join(valid)}"


class RunLockedError(EvoticketError):
    """Another live process is writing the run directory."""


class CheckpointError(EvoticketError):
    """A checkpoint that is missing, damaged, or does not match the run."""


class StorageError(EvoticketError):
    """Writing to disk failed (disk full, I/O error); the previous checkpoint is intact."""


class DivergedError(EvoticketError):
    """Every individual of a generation diverged (non-finite loss or weights)."""


class Interrupted(Exception):
    """A signal (Ctrl-C, SIGTERM) stopped the campaign; a valid checkpoint was left.

    Attributes:
        run_dir: the run directory to resume.
        generation: the generation (IMP: round) of the newest checkpoint (-1: before the first).
        signum: the signal, e.g. ``signal.SIGINT``; the exit status is ``128 + signum``.
        unit: what a generation is called for the run's method (``generation``, ``round``, ``run``).
    """

    def __init__(self, run_dir: str, generation: int, signum: int = signal.SIGINT, unit: str = "generation") -> None:
        super().__init__(f"interrupted after {unit} {generation}")
        self.run_dir = run_dir
        self.generation = generation
        self.signum = int(signum)
        self.unit = unit
