"""Chunk files: a table's rows as LOAD DATA lines (``tsv.py``), zstd-compressed and checksummed.

``zstdcat f.tsv.zst`` is what ``LOAD DATA ... CHARACTER SET binary`` (default terminators and
escape) loads into the table, in a session with ``time_zone = '+00:00'`` and ``sql_mode =
'NO_AUTO_VALUE_ON_ZERO'``, the columns in the manifest's order (the generated ones left out; ENUM
and SET as their numbers, through a variable: see ``tsv.Layout``). Files are written whole and
fsynced before they are recorded: a chunk listed in the manifest is on disk. Backups of format 1
held ``.sql.zst`` files of INSERT statements instead, which the restore still loads.
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
SUFFIX = ".tsv.zst"


def chunk_path(db: str, table: str, number: int) -> str:
    """``data/<db>/<table>.<n>.tsv.zst`` with both names percent-encoded (any name is a safe file name)."""
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


def write_chunk(target: Path, relpath: str, lines: bytearray, rows: int, *, level: int) -> ChunkRecord:
    """``rows`` whole lines compressed into the file ``relpath`` under ``target``, on disk when this returns."""
    data = zstandard.ZstdCompressor(level=level).compress(lines)
    path = target / relpath
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
    return ChunkRecord(relpath, rows, len(data), len(lines), f"{crc32c(data):08x}")
