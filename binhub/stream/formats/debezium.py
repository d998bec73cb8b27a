"""``--format debezium``: the envelope of Debezium's MySQL connector, with its default value encodings.

Each row change is ``{"before", "after", "source", "transaction", "op", "ts_ms", "ts_us", "ts_ns"}``
(the ``payload`` of Kafka Connect's JsonConverter with ``schemas.enable=false``); ``op`` is ``c``,
``u`` or ``d``; ``source`` has the connector's fields (version, connector, name, ts_ms/us/ns,
snapshot, db, sequence, table, server_id, gtid, file, pos, row, thread, query), ``ts_*`` at the top
are when binhub wrote the message, ``source.ts_*`` when the transaction committed. For a keyed
sink (Kafka) each delete is followed by a tombstone (the key with a null value:
``tombstones.on.delete=true``).

With ``transaction_metadata`` (Debezium's ``provide.transaction.metadata=true``) each change carries
``"transaction": {"id", "total_order", "data_collection_order"}``, and each transaction with
changes is framed by ``{"status": "BEGIN"|"END", "id", "ts_ms", "event_count", "data_collections"}``
events on the topic ``<stream name>.transaction``, keyed ``{"id"}``. The id is the GTID (without
GTIDs: ``file:pos`` of the transaction's first change).

Values follow the connector's defaults: ``decimal.handling.mode=precise`` (DECIMAL as the base64
of its unscaled value, big-endian two's complement, as Kafka Connect's Decimal in JSON),
``time.precision.mode=adaptive_time_microseconds`` (DATE: days since the epoch; TIME: microseconds;
DATETIME(0-3): milliseconds and DATETIME(4-6): microseconds since the epoch; TIMESTAMP: an
ISO-8601 string in UTC with the column's fraction digits), ``bigint.unsigned.handling.mode=long``
(BIGINT UNSIGNED past 2^63 wraps as a Java long does), ``binary.handling.mode=bytes`` (base64),
BIT(1) a boolean and BIT(n) little-endian bytes, JSON as its text, SET as ``"a,c"``, GEOMETRY as
``{"wkb", "srid"}``; zero dates are null (the epoch when the column is NOT NULL).

DDL goes out as Debezium's schema-change event: ``{"source", "ts_ms", "databaseName", "schemaName",
"ddl", "tableChanges"}`` keyed ``{"databaseName"}``, on the topic named after the stream (Debezium's
``topic.prefix``). ``tableChanges`` describes each table the statement created, altered (or renamed)
or dropped, from the schema history, as Debezium's MySQL connector does (:func:`table_change`).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import orjson

import binhub
from binhub.binlog.changes import RowChange
from binhub.binlog.column_values import Geometry, JsonNull
from binhub.binlog.columns import ColumnInfo
from binhub.binlog.json_form import json_default
from binhub.schema import TableDef
from binhub.sinks import Message
from binhub.stream.formats.base import DdlChange, DdlTable
from binhub.stream.formats.columns import Columns, FormatColumn, Kind, RowFormat

__all__ = ["DebeziumFormat", "debezium_value", "decimal_bytes", "table_change"]

_OPS = {"insert": "c", "update": "u", "delete": "d"}
_EPOCH = date(1970, 1, 1)
_VERSION = f"binhub-{binhub.__version__}"


def decimal_bytes(text: str) -> str:
    """A DECIMAL's text as Kafka Connect's Decimal in JSON: base64 of the unscaled value's
    minimal big-endian two's complement (Java's ``BigInteger.toByteArray``)."""
    unscaled = int(text.replace(".", ""))
    bits = unscaled.bit_length() if unscaled >= 0 else (~unscaled).bit_length()
    return base64.b64encode(unscaled.to_bytes(bits // 8 + 1, "big", signed=True)).decode("ascii")


def _time_us(text: str) -> int:
    negative = text.startswith("-")
    clock, _, frac = text.lstrip("-").partition(".")
    h, m, s = (int(x) for x in clock.split(":"))
    us = ((h * 60 + m) * 60 + s) * 1_000_000 + int((frac + "000000")[:6])
    return -us if negative else us


def _datetime_us(text: str) -> int | None:
    """Microseconds since the epoch of a DATETIME's text read as UTC (None: a zero or invalid date)."""
    day, _, clock = text.partition(" ")
    if day[:4] == "0000" or "-00" in day:
        return None
    clock, _, frac = clock.partition(".")
    moment = datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000 + int((frac + "000000")[:6])


