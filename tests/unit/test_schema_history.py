"""The schema history on disk: answers by position and GTID, survives crashes, seeds, snapshots."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from binhub.binlog.query_status import QueryStatus
from binhub.errors import SchemaHistoryError
from binhub.schema import history as history_mod
from binhub.schema.catalog import Catalog, Charset
from binhub.schema.changes import TableName
from binhub.schema.history import SchemaHistory
from binhub.schema.scan import Position, QueryRecord
from binhub.schema.seed import catalog_from_information_schema

T = TableName("d", "t")
F1, F2 = "mysql-bin.000001", "mysql-bin.000002"
UTF8MB4 = QueryStatus(collation_server=45)


def rec(sql: str, pos: int, file: str = F1, gtid: str = "", db: str = "d") -> QueryRecord:
    return QueryRecord(file, pos, pos + 100, gtid or f"0-1-{pos}", db, sql, UTF8MB4, "mariadb", (10, 11, 6))


def names(history: SchemaHistory, at: Position | None, table: TableName = T) -> list[str] | None:
    schema = history.table_at(table, at)
    if schema is None:
        return None
    return list(schema.column_names()) if schema.known else ["?unknown"]


def feed(history: SchemaHistory, *records: QueryRecord) -> None:
    for r in records:
        history.record_query(r)
    history.flush(Position.of(records[-1].file, records[-1].pos + 100))


def workload(history: SchemaHistory) -> None:
    feed(history,
         rec("CREATE TABLE t (id int primary key, a int)", 100),
         rec("BEGIN", 200),
         rec("ALTER TABLE t ADD b varchar(3) AFTER id", 300),
         rec("ALTER TABLE t DROP COLUMN a", 400, file=F2),
         rec("RENAME TABLE t TO t_old", 500, file=F2))


def test_columns_at_every_position(tmp_path: Path) -> None:
    h = SchemaHistory.open(tmp_path)
    workload(h)
    assert names(h, Position.of(F1, 100)) is None  # the CREATE starts there: before it, no table
    assert names(h, Position.of(F1, 101)) == ["id", "a"]
    assert names(h, Position.of(F1, 300)) == ["id", "a"]
    assert names(h, Position.of(F1, 301)) == ["id", "b", "a"]
    assert names(h, Position.of(F2, 4)) == ["id", "b", "a"]  # a later file orders after
    assert names(h, Position.of(F2, 401)) == ["id", "b"]
    assert names(h, None) is None
    assert names(h, None, TableName("d", "t_old")) == ["id", "b"]
    # The same answers after reopening from disk.
    again = SchemaHistory.open(tmp_path)
    assert names(again, Position.of(F1, 301)) == ["id", "b", "a"]
    assert again.scanned == Position.of(F2, 600)
    schema = again.table_at(TableName("d", "t_old"))
    assert schema is not None and schema.primary_key == ("id",)
    assert schema.columns[1].charset == "utf8mb4"  # collation_server 45 of the QUERY event


def test_only_ddl_is_logged_and_a_resumed_scan_does_not_duplicate(tmp_path: Path) -> None:
    h = SchemaHistory.open(tmp_path)
    workload(h)
    lines = (tmp_path / "ddl.log").read_bytes().splitlines()
    assert len(lines) == 4  # BEGIN is not logged
    feed(h, rec("ALTER TABLE t DROP COLUMN a", 400, file=F2))  # the same event again
    assert len((tmp_path / "ddl.log").read_bytes().splitlines()) == 4


def test_a_torn_last_record_is_dropped_on_open(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    h = SchemaHistory.open(tmp_path)
    workload(h)
    log_path = tmp_path / "ddl.log"
    whole = log_path.read_bytes()
    last_start = whole.rstrip(b"\n").rfind(b"\n") + 1
    for cut in (len(whole) - 1, len(whole) - 20, last_start + 5):  # torn at the newline, mid-JSON, mid-CRC
        log_path.write_bytes(whole[:cut])
        with caplog.at_level(logging.WARNING, logger="binhub.schema"):
            again = SchemaHistory.open(tmp_path)
        assert "torn last record" in caplog.text
        assert len(again.entries) == 3
        assert log_path.read_bytes() == whole[:last_start]  # cut back to the last whole record
        assert names(again, None) == ["id", "b"]  # the RENAME is gone with its record
        caplog.clear()


def test_a_record_damaged_in_the_middle_is_refused_and_a_rebuild_salvages_the_seeds(tmp_path: Path) -> None:
    h = SchemaHistory.open(tmp_path)
    workload(h)
    h.record_seed(Position.of(F2, 900), _seed([("s", "int", "")], table="seeded"))
    h.flush()
    log_path = tmp_path / "ddl.log"
    data = bytearray(log_path.read_bytes())
    data[30] ^= 0x01  # inside the first record's JSON
    log_path.write_bytes(bytes(data))
    with pytest.raises(SchemaHistoryError, match="damaged") as info:
        SchemaHistory.open(tmp_path)
    assert "rebuild" in str(info.value)
    salvaged = SchemaHistory.open(tmp_path, salvage=True)
    assert len(salvaged.entries) == 4  # the damaged record skipped
    salvaged.reset()  # then the store is scanned again
    again = SchemaHistory.open(tmp_path)
    assert [e.kind for e in again.entries] == ["seed"]
    assert names(again, None, TableName("d", "seeded")) == ["s"]


def test_snapshots_answer_like_the_log_and_a_killed_snapshot_write_is_harmless(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history_mod, "SNAPSHOT_EVERY", 3)
    h = SchemaHistory.open(tmp_path)
    workload(h)
    snaps = sorted(tmp_path.glob("snapshot.*.json"))
    assert len(snaps) == 1
    # A crash while writing the next snapshot leaves a .tmp behind: ignored and removed on open.
    (tmp_path / "snapshot.00000002.000000999999.json.tmp").write_text('{"format": 1, "catalog": {"tab')
    again = SchemaHistory.open(tmp_path)
    assert not list(tmp_path.glob("*.tmp"))
    for pos in (Position.of(F1, 301), Position.of(F2, 401), Position.of(F2, 501), None):
        assert names(again, pos, TableName("d", "t_old")) == names(h, pos, TableName("d", "t_old"))
        assert names(again, pos) == names(h, pos)
    # The snapshot is really used: its catalog answers even when edited (proves the replay starts there).
    doc = json.loads(snaps[0].read_text())
    doc["catalog"]["tables"][0]["columns"][0]["name"] = "from_snapshot"
    snaps[0].write_text(json.dumps(doc))
    assert names(SchemaHistory.open(tmp_path), None, TableName("d", "t_old"))[0] == "from_snapshot"  # type: ignore[index]


def test_a_snapshot_the_log_disagrees_with_is_dropped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history_mod, "SNAPSHOT_EVERY", 2)
    h = SchemaHistory.open(tmp_path)
    workload(h)
    assert list(tmp_path.glob("snapshot.*.json"))
    # The log loses its records (e.g. restored from an older copy): the snapshots no longer match it.
    lines = (tmp_path / "ddl.log").read_bytes().splitlines(keepends=True)
    (tmp_path / "ddl.log").write_bytes(b"".join(lines[:1]))
    again = SchemaHistory.open(tmp_path)
    assert not list(tmp_path.glob("snapshot.*.json"))
    assert names(again, None) == ["id", "a"]


def test_kill_during_snapshot_write_in_a_real_process(tmp_path: Path) -> None:
    """SIGKILL a process that snapshots in a loop; the history opens and answers every time."""
    script = f"""
