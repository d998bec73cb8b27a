"""``binhub flashback`` against a real MariaDB: a mistake (an UPDATE without WHERE, a bad DELETE)
relayed into a store and undone, by SQL piped into the mariadb client and by ``--apply``. The
oracle is the primary's own ``CHECKSUM TABLE`` from before the mistake."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import PrimaryDb
from tests.integration.relayutil import BINHUB, run_relay
from tests.integration.test_rows_decode import COLUMNS, ROWS, TABLE_DDL, _insert
from tests.integration.workload import table_checksums


def relay(primary_db: PrimaryDb, data_dir: Path) -> None:
    proc = run_relay(primary_db.dsn, data_dir, "--start-file", primary_db.start_file, "--server-id", "9311")
    assert proc.returncode == 0, proc.stderr


def flashback(data_dir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*BINHUB, "flashback", "--data-dir", str(data_dir), *args],
                          capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def last_gtid(cur: Any) -> str:
    cur.execute("SELECT @@last_gtid")
    return str(cur.fetchone()[0])


def run_sql(primary_db: PrimaryDb, sql: str) -> None:
    sb = primary_db.sandbox
    proc = subprocess.run(["mariadb", "--no-defaults", "-h127.0.0.1", f"-P{sb.port}", "-uroot", "--binary-mode"],
                          input=sql, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def undo(primary_db: PrimaryDb, data_dir: Path, mode: str, *range_args: str) -> None:
    if mode == "sql":
        run_sql(primary_db, flashback(data_dir, *range_args, "--sql").stdout)
    else:
        flashback(data_dir, *range_args, "--apply", primary_db.sandbox.root_dsn)


def make_accounts(cur: Any) -> None:
    cur.execute("CREATE TABLE acct (id INT PRIMARY KEY, balance DECIMAL(12,2), owner VARCHAR(30) CHARACTER SET "
                "utf8mb4, note TEXT, photo BLOB, opened DATETIME(6), seen TIMESTAMP(3) NULL, flags BIT(5), "
                "kind ENUM('a','b'), tags SET('x','y','z'), doc JSON, ratio FLOAT)")
    cur.execute("CREATE TABLE nokey (a INT, b VARCHAR(10), c DOUBLE)")
    for i in range(1, 21):
        cur.execute("INSERT INTO acct VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                    (i, f"{i * 10}.5", f"owner {i} ✓😀", "it's a \\ note\n" * (i % 3), bytes(range(i * 3)),
                     f"2024-01-{i:02d} 10:00:00.{i:06d}", f"2025-06-{i:02d} 01:02:03.{i:03d}", i % 32,
                     "ab"[i % 2], "x,z" if i % 2 else "", f'{{"n": {i}, "s": "ü"}}', i / 3))
    cur.executemany("INSERT INTO nokey VALUES (%s,%s,%s)", [(1, "dup", 0.5), (1, "dup", 0.5), (2, None, None)])


@pytest.mark.parametrize("mode", ["sql", "apply"])
def test_flashback_undoes_an_update_without_where_and_a_bad_delete(primary_db: PrimaryDb, tmp_path: Path,
                                                                     mode: str) -> None:
    cur = primary_db.conn.cursor()
    make_accounts(cur)
    before = table_checksums(primary_db.conn, primary_db.name)
    cur.execute("UPDATE acct SET balance = 0, owner = 'oops', doc = '{}', flags = 0, ratio = 1.25")
    first = last_gtid(cur)
    cur.execute("DELETE FROM acct WHERE id > 5")
    cur.execute("UPDATE nokey SET b = 'gone', c = 1")
    cur.execute("DELETE FROM nokey WHERE a = 1 LIMIT 1")
    last = last_gtid(cur)
    assert table_checksums(primary_db.conn, primary_db.name) != before
    data_dir = tmp_path / "store"
    relay(primary_db, data_dir)
    undo(primary_db, data_dir, mode, "--start-gtid", first, "--stop-gtid", last)
    assert table_checksums(primary_db.conn, primary_db.name) == before


def test_sql_names_each_original_transaction_newest_first(primary_db: PrimaryDb, tmp_path: Path) -> None:
    cur = primary_db.conn.cursor()
    cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
    cur.execute("FLUSH BINARY LOGS")  # the range starts in the store's second file, and ends in its third
    time.sleep(1.1)  # the CREATE TABLE is committed a second before --start-datetime
    cur.execute("SELECT UTC_TIMESTAMP()")
    started = cur.fetchone()[0]
    cur.execute("INSERT INTO t VALUES (1, 1), (2, 2)")
    a = last_gtid(cur)
    cur.execute("FLUSH BINARY LOGS")
    cur.execute("UPDATE t SET v = 10 WHERE id = 1")
    b = last_gtid(cur)
    data_dir = tmp_path / "store"
    relay(primary_db, data_dir)
    out = flashback(data_dir, "--start-gtid", a, "--stop-gtid", b).stdout
    by_time = flashback(data_dir, "--start-datetime", f"{started:%Y-%m-%d %H:%M:%S}", "--tz", "UTC").stdout
    assert by_time == out
    assert out.index(f"GTID {b} ") < out.index(f"GTID {a} ")
    assert out.count("BEGIN;") == 2 and out.count("COMMIT;") == 2
    table = f"`{primary_db.name}`.`t`"
    assert f"UPDATE {table} SET `v` = 1 WHERE `id` = 1;" in out
    assert f"DELETE FROM {table} WHERE `id` = 1;" in out and f"DELETE FROM {table} WHERE `id` = 2;" in out


def test_a_row_changed_after_the_range_is_refused_unless_forced(primary_db: PrimaryDb, tmp_path: Path) -> None:
    cur = primary_db.conn.cursor()
    make_accounts(cur)
    before = table_checksums(primary_db.conn, primary_db.name)
    cur.execute("UPDATE acct SET balance = 0")
    bad = last_gtid(cur)
    cur.execute("UPDATE acct SET balance = 99 WHERE id = 7")
    later = last_gtid(cur)
    after_all = table_checksums(primary_db.conn, primary_db.name)
    data_dir = tmp_path / "store"
    relay(primary_db, data_dir)
    proc = flashback(data_dir, "--start-gtid", bad, "--stop-gtid", bad, "--apply", primary_db.sandbox.root_dsn,
                     check=False)
    assert proc.returncode != 0
    assert "acct" in proc.stderr and "id=7" in proc.stderr and later in proc.stderr, proc.stderr
    assert table_checksums(primary_db.conn, primary_db.name) == after_all, "a refusal writes nothing"
    flashback(data_dir, "--start-gtid", bad, "--stop-gtid", bad, "--apply", primary_db.sandbox.root_dsn, "--force")
    assert table_checksums(primary_db.conn, primary_db.name) == before


def test_ddl_in_the_range_is_reported_and_refused_unless_skipped(primary_db: PrimaryDb, tmp_path: Path) -> None:
    cur = primary_db.conn.cursor()
    cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
    cur.execute("INSERT INTO t VALUES (1, 1)")
    cur.execute("DELETE FROM t")
    first = last_gtid(cur)
    cur.execute("ALTER TABLE t ADD COLUMN w INT")
    ddl = last_gtid(cur)
    data_dir = tmp_path / "store"
    relay(primary_db, data_dir)
    proc = flashback(data_dir, "--start-gtid", first, "--stop-gtid", ddl, check=False)
    assert proc.returncode != 0
    assert ddl in proc.stderr and "ALTER TABLE t ADD COLUMN w INT" in proc.stderr and "--skip-ddl" in proc.stderr
    out = flashback(data_dir, "--start-gtid", first, "--stop-gtid", ddl, "--skip-ddl").stdout
    assert f"INSERT INTO `{primary_db.name}`.`t` (`id`, `v`) VALUES (1, 1);" in out
    assert "ALTER" not in out


def test_every_column_type_round_trips(primary_db: PrimaryDb, tmp_path: Path) -> None:
    cur = primary_db.conn.cursor()
    cur.execute("SET SESSION sql_mode = '', time_zone = '+00:00'")
    cur.execute(TABLE_DDL)
    for row in ROWS:
        _insert(cur, row)
    before = table_checksums(primary_db.conn, primary_db.name)
    cur.execute("UPDATE every_type SET ti = 1, vc = 'x', j = '{}', b13 = 3, g = POINT(5, 5), e = 'b', s = 'y', "
                "bn = 'zz', dtm6 = '2001-01-01 00:00:00.5', t6 = '01:00:00', lbl = 'short', f = 2.5")
    first = last_gtid(cur)
    cur.execute("DELETE FROM every_type WHERE id > 2")
    last = last_gtid(cur)
    data_dir = tmp_path / "store"
    relay(primary_db, data_dir)
    for mode in ("sql", "apply"):
        cur.execute("SET SESSION sql_mode = '', time_zone = '+00:00'")
        undo(primary_db, data_dir, mode, "--start-gtid", first, "--stop-gtid", last)
        assert table_checksums(primary_db.conn, primary_db.name) == before, mode
        assert len(COLUMNS) == 52
        # back to the mistake for the next mode
        cur.execute("UPDATE every_type SET ti = 1, vc = 'x', j = '{}', b13 = 3, g = POINT(5, 5), e = 'b', "
                    "s = 'y', bn = 'zz', dtm6 = '2001-01-01 00:00:00.5', t6 = '01:00:00', lbl = 'short', f = 2.5")
        cur.execute("DELETE FROM every_type WHERE id > 2")


def test_a_range_larger_than_memory_spills_to_disk(primary_db: PrimaryDb, tmp_path: Path) -> None:
    cur = primary_db.conn.cursor()
    make_accounts(cur)
    before = table_checksums(primary_db.conn, primary_db.name)
    for i in range(1, 21):
        cur.execute("UPDATE acct SET balance = balance + 1, note = REPEAT('n', 500) WHERE id = %s", (i,))
        if i == 1:
            first = last_gtid(cur)
    cur.execute("DELETE FROM acct")
    last = last_gtid(cur)
    data_dir = tmp_path / "store"
    relay(primary_db, data_dir)
    spill = tmp_path / "spill"
    spill.mkdir()
    in_memory = flashback(data_dir, "--start-gtid", first, "--stop-gtid", last).stdout
    spilled = flashback(data_dir, "--start-gtid", first, "--stop-gtid", last, "--memory", "4KiB",
                        "--temp-dir", str(spill), "--log-level", "info")
    assert spilled.stdout == in_memory
    assert "spill" in spilled.stderr
    assert not list(spill.iterdir()), "the spill directory is removed afterwards"
    run_sql(primary_db, spilled.stdout)
    assert table_checksums(primary_db.conn, primary_db.name) == before


def test_bounds_that_match_nothing_are_clear_errors(primary_db: PrimaryDb, tmp_path: Path) -> None:
    cur = primary_db.conn.cursor()
    cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    cur.execute("INSERT INTO t VALUES (1)")
    gtid = last_gtid(cur)
    data_dir = tmp_path / "store"
    relay(primary_db, data_dir)
    domain, server, seq = gtid.split("-")
    missing = f"{domain}-{server}-{int(seq) + 1000}"
    cases = [
        (["--start-gtid", missing], f"matches the start (GTID {missing})"),
        (["--start-gtid", gtid, "--stop-gtid", missing], f"--stop-gtid {missing} is not in the store"),
        (["--start-datetime", "2999-01-01 00:00:00"], "matches the start (2999-01-01 00:00:00 UTC)"),
        (["--start-gtid", gtid, "--stop-datetime", "2000-01-01 00:00:00"], "is already past the stop"),
        (["--start-file", "nosuch-bin.000001"], "is not in the store"),
        (["--start-datetime", "yesterday"], "is not a time"),
        (["--start-datetime", "2020-01-01", "--tz", "Mars/Olympus"], "is not a time zone"),
    ]
    for args, words in cases:
        proc = flashback(data_dir, *args, check=False)
        assert proc.returncode != 0 and words in proc.stderr, (args, proc.stderr)


def test_minimal_row_images_are_refused(primary_db: PrimaryDb, tmp_path: Path) -> None:
    cur = primary_db.conn.cursor()
    cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT, w INT)")
    cur.execute("INSERT INTO t VALUES (1, 1, 1)")
    cur.execute("SET SESSION binlog_row_image = 'MINIMAL'")
    cur.execute("UPDATE t SET v = 2")
    gtid = last_gtid(cur)
    cur.execute("SET SESSION binlog_row_image = 'FULL'")
    data_dir = tmp_path / "store"
    relay(primary_db, data_dir)
    proc = flashback(data_dir, "--start-gtid", gtid, "--stop-gtid", gtid, check=False)
    assert proc.returncode != 0 and "binlog_row_image MINIMAL or NOBLOB" in proc.stderr and gtid in proc.stderr


def test_rows_of_a_table_without_a_key_changed_later_are_refused(primary_db: PrimaryDb, tmp_path: Path) -> None:
    """Without a key, rows are told apart by their values: a later change to the number of rows
    identical to one the range deleted or updated refuses the undo; changes that cancel out do not."""
    cur = primary_db.conn.cursor()
    cur.execute("CREATE TABLE bag (a INT, b VARCHAR(10))")
    cur.executemany("INSERT INTO bag VALUES (%s, %s)", [(1, "x"), (1, "x"), (2, "y"), (3, None)])
    before = table_checksums(primary_db.conn, primary_db.name)
    cur.execute("DELETE FROM bag WHERE a = 1 LIMIT 1")
    first = last_gtid(cur)
    cur.execute("UPDATE bag SET b = 'z' WHERE a = 2")
    last = last_gtid(cur)
    data_dir = tmp_path / "store"
    target = primary_db.sandbox.root_dsn

    def attempt() -> subprocess.CompletedProcess[str]:
        relay(primary_db, data_dir)
        return flashback(data_dir, "--start-gtid", first, "--stop-gtid", last, "--apply", target, check=False)

    cur.execute("INSERT INTO bag VALUES (1, 'x')")  # one more row identical to the deleted one
    later = last_gtid(cur)
    unchanged = table_checksums(primary_db.conn, primary_db.name)
    proc = attempt()
    assert proc.returncode != 0 and "bag" in proc.stderr and "no key" in proc.stderr and later in proc.stderr, \
        proc.stderr
    assert table_checksums(primary_db.conn, primary_db.name) == unchanged, "a refusal writes nothing"
    cur.execute("DELETE FROM bag WHERE a = 1 LIMIT 1")  # cancels it out
    cur.execute("INSERT INTO bag VALUES (2, 'z')")  # one more row like the one the range updated
    later = last_gtid(cur)
    proc = attempt()
    assert proc.returncode != 0 and later in proc.stderr and "b='z'" in proc.stderr, proc.stderr
    cur.execute("DELETE FROM bag WHERE a = 2 LIMIT 1")  # back to what the range left
    assert attempt().returncode == 0
    assert table_checksums(primary_db.conn, primary_db.name) == before
def test_the_summary_counts_only_the_ranges_transactions(primary_db: PrimaryDb, tmp_path: Path) -> None:
    """A range across a binlog rotation: the new file's header events (FORMAT_DESCRIPTION, GTID_LIST,
    BINLOG_CHECKPOINT) are no transactions (they were counted, and a range selected by time began
    with one: '… of 18 transactions (None … 0-1-10)')."""
    cur = primary_db.conn.cursor()
    cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    gtids = []
    for i in range(3):
        cur.execute("INSERT INTO t VALUES (%s)", (i,))
        gtids.append(last_gtid(cur))
    cur.execute("FLUSH BINARY LOGS")
    cur.execute("DELETE FROM t WHERE id = 1")
    gtids.append(last_gtid(cur))
    relay(primary_db, tmp_path / "store")
    proc = flashback(tmp_path / "store", "--start-gtid", gtids[0], "--stop-datetime", "2100-01-01 00:00:00", "--sql")
    assert proc.stderr.strip().splitlines()[-1] == \
        f"-- 4 row changes of 4 transactions ({gtids[0]} … {gtids[-1]}) undone by 4 statements", proc.stderr
