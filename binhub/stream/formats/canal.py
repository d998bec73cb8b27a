"""``--format canal``: Canal's FlatMessage JSON (what ``canal.mq.flatMessage=true`` sends to Kafka).

One message per row change (Canal's ``canal.mq.partitionHash=…:$pk$`` mode, which splits messages
per row so each can be keyed by its primary key): ``{"id", "database", "table", "pkNames", "isDdl",
"type", "es", "ts", "sql", "sqlType", "mysqlType", "data", "old", "gtid"}`` where ``type`` is
INSERT/UPDATE/DELETE, ``es`` the commit time and ``ts`` when binhub wrote it (milliseconds),
``data`` a one-row list, ``old`` (UPDATE only) the changed columns' previous values, ``sqlType`` each
column's ``java.sql.Types`` code and ``mysqlType`` its declared type. Every value is a string, as
in Canal: numbers in decimal, DECIMAL with its scale, dates and times as MySQL prints them, BINARY
and BLOB bytes as ISO-8859-1 text (Canal's ``new String(bytes, ISO_8859_1)``), BIT as its number,
ENUM its label, SET ``"a,c"``, JSON its text. ``id`` is stable across restarts: the rows event's
store file sequence and offset as one number (``seq << 32 | offset``).

DDL: ``{"isDdl": true, "type": CREATE|ALTER|ERASE|RENAME|TRUNCATE|CINDEX|DINDEX|QUERY, "sql", "data":
null, …}`` with ``table`` "" for a statement on a database (``type`` QUERY).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import orjson

from binhub.binlog.changes import RowChange
from binhub.binlog.column_values import Geometry, JsonNull, UndecodedText
from binhub.binlog.json_form import json_default
from binhub.sinks import Message
from binhub.store.index import file_seq
from binhub.stream.formats.base import DdlChange
from binhub.stream.formats.columns import Columns, FormatColumn, Kind, RowFormat, changed_before

__all__ = ["CanalFormat", "canal_value", "mysql_type", "sql_type"]

# java.sql.Types, as Canal (and TiCDC's canal-json) map MySQL types.
_TINYINT, _SMALLINT, _INTEGER, _BIGINT, _REAL, _DOUBLE, _DECIMAL, _BIT = -6, 5, 4, -5, 7, 8, 3, -7
_CHAR, _VARCHAR, _DATE, _TIME, _TIMESTAMP, _BLOB, _CLOB = 1, 12, 91, 92, 93, 2004, 2005
_SIGNED = {"tinyint": _TINYINT, "smallint": _SMALLINT, "mediumint": _INTEGER, "int": _INTEGER, "bigint": _BIGINT}
_UNSIGNED = {"tinyint": _SMALLINT, "smallint": _INTEGER, "mediumint": _INTEGER, "int": _BIGINT, "bigint": _DECIMAL}
_BY_KIND = {Kind.DECIMAL: _DECIMAL, Kind.DATE: _DATE, Kind.TIME: _TIME, Kind.DATETIME: _TIMESTAMP,
            Kind.TIMESTAMP: _TIMESTAMP, Kind.YEAR: _VARCHAR, Kind.ENUM: _INTEGER, Kind.SET: _BIT, Kind.BIT: _BIT,
            Kind.JSON: _VARCHAR, Kind.GEOMETRY: _BLOB, Kind.VECTOR: _BLOB, Kind.NULL: _VARCHAR,
            Kind.MASKED: _VARCHAR}
_OPS = {"insert": "INSERT", "update": "UPDATE", "delete": "DELETE"}
_DDL_TYPES = [
    (re.compile(r"create\s+(?:or\s+replace\s+)?(?:temporary\s+)?table\b"), "CREATE"),
    (re.compile(r"alter\s+(?:online\s+|ignore\s+)*table\b"), "ALTER"),
    (re.compile(r"drop\s+(?:temporary\s+)?table\b"), "ERASE"),
    (re.compile(r"rename\s+tables?\b"), "RENAME"),
    (re.compile(r"truncate\b"), "TRUNCATE"),
    (re.compile(r"create\s+(?:or\s+replace\s+)?(?:unique\s+|fulltext\s+|spatial\s+)?index\b"), "CINDEX"),
    (re.compile(r"drop\s+index\b"), "DINDEX"),
]
_LEADING_COMMENTS = re.compile(r"^(?:\s+|/\*.*?\*/|#[^\n]*\n|--[^\n]*\n)*", re.S)


# SHOW CREATE TABLE's integer display widths on MariaDB and MySQL before 8.0.19 (signed, unsigned),
# which Canal's mysqlType repeats.
_WIDTHS = {"tinyint": (4, 3), "smallint": (6, 5), "mediumint": (9, 8), "int": (11, 10), "bigint": (20, 20)}


def mysql_type(column: FormatColumn) -> str:
    """The declared type as Canal's ``mysqlType`` gives it (``bigint(20)``, ``varchar(255)``)."""
    declared = column.declared
    if column.kind == Kind.INT and "(" not in declared and column.int_type in _WIDTHS:
        base, _, rest = declared.partition(" ")
        width = _WIDTHS[column.int_type][column.unsigned]
        return f"{base}({width})" + (f" {rest}" if rest else "")
    return declared


