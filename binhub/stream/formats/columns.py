"""What the Debezium, Canal and Maxwell formats need to know about a table's columns, and the walker
that hands them row changes with it.

Each of those formats encodes a value by its column's SQL type (Debezium's days-since-epoch DATE,
Canal's ``mysqlType``/``sqlType``, Maxwell's SET as an array), which binhub's own JSON does not
carry: :func:`table_columns` describes every column of a TABLE_MAP layout once (cached on its
decoder), and :class:`RowWalker` yields each row change with them.

Column exclusion and masking (:mod:`binhub.stream.columns`) happen here, on the decoded change
before a format encodes it: an excluded column leaves the images and the key, a masked one keeps
its place with the mask's value (``Kind.MASKED``: a string or null, which every format passes as
it is). The rules of a table are looked up once per TABLE_MAP layout.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from binhub.binlog.changes import EventWalker, RowChange
from binhub.binlog.coltypes import ColumnType
from binhub.binlog.columns import ColumnInfo
from binhub.binlog.events import RowsEvent
from binhub.binlog.rows import TableDecoder
from binhub.sinks import Message
from binhub.stream.columns import ColumnRules, TableColumnRules
from binhub.stream.formats.base import OutputFormat, Walker

__all__ = ["Columns", "FormatColumn", "Kind", "RowWalker", "changed_before", "table_columns"]


class Kind(StrEnum):
    INT = "int"
    FLOAT = "float"
    DECIMAL = "decimal"
    DATE = "date"
    TIME = "time"
    DATETIME = "datetime"
    TIMESTAMP = "timestamp"
    YEAR = "year"
    TEXT = "text"
    BINARY = "binary"
    ENUM = "enum"
    SET = "set"
    BIT = "bit"
    JSON = "json"
    GEOMETRY = "geometry"
    VECTOR = "vector"
    NULL = "null"
    MASKED = "masked"  # a masked column: its value is the mask's (a string, or null)


_INT_NAMES = {ColumnType.TINY: "tinyint", ColumnType.SHORT: "smallint", ColumnType.INT24: "mediumint",
              ColumnType.LONG: "int", ColumnType.LONGLONG: "bigint"}
_KINDS = {ColumnType.FLOAT: Kind.FLOAT, ColumnType.DOUBLE: Kind.FLOAT, ColumnType.NEWDECIMAL: Kind.DECIMAL,
          ColumnType.DECIMAL: Kind.DECIMAL, ColumnType.DATE: Kind.DATE, ColumnType.NEWDATE: Kind.DATE,
          ColumnType.TIME: Kind.TIME, ColumnType.TIME2: Kind.TIME, ColumnType.DATETIME: Kind.DATETIME,
          ColumnType.DATETIME2: Kind.DATETIME, ColumnType.TIMESTAMP: Kind.TIMESTAMP,
          ColumnType.TIMESTAMP2: Kind.TIMESTAMP, ColumnType.YEAR: Kind.YEAR, ColumnType.ENUM: Kind.ENUM,
          ColumnType.SET: Kind.SET, ColumnType.BIT: Kind.BIT, ColumnType.JSON: Kind.JSON,
          ColumnType.GEOMETRY: Kind.GEOMETRY, ColumnType.VECTOR: Kind.VECTOR, ColumnType.NULL: Kind.NULL,
          ColumnType.BOOL: Kind.INT}
_FSP_TYPES = {ColumnType.TIME2, ColumnType.DATETIME2, ColumnType.TIMESTAMP2}
_BLOBS = {1: "tiny", 2: "", 3: "medium", 4: "long"}


@dataclass(frozen=True, slots=True)
class FormatColumn:
    name: str
    kind: Kind
    declared: str  # the type as SHOW CREATE TABLE writes it, lower case: "int", "varchar(255)", "decimal(10,3)"
    int_type: str  # for INT kinds: tinyint … bigint
    unsigned: bool
    precision: int
    scale: int
    fsp: int  # fractional seconds digits of TIME/DATETIME/TIMESTAMP
    bits: int  # BIT(n)
    nullable: bool


Columns = dict[str, "FormatColumn"]


def table_columns(decoder: TableDecoder) -> Columns:
    """The columns of a TABLE_MAP layout by name, as the formats see them (made once per layout)."""
    found: Columns | None = decoder.format_plans.get("columns")
    if found is None:
        found = {spec.name: _column(spec.name, spec.type, spec.meta, spec.info) for spec in decoder.specs}
        decoder.format_plans["columns"] = found
    return found


def _column(name: str, code: int, meta: int, info: ColumnInfo) -> FormatColumn:
    declared = (info.sql_type or "").lower()
    int_type, precision, scale, fsp, bits = "", 0, 0, 0, 0
    if code in _INT_NAMES:
        kind, int_type = Kind.INT, _INT_NAMES[ColumnType(code)]
        if declared.startswith("tinyint(1)") or declared.startswith("bool"):
            int_type = "tinyint"
    elif declared.startswith("json"):
        kind = Kind.JSON  # MariaDB's JSON is LONGTEXT in the binlog
    elif code in _KINDS:
        kind = _KINDS[ColumnType(code)]
    elif info.charset == "binary":
        kind = Kind.BINARY
    else:
        kind = Kind.TEXT
    if code == ColumnType.NEWDECIMAL:
        precision, scale = meta >> 8, meta & 0xFF
    elif code == ColumnType.DECIMAL and "," in declared:
        precision, scale = (int(x) for x in declared.split("(", 1)[1].split(")")[0].split(","))
    if code in _FSP_TYPES:
        fsp = meta
    elif kind in (Kind.TIME, Kind.DATETIME, Kind.TIMESTAMP) and "(" in declared:
        fsp = int(declared.split("(", 1)[1].split(")")[0] or 0)
    if code == ColumnType.BIT:
        bits = (meta >> 8) * 8 + (meta & 0xFF)
    if not declared:
        declared = _declared(code, kind, int_type, info, precision, scale, fsp, bits, meta)
    return FormatColumn(name, kind, declared, int_type, bool(info.unsigned), precision, scale, fsp, bits,
                        bool(info.nullable))


def _declared(code: int, kind: Kind, int_type: str, info: ColumnInfo, precision: int, scale: int, fsp: int, bits: int,
              meta: int) -> str:
    """The column type from the TABLE_MAP alone (no schema: lengths of text are unknown)."""
    if kind == Kind.INT:
        return int_type + (" unsigned" if info.unsigned else "")
    if kind == Kind.DECIMAL:
        return f"decimal({precision},{scale})" + (" unsigned" if info.unsigned else "")
    if kind in (Kind.TIME, Kind.DATETIME, Kind.TIMESTAMP):
        return kind.value + (f"({fsp})" if fsp else "")
    if kind == Kind.BIT:
        return f"bit({bits})"
    if kind in (Kind.ENUM, Kind.SET):
        labels: tuple[str, ...] | None = info.enum_values if kind == Kind.ENUM else info.set_values
        return kind.value + ("(" + ",".join("'" + v.replace("'", "''") + "'" for v in labels) + ")" if labels else "")
    if kind == Kind.FLOAT:
        return "float" if code == ColumnType.FLOAT else "double"
    if code in (ColumnType.BLOB, ColumnType.TINY_BLOB, ColumnType.MEDIUM_BLOB, ColumnType.LONG_BLOB):
        return _BLOBS.get(meta, "") + ("blob" if kind == Kind.BINARY else "text")
    if code == ColumnType.STRING:
        return "binary" if kind == Kind.BINARY else "char"
    if code in (ColumnType.VARCHAR, ColumnType.VAR_STRING):
        return "varbinary" if kind == Kind.BINARY else "varchar"
    return kind.value


def changed_before(change: RowChange) -> dict[str, Any]:
    """An update's previous values of the columns it changed (Canal's and Maxwell's ``old``)."""
    after = change.after or {}
    return {k: v for k, v in (change.before or {}).items() if k in after and after[k] != v}


