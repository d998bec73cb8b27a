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

Where Debezium's fields cannot carry what binhub read, ``source`` gets one extension key,
``"binhub"`` (absent otherwise; consumers that do not know it ignore it): a row change with a date
the encodings lose (a zero date, a zero month or day, the year 0) carries ``{"dates": {"before"|
"after": {column: "0000-00-00"}}}``, the text binhub read; a schema-change event carries
``{"session": {"db", "sql_mode", "collation_connection", "collation_server", "time_zone"}}``, the
primary's session from its QUERY event. ``binhub apply --format debezium`` restores both.

DDL goes out as Debezium's schema-change event: ``{"source", "ts_ms", "databaseName", "schemaName",
"ddl", "tableChanges"}`` keyed ``{"databaseName"}``, on the topic named after the stream (Debezium's
``topic.prefix``). ``tableChanges`` describes each table the statement created, altered (or renamed)
or dropped, from the schema history, as Debezium's MySQL connector does (:func:`table_change`).
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable, Iterator
from datetime import date
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

__all__ = ["DebeziumFormat", "debezium_value", "decimal_bytes", "default_expression", "table_change",
           "unrepresentable_date"]

_OPS = {"insert": "c", "update": "u", "delete": "d"}
_EPOCH_DAY = date(1970, 1, 1).toordinal()
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


def unrepresentable_date(text: str) -> bool:
    """A DATE/DATETIME/TIMESTAMP text Debezium's encodings cannot carry: a zero date, a zero month or
    day (``ALLOW_INVALID_DATES``, no ``NO_ZERO_IN_DATE``), or the year 0."""
    return text[:4] == "0000" or "-00" in text[:10]


def _datetime_us(text: str) -> int | None:
    """Microseconds since the epoch of a DATETIME's text read as UTC (None: a zero or invalid date)."""
    if unrepresentable_date(text):
        return None
    day, _, clock = text.partition(" ")
    # date() checks the day as datetime.fromisoformat would; the rest is arithmetic on the text
    # binhub wrote ("YYYY-MM-DD HH:MM:SS[.ffffff]"), once per value.
    days = date(int(day[0:4]), int(day[5:7]), int(day[8:10])).toordinal() - _EPOCH_DAY
    seconds = days * 86_400 + int(clock[0:2]) * 3600 + int(clock[3:5]) * 60 + int(clock[6:8])
    frac = clock[9:15]
    return seconds * 1_000_000 + (int(frac + "000000"[len(frac):]) if frac else 0)


Encoder = Callable[[Any], Any]


def value_encoder(column: FormatColumn) -> Encoder | None:
    """How a column's values (binhub form, never None) become Debezium's; None: they go out as they are
    (text, float, YEAR, ENUM label, SET text, VECTOR; bytes as base64). Made once per column of a layout."""
    kind = column.kind
    if kind == Kind.INT:
        if column.int_type == "bigint" and column.unsigned:
            return lambda value: value - (1 << 64) if value >= 1 << 63 else value
        return None
    if kind == Kind.DECIMAL:
        return decimal_bytes
    if kind == Kind.DATE:
        zero_date = None if column.nullable else 0

        def days(value: str) -> int | None:
            if unrepresentable_date(value):
                return zero_date
            return date.fromisoformat(value).toordinal() - _EPOCH_DAY
        return days
    if kind == Kind.TIME:
        return _time_us
    if kind == Kind.DATETIME:
        zero_datetime = None if column.nullable else 0
        millis = column.fsp <= 3

        def since_epoch(value: str) -> int | None:
            us = _datetime_us(value)
            if us is None:
                return zero_datetime
            return us // 1000 if millis else us
        return since_epoch
    if kind == Kind.TIMESTAMP:
        zero_timestamp = None if column.nullable else "1970-01-01T00:00:00Z"
        return lambda value: zero_timestamp if unrepresentable_date(value) else value.replace(" ", "T") + "Z"
    if kind == Kind.BIT:
        if column.bits == 1:
            return bool
        width = (column.bits + 7) // 8
        return lambda value: base64.b64encode(value.to_bytes(width, "little")).decode("ascii")
    if kind == Kind.JSON:
        return _json_text
    if kind == Kind.GEOMETRY:
        return _geometry
    return None


def _json_text(value: Any) -> Any:
    if isinstance(value, str):  # MariaDB's JSON: the text as written
        return value
    return "null" if isinstance(value, JsonNull) else orjson.dumps(value, default=json_default).decode()


def _geometry(value: Any) -> Any:
    if isinstance(value, Geometry):
        return {"wkb": base64.b64encode(value.wkb).decode("ascii"), "srid": value.srid}
    return value


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
    has_default, default = default_expression(column.default)
    return {"name": column.name, "jdbcType": _JDBC_TYPES.get(base, _OTHER), "nativeType": None, "typeName": name,
            "typeExpression": name, "charsetName": charset, "length": length, "scale": scale, "position": position,
            "optional": column.nullable, "defaultValueExpression": default, "hasDefaultValue": has_default,
            "autoIncremented": column.auto_increment, "generated": column.auto_increment or column.generated,
            "comment": column.comment, "enumValues": list(labels) if labels is not None else None}


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[+-]?\d+)?$")


