"""Body decoders for every modelled event type, registered by type code, and ``decode_event``.

``decode_event`` is the entry point (the event classes are in ``events.py``); :func:`payload_events`
decodes the inner events of a MySQL TRANSACTION_PAYLOAD. Each decoder
names the source definition it follows. A decoder gets a ByteReader bounded by the body (header
and CRC excluded), so reading past the body raises InvalidEvent.
"""

from __future__ import annotations

import uuid as uuid_mod
import zlib
from collections.abc import Callable, Iterator

from binhub.binlog.buffer import ByteReader
from binhub.binlog.checksum import verify_checksum, writes_checksum_alg
from binhub.binlog.constants import (
    CHECKSUM_SIZE,
    FDE_SERVER_VERSION_LEN,
    HEADER_SIZE,
    ROWS_EVENT_TYPES,
    ROWS_V2_EVENT_TYPES,
    ChecksumAlg,
    EventType,
)
from binhub.binlog.events import (
    AnnotateRowsEvent,
    AnonymousGtidEvent,
    AppendBlockEvent,
    BinlogCheckpointEvent,
    Event,
    ExecuteLoadQueryEvent,
    FormatDescriptionEvent,
    GtidEvent,
    HeartbeatEvent,
    IncidentEvent,
    IntvarEvent,
    MariadbGtidEvent,
    MariadbGtidFlag,
    MariadbGtidListEvent,
    PreviousGtidsEvent,
    QueryEvent,
    RandEvent,
    RotateEvent,
    RowsEvent,
    RowsQueryEvent,
    StartEncryptionEvent,
    StopEvent,
    TableMapEvent,
    TransactionPayloadEvent,
    UnknownEvent,
    UserVarEvent,
    XaPrepareEvent,
    XidEvent,
)
from binhub.binlog.gtid import MariadbGtid, MysqlGtidSet
from binhub.binlog.header import EventHeader
from binhub.errors import GtidError, InvalidEvent, TruncatedEvent

# Post-header lengths of binlog v4 writers, used when no FDE is at hand.
_DEFAULT_POST_HEADER = {
    EventType.QUERY: 13, EventType.ROTATE: 8, EventType.TABLE_MAP: 8, EventType.EXECUTE_LOAD_QUERY: 26,
    EventType.BEGIN_LOAD_QUERY: 4, EventType.APPEND_BLOCK: 4, EventType.INCIDENT: 2,
    EventType.MARIA_QUERY_COMPRESSED: 13,
}

def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def mariadb_uncompress(data: bytes) -> bytes:
    """MariaDB's ``binlog_buf_uncompress``: 0x80|alg<<4|lenlen, lenlen bytes of big-endian length, zlib."""
    if not data or data[0] & 0x80 == 0:
        raise InvalidEvent("compressed MariaDB event body lacks its compression header")
    lenlen, alg = data[0] & 0x07, (data[0] & 0x70) >> 4
    if alg != 0 or not 1 <= lenlen <= 4:
        raise InvalidEvent(f"unsupported MariaDB compression header 0x{data[0]:02x}")
    size = int.from_bytes(data[1:1 + lenlen], "big")
    try:
        out = zlib.decompress(data[1 + lenlen:])
    except zlib.error as exc:
        raise InvalidEvent(f"compressed MariaDB event does not decompress: {exc}") from None
    if len(out) != size:
        raise InvalidEvent(f"compressed MariaDB event decompressed to {len(out)} bytes, header says {size}")
    return out


Decoder = Callable[[EventHeader, bytes, ByteReader, "FormatDescriptionEvent | None"], Event]
_DECODERS: dict[int, Decoder] = {}


def _decoder(*types: EventType) -> Callable[[Decoder], Decoder]:
    def register(fn: Decoder) -> Decoder:
        for t in types:
            _DECODERS[t] = fn
        return fn
    return register


def _post_header_len(fde: FormatDescriptionEvent | None, type_code: int) -> int:
    if fde is not None:
        n = fde.post_header_len(type_code)
        if n is not None:
            return n
    return _DEFAULT_POST_HEADER.get(EventType(type_code), 0)