Rows = Callable[[RowChange, Columns, int, int], Iterator[Message]]


class RowWalker(EventWalker[Message]):
    """Row changes with their columns, each handed to ``encode(change, columns, row, server_id)``
    (``row``: the change's index within its rows event), with the column rules applied."""

    def __init__(self, file: str, encode: Rows, rules: ColumnRules | None = None, **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self._encode = encode
        self._rules = rules

    def _plan(self, decoder: TableDecoder) -> tuple[Columns, TableColumnRules | None]:
        """The layout's columns as the format sees them, and its table's column rules (made once)."""
        plan: tuple[Columns, TableColumnRules | None] | None = decoder.format_plans.get("masked")
        if plan is None:
            columns = table_columns(decoder)
            rules = self._rules.for_table(decoder.table_map.db, decoder.table_map.table) if self._rules else None
            if rules is not None:
                columns = {name: column if rules.action(name) in (None, "exclude") else
                           replace(column, kind=Kind.MASKED) for name, column in columns.items()}
            plan = decoder.format_plans["masked"] = (columns, rules)
        return plan

    def _rows(self, event: RowsEvent, offset: int) -> Iterator[Message]:
        decoder = self._table_for(event, offset)
        columns, rules = self._plan(decoder)
        server_id = event.header.server_id
        for row, change in enumerate(self.row_changes(decoder, event, offset)):
            if rules is not None:
                change.before, change.after = rules.image(change.before), rules.image(change.after)
                change.primary_key = rules.key(change.primary_key)
            yield from self._encode(change, columns, row, server_id)


class RowFormat(OutputFormat):
    """A format that encodes each decoded row change in Python (Debezium, Canal, Maxwell)."""

    def __init__(self, *, stream_name: str, keyed: bool, transaction_metadata: bool = False) -> None:
        super().__init__(stream_name=stream_name, keyed=keyed, transaction_metadata=transaction_metadata)
        self._rules: ColumnRules | None = None

    def take_column_rules(self, rules: ColumnRules) -> bool:
        self._rules = rules if rules else None
        return True

    def walker(self, file: str, *, schemas: Callable[[str, str], Any],
               include: Callable[[str, str], bool]) -> Walker:
        return RowWalker(file, self._encode, self._rules, schemas=schemas, include=include)

    @abstractmethod
    def _encode(self, change: RowChange, by_name: Columns, row: int, server_id: int) -> Iterator[Message]:
        """The messages of one row change (``row``: its index within its rows event)."""
