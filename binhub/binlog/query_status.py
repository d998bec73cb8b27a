"""The status variables of a QUERY event: the session context the statement ran in.

A QUERY event carries, before the statement, a list of ``(code, value)`` pairs (MySQL
``libs/mysql/binlog/event/statement_events.h``, MariaDB ``log_event.h``). The schema history needs
the character sets: a ``CREATE DATABASE`` without ``CHARACTER SET`` takes the server's collation at
that moment, which only ``Q_CHARSET_CODE`` records, and MySQL 8 writes which utf8mb4 collation was
the default. Each code implies its value's length; after a code this module does not know, the rest
cannot be walked, so decoding stops there and says so (``complete=False``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from binhub.binlog.buffer import ByteReader
from binhub.errors import InvalidEvent

__all__ = ["QueryStatus", "StatusVar", "decode_query_status", "sql_mode_names"]


class StatusVar(IntEnum):
    FLAGS2 = 0
    SQL_MODE = 1
    CATALOG = 2
    AUTO_INCREMENT = 3
    CHARSET = 4
    TIME_ZONE = 5
    CATALOG_NZ = 6
    LC_TIME_NAMES = 7
    CHARSET_DATABASE = 8
    TABLE_MAP_FOR_UPDATE = 9
    MASTER_DATA_WRITTEN = 10
    INVOKER = 11
    UPDATED_DB_NAMES = 12
    MICROSECONDS = 13
    COMMIT_TS = 14
    COMMIT_TS2 = 15
    EXPLICIT_DEFAULTS_FOR_TIMESTAMP = 16
    DDL_LOGGED_WITH_XID = 17
    DEFAULT_COLLATION_FOR_UTF8MB4 = 18
    SQL_REQUIRE_PRIMARY_KEY = 19
    DEFAULT_TABLE_ENCRYPTION = 20
    # MariaDB's own codes
    HRNOW = 128
    XID = 129
    GTID_FLAGS3 = 130
    CHARACTER_SET_COLLATIONS = 131


# Codes whose value has a fixed size.
_FIXED = {
    StatusVar.FLAGS2: 4, StatusVar.SQL_MODE: 8, StatusVar.AUTO_INCREMENT: 4, StatusVar.CHARSET: 6,
    StatusVar.LC_TIME_NAMES: 2, StatusVar.CHARSET_DATABASE: 2, StatusVar.TABLE_MAP_FOR_UPDATE: 8,
    StatusVar.MASTER_DATA_WRITTEN: 4, StatusVar.MICROSECONDS: 3, StatusVar.EXPLICIT_DEFAULTS_FOR_TIMESTAMP: 1,
    StatusVar.DDL_LOGGED_WITH_XID: 8, StatusVar.DEFAULT_COLLATION_FOR_UTF8MB4: 2,
    StatusVar.SQL_REQUIRE_PRIMARY_KEY: 1, StatusVar.DEFAULT_TABLE_ENCRYPTION: 1, StatusVar.HRNOW: 3,
    StatusVar.XID: 8, StatusVar.GTID_FLAGS3: 1,
}
_OVER_MAX_DBS = 254  # Q_UPDATED_DB_NAMES: "more databases than listed"


@dataclass(frozen=True, slots=True)
class QueryStatus:
    """The status variables binhub uses; None where the event did not carry one."""

    character_set_client: int | None = None  # collation ids, as SHOW COLLATION numbers them
    collation_connection: int | None = None
    collation_server: int | None = None
    collation_database: int | None = None
    default_collation_for_utf8mb4: int | None = None  # MySQL 8.0.11+
    sql_mode: int | None = None
    time_zone: str | None = None  # only when the session's differed from the server's default
    updated_db_names: tuple[str, ...] | None = None
    complete: bool = True  # False: an unknown code stopped the walk; later variables are missing


def decode_query_status(status_vars: bytes) -> QueryStatus:
    """Walk a QUERY event's status variables (``QueryEvent.status_vars``)."""
    r = ByteReader(status_vars, what="QUERY status variables")
    found: dict[str, Any] = {}
    try:
        while r.remaining():
            code = r.u8()
            if code == StatusVar.CHARSET:
                found["character_set_client"], found["collation_connection"], found["collation_server"] = (
                    r.u16(), r.u16(), r.u16())
            elif code == StatusVar.CHARSET_DATABASE:
                found["collation_database"] = r.u16()
            elif code == StatusVar.DEFAULT_COLLATION_FOR_UTF8MB4:
                found["default_collation_for_utf8mb4"] = r.u16()
            elif code == StatusVar.SQL_MODE:
                found["sql_mode"] = r.u64()
            elif code in _FIXED:
                r.skip(_FIXED[StatusVar(code)])
            elif code == StatusVar.TIME_ZONE:
                found["time_zone"] = r.take(r.u8()).decode("ascii", "replace")
            elif code == StatusVar.CATALOG_NZ:
                r.skip(r.u8())
            elif code == StatusVar.CATALOG:
                r.skip(r.u8() + 1)  # length, name, NUL (servers before 5.0.4)
            elif code == StatusVar.INVOKER:
                r.skip(r.u8())
                r.skip(r.u8())
            elif code == StatusVar.UPDATED_DB_NAMES:
                found["updated_db_names"] = _db_names(r)
            elif code == StatusVar.CHARACTER_SET_COLLATIONS:
                r.skip(r.u8() * 4)  # count, then (charset id u16, collation id u16) pairs
            else:
                return QueryStatus(**found, complete=False)
    except InvalidEvent:
        return QueryStatus(**found, complete=False)
    return QueryStatus(**found)


