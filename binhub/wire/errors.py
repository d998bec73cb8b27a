"""The error numbers of the protocol, each with its SQLSTATE, and the error that becomes an ERR packet.

:class:`ErrorCode` holds the server errors binhub sends or reacts to, named as in MySQL's
``include/mysqld_error.h`` without the ``ER_`` prefix (MariaDB's name where only MariaDB has the
number), each carrying the SQLSTATE the servers send with it (``sql/sql_state.h``).
:class:`ClientErrorCode` holds the client library's numbers (``include/errmsg.h``, ``CR_*``), which
never travel in an ERR packet but which binhub's own client raises like the C client does.

:class:`MysqlError` is the one exception that becomes an ERR packet: whatever binhub's server
refuses (a statement, a login, a dump) raises it, or a subclass of it, with ``(code, message)``.
"""

from __future__ import annotations

from enum import IntEnum

from binhub.errors import BinhubError
from binhub.wire.messages import ErrPacket

__all__ = ["ClientErrorCode", "ErrorCode", "MysqlError"]


class ErrorCode(IntEnum):
    """A server error number (``ER_*``); ``sqlstate`` is the SQLSTATE that goes with it."""

    sqlstate: str

    def __new__(cls, code: int, sqlstate: str = "HY000") -> ErrorCode:
        member = int.__new__(cls, code)
        member._value_ = code
        member.sqlstate = sqlstate
        return member

    CON_COUNT_ERROR = 1040, "08004"
    HANDSHAKE_ERROR = 1043, "08S01"
    DBACCESS_DENIED_ERROR = 1044, "42000"
    ACCESS_DENIED_ERROR = 1045, "28000"
    UNKNOWN_COM_ERROR = 1047, "08S01"
    BAD_FIELD_ERROR = 1054, "42S22"
    PARSE_ERROR = 1064, "42000"
    NO_SUCH_THREAD = 1094
    KILL_DENIED_ERROR = 1095
    NO_TABLES_USED = 1096
    UNKNOWN_ERROR = 1105
    NONEXISTING_GRANT = 1133, "42000"
    TABLEACCESS_DENIED_ERROR = 1142, "42000"
    NO_SUCH_TABLE = 1146, "42S02"
    NET_PACKET_TOO_LARGE = 1153, "08S01"
    UNKNOWN_SYSTEM_VARIABLE = 1193
    LOCK_WAIT_TIMEOUT = 1205
    LOCK_DEADLOCK = 1213
    ERROR_WHEN_EXECUTING_COMMAND = 1220
    SPECIFIC_ACCESS_DENIED_ERROR = 1227, "42000"
    MASTER_FATAL_ERROR_READING_BINLOG = 1236
    NOT_SUPPORTED_AUTH_MODE = 1251, "08004"
    SERVER_IS_IN_SECURE_AUTH_MODE = 1275
    SP_DOES_NOT_EXIST = 1305, "42000"
    UNKNOWN_TARGET_BINLOG = 1373
    VIEW_INVALID = 1356
    LOG_IN_USE = 1378
    NO_BINARY_LOGGING = 1381
    TABLE_DEF_CHANGED = 1412
    WRONG_VALUE = 1525
    WRONG_PARAMCOUNT_TO_NATIVE_FCT = 1582, "42000"
    #: MariaDB: "There is no master connection '%s'" (a warning's number, used as the error).
    WARN_NO_MASTER_INFO = 1617
    ACCESS_DENIED_NO_PASSWORD_ERROR = 1698, "28000"
    MALFORMED_PACKET = 1835
    #: MariaDB: "Could not parse GTID list" (a malformed @slave_connect_state / @slave_until_gtid).
    INCORRECT_GTID_STATE = 1941
    #: MySQL 8.0: "Replication channel '%s' does not exist." (5.7: ER_SLAVE_CHANNEL_DOES_NOT_EXIST).
    REPLICA_CHANNEL_DOES_NOT_EXIST = 3074
    #: MariaDB: another replica connected with this server_id.
    SLAVE_SAME_ID = 4052


class ClientErrorCode(IntEnum):
    """A client library error number (``CR_*``)."""

    SSL_CONNECTION_ERROR = 2026
    AUTH_PLUGIN_CANNOT_LOAD = 2059


class MysqlError(BinhubError):
    """An error binhub's server answers with an ERR packet; the session carries on (a dump ends).

    ``MysqlError(ErrorCode.NO_SUCH_TABLE, "Table 'x' doesn't exist")``: the SQLSTATE comes from
    the code. Subclasses that always mean one error fix the code and take the message alone.
    """

    def __init__(self, code: ErrorCode, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.code = code

    @property
    def sqlstate(self) -> str:
        return self.code.sqlstate

    def packet(self) -> bytes:
        """The ERR packet's payload (what a client reads as ``(code, message)``)."""
        return ErrPacket(int(self.code), self.sqlstate, str(self)).build()
