"""Transaction boundaries in an event stream, for torn-tail truncation and group commit.

The store may only cut a file, and the relay may only make data visible, where a transaction
ends. ``TransactionTracker.feed`` is told every event and answers "is the stream at a boundary
now?". The rules follow MySQL's ``Transaction_boundary_parser``
(``libs/mysql/binlog/event/trx_boundary_parser.cpp``) and extend it to MariaDB:

* MySQL GTID / ANONYMOUS_GTID / GTID_TAGGED open a group. A QUERY ``BEGIN`` or ``XA START`` makes
  it explicit; it then ends at XID, XA_PREPARE, or a QUERY ``COMMIT``, ``ROLLBACK`` (not
  ``ROLLBACK TO``), ``XA COMMIT`` or ``XA ROLLBACK``. Without BEGIN the first statement (DDL,
  or an ``XA COMMIT``/``XA ROLLBACK`` of a prepared transaction) ends it. TRANSACTION_PAYLOAD
  holds a whole transaction and ends the group.
* MariaDB GTID acts as BEGIN itself, unless ``flags2 & FL_STANDALONE``: then the first
  statement ends it.
* INTVAR, RAND, USER_VAR, TABLE_MAP, ANNOTATE_ROWS, ROWS_QUERY, BEGIN_LOAD_QUERY and
  APPEND_BLOCK are a prefix of the statement that follows; outside a group they open one.
* Everything else outside a group (FDE, ROTATE, PREVIOUS_GTIDS, GTID_LIST, BINLOG_CHECKPOINT,
  STOP, heartbeats, unknown types) is a complete unit by itself; inside a group it belongs to it.

Speed matters (the relay calls ``feed`` for every event), so only the type byte, and for a
QUERY the first bytes of the statement, are looked at. GTIDs are decoded only when asked for.
"""

from __future__ import annotations

import struct
import uuid as uuid_mod

from binhub.binlog.buffer import ByteReader
from binhub.binlog.constants import CHECKSUM_SIZE, HEADER_SIZE, ROWS_EVENT_TYPES, ROWS_STMT_END_F, EventType
from binhub.binlog.gtid import MariadbGtid, MysqlGtid
from binhub.binlog.header import EventHeader

_QUERY = int(EventType.QUERY)
_QUERY_COMPRESSED = int(EventType.MARIA_QUERY_COMPRESSED)
_EXECUTE_LOAD_QUERY = int(EventType.EXECUTE_LOAD_QUERY)
_GTID = int(EventType.GTID)
_ANONYMOUS_GTID = int(EventType.ANONYMOUS_GTID)
_GTID_TAGGED = int(EventType.GTID_TAGGED)
_MARIA_GTID = int(EventType.MARIA_GTID)
_ENDS_GROUP = frozenset(int(t) for t in (EventType.XID, EventType.XA_PREPARE, EventType.TRANSACTION_PAYLOAD,
                                          EventType.INCIDENT))
_PREFIX = frozenset(int(t) for t in (
    EventType.INTVAR, EventType.RAND, EventType.USER_VAR, EventType.TABLE_MAP, EventType.MARIA_ANNOTATE_ROWS,
    EventType.ROWS_QUERY, EventType.BEGIN_LOAD_QUERY, EventType.APPEND_BLOCK,
))
_ROWS = frozenset(int(t) for t in ROWS_EVENT_TYPES)
# Inside BEGIN..COMMIT these never end the group: most events of a transaction take this one test.
INERT_IN_EXPLICIT = _ROWS | _PREFIX
_MARIA_FL_STANDALONE = 1

# Parser states.
_NONE = 0  # at a boundary
_GROUP = 1  # a GTID (or a statement prefix) was seen; the next statement decides
_EXPLICIT = 2  # inside BEGIN ... COMMIT (or a MariaDB transactional GTID group)

# Query classes.
_STATEMENT = 0
_BEGIN = 1
_END = 2

