"""Finding transactions in a store: by statement text and table (``binhub binlog find``), and the
walk a point-in-time restore resolves its target with (by time, or "just before" a GTID).

Both read the durable part of the stored files in order, oldest first. A transaction's time is the
header timestamp of its last event, its commit: the time ``mariadb-binlog --stop-datetime`` compares.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from binhub.binlog.constants import EventType
from binhub.binlog.decode import decode_event
from binhub.binlog.events import MariadbGtidEvent, QueryEvent, RowsEvent, TableMapEvent
from binhub.binlog.file import BinlogFileReader
from binhub.binlog.gtid import MariadbGtid, MariadbGtidList
from binhub.binlog.transaction import TransactionTracker
from binhub.store.reader import StoreReader

__all__ = ["ROW_OPS", "EventMatch", "StoredTransaction", "find_events", "first_file_state", "transactions"]

_QUERY = int(EventType.QUERY)
_TABLE_MAP = int(EventType.TABLE_MAP)
_GTID = int(EventType.MARIA_GTID)
# The row change each kind of rows event makes (``binhub binlog find --op``).
ROW_OPS = {int(t): op for op, types in {
    "insert": (EventType.WRITE_ROWS_V1, EventType.WRITE_ROWS_V2, EventType.MARIA_WRITE_ROWS_COMPRESSED_V1,
               EventType.MARIA_WRITE_ROWS_COMPRESSED),
    "update": (EventType.UPDATE_ROWS_V1, EventType.UPDATE_ROWS_V2, EventType.PARTIAL_UPDATE_ROWS,
               EventType.MARIA_UPDATE_ROWS_COMPRESSED_V1, EventType.MARIA_UPDATE_ROWS_COMPRESSED),
    "delete": (EventType.DELETE_ROWS_V1, EventType.DELETE_ROWS_V2, EventType.MARIA_DELETE_ROWS_COMPRESSED_V1,
               EventType.MARIA_DELETE_ROWS_COMPRESSED),
}.items() for t in types}
# A statement of a statement-based binlog making that change starts with one of these words.
_STATEMENT_VERBS = {"insert": ("INSERT", "REPLACE"), "update": ("UPDATE",), "delete": ("DELETE",)}


@dataclass(frozen=True, slots=True)
class StoredTransaction:
    """One transaction of the store: its GTID (None without one), where it starts and its commit time."""

    gtid: MariadbGtid | None
    file: str
    pos: int
    timestamp: int


@dataclass(frozen=True, slots=True)
class EventMatch:
    """An event ``binhub binlog find`` matched: the GTID of its transaction, where it is, its statement."""

    gtid: MariadbGtid | None
    file: str
    pos: int
    timestamp: int
    statement: str


def _events(store: StoreReader) -> Iterator[tuple[str, int, bytes, int, BinlogFileReader]]:
    """(file, offset, raw event, checksum size, reader) of every durable event, oldest first."""
    for name, end in store.durable_files():
        with open(store.file_path(name), "rb") as f:
            reader = BinlogFileReader(f, name, verify_checksums=False)
            for event in reader:
                if event.offset >= end:
                    break
                yield name, event.offset, event.data, reader.fde.checksum_size if reader.fde else 4, reader


def transactions(store: StoreReader) -> Iterator[StoredTransaction]:
    """Every complete transaction of the store, in binlog order."""
    tracker = TransactionTracker()
    start: tuple[str, int] | None = None
    for name, offset, raw, crc, _ in _events(store):
        if not tracker.in_transaction:
            start = (name, offset)
        done = tracker.transactions
        if tracker.feed(raw, crc) and tracker.transactions != done:
            gtid = tracker.last_gtid
            where = start or (name, offset)
            yield StoredTransaction(gtid if isinstance(gtid, MariadbGtid) else None, where[0], where[1],
                                    tracker.last_timestamp)
            start = None


def find_events(store: StoreReader, pattern: re.Pattern[str] | None, table: tuple[str, str] | None,
                ops: frozenset[str] | None = None) -> Iterator[EventMatch]:
    """Statements matching ``pattern`` (QUERY events: DDL, statement-based DML, ...), restricted to
    ``table`` (db, name) when given; with ``table`` alone, also the row changes of that table (one
    match per TABLE_MAP, reported as ``(row changes of db.t)``). ``ops`` (of ``ROW_OPS``' values)
    keeps only changes of those kinds: rows events (one match per kind and transaction, reported as
    ``(delete rows of db.t)``) and statements that begin with their verb."""
    gtid: MariadbGtid | None = None
    tables: set[int] = set()  # ids the TABLE_MAPs of this transaction gave ``table`` (with ``ops``)
    reported: set[str] = set()  # the ops of this transaction already matched
    for name, offset, raw, _, reader in _events(store):
        kind = raw[4]
        if kind == _GTID:
            event = decode_event(raw, reader.fde)
            if isinstance(event, MariadbGtidEvent):
                gtid = event.gtid
            tables.clear()
            reported.clear()
        elif kind == _QUERY:
            query = decode_event(raw, reader.fde)
            if not isinstance(query, QueryEvent):
                continue
            text = query.query_text
            if pattern is not None and not pattern.search(text):
                continue
            if table is not None and not _mentions(text, query.schema, table):
                continue
            if pattern is None and text.upper() in ("BEGIN", "COMMIT"):
                continue
            if ops is not None and not text.lstrip().upper().startswith(
                    tuple(verb for op in ops for verb in _STATEMENT_VERBS[op])):
                continue
            yield EventMatch(gtid, name, offset, int.from_bytes(raw[0:4], "little"), text)
        elif kind == _TABLE_MAP and pattern is None and table is not None:
            tmap = decode_event(raw, reader.fde)
            if isinstance(tmap, TableMapEvent) and (tmap.schema, tmap.table) == table:
                if ops is not None:
                    tables.add(tmap.table_id)
                    continue
                yield EventMatch(gtid, name, offset, int.from_bytes(raw[0:4], "little"),
                                 f"(row changes of {table[0]}.{table[1]})")
        elif tables and ops is not None and (op := ROW_OPS.get(kind)) in ops and op not in reported:
            rows = decode_event(raw, reader.fde)
            if isinstance(rows, RowsEvent) and rows.table_id in tables and table is not None:
                reported.add(op)
                yield EventMatch(gtid, name, offset, int.from_bytes(raw[0:4], "little"),
                                 f"({op} rows of {table[0]}.{table[1]})")


def _mentions(statement: str, default_schema: str, table: tuple[str, str]) -> bool:
    """Whether ``statement`` (run in ``default_schema``) names ``table``: as db.t, or as t in db."""
    db, name = (re.escape(part) for part in table)
    quoted = rf"`?{name}`?"
    if re.search(rf"`?{db}`?\s*\.\s*{quoted}(?![\w$])", statement, re.IGNORECASE):
        return True
    return default_schema == table[0] and re.search(rf"(?<![\w$.`]){quoted}(?![\w$])", statement,
                                                   re.IGNORECASE) is not None


def first_file_state(store: StoreReader) -> MariadbGtidList | None:
    """The binlog state before the store's oldest file (its GTID_LIST), None for an empty store."""
    files = store.files
    if not files:
        return None
    head = store.file_head(files[0])
    return MariadbGtidList(head.gtid_list or ())
