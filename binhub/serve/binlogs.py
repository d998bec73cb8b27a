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
from binhub.errors import BinhubError
from binhub.store import StoreReader
from binhub.store.recovery import mariadb_position
from binhub.wire.errors import ErrorCode, MysqlError

__all__ = ["binlog_event_rows", "checksum_name", "gtid_position_at"]

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



def _limit_of(store: StoreReader, name: str) -> int:
    for n, size in store.durable_files():
        if n == name:
            return size
    raise MysqlError(ErrorCode.UNKNOWN_TARGET_BINLOG, f"Could not find target log {name!r} in the binlog index")


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
    files = store.durable_files()
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
    files = store.durable_files()
    if not files and file is None:
        return []
    name = file if file is not None else files[0][0]
    size = _limit_of(store, name)
    start = position if position is not None else 4
    if start < 4:
        raise MysqlError(ErrorCode.ERROR_WHEN_EXECUTING_COMMAND, "Error when executing command SHOW BINLOG EVENTS: Invalid log position")
    rows: list[tuple[str, int, str, int, int, str]] = []
    skipped = 0
    if start > 4:
        # FROM must land on an event boundary; check by walking from the file's start.
        boundaries = {ev.offset for ev, _ in _durable_events(store.file_path(name), name, size)}
        if start not in boundaries and start < size:
            raise MysqlError(ErrorCode.ERROR_WHEN_EXECUTING_COMMAND, "Error when executing command SHOW BINLOG EVENTS: Wrong offset or I/O error")
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


#: Events mariadbd reads past, at the start of a file, while it looks for the GTID_LIST.
_BEFORE_GTID_LIST = frozenset((EventType.FORMAT_DESCRIPTION, EventType.ROTATE, EventType.STOP,
                               EventType.MARIA_BINLOG_CHECKPOINT, EventType.MARIA_START_ENCRYPTION))


def gtid_position_at(store: StoreReader, file: str, position: int) -> str | None:
    """MariaDB ``BINLOG_GTID_POS(file, pos)``: the GTID position of a replica stopped at (file, pos).

    As mariadbd's ``gtid_state_from_binlog_pos``: an empty name is the first file and a position
    below 4 is 4; the file's GTID_LIST is always read (so ``(file, 4)`` is the state before the
    file), then every GTID event that starts before ``pos``. An unknown file, or a position that is
    not where an event starts (or the durable end), gives NULL, not an error.
    """
    files = dict(store.durable_files())
    name = file or next(iter(files), "")
    if name not in files:
        return None
    size = files[name]
    position = max(position, 4)
    state = MariadbGtidList()
    boundary, listed = position in (4, size), False
    for ev, reader in _durable_events(store.file_path(name), name, size):
        boundary = boundary or ev.offset == position
        kind = ev.header.type_code
        if kind == EventType.MARIA_GTID_LIST:
            decoded = decode_event(ev.data, reader.fde)
            if isinstance(decoded, MariadbGtidListEvent):
                state, listed = mariadb_position(decoded.gtids), True
        elif ev.offset >= position and (listed or kind not in _BEFORE_GTID_LIST):
            break
        elif kind == EventType.MARIA_GTID:
            server = int.from_bytes(ev.data[5:9], "little")
            seq_no, domain = int.from_bytes(ev.data[19:27], "little"), int.from_bytes(ev.data[27:31], "little")
            state = state.update(MariadbGtid(domain, server, seq_no))
    return str(state) if boundary else None

