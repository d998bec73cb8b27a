"""SQL text for row changes: a literal for every column type, and the statements that apply a change.

Values come in binhub form (:mod:`binhub.binlog.column_values`: what the row decoder gives and what
binhub JSON holds once read back with :func:`from_json`); a :class:`SqlColumn` says how to write one
(its :class:`Kind`, from the column's SQL type as ``information_schema.COLUMNS.COLUMN_TYPE`` or the
schema history has it). Every literal reads back as the same value, bit for bit:

* integers, YEAR, BIT, an ENUM index or SET bitmap (labels unknown): decimal integers;
* DECIMAL: the digits as they are (a decimal literal is exact);
* FLOAT/DOUBLE: ``repr`` with an exponent (``1.1e0``): an approximate literal, parsed by strtod,
  round-trips every double; a FLOAT's shortest float32 digits round to the same float32. In a
  WHERE a FLOAT column is compared as a double, so there the float32's exact double is written;
* temporal values: quoted as the server prints them (negative TIMEs, fractions, zero dates);
  TIMESTAMPs are UTC, so the session must run with ``time_zone = '+00:00'``;
* text: ``_utf8mb4'…'`` (the server converts to the column's charset); text that is not valid in
  its charset: ``_cs X'…'`` (the bytes as they were);
* binary strings, BLOBs, VECTORs: ``X'…'``; GEOMETRY: ``X'…'`` of the server's internal format
  (SRID, little-endian, then the WKB), which both flavours store as it is (no axis-order games);
* JSON: the document's text (``CAST(… AS JSON)`` where the column is MySQL's JSON type, so a
  comparison compares documents).

Quoted strings use backslash escapes: the session must not run with ``NO_BACKSLASH_ESCAPES``.
Identifiers are quoted with backticks. :data:`SESSION_SETTINGS` is what the literals assume: UTC,
backslash escapes, zero dates and the ENUM error value ``''`` accepted as the primary stored them
(no strict mode: a row event is applied as it was written, as a replica's SQL thread does), and a
0 in an AUTO_INCREMENT column kept as 0.
"""

from __future__ import annotations

import base64
import enum
import re
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from binhub.binlog.column_values import Geometry, JsonNull, UndecodedText
from binhub.binlog.json_form import json_default
from binhub.errors import BinhubError

__all__ = [
    "JSON_CONVERTED", "SESSION_SETTINGS", "InsertMode", "Kind", "SqlColumn", "SqlError", "column_kind", "delete_sql", "from_json", "insert_sql",
    "literal", "quote_name", "quote_table", "quote_text", "update_sql", "where_literal",
]


SESSION_SETTINGS = "SET SESSION time_zone = '+00:00', sql_mode = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'"


class SqlError(BinhubError):
    """A value binhub cannot write as SQL (e.g. NaN in a DOUBLE)."""


class Kind(enum.Enum):
    INTEGER = "integer"
    DECIMAL = "decimal"
    FLOAT = "float"
    DOUBLE = "double"
    TEMPORAL = "temporal"  # DATE, TIME, DATETIME, TIMESTAMP
    YEAR = "year"
    TEXT = "text"
    BINARY = "binary"
    BIT = "bit"
    ENUM = "enum"
    SET = "set"
    JSON = "json"
    GEOMETRY = "geometry"
    VECTOR = "vector"


