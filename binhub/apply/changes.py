"""A Kafka message read back as a change: where it stands in the upstream's order, its transaction,
its table, and what the MySQL sink is given for it.

``binhub`` messages are the sink's own input (binhub JSON lines) and pass as they came. ``debezium``
messages are checked here and converted when they are applied (:mod:`binhub.apply.debezium`: the
values need the downstream's column types, as they are after every earlier DDL). A message that is
neither stops ``binhub apply`` with :class:`~binhub.errors.BadMessage` naming its topic, partition
and offset; a null value (Debezium's tombstone after a delete) is no change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from binhub.errors import BadMessage
from binhub.store.index import file_seq

__all__ = ["Change", "Where", "read_change"]

OrderKey = tuple[int, int, int]  # (binlog file's sequence, position of the rows event, row within it)


@dataclass(frozen=True, slots=True)
class Where:
    """Where a message sits in Kafka."""

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"topic {self.topic} partition {self.partition} offset {self.offset}"


@dataclass(slots=True)
class Change:
    key: OrderKey  # the upstream's order (a rows event's rows share file and position)
    gtid: str | None
    file: str
    pos: int
    db: str
    table: str  # "" for a statement on a database
    ddl: bool
    where: Where
    line: bytes | None  # binhub: the sink's input line as it came
    envelope: dict[str, Any] | None  # debezium: the envelope, converted when applied
    next_offset: int = 0  # where its partition resumes once it is applied (past tombstones after it)
    # No other change at its position has its line: a DDL, a row with a primary key (not of every
    # column), any Debezium change (its row number is in its position). Equal rows of a table without
    # a key may share a rows event.
    unique: bool = True
    seq: int = 0  # arrival order: breaks ties between rows of one rows event
    dead: bool = False  # dropped from its partition (a copy a producer's restart sent again)


def read_change(value: bytes, where: Where, fmt: str) -> Change:
    try:
        doc = orjson.loads(value)
        if not isinstance(doc, dict):
            raise TypeError("not a JSON object")
        return _debezium(doc, where) if fmt == "debezium" else _binhub(doc, value, where)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        other = "debezium" if fmt == "binhub" else "binhub"
        raise BadMessage(f"the message at {where} is not {fmt} JSON as binhub stream writes it ({exc}): "
                         f"{value[:120]!r}; nothing of it was applied",
                         hint=f"if the topic holds {other} JSON, use --format {other}; otherwise exclude the "
                              "topic, or start past the message") from None


def _order(file: Any, pos: Any, row: int = 0) -> OrderKey:
    if not isinstance(file, str) or not isinstance(pos, int):
        raise TypeError("no binlog file and position")
    return (file_seq(file), pos, row)


def _binhub(doc: dict[str, Any], value: bytes, where: Where) -> Change:
    op = doc["op"]
    if op not in ("insert", "update", "delete", "ddl"):
        raise ValueError(f"unknown op {op!r}")
    if op == "ddl" and not isinstance(doc["sql"], str):
        raise TypeError("a DDL without its statement")
    if op != "ddl" and not isinstance(doc["before"] if op != "insert" else doc["after"], dict):
        raise TypeError("a row change without its row image")
    file, pos = doc["file"], doc["pos"]
    return Change(_order(file, pos), doc.get("gtid"), file, pos, str(doc["db"] or ""), str(doc.get("table") or ""),
                  op == "ddl", where, value + b"\n", None, where.offset + 1,
                  unique=op == "ddl" or _keyed(doc.get("pk"), doc["after"] if op != "delete" else doc["before"]))


def _keyed(pk: Any, image: dict[str, Any]) -> bool:
    """Whether a row's ``pk`` is a key of its own: binhub writes the whole row as ``pk`` for a table
    without a primary key (and a key of every column cannot tell equal rows apart either)."""
    return isinstance(pk, dict) and pk.keys() != image.keys()


def _debezium(doc: dict[str, Any], where: Where) -> Change:
    source = doc["source"]
    file, pos = source["file"], source["pos"]
    if "ddl" in doc and "op" not in doc:  # a schema change event
        if not isinstance(doc["ddl"], str):
            raise TypeError("a schema change without its statement")
        return Change(_order(file, pos), source.get("gtid"), file, pos, str(doc.get("databaseName") or ""),
                      str(source.get("table") or ""), True, where, None, doc, where.offset + 1)
    op = doc["op"]
    if op not in ("c", "u", "d", "r"):
        raise ValueError(f"unknown op {op!r}")
    image = doc["after"] if op in ("c", "r", "u") else doc["before"]
    if not isinstance(image, dict) or (op == "u" and not isinstance(doc["before"], dict)):
        raise TypeError("a row change without its row image")
    row = source.get("row") or 0
    return Change(_order(file, pos, int(row)), source.get("gtid"), file, pos, str(source["db"]),
                  str(source["table"]), False, where, None, doc, where.offset + 1)
