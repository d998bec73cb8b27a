"""What an output format is: it turns the store's events into :class:`~binhub.sinks.Message` objects.

A format gives the :class:`~binhub.stream.changes.ChangeReader` a walker per binlog file (rows
events in, messages out), renders DDL, and may hold messages until a transaction ends (Maxwell's
``xid``/``commit`` are only known then). Formats that carry more than a binhub line does (server
id, thread id, XID) read it from the events around the rows through :meth:`OutputFormat.observe`,
into the :class:`TransactionContext`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from binhub.binlog.constants import HEADER_SIZE, EventType
from binhub.binlog.events import FormatDescriptionEvent
from binhub.schema import TableDef
from binhub.sinks import Message
from binhub.stream.columns import ColumnRules

__all__ = ["DdlChange", "DdlTable", "OutputFormat", "TransactionContext", "Walker"]

_BEGINS = frozenset({EventType.GTID, EventType.ANONYMOUS_GTID, EventType.GTID_TAGGED, EventType.MARIA_GTID})


class Walker(Protocol):
    """Rows events of one binlog file in, messages out (a :class:`~binhub.binlog.changes.EventWalker`)."""

    @property
    def gtid(self) -> str | None: ...

    def feed(self, data: bytes, offset: int, fde: FormatDescriptionEvent | None) -> Iterable[Message]: ...


@dataclass(slots=True)
class TransactionContext:
    """What the events around a transaction's rows say about it: its thread (the BEGIN query's
    ``thread_id``), its XID (the XID event, at its end), and how many row changes it has had."""

    thread_id: int | None = None
    xid: int | None = None
    id: str | None = None  # its id in the output: the GTID, or where its first row change is (file:pos)
    commit_us: int = 0
    rows: int = 0
    table_rows: dict[tuple[str, str], int] = field(default_factory=dict)

    def next_row(self, db: str, table: str) -> tuple[int, int]:
        """The 1-based order of a new row change in the transaction, and within its table."""
        self.rows += 1
        n = self.table_rows.get((db, table), 0) + 1
        self.table_rows[(db, table)] = n
        return self.rows, n


@dataclass(frozen=True, slots=True)
class DdlTable:
    """A table a DDL created, altered (renamed) or dropped, as the schema history has it before
    and after the statement (None: not there, or not known to the history)."""

    change: str  # "CREATE", "ALTER" or "DROP" (Debezium's tableChanges types)
    before: TableDef | None
    after: TableDef | None


@dataclass(frozen=True, slots=True)
class DdlChange:
    """A DDL statement of the stream (the table is the first one it names; None: a database's)."""

    db: str
    table: str | None
    sql: str
    gtid: str | None
    file: str
    pos: int
    timestamp: int  # the event's header time, seconds since the epoch
    server_id: int
    thread_id: int | None
    flavour: str  # "mysql" or "mariadb"
    session: dict[str, Any] | None = None  # what it ran under on the primary (database, sql_mode, collations, time zone)
    tables: tuple[DdlTable, ...] = ()  # only for a format that ``describes_tables``
    database_charset: str | None = None  # a CREATE/ALTER DATABASE's resulting default (``describes_tables``)


class OutputFormat(ABC):
    """One ``--format``: a walker per file, DDL rendering, messages held to a transaction's end."""

    name: ClassVar[str]
    observes: ClassVar[bool] = False  # whether observe() needs the events around the rows
    describes_tables: ClassVar[bool] = False  # whether ddl() needs DdlChange.tables

    def __init__(self, *, stream_name: str, keyed: bool, transaction_metadata: bool = False) -> None:
        self.stream_name = stream_name
        self.keyed = keyed  # one message per change with its key (Kafka), not chunks of lines
        self.transaction_metadata = transaction_metadata  # Debezium's provide.transaction.metadata
        self.context = TransactionContext()

    @abstractmethod
    def walker(self, file: str, *, schemas: Callable[[str, str], Any],
               include: Callable[[str, str], bool]) -> Walker: ...

    @abstractmethod
    def ddl(self, change: DdlChange) -> Message: ...

    def take_column_rules(self, rules: ColumnRules) -> bool:
        """Apply the column exclusions and masks while encoding (True), or leave them to the caller,
        who applies them to binhub lines (False: :meth:`ColumnRules.apply_message`)."""
        return False

    def observe(self, code: int, data: bytes) -> None:
        """A transaction's GTID/BEGIN/XID event (only called when ``observes``)."""
        if code in _BEGINS:
            self.context = TransactionContext()
        elif code == EventType.QUERY and len(data) >= HEADER_SIZE + 4:
            self.context.thread_id = int.from_bytes(data[HEADER_SIZE:HEADER_SIZE + 4], "little")
        elif code == EventType.XID and len(data) >= HEADER_SIZE + 8:
            self.context.xid = int.from_bytes(data[HEADER_SIZE:HEADER_SIZE + 8], "little")

    def transaction_end(self) -> list[Message]:
        """Messages held back until the transaction's end (delivered before its checkpoint)."""
        self.context = TransactionContext()
        return []
