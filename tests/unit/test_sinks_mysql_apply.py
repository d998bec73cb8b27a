"""The MySQL sink's pure parts: the target URL, renames, options, and the scheduler's causality and
low-water mark (workers stubbed: they only record what they are handed)."""

from __future__ import annotations

from typing import Any

import pytest

from binhub.binlog.changes import RowChange
from binhub.binlog.column_values import JSON_NULL
from binhub.errors import ApplyConflict, ConfigError
from binhub.sinks.base import Checkpoint
from binhub.sinks.mysql.catalog import DownstreamTable
from binhub.sinks.mysql.dsn import MysqlTarget, parse_mysql_target
from binhub.sinks.mysql.options import ApplyOptions, Renames
from binhub.sinks.mysql.scheduler import Scheduler
from binhub.sinks.mysql.sql import SqlColumn
from binhub.sinks.mysql.transaction import Transaction, TransactionBuilder


def test_target_url() -> None:
    t = parse_mysql_target("mysql://app:p%40ss@db2:3307")
    assert t == MysqlTarget("db2", 3307, "app", "p@ss")
    assert str(t) == "mysql://app@db2:3307" and "p@ss" not in repr(t)
    assert parse_mysql_target("mysql://root@h").port == 3306
    for bad in ("http://h", "mysql://h/db", "mysql://h:x", "mysql://h?x=1"):
        with pytest.raises(ConfigError) as info:
            parse_mysql_target(bad)
        assert "p%40ss" not in str(info.value)


def test_renames() -> None:
    r = Renames(["shop.orders=archive.orders_old", "shop=shop2"])
    assert r("shop", "orders") == ("archive", "orders_old")
    assert r("shop", "items") == ("shop2", "items")
    assert r("other", "t") == ("other", "t")
    assert r.database("shop") == "shop2" and bool(r) and not Renames()
    for bad in ("shop", "a.b=c", "a.b.c=d.e.f", "=x"):
        with pytest.raises(ConfigError, match="--rename"):
            Renames([bad])


def test_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="workers"):
        ApplyOptions(workers=0)
    with pytest.raises(ConfigError, match="--rename"):
        ApplyOptions(rename=("nonsense",))


class _Worker:
    def __init__(self) -> None:
        self.load = 0
        self.got: list[int] = []

    def put(self, txn: Transaction) -> None:
        self.got.append(txn.seq)


def _txn(scheduler: Scheduler, pos: int, *keys: str) -> Transaction:
    txn = Transaction(gtid=f"0-1-{pos}", keys=set(keys), checkpoint=Checkpoint("b.000001", pos, f"0-1-{pos}"))
    scheduler.number(txn)
    return txn


def _scheduler(n: int, mark: Checkpoint | None = None) -> tuple[Scheduler, list[_Worker]]:
    workers = [_Worker() for _ in range(n)]
    return Scheduler(workers, mark), workers  # type: ignore[arg-type]


def test_free_transactions_spread_and_dependent_ones_follow_their_key() -> None:
    s, w = _scheduler(3)
    for pos, key in enumerate(["a", "b", "c", "a", "d", "b"], 1):
        s.submit(_txn(s, pos, key))
    # 4 follows 1 (key a), 6 follows 2 (key b); 5 is free and goes to a least busy worker
    assert w[0].got == [1, 4] and w[1].got == [2, 5, 6] and w[2].got == [3]


def test_a_transaction_on_keys_of_two_workers_waits_for_them() -> None:
    s, w = _scheduler(2)
    s.submit(_txn(s, 1, "a"))
    s.submit(_txn(s, 2, "b"))
    both = _txn(s, 3, "a", "b")
    import threading

    done = threading.Event()
    thread = threading.Thread(target=lambda: (s.submit(both), done.set()))
    thread.start()
    assert not done.wait(0.3), "it must wait while 1 and 2 are in flight"
    s.committed([1])  # now only 2's worker holds one of its keys: it queues behind 2 there
    assert done.wait(5)
    thread.join()
    assert w[1].got == [2, 3]


def test_the_low_water_mark_and_marks_with_a_group() -> None:
    start = Checkpoint("b.000001", 0, "")
    s, _ = _scheduler(2, start)
    t1, t2, t3 = (_txn(s, p, k) for p, k in ((10, "a"), (20, "b"), (30, "c")))
    for t in (t1, t2, t3):
        s.submit(t)
    assert s.mark_with([2]) == (0, start), "2 commits past 1: the mark stays before 1"
    s.committed([2])
    assert s.mark == start
    assert s.mark_with([1]) == (2, t2.checkpoint), "once 1 commits, everything through 2 has"
    s.committed([1])
    assert s.mark == t2.checkpoint
    skipped = _txn(s, 40, "d")
    s.skip(skipped)  # nothing to apply: it does not hold the mark back once 3 commits
    s.committed([3])
    assert s.mark == skipped.checkpoint


def test_a_worker_error_reaches_the_stream() -> None:
    s, _ = _scheduler(1)
    s.submit(_txn(s, 1, "a"))
    s.failed(ApplyConflict("boom"))
    with pytest.raises(ApplyConflict):
        s.drain()
    with pytest.raises(ApplyConflict):
        s.check()


def test_transaction_ident_is_its_gtid_or_its_end() -> None:
    assert Transaction(gtid="0-1-5").ident == "0-1-5"
    anonymous: Any = Transaction(checkpoint=Checkpoint("b.000002", 77, ""))
    assert anonymous.ident == "b.000002:77"