_KINDS: dict[str, Kind] = {
    **dict.fromkeys(("tinyint", "smallint", "mediumint", "int", "integer", "bigint", "bool", "boolean",
                     "serial"), Kind.INTEGER),
    **dict.fromkeys(("decimal", "numeric", "dec", "fixed"), Kind.DECIMAL),
    "float": Kind.FLOAT,
    **dict.fromkeys(("double", "real", "double precision"), Kind.DOUBLE),
    **dict.fromkeys(("date", "time", "datetime", "timestamp"), Kind.TEMPORAL),
    "year": Kind.YEAR,
    **dict.fromkeys(("char", "varchar", "tinytext", "text", "mediumtext", "longtext", "long",
                     "long varchar", "nchar", "nvarchar", "national char", "national varchar"), Kind.TEXT),
    **dict.fromkeys(("binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "long varbinary"),
                    Kind.BINARY),
    "bit": Kind.BIT,
    "enum": Kind.ENUM,
    "set": Kind.SET,
    "json": Kind.JSON,
    **dict.fromkeys(("geometry", "point", "linestring", "polygon", "multipoint", "multilinestring",
                     "multipolygon", "geometrycollection", "geomcollection"), Kind.GEOMETRY),
    "vector": Kind.VECTOR,
}
_TYPE_WORD = re.compile(r"\s*([a-z][a-z ]*?)\s*(?:[(/]|$| unsigned| signed| zerofill| character| charset"
                        r"| collate| compressed| binary)", re.IGNORECASE)


def column_kind(sql_type: str, charset: str | None = None) -> Kind:
    """The kind of a column from its SQL type (``decimal(10,3) unsigned``, ``varchar(20)``, or
    ``information_schema``'s DATA_TYPE); text with the ``binary`` charset is binary."""
    m = _TYPE_WORD.match(sql_type)
    word = m.group(1).lower() if m else sql_type.strip().lower()
    kind = _KINDS.get(word)
    if kind is None:
        raise SqlError(f"binhub does not know how to write a value of SQL type {sql_type!r}")
    if kind is Kind.TEXT and charset == "binary":
        return Kind.BINARY
    return kind


@dataclass(frozen=True, slots=True)
class SqlColumn:
    """What writing a value needs to know about its column; ``render(value)`` is its :func:`literal`,
    made once per column with the common type of its kind tried first (rendering is most of the
    sink's and flashback's work per row)."""

    name: str
    kind: Kind
    charset: str | None = None  # text columns: what bytes that are not valid text are introduced as
    render: Callable[[Any], str] = field(init=False, repr=False, compare=False)
    # ``where_literal(column, ·)``: ``render`` but for a FLOAT (compared as a double).
    render_where: Callable[[Any], str] = field(init=False, repr=False, compare=False)
    quoted: str = field(init=False, repr=False, compare=False)  # the name in backticks

    def __post_init__(self) -> None:
        render = _renderer(self)
        object.__setattr__(self, "render", render)
        object.__setattr__(self, "render_where", _float_where(self) if self.kind is Kind.FLOAT else render)
        object.__setattr__(self, "quoted", quote_name(self.name))

    @classmethod
    def of(cls, name: str, sql_type: str, charset: str | None = None) -> SqlColumn:
        return cls(name, column_kind(sql_type, charset), charset)


# ---- literals ------------------------------------------------------------------------------------

# Backslash escapes (mysql_real_escape_string's set): the session runs without NO_BACKSLASH_ESCAPES.
_ESCAPES = str.maketrans({"\\": "\\\\", "'": "\\'", "\0": "\\0", "\n": "\\n", "\r": "\\r", "\x1a": "\\Z"})
_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_TEMPORAL = re.compile(r"-?[0-9][0-9:. -]*")
_F32 = struct.Struct("<f")


def quote_name(name: str) -> str:
    """An identifier in backticks (a backtick inside is doubled)."""
    return "`" + name.replace("`", "``") + "`"


def quote_table(db: str, table: str) -> str:
    return quote_name(db) + "." + quote_name(table)


def quote_text(text: str) -> str:
    """A string literal (backslash escapes)."""
    return "'" + text.translate(_ESCAPES) + "'"


def _hex(data: bytes) -> str:
    return "X'" + data.hex() + "'"


def _integer(column: SqlColumn, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SqlError(f"column {column.name}: {value!r} is not an integer")
    return str(value)


def _decimal(column: SqlColumn, value: Any) -> str:
    text = str(value)
    if not _DECIMAL.fullmatch(text):
        raise SqlError(f"column {column.name}: {value!r} is not a DECIMAL value")
    return text


def _double(column: SqlColumn, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SqlError(f"column {column.name}: {value!r} is not a number")
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise SqlError(f"column {column.name}: {value!r} cannot be stored in MySQL/MariaDB")
    text = repr(value)
    return text if "e" in text else text + "e0"  # an approximate literal: parsed as a double


def _float_in_where(column: SqlColumn, value: Any) -> str:
    """A FLOAT column compares as a double: the float32's exact double, not its shortest digits."""
    _double(column, value)  # checks it
    return _double(column, _F32.unpack(_F32.pack(value))[0])


def _temporal(column: SqlColumn, value: Any) -> str:
    if not isinstance(value, str) or not _TEMPORAL.fullmatch(value):
        raise SqlError(f"column {column.name}: {value!r} is not a date or time")
    return "'" + value + "'"


def _text(column: SqlColumn, value: Any) -> str:
    if isinstance(value, str):
        return "_utf8mb4" + quote_text(value)
    if isinstance(value, UndecodedText):
        charset = value.charset or column.charset
        return ("_" + charset + " " if charset and re.fullmatch(r"\w+", charset) else "") + _hex(value.data)
    if isinstance(value, bytes | bytearray | memoryview):  # text of a binary charset
        return _hex(bytes(value))
    if isinstance(value, int | float | dict | list | JsonNull) and not isinstance(value, bool):
        # A MySQL JSON document applied to a text column (MariaDB's JSON is LONGTEXT).
        return "_utf8mb4" + quote_text(_json_text(value))
    raise SqlError(f"column {column.name}: {value!r} is not text")


def _binary(column: SqlColumn, value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return _hex(bytes(value))
    if isinstance(value, UndecodedText):
        return _hex(value.data)
    if isinstance(value, str):  # a binary column downstream for text upstream: its UTF-8 bytes
        return _hex(value.encode("utf-8"))
    if isinstance(value, Geometry):
        return _hex(_geometry_bytes(value))
    if isinstance(value, list):  # a VECTOR
        return _hex(_vector_bytes(column, value))
    raise SqlError(f"column {column.name}: {value!r} is not a binary string")


def _label(column: SqlColumn, value: Any) -> str:
    """ENUM/SET: the label(s), or the index/bitmap when the labels were unknown."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        return "_utf8mb4" + quote_text(value)
    raise SqlError(f"column {column.name}: {value!r} is not an ENUM/SET value")


def _json_text(value: Any) -> str:
    if isinstance(value, str | bytes):
        raise TypeError  # the caller decides what a string means
    return orjson.dumps(value, default=json_default).decode("utf-8")


def _json(column: SqlColumn, value: Any) -> str:
    text = orjson.dumps(value, default=json_default).decode("utf-8")
    return "CAST(_utf8mb4" + quote_text(text) + " AS JSON)"


def _geometry_bytes(value: Geometry) -> bytes:
    return value.srid.to_bytes(4, "little") + value.wkb


def _geometry(column: SqlColumn, value: Any) -> str:
    if isinstance(value, Geometry):
        return _hex(_geometry_bytes(value))
    if isinstance(value, bytes | bytearray | memoryview):  # already the internal format
        return _hex(bytes(value))
    raise SqlError(f"column {column.name}: {value!r} is not a geometry")


def _vector_bytes(column: SqlColumn, value: Sequence[Any]) -> bytes:
    try:
        return struct.pack(f"<{len(value)}f", *value)
    except (struct.error, TypeError) as exc:
        raise SqlError(f"column {column.name}: {value!r} is not a vector of numbers") from exc


def _vector(column: SqlColumn, value: Any) -> str:
    if isinstance(value, list):
        return _hex(_vector_bytes(column, value))
    return _binary(column, value)


Render = Callable[[SqlColumn, Any], str]
_RENDER: dict[Kind, Render] = {
    Kind.INTEGER: _integer, Kind.YEAR: _integer, Kind.BIT: _integer, Kind.DECIMAL: _decimal,
    Kind.FLOAT: _double, Kind.DOUBLE: _double, Kind.TEMPORAL: _temporal, Kind.TEXT: _text, Kind.BINARY: _binary,
    Kind.ENUM: _label, Kind.SET: _label, Kind.JSON: _json, Kind.GEOMETRY: _geometry, Kind.VECTOR: _vector,
}


def _renderer(column: SqlColumn) -> Callable[[Any], str]:
    """``literal(column, ·)``: the usual type of the column's kind (``type() is``: a bool is no
    integer) straight away, anything else through the kind's checks."""
    general = _RENDER[column.kind]

    def other(value: Any) -> str:
        return "NULL" if value is None else general(column, value)

    if column.kind in (Kind.INTEGER, Kind.YEAR, Kind.BIT):
        def integer(value: Any) -> str:
            return str(value) if type(value) is int else other(value)
        return integer
    if column.kind in (Kind.TEXT, Kind.ENUM, Kind.SET):
        def text(value: Any) -> str:
            return "_utf8mb4'" + value.translate(_ESCAPES) + "'" if type(value) is str else other(value)
        return text
    if column.kind is Kind.BINARY:
        def binary(value: Any) -> str:
            return "X'" + value.hex() + "'" if type(value) is bytes else other(value)
        return binary
    return other


def _float_where(column: SqlColumn) -> Callable[[Any], str]:
    def render(value: Any) -> str:
        return "NULL" if value is None else _float_in_where(column, value)
    return render


def literal(column: SqlColumn, value: Any) -> str:
    """The SQL literal of a value (binhub form) for a column; None is NULL."""
    return column.render(value)


def where_literal(column: SqlColumn, value: Any) -> str:
    """The literal to compare a column with (differs from :func:`literal` for FLOAT only)."""
    return column.render_where(value)


# ---- binhub JSON back to binhub form --------------------------------------------------------------

# The kinds whose values binhub JSON writes in another form (the rest read back as they are).
JSON_CONVERTED = frozenset({Kind.BINARY, Kind.VECTOR, Kind.GEOMETRY, Kind.TEXT})

def from_json(column: SqlColumn, value: Any) -> Any:
    """A value as binhub JSON holds it (read with orjson) in binhub form: base64 back to bytes, a
    geometry object back to :class:`Geometry`, undecoded text back to :class:`UndecodedText`."""
    if value is None:
        return None
    kind = column.kind
    try:
        if kind is Kind.BINARY or (kind is Kind.VECTOR and isinstance(value, str)):
            if isinstance(value, dict) and "srid" in value:
                return Geometry(value["srid"], base64.b64decode(value["wkb"]))
            return base64.b64decode(value, validate=True) if isinstance(value, str) else value
        if kind is Kind.GEOMETRY and isinstance(value, dict):
            return Geometry(int(value["srid"]), base64.b64decode(value["wkb"], validate=True))
        if kind is Kind.TEXT and isinstance(value, dict) and "undecoded" in value:
            return UndecodedText(base64.b64decode(value["undecoded"], validate=True), value.get("charset"))
    except (ValueError, KeyError, TypeError) as exc:
        raise SqlError(f"column {column.name}: {value!r} is not a {kind.value} value in binhub JSON") from exc
    return value


# ---- statements ----------------------------------------------------------------------------------

class InsertMode(enum.Enum):
    INSERT = "INSERT"  # a duplicate key is an error (a conflict)
    IGNORE = "INSERT IGNORE"  # a duplicate key keeps the downstream row
    REPLACE = "REPLACE"  # a duplicate key replaces the downstream row(s): safe mode
    UPSERT = "UPSERT"  # INSERT … ON DUPLICATE KEY UPDATE every column


def insert_sql(table: str, columns: Sequence[SqlColumn], rows: Iterable[Sequence[Any]],
               mode: InsertMode = InsertMode.INSERT) -> str:
    """One multi-row INSERT (or REPLACE/upsert) of rows given as values in ``columns`` order;
    ``table`` is already quoted (:func:`quote_table`)."""
    names = ", ".join([c.quoted for c in columns])
    renders = [c.render for c in columns]
    values = ", ".join(["(" + ", ".join([render(v) for render, v in zip(renders, row, strict=True)]) + ")"
                        for row in rows])
    verb = "INSERT" if mode is InsertMode.UPSERT else mode.value
    sql = f"{verb} INTO {table} ({names}) VALUES {values}"
    if mode is InsertMode.UPSERT:
        sql += " ON DUPLICATE KEY UPDATE " + ", ".join(f"{quote_name(c.name)} = VALUES({quote_name(c.name)})"
                                                      for c in columns)
    return sql


def _where(key: Sequence[tuple[SqlColumn, Any]], whole_row: bool) -> str:
    """By the key (``=``: key columns are never NULL) or by the whole row (NULL-safe ``<=>``)."""
    op = " <=> " if whole_row or any(v is None for _, v in key) else " = "
    return " AND ".join([c.quoted + op + c.render_where(v) for c, v in key])


def update_sql(table: str, assignments: Sequence[tuple[SqlColumn, Any]], key: Sequence[tuple[SqlColumn, Any]],
               *, whole_row: bool) -> str:
    """``UPDATE … SET … WHERE`` the key (or the whole before image, with LIMIT 1: the table has no
    key, and of identical rows one is changed, as on the primary)."""
    sets = ", ".join([c.quoted + " = " + c.render(v) for c, v in assignments])
    return f"UPDATE {table} SET {sets} WHERE {_where(key, whole_row)}" + (" LIMIT 1" if whole_row else "")


def delete_sql(table: str, key: Sequence[tuple[SqlColumn, Any]], *, whole_row: bool) -> str:
    """``DELETE … WHERE`` the key (or the whole before image, LIMIT 1)."""
    return f"DELETE FROM {table} WHERE {_where(key, whole_row)}" + (" LIMIT 1" if whole_row else "")
