"""``binhub apply``'s parts without Kafka: the merge of partitions into the upstream's order, the
source's topic matching, the offsets kept downstream, and Debezium's encodings undone (checked
against the stream's own encoder)."""

from __future__ import annotations

import decimal
from typing import Any

import orjson
import pytest

from binhub.apply.changes import Change, Where, read_change
from binhub.apply.config import KafkaSource
from binhub.apply.consumer import offsets_json
from binhub.apply.debezium import TargetColumn, from_debezium
from binhub.apply.merge import Merger
from binhub.errors import BadMessage, ConfigError
from binhub.stream.formats.columns import FormatColumn, Kind
from binhub.stream.formats.debezium import debezium_value

A, B = ("a", 0), ("b", 0)


def change(pid: tuple[str, int], offset: int, pos: int, gtid: str = "0-1-1", file: str = "bin.000001") -> Change:
    line = orjson.dumps({"op": "insert", "db": "d", "table": pid[0], "before": None, "after": {"id": offset},
                         "gtid": gtid, "file": file, "pos": pos})
    return read_change(line, Where(pid[0], pid[1], offset), "binhub")


def drain(merger: Merger) -> list[tuple[str, int]]:
    out = []
    while (c := merger.pop()) is not None:
        out.append((c.where.topic, c.where.offset))
    return out


def test_changes_of_two_partitions_leave_in_upstream_order_once_sealed_and_clear() -> None:
    m = Merger()
    m.add(A, 0)
    m.add(B, 0)
    m.push(A, change(A, 0, 100))
    m.push(A, change(A, 1, 300, "0-1-2"))
    m.push(B, change(B, 0, 200))
    assert m.pop() is None, "no seal yet: the transactions may not be whole"
    m.sealed((1, 250, -1), offset=7)
    assert drain(m) == [("a", 0), ("b", 0)], "below the seal, in position order; 300 waits for the next seal"
    assert not m.at_seal(), "b is empty and not known clear: it may still hold a change before the seal"
    m.clear(B, m.seal_number)
    assert m.at_seal()
    assert m.offsets() == {A: 1, B: 1} and m.seal_offset == 7


def test_an_empty_partition_holds_back_everything_until_it_is_clear() -> None:
    m = Merger()
    m.add(A, 0)
    m.add(B, 5)
    m.push(A, change(A, 0, 100))
    m.sealed((1, 500, -1), offset=0)
    assert m.pop() is None, "b may deliver a change at a position before 100"
    m.push(B, change(B, 5, 50))
    assert drain(m) == [("b", 5)], "b's change comes first; then b is empty again and must be cleared"
    m.clear(B, m.seal_number)
    assert drain(m) == [("a", 0)]


def test_copies_are_dropped_and_a_partition_going_back_drops_its_partial_tail() -> None:
    m = Merger(resume_after=(1, 100))
    m.add(A, 0)
    m.push(A, change(A, 0, 100))  # at the resume point: applied before the restart
    m.push(A, change(A, 1, 200))
    m.push(A, change(A, 2, 300, "0-1-3"))  # a partial copy: the producer restarted after it
    m.push(A, change(A, 3, 200))  # sent again from its checkpoint
    m.push(A, change(A, 4, 300, "0-1-3"))
    m.sealed((1, 400, -1), 0)
    m.clear(A, m.seal_number)
    assert drain(m) == [("a", 3), ("a", 4)]
    assert m.copies == 3
    m.push(A, change(A, 5, 200))  # behind what was released: a copy
    assert m.pop() is None and m.copies == 4


def ddl(pid: tuple[str, int], offset: int, pos: int) -> Change:
    line = orjson.dumps({"op": "ddl", "db": "d", "table": "t", "sql": "CREATE TABLE t (id INT)", "gtid": "0-1-9",
                         "file": "bin.000001", "pos": pos})
    return read_change(line, Where(pid[0], pid[1], offset), "binhub")


def test_a_copy_at_the_same_position_from_another_partition_is_dropped() -> None:
    """A DDL has no key: the copy a restarted producer sends may land in another partition; rows of
    one rows event share a position legitimately, and equal rows of one key share a partition."""
    m = Merger()
    m.add(A, 0)
    m.add(B, 0)
    m.push(A, ddl(A, 0, 100))
    m.push(B, ddl(B, 0, 100))
    m.push(A, change(A, 1, 200))
    m.push(A, change(A, 2, 200))  # the same row twice in one rows event (a table without a key)
    copy = change(A, 1, 200)
    m.push(B, read_change(copy.line[:-1] if copy.line else b"", Where("b", 0, 1), "binhub"))  # a's row, resent
    m.sealed((1, 300, -1), 0)
    m.clear(A, 1)
    m.clear(B, 1)
    assert drain(m) == [("a", 0), ("a", 1), ("a", 2)] and m.copies == 2
    assert m.at_seal() and m.offsets() == {A: 3, B: 2}


