"""Fault injection for the crash-safety tests: signal the process at a named point.

Set ``EVOTICKET_KILL_AT=POINT:N`` to send SIGKILL to the process the N-th time
(1-based) it reaches ``kill_point(POINT)``, or ``POINT:N:SIGNAL`` to send another
signal (e.g. ``final:1:SIGINT``, a Ctrl-C at that moment). With ``EVOTICKET_KILL_ONCE=PATH`` as
well, the signal is sent only by the first process to create ``PATH`` (a restarted Ray worker
then runs on). Points: ``finetune`` (a
batch has been fine-tuned, nothing recorded yet), ``records`` (individuals written,
generation statistics not yet), ``checkpoint`` (checkpoint written to its temporary
file, not yet renamed), ``final`` (during the final comparison), ``figures`` (``summary.json``
written, the end-of-run figures not yet drawn), ``worker`` (a Ray actor has
evaluated its shard, not yet returned it). The variable is
read once, at import; unset, a kill point costs one comparison.
"""

from __future__ import annotations

import os
import signal

ENV = "EVOTICKET_KILL_AT"
ONCE_ENV = "EVOTICKET_KILL_ONCE"


def _parse(spec: str | None) -> tuple[str, int, signal.Signals] | None:
    """``"POINT[:N[:SIGNAL]]"`` -> ``(point, n, signal)``; None when unset."""
    if not spec:
        return None
    point, _, rest = spec.partition(":")
    nth, _, name = rest.partition(":")
    return point, int(nth or 1), signal.Signals[name] if name else signal.SIGKILL


_spec = _parse(os.environ.get(ENV))
_counts: dict[str, int] = {}


def kill_point(name: str) -> None:
    """Send the signal of ``EVOTICKET_KILL_AT`` to this process if it names this point and occurrence."""
    if _spec is None or _spec[0] != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] == _spec[1]:
        once = os.environ.get(ONCE_ENV)
        if once:
            try:
                os.close(os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return
        os.kill(os.getpid(), _spec[2])
