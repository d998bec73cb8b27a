"""The statements of a binlog, with where they are: QUERY events, their GTID and session charsets.

:class:`QueryScanner` is fed the events of one file in order (``binhub.binlog.file`` reads them)
and returns a :class:`QueryRecord` for each QUERY event. It remembers the GTID of the transaction
the event belongs to (MariaDB's GTID event and MySQL's GTID event both come first) and the FDE's
server version, which decides executable comments and MariaDB's type spellings.
"""

from __future__ import annotations

from dataclasses import dataclass

from binhub.binlog.charsets import charset_of_collation_name, collation_by_id, python_codec
from binhub.binlog.constants import EventType
from binhub.binlog.decode import decode_event
from binhub.binlog.events import FormatDescriptionEvent, GtidEvent, MariadbGtidEvent, QueryEvent
from binhub.binlog.file import RawEvent
from binhub.binlog.query_status import QueryStatus, decode_query_status

__all__ = ["Position", "QueryRecord", "QueryScanner", "file_sequence"]

_QUERY_TYPES = frozenset({EventType.QUERY, EventType.MARIA_QUERY_COMPRESSED})
_GTID_TYPES = frozenset({EventType.GTID, EventType.ANONYMOUS_GTID, EventType.GTID_TAGGED, EventType.MARIA_GTID})


def file_sequence(name: str) -> int:
    """The number of a binlog file name (``mysql-bin.000012`` → 12); files sort by it."""
    suffix = name.rsplit(".", 1)[-1]
    return int(suffix) if suffix.isdigit() else -1


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """A place in the store: an event's start in a file. Orders by file sequence, then offset."""

    seq: int
    pos: int
    file: str = ""

    @classmethod
    def of(cls, file: str, pos: int) -> Position:
        return cls(file_sequence(file), pos, file)

    def __str__(self) -> str:
        return f"{self.file}:{self.pos}"


@dataclass(frozen=True, slots=True)
class QueryRecord:
    file: str
    pos: int  # where the QUERY event starts
    end: int  # where the next event starts
    gtid: str  # "" without GTIDs
    db: str  # the session's default database
    sql: str
    status: QueryStatus
    flavour: str
    server_version: tuple[int, int, int] | None
    error_code: int = 0

    @property
    def position(self) -> Position:
        return Position.of(self.file, self.pos)


class QueryScanner:
    """Feed every event of one file, in order; :meth:`feed` returns a record for QUERY events."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.fde: FormatDescriptionEvent | None = None
        self.gtid = ""

    def feed(self, event: RawEvent) -> QueryRecord | None:
        code = event.header.type_code
        if code == EventType.FORMAT_DESCRIPTION:
            decoded = decode_event(event.data)
            assert isinstance(decoded, FormatDescriptionEvent)
            self.fde = decoded
            return None
        if code in _GTID_TYPES:
            gtid_event = decode_event(event.data, self.fde)
            if isinstance(gtid_event, MariadbGtidEvent):
                self.gtid = str(gtid_event.gtid)
            elif isinstance(gtid_event, GtidEvent):
                gtid = gtid_event.gtid
                self.gtid = "" if gtid is None else str(gtid)
            return None
        if code not in _QUERY_TYPES:
            return None
        query = decode_event(event.data, self.fde)
        assert isinstance(query, QueryEvent)
        status = decode_query_status(query.status_vars)
        return QueryRecord(
            file=self.file, pos=event.offset, end=event.end, gtid=self.gtid, db=query.schema,
            sql=query.query.decode(_client_codec(status), "replace"), status=status,
            flavour=self.fde.flavour if self.fde else "mysql",
            server_version=self.fde.version_tuple if self.fde else None, error_code=query.error_code,
        )


def _client_codec(status: QueryStatus) -> str:
    """The statement is in the session's character_set_client."""
    client = status.character_set_client
    collation = collation_by_id(client) if client is not None else None
    return python_codec(charset_of_collation_name(collation) if collation else None)