def row(pid: tuple[str, int], offset: int, pos: int, ident: int, *, pk: bool = True) -> Change:
    after = {"id": ident, "v": "x"} if pk else {"a": ident, "b": "x"}
    line = orjson.dumps({"op": "insert", "db": "d", "table": "t", "pk": {"id": ident} if pk else after,
                         "before": None, "after": after, "gtid": "0-1-5", "file": "bin.000001", "pos": pos})
    return read_change(line, Where(pid[0], pid[1], offset), "binhub")


def test_a_partition_repeating_its_rows_event_drops_the_partial_copy_before() -> None:
    """A stream killed inside a rows event, at least once: the partition holds the event's first rows,
    then the whole event again. Equal rows of a table without a key are no repeat."""
    m = Merger()
    m.add(A, 0)
    for offset, ident in enumerate((1, 2, 1, 2, 3)):  # rows 1, 2 of the event; then 1, 2, 3 again
        m.push(A, row(A, offset, 100, ident))
    for offset, ident in enumerate((7, 7), start=5):  # two equal rows without a key (pk: the whole row)
        m.push(A, row(A, offset, 200, ident, pk=False))
    m.sealed((1, 300, -1), 0)
    m.clear(A, 1)
    assert drain(m) == [("a", 2), ("a", 3), ("a", 4), ("a", 5), ("a", 6)] and m.copies == 2


def test_a_tombstone_moves_its_partition_past_itself() -> None:
    m = Merger()
    m.add(A, 0)
    m.push(A, change(A, 0, 100))
    m.passed(A, 1)
    m.sealed((1, 400, -1), 3)
    drain(m)
    assert m.offsets() == {A: 2}
    assert orjson.loads(offsets_json(m, ("binhub.checkpoints", 0))) == {"partitions": [["a", 0, 2]],
                                                                        "checkpoint": ["binhub.checkpoints", 0, 3]}


@pytest.mark.parametrize("value", [b"not json", b"[1]", b'{"op": "upsert"}', b'{"op": "insert", "db": "d"}'])
def test_a_message_that_is_no_change_is_named_by_where_it_is(value: bytes) -> None:
    with pytest.raises(BadMessage, match="topic t partition 2 offset 9"):
        read_change(value, Where("t", 2, 9), "binhub")


def test_the_source_matches_names_templates_and_expressions() -> None:
    source = KafkaSource.parse("kafka://h:9092/shop.{table},audit,^log-[0-9]+")
    match = source.matcher()
    assert source.templated and source.bootstrap == "h:9092"
    assert all(match.match(t) for t in ("shop.orders", "shop.order_items", "audit", "log-12"))
    assert not any(match.match(t) for t in ("shop", "audit2", "xshop.orders", "log-x"))
    assert not KafkaSource.parse("kafka://h:1/a,b").templated
    with pytest.raises(ConfigError):
        KafkaSource.parse("mysql://h:1/a")


def _column(kind: Kind, declared: str, *, unsigned: bool = False, scale: int = 0, fsp: int = 0, bits: int = 0,
            int_type: str = "") -> FormatColumn:
    return FormatColumn("c", kind, declared, int_type, unsigned, 0, scale, fsp, bits, True)


@pytest.mark.parametrize(("column", "target", "value"), [
    (_column(Kind.DECIMAL, "decimal(12,3)", scale=3), TargetColumn("decimal", False, 3), "-12.345"),
    (_column(Kind.DECIMAL, "decimal(5,0)", scale=0), TargetColumn("decimal", False, 0), "99999"),
    (_column(Kind.INT, "bigint unsigned", unsigned=True, int_type="bigint"), TargetColumn("bigint", True, 0),
     2**64 - 1),
    (_column(Kind.DATE, "date"), TargetColumn("date", False, 0), "1901-02-03"),
    (_column(Kind.TIME, "time(1)", fsp=1), TargetColumn("time", False, 1), "-838:59:58.5"),
    (_column(Kind.DATETIME, "datetime(3)", fsp=3), TargetColumn("datetime", False, 3), "2024-05-01 10:00:00.250"),
    (_column(Kind.DATETIME, "datetime(6)", fsp=6), TargetColumn("datetime", False, 6), "1969-12-31 23:59:59.000001"),
    (_column(Kind.DATETIME, "datetime", fsp=0), TargetColumn("datetime", False, 0), "2024-05-01 10:00:00"),
    (_column(Kind.TIMESTAMP, "timestamp(2)", fsp=2), TargetColumn("timestamp", False, 2), "2024-05-01 10:00:00.25"),
    (_column(Kind.BIT, "bit(1)", bits=1), TargetColumn("bit", False, 0), 1),
    (_column(Kind.BIT, "bit(9)", bits=9), TargetColumn("bit", False, 0), 300),
    (_column(Kind.JSON, "json"), TargetColumn("json", False, 0), {"k": [1, 2]}),
])
def test_debezium_values_come_back_as_the_stream_had_them(column: FormatColumn, target: TargetColumn,
                                                          value: Any) -> None:
    encoded = orjson.loads(orjson.dumps(debezium_value(column, value)))
    back = from_debezium(target, encoded)
    if column.kind == Kind.DECIMAL:
        assert decimal.Decimal(back) == decimal.Decimal(value)
    else:
        assert back == value
