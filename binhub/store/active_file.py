"""The active file: the one binlog file the store is writing, its offsets, and the writes to its fd.

Four offsets describe it: ``written`` (handed to the kernel), ``position`` (``written`` plus the
``pending`` bytes of the current batch), ``boundary`` (where the last complete transaction ends)
and ``synced`` (fsynced and published). Every write names its offset (``pwritev``, ``ftruncate``):
recovery and rollbacks move the file's end, so the fd's own position is never trusted.

The pending bytes are the appended buffers themselves, by reference: the events as the upstream
connection framed them (``bytes``, or views of the received chunks). ``write_pending`` hands them
to the kernel with ``pwritev``, so an event's bytes are copied once, into the page cache, instead of
being joined per transaction and gathered per batch first (two copies, and the page faults of the
fresh buffers: a third of the relay's CPU on large events).

It is apart from :mod:`binhub.store.store` because it is the only code that touches the open
file: create it, reopen it after a crash cut back to its last boundary, write a batch, set the
FDE's in-use flag and close it. :class:`~binhub.store.store.BinlogStore` decides when (group
commit, rollbacks, rotation) and keeps the index, the GTIDs and the state around it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from binhub.binlog.constants import BINLOG_MAGIC

LOG = logging.getLogger("binhub.store")

FDE_FLAGS_BYTE = len(BINLOG_MAGIC) + 17  # the low flags byte of the FDE at file offset 4
# Buffers per pwritev call (the kernel's UIO_MAXIOV on Linux).
IOV_MAX = min(os.sysconf("SC_IOV_MAX"), 1024) if hasattr(os, "sysconf") else 16

Buffer = bytes | memoryview


@dataclass
class ActiveFile:
    """The file being written. Offsets are file offsets; ``pending`` is not yet handed to the kernel.

    The methods raise OSError as it comes; the store turns it into a StorageError naming what failed.
    """

    name: str
    path: Path
    fd: int
    written: int
    boundary: int
    synced: int
    pending: list[Buffer] = field(default_factory=list)  # appended, not yet written; never changed meanwhile
    pending_bytes: int = 0
    finished: bool = False  # ends with ROTATE or STOP: nothing more will be appended
    next_name: str = ""  # from the closing ROTATE event

    @property
    def position(self) -> int:
        return self.written + self.pending_bytes

    def add(self, buffers: Sequence[Buffer], nbytes: int) -> None:
        """Queue ``buffers`` (``nbytes`` in all) for the next write, by reference."""
        self.pending += buffers
        self.pending_bytes += nbytes

    @classmethod
    def create(cls, name: str, path: Path) -> ActiveFile:
        """A new file holding the binlog magic only (an old one of that name is emptied)."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, BINLOG_MAGIC)
        return cls(name, path, fd, 4, 4, 0)

    @classmethod
    def reopen(cls, name: str, path: Path, size: int, boundary: int, *, finished: bool,
               next_name: str) -> ActiveFile:
        """The store's last file after a restart, cut back to ``boundary``, the last one recovery could prove."""
        fd = os.open(path, os.O_RDWR)
        if size < len(BINLOG_MAGIC) or boundary < len(BINLOG_MAGIC):
            os.ftruncate(fd, 0)
            os.pwrite(fd, BINLOG_MAGIC, 0)
            boundary = len(BINLOG_MAGIC)
        elif boundary < size:
            LOG.warning("truncating a partial transaction at the end of %s: %d bytes after offset %d",
                        name, size - boundary, boundary, extra={"file": name})
            os.ftruncate(fd, boundary)
        # A complete file is not in use; one still written is, even if its flag was cleared before a
        # crash took the end it had been cleared for (the store clears it before the file's last fsync).
        os.pwrite(fd, _fde_flags_byte(fd, in_use=not finished), FDE_FLAGS_BYTE)
        os.fsync(fd)
        return cls(name, path, fd, boundary, boundary, boundary, finished=finished, next_name=next_name)

    def write_pending(self) -> None:
        """Hand the pending buffers to the kernel at ``written``; on OSError ``written`` says how far it got."""
        pending = self.pending
        try:
            # Explicit offsets: the fd's own position is never trusted (recovery and rollbacks move the end).
            i = 0
            while i < len(pending):
                batch = pending[i:i + IOV_MAX]
                n = os.pwritev(self.fd, batch, self.written)
                self.written += n
                if n == sum(map(len, batch)):
                    i += len(batch)
                    continue
                for buf in batch:  # a short write (rare): resume inside the buffer it stopped in
                    if n < len(buf):
                        pending[i] = memoryview(buf)[n:]
                        break
                    n -= len(buf)
                    i += 1
        finally:
            pending.clear()
            self.pending_bytes = 0

    def cut(self, offset: int) -> None:
        """Forget everything after ``offset`` (not before ``synced``): pending buffers, then the file's tail."""
        keep = offset - self.written
        if keep > 0:  # inside the pending buffers: keep those before it
            pending, kept = self.pending, 0
            for i, buf in enumerate(pending):
                if kept + len(buf) >= keep:
                    del pending[i + 1:]
                    if kept + len(buf) > keep:
                        pending[i] = memoryview(buf)[:keep - kept]
                    break
                kept += len(buf)
            self.pending_bytes = keep
            return
        self.pending.clear()
        self.pending_bytes = 0
        if keep < 0:
            os.ftruncate(self.fd, offset)
            self.written = offset

    def clear_in_use_flag(self) -> None:
        """The file is complete: its FDE no longer says "in use", as on the primary after rotation."""
        os.pwrite(self.fd, _fde_flags_byte(self.fd, in_use=False), FDE_FLAGS_BYTE)

    def close(self) -> None:
        os.fsync(self.fd)
        os.close(self.fd)


def _fde_flags_byte(fd: int, *, in_use: bool) -> bytes:
    current = os.pread(fd, 1, FDE_FLAGS_BYTE)
    if not current:
        return b""
    value = current[0] | 0x01 if in_use else current[0] & ~0x01
    return bytes([value])


__all__ = ["FDE_FLAGS_BYTE", "ActiveFile"]
