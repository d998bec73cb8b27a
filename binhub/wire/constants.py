"""Numbers of the MySQL/MariaDB client/server protocol, as enums so that ``repr`` shows names.

Names follow the vendors' headers (``include/mysql_com.h``, ``include/mysql.h``, MariaDB's
``include/mysql_com.h``) without their ``CLIENT_``/``COM_``/``SERVER_`` prefixes.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag

#: Largest payload one packet can carry; a payload of this length or more continues in the next packet.
MAX_PACKET_PAYLOAD = 0xFFFFFF

#: Length of the random challenge in HandshakeV10 (8 bytes in part 1, 12 in part 2).
SCRAMBLE_LENGTH = 20

#: Marker byte in front of every event when semi-sync replication is on (``ReplSemiSyncBase::kPacketMagicNum``).
SEMISYNC_MAGIC = 0xEF
#: Flag byte after the magic: the primary waits for an ack of this event.
SEMISYNC_NEED_ACK = 0x01

#: Bit 0 of the capability word: MySQL calls it LONG_PASSWORD, MariaDB uses it to say "I am MySQL";
#: a MariaDB server clears it to announce that its extended capabilities follow in the filler bytes.
MARIADB_EXTENDED_CAPS_SHIFT = 32


class Capability(IntFlag):
    """Capability flags (``CLIENT_*``); bits 32-63 are MariaDB's extended capabilities."""

    LONG_PASSWORD = 1 << 0  # MariaDB: CLIENT_MYSQL
    FOUND_ROWS = 1 << 1
    LONG_FLAG = 1 << 2
    CONNECT_WITH_DB = 1 << 3
    NO_SCHEMA = 1 << 4
    COMPRESS = 1 << 5
    ODBC = 1 << 6
    LOCAL_FILES = 1 << 7
    IGNORE_SPACE = 1 << 8
    PROTOCOL_41 = 1 << 9
    INTERACTIVE = 1 << 10
    SSL = 1 << 11
    IGNORE_SIGPIPE = 1 << 12
    TRANSACTIONS = 1 << 13
    RESERVED = 1 << 14
    SECURE_CONNECTION = 1 << 15  # a.k.a. RESERVED2: 1-byte-length auth response
    MULTI_STATEMENTS = 1 << 16
    MULTI_RESULTS = 1 << 17
    PS_MULTI_RESULTS = 1 << 18
    PLUGIN_AUTH = 1 << 19
    CONNECT_ATTRS = 1 << 20
    PLUGIN_AUTH_LENENC_CLIENT_DATA = 1 << 21
    CAN_HANDLE_EXPIRED_PASSWORDS = 1 << 22
    SESSION_TRACK = 1 << 23
    DEPRECATE_EOF = 1 << 24
    OPTIONAL_RESULTSET_METADATA = 1 << 25
    ZSTD_COMPRESSION_ALGORITHM = 1 << 26
    QUERY_ATTRIBUTES = 1 << 27
    MULTI_FACTOR_AUTHENTICATION = 1 << 28
    CAPABILITY_EXTENSION = 1 << 29
    SSL_VERIFY_SERVER_CERT = 1 << 30
    REMEMBER_OPTIONS = 1 << 31
    # MariaDB extended capabilities (sent in the filler of HandshakeV10 / HandshakeResponse41).
    MARIADB_PROGRESS = 1 << 32
    MARIADB_COM_MULTI = 1 << 33
    MARIADB_STMT_BULK_OPERATIONS = 1 << 34
    MARIADB_EXTENDED_METADATA = 1 << 35
    MARIADB_CACHE_METADATA = 1 << 36
    MARIADB_BULK_UNIT_RESULTS = 1 << 37


#: Alias with MariaDB's name for bit 0.
CLIENT_MYSQL = Capability.LONG_PASSWORD


