"""``binhub schema show`` against a real MariaDB: a DDL-heavy workload relayed into a store, and the
history's answer at several positions compared with what information_schema.COLUMNS said at those
moments (captured during the workload: the independent oracle)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from tests.integration.conftest import PrimaryDb
from tests.integration.relayutil import BINHUB, run_relay
from tests.integration.workload import binlog_position

Columns = list[tuple[str, str, str | None, str | None, bool, str | None, str | None]]


def schema_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BINHUB, "schema", *args], capture_output=True, text=True, timeout=timeout)


def normalize_type(column_type: str) -> str:
    """information_schema's COLUMN_TYPE spelled as the history spells types (no integer display widths
    but TINYINT(1) and ZEROFILL, no YEAR(4))."""
    t = column_type.lower()
    if "zerofill" not in t and not t.startswith("tinyint(1)"):
        t = re.sub(r"^(tinyint|smallint|mediumint|int|bigint)\(\d+\)", r"\1", t)
    return re.sub(r"^year\(4\)", "year", t)


def info_schema_columns(conn: Any, db: str, table: str) -> Columns:
    with conn.cursor() as cur:
        cur.execute("SELECT COLUMN_NAME, COLUMN_TYPE, CHARACTER_SET_NAME, COLLATION_NAME, IS_NULLABLE, "
                    "COLUMN_DEFAULT, COLUMN_COMMENT FROM information_schema.COLUMNS "
                    "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION", (db, table))
        return [(str(n), normalize_type(str(t)), cs, co, nl == "YES", df, cm or None)
                for n, t, cs, co, nl, df, cm in cur.fetchall()]


def history_columns(doc: dict[str, Any]) -> Columns:
    out: Columns = []
    for c in doc["columns"]:
        charset = None if c["charset"] == "binary" else c["charset"]  # information_schema says NULL
        out.append((c["name"], c["type"], charset, c["collation"], c["nullable"], c["default"], c["comment"]))
    return out


def show(store: Path, table: str, at: str | None = None) -> dict[str, Any]:
    args = ["show", table, "--data-dir", str(store), "--format", "json"]
    if at is not None:
        args += ["--at", at]
    proc = schema_cli(*args)
    assert proc.returncode == 0, proc.stderr
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc


def test_schema_show_matches_information_schema_at_every_step(primary_db: PrimaryDb, tmp_path: Path) -> None:
    db, conn = primary_db.name, primary_db.conn

    def run(sql: str) -> None:
        with conn.cursor() as cur:
            cur.execute(sql)

    # Tables older than the store: their CREATE is not in it; the seed supplies them.
    run("CREATE TABLE pre (id INT PRIMARY KEY, note VARCHAR(5) CHARACTER SET latin1 DEFAULT 'n''o' COMMENT 'a note', "
        "amount DECIMAL(8,2) NOT NULL DEFAULT 1.5, at DATETIME(2) DEFAULT CURRENT_TIMESTAMP(2))")
    run("CREATE TABLE pre_untouched (k BIGINT UNSIGNED NOT NULL, v TEXT, PRIMARY KEY (k))")
    run("FLUSH BINARY LOGS")
    store_start = binlog_position(conn)[0]
    store = tmp_path / "store"
    proc = run_relay(primary_db.dsn, store, "--start-file", store_start)
    assert proc.returncode == 0, proc.stderr
    seeded = schema_cli("seed", "--data-dir", str(store), "--source", primary_db.sandbox.root_dsn)
    assert seeded.returncode == 0, seeded.stderr
    assert "seeded" in seeded.stderr

    # The workload: after each step, where the binlog stands and what information_schema says.
    moments: list[tuple[str, str, str, Columns]] = []  # (FILE:POS after the step, GTID, table, columns)

    def step(sql: str, table: str = "t") -> None:
        run(sql)
        file, pos, gtid = binlog_position(conn)
        moments.append((f"{file}:{pos}", gtid, table, info_schema_columns(conn, db, table)))

    step("CREATE TABLE t (id INT PRIMARY KEY, a VARCHAR(10), b TEXT, flag BOOL) DEFAULT CHARSET=latin1")
    run("INSERT INTO t VALUES (1, 'x', 'y', 1), (2, 'z', NULL, 0)")
    step("ALTER TABLE t ADD COLUMN c INT NOT NULL DEFAULT 0 FIRST, ADD d DATETIME(3) AFTER a")
    step("ALTER TABLE t DROP COLUMN b")
    step("ALTER TABLE t CHANGE a a2 VARCHAR(20) CHARACTER SET utf8mb4 AFTER d")
    step("ALTER TABLE t MODIFY c BIGINT UNSIGNED NOT NULL AFTER id")
    step("ALTER TABLE t RENAME COLUMN d TO d2, ADD e ENUM('x','y,z') NOT NULL DEFAULT 'x', ADD s SET('p','q')")
    run("UPDATE t SET flag = 0")
    # A gh-ost cut-over: the ghost table gets the change, then the swap.
    step("CREATE TABLE _t_gho LIKE t", "_t_gho")
    step("ALTER TABLE _t_gho ADD COLUMN ghost_col TIME(2) AFTER id, ALGORITHM=INPLACE", "_t_gho")
    step("RENAME TABLE t TO _t_del, _t_gho TO t")
    step("DROP TABLE _t_del")
    step("ALTER TABLE t ADD notes TEXT, ADD tiny TINYTEXT")  # latin1: the table's default
    step("ALTER TABLE t CONVERT TO CHARACTER SET utf8mb4")  # TEXT widens to MEDIUMTEXT
    step("ALTER TABLE t ADD (w1 INT, w2 VARBINARY(8))")
    step("ALTER TABLE pre ADD COLUMN z INT AFTER id, DROP COLUMN amount, ALTER COLUMN at DROP DEFAULT", "pre")
    step("CREATE TABLE g (id INT PRIMARY KEY, p POINT, j JSON, x INT INVISIBLE, y YEAR) DEFAULT CHARSET=gbk", "g")
    step("ALTER TABLE g ADD INDEX (y), ENGINE=InnoDB", "g")
    # Partition clauses change no column.
    step("CREATE TABLE part (id INT NOT NULL, d DATE NOT NULL, PRIMARY KEY (id, d)) "
         "PARTITION BY RANGE (YEAR(d)) (PARTITION p0 VALUES LESS THAN (2000), "
         "PARTITION p1 VALUES LESS THAN MAXVALUE)", "part")
    step("ALTER TABLE part REORGANIZE PARTITION p1 INTO "
         "(PARTITION p1 VALUES LESS THAN (2100), PARTITION p2 VALUES LESS THAN MAXVALUE)", "part")
    step("ALTER TABLE part ADD COLUMN v INT", "part")
    # Defaults and comments, through every clause that sets them.
    step("CREATE TABLE dflt (id INT PRIMARY KEY, a VARCHAR(9) DEFAULT 'NULL', b INT DEFAULT -5 COMMENT 'b''s', "
         "c DECIMAL(6,3) DEFAULT '2.5', d DATE DEFAULT '2020-1-2', e TIMESTAMP(3) NOT NULL DEFAULT "
         "CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3), f BIT(4) DEFAULT b'1010', g DOUBLE DEFAULT 1.5e1, "
         "h TINYINT(1) DEFAULT TRUE, i INT DEFAULT (1+2), j VARCHAR(5) NOT NULL, l DATE DEFAULT CURDATE(), "
         "m VARCHAR(20) DEFAULT CONCAT('a', 'b'), n YEAR DEFAULT 99, o INT DEFAULT (abs(-3) + 1), "
         "p VARCHAR(9) DEFAULT 0x41) COMMENT='defaults'", "dflt")
    step("ALTER TABLE dflt ALTER COLUMN a DROP DEFAULT, ALTER COLUMN j SET DEFAULT 'jj', "
         "ALTER b SET DEFAULT '7', MODIFY c DECIMAL(6,1) DEFAULT 3.14159 COMMENT 'pi'", "dflt")
    step("ALTER TABLE dflt CHANGE d d2 DATETIME(1) DEFAULT '2021-02-03 04:05:06.7', ALTER COLUMN j DROP DEFAULT, "
         "ADD k VARCHAR(3) DEFAULT _utf8mb4'x' AFTER id, COMMENT 'changed'", "dflt")
    step("ALTER TABLE pre MODIFY note VARCHAR(5) CHARACTER SET latin1 DEFAULT 'yes'", "pre")

    proc = run_relay(primary_db.dsn, store)
    assert proc.returncode == 0, proc.stderr

    full = f"{db}.t"
    for at, _, table, expected in moments:
        doc = show(store, f"{db}.{table}", at)
        assert doc["known"], (at, doc)
        assert history_columns(doc) == expected, f"{db}.{table} at {at}"
    # --at GTID: the state just after that transaction (here: each DDL's own GTID).
    for _, gtid, table, expected in moments[1::4]:
        doc = show(store, f"{db}.{table}", gtid)
        assert history_columns(doc) == expected, f"{db}.{table} at GTID {gtid}"
    # Before the first CREATE of t, the table did not exist; a position between two steps gets the earlier one.
    assert schema_cli("show", full, "--data-dir", str(store), "--at", f"{store_start}:4").returncode == 1
    # The end of the store, as the primary has it now, and the primary key.
    latest = show(store, full)
    assert history_columns(latest) == info_schema_columns(conn, db, "t")
    assert latest["primary_key"] == ["id"]
    assert [c["enum_values"] for c in latest["columns"] if c["name"] == "e"] == [["x", "y,z"]]
    # Seeded tables: from the store's start, and followed through the ALTER after the seed.
    assert history_columns(show(store, f"{db}.pre_untouched", f"{store_start}:4")) == \
        info_schema_columns(conn, db, "pre_untouched")
    pre_before = show(store, f"{db}.pre", f"{store_start}:4")
    assert [c["name"] for c in pre_before["columns"]] == ["id", "note", "amount", "at"]
    assert [c["default"] for c in pre_before["columns"]] == [None, "'n''o'", "1.50", "current_timestamp(2)"]
    assert pre_before["columns"][1]["charset"] == "latin1"
    assert history_columns(show(store, f"{db}.pre")) == info_schema_columns(conn, db, "pre")
    # Rebuilt from the store's QUERY events (the seed kept), the history gives the same answers.
    rebuilt = schema_cli("rebuild", "--data-dir", str(store))
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "0 problem(s)" in rebuilt.stderr
    for at, _, table, expected in moments[::3]:
        assert history_columns(show(store, f"{db}.{table}", at)) == expected, f"rebuilt: {db}.{table} at {at}"
    assert history_columns(show(store, f"{db}.pre_untouched", f"{store_start}:4")) == \
        info_schema_columns(conn, db, "pre_untouched")
    # The text form prints the same columns.
    text = schema_cli("show", full, "--data-dir", str(store))
    assert text.returncode == 0, text.stderr
    assert "ghost_col" in text.stdout and "time(2)" in text.stdout and "PRI" in text.stdout


def test_a_ddl_the_parser_cannot_read_is_reported_and_the_table_is_unknown(primary_db: PrimaryDb,
                                                                           tmp_path: Path) -> None:
    """A real statement binhub does not parse (a CREATE TABLE ... SELECT: its columns come from a query)
    makes its table unknown at that position, with the GTID and statement in the warning."""
    db, conn = primary_db.name, primary_db.conn
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE src (a INT, b VARCHAR(3))")
        cur.execute("SET SESSION binlog_format = 'STATEMENT'")
        cur.execute("CREATE TABLE copy SELECT * FROM src")
        cur.execute("SET SESSION binlog_format = 'ROW'")
        cur.execute("SELECT @@gtid_binlog_pos")
        gtid = str(cur.fetchone()[0])
    store = tmp_path / "store"
    proc = run_relay(primary_db.dsn, store, "--start-file", primary_db.start_file)
    assert proc.returncode == 0, proc.stderr
    shown = schema_cli("show", f"{db}.copy", "--data-dir", str(store), "--format", "json")
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["exists"] and not doc["known"] and doc["columns"] == []
    assert any("CREATE TABLE copy SELECT" in p["sql"] for p in doc["problems"])
    assert "unknown" in shown.stderr and gtid in shown.stderr
    assert history_columns(show(store, f"{db}.src")) == info_schema_columns(conn, db, "src")


def test_show_seeds_on_first_use_and_a_seed_from_another_server_is_refused(
        primary_db: PrimaryDb, mariadb_factory: Any, tmp_path: Path) -> None:
    db, conn = primary_db.name, primary_db.conn
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE old (id INT PRIMARY KEY, s SET('a','b') CHARACTER SET latin1)")
        cur.execute("FLUSH BINARY LOGS")
    store = tmp_path / "store"
    proc = run_relay(primary_db.dsn, store, "--start-file", binlog_position(conn)[0])
    assert proc.returncode == 0, proc.stderr
    missing = schema_cli("show", f"{db}.old", "--data-dir", str(store))
    assert missing.returncode == 1 and "schema seed" in missing.stderr  # says how to get it
    other = mariadb_factory("schema_other", server_id=7)
    refused = schema_cli("seed", "--data-dir", str(store), "--source", other.root_dsn)
    assert refused.returncode == 1 and "server_id 7" in refused.stderr and "server_id 1" in refused.stderr
    args = ["show", f"{db}.old", "--data-dir", str(store), "--format", "json", "--source", primary_db.sandbox.root_dsn]
    first = schema_cli(*args)
    assert first.returncode == 0, first.stderr
    assert "seeded" in first.stderr
    assert history_columns(json.loads(first.stdout)) == info_schema_columns(conn, db, "old")
    again = schema_cli(*args)  # seeded once: the second call reads no information_schema
    assert again.returncode == 0 and "seeded" not in again.stderr
