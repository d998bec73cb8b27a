"""``--format debezium``: the envelope of Debezium's MySQL connector, with its default value encodings.

Each row change is ``{"before", "after", "source", "transaction", "op", "ts_ms", "ts_us", "ts_ns"}``
(the ``payload`` of Kafka Connect's JsonConverter with ``schemas.enable=false``); ``op`` is ``c``,
``u`` or ``d``; ``source`` has the connector's fields (version, connector, name, ts_ms/us/ns,
snapshot, db, sequence, table, server_id, gtid, file, pos, row, thread, query), ``ts_*`` at the top
are when binhub wrote the message, ``source.ts_*`` when the transaction committed. ``transaction``
is the block ``provide.transaction.metadata=true`` adds: ``{"id", "total_order",
"data_collection_order"}``. For a keyed sink (Kafka) each delete is followed by a tombstone (the
key with a null value: ``tombstones.on.delete=true``).

Values follow the connector's defaults: ``decimal.handling.mode=precise`` (DECIMAL as the base64
of its unscaled value, big-endian two's complement, as Kafka Connect's Decimal in JSON),
``time.precision.mode=adaptive_time_microseconds`` (DATE: days since the epoch; TIME: microseconds;
DATETIME(0-3): milliseconds and DATETIME(4-6): microseconds since the epoch; TIMESTAMP: an
ISO-8601 string in UTC with the column's fraction digits), ``bigint.unsigned.handling.mode=long``
(BIGINT UNSIGNED past 2^63 wraps as a Java long does), ``binary.handling.mode=bytes`` (base64),
BIT(1) a boolean and BIT(n) little-endian bytes, JSON as its text, SET as ``"a,c"``, GEOMETRY as
``{"wkb", "srid"}``; zero dates are null (the epoch when the column is NOT NULL).

DDL goes out as Debezium's schema-change event: ``{"source", "ts_ms", "databaseName", "schemaName",
"ddl", "tableChanges"}`` keyed ``{"databaseName"}``; binhub leaves ``tableChanges`` empty.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import orjson

import binhub
from binhub.binlog.changes import RowChange
from binhub.binlog.column_values import Geometry, JsonNull
from binhub.binlog.json_form import json_default
from binhub.sinks import Message
from binhub.stream.formats.base import DdlChange
from binhub.stream.formats.columns import Columns, FormatColumn, Kind, RowFormat

__all__ = ["DebeziumFormat", "decimal_bytes", "debezium_value"]

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


def _datetime_us(text: str) -> int | None:
    """Microseconds since the epoch of a DATETIME's text read as UTC (None: a zero or invalid date)."""
    day, _, clock = text.partition(" ")
    if day[:4] == "0000" or "-00" in day:
        return None
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
            if value[:4] == "0000" or "-00" in value:
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
        return lambda value: zero_timestamp if value.startswith("0000") else value.replace(" ", "T") + "Z"
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


def debezium_value(column: FormatColumn, value: Any) -> Any:
    """One column value (binhub form) as Debezium's MySQL connector writes it by default."""
    if value is None:
        return None
    encode = value_encoder(column)
    return value if encode is None else encode(value)


def _encoders(columns: Columns) -> dict[str, Encoder | None]:
    return {name: value_encoder(column) for name, column in columns.items()}


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

    def __init__(self, *, stream_name: str, keyed: bool) -> None:
        super().__init__(stream_name=stream_name, keyed=keyed)
        # Each layout's columns (by identity: table_columns makes them once per layout), with how
        # their values are encoded.
        self._plans: dict[int, tuple[Columns, dict[str, Encoder | None]]] = {}

    def _source(self, db: str, table: str | None, commit_us: int, server_id: int, gtid: str | None, file: str,
                pos: int, row: int) -> dict[str, Any]:
        return {"version": _VERSION, "connector": "mysql", "name": self.stream_name,
                "ts_ms": commit_us // 1000, "ts_us": commit_us, "ts_ns": commit_us * 1000, "snapshot": False,
                "db": db, "sequence": None, "table": table, "server_id": server_id, "gtid": gtid, "file": file,
                "pos": pos, "row": row, "thread": self.context.thread_id, "query": None}

    def _encode(self, change: RowChange, by_name: Columns, row: int, server_id: int) -> Iterator[Message]:
        encoders = self._plans.get(id(by_name))
        if encoders is None or encoders[0] is not by_name:  # once per table layout
            encoders = self._plans[id(by_name)] = (by_name, _encoders(by_name))
        before = _image(change.before, encoders[1])
        after = _image(change.after, encoders[1])
        total, in_table = self.context.next_row(change.db, change.table)
        gtid = change.gtid
        now_ns = time.time_ns()
        envelope = {
            "before": before, "after": after,
            "source": self._source(change.db, change.table, change.commit_us, server_id, gtid, change.file,
                                   change.pos, row),
            "transaction": {"id": gtid if gtid is not None else f"{change.file}:{change.pos}",
                            "total_order": total, "data_collection_order": in_table},
            "op": _OPS[change.op], "ts_ms": now_ns // 1_000_000, "ts_us": now_ns // 1000, "ts_ns": now_ns}
        key = None
        if self.keyed:
            image = after if after is not None else before
            pk = change.primary_key
            if image is not None and pk is not None:
                key = orjson.dumps({k: image.get(k) for k in pk} if pk else image, default=json_default)
        yield Message(change.db, change.table, key, orjson.dumps(envelope, default=json_default) + b"\n")
        if change.op == "delete" and self.keyed:
            yield Message(change.db, change.table, key, None)  # the tombstone log compaction needs

    def ddl(self, change: DdlChange) -> Message:
        commit_us = change.timestamp * 1_000_000
        event = {"source": self._source(change.db, change.table, commit_us, change.server_id, change.gtid,
                                        change.file, change.pos, 0),
                 "ts_ms": time.time_ns() // 1_000_000, "databaseName": change.db, "schemaName": None,
                 "ddl": change.sql, "tableChanges": []}
        key = orjson.dumps({"databaseName": change.db})
        return Message(change.db, change.table or "", key, orjson.dumps(event) + b"\n", ddl=True)