_QUERY_FIXED = struct.Struct("<8xBxxH")  # from the post-header: db_len at +8, status_vars_len at +11
_MARIA_GTID_IDS = struct.Struct("<5xI10xQI")  # header server_id, then the body's seq_no and domain_id
_TS = struct.Struct("<I")
_U16 = struct.Struct("<H")
_QUERY_POST_HEADER = 13
_MARIA_DOMAIN = struct.Struct("<I").unpack_from

# A transaction's GTID event as the tracker keeps it: (type code, raw event, CRC size). Decoding it
# into a GTID object costs ~1 µs; the relay's store keeps these and decodes only the few it needs.
GtidEvent = tuple[int, bytes, int]


def classify_query(statement_start: bytes) -> int:
    """BEGIN / end-of-transaction / other, from the first bytes of a QUERY statement (any case)."""
    head = statement_start[:12].upper()
    if head.startswith(b"BEGIN") and (len(head) == 5 or not head[5:6].isalnum()):
        return _BEGIN
    if head.startswith(b"XA START"):
        return _BEGIN
    if head.startswith(b"COMMIT") and (len(head) == 6 or not head[6:7].isalnum()):
        return _END
    if head.startswith(b"ROLLBACK"):
        return _STATEMENT if head.startswith(b"ROLLBACK TO ") else _END
    if head.startswith((b"XA COMMIT", b"XA ROLLBACK")):
        return _END
    return _STATEMENT


class TransactionTracker:
    """Feed every event in stream order; ``feed`` returns True when the stream is at a boundary."""

    __slots__ = ("in_transaction", "explicit", "last_timestamp", "transactions", "_state", "_pending", "_last",
                 "_last_cache")

    def __init__(self) -> None:
        self.in_transaction = False
        # Inside BEGIN..COMMIT (or a MariaDB transactional GTID group): an event whose type is in
        # INERT_IN_EXPLICIT cannot change anything now, so a caller in a hurry may skip feed() for it.
        self.explicit = False
        self.last_timestamp = 0  # header timestamp of the event that completed the last transaction
        self.transactions = 0  # transactions (GTID groups, BEGIN..COMMIT, standalone statements) completed
        self._state = _NONE
        self._pending: tuple[int, bytes, int] | None = None  # (type, raw GTID event, CRC size) of the group
        self._last: tuple[int, bytes, int] | None = None
        self._last_cache: MysqlGtid | MariadbGtid | None = None

    @property
    def last_gtid(self) -> MysqlGtid | MariadbGtid | None:
        """GTID of the transaction that completed last (None if it had none, or was anonymous)."""
        if self._last_cache is None and self._last is not None:
            self._last_cache = _decode_gtid(*self._last)
        return self._last_cache

    @property
    def last_gtid_event(self) -> GtidEvent | None:
        """Like :attr:`last_gtid`, undecoded (:func:`decode_gtid_event`); None for none or anonymous."""
        last = self._last
        return None if last is None or last[0] == _ANONYMOUS_GTID else last

    def reset(self) -> None:
        """Forget any open group, e.g. when a reader jumps to another position."""
        self.in_transaction = False
        self._state = _NONE
        self.explicit = False
        self._pending = None

    def feed(self, raw: bytes | bytearray | memoryview, checksum_size: int = CHECKSUM_SIZE) -> bool:
        type_code = raw[4]
        state = self._state
        if state == _EXPLICIT and type_code in INERT_IN_EXPLICIT:
            return False  # the common case (rows, table maps, annotations) first: one test, not six

        if type_code in (_QUERY, _EXECUTE_LOAD_QUERY):
            db_len, status_len = _QUERY_FIXED.unpack_from(raw, HEADER_SIZE)
            post = _QUERY_POST_HEADER if type_code == _QUERY else _QUERY_POST_HEADER + 13
            start = HEADER_SIZE + post + status_len + db_len + 1
            stop = len(raw) - checksum_size
            kind = classify_query(bytes(raw[start:min(start + 12, stop)])) if type_code == _QUERY else _STATEMENT
            if kind == _BEGIN:
                self._state = _EXPLICIT
                self.explicit = True
                self.in_transaction = True
                return False
            if state == _EXPLICIT and kind == _STATEMENT:
                return False
            return self._complete(raw)

        if type_code in (_GTID, _ANONYMOUS_GTID, _GTID_TAGGED):
            self._open(type_code, raw, checksum_size, _GROUP)
            return False

        if type_code == _MARIA_GTID:
            flags2 = raw[HEADER_SIZE + 12]
            self._open(type_code, raw, checksum_size, _GROUP if flags2 & _MARIA_FL_STANDALONE else _EXPLICIT)
            return False

        if type_code in _ENDS_GROUP:
            return self._complete(raw)

        if type_code in _PREFIX:
            if state == _NONE:
                self._state = _GROUP
                self._pending = None
                self.in_transaction = True
            return False

        if type_code in _ROWS:
            if state == _EXPLICIT:
                return False
            # Rows outside BEGIN..COMMIT (non-transactional engines): the statement ends at STMT_END_F.
            flags = _U16.unpack_from(raw, HEADER_SIZE + 6)[0]
            if flags & ROWS_STMT_END_F:
                return self._complete(raw)
            if state == _NONE:
                self._state = _GROUP
                self._pending = None
                self.in_transaction = True
            return False

        if type_code == _QUERY_COMPRESSED:
            # MariaDB compresses only long statements, never BEGIN/COMMIT/XA control statements.
            return False if state == _EXPLICIT else self._complete(raw)

        # Control events and unknown types: a unit of their own outside a group, part of it inside.
        return state == _NONE

    def _open(self, type_code: int, raw: bytes | bytearray | memoryview, checksum_size: int, state: int) -> None:
        # A GTID while a group is open means the previous group was cut short (e.g. a retried
        # transaction in a relay log); the new group replaces it, as MySQL's parser does.
        self._state = state
        self.explicit = state == _EXPLICIT
        self._pending = (type_code, bytes(raw), checksum_size)
        self.in_transaction = True

    def _complete(self, raw: bytes | bytearray | memoryview) -> bool:
        self._state = _NONE
        self.explicit = False
        self.in_transaction = False
        self.transactions += 1
        self._last = self._pending
        self._last_cache = None
        self._pending = None
        self.last_timestamp = _TS.unpack_from(raw, 0)[0]
        return True


