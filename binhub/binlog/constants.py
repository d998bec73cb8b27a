"""Binlog format constants: magic, header layout, event type codes, header flags, checksum algorithms.

Type codes follow ``libs/mysql/binlog/event/binlog_event.h`` (MySQL 0..42) and
``sql/log_event.h`` (MariaDB 160..171); names are the source names without the
``_EVENT`` / ``_LOG_EVENT`` suffix, MariaDB's with a ``MARIA_`` prefix.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag

BINLOG_MAGIC = b"\xfebin"
HEADER_SIZE = 19
CHECKSUM_SIZE = 4

# Offsets inside the 19-byte common header (see header.HEADER_STRUCT).
TYPE_CODE_OFFSET = 4
SERVER_ID_OFFSET = 5
EVENT_SIZE_OFFSET = 9
LOG_POS_OFFSET = 13
FDE_FLAGS_OFFSET = 17  # offset of the 2-byte flags field inside an event

# Format_description body layout (after the common header).
FDE_SERVER_VERSION_LEN = 50
FDE_COMMON_HEADER_LEN_OFFSET = 2 + FDE_SERVER_VERSION_LEN + 4  # 56: after version, server_version, timestamp
CHECKSUM_ALG_DESC_LEN = 1
# First server version that writes the checksum algorithm byte into the FDE (5.6.1).
CHECKSUM_VERSION_PRODUCT = (5, 6, 1)

# Rows event flags (rows_event.h).
ROWS_STMT_END_F = 0x0001


class EventType(IntEnum):
    """Binlog event type codes of MySQL and MariaDB."""

    UNKNOWN = 0
    START_V3 = 1
    QUERY = 2
    STOP = 3
    ROTATE = 4
    INTVAR = 5
    LOAD = 6
    SLAVE = 7
    CREATE_FILE = 8
    APPEND_BLOCK = 9
    EXEC_LOAD = 10
    DELETE_FILE = 11
    NEW_LOAD = 12
    RAND = 13
    USER_VAR = 14
    FORMAT_DESCRIPTION = 15
    XID = 16
    BEGIN_LOAD_QUERY = 17
    EXECUTE_LOAD_QUERY = 18
    TABLE_MAP = 19
    PRE_GA_WRITE_ROWS = 20
    PRE_GA_UPDATE_ROWS = 21
    PRE_GA_DELETE_ROWS = 22
    WRITE_ROWS_V1 = 23
    UPDATE_ROWS_V1 = 24
    DELETE_ROWS_V1 = 25
    INCIDENT = 26
    HEARTBEAT = 27
    IGNORABLE = 28
    ROWS_QUERY = 29
    WRITE_ROWS_V2 = 30
    UPDATE_ROWS_V2 = 31
    DELETE_ROWS_V2 = 32
    GTID = 33
    ANONYMOUS_GTID = 34
    PREVIOUS_GTIDS = 35
    TRANSACTION_CONTEXT = 36
    VIEW_CHANGE = 37
    XA_PREPARE = 38
    PARTIAL_UPDATE_ROWS = 39
    TRANSACTION_PAYLOAD = 40
    HEARTBEAT_V2 = 41
    GTID_TAGGED = 42
    MARIA_ANNOTATE_ROWS = 160
    MARIA_BINLOG_CHECKPOINT = 161
    MARIA_GTID = 162
    MARIA_GTID_LIST = 163
    MARIA_START_ENCRYPTION = 164
    MARIA_QUERY_COMPRESSED = 165
    MARIA_WRITE_ROWS_COMPRESSED_V1 = 166
    MARIA_UPDATE_ROWS_COMPRESSED_V1 = 167
    MARIA_DELETE_ROWS_COMPRESSED_V1 = 168
    MARIA_WRITE_ROWS_COMPRESSED = 169
    MARIA_UPDATE_ROWS_COMPRESSED = 170
    MARIA_DELETE_ROWS_COMPRESSED = 171


_NAMES: dict[int, str] = {member.value: member.name for member in EventType}


def event_type_name(code: int) -> str:
    """The source name of a type code, or ``UNKNOWN_<n>`` for codes no server defines (e.g. Aurora's 100)."""
    name = _NAMES.get(code)
    return name if name is not None else f"UNKNOWN_{code}"


class EventFlag(IntFlag):
    """Flags of the common header (``LOG_EVENT_*_F``)."""

    BINLOG_IN_USE = 0x1
    THREAD_SPECIFIC = 0x4
    SUPPRESS_USE = 0x8
    ARTIFICIAL = 0x20
    RELAY_LOG = 0x40
    IGNORABLE = 0x80
    SKIP_REPLICATION = 0x8000  # MariaDB


class ChecksumAlg(IntEnum):
    """``enum_binlog_checksum_alg`` as stored in the FDE."""

    OFF = 0
    CRC32 = 1
    UNDEFINED = 255


# Event classes the codec and the tracker group together.
ROWS_EVENT_TYPES = frozenset({
    EventType.PRE_GA_WRITE_ROWS, EventType.PRE_GA_UPDATE_ROWS, EventType.PRE_GA_DELETE_ROWS,
    EventType.WRITE_ROWS_V1, EventType.UPDATE_ROWS_V1, EventType.DELETE_ROWS_V1,
    EventType.WRITE_ROWS_V2, EventType.UPDATE_ROWS_V2, EventType.DELETE_ROWS_V2,
    EventType.PARTIAL_UPDATE_ROWS,
    EventType.MARIA_WRITE_ROWS_COMPRESSED_V1, EventType.MARIA_UPDATE_ROWS_COMPRESSED_V1,
    EventType.MARIA_DELETE_ROWS_COMPRESSED_V1, EventType.MARIA_WRITE_ROWS_COMPRESSED,
    EventType.MARIA_UPDATE_ROWS_COMPRESSED, EventType.MARIA_DELETE_ROWS_COMPRESSED,
})
# V2 rows events carry a variable "extra data" block in the post-header.
ROWS_V2_EVENT_TYPES = frozenset({
    EventType.WRITE_ROWS_V2, EventType.UPDATE_ROWS_V2, EventType.DELETE_ROWS_V2,
    EventType.PARTIAL_UPDATE_ROWS, EventType.MARIA_WRITE_ROWS_COMPRESSED,
    EventType.MARIA_UPDATE_ROWS_COMPRESSED, EventType.MARIA_DELETE_ROWS_COMPRESSED,
})
MYSQL_GTID_EVENT_TYPES = frozenset({EventType.GTID, EventType.ANONYMOUS_GTID, EventType.GTID_TAGGED})
