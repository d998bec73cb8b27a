"""``--format maxwell``: Maxwell's daemon JSON, one message per row change.

``{"database", "table", "type", "ts", "xid", "commit", "position", "server_id", "thread_id",
"primary_key", "primary_key_columns", "data", "old"}``: ``type`` insert/update/delete, ``ts`` the
commit time in seconds, ``xid`` the transaction's XID, ``commit: true`` on its last row only (the
key is left out elsewhere, as Maxwell does), ``position`` the rows event's ``file:offset``, ``old``
(updates only) the changed columns' previous values. Values are typed JSON: integers, DECIMAL as a
number with its scale, floats, dates and times as MySQL prints them (fractions with the column's
digits), YEAR a number, BINARY/BLOB base64, ENUM its label, SET an array, BIT a number, JSON the
document itself, GEOMETRY its WKT as the server's ``ST_AsText`` prints it (:mod:`binhub.binlog.wkt`),
without the SRID, as Maxwell gives it.

The XID and the last row are only known at the transaction's end, so a transaction's rows are held
until then (as Maxwell does). A transaction whose rows pass ``HOLD_BYTES`` or ``HOLD_ROWS`` is
released as it goes:
those rows carry ``"xid": null`` and ``"xoffset"`` (their index in the transaction, Maxwell's
``output_xoffset``), so memory stays bounded.

DDL: ``{"type": "table-create"|"table-alter"|"table-drop"|"database-create"|"database-alter"|
"database-drop", "database", "table", "sql", "position", "ts"}`` (binhub adds "table-truncate" and,
for other statements, "ddl"); a database-create/-alter carries the database's ``charset`` (the
statement's, else the server default the QUERY event names); a table-create carries ``def``, a
table-alter (and a rename) ``old``
and ``def``: the table before and after, as Maxwell writes its definitions (:func:`table_def`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import orjson

from binhub.binlog.changes import RowChange
from binhub.binlog.column_values import Geometry
from binhub.binlog.columns import ColumnInfo
from binhub.binlog.json_form import json_default
from binhub.binlog.wkt import wkt
from binhub.schema import TableDef
from binhub.sinks import Message
from binhub.stream.formats.base import DdlChange
from binhub.stream.formats.columns import Columns, FormatColumn, Kind, RowFormat, changed_before

__all__ = ["HOLD_BYTES", "MaxwellFormat", "maxwell_value", "table_def"]

HOLD_BYTES = 16 << 20  # rows of one transaction held for its XID; past this (or HOLD_ROWS) they go out without it
HOLD_ROWS = 20_000

_DDL_TYPES = [
    (re.compile(r"create\s+(?:or\s+replace\s+)?(?:temporary\s+)?table\b"), "table-create"),
    (re.compile(r"drop\s+(?:temporary\s+)?table\b"), "table-drop"),
    (re.compile(r"(?:alter\s+(?:online\s+|ignore\s+)*table|rename\s+tables?|create\s+(?:unique\s+|fulltext\s+"
                r"|spatial\s+)?index|drop\s+index)\b"), "table-alter"),
    (re.compile(r"truncate\b"), "table-truncate"),
    (re.compile(r"create\s+(?:database|schema)\b"), "database-create"),
    (re.compile(r"alter\s+(?:database|schema)\b"), "database-alter"),
    (re.compile(r"drop\s+(?:database|schema)\b"), "database-drop"),
]
_LEADING_COMMENTS = re.compile(r"^(?:\s+|/\*.*?\*/|#[^\n]*\n|--[^\n]*\n)*", re.S)


_INTS = frozenset({"tinyint", "smallint", "mediumint", "int", "bigint"})
_WITH_FSP = frozenset({"time", "datetime", "timestamp"})


def _column_def(column: ColumnInfo) -> dict[str, Any]:
    """One column as Maxwell's schema JSON has it: ``type`` and ``name``, then what its kind of
    column adds (signed; charset; enum-values; column-length of the fraction; precision and scale)."""
    sql_type = column.sql_type or ""
    base, _, rest = sql_type.partition("(")
    base = base.split(" ")[0]
    params = [int(p) for p in rest.partition(")")[0].split(",") if p.strip().isdigit()]
    out: dict[str, Any] = {"type": base, "name": column.name}
    if base in _INTS:
        out["signed"] = not column.unsigned
    elif base in ("enum", "set"):
        out["charset"] = column.charset
        out["enum-values"] = list((column.enum_values if base == "enum" else column.set_values) or ())
    elif base in _WITH_FSP:
        out["column-length"] = params[0] if params else 0
    elif base == "decimal":
        out["precision"], out["scale"] = (params + [10, 0][len(params):])[:2]
    elif column.charset is not None and column.charset != "binary":
        out["charset"] = column.charset
    return out


def table_def(table: TableDef) -> dict[str, Any]:
    """A table as Maxwell's DDL events carry it (``def``, ``old``)."""
    return {"database": table.name.db, "charset": table.default.charset, "table": table.name.table,
            "primary-key": list(table.primary_key), "columns": [_column_def(c) for c in table.columns]}


