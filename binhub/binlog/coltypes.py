"""Column type codes of TABLE_MAP events and the per-type metadata that follows them.

Codes follow MySQL's ``enum_field_types`` (``include/field_types.h``) and MariaDB's additions
(``MYSQL_TYPE_VARCHAR_COMPRESSED``/``BLOB_COMPRESSED``). A TABLE_MAP carries one type byte per
column and, for some types, 1 or 2 bytes of metadata (``Field::save_field_metadata`` /
``Table_map_log_event::save_field_metadata``); ``read_column_metadata`` turns those bytes into one
integer per column, the same ``meta`` that ``log_event_print_value`` switches on.
"""

from __future__ import annotations

from enum import IntEnum

from binhub.errors import InvalidEvent

__all__ = ["ColumnType", "is_character_type", "is_numeric_type", "read_column_metadata", "real_string_type"]


class ColumnType(IntEnum):
    DECIMAL = 0  # the pre-5.0.3 DECIMAL, stored as ASCII digits
    TINY = 1
    SHORT = 2
    LONG = 3
    FLOAT = 4
    DOUBLE = 5
    NULL = 6
    TIMESTAMP = 7
    LONGLONG = 8
    INT24 = 9
    DATE = 10
    TIME = 11
    DATETIME = 12
    YEAR = 13
    NEWDATE = 14
    VARCHAR = 15
    BIT = 16
    TIMESTAMP2 = 17
    DATETIME2 = 18
    TIME2 = 19
    TYPED_ARRAY = 20
    BLOB_COMPRESSED = 140  # MariaDB column compression
    VARCHAR_COMPRESSED = 141
    VECTOR = 242  # MySQL 9
    INVALID = 243
    BOOL = 244
    JSON = 245
    NEWDECIMAL = 246
    ENUM = 247
    SET = 248
    TINY_BLOB = 249
    MEDIUM_BLOB = 250
    LONG_BLOB = 251
    BLOB = 252
    VAR_STRING = 253
    STRING = 254
    GEOMETRY = 255


_KNOWN = frozenset(int(t) for t in ColumnType)

# Metadata bytes per type in a TABLE_MAP; types not listed have none.
_META_ONE_BYTE = frozenset({
    ColumnType.FLOAT, ColumnType.DOUBLE, ColumnType.BLOB, ColumnType.GEOMETRY, ColumnType.JSON,
    ColumnType.TIMESTAMP2, ColumnType.DATETIME2, ColumnType.TIME2, ColumnType.VECTOR,
    ColumnType.BLOB_COMPRESSED, ColumnType.TINY_BLOB, ColumnType.MEDIUM_BLOB, ColumnType.LONG_BLOB,
})
# VARCHAR (max length) and BIT (bits % 8, then bytes) are little-endian: for BIT, ``meta >> 8`` is
# the whole bytes and ``meta & 0xFF`` the extra bits (``table_def::table_def`` in rpl_utility.cc).
_META_TWO_BYTES_LE = frozenset({ColumnType.VARCHAR, ColumnType.VAR_STRING, ColumnType.VARCHAR_COMPRESSED,
                                ColumnType.BIT})
# NEWDECIMAL (precision, scale), STRING/ENUM/SET (real type, length): the first byte is the high
# one of ``meta``, as log_event_print_value reads it.
_META_TWO_BYTES_BE = frozenset({ColumnType.NEWDECIMAL, ColumnType.STRING, ColumnType.ENUM, ColumnType.SET})


def read_column_metadata(types: bytes, data: bytes, *, where: str = "TABLE_MAP") -> tuple[int, ...]:
    """One ``meta`` integer per column from the TABLE_MAP metadata block."""
    out: list[int] = []
    pos = 0
    for i, code in enumerate(types):
        if code in _META_ONE_BYTE:
            need = 1
        elif code in _META_TWO_BYTES_LE or code in _META_TWO_BYTES_BE:
            need = 2
        elif code in _KNOWN:
            need = 0
        else:
            raise InvalidEvent(f"{where}: column {i + 1} has type code {code}, which no MySQL or MariaDB "
                               f"version defines", hint="the file may be corrupt or from an unsupported server")
        if pos + need > len(data):
            raise InvalidEvent(f"{where}: column metadata ends at column {i + 1} of {len(types)}")
        if need == 0:
            out.append(0)
        elif need == 1:
            out.append(data[pos])
        elif code in _META_TWO_BYTES_LE:
            out.append(data[pos] | data[pos + 1] << 8)
        else:
            out.append(data[pos] << 8 | data[pos + 1])
        pos += need
    if pos != len(data):
        raise InvalidEvent(f"{where}: {len(data) - pos} metadata bytes left over after {len(types)} columns")
    return tuple(out)


def real_string_type(code: int, meta: int) -> tuple[int, int]:
    """(real type, max byte length or pack length) of a STRING column, whose metadata may say it is
    really ENUM or SET, or a CHAR longer than 255 bytes (the length's high bits hide in the first
    byte, MySQL bug #37426)."""
    if code != ColumnType.STRING:
        return code, meta
    if meta >= 256:
        byte0, byte1 = meta >> 8, meta & 0xFF
        if (byte0 & 0x30) != 0x30:
            return byte0 | 0x30, byte1 | (((byte0 & 0x30) ^ 0x30) << 4)
        return byte0, byte1
    return code, meta


_NUMERIC = frozenset({ColumnType.TINY, ColumnType.SHORT, ColumnType.INT24, ColumnType.LONG, ColumnType.LONGLONG,
                      ColumnType.NEWDECIMAL, ColumnType.FLOAT, ColumnType.DOUBLE})
_CHARACTER_MYSQL = frozenset({ColumnType.STRING, ColumnType.VAR_STRING, ColumnType.VARCHAR, ColumnType.BLOB})


def is_numeric_type(code: int) -> bool:
    """Columns that get a bit in the SIGNEDNESS optional metadata (both servers' is_numeric_type)."""
    return code in _NUMERIC


def is_character_type(code: int, *, mariadb: bool) -> bool:
    """Columns that get an entry in the (DEFAULT_|COLUMN_)CHARSET optional metadata: the real type
    (after ``real_string_type``) is a string or blob; MariaDB counts GEOMETRY too."""
    if code in _CHARACTER_MYSQL:
        return True
    if mariadb:
        return code in (ColumnType.GEOMETRY, ColumnType.VARCHAR_COMPRESSED, ColumnType.BLOB_COMPRESSED)
    return False