def sql_type(column: FormatColumn) -> int:
    """The ``java.sql.Types`` code Canal gives the column."""
    kind = column.kind
    if kind == Kind.INT:
        return (_UNSIGNED if column.unsigned else _SIGNED)[column.int_type or "int"]
    if kind == Kind.FLOAT:
        return _REAL if column.declared.startswith("float") else _DOUBLE
    if kind == Kind.TEXT:
        if "text" in column.declared:
            return _CLOB
        return _CHAR if column.declared.startswith("char") else _VARCHAR
    if kind == Kind.BINARY:
        return _BLOB
    return _BY_KIND[kind]


def canal_value(column: FormatColumn, value: Any) -> str | None:
    """One column value (binhub form) as Canal's text."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, bool | int):
        return str(int(value))
    if isinstance(value, float):
        return orjson.dumps(value).decode()
    if isinstance(value, Geometry):
        return (value.srid.to_bytes(4, "little") + value.wkb).decode("latin-1")
    if isinstance(value, UndecodedText):
        return value.data.decode("latin-1")
    if isinstance(value, JsonNull):
        return "null"
    return orjson.dumps(value, default=json_default).decode()  # JSON documents, VECTOR


class CanalFormat(RowFormat):
    name = "canal"

    def _encode(self, change: RowChange, by_name: Columns, row: int, server_id: int) -> Iterator[Message]:
        image = change.after if change.after is not None else change.before
        assert image is not None
        data = {k: canal_value(by_name[k], v) for k, v in image.items()}
        old = None
        if change.op == "update":
            old = [{k: canal_value(by_name[k], v) for k, v in changed_before(change).items()}]
        pk = change.primary_key
        message = {
            "id": file_seq(change.file) << 32 | change.pos, "database": change.db, "table": change.table,
            "pkNames": list(pk) if pk else None, "isDdl": False, "type": _OPS[change.op],
            "es": change.commit_us // 1000, "ts": time.time_ns() // 1_000_000, "sql": "",
            "sqlType": {k: sql_type(by_name[k]) for k in image},
            "mysqlType": {k: mysql_type(by_name[k]) for k in image},
            "data": [data], "old": old, "gtid": change.gtid or ""}
        key = None
        if self.keyed and pk is not None:
            key = orjson.dumps({k: data.get(k) for k in pk} if pk else data)
        yield Message(change.db, change.table, key, orjson.dumps(message) + b"\n")

    def ddl(self, change: DdlChange) -> Message:
        statement = _LEADING_COMMENTS.sub("", change.sql, count=1).lower()
        kind = next((name for pattern, name in _DDL_TYPES if pattern.match(statement)), "QUERY")
        table = change.table or ""
        message = {"id": file_seq(change.file) << 32 | change.pos, "database": change.db, "table": table,
                   "pkNames": None, "isDdl": True, "type": kind if table else "QUERY",
                   "es": change.timestamp * 1000, "ts": time.time_ns() // 1_000_000, "sql": change.sql,
                   "sqlType": None, "mysqlType": None, "data": None, "old": None, "gtid": change.gtid or ""}
        return Message(change.db, table, None, orjson.dumps(message) + b"\n", ddl=True)
