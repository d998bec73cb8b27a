"""Durable file writes, for every layer that keeps files (the store, the schema history, the sinks).

Errors stay ``OSError`` here: each caller turns them into its own error (``StorageError``,
``SchemaHistoryError``) with the words its operator needs.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["atomic_write", "fsync_dir", "write_all"]

Buffer = bytes | bytearray | memoryview


def fsync_dir(path: Path) -> None:
    """fsync a directory so that a rename or a new file in it survives a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: Buffer) -> None:
    """``write`` until all of ``data`` is written (a write may take less than it is given)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def atomic_write(path: Path, data: Buffer, *, mode: int = 0o644) -> None:
    """Write ``path`` so that readers and crashes see either the old or the new content, never half.

    tmp file → fsync → rename → fsync the directory (litestream's WriteLTXFile pattern). The file
    has ``mode`` (less the umask) from its creation on, so a private file (``mode=0o600``) is never
    readable by others, not even as the temporary file: a leftover temporary file is removed
    first rather than reused, because reusing it would keep its old mode.
    """
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)
