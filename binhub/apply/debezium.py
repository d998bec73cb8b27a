"""Debezium's MySQL envelope back to the MySQL sink's input (a binhub document): the one place
where ``--format debezium`` is converted.

The connector's default encodings (what ``binhub stream --format debezium`` writes) are undone
with the downstream table's own column types (``information_schema``, after every earlier DDL):
DECIMAL from the base64 of its unscaled value with the column's scale, DATE from days, TIME from
microseconds, DATETIME from epoch milliseconds (precision 0-3) or microseconds (4-6), TIMESTAMP
from its ISO-8601 UTC text, BIT from a boolean or little-endian bytes, BIGINT UNSIGNED from a
wrapped Java long, a MySQL JSON column from its text. Binary values stay base64, GEOMETRY
``{"wkb", "srid"}``: the binhub JSON forms.

What Debezium's fields lose, binhub's own envelopes carry in ``source.binhub``
(:mod:`binhub.stream.formats.debezium`): dates the encodings turn into null or the epoch (a zero
date) are restored from their text, and a schema-change event runs in the primary's session
(database, ``sql_mode``, collations, time zone). An envelope written by Debezium itself has neither:
its DDL runs in the downstream's defaults with the event's database, and a zero date stays what
Debezium made of it, null (the epoch in a NOT NULL column). The epoch itself in a NOT NULL date
column of such an envelope is applied as the epoch with a warning naming the column and the
transaction: it may have been a zero date, which nothing in the envelope can tell.
"""

from __future__ import annotations

import base64
import decimal
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from binhub.errors import BadMessage
from binhub.sinks.mysql.connection import Downstream
from binhub.sinks.mysql.options import Renames

__all__ = ["DebeziumConverter", "TargetColumn", "from_debezium"]

log = logging.getLogger("binhub.apply")

_OPS = {"c": "insert", "r": "insert", "u": "update", "d": "delete"}
_EPOCH = date(1970, 1, 1)
_EPOCH_DT = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class TargetColumn:
    data_type: str  # information_schema DATA_TYPE: decimal, datetime, bit, ...
    unsigned: bool
    scale: int  # DECIMAL's digits after the point; DATETIME/TIME/TIMESTAMP's fraction digits
    nullable: bool = True


_EPOCHS = (0, "1970-01-01T00:00:00Z")  # what Debezium writes for a zero date in a NOT NULL column
_DATE_TYPES = frozenset({"date", "datetime", "timestamp"})


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
        extension = source.get("binhub") or {}
        if "ddl" in envelope and "op" not in envelope:
            db = envelope.get("databaseName") or ""
            session = extension.get("session") or {"db": db}  # binhub's: the primary's; Debezium's: none
            return {"op": "ddl", "db": db, "table": source.get("table"), "sql": envelope["ddl"], "gtid": gtid,
                    "file": source["file"], "pos": source["pos"], "session": session}
        db, table = source["db"], source["table"]
        columns = self._columns(*self.renames(db, table))
        lost = extension.get("dates") or {}
        ours = str(source.get("version", "")).startswith("binhub-")  # binhub carries every lost date
        try:
            before, after = (self._image(image, columns, lost.get(side), ours, f"{db}.{table}", gtid or where)
                             for side, image in (("before", envelope["before"]), ("after", envelope["after"])))
        except (ValueError, TypeError, OverflowError, orjson.JSONDecodeError) as exc:
            raise BadMessage(f"the Debezium change at {where} has a value its column's type cannot take ({exc}); "
                             "nothing of it was applied",
                             hint="check that the downstream table has the upstream's column types") from None
        return {"op": _OPS[envelope["op"]], "db": db, "table": table, "before": before, "after": after,
                "gtid": gtid, "file": source["file"], "pos": source["pos"]}

    @staticmethod
    def _image(image: dict[str, Any] | None, columns: dict[str, TargetColumn], dates: dict[str, str] | None,
               ours: bool, table: str, transaction: str) -> dict[str, Any] | None:
        """One row image in binhub's form: values decoded, the dates binhub's envelope says were lost restored."""
        if image is None:
            return None
        out = {k: from_debezium(columns.get(k), v) for k, v in image.items()}
        if dates:
            out.update((k, v) for k, v in dates.items() if k in out)
        if not ours:
            for name, value in image.items():
                column = columns.get(name)
                if (value in _EPOCHS and column is not None and not column.nullable
                        and column.data_type in _DATE_TYPES):
                    log.warning("%s.%s is the epoch in the Debezium change of %s: Debezium writes a zero date in a "
                                "NOT NULL column as the epoch, and the envelope cannot tell which it was; applied "
                                "as %s", table, name, transaction, out[name])
        return out

    def _columns(self, db: str, table: str) -> dict[str, TargetColumn]:
        found = self._tables.get((db, table))
        if found is None:
            def read() -> list[tuple[Any, ...]]:
                rows = self.downstream.fetch(
                    "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_SCALE, DATETIME_PRECISION, IS_NULLABLE FROM "
                    "information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s", (db, table))
                self.downstream.commit()
                return rows
            rows = self.downstream.retrying(read, self.reconnect_for)
            found = {name: TargetColumn(str(data_type).lower(), "unsigned" in str(column_type).lower(),
                                        int(scale if scale is not None else precision or 0), nullable == "YES")
                     for name, data_type, column_type, scale, precision, nullable in rows}
            self._tables[(db, table)] = found  # an unknown table: the sink names it
        return found