# java.sql.Types of each MySQL type, as the connector's DDL parser resolves them (MySqlAntlrDdlParser).
_JDBC_TYPES = {
    "bit": -7, "tinyint": 5, "smallint": 5, "mediumint": 4, "int": 4, "bigint": -5, "float": 6, "double": 8,
    "real": 7, "decimal": 3, "numeric": 2, "date": 91, "time": 92, "datetime": 93, "timestamp": 2014, "year": 4,
    "char": 1, "varchar": 12, "tinytext": 12, "text": 12, "mediumtext": 12, "longtext": 12, "binary": -2,
    "varbinary": -3, "tinyblob": 2004, "blob": 2004, "mediumblob": 2004, "longblob": 2004, "enum": 1, "set": 1,
    "bool": 16, "boolean": 16,
}
_OTHER = 1111  # JSON, the spatial types, VECTOR


def _column_change(column: ColumnInfo, position: int) -> dict[str, Any]:
    """One column as the connector's ``tableChanges`` describe it."""
    sql_type = column.sql_type or ""
    base, _, rest = sql_type.partition("(")
    base = base.split(" ")[0]
    params, _, suffix = rest.partition(")") if rest else ("", "", sql_type[len(base):])
    length = scale = None
    labels = column.enum_values if base == "enum" else column.set_values if base == "set" else None
    if labels is not None:
        # ENUM: its longest label; SET: every label and the commas between them.
        length = max(map(len, labels), default=0) if base == "enum" else sum(map(len, labels)) + len(labels) - 1
    elif params:
        numbers = [int(p) for p in params.split(",") if p.strip().isdigit()]
        length = numbers[0] if numbers else None
        scale = numbers[1] if len(numbers) > 1 else None
    name = " ".join([base.upper(), *(w.upper() for w in suffix.split() if w in ("unsigned", "zerofill"))])
    charset = column.charset if column.charset != "binary" else None
    return {"name": column.name, "jdbcType": _JDBC_TYPES.get(base, _OTHER), "nativeType": None, "typeName": name,
            "typeExpression": name, "charsetName": charset, "length": length, "scale": scale, "position": position,
            "optional": column.nullable, "defaultValueExpression": None, "autoIncremented": column.auto_increment,
            "generated": column.auto_increment or column.generated, "comment": None,
            "enumValues": list(labels) if labels is not None else None}


def table_change(kind: str, table: TableDef) -> dict[str, Any]:
    """One entry of a schema-change event's ``tableChanges``: ``{"type", "id", "table"}``."""
    return {"type": kind, "id": f'"{table.name.db}"."{table.name.table}"',
            "table": {"defaultCharsetName": table.default.charset,
                      "primaryKeyColumnNames": list(table.primary_key),
                      "columns": [_column_change(c, i) for i, c in enumerate(table.columns, 1)],
                      "comment": None, "attributes": []}}


def _table_changes(tables: tuple[DdlTable, ...]) -> list[dict[str, Any]]:
    out = []
    for t in tables:
        table = t.before if t.change == "DROP" else t.after
        if table is not None and table.known:  # a table the history cannot follow is not described
            out.append(table_change(t.change, table))
    return out