def decode_format_description(header: EventHeader, raw: bytes) -> FormatDescriptionEvent:
    """``Format_description_event`` (control_events.cpp): version, server version[50], timestamp,
    common header length, one post-header length per type, then (since 5.6.1) the checksum
    algorithm byte and 4 CRC bytes (present even when the algorithm is OFF)."""
    r = ByteReader(raw, HEADER_SIZE, header.event_size, what="FORMAT_DESCRIPTION")
    binlog_version = r.u16()
    server_version = _text(r.take(FDE_SERVER_VERSION_LEN).split(b"\0", 1)[0])
    create_timestamp = r.u32()
    common_header_len = r.u8()
    if common_header_len < HEADER_SIZE:
        raise InvalidEvent(f"FORMAT_DESCRIPTION declares a common header of {common_header_len} bytes (< 19)")
    if writes_checksum_alg(server_version):
        if r.remaining() < 1 + CHECKSUM_SIZE:
            raise InvalidEvent("FORMAT_DESCRIPTION is too short for its checksum algorithm byte")
        alg_byte = raw[header.event_size - CHECKSUM_SIZE - 1]
        try:
            alg = ChecksumAlg(alg_byte)
        except ValueError:
            raise InvalidEvent(f"FORMAT_DESCRIPTION names unknown checksum algorithm {alg_byte}") from None
        post_header_lens = r.take(r.remaining() - 1 - CHECKSUM_SIZE)
    else:
        alg = ChecksumAlg.UNDEFINED
        post_header_lens = r.rest()
    return FormatDescriptionEvent(header, raw, binlog_version, server_version, create_timestamp,
                                  common_header_len, post_header_lens, alg)


def decode_event(raw: bytes | bytearray | memoryview, fde: FormatDescriptionEvent | None = None, *,
                 verify: bool = False, checksum_size: int | None = None) -> Event:
    """Decode one complete event. ``fde`` tells whether a CRC trails the event (None: assume CRC32,
    except for an FDE, which says so itself); ``checksum_size`` overrides that (0 for the inner
    events of a TRANSACTION_PAYLOAD). ``verify=True`` also checks the CRC."""
    header = EventHeader.unpack(raw)
    if len(raw) < header.event_size:
        raise TruncatedEvent(f"{header.type_name} event needs {header.event_size} bytes, only {len(raw)} are present")
    data = bytes(raw[:header.event_size])
    if header.type_code == EventType.FORMAT_DESCRIPTION:
        event = decode_format_description(header, data)
        if verify and event.checksum_alg == ChecksumAlg.CRC32:
            verify_checksum(data)
        return event
    if checksum_size is not None:
        crc = checksum_size
    else:
        crc = fde.checksum_size if fde is not None else CHECKSUM_SIZE
    if header.event_size < HEADER_SIZE + crc:
        raise InvalidEvent(f"{header.type_name} event of {header.event_size} bytes cannot hold header and checksum")
    if verify and crc:
        verify_checksum(data)
    decoder = _DECODERS.get(header.type_code)
    if decoder is None:
        return UnknownEvent(header, data)
    r = ByteReader(data, HEADER_SIZE, header.event_size - crc, what=header.type_name)
    return decoder(header, data, r, fde)


def payload_events(payload: TransactionPayloadEvent, fde: FormatDescriptionEvent | None = None) -> Iterator[Event]:
    """The inner events of a TRANSACTION_PAYLOAD, decoded; ``fde`` (the file's) supplies post-header lengths."""
    for raw in payload.events():
        yield decode_event(raw, fde, checksum_size=0)


@_decoder(EventType.ROTATE)
def _rotate(h: EventHeader, raw: bytes, r: ByteReader, fde: FormatDescriptionEvent | None) -> Event:
    # Rotate_event: position u64 (post-header), then the next file name (no terminator).
    position = r.u64()
    r.skip(max(_post_header_len(fde, h.type_code) - 8, 0))
    return RotateEvent(h, raw, position, _text(r.rest()))


def _query_fields(h: EventHeader, r: ByteReader, fde: FormatDescriptionEvent | None,
                  ) -> tuple[int, int, int, int, int, int]:
    # Query_event post-header: thread_id u32, exec_time u32, db_len u8, error_code u16, status_vars_len u16.
    thread_id, exec_time, db_len, error_code = r.u32(), r.u32(), r.u8(), r.u16()
    post = _post_header_len(fde, h.type_code)
    status_len = r.u16() if post >= 13 else 0
    return thread_id, exec_time, db_len, error_code, status_len, post


