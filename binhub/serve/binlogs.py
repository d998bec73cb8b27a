"""What the SQL front end reads from the store: the file list, events, GTID positions, the checksum.

Only *durable* bytes are ever shown (DESIGN.md, "durability and visibility"): the active file is
cut at the durable position, and a file the writer has begun but not yet made durable is hidden.
The store's reader view answers afresh on every call, whichever process writes the store.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from binhub.binlog.constants import ChecksumAlg, EventType
from binhub.binlog.decode import decode_event
from binhub.binlog.events import (
    BinlogCheckpointEvent,
    FormatDescriptionEvent,
    GtidEvent,
    MariadbGtidEvent,
    MariadbGtidListEvent,
    PreviousGtidsEvent,
    QueryEvent,
    RotateEvent,
    XidEvent,
)
from binhub.binlog.file import BinlogFileReader, RawEvent
from binhub.binlog.gtid import MariadbGtid, MariadbGtidList
from binhub.binlog.transaction import TransactionTracker
from binhub.errors import BinhubError
from binhub.store import StoreReader
from binhub.store.recovery import mariadb_position

__all__ = ["binlog_event_rows", "checksum_name", "durable_files", "gtid_position_at"]

# How SHOW BINLOG EVENTS names event types (``Log_event::get_type_str``).
_TYPE_NAMES: dict[int, str] = {
    EventType.START_V3: "Start_v3", EventType.QUERY: "Query", EventType.STOP: "Stop",
    EventType.ROTATE: "Rotate", EventType.INTVAR: "Intvar", EventType.RAND: "RAND",
    EventType.USER_VAR: "User var", EventType.FORMAT_DESCRIPTION: "Format_desc", EventType.XID: "Xid",
    EventType.BEGIN_LOAD_QUERY: "Begin_load_query", EventType.EXECUTE_LOAD_QUERY: "Execute_load_query",
    EventType.TABLE_MAP: "Table_map", EventType.WRITE_ROWS_V1: "Write_rows_v1",
    EventType.UPDATE_ROWS_V1: "Update_rows_v1", EventType.DELETE_ROWS_V1: "Delete_rows_v1",
    EventType.INCIDENT: "Incident", EventType.HEARTBEAT: "Heartbeat", EventType.IGNORABLE: "Ignorable",
    EventType.ROWS_QUERY: "Rows_query", EventType.WRITE_ROWS_V2: "Write_rows", EventType.UPDATE_ROWS_V2: "Update_rows",
    EventType.DELETE_ROWS_V2: "Delete_rows", EventType.GTID: "Gtid", EventType.ANONYMOUS_GTID: "Anonymous_Gtid",
    EventType.PREVIOUS_GTIDS: "Previous_gtids", EventType.TRANSACTION_CONTEXT: "Transaction_context",
    EventType.VIEW_CHANGE: "View_change", EventType.XA_PREPARE: "XA_prepare",
    EventType.PARTIAL_UPDATE_ROWS: "Update_rows_partial", EventType.TRANSACTION_PAYLOAD: "Transaction_payload",
    EventType.HEARTBEAT_V2: "Heartbeat_v2", EventType.GTID_TAGGED: "Gtid_tagged",
    EventType.MARIA_ANNOTATE_ROWS: "Annotate_rows", EventType.MARIA_BINLOG_CHECKPOINT: "Binlog_checkpoint",
    EventType.MARIA_GTID: "Gtid", EventType.MARIA_GTID_LIST: "Gtid_list",
    EventType.MARIA_START_ENCRYPTION: "Start_encryption", EventType.MARIA_QUERY_COMPRESSED: "Query_compressed",
    EventType.MARIA_WRITE_ROWS_COMPRESSED_V1: "Write_rows_compressed_v1",
    EventType.MARIA_UPDATE_ROWS_COMPRESSED_V1: "Update_rows_compressed_v1",
    EventType.MARIA_DELETE_ROWS_COMPRESSED_V1: "Delete_rows_compressed_v1",
    EventType.MARIA_WRITE_ROWS_COMPRESSED: "Write_rows_compressed",
    EventType.MARIA_UPDATE_ROWS_COMPRESSED: "Update_rows_compressed",
    EventType.MARIA_DELETE_ROWS_COMPRESSED: "Delete_rows_compressed",
}


class BinlogQueryError(BinhubError):
    """A SHOW BINLOG EVENTS / binlog_gtid_pos request names something the store does not have."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


ER_UNKNOWN_TARGET_BINLOG = 1373
ER_ERROR_WHEN_EXECUTING_COMMAND = 1220


def durable_files(store: StoreReader) -> list[tuple[str, int]]:
    """(name, durable size) of every file readers may see, oldest first."""
    return store.durable_files()


def _limit_of(store: StoreReader, name: str) -> int:
    for n, size in durable_files(store):
        if n == name:
            return size
    raise BinlogQueryError(ER_UNKNOWN_TARGET_BINLOG, f"Could not find target log {name!r} in the binlog index")