import sys
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
from binhub.schema import history as m
from binhub.schema.history import SchemaHistory
from binhub.schema.scan import Position
from tests.unit.test_schema_history import rec
m.SNAPSHOT_EVERY = 1
h = SchemaHistory.open(sys.argv[1])
i = len(h.entries)
print("ready", flush=True)
while True:
    i += 1
    h.record_query(rec(f"ALTER TABLE t ADD c{{i}} int", 1000 + i * 10))
    h.flush(Position.of("mysql-bin.000001", 1000 + i * 10 + 1))
"""
    h = SchemaHistory.open(tmp_path)
    feed(h, rec("CREATE TABLE t (id int)", 100))
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        import time
        time.sleep(0.3)
        os.kill(proc.pid, 9)
        proc.wait(timeout=10)
        again = SchemaHistory.open(tmp_path)
        cols = names(again, None)
        assert cols is not None and cols[0] == "id"
        assert cols[1:] == [f"c{i}" for i in range(2, len(cols) + 1)]  # every column whose record survived, in order
        assert not again.problems


def test_unparseable_ddl_is_reported_loudly_and_marks_its_table_unknown(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    h = SchemaHistory.open(tmp_path)
    with caplog.at_level(logging.ERROR, logger="binhub.schema"):
        feed(h, rec("CREATE TABLE t (id int)", 100),
             rec("ALTER TABLE t FROBNICATE everything", 200, gtid="0-1-42"),
             rec("FROB WIDGETS", 300, gtid="0-1-43"))
    assert "mysql-bin.000001:200 (GTID 0-1-42)" in caplog.text and "FROBNICATE" in caplog.text
    assert "names no table" in caplog.text and "0-1-43" in caplog.text
    assert names(h, Position.of(F1, 150)) == ["id"]
    assert names(h, Position.of(F1, 250)) == ["?unknown"]
    schema = h.table_at(T, Position.of(F1, 250))
    assert schema is not None and schema.column_names() == ()
    assert [p.position.pos for p in SchemaHistory.open(tmp_path).problems] == [200, 300]
    feed(h, rec("DROP TABLE t", 400), rec("CREATE TABLE t (z int)", 500))
    assert names(h, None) == ["z"]


def _seed(columns: list[tuple[str, str, str]], table: str = "t") -> Catalog:
    rows = [{"TABLE_SCHEMA": "d", "TABLE_NAME": table, "COLUMN_NAME": n, "ORDINAL_POSITION": i, "COLUMN_TYPE": ty,
             "IS_NULLABLE": "YES", "CHARACTER_SET_NAME": cs or None, "COLLATION_NAME": f"{cs}_bin" if cs else None,
             "EXTRA": ""} for i, (n, ty, cs) in enumerate(columns, 1)]
    return catalog_from_information_schema(
        server=Charset("latin1", "latin1_swedish_ci"),
        schemata=[{"SCHEMA_NAME": "d", "DEFAULT_CHARACTER_SET_NAME": "latin1",
                   "DEFAULT_COLLATION_NAME": "latin1_swedish_ci"}],
        tables=[{"TABLE_SCHEMA": "d", "TABLE_NAME": table, "TABLE_TYPE": "BASE TABLE",
                 "TABLE_COLLATION": "latin1_swedish_ci"}],
        columns=rows, primary_keys=[{"TABLE_SCHEMA": "d", "TABLE_NAME": table, "COLUMN_NAME": columns[0][0],
                                     "SEQ_IN_INDEX": 1}])


def test_a_seed_covers_tables_created_before_the_store_from_its_start(tmp_path: Path) -> None:
    h = SchemaHistory.open(tmp_path)
    feed(h, rec("CREATE TABLE other (x int)", 100))
    # information_schema read when the upstream stood at file 2: d.t was never touched by a DDL before.
    h.record_seed(Position.of(F2, 4), _seed([("id", "int(11)", ""), ("name", "varchar(5)", "latin1")]))
    h.flush()
    for history in (h, SchemaHistory.open(tmp_path)):
        assert names(history, Position.of(F1, 4)) == ["id", "name"]  # back-dated: nothing changed it before
        schema = history.table_at(T)
        assert schema is not None and schema.primary_key == ("id",)
        assert [c.sql_type for c in schema.columns] == ["int", "varchar(5)"]
        assert schema.columns[1].collation == "latin1_bin"
    feed(h, rec("ALTER TABLE t ADD z int", 100, file=F2))
    assert names(h, None) == ["id", "name", "z"]


def test_a_seed_after_an_alter_it_cannot_undo_applies_from_its_position(tmp_path: Path) -> None:
    h = SchemaHistory.open(tmp_path)
    feed(h, rec("ALTER TABLE t ADD name varchar(5)", 100))  # t predates the store: unknown until the seed
    h.record_seed(Position.of(F2, 4), _seed([("id", "int", ""), ("name", "varchar(5)", "latin1")]))
    h.flush()
    again = SchemaHistory.open(tmp_path)
    assert names(again, Position.of(F1, 50)) is None  # before the ALTER: not known, not guessed
    assert names(again, Position.of(F1, 150)) == ["?unknown"]
    assert names(again, Position.of(F2, 5)) == ["id", "name"]


def test_a_seed_that_disagrees_with_the_history_is_a_problem(tmp_path: Path) -> None:
    h = SchemaHistory.open(tmp_path)
    feed(h, rec("CREATE TABLE t (id int, a int)", 100))
    h.record_seed(Position.of(F1, 500), _seed([("id", "int", ""), ("zzz", "int", "")]))
    h.flush()
    problems = SchemaHistory.open(tmp_path).problems
    assert len(problems) == 1 and "information_schema says d.t has columns (id, zzz)" in problems[0].reason
    assert names(h, None) == ["id", "a"]


def test_reset_keeps_the_seeds(tmp_path: Path) -> None:
    h = SchemaHistory.open(tmp_path)
    workload(h)
    h.record_seed(Position.of(F1, 1), _seed([("s", "int", "")], table="seeded"))
    h.flush()
    h.reset()
    again = SchemaHistory.open(tmp_path)
    assert [e.kind for e in again.entries] == ["seed"] and again.scanned is None
    assert names(again, None, TableName("d", "seeded")) == ["s"]


def test_ddl_the_store_catches_up_with_after_a_seed_lands_before_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The seed is read where the upstream is; the store, behind it, brings DDL from before that point
    afterwards: it applies in position order, and the table is unknown in between, not guessed."""
    monkeypatch.setattr(history_mod, "SNAPSHOT_EVERY", 2)
    h = SchemaHistory.open(tmp_path)
    feed(h, rec("CREATE TABLE other (x int)", 100))
    h.record_seed(Position.of(F2, 500), _seed([("id", "int", ""), ("late", "int", "")]))
    h.flush()
    assert names(h, Position.of(F1, 4)) == ["id", "late"]  # nothing touched t before the seed, so far
    assert list(tmp_path.glob("snapshot.*.json"))
    feed(h, rec("ALTER TABLE t ADD late int", 100, file=F2))  # before the seed's position
    feed(h, rec("CREATE TABLE late_t (q int)", 150, file=F2))
    for history in (h, SchemaHistory.open(tmp_path)):
        assert names(history, Position.of(F1, 4)) is None  # t's shape before the ALTER: not known
        assert names(history, Position.of(F2, 200)) == ["?unknown"]
        assert names(history, Position.of(F2, 501)) == ["id", "late"]
        assert names(history, None, TableName("d", "other")) == ["x"]
        assert names(history, None, TableName("d", "late_t")) == ["q"]  # not from a snapshot older than it


def test_a_cursor_moving_forward_answers_like_the_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history_mod, "SNAPSHOT_EVERY", 2)
    h = SchemaHistory.open(tmp_path)
    workload(h)
    cursor = h.cursor()
    positions = [Position.of(f, p) for f, p in ((F1, 4), (F1, 150), (F1, 350), (F2, 4), (F2, 450), (F2, 600))]
    for table in (T, TableName("d", "t_old")):
        for at in [*positions, Position.of(F1, 200), *positions]:  # forward, back, forward again
            assert cursor.table(table, at) == h.table_at(table, at), (table, at)
    # Appended entries are picked up on the way; an entry before the cursor starts it over.
    feed(h, rec("CREATE TABLE t (n int)", 700, file=F2))
    assert cursor.table(T, Position.of(F2, 701)) == h.table_at(T, Position.of(F2, 701))
    h.record_seed(Position.of(F1, 1), _seed([("s", "int", "")], table="seeded"))
    assert cursor.table(TableName("d", "seeded"), Position.of(F2, 800)) is not None