@_decoder(EventType.QUERY, EventType.MARIA_QUERY_COMPRESSED, EventType.EXECUTE_LOAD_QUERY)
def _query(h: EventHeader, raw: bytes, r: ByteReader, fde: FormatDescriptionEvent | None) -> Event:
    thread_id, exec_time, db_len, error_code, status_len, post = _query_fields(h, r, fde)
    load: tuple[int, int, int, int] | None = None
    if h.type_code == EventType.EXECUTE_LOAD_QUERY:
        # Execute_load_query_event adds file_id u32, fn_pos_start u32, fn_pos_end u32, dup_handling u8.
        load = (r.u32(), r.u32(), r.u32(), r.u8())
        r.skip(max(post - 26, 0))
    else:
        r.skip(max(post - 13, 0))
    status_vars = r.take(status_len)
    schema = _text(r.take(db_len))
    if r.u8() != 0:
        raise InvalidEvent(f"{h.type_name}: schema name is not NUL-terminated")
    query = r.rest()
    if h.type_code == EventType.MARIA_QUERY_COMPRESSED:
        query = mariadb_uncompress(query)
    if load is not None:
        return ExecuteLoadQueryEvent(h, raw, thread_id, exec_time, error_code, status_vars, schema, query, *load)
    return QueryEvent(h, raw, thread_id, exec_time, error_code, status_vars, schema, query)


@_decoder(EventType.APPEND_BLOCK, EventType.BEGIN_LOAD_QUERY)
def _append_block(h: EventHeader, raw: bytes, r: ByteReader, fde: FormatDescriptionEvent | None) -> Event:
    file_id = r.u32()
    r.skip(max(_post_header_len(fde, h.type_code) - 4, 0))
    return AppendBlockEvent(h, raw, file_id, r.rest())


@_decoder(EventType.XID)
def _xid(h: EventHeader, raw: bytes, r: ByteReader, fde: FormatDescriptionEvent | None) -> Event:
    return XidEvent(h, raw, r.u64())


@_decoder(EventType.XA_PREPARE)
def _xa_prepare(h: EventHeader, raw: bytes, r: ByteReader, fde: FormatDescriptionEvent | None) -> Event:
    # XA_prepare_event: one_phase u8, formatID u32, gtrid_length u32, bqual_length u32, data.
    one_phase, format_id, gtrid_len, bqual_len = r.u8(), r.u32(), r.u32(), r.u32()
    if gtrid_len > 64 or bqual_len > 64:
        raise InvalidEvent(f"XA_PREPARE: invalid XID lengths gtrid={gtrid_len} bqual={bqual_len}")
    return XaPrepareEvent(h, raw, bool(one_phase), format_id, r.take(gtrid_len), r.take(bqual_len))


@_decoder(EventType.GTID, EventType.ANONYMOUS_GTID, EventType.GTID_TAGGED)
def _gtid(h: EventHeader, raw: bytes, r: ByteReader, fde: FormatDescriptionEvent | None) -> Event:
    if h.type_code == EventType.GTID_TAGGED:
        return decode_gtid_tagged(h, raw, r)
    # Gtid_event::Gtid_event (control_events.cpp): every field after the gno is optional, older
    # servers stop earlier; presence is decided by the bytes left, as the server does.
    flags, uuid_bytes, gno = r.u8(), r.take(16), r.u64()
    last_committed = sequence_number = immediate_ts = original_ts = None
    immediate_ver = original_ver = ticket = None
    trx_len = 0
    if r.remaining() >= 1 and r.u8() == 2:  # LOGICAL_TIMESTAMP_TYPECODE
        last_committed, sequence_number = r.u64(), r.u64()
        if r.remaining() >= 7:
            immediate_ts = r.u56()
            if immediate_ts & (1 << 55):
                immediate_ts &= ~(1 << 55)
                original_ts = r.u56()
            else:
                original_ts = immediate_ts
            if r.remaining() >= 1:
                trx_len = r.lenenc()
            if r.remaining() >= 4:
                immediate_ver = r.u32()
                if immediate_ver & (1 << 31):
                    immediate_ver &= ~(1 << 31)
                    original_ver = r.u32()
                else:
                    original_ver = immediate_ver
                if r.remaining() >= 8:
                    ticket = r.u64()
    cls = AnonymousGtidEvent if h.type_code == EventType.ANONYMOUS_GTID else GtidEvent
    if cls is GtidEvent and not 1 <= gno < (1 << 63) - 1:
        raise InvalidEvent(f"GTID event has invalid transaction number {gno}")
    return cls(h, raw, flags, uuid_mod.UUID(bytes=uuid_bytes), gno, "", last_committed, sequence_number,
               immediate_ts, original_ts, trx_len, immediate_ver, original_ver, ticket)