def test_sql_in_flight_is_bounded() -> None:
    import threading

    from binhub.sinks.mysql.scheduler import MAX_INFLIGHT_BYTES

    s, w = _scheduler(2)
    big = _txn(s, 1, "a")
    big.size = MAX_INFLIGHT_BYTES
    s.submit(big)  # alone in flight, it goes whatever its size
    nxt = _txn(s, 2, "b")
    done = threading.Event()
    thread = threading.Thread(target=lambda: (s.submit(nxt), done.set()))
    thread.start()
    assert not done.wait(0.3), "it waits while the limit is reached"
    s.committed([1])
    assert done.wait(5)
    thread.join()


def test_listed_transactions_behind_the_mark_are_dropped() -> None:
    from binhub.sinks.mysql.checkpoint import _covered

    maria = Checkpoint("b.000002", 500, "0-1-10")
    assert _covered("0-1-9", maria) and not _covered("0-1-11", maria)
    assert _covered("b.000002:400", maria) and not _covered("b.000002:600", maria)
    mysql = Checkpoint("b.000002", 500, "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5")
    assert _covered("3e11fa47-71ca-11e1-9e33-c80aa9429562:3", mysql)
    assert not _covered("3e11fa47-71ca-11e1-9e33-c80aa9429562:7", mysql)
    assert not _covered("0-1-1", None)


class _OneTable:
    """A catalog that knows one downstream table."""

    def __init__(self, table: DownstreamTable) -> None:
        self._table = table

    def table(self, db: str, name: str) -> DownstreamTable:
        assert (db, name) == (self._table.db, self._table.table)
        return self._table


def _insert(i: int, doc: Any) -> RowChange:
    return RowChange("insert", "d", "t", None, {"id": i, "doc": doc}, ("id",), "0-1-5", "b.000001", 4, 0, True, True)


def test_records_keep_a_json_null_apart_from_sql_null() -> None:
    """From the decoder's records a MySQL JSON column's JSON null is written as JSON null; binhub
    JSON cannot tell it from SQL NULL (both are ``null``), so the document path writes NULL."""
    columns = {"id": SqlColumn.of("id", "int"), "doc": SqlColumn.of("doc", "json")}
    table = DownstreamTable("d", "t", columns, ("id",), (("id",),))
    builder = TransactionBuilder(_OneTable(table), renames=Renames(), safe_mode=False,  # type: ignore[arg-type]
                                 max_packet=1 << 20)
    builder.add_change(_insert(1, JSON_NULL))
    builder.add_change(_insert(2, None))
    builder.add_change(_insert(3, {"a": [1, None]}))
    txn = builder.take()
    assert txn.rows == 3 and len(txn.statements) == 1
    assert txn.statements[0].sql.endswith("VALUES (1, CAST(_utf8mb4'null' AS JSON)), (2, NULL), "
                                          "(3, CAST(_utf8mb4'{\"a\":[1,null]}' AS JSON))")
    builder.reset()
    builder.add({"op": "insert", "db": "d", "table": "t", "before": None, "after": {"id": 1, "doc": None},
                 "gtid": "0-1-5"})
    assert builder.take().statements[0].sql.endswith("VALUES (1, NULL)")


def _keys_of(table: DownstreamTable, op: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> set[str]:
    builder = TransactionBuilder(_OneTable(table), renames=Renames(), safe_mode=False,  # type: ignore[arg-type]
                                 max_packet=1 << 20)
    builder.add_change(RowChange(op, "d", "t", before, after, ("id",), "0-1-5", "b.000001", 4, 0, True, True))
    return builder.take().keys


def test_the_scheduler_keys_of_a_change() -> None:
    """A key per unique key and image; the same row gives the same key whatever the operation;
    values of different types or a NULL in a unique key never make two rows look alike."""
    columns = {n: SqlColumn.of(n, t) for n, t in (("id", "int"), ("a", "varchar(9)"), ("b", "int"), ("c", "int"))}
    table = DownstreamTable("d", "t", columns, ("id",), (("id",), ("a", "b")))
    moved = _keys_of(table, "update", {"id": 1, "a": "x", "b": 2, "c": 0}, {"id": 7, "a": "x", "b": 2, "c": 1})
    assert len(moved) == 3  # id 1, id 7, and (a, b) once
    assert _keys_of(table, "insert", None, {"id": 7, "a": "y", "b": None, "c": 0}) < moved  # id 7; no key with a NULL
    assert not _keys_of(table, "delete", {"id": 1, "a": "z", "b": 3, "c": 0}, None).isdisjoint(moved)
    text = DownstreamTable("d", "t", {"id": SqlColumn.of("id", "varchar(9)")}, ("id",), (("id",),))
    assert _keys_of(text, "insert", None, {"id": "1"}).isdisjoint(_keys_of(table, "insert", None, {"id": 1}))
    assert _keys_of(table, "insert", None, {"id": 1}) != _keys_of(table, "insert", None, {"id": 11})
    keyless = DownstreamTable("d", "t", columns, (), ())
    assert _keys_of(keyless, "insert", None, {"id": 1}) == _keys_of(keyless, "delete", {"id": 2}, None) == {"d.t"}
    # An image without the primary key's columns (MINIMAL images of another key): the whole table.
    assert "d.t" in _keys_of(table, "update", {"a": "x", "b": 2}, {"a": "x", "b": 3})
