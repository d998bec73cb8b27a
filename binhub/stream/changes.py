"""The change model of a stream: what one transaction of the store becomes, event by event.

:class:`ChangeReader` is fed the store's events in order (sans-I/O: the stream service reads them
with a :class:`~binhub.store.follower.StoreFollower`) and turns them into :class:`~binhub.sinks.Message` objects in its output format
(:mod:`binhub.stream.formats`: binhub JSON lines by default, or Debezium, Canal or Maxwell JSON):

* row changes, decoded by :mod:`binhub.binlog`'s row decoder with the columns the table had at that
  position (the schema history's cursor; TABLE_MAP FULL metadata wins where present). A table the
  history does not know gets positional names (``@1`` …) and ``"positional": true``; a TABLE_MAP
  whose column count disagrees with the history stops the stream with both shapes named
  (:class:`~binhub.errors.SchemaMismatch`), never a guess;
* DDL (binhub: ``{"op": "ddl", …, "sql": …}``), after which the schema history is brought up to date
  (``refresh_schema``) so the rows that follow decode with the new columns;
* a table the history does not know, with an upstream to ask (``seed_schema``): the history is
  seeded from its information_schema then, once per run. Those columns are the table's current
  ones: each TABLE_MAP is checked against them, and where a DDL since changed the table its rows
  get positional names, with an error in the log saying so;
* column exclusion and masking (:mod:`binhub.stream.columns`), on the lines of the tables with rules;
* transaction boundaries: :meth:`ChangeReader.feed` says when a transaction ended, with the
  position after it and the GTID set executed through it (what a checkpoint records).

Transactions before ``emit_from`` (a checkpoint, a start position) or whose GTID is in ``skip``
(a start GTID set) are followed but produce nothing.
"""

from __future__ import annotations

import bisect
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from binhub.binlog.changes import WALKED_EVENT_TYPES
from binhub.binlog.charsets import collation_by_id
from binhub.binlog.columns import TableSchema
from binhub.binlog.constants import HEADER_SIZE, EventFlag, EventType
from binhub.binlog.decode import decode_event
from binhub.binlog.events import FormatDescriptionEvent, GtidEvent, MariadbGtidEvent, TableMapEvent
from binhub.binlog.file import RawEvent
from binhub.binlog.gtid import MariadbGtid, MysqlGtid
from binhub.binlog.header import EventHeader
from binhub.binlog.query_status import sql_mode_names
from binhub.binlog.transaction import INERT_IN_EXPLICIT, TransactionTracker, decode_gtid_event
from binhub.binlog.transaction import GtidEvent as RawGtidEvent
from binhub.errors import BinhubError, SchemaMismatch
from binhub.schema import (
    Charset,
    Outcome,
    ParsedStatement,
    Position,
    QueryRecord,
    QueryScanner,
    SchemaCursor,
    SchemaHistory,
    TableName,
    check_table_map,
)
from binhub.schema.changes import (
    AlterDatabase,
    AlterTable,
    CreateDatabase,
    CreateTable,
    CreateTableLike,
    DropTables,
    RenameTable,
    RenameTables,
    TruncateTable,
)
from binhub.schema.ddl import parse_statement
from binhub.schema.sqltext import resolve_executable_comments, tokenize
from binhub.sinks import Checkpoint, Message
from binhub.sinks.mysql.options import table_passes
from binhub.store.index import file_seq
from binhub.store.recovery import Gtid, GtidSet
from binhub.stream.columns import ColumnRules
from binhub.stream.executed import ExecutedLog
from binhub.stream.formats import BinhubFormat, DdlChange, DdlTable, OutputFormat, Walker

__all__ = ["ChangeReader", "TableFilter", "TransactionEnd"]

_END = (1 << 62, 0)
_INDEX_DDL = re.compile(r"\s*(?:CREATE(?:\s+(?:OR\s+REPLACE|ONLINE|OFFLINE|UNIQUE|FULLTEXT|SPATIAL|VECTOR))*\s+INDEX"
                        r"|DROP\s+INDEX)\b", re.IGNORECASE)  # past every position: no history entry follows

log = logging.getLogger("binhub.stream")

