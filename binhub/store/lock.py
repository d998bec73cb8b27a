"""One writer per store: an exclusive, non-blocking flock on DATA_DIR/LOCK."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from binhub.errors import StoreLocked


class StoreLock:
    """Held for the life of the writer; the kernel drops it if the process dies (kill -9 safe)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
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