def decode_gtid_event(event: GtidEvent) -> MysqlGtid | MariadbGtid | None:
    """The GTID of a :attr:`TransactionTracker.last_gtid_event` (None for an anonymous one)."""
    return _decode_gtid(*event)


def gtid_event_domain(event: GtidEvent) -> int | None:
    """The domain of a MariaDB GTID event without decoding the rest; None for MySQL's."""
    return _MARIA_DOMAIN(event[1], HEADER_SIZE + 8)[0] if event[0] == _MARIA_GTID else None  # after seq_no u64


def _decode_gtid(type_code: int, raw: bytes, checksum_size: int) -> MysqlGtid | MariadbGtid | None:
    if type_code == _MARIA_GTID:
        server_id, seq_no, domain_id = _MARIA_GTID_IDS.unpack_from(raw, 0)  # one unpack: decoded per transaction
        return MariadbGtid(domain_id, server_id, seq_no)
    if type_code == _ANONYMOUS_GTID:
        return None
    if type_code == _GTID:
        gno = int.from_bytes(raw[HEADER_SIZE + 17:HEADER_SIZE + 25], "little")
        return MysqlGtid(uuid_mod.UUID(bytes=bytes(raw[HEADER_SIZE + 1:HEADER_SIZE + 17])), gno)
    # Tagged GTIDs are serialized with variable-length fields: use the full decoder (imported here:
    # it loads the event classes, which the relay, decoding no event, would otherwise pay at start-up).
    from binhub.binlog.decode import decode_gtid_tagged

    event = decode_gtid_tagged(EventHeader.unpack(raw), raw, ByteReader(raw, HEADER_SIZE, len(raw) - checksum_size))
    return event.gtid
