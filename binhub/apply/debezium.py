"""Debezium's MySQL envelope back to the MySQL sink's input (a binhub document): the one place
where ``--format debezium`` is converted.

The connector's default encodings (what ``binhub stream --format debezium`` writes) are undone
with the downstream table's own column types (``information_schema``, after every earlier DDL):
DECIMAL from the base64 of its unscaled value with the column's scale, DATE from days, TIME from
microseconds, DATETIME from epoch milliseconds (precision 0-3) or microseconds (4-6), TIMESTAMP
from its ISO-8601 UTC text, BIT from a boolean or little-endian bytes, BIGINT UNSIGNED from a
wrapped Java long, a MySQL JSON column from its text. Binary values stay base64, GEOMETRY
``{"wkb", "srid"}``: the binhub JSON forms. What Debezium loses stays lost: a zero date arrives as
null (or the epoch in a NOT NULL column).
"""

from __future__ import annotations

import base64
import decimal
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from binhub.errors import BadMessage
from binhub.sinks.mysql.connection import Downstream
from binhub.sinks.mysql.options import Renames

__all__ = ["DebeziumConverter", "TargetColumn", "from_debezium"]

_OPS = {"c": "insert", "r": "insert", "u": "update", "d": "delete"}
_EPOCH = date(1970, 1, 1)
_EPOCH_DT = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class TargetColumn:
    data_type: str  # information_schema DATA_TYPE: decimal, datetime, bit, ...
    unsigned: bool
    scale: int  # DECIMAL's digits after the point; DATETIME/TIME/TIMESTAMP's fraction digits


def _time_text(us: int, digits: int) -> str:
    sign = "-" if us < 0 else ""
    seconds, micro = divmod(abs(us), 1_000_000)
    minutes, s = divmod(seconds, 60)
    h, m = divmod(minutes, 60)
    return f"{sign}{h:02d}:{m:02d}:{s:02d}" + (f".{micro:06d}"[:digits + 1] if digits else "")


def _fraction(moment: datetime, digits: int) -> str:
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    return text + "." + f"{moment.microsecond:06d}"[:digits] if digits else text


def from_debezium(column: TargetColumn | None, value: Any) -> Any:
    if value is None or column is None:
        return value
    kind = column.data_type
    if kind == "decimal":
        unscaled = int.from_bytes(base64.b64decode(value, validate=True), "big", signed=True)
        return str(decimal.Decimal(unscaled).scaleb(-column.scale))
    if kind == "bigint" and column.unsigned and value < 0:
        return value + (1 << 64)
    if kind == "date":
        return (_EPOCH + timedelta(days=value)).isoformat()
    if kind == "time":
        return _time_text(value, column.scale)
    if kind == "datetime":
        us = value * 1000 if column.scale <= 3 else value
        return _fraction(_EPOCH_DT + timedelta(microseconds=us), column.scale)
    if kind == "timestamp":
        return value.removesuffix("Z").replace("T", " ")
    if kind == "bit":
        if isinstance(value, bool):
            return int(value)
        return int.from_bytes(base64.b64decode(value, validate=True), "little")
    if kind == "json" and isinstance(value, str):
        return orjson.loads(value)  # a MySQL JSON column takes the document (MariaDB's JSON is text)
    return value


class DebeziumConverter:
    """Converts envelopes for the downstream ``downstream`` (tables renamed by ``renames``)."""

    def __init__(self, downstream: Downstream, renames: Renames, reconnect_for: float = 300.0) -> None:
        self.downstream = downstream
        self.renames = renames
        self.reconnect_for = reconnect_for
        self._tables: dict[tuple[str, str], dict[str, TargetColumn]] = {}

    def forget(self) -> None:
        """After a DDL: the tables' columns are read again."""
        self._tables.clear()

    def document(self, envelope: dict[str, Any], where: str) -> dict[str, Any]:
        """The binhub document of a row change or a schema change event."""
        source = envelope["source"]
        gtid = source.get("gtid")
        if "ddl" in envelope and "op" not in envelope:
            db = envelope.get("databaseName") or ""
            return {"op": "ddl", "db": db, "table": source.get("table"), "sql": envelope["ddl"], "gtid": gtid,
                    "file": source["file"], "pos": source["pos"], "session": {"db": db}}
        db, table = source["db"], source["table"]
        columns = self._columns(*self.renames(db, table))
        try:
            before, after = ({k: from_debezium(columns.get(k), v) for k, v in image.items()} if image is not None else None
                             for image in (envelope["before"], envelope["after"]))
        except (ValueError, TypeError, OverflowError, orjson.JSONDecodeError) as exc:
            raise BadMessage(f"the Debezium change at {where} has a value its column's type cannot take ({exc}); "
                             "nothing of it was applied",
                             hint="check that the downstream table has the upstream's column types") from None
        return {"op": _OPS[envelope["op"]], "db": db, "table": table, "before": before, "after": after,
                "gtid": gtid, "file": source["file"], "pos": source["pos"]}

    def _columns(self, db: str, table: str) -> dict[str, TargetColumn]:
        found = self._tables.get((db, table))
        if found is None:
            def read() -> list[tuple[Any, ...]]:
                rows = self.downstream.fetch(
                    "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_SCALE, DATETIME_PRECISION FROM "
                    "information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s", (db, table))
                self.downstream.commit()
                return rows
            rows = self.downstream.retrying(read, self.reconnect_for)
            found = {name: TargetColumn(str(data_type).lower(), "unsigned" in str(column_type).lower(),
                                   int(scale if scale is not None else precision or 0))
                     for name, data_type, column_type, scale, precision in rows}
            self._tables[(db, table)] = found  # an unknown table: the sink names it
        return found