class Command(IntEnum):
    """First byte of a client command packet (``enum_server_command``)."""

    SLEEP = 0x00
    QUIT = 0x01
    INIT_DB = 0x02
    QUERY = 0x03
    FIELD_LIST = 0x04
    CREATE_DB = 0x05
    DROP_DB = 0x06
    REFRESH = 0x07
    SHUTDOWN = 0x08
    STATISTICS = 0x09
    PROCESS_INFO = 0x0A
    CONNECT = 0x0B
    PROCESS_KILL = 0x0C
    DEBUG = 0x0D
    PING = 0x0E
    TIME = 0x0F
    DELAYED_INSERT = 0x10
    CHANGE_USER = 0x11
    BINLOG_DUMP = 0x12
    TABLE_DUMP = 0x13
    CONNECT_OUT = 0x14
    REGISTER_SLAVE = 0x15
    STMT_PREPARE = 0x16
    STMT_EXECUTE = 0x17
    STMT_SEND_LONG_DATA = 0x18
    STMT_CLOSE = 0x19
    STMT_RESET = 0x1A
    SET_OPTION = 0x1B
    STMT_FETCH = 0x1C
    DAEMON = 0x1D
    BINLOG_DUMP_GTID = 0x1E
    RESET_CONNECTION = 0x1F
    CLONE = 0x20
    SUBSCRIBE_GROUP_REPLICATION_STREAM = 0x21
    # MariaDB only.
    STMT_BULK_EXECUTE = 0xFA
    MULTI = 0xFE


class ServerStatus(IntFlag):
    """Status flags in OK/EOF packets and the handshake (``SERVER_STATUS_*``)."""

    IN_TRANS = 0x0001
    AUTOCOMMIT = 0x0002
    MORE_RESULTS_EXISTS = 0x0008
    QUERY_NO_GOOD_INDEX_USED = 0x0010
    QUERY_NO_INDEX_USED = 0x0020
    CURSOR_EXISTS = 0x0040
    LAST_ROW_SENT = 0x0080
    DB_DROPPED = 0x0100
    NO_BACKSLASH_ESCAPES = 0x0200
    METADATA_CHANGED = 0x0400
    QUERY_WAS_SLOW = 0x0800
    PS_OUT_PARAMS = 0x1000
    IN_TRANS_READONLY = 0x2000
    SESSION_STATE_CHANGED = 0x4000


class Charset(IntEnum):
    """Collation ids used in the handshake and column definitions (the few binhub needs)."""

    LATIN1_SWEDISH_CI = 8
    UTF8MB3_GENERAL_CI = 33
    UTF8MB4_GENERAL_CI = 45
    BINARY = 63
    UTF8MB4_UNICODE_CI = 224
    UTF8MB4_0900_AI_CI = 255


class BinlogDumpFlag(IntFlag):
    """Flags of COM_BINLOG_DUMP / COM_BINLOG_DUMP_GTID.

    Bit 1 means different things per flavour and command, hence the aliases: MariaDB reads it in
    COM_BINLOG_DUMP as "send ANNOTATE_ROWS events"; MySQL reads it in COM_BINLOG_DUMP_GTID as
    "heartbeat v2 wanted" (``USE_HEARTBEAT_EVENT_V2``) and libmysqlclient names it THROUGH_POSITION.
    """

    NON_BLOCK = 1
    SEND_ANNOTATE_ROWS = 2
    THROUGH_POSITION = 2
    USE_HEARTBEAT_EVENT_V2 = 2
    THROUGH_GTID = 4


class ColumnType(IntEnum):
    """Column types in result-set column definitions (``enum_field_types``)."""

    DECIMAL = 0x00
    TINY = 0x01
    SHORT = 0x02
    LONG = 0x03
    FLOAT = 0x04
    DOUBLE = 0x05
    NULL = 0x06
    TIMESTAMP = 0x07
    LONGLONG = 0x08
    INT24 = 0x09
    DATE = 0x0A
    TIME = 0x0B
    DATETIME = 0x0C
    YEAR = 0x0D
    NEWDATE = 0x0E
    VARCHAR = 0x0F
    BIT = 0x10
    TIMESTAMP2 = 0x11
    DATETIME2 = 0x12
    TIME2 = 0x13
    JSON = 0xF5
    NEWDECIMAL = 0xF6
    ENUM = 0xF7
    SET = 0xF8
    TINY_BLOB = 0xF9
    MEDIUM_BLOB = 0xFA
    LONG_BLOB = 0xFB
    BLOB = 0xFC
    VAR_STRING = 0xFD
    STRING = 0xFE
    GEOMETRY = 0xFF


# Authentication plugin names.
NATIVE_PASSWORD = "mysql_native_password"
CACHING_SHA2_PASSWORD = "caching_sha2_password"
SHA256_PASSWORD = "sha256_password"
CLEAR_PASSWORD = "mysql_clear_password"
