"""One writer per store: an exclusive, non-blocking flock on DATA_DIR/LOCK.

Readers may ask whether a writer holds it (:func:`writer_holds`): a shared non-blocking flock,
dropped at once. A writer starting during such a probe retries for ``PROBE_GRACE`` seconds
before it gives up, so a probe never makes a relay refuse to start.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from binhub.errors import StoreLocked

PROBE_GRACE = 0.1  # seconds; a probe holds its shared lock for microseconds


class StoreLock:
    """Held for the life of the writer; the kernel drops it if the process dies (kill -9 safe)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + PROBE_GRACE
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.005)
                    continue
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise StoreLocked(
                f"the store {self.path.parent} is already being written by pid {holder}",
                hint="only one relay may write a store; stop the other one or use another --data-dir",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def writer_holds(path: Path) -> bool:
    """Whether a writer (in any process, this one included) holds the lock at ``path`` now."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False  # no writer ever opened this store
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # drops the shared lock, if it was taken
    return False