# Per-event tests use plain ints: comparing with an EventType member costs ~50 ns more each time.
_FDE = int(EventType.FORMAT_DESCRIPTION)
_GTID_TYPES = frozenset(map(int, (EventType.GTID, EventType.ANONYMOUS_GTID, EventType.GTID_TAGGED, EventType.MARIA_GTID)))
_QUERY_TYPES = frozenset(map(int, (EventType.QUERY, EventType.MARIA_QUERY_COMPRESSED)))
_OBSERVED = _GTID_TYPES | {int(EventType.QUERY), int(EventType.XID)}  # what OutputFormat.observe reads
# Inside a transaction these (annotations, INTVAR, …) produce nothing and change nothing: no walker,
# output format or transaction tracker reads them (a MariaDB single-row transaction is 5 events, one an annotation).
_IDLE_IN_TRANSACTION = INERT_IN_EXPLICIT - WALKED_EVENT_TYPES - _OBSERVED - _QUERY_TYPES


class TableFilter:
    """``--include``/``--exclude`` globs on ``db.table``: a table passes when it matches an include
    (every table, with none given) and no exclude. A DDL without a table (``CREATE DATABASE d``) is
    judged as ``d.`` (so ``d.*`` covers it)."""

    def __init__(self, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> None:
        self.include = tuple(include)
        self.exclude = tuple(exclude)
        self._seen: dict[tuple[str, str], bool] = {}

    def __call__(self, db: str, table: str) -> bool:
        key = (db, table)
        passes = self._seen.get(key)
        if passes is None:
            passes = self._seen[key] = table_passes(self.include, self.exclude, db, table)
        return passes


class TransactionEnd:
    """A transaction of the store ended: the stream may checkpoint here.

    One per transaction, so a plain slotted class, and its GTID is decoded and the executed set
    folded only when read (a sink renders one checkpoint per commit: see
    :mod:`binhub.stream.executed`)."""

    __slots__ = ("_count", "_gtid", "_log", "file", "pos", "timestamp")

    def __init__(self, file: str, pos: int, timestamp: int, gtid: RawGtidEvent | None, log: ExecutedLog,
                 count: int) -> None:
        self.file = file
        self.pos = pos  # where the next transaction starts
        self.timestamp = timestamp  # the header time of its last event (seconds since the epoch)
        self._gtid = gtid
        self._log = log
        self._count = count

    @property
    def gtid(self) -> Gtid | None:
        return None if self._gtid is None else decode_gtid_event(self._gtid)

    @property
    def executed(self) -> GtidSet | None:
        """The start set plus every transaction read through this one."""
        return self._log.through(self._count)

    def checkpoint(self) -> Checkpoint:
        """What a sink records for this transaction end (:class:`~binhub.sinks.CheckpointSource`)."""
        executed = self.executed
        return Checkpoint(self.file, self.pos, "" if executed is None else str(executed))


class ChangeReader:
    """Feed the store's events in order (see the module docstring)."""

    def __init__(self, *, refresh_schema: Callable[[], SchemaHistory], table_filter: TableFilter,
                 executed: GtidSet | None, emit_from: tuple[str, int] | None = None,
                 skip: GtidSet | None = None, output: OutputFormat | None = None, columns: ColumnRules | None = None,
                 seed_schema: Callable[[], SchemaHistory] | None = None) -> None:
        self.output = output if output is not None else BinhubFormat(stream_name="stream", keyed=False)
        self._observes = self.output.observes
        self._refresh_schema = refresh_schema
        self._history = refresh_schema()
        self._cursor: SchemaCursor = self._history.cursor()
        self.filter = table_filter
        self._executed = ExecutedLog(executed)
        self._emit_from = (file_seq(emit_from[0]), emit_from[1]) if emit_from is not None else None
        self._skip = skip
        # No rules (or a format that applies them as it encodes): not even a lookup per rows event.
        self._columns = columns if columns and not self.output.take_column_rules(columns) else None
        self._seed_schema = seed_schema
        # Tables the history has from information_schema (a seed: the columns as they were when it was
        # read, not necessarily when the rows were written): each of their TABLE_MAPs is checked.
        self._seeded: dict[TableName, Position] = _seeded_tables(self._history)
        self._seeded_names = {(t.db, t.table) for t in self._seeded}
        # (db, table) -> (the position up to which the answer holds, the table's columns)
        self._known: dict[tuple[str, str], tuple[tuple[int, int], TableSchema | None]] = {}
        self._seq_file, self._seq = "", 0
        self._checked: dict[tuple[TableSchema, bytes], bool] = {}
        self._told: set[TableName] = set()
        self._event_data = b""
        self._tracker = TransactionTracker()
        self._file = ""
        self._fde: FormatDescriptionEvent | None = None
        self._crc = 4  # the CRC size of the events under self._fde (a property of it: read once per file)
        self._walker: Walker | None = None
        self._scanner: QueryScanner | None = None
        self._event_at = ("", 4)  # file and offset of the event being decoded (for the schema lookup)
        self._skipping = False

    @property
    def in_transaction(self) -> bool:
        return self._tracker.in_transaction

    def _schema(self, db: str, table: str) -> Any:
        # Asked at every TABLE_MAP (each transaction repeats its tables'): the answer for a table
        # holds until the next history entry, so between DDLs it is found in a dict.
        file, offset = self._event_at
        if file != self._seq_file:
            self._seq_file, self._seq = file, file_seq(file)
        here = (self._seq, offset)
        known = self._known.get((db, table))
        if known is not None and here <= known[0]:
            schema: TableSchema | None = known[1]
        else:
            schema = self._lookup(db, table, Position(self._seq, offset, file))
        if schema is not None and (db, table) in self._seeded_names:
            schema = self._check_seeded(TableName(db, table), schema, Position(self._seq, offset, file))
        return schema

    def _lookup(self, db: str, table: str, at: Position) -> TableSchema | None:
        name = TableName(db, table)
        schema = self._cursor.table(name, at)
        entries = self._history.entries
        i = bisect.bisect_left(entries, at, key=lambda e: e.position)  # the first entry not applied at ``at``
        until = (entries[i].position.seq, entries[i].position.pos) if i < len(entries) else _END
        self._known[(db, table)] = (until, schema)
        if schema is None and self._seed_schema is not None:
            schema = self._seed(name, at)
        return schema

    def _seed(self, name: TableName, at: Position) -> TableSchema | None:
        """Seed the history from the upstream's information_schema (once per run: an unknown table
        must not cost an upstream round trip per transaction)."""
        seed, self._seed_schema = self._seed_schema, None
        assert seed is not None
        try:
            self._use_history(seed())
        except BinhubError as exc:
            log.warning("%s at %s is not in the schema history, and seeding it from the upstream failed: %s; "
                        "its rows come with positional names (@1, @2, …)", name, at, exc)
            return None
        log.warning("%s at %s is not in the schema history: seeded it from the upstream's information_schema as it "
                    "is now (upstream %s); a seeded table's columns are its current ones, so each TABLE_MAP is "
                    "checked against them", name, at, self._seeded.get(name, "-"))
        schema = self._cursor.table(name, at)
        if schema is None:
            log.warning("%s is not in the upstream's information_schema either (dropped since?): its rows come with "
                        "positional names (@1, @2, …)", name)
        return schema

    def _check_seeded(self, name: TableName, schema: TableSchema, at: Position) -> TableSchema | None:
        """A seeded table's columns are the upstream's at the seed: used only where the TABLE_MAP has
        their shape; where a DDL since changed the table, its rows get positional names (and the log
        says so, once per table), never a guess."""
        data = self._event_data
        if data[4] != EventType.TABLE_MAP:
            return schema  # inside a TRANSACTION_PAYLOAD: the decoder checks the shape itself
        crc = self._fde.checksum_size if self._fde is not None else 4
        key = (schema, data[HEADER_SIZE + 8:len(data) - crc])  # the layout, less table id, flags and CRC
        fits = self._checked.get(key)
        if fits is None:
            event = decode_event(data, self._fde)
            assert isinstance(event, TableMapEvent)
            try:
                check_table_map(schema, event.column_types, str(at))
                fits = True
            except SchemaMismatch as exc:
                fits = False
                if name not in self._told:
                    self._told.add(name)
                    log.error("the columns of %s were seeded from information_schema (read at upstream %s): they "
                              "are its columns then, not when these rows were written, and a DDL between changed "
                              "the table: %s. Its rows come with positional names (@1, @2, …) until the history "
                              "meets that DDL", name, self._seeded[name], exc.message)
            self._checked[key] = fits
        return schema if fits else None  # None: the TABLE_MAP alone (positional, or FULL metadata's names)

    def _use_history(self, history: SchemaHistory) -> None:
        self._history = history
        self._cursor = history.cursor()
        self._seeded = _seeded_tables(history)
        self._seeded_names = {(t.db, t.table) for t in self._seeded}
        self._known.clear()

    def feed(self, file: str, offset: int, data: bytes) -> tuple[list[Message], TransactionEnd | None]:
        """The messages of one complete event (for a line sink, a rows event's lines may come as
        one), and the transaction end it completes (if any)."""
        if file != self._file:
            self._file = file
            self._walker = self.output.walker(file, schemas=self._schema, include=self.filter)
            self._scanner = QueryScanner(file)
        assert self._walker is not None and self._scanner is not None
        code = data[4]
        explicit = self._tracker.explicit
        if explicit and code in _IDLE_IN_TRANSACTION:
            return [], None
        if code == _FDE:
            fde = decode_event(data)
            assert isinstance(fde, FormatDescriptionEvent)
            self._fde = fde
            self._crc = fde.checksum_size
            self._scanner.fde = fde
            self._tracker.reset()
        elif code in _GTID_TYPES and self._skip is not None:
            gtid = _gtid_of(data, self._fde)
            self._skipping = gtid is not None and gtid in self._skip
        emit = not self._skipping and (self._emit_from is None or (file_seq(file), offset) >= self._emit_from)
        if self._observes and code in _OBSERVED:
            self.output.observe(code, data)
        lines: list[Message] = []
        if emit:
            if code in _QUERY_TYPES:
                lines.extend(self._query(offset, data))
            if code in WALKED_EVENT_TYPES:  # not XID, BEGIN, annotations: they would yield nothing
                self._event_at = (file, offset)
                self._event_data = data
                if self._columns is None:
                    lines.extend(self._walker.feed(data, offset, self._fde))
                else:
                    lines.extend(map(self._columns.apply_message, self._walker.feed(data, offset, self._fde)))
        elif code == _FDE:
            self._walker.feed(data, offset, self._fde)
        if explicit and code in INERT_IN_EXPLICIT:
            return lines, None  # a TABLE_MAP or rows event inside a transaction: the tracker's first test
        ended = self._tracker.feed(data, self._crc)
        if not ended:
            return lines, None
        held = self.output.transaction_end()
        if emit:
            lines.extend(held)
        gtid_event = self._tracker.last_gtid_event
        executed = self._executed
        count = executed.count if gtid_event is None else executed.append(gtid_event)
        self._skipping = False
        return lines, TransactionEnd(file, offset + len(data), self._tracker.last_timestamp, gtid_event, executed,
                                     count)

    def _query(self, offset: int, data: bytes) -> Iterator[Message]:
        assert self._scanner is not None
        header = EventHeader.unpack(data)
        record = self._scanner.feed(RawEvent(offset, header, data))
        if record is None:
            return
        parsed = parse_statement(record.sql, record.db, flavour=record.flavour, server_version=record.server_version)
        if parsed.outcome == Outcome.IGNORED:
            index_of = _index_table(record)
            if index_of is not None and self.filter(*index_of):
                yield self._ddl_message(record, offset, data, *index_of)
            return
        # The TABLE_MAPs that follow must find the columns this DDL made: a history that has not
        # scanned this far yet learns it now (it reads the store up to what is durable, which
        # includes it). One scanned further already has it, and the cursor applies it in order.
        scanned = self._history.scanned
        if scanned is None or scanned <= Position.of(record.file, offset):
            self._use_history(self._refresh_schema())
        names = _ddl_names(parsed, record.db)
        if not any(self.filter(name_db, name_table or "") for name_db, name_table in names):
            return  # a DDL goes wherever one of the tables it names goes
        tables: tuple[DdlTable, ...] = ()
        charset = None
        if self.output.describes_tables:
            after = Position.of(record.file, offset + len(data))
            tables = _ddl_tables(self._history, parsed, Position.of(record.file, offset), after)
            charset = _ddl_database_charset(self._history, parsed, after)
        yield self._ddl_message(record, offset, data, *names[0], tables=tables, database_charset=charset)

    def _ddl_message(self, record: QueryRecord, offset: int, data: bytes, db: str, table: str | None,
                     tables: tuple[DdlTable, ...] = (), database_charset: str | None = None) -> Message:
        return self.output.ddl(DdlChange(
            db, table, record.sql, self._walker.gtid if self._walker is not None else None, record.file, offset,
            int.from_bytes(data[0:4], "little"), int.from_bytes(data[5:9], "little"),
            self.output.context.thread_id, record.flavour,
            _ddl_session(record, use_db=not EventHeader.unpack(data).flags & EventFlag.SUPPRESS_USE), tables,
            database_charset))


def _index_table(record: QueryRecord) -> tuple[str, str] | None:
    """The table of a CREATE/DROP INDEX: the schema history ignores it (no column changes), but a
    sink that applies DDL needs the table's indexes. None for every other statement."""
    text = resolve_executable_comments(record.sql, record.server_version, record.flavour)
    if not _INDEX_DDL.match(text):
        return None
    try:
        tokens = tokenize(text)
    except ValueError:
        return None
    for k, t in enumerate(tokens[:-1]):
        if t.is_("ON") and tokens[k + 1].is_name:
            if k + 3 < len(tokens) and tokens[k + 2].is_(".") and tokens[k + 3].is_name:
                return tokens[k + 1].text, tokens[k + 3].text
            return record.db, tokens[k + 1].text
    return None


def _ddl_session(record: QueryRecord, *, use_db: bool) -> dict[str, Any]:
    """What the DDL ran under on the primary, for a sink that runs it again: the default database,
    sql_mode (names), the connection's and the server's collations, and the time zone (null: the
    server's default). A CREATE/DROP DATABASE is logged with the database it names as its default
    and LOG_EVENT_SUPPRESS_USE_F (``use_db`` false): ``USE`` of it would fail, so it has none."""
    status = record.status
    collation = collation_by_id(status.collation_connection) if status.collation_connection else None
    server = collation_by_id(status.collation_server) if status.collation_server else None
    sql_mode = None if status.sql_mode is None else ",".join(sql_mode_names(status.sql_mode, record.flavour))
    return {"db": record.db if use_db else None, "sql_mode": sql_mode, "collation_connection": collation, "collation_server": server,
            "time_zone": status.time_zone}


def _ddl_tables(history: SchemaHistory, parsed: ParsedStatement, at: Position, after: Position) -> tuple[DdlTable, ...]:
    """The tables a DDL created, altered, renamed or dropped, as the history has them before and after it."""
    moves: list[tuple[str, TableName, TableName | None]] = []  # (change, name before, name after)
    for change in parsed.changes:
        if isinstance(change, CreateTable | CreateTableLike) and not change.temporary:
            moves.append(("CREATE", change.name, change.name))
        elif isinstance(change, AlterTable):
            renamed = [a.new for a in change.actions if isinstance(a, RenameTable)]
            moves.append(("ALTER", change.name, renamed[-1] if renamed else change.name))
        elif isinstance(change, RenameTables):
            moves.extend(("ALTER", old, new) for old, new in change.pairs)
        elif isinstance(change, DropTables) and not change.temporary:
            moves.extend(("DROP", name, None) for name in change.names)
    if not moves:
        return ()
    old, new = history.catalog_at(at)[0], history.catalog_at(after)[0]
    return tuple(DdlTable(kind, old.table(name), new.table(dest) if dest is not None else None)
                 for kind, name, dest in moves)


def _ddl_database_charset(history: SchemaHistory, parsed: ParsedStatement, after: Position) -> str | None:
    """The default charset of the database a CREATE/ALTER DATABASE made, as the history resolved it
    (the statement's CHARACTER SET or COLLATE, else the server's default in the QUERY event)."""
    for change in parsed.changes:
        if isinstance(change, CreateDatabase | AlterDatabase):
            return history.catalog_at(after)[0].databases.get(change.name, Charset()).charset
    return None


def _seeded_tables(history: SchemaHistory) -> dict[TableName, Position]:
    """Every table a seed of the history describes, with where the (last such) seed was read."""
    return {name: e.position for e in history.entries if e.kind == "seed" and e.seed is not None
            for name in e.seed.tables}


def _gtid_of(data: bytes, fde: FormatDescriptionEvent | None) -> Gtid | None:
    event = decode_event(data, fde)
    if isinstance(event, MariadbGtidEvent):
        gtid: MysqlGtid | MariadbGtid | None = event.gtid
        return gtid
    if isinstance(event, GtidEvent):
        return event.gtid
    return None


def _ddl_names(parsed: ParsedStatement, default_db: str) -> list[tuple[str, str | None]]:
    """Every table a DDL names (a database's own DDL: the database, table None), the one its line
    names first (a RENAME's old name)."""
    out: list[tuple[str, str | None]] = []
    for change in parsed.changes:
        if isinstance(change, CreateTable | CreateTableLike | AlterTable | TruncateTable):
            out.append((change.name.db, change.name.table))
        if isinstance(change, CreateTableLike):
            out.append((change.source.db, change.source.table))
        elif isinstance(change, AlterTable):
            out.extend((a.new.db, a.new.table) for a in change.actions if isinstance(a, RenameTable))
        elif isinstance(change, RenameTables):
            out.extend((name.db, name.table) for pair in change.pairs for name in pair)
        elif isinstance(change, DropTables):
            out.extend((name.db, name.table) for name in change.names)
        elif isinstance(name := getattr(change, "name", None), str):
            out.append((name, None))
    if not out:
        out = [(t.db, t.table) for t in parsed.tables] or [(default_db, None)]
    return out
