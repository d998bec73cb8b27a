"""One frozen dataclass per binlog event type; ``binhub.binlog.decode.decode_event`` builds them from bytes.

Every event keeps ``header`` and ``raw`` (the complete event, header and CRC included), so a
decoded event can always be written back byte for byte. Body layouts follow MySQL's
``libs/mysql/binlog/event/{control,statement,rows}_events.h`` and MariaDB's ``sql/log_event.cc``;
each decoder names what it follows. Types the codec does not model (and codes no server defines,
such as Aurora's 100) become :class:`UnknownEvent` and pass through untouched.

MySQL anonymous GTIDs decode to :class:`AnonymousGtidEvent`, a subclass of :class:`GtidEvent`
with ``gno == 0``: ``isinstance(ev, GtidEvent)`` covers GTID, ANONYMOUS_GTID and GTID_TAGGED.

``decode_event`` does not verify CRCs unless asked: the file reader and the relay do that once,
on arrival. This module imports nothing of the decoders (they import it).
"""

from __future__ import annotations

import dataclasses
import uuid as uuid_mod
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntFlag
from typing import ClassVar

from binhub.binlog.checksum import version_tuple
from binhub.binlog.constants import (
    CHECKSUM_SIZE,
    ChecksumAlg,
    EventType,
)
from binhub.binlog.gtid import MariadbGtid, MysqlGtid, MysqlGtidSet
from binhub.binlog.header import EventHeader
from binhub.errors import InvalidEvent
from binhub.frozen import fast_init


@dataclass(frozen=True, slots=True)
class Event:
    header: EventHeader
    raw: bytes

    @property
    def type_code(self) -> int:
        return self.header.type_code


@dataclass(frozen=True, slots=True)
class UnknownEvent(Event):
    """An event this codec does not decode; ``raw`` is all there is."""


@dataclass(frozen=True, slots=True)
class FormatDescriptionEvent(Event):
    binlog_version: int
    server_version: str
    create_timestamp: int
    common_header_len: int
    post_header_lens: bytes
    checksum_alg: ChecksumAlg  # UNDEFINED for servers before 5.6.1, which wrote no algorithm byte

    @property
    def checksum_size(self) -> int:
        """Trailing CRC bytes on the *other* events of this file."""
        return CHECKSUM_SIZE if self.checksum_alg == ChecksumAlg.CRC32 else 0

    @property
    def flavour(self) -> str:
        return "mariadb" if "MariaDB" in self.server_version else "mysql"

    @property
    def version_tuple(self) -> tuple[int, int, int]:
        return version_tuple(self.server_version)

    def post_header_len(self, type_code: int) -> int | None:
        """Post-header length of a type as this FDE declares it (None if the FDE predates the type)."""
        if 1 <= type_code <= len(self.post_header_lens):
            return self.post_header_lens[type_code - 1]
        return None

    def without_checksum(self) -> FormatDescriptionEvent:
        """The same FDE with checksums off: decodes events that carry no CRC (e.g. inside a payload)."""
        return dataclasses.replace(self, checksum_alg=ChecksumAlg.OFF)


@dataclass(frozen=True, slots=True)
class RotateEvent(Event):
    position: int
    next_file: str


@dataclass(frozen=True, slots=True)
class QueryEvent(Event):
    thread_id: int
    exec_time: int
    error_code: int
    status_vars: bytes
    schema: str
    query: bytes

    @property
    def query_text(self) -> str:
        return self.query.decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class ExecuteLoadQueryEvent(QueryEvent):
    file_id: int
    fn_pos_start: int
    fn_pos_end: int
    dup_handling: int


@dataclass(frozen=True, slots=True)
class AppendBlockEvent(Event):
    """APPEND_BLOCK and BEGIN_LOAD_QUERY: a block of a LOAD DATA file."""

    file_id: int
    block: bytes


@dataclass(frozen=True, slots=True)
class XidEvent(Event):
    xid: int


@dataclass(frozen=True, slots=True)
class XaPrepareEvent(Event):
    one_phase: bool
    format_id: int
    gtrid: bytes
    bqual: bytes


@dataclass(frozen=True, slots=True)
class GtidEvent(Event):
    """MySQL GTID (33), ANONYMOUS_GTID (34, see AnonymousGtidEvent) and GTID_TAGGED (42).

    Commit timestamps are microseconds since the epoch; server versions are ``major*10000 +
    minor*100 + patch``. Fields an older server did not write are 0 (``transaction_length``) or
    None (``immediate_commit_timestamp`` before 8.0.1; server versions before 8.0.14)."""

    flags: int
    uuid: uuid_mod.UUID
    gno: int
    tag: str
    last_committed: int | None
    sequence_number: int | None
    immediate_commit_timestamp: int | None
    original_commit_timestamp: int | None
    transaction_length: int
    immediate_server_version: int | None
    original_server_version: int | None
    commit_group_ticket: int | None

    FLAG_MAY_HAVE_SBR: ClassVar[int] = 0x01

    @property
    def anonymous(self) -> bool:
        return self.header.type_code == EventType.ANONYMOUS_GTID

    @property
    def gtid(self) -> MysqlGtid | None:
        return None if self.anonymous else MysqlGtid(self.uuid, self.gno, self.tag)


@dataclass(frozen=True, slots=True)
class AnonymousGtidEvent(GtidEvent):
    """ANONYMOUS_GTID: same layout as GTID, uuid and gno are zero (gtid_mode=OFF)."""


@dataclass(frozen=True, slots=True)
class PreviousGtidsEvent(Event):
    gtid_set: MysqlGtidSet