def default_expression(default: str | None) -> tuple[bool, str | None]:
    """``(hasDefaultValue, defaultValueExpression)`` of a column whose default the history spells
    ``default`` (:mod:`binhub.schema.defaults`), as the connector's DDL parser sets them: a literal
    without its quotes (``b'101'`` as ``101``), CURRENT_TIMESTAMP as ``1970-01-01 00:00:00``, any
    other expression as a default without a value; NULL (written or implied) sets neither."""
    if default is None or default == "NULL":
        return False, None
    if default.startswith("current_timestamp("):
        return True, "1970-01-01 00:00:00"
    if default.startswith("b'"):
        return True, default[2:-1]
    if default.startswith("'"):
        return True, default[1:-1].replace("''", "'").replace("\\\\", "\\")
    if _NUMBER.match(default):
        return True, default
    return True, None  # an expression: curdate(), (1 + 2)


def table_change(kind: str, table: TableDef) -> dict[str, Any]:
    """One entry of a schema-change event's ``tableChanges``: ``{"type", "id", "table"}``."""
    return {"type": kind, "id": f'"{table.name.db}"."{table.name.table}"',
            "table": {"defaultCharsetName": table.default.charset,
                      "primaryKeyColumnNames": list(table.primary_key),
                      "columns": [_column_change(c, i) for i, c in enumerate(table.columns, 1)],
                      "comment": table.comment, "attributes": []}}


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
    encode = value_encoder(column)
    return value if encode is None else encode(value)


def _encoders(columns: Columns) -> dict[str, Encoder | None]:
    return {name: value_encoder(column) for name, column in columns.items()}


_DATES = frozenset({Kind.DATE, Kind.DATETIME, Kind.TIMESTAMP})


def _lost_dates(image: dict[str, Any] | None, dates: tuple[str, ...]) -> dict[str, str] | None:
    """The image's dates the encodings turn into null or the epoch, as binhub read them."""
    if image is None or not dates:
        return None
    lost = None
    for name in dates:
        value = image.get(name)
        # unrepresentable_date, inlined: this runs for every date of every row image
        if value is not None and (value[:4] == "0000" or "-00" in value[:10]):
            if lost is None:
                lost = {}
            lost[name] = value
    return lost


def _image(image: dict[str, Any] | None, encoders: dict[str, Encoder | None]) -> dict[str, Any] | None:
    if image is None:
        return None
    out = {}
    for name, value in image.items():
        encode = encoders[name]
        out[name] = value if value is None or encode is None else encode(value)
    return out


class DebeziumFormat(RowFormat):
    name = "debezium"
    observes = True
    describes_tables = True

    def __init__(self, *, stream_name: str, keyed: bool, transaction_metadata: bool = False) -> None:
        super().__init__(stream_name=stream_name, keyed=keyed, transaction_metadata=transaction_metadata)
        # Each layout's columns (by identity: table_columns makes them once per layout), with how
        # their values are encoded and which hold dates.
        self._plans: dict[int, tuple[Columns, dict[str, Encoder | None], tuple[str, ...]]] = {}

    def _source(self, db: str, table: str | None, commit_us: int, server_id: int, gtid: str | None, file: str,
                pos: int, row: int) -> dict[str, Any]:
        return {"version": _VERSION, "connector": "mysql", "name": self.stream_name,
                "ts_ms": commit_us // 1000, "ts_us": commit_us, "ts_ns": commit_us * 1000, "snapshot": False,
                "db": db, "sequence": None, "table": table, "server_id": server_id, "gtid": gtid, "file": file,
                "pos": pos, "row": row, "thread": self.context.thread_id, "query": None}

    def _encode(self, change: RowChange, by_name: Columns, row: int, server_id: int) -> Iterator[Message]:
        plan = self._plans.get(id(by_name))
        if plan is None or plan[0] is not by_name:  # once per table layout
            dates = tuple(name for name, column in by_name.items() if column.kind in _DATES)
            plan = self._plans[id(by_name)] = (by_name, _encoders(by_name), dates)
        before = _image(change.before, plan[1])
        after = _image(change.after, plan[1])
        gtid = change.gtid
        now_ns = time.time_ns()
        source = self._source(change.db, change.table, change.commit_us, server_id, gtid, change.file, change.pos, row)
        lost_before, lost_after = _lost_dates(change.before, plan[2]), _lost_dates(change.after, plan[2])
        if lost_before or lost_after:
            # What the encodings cannot carry, for binhub apply to restore: {"before"|"after": {column: text}}.
            source["binhub"] = {"dates": {k: v for k, v in (("before", lost_before), ("after", lost_after)) if v}}
        envelope = {
            "before": before, "after": after, "source": source,
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
        source = self._source(change.db, change.table, commit_us, change.server_id, change.gtid, change.file,
                              change.pos, 0)
        if change.session is not None:
            # The session the statement ran in on the primary (default database, sql_mode names,
            # collations, time zone), for binhub apply to run it the same way.
            source["binhub"] = {"session": change.session}
        event = {"source": source,
                 "ts_ms": time.time_ns() // 1_000_000, "databaseName": change.db, "schemaName": None,
                 "ddl": change.sql, "tableChanges": _table_changes(change.tables)}
        key = orjson.dumps({"databaseName": change.db})
        return Message(change.db, change.table or "", key, orjson.dumps(event) + b"\n", ddl=True,
                       topic=self.stream_name)
