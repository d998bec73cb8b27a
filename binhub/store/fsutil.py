"""Durable file helpers: every piece of state that persists goes through ``atomic_write``."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from binhub.errors import DiskFull, StorageError


def fsync_dir(path: Path) -> None:
    """fsync a directory so that a rename or a new file in it survives a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``path`` so that readers and crashes see either the old or the new content, never half.

    tmp file → fsync → rename → fsync the directory (litestream's WriteLTXFile pattern). The file
    has ``mode`` (less the umask) from its creation on, so a private file (``mode=0o600``) is never
    readable by others, not even as the temporary file: a leftover temporary file is removed
    first rather than reused, because reusing it would keep its old mode.
    """
    tmp = path.with_name(path.name + ".tmp")
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        raise storage_error(exc, f"cannot write {path}") from exc


def storage_error(exc: OSError, what: str) -> StorageError:
    """Translate an OSError into binhub's hierarchy; ENOSPC becomes DiskFull (retryable)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(f"{what}: no space left on device", hint="free space on the store's disk; binhub resumes by itself")
    return StorageError(f"{what}: {exc.strerror or exc}")
