"""Row changes out of a sequence of binlog events: which table, which operation, the images, and
where and when they were committed.

:class:`RowChangeDecoder` is fed raw events in file order (sans-I/O; ``binhub binlog show --rows``
feeds it from files, the stream service will feed it from the store) and keeps what a row change
needs from earlier events: the current GTID and commit time, and the TABLE_MAPs by table id. Rows
events inside a TRANSACTION_PAYLOAD (MySQL's binlog_transaction_compression) are unpacked and carry
the payload's position. Column descriptions come from the TABLE_MAP's optional metadata, or from
``schemas`` (the schema history: ``(db, table) -> TableSchema | None``) when the event lacks them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from binhub.binlog.columns import TableSchema
from binhub.binlog.constants import (
    CHECKSUM_SIZE,
    HEADER_SIZE,
    ROWS_EVENT_TYPES,
    ROWS_V2_EVENT_TYPES,
    EventType,
)
from binhub.binlog.decode import decode_event, payload_events
from binhub.binlog.events import (
    FormatDescriptionEvent,
    GtidEvent,
    MariadbGtidEvent,
    RowsEvent,
    TableMapEvent,
    TransactionPayloadEvent,
)
from binhub.binlog.header import EventHeader
from binhub.binlog.rows import TableDecoder, row_operation, table_decoder
from binhub.binlog.table_map import TableMap, parse_table_map
from binhub.errors import BinlogError, InvalidEvent

__all__ = ["WALKED_EVENT_TYPES", "EventWalker", "RowChange", "RowChangeDecoder", "SchemaLookup"]

SchemaLookup = Callable[[str, str], TableSchema | None]

_LAYOUTS_KEPT = 4096
# Per-event tests use plain ints: comparing with an EventType member costs ~50 ns more each time.
_FDE = int(EventType.FORMAT_DESCRIPTION)
_TABLE_MAP = int(EventType.TABLE_MAP)
_MARIA_GTID = int(EventType.MARIA_GTID)
_ROWS_V2 = frozenset(map(int, ROWS_V2_EVENT_TYPES))
_PLAIN_ROWS = frozenset(map(int, (EventType.WRITE_ROWS_V1, EventType.UPDATE_ROWS_V1, EventType.DELETE_ROWS_V1,
                                  EventType.WRITE_ROWS_V2, EventType.UPDATE_ROWS_V2, EventType.DELETE_ROWS_V2,
                                  EventType.PARTIAL_UPDATE_ROWS)))
_MISSING: Any = object()  # a table id no TABLE_MAP has named (None: a table left out by ``include``)
_GTID_TYPES = frozenset({EventType.GTID, EventType.ANONYMOUS_GTID, EventType.GTID_TAGGED, EventType.MARIA_GTID})
# The events EventWalker.feed reads: every other one yields nothing and changes nothing, so a caller
# in a hurry (the stream, at every XID, BEGIN and annotation) may leave them out.
WALKED_EVENT_TYPES = frozenset(map(int, {EventType.FORMAT_DESCRIPTION, EventType.TABLE_MAP, EventType.TRANSACTION_PAYLOAD}
                                         | _GTID_TYPES | ROWS_EVENT_TYPES))


@dataclass(slots=True)
class RowChange:
    """One row inserted, updated or deleted.

    ``before``/``after`` map column names (``@N`` where unknown) to values in binhub form
    (:mod:`binhub.binlog.column_values`). With MINIMAL or NOBLOB images they hold only the columns
    the event carries (``complete`` is False). ``primary_key`` names the key columns; () when the
    table has none (the whole row identifies it); None when unknown."""

    op: str
    db: str
    table: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    primary_key: tuple[str, ...] | None
    gtid: str | None
    file: str
    pos: int
    commit_us: int  # commit time, microseconds since the epoch (UTC)
    names_known: bool
    complete: bool

    def pk(self) -> dict[str, Any] | None:
        row = self.after if self.after is not None else self.before
        if row is None or self.primary_key is None:
            return None
        if not self.primary_key:
            return dict(row)
        return {name: row.get(name) for name in self.primary_key}


T = TypeVar("T")


def _rows_event(data: bytes, code: int, crc: int, fde: FormatDescriptionEvent) -> RowsEvent | Any:
    """decode_event for a common rows event (``code`` one whose post-header ``fde`` declares as the
    usual one: see EventWalker._read_fde), read in place (the hot path of small transactions): table
    id, flags, v2 extra data, a column count below 251. Anything else goes to decode_event."""
    end = len(data) - crc
    p = HEADER_SIZE + 8
    if end < p + 3:
        return decode_event(data, fde)  # which names the problem
    extra = b""
    if code in _ROWS_V2:
        extra_len = data[p] | data[p + 1] << 8
        if extra_len < 2 or p + extra_len >= end:
            return decode_event(data, fde)
        extra = data[p + 2:p + extra_len]
        p += extra_len
    if p >= end or data[p] >= 251:
        return decode_event(data, fde)
    return RowsEvent(EventHeader.unpack(data), data, int.from_bytes(data[HEADER_SIZE:HEADER_SIZE + 6], "little"),
                     data[HEADER_SIZE + 6] | data[HEADER_SIZE + 7] << 8, extra, data[p], data[p + 1:end])


class EventWalker(ABC, Generic[T]):
    """Follows the events (fed in order) that row changes depend on; ``_rows`` turns each rows
    event into what the subclass produces (RowChange objects, or JSON lines)."""

    def __init__(self, file: str, *, schemas: SchemaLookup | None = None,
                 include: Callable[[str, str], bool] | None = None) -> None:
        self.file = file
        self.schemas = schemas
        # Tables ``include(db, table)`` rejects are never decoded: not their TABLE_MAP's layout,
        # not their rows (what a stream with --include/--exclude saves).
        self.include = include
        self.fde: FormatDescriptionEvent | None = None
        self.gtid: str | None = None
        self._commit_us: int | None = None
        self._tables: dict[int, TableDecoder | None] = {}
        self._layouts: dict[bytes, TableMap] = {}  # TABLE_MAP bytes after table id and flags -> parsed
        self._next_layout: bytes | None = None
        # What the hot paths read of self.fde, read once per FDE (a property and a method call per
        # event otherwise): the CRC size, a TABLE_MAP's table id width, the rows types read in place.
        self._fde_read: FormatDescriptionEvent | None | bool = False
        self._crc = CHECKSUM_SIZE
        self._id_len = 6
        self._plain: frozenset[int] = frozenset()

    def feed(self, data: bytes, offset: int, fde: FormatDescriptionEvent | None) -> Iterator[T]:
        """The row changes of one complete event (header and CRC included) found at ``offset``."""
        code = data[4]
        if code == _FDE:
            self.fde = fde
            self._tables.clear()
            return iter(())
        if code not in WALKED_EVENT_TYPES:
            return iter(())
        self.fde = fde
        if fde is not self._fde_read:
            self._read_fde(fde)
        if code == _MARIA_GTID and len(data) >= HEADER_SIZE + 13:
            # Gtid_log_event: seq_no u64, domain_id u32 (the server id is the header's); nothing
            # else of it matters here, so it is read in place (one per transaction).
            seq_no = int.from_bytes(data[HEADER_SIZE:HEADER_SIZE + 8], "little")
            domain = int.from_bytes(data[HEADER_SIZE + 8:HEADER_SIZE + 12], "little")
            self.gtid = f"{domain}-{int.from_bytes(data[5:9], 'little')}-{seq_no}"
            self._commit_us = int.from_bytes(data[0:4], "little") * 1_000_000
            return iter(())
        if code == _TABLE_MAP:
            # Every transaction repeats its tables' TABLE_MAPs: a layout seen before (the bytes after
            # table id and flags) is not parsed again.
            id_len = self._id_len
            layout = data[HEADER_SIZE + id_len + 2:len(data) - self._crc]
            table_map = self._layouts.get(layout)
            if table_map is not None:
                self._use_table(int.from_bytes(data[HEADER_SIZE:HEADER_SIZE + id_len], "little"), table_map, offset)
                return iter(())
            if len(self._layouts) >= _LAYOUTS_KEPT:
                self._layouts.clear()
            self._next_layout = layout
        try:
            event = _rows_event(data, code, self._crc, fde) if code in self._plain and fde is not None \
                else decode_event(data, fde)
        except BinlogError as exc:
            raise type(exc)(exc.message, file=self.file, offset=offset, hint=exc.hint) from None
        if type(event) is RowsEvent:  # most events: straight to _rows, not through _event's generator
            if self._tables.get(event.table_id, _MISSING) is None:
                return iter(())  # a table ``include`` left out
            return iter(self._rows(event, offset))
        return self._event(event, offset, fde)

    def _read_fde(self, fde: FormatDescriptionEvent | None) -> None:
        self._fde_read = fde
        self._crc = fde.checksum_size if fde is not None else CHECKSUM_SIZE
        self._id_len = 4 if fde is not None and fde.post_header_len(EventType.TABLE_MAP) == 6 else 6
        # The rows types whose post-header this FDE declares as the common one (table id, flags and,
        # in v2, the extra data's length): _rows_event reads those in place.
        self._plain = frozenset() if fde is None else frozenset(
            code for code in _PLAIN_ROWS if fde.post_header_len(code) == (10 if code in _ROWS_V2 else 8))

    def _event(self, event: Any, offset: int, fde: FormatDescriptionEvent | None) -> Iterator[T]:
        if isinstance(event, GtidEvent):
            gtid = event.gtid
            self.gtid = None if gtid is None else str(gtid)
            ts = event.original_commit_timestamp or event.immediate_commit_timestamp
            self._commit_us = ts if ts else event.header.timestamp * 1_000_000
        elif isinstance(event, MariadbGtidEvent):
            self.gtid = str(event.gtid)
            self._commit_us = event.header.timestamp * 1_000_000
        elif isinstance(event, TableMapEvent):
            self._table_map(event, offset)
        elif isinstance(event, RowsEvent):
            if self._tables.get(event.table_id, _MISSING) is not None:
                yield from self._rows(event, offset)
        elif isinstance(event, TransactionPayloadEvent):
            inner_fde = fde.without_checksum() if fde is not None else None
            try:
                inner_events = list(payload_events(event, inner_fde))
            except BinlogError as exc:
                raise type(exc)(exc.message, file=self.file, offset=offset, hint=exc.hint) from None
            for inner in inner_events:
                yield from self._event(inner, offset, inner_fde)

    def _table_map(self, event: TableMapEvent, offset: int) -> None:
        layout, self._next_layout = self._next_layout, None
        mariadb = self.fde is not None and self.fde.flavour == "mariadb"
        try:
            table_map = parse_table_map(event, mariadb=mariadb)
        except BinlogError as exc:
            raise type(exc)(exc.message, file=self.file, offset=offset, hint=exc.hint) from None
        if layout is not None:
            self._layouts[layout] = table_map
        self._use_table(event.table_id, table_map, offset)

    def _use_table(self, table_id: int, table_map: TableMap, offset: int) -> None:
        """Rows events for ``table_id`` decode with this layout from now on."""
        if self.include is not None and not self.include(table_map.db, table_map.table):
            self._tables[table_id] = None
            return
        try:
            schema = self.schemas(table_map.db, table_map.table) if self.schemas is not None else None
            self._tables[table_id] = table_decoder(table_map, schema)
        except BinlogError as exc:
            raise type(exc)(exc.message, file=self.file, offset=offset, hint=exc.hint) from None

    def _table_for(self, event: RowsEvent, offset: int) -> TableDecoder:
        decoder = self._tables.get(event.table_id, _MISSING)
        if not isinstance(decoder, TableDecoder):
            raise InvalidEvent(f"{event.header.type_name} for table id {event.table_id} comes without its TABLE_MAP",
                               file=self.file, offset=offset,
                               hint="start reading at the transaction's first event (its GTID or BEGIN)")
        return decoder

    def commit_us(self, event: RowsEvent) -> int:
        """The commit time of the current transaction: MySQL 8's commit timestamp (microseconds);
        otherwise the GTID event's time, which the server stamps when the transaction commits
        (seconds); the rows event's own time where no GTID event came first."""
        return self._commit_us if self._commit_us is not None else event.header.timestamp * 1_000_000

    @abstractmethod
    def _rows(self, event: RowsEvent, offset: int) -> Iterable[T]:
        """What one rows event becomes."""


    def row_changes(self, decoder: TableDecoder, event: RowsEvent, offset: int) -> Iterator[RowChange]:
        """The RowChange objects of one rows event (``decoder`` is its table's)."""
        op = row_operation(event.header.type_code)
        table_map = decoder.table_map
        commit_us = self.commit_us(event)
        full = len(table_map.types)
        for image in decoder.decode(event, file=self.file, offset=offset):
            row = image.after if image.after is not None else image.before
            complete = (image.before is None or len(image.before) == full) and \
                (image.after is None or len(image.after) == full)
            yield RowChange(op, table_map.db, table_map.table, image.before, image.after, decoder.primary_key,
                            self.gtid, self.file, offset, commit_us, decoder.names_known,
                            complete and row is not None)


class RowChangeDecoder(EventWalker[RowChange]):
    """Turns raw events (fed in order) into :class:`RowChange` objects."""

    def _rows(self, event: RowsEvent, offset: int) -> Iterator[RowChange]:
        return self.row_changes(self._table_for(event, offset), event, offset)
