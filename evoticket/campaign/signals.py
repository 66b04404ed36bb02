"""Stopping a campaign cleanly on Ctrl-C and SIGTERM."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""Signals that stop a campaign cleanly: Ctrl-C, and the SIGTERM a batch scheduler sends before SIGKILL."""


class StopOnSignal:
    """Handler of :data:`STOP_SIGNALS`.

    During evolution the first signal asks the loop to stop after the current generation and its
    checkpoint; a second one stops at once (``KeyboardInterrupt``). After the last checkpoint (final
    comparison, plot, summary), when nothing is left that a resume would not redo, set
    :attr:`immediate` and the first signal stops at once.

    Attributes:
        requested: a stop was asked for.
        signum: the signal that asked for it.
        immediate: stop at the first signal.
    """

    def __init__(self) -> None:
        self.requested = False
        self.signum = signal.SIGINT
        self.immediate = False
        self.previous: dict[int, Any] = {}

    def install(self) -> None:
        """Install the handler (in the main thread only, and not in a packed run: the experiment handles signals)."""
        from evoticket.training.packing import active_packer

        if threading.current_thread() is threading.main_thread() and active_packer() is None:
            self.previous = {s: signal.signal(s, self._handle) for s in STOP_SIGNALS}

    def uninstall(self) -> None:
        """Put the previous handlers back."""
        for s, handler in self.previous.items():
            signal.signal(s, handler)
        self.previous = {}

    def _handle(self, signum: int, frame: Any) -> None:
        first = not self.requested
        self.requested, self.signum = True, signum
        if self.immediate or not first:
            raise KeyboardInterrupt
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        print(
            f"\nevoticket: {name}: stopping after this generation and its checkpoint ({name} again to stop now)",
            file=sys.stderr,
        )

    def __call__(self) -> bool:
        """Whether a stop was asked for (the loop's ``should_stop``)."""
        return self.requested
