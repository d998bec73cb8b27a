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
from collections.abc import Iterator
from datetime import UTC, date, datetime
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

    def _source(self, db: str, table: str | None, commit_us: int, server_id: int, gtid: str | None, file: str,
                pos: int, row: int) -> dict[str, Any]:
        return {"version": _VERSION, "connector": "mysql", "name": self.stream_name,
                "ts_ms": commit_us // 1000, "ts_us": commit_us, "ts_ns": commit_us * 1000, "snapshot": False,
                "db": db, "sequence": None, "table": table, "server_id": server_id, "gtid": gtid, "file": file,
                "pos": pos, "row": row, "thread": self.context.thread_id, "query": None}

    def _encode(self, change: RowChange, by_name: Columns, row: int, server_id: int) -> Iterator[Message]:
        before = None if change.before is None else {k: debezium_value(by_name[k], v) for k, v in change.before.items()}
        after = None if change.after is None else {k: debezium_value(by_name[k], v) for k, v in change.after.items()}
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