def debezium_value(column: FormatColumn, value: Any) -> Any:
    """One column value (binhub form) as Debezium's MySQL connector writes it by default."""
    if value is None:
        return None
    kind = column.kind
    if kind == Kind.INT:
        if column.int_type == "bigint" and value >= 1 << 63:
            return value - (1 << 64)
        return value
    if kind == Kind.DECIMAL:
        return decimal_bytes(value)
    if kind == Kind.DATE:
        if value[:4] == "0000" or "-00" in value:
            return None if column.nullable else 0
        return (date.fromisoformat(value) - _EPOCH).days
    if kind == Kind.TIME:
        return _time_us(value)
    if kind == Kind.DATETIME:
        us = _datetime_us(value)
        if us is None:
            return None if column.nullable else 0
        return us // 1000 if column.fsp <= 3 else us
    if kind == Kind.TIMESTAMP:
        if value.startswith("0000"):
            return None if column.nullable else "1970-01-01T00:00:00Z"
        return value.replace(" ", "T") + "Z"
    if kind == Kind.BIT:
        if column.bits == 1:
            return bool(value)
        return base64.b64encode(value.to_bytes((column.bits + 7) // 8, "little")).decode("ascii")
    if kind == Kind.JSON:
        if isinstance(value, str):  # MariaDB's JSON: the text as written
            return value
        return "null" if isinstance(value, JsonNull) else orjson.dumps(value, default=json_default).decode()
    if kind == Kind.GEOMETRY and isinstance(value, Geometry):
        return {"wkb": base64.b64encode(value.wkb).decode("ascii"), "srid": value.srid}
    return value  # text, float, YEAR, ENUM label, SET text, VECTOR; bytes go out as base64


class DebeziumFormat(RowFormat):
    name = "debezium"
    observes = True
    describes_tables = True

    def _source(self, db: str, table: str | None, commit_us: int, server_id: int, gtid: str | None, file: str,
                pos: int, row: int) -> dict[str, Any]:
        return {"version": _VERSION, "connector": "mysql", "name": self.stream_name,
                "ts_ms": commit_us // 1000, "ts_us": commit_us, "ts_ns": commit_us * 1000, "snapshot": False,
                "db": db, "sequence": None, "table": table, "server_id": server_id, "gtid": gtid, "file": file,
                "pos": pos, "row": row, "thread": self.context.thread_id, "query": None}

    def _encode(self, change: RowChange, by_name: Columns, row: int, server_id: int) -> Iterator[Message]:
        before = None if change.before is None else {k: debezium_value(by_name[k], v) for k, v in change.before.items()}
        after = None if change.after is None else {k: debezium_value(by_name[k], v) for k, v in change.after.items()}
        gtid = change.gtid
        now_ns = time.time_ns()
        envelope = {
            "before": before, "after": after,
            "source": self._source(change.db, change.table, change.commit_us, server_id, gtid, change.file,
                                   change.pos, row),
            "op": _OPS[change.op], "ts_ms": now_ns // 1_000_000, "ts_us": now_ns // 1000, "ts_ns": now_ns}
        if self.transaction_metadata:
            context = self.context
            if context.id is None:
                context.id = gtid if gtid is not None else f"{change.file}:{change.pos}"
                context.commit_us = change.commit_us
                yield self._transaction_event("BEGIN", now_ns)
            total, in_table = context.next_row(change.db, change.table)
            envelope["transaction"] = {"id": context.id, "total_order": total, "data_collection_order": in_table}
        key = None
        if self.keyed:
            image = after if after is not None else before
            pk = change.primary_key
            if image is not None and pk is not None:
                key = orjson.dumps({k: image.get(k) for k in pk} if pk else image, default=json_default)
        yield Message(change.db, change.table, key, orjson.dumps(envelope, default=json_default) + b"\n")
        if change.op == "delete" and self.keyed:
            yield Message(change.db, change.table, key, None)  # the tombstone log compaction needs

    def _transaction_event(self, status: str, now_ns: int) -> Message:
        """Debezium's BEGIN or END event of the current transaction (on ``<name>.transaction``)."""
        context = self.context
        event: dict[str, Any] = {"status": status, "id": context.id, "ts_ms": context.commit_us // 1000,
                                 "event_count": None, "data_collections": None}
        if status == "END":
            event["event_count"] = context.rows
            event["data_collections"] = [{"data_collection": f"{db}.{table}", "event_count": n}
                                         for (db, table), n in context.table_rows.items()]
        key = orjson.dumps({"id": context.id})
        return Message("", "", key, orjson.dumps(event) + b"\n", topic=f"{self.stream_name}.transaction")

    def transaction_end(self) -> list[Message]:
        end = [self._transaction_event("END", time.time_ns())] if self.context.id is not None else []
        super().transaction_end()
        return end

    def ddl(self, change: DdlChange) -> Message:
        commit_us = change.timestamp * 1_000_000
        event = {"source": self._source(change.db, change.table, commit_us, change.server_id, change.gtid,
                                        change.file, change.pos, 0),
                 "ts_ms": time.time_ns() // 1_000_000, "databaseName": change.db, "schemaName": None,
                 "ddl": change.sql, "tableChanges": _table_changes(change.tables)}
        key = orjson.dumps({"databaseName": change.db})
        return Message(change.db, change.table or "", key, orjson.dumps(event) + b"\n", ddl=True,
                       topic=self.stream_name)
