"""ExecutedLog: the GTID set through each transaction, folded lazily, equals adding every GTID in turn."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from binhub.binlog.file import BinlogFileReader
from binhub.binlog.gtid import MariadbGtidList, MysqlGtidSet
from binhub.binlog.transaction import GtidEvent, TransactionTracker
from binhub.store.recovery import GtidSet, add_gtid
from binhub.stream import executed as executed_mod
from binhub.stream.executed import ExecutedLog
from tests.binlog_factory import BinlogFileBuilder

SID = uuid.UUID("3e11fa47-71ca-11e1-9e33-c80aa9429562")
SID2 = uuid.UUID("4e11fa47-71ca-11e1-9e33-c80aa9429562")


def _gtid_events(path: Path) -> list[GtidEvent]:
    tracker, out = TransactionTracker(), []
    with open(path, "rb") as f:
        for ev in BinlogFileReader(f, path.name):
            if tracker.feed(ev.data, 4):
                raw = tracker.last_gtid_event
                if raw is not None:
                    out.append(raw)
    return out


def _maria_events(tmp_path: Path) -> list[GtidEvent]:
    b = BinlogFileBuilder("mariadb-bin.000001", "mariadb")
    b.gtid_list([])
    for k, (domain, seq) in enumerate(((0, 5), (1, 7), (70000, 9), (0, 6), (2, 1), (1, 8), (0, 7))):
        b.maria_txn(domain, seq, server_id=1 + k % 2)
    return _gtid_events(b.save(tmp_path))


def _mysql_events(tmp_path: Path) -> list[GtidEvent]:
    b = BinlogFileBuilder("mysql-bin.000001", "mysql")
    b.previous_gtids(MysqlGtidSet.parse(""))
    for sid, gno in ((SID, 1), (SID, 2), (SID2, 10), (SID, 4), (SID2, 11), (SID, 3)):
        b.mysql_txn(sid, gno)
    return _gtid_events(b.save(tmp_path))


def _expected(start: GtidSet | None, events: list[GtidEvent]) -> list[str]:
    from binhub.binlog.transaction import decode_gtid_event

    out, executed = [], start
    for event in events:
        gtid = decode_gtid_event(event)
        assert gtid is not None
        executed = add_gtid(executed, gtid)
        out.append(str(executed))
    return out


@pytest.mark.parametrize("flavour", ["mariadb", "mysql"])
@pytest.mark.parametrize("step", [1, 2, 3, 7])
def test_through_every_step_equals_adding_one_by_one(tmp_path: Path, flavour: str, step: int) -> None:
    events = _maria_events(tmp_path) if flavour == "mariadb" else _mysql_events(tmp_path)
    start: GtidSet | None = MariadbGtidList.parse("0-1-1,5-1-3") if flavour == "mariadb" else None
    expected = _expected(start, events)
    log = ExecutedLog(start)
    counts = [log.append(event) for event in events]
    assert counts == list(range(1, len(events) + 1))
    log2 = ExecutedLog(start)
    for k, event in enumerate(events):
        log2.append(event)
        if (k + 1) % step == 0:  # asked now and then, as a sink asks at its commits
            assert str(log2.through(k + 1)) == expected[k]
    assert str(log2.through(len(events))) == expected[-1]
    assert str(log.through(len(events))) == expected[-1]


def test_asking_backwards_is_refused_and_the_automatic_fold_keeps_the_last(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events = _maria_events(tmp_path)
    expected = _expected(None, events)
    log = ExecutedLog(None)
    for event in events[:4]:
        log.append(event)
    assert str(log.through(4)) == expected[3]
    with pytest.raises(RuntimeError, match="in order"):
        log.through(3)
    # Folded unasked every _FOLD_EVERY transactions, all but the last: the one before it can still be asked for.
    monkeypatch.setattr(executed_mod, "_FOLD_EVERY", 2)
    log = ExecutedLog(None)
    for event in events:
        log.append(event)
    assert str(log.through(len(events) - 1)) == expected[-2]
    assert str(log.through(len(events))) == expected[-1]
    assert log.through(0 + log.count) is log.through(log.count)  # asking twice folds nothing more
