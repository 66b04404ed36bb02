"""Fault injection for the crash-safety tests: kill the process at a named point.

Set ``EVOTICKET_KILL_AT=POINT:N`` to send SIGKILL to the process the N-th time
(1-based) it reaches ``kill_point(POINT)``. Points: ``finetune`` (a batch has
been fine-tuned, nothing recorded yet), ``records`` (individuals written,
generation statistics not yet), ``checkpoint`` (checkpoint written to its
temporary file, not yet renamed), ``final`` (during the final comparison).
Unset, it costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "EVOTICKET_KILL_AT"
_counts: dict[str, int] = {}


def kill_point(name: str) -> None:
    """SIGKILL this process if ``EVOTICKET_KILL_AT`` names this point and occurrence."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
