"""``binhub stream --to mysql://``: the primary's changes relayed into a store and applied to a
second, empty MariaDB. The oracle is the primary itself: every table's CHECKSUM TABLE downstream
equals the primary's."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from binhub.sandbox import Sandbox
from tests.integration.applyutil import apply, assert_same_tables, checksums, query, relay
from tests.integration.conftest import PrimaryDb
from tests.integration.test_stream import write_workload

BIG = 17 << 20  # a row over 16 MiB: more than one protocol packet




def more_workload(primary_db: PrimaryDb) -> None:
    """JSON documents, a row over 16 MiB, a multi-statement transaction and a table without a key."""
    c = primary_db.conn.cursor()
    c.execute("CREATE TABLE docs (id INT PRIMARY KEY, doc JSON, body LONGBLOB, note TEXT)")
    c.execute("INSERT INTO docs VALUES (1, %s, NULL, 'j'), (2, '[1, 2.5, \"x\", null]', '', NULL)",
              (json.dumps({"a": {"b": [1, 2, {"c": "ü"}]}, "n": None}),))
    c.execute("INSERT INTO docs VALUES (3, '{}', %s, 'big')", (bytes(range(256)) * (BIG // 256),))
    c.execute("UPDATE docs SET doc = JSON_SET(doc, '$.a.z', 5) WHERE id = 1")
    c.execute("BEGIN")
    for i in range(10, 200):
        c.execute("INSERT INTO docs (id, doc, note) VALUES (%s, '{\"i\": 1}', %s)", (i, f"row {i}"))
    c.execute("UPDATE docs SET note = CONCAT(note, '!') WHERE id BETWEEN 50 AND 60")
    c.execute("DELETE FROM docs WHERE id BETWEEN 100 AND 120")
    c.execute("COMMIT")
    c.execute("UPDATE docs SET body = REVERSE(body) WHERE id = 3")


def test_stream_to_mysql_reproduces_every_table(primary_db: PrimaryDb, fresh_downstream: Sandbox, tmp_path: Path) -> None:
    write_workload(primary_db)
    more_workload(primary_db)
    relay(primary_db, tmp_path / "store")
    apply(tmp_path / "store", fresh_downstream, primary_db.name)
    assert_same_tables(primary_db.sandbox, fresh_downstream, primary_db.name)
    # The checkpoint row names where the stream stands; a second run applies nothing twice.
    rows = query(fresh_downstream, "SELECT file, pos, gtid_set FROM binhub.stream_checkpoint WHERE stream = %s",
                 (primary_db.name,))
    assert rows and rows[0][2]
    apply(tmp_path / "store", fresh_downstream, primary_db.name)
    assert_same_tables(primary_db.sandbox, fresh_downstream, primary_db.name)
    assert checksums(fresh_downstream, primary_db.name)["docs"] is not None


def hot_workload(primary_db: PrimaryDb, transactions: int = 600) -> None:
    """Many small transactions, most on a few hot rows (counters), some on unique keys that move."""
    c = primary_db.conn.cursor()
    c.execute("CREATE TABLE hot (id INT PRIMARY KEY, n BIGINT NOT NULL, tag VARCHAR(20) NOT NULL, UNIQUE KEY (tag))")
    c.execute("CREATE TABLE log (id INT AUTO_INCREMENT PRIMARY KEY, hot_id INT, n BIGINT)")
    c.execute("CREATE TABLE bag (a INT, b INT)")  # no key: one key for the table
    c.execute("INSERT INTO hot VALUES " + ",".join(f"({i}, 0, 'tag{i}')" for i in range(1, 9)))
    for t in range(transactions):
        c.execute("BEGIN")
        if t % 3 == 2:  # independent of the hot rows: free to go to any worker
            c.execute("INSERT INTO log (hot_id, n) VALUES (NULL, %s), (NULL, %s)", (t, -t))
            c.execute("COMMIT")
            continue
        hot = 1 + (t * 7) % 8
        c.execute("UPDATE hot SET n = (n * 3 + %s) %% 1000000007 WHERE id = %s", (t, hot))  # order-sensitive
        c.execute("INSERT INTO log (hot_id, n) SELECT id, n FROM hot WHERE id = %s", (hot,))
        if t % 50 == 0:  # a unique key moves between rows: tag swaps
            c.execute("UPDATE hot SET tag = 'tmp' WHERE id = 1")
            c.execute("UPDATE hot SET tag = 'tag1' WHERE id = 2")
            c.execute("UPDATE hot SET tag = 'tag2' WHERE id = 1")
        if t % 10 == 0:
            c.execute("INSERT INTO bag VALUES (%s, %s)", (t % 3, t))
            c.execute("DELETE FROM bag WHERE a = %s LIMIT 1", ((t + 1) % 3,))
        c.execute("COMMIT")


@pytest.mark.parametrize("extra", [("--workers", "8"), ("--workers", "8", "--ordered")], ids=["workers8", "ordered"])
def test_parallel_workers_on_hot_rows(primary_db: PrimaryDb, fresh_downstream: Sandbox, tmp_path: Path,
                                      extra: tuple[str, ...]) -> None:
    hot_workload(primary_db)
    relay(primary_db, tmp_path / "store")
    apply(tmp_path / "store", fresh_downstream, primary_db.name, *extra)
    assert_same_tables(primary_db.sandbox, fresh_downstream, primary_db.name)
    slots = query(fresh_downstream, "SELECT slot FROM binhub.stream_checkpoint WHERE stream = %s", (primary_db.name,))
    assert len(slots) > 2, "several workers committed"


def _gtid_of(stderr: str) -> str:
    m = re.search(r"GTID (\d+-\d+-\d+)", stderr)
    assert m, stderr
    return m.group(1)


def test_a_duplicate_key_stops_naming_the_row_and_overwrite_resolves_it(
        primary_db: PrimaryDb, fresh_downstream: Sandbox, tmp_path: Path) -> None:
    c = primary_db.conn.cursor()
    c.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10))")
    relay(primary_db, tmp_path / "store")
    apply(tmp_path / "store", fresh_downstream, primary_db.name)
    query(fresh_downstream, f"INSERT INTO `{primary_db.name}`.t VALUES (2, 'theirs')")  # changed outside the stream
    c.execute("INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    relay(primary_db, tmp_path / "store")
    proc = apply(tmp_path / "store", fresh_downstream, primary_db.name, check=False)
    assert proc.returncode != 0
    assert "duplicate key on insert into" in proc.stderr and f"{primary_db.name}.t" in proc.stderr
    assert "id=2" in proc.stderr and _gtid_of(proc.stderr)
    assert query(fresh_downstream, f"SELECT id FROM `{primary_db.name}`.t ORDER BY id") == [(2,)], "nothing applied"
    apply(tmp_path / "store", fresh_downstream, primary_db.name, "--on-conflict", "overwrite")
    assert_same_tables(primary_db.sandbox, fresh_downstream, primary_db.name)


def test_a_missing_row_stops_and_skip_goes_on(primary_db: PrimaryDb, fresh_downstream: Sandbox, tmp_path: Path) -> None:
    c = primary_db.conn.cursor()
    c.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10))")
    c.execute("INSERT INTO t VALUES (1, 'a'), (2, 'b')")
    relay(primary_db, tmp_path / "store")
    apply(tmp_path / "store", fresh_downstream, primary_db.name)
    query(fresh_downstream, f"DELETE FROM `{primary_db.name}`.t WHERE id = 1")
    c.execute("UPDATE t SET v = 'x' WHERE id = 1")
    c.execute("UPDATE t SET v = 'y' WHERE id = 2")
    relay(primary_db, tmp_path / "store")
    proc = apply(tmp_path / "store", fresh_downstream, primary_db.name, check=False)
    assert proc.returncode != 0 and "missing row on update into" in proc.stderr and "id=1" in proc.stderr
    apply(tmp_path / "store", fresh_downstream, primary_db.name, "--on-conflict", "skip")
    assert query(fresh_downstream, f"SELECT id, v FROM `{primary_db.name}`.t") == [(2, "y")]


def test_a_ddl_the_downstream_rejects_stops_and_can_be_skipped(
        primary_db: PrimaryDb, fresh_downstream: Sandbox, tmp_path: Path) -> None:
    c = primary_db.conn.cursor()
    c.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
    c.execute("INSERT INTO t VALUES (1, 1)")
    c.execute("ALTER TABLE t ADD COLUMN w INT DEFAULT 5")
    c.execute("INSERT INTO t VALUES (2, 2, 2)")
    relay(primary_db, tmp_path / "store")
    query(fresh_downstream, f"CREATE DATABASE `{primary_db.name}`")
    query(fresh_downstream, f"CREATE TABLE `{primary_db.name}`.t (id INT PRIMARY KEY, v INT, w INT DEFAULT 5)")
    proc = apply(tmp_path / "store", fresh_downstream, primary_db.name, check=False)
    assert proc.returncode != 0 and "refused the DDL" in proc.stderr
    assert "CREATE DATABASE" in proc.stderr, "the first DDL the downstream refuses is named"
    # Each refused DDL is named with its GTID; skipped (handled by hand), the stream goes on.
    skips = [_gtid_of(proc.stderr)]
    while True:
        proc = apply(tmp_path / "store", fresh_downstream, primary_db.name,
                     *[a for g in skips for a in ("--skip-gtid", g)], check=False)
        if proc.returncode == 0:
            break
        assert "refused the DDL" in proc.stderr and len(skips) < 4, proc.stderr
        skips.append(_gtid_of(proc.stderr))
    assert len(skips) == 3  # CREATE DATABASE, CREATE TABLE, ALTER TABLE ADD w
    assert_same_tables(primary_db.sandbox, fresh_downstream, primary_db.name)


def test_tables_are_matched_by_name_and_renamed(primary_db: PrimaryDb, fresh_downstream: Sandbox,
                                                tmp_path: Path) -> None:
    c = primary_db.conn.cursor()
    c.execute("CREATE TABLE src (id INT PRIMARY KEY, a VARCHAR(10), b DOUBLE)")
    relay(primary_db, tmp_path / "store")
    renamed = primary_db.name + "_r"
    query(fresh_downstream, f"DROP DATABASE IF EXISTS `{renamed}`")
    query(fresh_downstream, f"CREATE DATABASE `{renamed}`")
    try:
        # another order, an extra column, another name
        query(fresh_downstream, f"CREATE TABLE `{renamed}`.dst (extra INT DEFAULT 42, b DOUBLE, id INT PRIMARY KEY, "
                                "a VARCHAR(10))")
        c.execute("INSERT INTO src VALUES (1, 'x', 0.1), (2, 'y', 1e300)")
        c.execute("UPDATE src SET a = 'z' WHERE id = 1")
        c.execute("DELETE FROM src WHERE id = 2")
        c.execute("INSERT INTO src VALUES (3, NULL, -0.5)")
        relay(primary_db, tmp_path / "store")
        skip = [a for g in _ddl_gtids(primary_db) for a in ("--skip-gtid", g)]
        apply(tmp_path / "store", fresh_downstream, primary_db.name, "--rename", f"{primary_db.name}.src={renamed}.dst",
              *skip)
        assert query(fresh_downstream, f"SELECT id, a, b, extra FROM `{renamed}`.dst ORDER BY id") == [
            (1, "z", 0.1, 42), (3, None, -0.5, 42)]
    finally:
        query(fresh_downstream, f"DROP DATABASE IF EXISTS `{renamed}`")


def _ddl_gtids(primary_db: PrimaryDb) -> list[str]:
    """The GTIDs of the test's DDL so far (CREATE DATABASE, CREATE TABLE), from the primary's binlog."""
    rows = query(primary_db.sandbox, f"SHOW BINLOG EVENTS IN '{primary_db.start_file}'")
    gtids, current = [], None
    for row in rows:
        info = row[5]
        if row[2] == "Gtid":
            m = re.search(r"GTID (\d+-\d+-\d+)", info)
            current = m.group(1) if m else None
        elif row[2] == "Query" and current and re.sub(r"^use `[^`]*`; ", "", info).split(" ", 1)[0].upper() in (
                "CREATE", "ALTER", "DROP"):
            gtids.append(current)
    return gtids


def test_a_missing_row_on_delete_and_a_key_moved_onto_a_taken_one_stop(
        primary_db: PrimaryDb, fresh_downstream: Sandbox, tmp_path: Path) -> None:
    """The other two kinds of conflict: a DELETE that finds no row, an UPDATE that moves a row onto
    a key the downstream already holds; each stops naming the row, then --on-conflict resolves it."""
    db = primary_db.name
    c = primary_db.conn.cursor()
    c.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10))")
    c.execute("INSERT INTO t VALUES (1, 'a'), (2, 'b')")
    relay(primary_db, tmp_path / "store")
    apply(tmp_path / "store", fresh_downstream, db)
    query(fresh_downstream, f"DELETE FROM `{db}`.t WHERE id = 1")  # changed outside the stream
    query(fresh_downstream, f"INSERT INTO `{db}`.t VALUES (9, 'theirs')")
    c.execute("DELETE FROM t WHERE id = 1")
    c.execute("UPDATE t SET id = 9 WHERE id = 2")
    relay(primary_db, tmp_path / "store")
    proc = apply(tmp_path / "store", fresh_downstream, db, check=False)
    assert proc.returncode != 0 and "missing row on delete" in proc.stderr and "id=1" in proc.stderr, proc.stderr
    proc = apply(tmp_path / "store", fresh_downstream, db, "--skip-gtid", _gtid_of(proc.stderr), check=False)
    assert proc.returncode != 0 and "duplicate key on update" in proc.stderr and "id=2" in proc.stderr, proc.stderr
    proc = apply(tmp_path / "store", fresh_downstream, db, "--on-conflict", "skip", check=False)
    assert proc.returncode == 0, proc.stderr  # skip: the delete is done, the moved row stays theirs
    assert query(fresh_downstream, f"SELECT id, v FROM `{db}`.t ORDER BY id") == [(2, "b"), (9, "theirs")]


def test_an_upstream_column_the_downstream_lacks_stops_naming_it(
        primary_db: PrimaryDb, fresh_downstream: Sandbox, tmp_path: Path) -> None:
    db = primary_db.name
    c = primary_db.conn.cursor()
    c.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
    relay(primary_db, tmp_path / "store")
    apply(tmp_path / "store", fresh_downstream, db)
    query(fresh_downstream, f"ALTER TABLE `{db}`.t DROP COLUMN v")  # the downstream's table differs
    c.execute("INSERT INTO t VALUES (1, 1)")
    relay(primary_db, tmp_path / "store")
    proc = apply(tmp_path / "store", fresh_downstream, db, check=False)
    assert proc.returncode != 0 and f"{db}.t has no column 'v'" in proc.stderr, proc.stderr
    assert query(fresh_downstream, f"SELECT COUNT(*) FROM `{db}`.t") == [(0,)]
    query(fresh_downstream, f"ALTER TABLE `{db}`.t ADD COLUMN v INT")  # fixed by hand: the stream goes on
    apply(tmp_path / "store", fresh_downstream, db)
    assert_same_tables(primary_db.sandbox, fresh_downstream, db)


def test_a_workers_error_after_the_last_check_is_raised_by_close(fresh_downstream: Sandbox) -> None:
    # A worker can fail after the stream's last look at the scheduler, as the stream closes the sink
    # (a missing row in the last group of a run with --until-caught-up): close raises it, so the
    # run does not exit 0 as if everything had been applied.
    from binhub.errors import ApplyConflict
    from binhub.sinks.mysql.dsn import parse_mysql_target
    from binhub.sinks.mysql.sink import MysqlSink

    sink = MysqlSink(parse_mysql_target(f"mysql://root@127.0.0.1:{fresh_downstream.port}"), "late-error")
    sink.commit()
    sink.scheduler.failed(ApplyConflict("missing row on update into d.t"))
    with pytest.raises(ApplyConflict, match="missing row"):
        sink.close()
    assert all(not w.downstream.connected for w in sink.workers) and not sink.main.connected