def _db_names(r: ByteReader) -> tuple[str, ...]:
    count = r.u8()
    if count == _OVER_MAX_DBS:
        return ()
    names = []
    for _ in range(count):
        length = bytes(r.data[r.pos:r.end]).find(b"\0")
        if length < 0:
            raise InvalidEvent("QUERY status variables: a database name is not NUL-terminated")
        names.append(r.take(length).decode("utf-8", "replace"))
        r.skip(1)
    return tuple(names)


# sql_mode bits as both servers number them (sql_class.h / sql_mode.h); bit 4 and the bits above 31
# differ between the flavours.
_SQL_MODES = ("REAL_AS_FLOAT", "PIPES_AS_CONCAT", "ANSI_QUOTES", "IGNORE_SPACE", "", "ONLY_FULL_GROUP_BY",
              "NO_UNSIGNED_SUBTRACTION", "NO_DIR_IN_CREATE", "POSTGRESQL", "ORACLE", "MSSQL", "DB2", "MAXDB",
              "NO_KEY_OPTIONS", "NO_TABLE_OPTIONS", "NO_FIELD_OPTIONS", "MYSQL323", "MYSQL40", "ANSI",
              "NO_AUTO_VALUE_ON_ZERO", "NO_BACKSLASH_ESCAPES", "STRICT_TRANS_TABLES", "STRICT_ALL_TABLES",
              "NO_ZERO_IN_DATE", "NO_ZERO_DATE", "ALLOW_INVALID_DATES", "ERROR_FOR_DIVISION_BY_ZERO",
              "TRADITIONAL", "NO_AUTO_CREATE_USER", "HIGH_NOT_PRECEDENCE", "NO_ENGINE_SUBSTITUTION",
              "PAD_CHAR_TO_FULL_LENGTH")
_MARIADB_SQL_MODES = {4: "IGNORE_BAD_TABLE_OPTIONS", 32: "EMPTY_STRING_IS_NULL", 33: "SIMULTANEOUS_ASSIGNMENT",
                      34: "TIME_ROUND_FRACTIONAL"}
_MYSQL_SQL_MODES = {32: "TIME_TRUNCATE_FRACTIONAL"}


def sql_mode_names(bits: int, flavour: str) -> tuple[str, ...]:
    """The names of a Q_SQL_MODE_CODE bitmask (``flavour``: ``mysql`` or ``mariadb``), as
    ``SET sql_mode`` takes them; bits neither server defines are left out."""
    extra = _MARIADB_SQL_MODES if flavour == "mariadb" else _MYSQL_SQL_MODES
    names = []
    for bit in range(max(len(_SQL_MODES), 35)):
        if bits >> bit & 1:
            name = extra.get(bit) or (_SQL_MODES[bit] if bit < len(_SQL_MODES) else "")
            if name:
                names.append(name)
    return tuple(names)
