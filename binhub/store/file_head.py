"""The head of a stored binlog file: the events before its first transaction.

A file starts with its FORMAT_DESCRIPTION (which says whether events carry a CRC32), then
MySQL's PREVIOUS_GTIDS or MariaDB's GTID_LIST (every GTID before this file), binlog checkpoints
and the like. Seeking by GTID and dumping a file both start from these; once the first
transaction follows them, a head never changes again, so readers cache it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from binhub.binlog.checksum import fde_checksum_size
from binhub.binlog.constants import HEADER_SIZE, EventType
from binhub.binlog.gtid import MariadbGtid, MysqlGtidSet
from binhub.errors import StartPositionError, StorageError

HEAD_READ = 64 * 1024  # a head is a few hundred bytes; a GTID_LIST of many domains fits too

_HEAD_TYPES = frozenset(int(t) for t in (
    EventType.FORMAT_DESCRIPTION, EventType.PREVIOUS_GTIDS, EventType.MARIA_GTID_LIST,
    EventType.MARIA_BINLOG_CHECKPOINT, EventType.MARIA_START_ENCRYPTION, EventType.IGNORABLE,
))


@dataclass(frozen=True, slots=True)
class FileHead:
    """The events at the start of a file, before its first transaction."""

    fde: bytes
    crc: bool  # the file's events carry a CRC32
    previous_gtids: MysqlGtidSet | None  # MySQL: every GTID before this file
    gtid_list: tuple[MariadbGtid, ...] | None  # MariaDB: the binlog state before this file
    end: int  # offset of the first event that is not part of the head
    complete: bool  # a transaction (or the file's end) follows: the head is final

    @property
    def is_mariadb(self) -> bool:
        return b"MariaDB" in self.fde[21:71]  # the FDE's server version


def read_file_head(path: Path, name: str) -> FileHead:
    """Read the head of the stored file ``name`` at ``path``."""
    try:
        with open(path, "rb") as f:
            data = f.read(HEAD_READ)
    except FileNotFoundError:
        raise StartPositionError(f"could not open {name}: it was purged from binhub's store") from None
    except OSError as exc:
        raise StorageError(f"cannot read {name}: {exc.strerror or exc}") from exc
    pos = 4
    fde = b""
    crc = True
    prev: MysqlGtidSet | None = None
    glist: tuple[MariadbGtid, ...] | None = None
    complete = False
    while len(data) - pos >= HEADER_SIZE:
        size = int.from_bytes(data[pos + 9:pos + 13], "little")
        if size < HEADER_SIZE or pos + size > len(data):
            break
        raw = data[pos:pos + size]
        kind = raw[4]
        if kind not in _HEAD_TYPES:
            complete = True
            break
        if kind == EventType.FORMAT_DESCRIPTION:
            fde, crc = raw, fde_checksum_size(raw) > 0
        elif kind == EventType.PREVIOUS_GTIDS:
            # The event decoder loads where a GTID header is decoded, not with the store (the relay's
            # start-up would pay for the event classes it never builds).
            from binhub.binlog.decode import decode_event
            from binhub.binlog.events import MariadbGtidListEvent, PreviousGtidsEvent

            ev = decode_event(raw, None, checksum_size=4 if crc else 0)
            if isinstance(ev, PreviousGtidsEvent):
                prev = ev.gtid_set
        elif kind == EventType.MARIA_GTID_LIST:
            from binhub.binlog.decode import decode_event
            from binhub.binlog.events import MariadbGtidListEvent

            ev2 = decode_event(raw, None, checksum_size=4 if crc else 0)
            if isinstance(ev2, MariadbGtidListEvent):
                glist = ev2.gtids
        pos += size
    if not fde:
        raise StartPositionError(f"Failed to find format descriptor event in start of binlog {name}")
    return FileHead(fde, crc, prev, glist, pos, complete)


__all__ = ["FileHead", "read_file_head"]