def maxwell_value(column: FormatColumn, value: Any) -> Any:
    """One column value (binhub form) as Maxwell writes it (bytes are base64 via json_default)."""
    if value is None:
        return None
    kind = column.kind
    if kind == Kind.DECIMAL:
        return orjson.Fragment(value.encode("ascii"))
    if kind == Kind.SET and isinstance(value, str):
        return value.split(",") if value else []
    if isinstance(value, Geometry):
        return wkt(value.wkb)  # as Maxwell: the WKT, without the SRID
    return value


class _Held:
    """A row message waiting for its transaction's end."""

    __slots__ = ("db", "fields", "key", "table")

    def __init__(self, db: str, table: str, key: bytes | None, fields: dict[str, Any]) -> None:
        self.db, self.table, self.key, self.fields = db, table, key, fields


class MaxwellFormat(RowFormat):
    name = "maxwell"
    observes = True
    describes_tables = True

    def __init__(self, *, stream_name: str, keyed: bool, transaction_metadata: bool = False) -> None:
        super().__init__(stream_name=stream_name, keyed=keyed, transaction_metadata=transaction_metadata)
        self._held: list[_Held] = []
        self._held_bytes = 0
        self._released = 0  # rows of the current transaction already released (without xid)

    def _encode(self, change: RowChange, by_name: Columns, row: int, server_id: int) -> Iterator[Message]:
        image = change.after if change.after is not None else change.before
        assert image is not None
        data = {k: maxwell_value(by_name[k], v) for k, v in image.items()}
        pk = change.primary_key or ()
        fields: dict[str, Any] = {
            "database": change.db, "table": change.table, "type": change.op, "ts": change.commit_us // 1_000_000,
            "xid": None, "position": f"{change.file}:{change.pos}", "server_id": server_id,
            "thread_id": self.context.thread_id, "primary_key": [data.get(k) for k in pk],
            "primary_key_columns": list(pk), "data": data}
        if change.op == "update":
            fields["old"] = {k: maxwell_value(by_name[k], v) for k, v in changed_before(change).items()}
        key = None
        if self.keyed:
            key_fields: dict[str, Any] = {"database": change.db, "table": change.table}
            key_fields.update((f"pk.{k}", data.get(k)) for k in (pk or data))
            key = orjson.dumps(key_fields, default=json_default)
        self._held.append(_Held(change.db, change.table, key, fields))
        self._held_bytes += 200 + sum(len(v) for v in image.values() if isinstance(v, str | bytes))
        if self._held_bytes > HOLD_BYTES or len(self._held) >= HOLD_ROWS:
            yield from self._release(final=False)

    def _release(self, *, final: bool) -> Iterator[Message]:
        held, self._held, self._held_bytes = self._held, [], 0
        xid = self.context.xid if final and not self._released else None
        for i, row in enumerate(held):
            fields = row.fields
            fields["xid"] = xid
            if xid is None:
                fields["xoffset"] = self._released + i
            if final and i == len(held) - 1:
                # Maxwell's field order: commit follows xid.
                fields = {**{k: fields[k] for k in ("database", "table", "type", "ts", "xid")}, "commit": True,
                          **{k: v for k, v in fields.items() if k not in ("database", "table", "type", "ts", "xid")}}
            yield Message(row.db, row.table, row.key, orjson.dumps(fields, default=json_default) + b"\n")
        self._released = 0 if final else self._released + len(held)

    def transaction_end(self) -> list[Message]:
        messages = list(self._release(final=True))
        super().transaction_end()
        return messages

    def ddl(self, change: DdlChange) -> Message:
        statement = _LEADING_COMMENTS.sub("", change.sql, count=1).lower()
        kind = next((name for pattern, name in _DDL_TYPES if pattern.match(statement)), "ddl")
        fields: dict[str, Any] = {"type": kind, "database": change.db, "table": change.table}
        described = change.tables[0] if change.tables and kind in ("table-create", "table-alter") else None
        if described is not None and described.after is not None and described.after.known:
            if kind == "table-alter" and described.before is not None and described.before.known:
                fields["old"] = table_def(described.before)
            fields["def"] = table_def(described.after)
        if kind in ("database-create", "database-alter"):
            # Maxwell's ResolvedDatabaseCreate/Alter: the database's charset, from the statement or
            # else the server's default (here: the schema history's, from the QUERY event).
            fields["charset"] = change.database_charset
        fields.update(sql=change.sql, position=f"{change.file}:{change.pos}", ts=change.timestamp * 1000)
        return Message(change.db, change.table or "", None, orjson.dumps(fields) + b"\n", ddl=True)
