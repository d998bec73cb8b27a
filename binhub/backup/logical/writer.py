"""Chunk files: rows (already SQL literals) grouped into multi-row INSERTs, zstd-compressed, checksummed.

A chunk file is plain SQL once decompressed (``zstdcat f.sql.zst | mariadb db`` loads it): a SET
of the session the values were read under (utf8mb4, UTC, ``NO_AUTO_VALUE_ON_ZERO``), then INSERT
statements of at most ``statement_bytes`` (a bigger row is a statement of its own), one row per
line, each statement ending in ``;`` at the end of a line. Rows hold no raw newline (the literals
escape it), so ``;\\n`` ends a statement and nothing else. Files are written whole and fsynced
before they are recorded: a chunk listed in the manifest is on disk.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from urllib.parse import quote

import zstandard

from binhub.backup.logical.manifest import ChunkRecord
from binhub.errors import BackupError, DiskFull
from binhub.innodb import crc32c

DATA_DIR = "data"
SUFFIX = ".sql.zst"
STATEMENT_END = b";\n"
# Every file starts with the session its literals were read under, so it loads as it is anywhere.
SESSION_HEADER = b"SET NAMES utf8mb4, time_zone = '+00:00', sql_mode = 'NO_AUTO_VALUE_ON_ZERO'" + STATEMENT_END


def chunk_path(db: str, table: str, number: int) -> str:
    """``data/<db>/<table>.<n>.sql.zst`` with both names percent-encoded (any name is a safe file name)."""
    return f"{DATA_DIR}/{quote(db, safe='')}/{quote(table, safe='')}.{number:05d}{SUFFIX}"


class ChunkNumbers:
    """Chunk numbers of one table, handed out to the threads that write its ranges."""

    def __init__(self) -> None:
        self._next = 0
        self._lock = threading.Lock()

    def take(self) -> int:
        with self._lock:
            self._next += 1
            return self._next


class ChunkWriter:
    """Collects the rows of one chunk into statements, then writes the file (:meth:`close`)."""

    def __init__(self, target: Path, relpath: str, head: bytes, *, statement_bytes: int, level: int) -> None:
        self.target = target
        self.relpath = relpath
        self.rows = 0
        self._head = head
        self._statement_bytes = statement_bytes
        self._level = level
        self._parts: list[bytes] = [SESSION_HEADER]
        self._statement = 0  # bytes of the statement being built, 0: none open
        self._max_statement = 0
        self.sql_bytes = 0

    def add(self, rows: bytes, count: int = 1) -> None:
        """Add one row's literal, or ``count`` of them already joined by ``,\\n`` (kept in one statement)."""
        if self._statement and self._statement + len(rows) + 2 > self._statement_bytes:
            self._end_statement()
        if self._statement:
            self._parts.append(b",\n")
            self._statement += 2
        else:
            self._parts.append(self._head)
            self._statement = len(self._head)
        self._parts.append(rows)
        self._statement += len(rows)
        self.rows += count

    def _end_statement(self) -> None:
        self._parts.append(STATEMENT_END)
        self._statement += len(STATEMENT_END)
        self._max_statement = max(self._max_statement, self._statement)
        self.sql_bytes += self._statement
        self._statement = 0

    @property
    def size(self) -> int:
        return self.sql_bytes + self._statement

    def close(self) -> ChunkRecord:
        if self._statement:
            self._end_statement()
        data = zstandard.ZstdCompressor(level=self._level).compress(b"".join(self._parts))
        self._parts = []
        path = self.target / self.relpath
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            with open(path, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            if exc.errno == 28:  # ENOSPC
                raise DiskFull(f"no space left for {path}", hint="free space at the target and take the backup again") \
                    from exc
            raise BackupError(f"cannot write {path}: {exc}") from exc
        return ChunkRecord(self.relpath, self.rows, len(data), self.sql_bytes, f"{crc32c(data):08x}",
                           self._max_statement)