def _durable_events(path: Path, name: str, limit: int, start: int = 4) -> Iterator[tuple[RawEvent, BinlogFileReader]]:
    with open(path, "rb") as f:
        reader = BinlogFileReader(f, name, start=start, verify_checksums=False)
        with contextlib.suppress(BinhubError):  # a torn tail past the durable limit
            for ev in reader:
                if ev.offset >= limit or ev.end > limit:
                    return
                yield ev, reader


def checksum_name(store: StoreReader) -> str:
    """``CRC32`` or ``NONE``: the checksum of the newest file's FDE (what ``@@binlog_checksum`` says)."""
    files = durable_files(store)
    for name, _ in reversed(files[-1:]):
        with open(store.file_path(name), "rb") as f:
            reader = BinlogFileReader(f, name, verify_checksums=False)
            with contextlib.suppress(BinhubError):
                next(iter(reader), None)
            if reader.fde is not None and reader.fde.checksum_alg == ChecksumAlg.OFF:
                return "NONE"
    return "CRC32"


def _info(ev: RawEvent, reader: BinlogFileReader) -> str:
    try:
        decoded = decode_event(ev.data, reader.fde)
    except BinhubError:
        return ""
    if isinstance(decoded, FormatDescriptionEvent):
        return f"Server ver: {decoded.server_version}, Binlog ver: {decoded.binlog_version}"
    if isinstance(decoded, MariadbGtidListEvent):
        return "[" + ",".join(str(g) for g in decoded.gtids) + "]"
    if isinstance(decoded, PreviousGtidsEvent):
        return str(decoded.gtid_set)
    if isinstance(decoded, BinlogCheckpointEvent):
        return decoded.file
    if isinstance(decoded, MariadbGtidEvent):
        return ("BEGIN GTID " if not decoded.standalone else "GTID ") + str(decoded.gtid)
    if isinstance(decoded, GtidEvent):
        gtid = decoded.gtid
        return f"SET @@SESSION.GTID_NEXT= '{gtid if gtid is not None else 'ANONYMOUS'}'"
    if isinstance(decoded, RotateEvent):
        return f"{decoded.next_file};pos={decoded.position}"
    if isinstance(decoded, XidEvent):
        return f"COMMIT /* xid={decoded.xid} */"
    if isinstance(decoded, QueryEvent):
        text = decoded.query_text
        return f"use `{decoded.schema}`; {text}" if decoded.schema else text
    return ""


def binlog_event_rows(store: StoreReader, file: str | None, position: int | None, offset: int,
                      limit: int | None) -> list[tuple[str, int, str, int, int, str]]:
    """Rows of ``SHOW BINLOG EVENTS [IN file] [FROM position] [LIMIT offset, limit]``."""
    files = durable_files(store)
    if not files and file is None:
        return []
    name = file if file is not None else files[0][0]
    size = _limit_of(store, name)
    start = position if position is not None else 4
    if start < 4:
        raise BinlogQueryError(ER_ERROR_WHEN_EXECUTING_COMMAND,
                               "Error when executing command SHOW BINLOG EVENTS: Invalid log position")
    rows: list[tuple[str, int, str, int, int, str]] = []
    skipped = 0
    if start > 4:
        # FROM must land on an event boundary; check by walking from the file's start.
        boundaries = {ev.offset for ev, _ in _durable_events(store.file_path(name), name, size)}
        if start not in boundaries and start < size:
            raise BinlogQueryError(ER_ERROR_WHEN_EXECUTING_COMMAND,
                                   "Error when executing command SHOW BINLOG EVENTS: Wrong offset or I/O error")
    for ev, reader in _durable_events(store.file_path(name), name, size, start):
        if skipped < offset:
            skipped += 1
            continue
        if limit is not None and len(rows) >= limit:
            break
        h = ev.header
        rows.append((name, ev.offset, _TYPE_NAMES.get(h.type_code, f"Unknown({h.type_code})"), h.server_id,
                     h.log_pos, _info(ev, reader)))
    return rows


def gtid_position_at(store: StoreReader, file: str, position: int) -> str:
    """MariaDB ``binlog_gtid_pos(file, pos)``: the GTID position of a replica stopped at (file, pos)."""
    size = _limit_of(store, file)
    if position < 4 or position > size:
        raise BinlogQueryError(ER_ERROR_WHEN_EXECUTING_COMMAND, f"position {position} is outside {file}")
    state = MariadbGtidList()
    tracker = TransactionTracker()
    for ev, reader in _durable_events(store.file_path(file), file, size):
        if ev.offset >= position:
            break
        if ev.header.type_code == EventType.MARIA_GTID_LIST:
            decoded = decode_event(ev.data, reader.fde)
            if isinstance(decoded, MariadbGtidListEvent):
                state = mariadb_position(decoded.gtids)
            continue
        crc = reader.fde.checksum_size if reader.fde else 4
        done = tracker.transactions
        if tracker.feed(ev.data, crc) and tracker.transactions != done and ev.end <= position:
            gtid = tracker.last_gtid
            if isinstance(gtid, MariadbGtid):
                state = state.union(MariadbGtidList([gtid]))
    return str(state)