def decode_gtid_tagged(h: EventHeader, raw: bytes, r: ByteReader) -> GtidEvent:
    """GTID_TAGGED (42) is written by the serialization library (``Gtid_event::define_fields``):
    a message header (id, total size, last non-ignorable field id) then ``field_id value`` pairs,
    all varlen-encoded; the uuid is 16 varlen bytes and the tag a length-prefixed string. Optional
    fields are omitted when equal to their default, so ids may skip."""
    start = r.pos
    r.varlen()  # serializable id
    size = r.varlen()
    last_non_ignorable = r.varlen()
    end = start + size
    if size < 3 or end > r.end:
        raise InvalidEvent(f"GTID_TAGGED: serialized size {size} does not fit the {r.end - start}-byte body")
    if last_non_ignorable > 12:
        raise InvalidEvent(f"GTID_TAGGED carries unknown mandatory field {last_non_ignorable - 1}")
    fields: dict[int, object] = {}
    readers: tuple[Callable[[], object], ...] = (
        r.varlen,                                     # 0 gtid_flags
        lambda: bytes(r.varlen() for _ in range(16)),  # 1 uuid
        r.varlen_signed,                              # 2 gno
        lambda: r.take(r.varlen()),                  # 3 tag
        r.varlen_signed,                              # 4 last_committed
        r.varlen_signed,                              # 5 sequence_number
        r.varlen,                                     # 6 immediate_commit_timestamp
        r.varlen,                                     # 7 original_commit_timestamp
        r.varlen,                                     # 8 transaction_length
        r.varlen,                                     # 9 immediate_server_version
        r.varlen,                                     # 10 original_server_version
        r.varlen,                                     # 11 commit_group_ticket
    )
    while r.pos < end:
        field_id = r.varlen()
        if field_id >= len(readers) or field_id in fields:
            break  # a newer, ignorable field: its size is unknown, and the message size bounds it
        fields[field_id] = readers[field_id]()
    r.pos = end

    def get(i: int) -> int | None:
        value = fields.get(i)
        return value if isinstance(value, int) else None

    uuid_bytes = fields.get(1)
    tag = fields.get(3)
    gno = get(2)
    if not isinstance(uuid_bytes, bytes) or gno is None or not isinstance(tag, bytes):
        raise InvalidEvent("GTID_TAGGED lacks its uuid, gno or tag field")
    immediate_ts = get(6)
    immediate_ver = get(9)
    return GtidEvent(h, raw, get(0) or 0, uuid_mod.UUID(bytes=uuid_bytes), gno, tag.decode("ascii", "replace"),
                     get(4), get(5), immediate_ts, get(7) if 7 in fields else immediate_ts, get(8) or 0,
                     immediate_ver, get(10) if 10 in fields else immediate_ver, get(11))


@_decoder(EventType.PREVIOUS_GTIDS)
def _previous_gtids(h: EventHeader, raw: bytes, r: ByteReader, fde: FormatDescriptionEvent | None) -> Event:
    try:
        gtid_set = MysqlGtidSet.decode(r.rest())
    except GtidError as exc:
        raise InvalidEvent(f"PREVIOUS_GTIDS: {exc.message}") from None
    return PreviousGtidsEvent(h, raw, gtid_set)


@_decoder(EventType.MARIA_GTID)
def _maria_gtid(h: EventHeader, raw: bytes, r: ByteReader, fde: FormatDescriptionEvent | None) -> Event:
    # Gtid_log_event::Gtid_log_event (MariaDB log_event.cc): seq_no u64, domain_id u32, flags2 u8,
    # then commit_id u64 if FL_GROUP_COMMIT_ID, XID (formatID u32, gtrid_len u8, bqual_len u8,
    # data) if FL_PREPARED_XA|FL_COMPLETED_XA, then flags_extra u8 (10.8+); zero padding to 19 bytes.
    seq_no, domain_id, flags2 = r.u64(), r.u32(), r.u8()
    commit_id = r.u64() if flags2 & MariadbGtidFlag.FL_GROUP_COMMIT_ID else None
    xa_format_id: int | None = None
    gtrid = bqual = b""
    if flags2 & (MariadbGtidFlag.FL_PREPARED_XA | MariadbGtidFlag.FL_COMPLETED_XA):
        xa_format_id = r.u32()
        gtrid_len, bqual_len = r.u8(), r.u8()
        gtrid, bqual = r.take(gtrid_len), r.take(bqual_len)
    flags_extra = r.u8() if r.remaining() else 0
    return MariadbGtidEvent(h, raw, seq_no, domain_id, flags2, commit_id, xa_format_id, gtrid, bqual, flags_extra)