class MariadbGtidFlag(IntFlag):
    """``flags2`` of MariaDB's Gtid_log_event."""

    FL_STANDALONE = 1
    FL_GROUP_COMMIT_ID = 2
    FL_TRANSACTIONAL = 4
    FL_ALLOW_PARALLEL = 8
    FL_WAITED = 16
    FL_DDL = 32
    FL_PREPARED_XA = 64
    FL_COMPLETED_XA = 128


@dataclass(frozen=True, slots=True)
class MariadbGtidEvent(Event):
    """MariaDB GTID (162); the server id of the GTID is the header's."""

    seq_no: int
    domain_id: int
    flags2: int
    commit_id: int | None
    xa_format_id: int | None
    xa_gtrid: bytes
    xa_bqual: bytes
    flags_extra: int

    @property
    def gtid(self) -> MariadbGtid:
        return MariadbGtid(self.domain_id, self.header.server_id, self.seq_no)

    @property
    def standalone(self) -> bool:
        return bool(self.flags2 & MariadbGtidFlag.FL_STANDALONE)


@dataclass(frozen=True, slots=True)
class MariadbGtidListEvent(Event):
    gtids: tuple[MariadbGtid, ...]
    list_flags: int


@dataclass(frozen=True, slots=True)
class BinlogCheckpointEvent(Event):
    file: str


@dataclass(frozen=True, slots=True)
class AnnotateRowsEvent(Event):
    query: bytes

    @property
    def query_text(self) -> str:
        return self.query.decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class RowsQueryEvent(Event):
    query: bytes


@dataclass(frozen=True, slots=True)
class HeartbeatEvent(Event):
    """HEARTBEAT (27: the file name is the body, the position is ``header.log_pos``) and
    HEARTBEAT_V2 (41: both in a TLV body)."""

    log_ident: str
    log_pos: int


@dataclass(frozen=True, slots=True)
class TableMapEvent(Event):
    table_id: int
    flags: int
    schema: str
    table: str
    column_count: int
    column_types: bytes
    column_metadata: bytes
    null_bitmap: bytes
    optional_metadata: bytes


@fast_init  # one per event: see binhub.frozen
@dataclass(frozen=True, slots=True)
class RowsEvent(Event):
    """Header-level view of a rows event. ``body`` starts at the columns-present bitmap; for
    MariaDB's compressed rows events it is the compressed payload and ``column_count`` is None."""

    table_id: int
    flags: int
    extra_data: bytes
    column_count: int | None
    body: bytes


@dataclass(frozen=True, slots=True)
class TransactionPayloadEvent(Event):
    compression_type: int  # 0 = ZSTD, 255 = NONE
    payload_size: int
    uncompressed_size: int
    payload: bytes

    ZSTD: ClassVar[int] = 0
    NONE: ClassVar[int] = 255

    def events(self) -> Iterator[bytes]:
        """The inner events, each complete (header included) and without a CRC."""
        data = self._uncompressed()
        pos = 0
        while pos < len(data):
            inner = EventHeader.unpack(data, pos)
            if pos + inner.event_size > len(data):
                raise InvalidEvent(f"transaction payload ends inside an inner event at offset {pos}")
            yield data[pos:pos + inner.event_size]
            pos += inner.event_size

    def _uncompressed(self) -> bytes:
        if self.compression_type == self.NONE:
            return self.payload
        if self.compression_type != self.ZSTD:
            raise InvalidEvent(f"unknown transaction payload compression type {self.compression_type}")
        import zstandard  # only compressed transactions need it

        try:
            out = zstandard.ZstdDecompressor().decompressobj().decompress(self.payload)
        except zstandard.ZstdError as exc:
            raise InvalidEvent(f"transaction payload does not decompress: {exc}") from None
        if self.uncompressed_size and len(out) != self.uncompressed_size:
            raise InvalidEvent(f"transaction payload decompressed to {len(out)} bytes, "
                               f"the event says {self.uncompressed_size}")
        return out


@dataclass(frozen=True, slots=True)
class IntvarEvent(Event):
    kind: int  # 1 = LAST_INSERT_ID, 2 = INSERT_ID
    value: int


@dataclass(frozen=True, slots=True)
class RandEvent(Event):
    seed1: int
    seed2: int


@dataclass(frozen=True, slots=True)
class UserVarEvent(Event):
    name: str
    is_null: bool
    value_type: int | None  # Item_result: 0 STRING, 1 REAL, 2 INT, 4 DECIMAL
    charset: int | None
    value: bytes
    var_flags: int | None


@dataclass(frozen=True, slots=True)
class StopEvent(Event):
    pass


@dataclass(frozen=True, slots=True)
class IncidentEvent(Event):
    incident: int
    message: str


@dataclass(frozen=True, slots=True)
class StartEncryptionEvent(Event):
    scheme: int
    key_version: int
    nonce: bytes


__all__ = [
    "AnnotateRowsEvent", "AnonymousGtidEvent", "AppendBlockEvent", "BinlogCheckpointEvent", "Event",
    "ExecuteLoadQueryEvent", "FormatDescriptionEvent", "GtidEvent", "HeartbeatEvent", "IncidentEvent",
    "IntvarEvent", "MariadbGtidEvent", "MariadbGtidFlag", "MariadbGtidListEvent", "PreviousGtidsEvent",
    "QueryEvent", "RandEvent", "RotateEvent", "RowsEvent", "RowsQueryEvent", "StartEncryptionEvent",
    "StopEvent", "TableMapEvent", "TransactionPayloadEvent", "UnknownEvent", "UserVarEvent", "XaPrepareEvent",
    "XidEvent",
]
