"""One writer per run: an advisory lock (``flock``) held by the process that writes a run directory.

The lock lives beside the run (``runs/.NAME.lock``, so it can be taken before the run exists) and
names its holder (pid, host, start time). The kernel releases a ``flock`` when its process dies,
however it dies, so a lock left by a dead process blocks no one.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

from evoticket.core import paths
from evoticket.core.errors import RunLockedError, StorageError


class RunLock:
    """The lock of one run directory; a context manager.

    Args:
        run_dir: ``runs/NAME`` (need not exist yet).

    Raises:
        RunLockedError: (on :meth:`acquire`) if a live process holds it; the message names it.
        StorageError: if the lock file cannot be created.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = paths.lock(self.run_dir)
        self.fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock or raise :class:`evoticket.core.errors.RunLockedError` at once (never waits)."""
        while True:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise StorageError(f"cannot create the lock {self.path}: {e.strerror or e}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 512).decode("utf-8", "replace").strip() or "another process"
                os.close(fd)
                raise RunLockedError(
                    f"run {self.run_dir} is being written by {holder}; two processes never write one run: "
                    f"wait for it to finish or stop it (the lock is released when it exits)"
                ) from None
            # the holder before us may have removed the file between our open and our flock: then we
            # hold a lock on a file nobody else can see, and must take the one at the path instead
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        os.write(fd, f"process {os.getpid()} on {socket.gethostname()} (since {started})\n".encode())
        self.fd = fd
        return self

    def release(self) -> None:
        """Give the lock up and remove its file (a killed holder leaves the file, which blocks no one)."""
        if self.fd is None:
            return
        self.path.unlink(missing_ok=True)  # before unlocking: a newcomer then finds no file or a new one
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