@_decoder(EventType.MARIA_GTID_LIST)
def _maria_gtid_list(h: EventHeader, raw: bytes, r: ByteReader, fde: FormatDescriptionEvent | None) -> Event:
    # Gtid_list_log_event: count u32 (low 28 bits; top 4 are flags), then domain u32, server u32, seq u64.
    word = r.u32()
    count = word & ((1 << 28) - 1)
    if count * 16 > r.remaining():
        raise InvalidEvent(f"GTID_LIST claims {count} GTIDs but has room for {r.remaining() // 16}")
    gtids = tuple(MariadbGtid(r.u32(), r.u32(), r.u64()) for _ in range(count))
    return MariadbGtidListEvent(h, raw, gtids, word >> 28)


@_decoder(EventType.MARIA_BINLOG_CHECKPOINT)
def _maria_checkpoint(h: EventHeader, raw: bytes, r: ByteReader, fde: FormatDescriptionEvent | None) -> Event:
    length = r.u32()
    return BinlogCheckpointEvent(h, raw, _text(r.take(length)))


@_decoder(EventType.MARIA_ANNOTATE_ROWS)
def _annotate(h: EventHeader, raw: bytes, r: ByteReader, fde: FormatDescriptionEvent | None) -> Event:
    return AnnotateRowsEvent(h, raw, r.rest())


@_decoder(EventType.ROWS_QUERY)
def _rows_query(h: EventHeader, raw: bytes, r: ByteReader, fde: FormatDescriptionEvent | None) -> Event:
    r.u8()  # a length byte that overflows at 255; the text runs to the end of the body
    return RowsQueryEvent(h, raw, r.rest())


@_decoder(EventType.HEARTBEAT, EventType.HEARTBEAT_V2)
def _heartbeat(h: EventHeader, raw: bytes, r: ByteReader, fde: FormatDescriptionEvent | None) -> Event:
    if h.type_code == EventType.HEARTBEAT:
        return HeartbeatEvent(h, raw, _text(r.rest()), h.log_pos)
    # Heartbeat_event_v2 (codecs/binary.cpp): lenenc type, lenenc length, value; 0 ends the list.
    name, pos = "", 0
    while r.remaining():
        field = r.lenenc()
        if field == 0:
            break
        length = r.lenenc()
        if field == 1:
            name = _text(r.take(length))
        elif field == 2:
            pos = ByteReader(r.take(length), what="HEARTBEAT_V2 position").lenenc()
        else:
            r.skip(length)
    return HeartbeatEvent(h, raw, name, pos)


def _table_id(h: EventHeader, r: ByteReader, fde: FormatDescriptionEvent | None) -> int:
    # 6-byte table ids since 5.1.4; a post-header of 6 bytes means the old 4-byte id.
    return r.u32() if _post_header_len(fde, h.type_code) == 6 else r.u48()


