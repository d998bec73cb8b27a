"""The store's durable writes: :mod:`binhub.fsutil`'s, with errors in the store's terms."""

from __future__ import annotations

import errno
from pathlib import Path

from binhub import fsutil
from binhub.errors import DiskFull, StorageError
from binhub.fsutil import fsync_dir

__all__ = ["atomic_write", "fsync_dir", "storage_error"]


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """:func:`binhub.fsutil.atomic_write`; an ``OSError`` becomes a ``StorageError`` (``DiskFull``)."""
    try:
        fsutil.atomic_write(path, data, mode=mode)
    except OSError as exc:
        raise storage_error(exc, f"cannot write {path}") from exc


def storage_error(exc: OSError, what: str) -> StorageError:
    """Translate an OSError into binhub's hierarchy; ENOSPC becomes DiskFull (retryable)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(f"{what}: no space left on device", hint="free space on the store's disk; binhub resumes by itself")
    return StorageError(f"{what}: {exc.strerror or exc}")
