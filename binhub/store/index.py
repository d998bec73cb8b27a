"""The two index files of a store.

``binlog/<base>.index`` lists the binlog files in order, in the server's own format (``./name``
per line), so ``mariadb-binlog`` users and scripts find the files as on a primary.

``gtid.index`` maps GTIDs to (file, offset): one line at the first transaction of every file and
every ``GTID_INDEX_EVERY`` transactions or ``GTID_INDEX_BYTES`` bytes, append-only. It can always be rebuilt from the files, so
it is flushed with the data but only trusted up to the store's durable position.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from binhub.errors import StorageError
from binhub.store.fsutil import atomic_write

GTID_INDEX_EVERY = 1000
# ... and at least every 16 MiB: a file of few, large transactions must not need a long scan either.
GTID_INDEX_BYTES = 16 << 20


class BinlogIndex:
    """The ordered list of stored binlog file names."""

    def __init__(self, binlog_dir: Path) -> None:
        self.binlog_dir = binlog_dir
        self.names: list[str] = []
        self.path: Path | None = None

    def load(self) -> list[str]:
        indexes = sorted(self.binlog_dir.glob("*.index"))
        if indexes:
            self.path = indexes[0]
            lines = self.path.read_text().splitlines()
            self.names = [line.strip().removeprefix("./") for line in lines if line.strip()]
        else:
            # An index lost in a crash between file creation and index write: the files are the truth.
            self.names = sorted(p.name for p in self.binlog_dir.iterdir()
                                if p.is_file() and p.suffix[1:].isdigit())
        return self.names

    def save(self) -> None:
        if not self.names:
            return
        base = self.names[0].rsplit(".", 1)[0]
        self.path = self.binlog_dir / f"{base}.index"
        atomic_write(self.path, "".join(f"./{n}\n" for n in self.names).encode())

    def append(self, name: str) -> None:
        self.names.append(name)
        try:
            self.save()
        except BaseException:
            self.names.pop()  # not on disk: not listed
            raise

    def remove(self, names: set[str]) -> None:
        self.names = [n for n in self.names if n not in names]
        self.save()


@dataclass(frozen=True, slots=True)
class GtidIndexEntry:
    file: str
    offset: int
    gtid: str
    timestamp: int


class GtidIndex:
    """Append-only ``file offset gtid timestamp`` lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._pending: list[str] = []

    def open_for_append(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def add(self, file: str, offset: int, gtid: str, timestamp: int) -> None:
        self._pending.append(f"{file}\t{offset}\t{gtid}\t{timestamp}\n")

    def flush(self) -> None:
        if self._pending and self._fd is not None:
            os.write(self._fd, "".join(self._pending).encode())
            self._pending.clear()

    def drop_pending(self, file: str, offset: int) -> None:
        """Forget unwritten entries of ``file`` at or after ``offset`` (their transactions were cut)."""
        self._pending = [line for line in self._pending
                         if not (line.split("\t", 2)[0] == file and int(line.split("\t", 2)[1]) >= offset)]

    def fsync(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)

    def close(self) -> None:
        self.flush()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def entries(self) -> list[GtidIndexEntry]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) == 4 and parts[1].isdigit():
                out.append(GtidIndexEntry(parts[0], int(parts[1]), parts[2], int(parts[3] or 0)))
        return out

    def rewrite(self, keep: list[GtidIndexEntry]) -> None:
        """Drop entries past a truncation or for purged files (recovery and purge only)."""
        atomic_write(self.path, "".join(f"{e.file}\t{e.offset}\t{e.gtid}\t{e.timestamp}\n" for e in keep).encode())
        if self._fd is not None:  # the writer's descriptor is still on the file just replaced
            os.close(self._fd)
            self.open_for_append()


def file_seq(name: str) -> int:
    """The numeric extension of a binlog file name (``mysql-bin.000042`` -> 42)."""
    ext = name.rsplit(".", 1)[-1]
    if not ext.isdigit():
        raise StorageError(f"{name!r} is not a binlog file name (expected BASE.NNNNNN)")
    return int(ext)