@_decoder(EventType.TABLE_MAP)
def _table_map(h: EventHeader, raw: bytes, r: ByteReader, fde: FormatDescriptionEvent | None) -> Event:
    # Table_map_event (rows_event.cpp): table_id, flags u16; schema (u8 len, name, NUL), table
    # (same), lenenc column count, types, lenenc metadata length + metadata, null bitmap, optional TLVs.
    table_id, flags = _table_id(h, r, fde), r.u16()
    schema = _text(r.take(r.u8()))
    r.skip(1)
    table = _text(r.take(r.u8()))
    r.skip(1)
    ncols = r.lenenc()
    types = r.take(ncols)
    metadata = r.take(r.lenenc())
    null_bitmap = r.take((ncols + 7) // 8)
    return TableMapEvent(h, raw, table_id, flags, schema, table, ncols, types, metadata, null_bitmap, r.rest())


@_decoder(*ROWS_EVENT_TYPES)
def _rows(h: EventHeader, raw: bytes, r: ByteReader, fde: FormatDescriptionEvent | None) -> Event:
    # Rows_event: table_id, flags u16, (v2) extra_data_len u16 counting itself + extra data,
    # then lenenc column count and the bitmaps/rows (compressed as a whole in MariaDB's types).
    table_id, flags = _table_id(h, r, fde), r.u16()
    extra = b""
    if h.type_code in ROWS_V2_EVENT_TYPES:
        extra_len = r.u16()
        if extra_len < 2:
            raise InvalidEvent(f"{h.type_name}: extra data length {extra_len} is below its own 2 bytes")
        extra = r.take(extra_len - 2)
    if EventType.MARIA_WRITE_ROWS_COMPRESSED_V1 <= h.type_code <= EventType.MARIA_DELETE_ROWS_COMPRESSED:
        return RowsEvent(h, raw, table_id, flags, extra, None, r.rest())
    ncols = r.lenenc()
    return RowsEvent(h, raw, table_id, flags, extra, ncols, r.rest())


@_decoder(EventType.TRANSACTION_PAYLOAD)
def _payload(h: EventHeader, raw: bytes, r: ByteReader, fde: FormatDescriptionEvent | None) -> Event:
    # Transaction_payload codec (codecs/binary.cpp): lenenc type, lenenc length, lenenc value;
    # 1 payload size, 2 compression type, 3 uncompressed size, 0 end of header; payload follows.
    size = compression = None
    uncompressed = 0
    while True:
        field = r.lenenc()
        if field == 0:
            break
        length = r.lenenc()
        if field == 1:
            size = r.lenenc()
        elif field == 2:
            compression = r.lenenc()
        elif field == 3:
            uncompressed = r.lenenc()
        else:
            r.skip(length)
    if size is None or compression is None or size > r.remaining():
        raise InvalidEvent("TRANSACTION_PAYLOAD header lacks its size or compression type, or the size is too big")
    return TransactionPayloadEvent(h, raw, compression, size, uncompressed, r.take(size))


@_decoder(EventType.INTVAR)
def _intvar(h: EventHeader, raw: bytes, r: ByteReader, fde: FormatDescriptionEvent | None) -> Event:
    return IntvarEvent(h, raw, r.u8(), r.u64())


@_decoder(EventType.RAND)
def _rand(h: EventHeader, raw: bytes, r: ByteReader, fde: FormatDescriptionEvent | None) -> Event:
    return RandEvent(h, raw, r.u64(), r.u64())


@_decoder(EventType.USER_VAR)
def _user_var(h: EventHeader, raw: bytes, r: ByteReader, fde: FormatDescriptionEvent | None) -> Event:
    # User_var_event: name_len u32, name, is_null u8; unless NULL: type u8, charset u32,
    # value_len u32, value, then an optional flags byte (5.6+).
    name = _text(r.take(r.u32()))
    if r.u8():
        return UserVarEvent(h, raw, name, True, None, None, b"", None)
    value_type, charset = r.u8(), r.u32()
    value = r.take(r.u32())
    var_flags = r.u8() if r.remaining() else None
    return UserVarEvent(h, raw, name, False, value_type, charset, value, var_flags)


@_decoder(EventType.STOP)
def _stop(h: EventHeader, raw: bytes, r: ByteReader, fde: FormatDescriptionEvent | None) -> Event:
    return StopEvent(h, raw)


@_decoder(EventType.INCIDENT)
def _incident(h: EventHeader, raw: bytes, r: ByteReader, fde: FormatDescriptionEvent | None) -> Event:
    incident = r.u16()
    r.skip(max(_post_header_len(fde, h.type_code) - 2, 0))
    message = _text(r.take(r.u8())) if r.remaining() else ""
    return IncidentEvent(h, raw, incident, message)


@_decoder(EventType.MARIA_START_ENCRYPTION)
def _start_encryption(h: EventHeader, raw: bytes, r: ByteReader, fde: FormatDescriptionEvent | None) -> Event:
    # Start_encryption_log_event: scheme u8, key_version u32, nonce[12].
    return StartEncryptionEvent(h, raw, r.u8(), r.u32(), r.take(12))
