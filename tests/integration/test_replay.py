"""``binhub replay`` against real MariaDB servers: a store (and the jsonl a stream wrote from it)
replayed up to the GTID before a bad ``DROP TABLE`` gives the tables a real replica has after
``START SLAVE UNTIL master_gtid_pos=`` that GTID (the oracle: ``CHECKSUM TABLE`` per table)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from binhub.sandbox import Sandbox
from tests.integration.conftest import PrimaryDb
from tests.integration.relayutil import BINHUB
from tests.integration.test_flashback import last_gtid, make_accounts, relay
from tests.integration.workload import table_checksums, wait_until


def replay(source: Path, target: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*BINHUB, "replay", str(source), "--to", target, *args],
                          capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def checksums(sb: Sandbox, db: str) -> dict[str, int | None]:
    conn = sb.connect()
    try:
        return table_checksums(conn, db)
    finally:
        conn.close()


def workload_then_bad_drop(cur: Any) -> str:
    """Tables with every kind of change and DDL, then a bad DROP TABLE; the GTID just before it."""
    make_accounts(cur)
    cur.execute("CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, acct INT, total DECIMAL(10,2))")
    for i in range(30):
        cur.execute("INSERT INTO orders (acct, total) VALUES (%s, %s)", (i % 7, f"{i}.99"))
    cur.execute("BEGIN")
    cur.execute("UPDATE acct SET balance = balance * 2 WHERE id % 3 = 0")
    cur.execute("DELETE FROM orders WHERE id % 4 = 0")
    cur.execute("COMMIT")
    cur.execute("ALTER TABLE orders ADD COLUMN status ENUM('new','paid') NOT NULL DEFAULT 'new' AFTER acct")
    cur.execute("UPDATE orders SET status = 'paid' WHERE acct = 3")
    cur.execute("UPDATE nokey SET c = 9 WHERE a = 2")
    before = last_gtid(cur)
    cur.execute("DROP TABLE acct")
    cur.execute("INSERT INTO orders (acct, total) VALUES (99, 1)")
    return before


def replicate_until(replica: Sandbox, primary_db: PrimaryDb, until: str) -> None:
    sb = primary_db.sandbox
    replica.execute("STOP SLAVE", "SET GLOBAL gtid_strict_mode = 0", f"SET GLOBAL gtid_slave_pos = '{primary_db.start_gtid}'",
                    f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={sb.port}, MASTER_USER='{sb.repl_user}', "
                    f"MASTER_PASSWORD='{sb.repl_password}', MASTER_CONNECT_RETRY=1, MASTER_USE_GTID=slave_pos",
                    f"START SLAVE UNTIL master_gtid_pos = '{until}'")

    def stopped() -> bool:
        conn = replica.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW SLAVE STATUS")
                row = cur.fetchone()
                names = [d[0] for d in cur.description or ()]
        finally:
            conn.close()
        status = dict(zip(names, row, strict=True)) if row else {}
        assert not status.get("Last_SQL_Error"), status.get("Last_SQL_Error")
        return status.get("Slave_SQL_Running") == "No" and status.get("Slave_IO_Running") == "No"
    wait_until(stopped, timeout=60, message=f"{replica.name} did not stop at {until}")


def test_replay_to_the_gtid_before_a_bad_drop_equals_a_replica_stopped_there(
        primary_db: PrimaryDb, replicas: list[Sandbox], tmp_path: Path) -> None:
    before_drop = workload_then_bad_drop(primary_db.conn.cursor())
    data_dir = tmp_path / "store"
    relay(primary_db, data_dir)
    real, from_store, from_jsonl = replicas
    replicate_until(real, primary_db, before_drop)
    expected = checksums(real, primary_db.name)
    assert set(expected) == {"acct", "nokey", "orders"}

    replay(data_dir, from_store.root_dsn, "--stop-gtid", before_drop)
    assert checksums(from_store, primary_db.name) == expected

    jsonl = tmp_path / "jsonl"
    proc = subprocess.run([*BINHUB, "stream", "--data-dir", str(data_dir), "--to", f"jsonl:{jsonl}",
                           "--until-caught-up"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    # jsonl carries no column types: they come from the target, whose tables the replayed DDL made
    replay(jsonl, from_jsonl.root_dsn, "--stop-gtid", before_drop)
    assert checksums(from_jsonl, primary_db.name) == expected


def test_dry_run_prints_and_runs_nothing(primary_db: PrimaryDb, replicas: list[Sandbox], tmp_path: Path) -> None:
    cur = primary_db.conn.cursor()
    cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARBINARY(10))")
    first = last_gtid(cur)
    cur.execute("INSERT INTO t VALUES (1, 0x00ff)")
    last = last_gtid(cur)
    data_dir = tmp_path / "store"
    relay(primary_db, data_dir)
    target = replicas[0]
    out = replay(data_dir, target.root_dsn, "--start-gtid", first, "--stop-gtid", last, "--dry-run").stdout
    assert f"USE `{primary_db.name}`;\nCREATE TABLE t (id INT PRIMARY KEY, v VARBINARY(10));" in out
    assert f"BEGIN;\nINSERT INTO `{primary_db.name}`.`t` (`id`, `v`) VALUES (1, X'00ff');\nCOMMIT;" in out
    # --rename: the SQL the sink would run, renamed as it renames it
    out = replay(data_dir, target.root_dsn, "--start-gtid", first, "--stop-gtid", last, "--dry-run",
                 "--rename", f"{primary_db.name}.t=other.t2").stdout
    assert f"USE `{primary_db.name}`;\nCREATE TABLE `other`.`t2` (id INT PRIMARY KEY, v VARBINARY(10));" in out
    assert "BEGIN;\nINSERT INTO `other`.`t2` (`id`, `v`) VALUES (1, X'00ff');\nCOMMIT;" in out
    conn = target.connect()
    try:
        with conn.cursor() as c:
            c.execute("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (primary_db.name,))
            assert c.fetchone()[0] == 0
    finally:
        conn.close()


def test_replay_bounds_that_match_nothing(primary_db: PrimaryDb, replicas: list[Sandbox], tmp_path: Path) -> None:
    cur = primary_db.conn.cursor()
    cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    gtid = last_gtid(cur)
    data_dir = tmp_path / "store"
    relay(primary_db, data_dir)
    domain, server, seq = gtid.split("-")
    missing = f"{domain}-{server}-{int(seq) + 1000}"
    proc = replay(data_dir, replicas[0].root_dsn, "--stop-gtid", missing, check=False)
    assert proc.returncode != 0 and f"--stop-gtid {missing} is not in the store" in proc.stderr, proc.stderr
    proc = replay(data_dir, replicas[0].root_dsn, "--start-datetime", "2999-01-01", check=False)
    assert proc.returncode != 0 and "matches the start" in proc.stderr, proc.stderr


def test_replay_of_binlog_files_matches_the_store(primary_db: PrimaryDb, replicas: list[Sandbox],
                                                   tmp_path: Path) -> None:
    """Loose binlog files (the primary's own) replayed with the target's column types: the same
    tables as a replica stopped at the same GTID (default binlog_row_metadata: the tables created
    in the files get their names from the schema history of the temporary store)."""
    before_drop = workload_then_bad_drop(primary_db.conn.cursor())
    sb = primary_db.sandbox
    with primary_db.conn.cursor() as cur:
        cur.execute("FLUSH BINARY LOGS")
        cur.execute("SHOW BINARY LOGS")
        names = [str(r[0]) for r in cur.fetchall()]
    files = [sb.binlog_dir / n for n in names[names.index(primary_db.start_file):-1]]
    real, from_files, _ = replicas
    replicate_until(real, primary_db, before_drop)
    expected = checksums(real, primary_db.name)
    proc = subprocess.run([*BINHUB, "replay", *map(str, files), "--to", from_files.root_dsn, "--stop-gtid",
                           before_drop], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert checksums(from_files, primary_db.name) == expected


def test_a_replay_started_again_resumes_after_what_the_target_holds(
        primary_db: PrimaryDb, replicas: list[Sandbox], tmp_path: Path) -> None:
    before_drop = workload_then_bad_drop(primary_db.conn.cursor())
    data_dir = tmp_path / "store"
    relay(primary_db, data_dir)
    target = replicas[0]
    replay(data_dir, target.root_dsn, "--stop-gtid", before_drop, "--name", "twice")
    first = checksums(target, primary_db.name)
    again = replay(data_dir, target.root_dsn, "--name", "twice")
    assert "already applied by an earlier run" in again.stderr, again.stderr
    assert checksums(target, primary_db.name) == table_checksums(primary_db.conn, primary_db.name) != first


def test_dry_run_sql_runs_in_the_client_from_a_create_database_on(primary_db: PrimaryDb, fresh_downstream: Sandbox,
                                                                   tmp_path: Path) -> None:
    """A CREATE DATABASE is logged with the database it creates as its default (and
    LOG_EVENT_SUPPRESS_USE_F): the SQL has no ``USE`` of it before it, which the client would refuse."""
    db = f"{primary_db.name}_made"
    cur = primary_db.conn.cursor()
    cur.execute(f"CREATE DATABASE `{db}`")
    first = last_gtid(cur)
    cur.execute(f"USE `{db}`")  # the statements' default database must exist where the SQL runs
    cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    cur.execute("INSERT INTO t VALUES (1), (2)")
    last = last_gtid(cur)
    cur.execute(f"USE `{primary_db.name}`")
    cur.execute(f"DROP DATABASE `{db}`")
    relay(primary_db, tmp_path / "store")
    sql = replay(tmp_path / "store", fresh_downstream.root_dsn, "--start-gtid", first, "--stop-gtid", last,
                 "--dry-run").stdout
    assert sql.index(f"CREATE DATABASE `{db}`") < sql.index("USE"), sql
    try:
        proc = subprocess.run(["mariadb", "--no-defaults", "-h127.0.0.1", f"-P{fresh_downstream.port}", "-uroot"],
                              input=sql, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        conn = fresh_downstream.connect()
        try:
            with conn.cursor() as c:
                c.execute(f"SELECT COUNT(*) FROM `{db}`.t")
                assert c.fetchone()[0] == 2
        finally:
            conn.close()
    finally:
        fresh_downstream.execute(f"DROP DATABASE IF EXISTS `{db}`")
