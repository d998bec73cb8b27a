"""binhub relay against a real MariaDB primary: byte-identical files, starts, resume, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from binhub.store import BinlogStore, StoreReader
from tests.integration.conftest import MariadbFactory, PrimaryDb
from tests.integration.relayutil import (
    assert_store_matches,
    mariadb_binlog_reads,
    run_relay,
    stored_files,
)
from tests.integration.workload import create_tables, insert_rows, run_workload, wait_until


def test_workload_is_stored_byte_identically(primary_db: PrimaryDb, tmp_path: Path) -> None:
    summary = run_workload(primary_db.conn, primary_db.name, tables=3, rows=300, many_tables=30)
    assert summary.large_event_bytes > 16 * 1024 * 1024
    primary_db.conn.cursor().execute("FLUSH BINARY LOGS")  # the workload spans two files
    insert_rows(primary_db.conn, primary_db.name, summary.tables[1], 50, start_id=10_000)
    store = tmp_path / "store"
    proc = run_relay(primary_db.dsn, store, "--start-file", primary_db.start_file)
    assert proc.returncode == 0, proc.stderr
    files = assert_store_matches(store, primary_db.sandbox, from_file=primary_db.start_file)
    assert len(files) >= 2
    for path in files:
        decoded = mariadb_binlog_reads(path)
        assert decoded.returncode == 0 and "ERROR" not in decoded.stderr, decoded.stderr
    # the >16 MiB row reached the store whole: mariadb-binlog decodes the big table's insert
    assert any("`big`" in mariadb_binlog_reads(p).stdout for p in files)
    state = json.loads((store / "state.json").read_text())
    assert state["requested_start"]["kind"] == "file"
    assert state["requested_start"]["file"] == primary_db.start_file
    executed = state["executed_gtids"]
    assert executed.startswith("0-1-") and int(executed.split("-")[-1]) >= int(summary.end_gtid.split("-")[-1])


def test_resume_continues_without_gap_or_duplicate(primary_db: PrimaryDb, tmp_path: Path) -> None:
    tables = create_tables(primary_db.conn, primary_db.name, 1)
    insert_rows(primary_db.conn, primary_db.name, tables[0], 100)
    store = tmp_path / "store"
    assert run_relay(primary_db.dsn, store, "--start-file", primary_db.start_file).returncode == 0
    before = {p.name: p.stat().st_size for p in stored_files(store)}
    insert_rows(primary_db.conn, primary_db.name, tables[0], 100, start_id=1000)
    primary_db.conn.cursor().execute("FLUSH BINARY LOGS")
    insert_rows(primary_db.conn, primary_db.name, tables[0], 100, start_id=2000)
    # same command again: resumes where the store ends (the same start option is not a conflict)
    proc = run_relay(primary_db.dsn, store, "--start-file", primary_db.start_file)
    assert proc.returncode == 0, proc.stderr
    files = assert_store_matches(store, primary_db.sandbox, from_file=primary_db.start_file)
    assert files[0].stat().st_size > before[files[0].name]
    assert len(files) == len(before) + 1


def test_start_gtid_fetches_the_whole_file_that_holds_it(primary_db: PrimaryDb, tmp_path: Path) -> None:
    tables = create_tables(primary_db.conn, primary_db.name, 1)
    insert_rows(primary_db.conn, primary_db.name, tables[0], 20)
    _, _, mid_gtid = primary_db.position()
    insert_rows(primary_db.conn, primary_db.name, tables[0], 20, start_id=100)
    store = tmp_path / "store"
    proc = run_relay(primary_db.dsn, store, "--start-gtid", mid_gtid)
    assert proc.returncode == 0, proc.stderr
    files = assert_store_matches(store, primary_db.sandbox, from_file=primary_db.start_file)
    assert files[0].name == primary_db.start_file  # whole file, from position 4
    start = StoreReader.open(store).state.requested_start
    assert start is not None and start.kind == "gtid" and start.gtid == mid_gtid


def test_from_now_starts_at_the_current_file(primary_db: PrimaryDb, tmp_path: Path) -> None:
    create_tables(primary_db.conn, primary_db.name, 1)
    current, _, gtid = primary_db.position()
    store = tmp_path / "store"
    proc = run_relay(primary_db.dsn, store, "--from-now")
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in stored_files(store)] == [current]
    start = StoreReader.open(store).state.requested_start
    assert start is not None and start.kind == "now" and start.gtid == gtid


def test_conflicting_start_on_a_filled_store_is_refused(primary_db: PrimaryDb, tmp_path: Path) -> None:
    store = tmp_path / "store"
    assert run_relay(primary_db.dsn, store, "--from-now").returncode == 0
    proc = run_relay(primary_db.dsn, store, "--start-gtid", primary_db.start_gtid)
    assert proc.returncode != 0
    assert "already holds binlogs" in proc.stderr and "use a new --data-dir" in proc.stderr


def test_wrong_password_is_a_clear_error(primary: object, tmp_path: Path) -> None:
    from binhub.sandbox import Sandbox

    assert isinstance(primary, Sandbox)
    dsn = f"mysql://{primary.repl_user}:not-the-password@127.0.0.1:{primary.port}"
    proc = run_relay(dsn, tmp_path / "store", timeout=30)
    assert proc.returncode == 1
    assert "1045" in proc.stderr and "Access denied" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unreachable_upstream_is_a_clear_error(tmp_path: Path) -> None:
    proc = run_relay("mysql://repl:pw@127.0.0.1:9", tmp_path / "store", timeout=30)
    assert proc.returncode == 1
    assert "cannot connect" in proc.stderr and "127.0.0.1:9" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_second_writer_is_refused(primary_db: PrimaryDb, tmp_path: Path) -> None:
    store = tmp_path / "store"
    holder = BinlogStore.open(store)
    try:
        proc = run_relay(primary_db.dsn, store, "--from-now", timeout=30)
    finally:
        holder.close()
    assert proc.returncode == 1
    assert "already being written by pid" in proc.stderr


def test_store_of_another_upstream_is_refused(mariadb_factory: MariadbFactory, primary_db: PrimaryDb,
                                              tmp_path: Path) -> None:
    store = tmp_path / "store"
    assert run_relay(primary_db.dsn, store, "--from-now").returncode == 0
    other = mariadb_factory("other_upstream", server_id=77)
    other.create_replication_user()
    proc = run_relay(other.dsn, store, timeout=30)
    assert proc.returncode == 1
    assert "belongs to another upstream" in proc.stderr and "server_id: store has 1, upstream has 77" in proc.stderr


@pytest.fixture
def lonely_server(mariadb_factory: MariadbFactory, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """A server of this test's own (for changes the shared primary must not see)."""
    params = getattr(request, "param", {})
    server = mariadb_factory(**params)
    server.create_replication_user()
    yield server
    server.kill()


@pytest.mark.parametrize("lonely_server", [{"extra_args": ["--skip-log-bin"]}], indirect=True)
def test_binlog_disabled_upstream(lonely_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proc = run_relay(lonely_server.dsn, tmp_path / "store", timeout=30)
    assert proc.returncode == 1
    assert "binary logging is disabled" in proc.stderr


@pytest.mark.parametrize("grant,missing", [("BINLOG MONITOR", "REPLICATION SLAVE"),
                                           ("REPLICATION SLAVE", "BINLOG MONITOR")])
def test_missing_privilege_is_named(primary: object, tmp_path: Path, grant: str, missing: str) -> None:
    from binhub.sandbox import Sandbox

    assert isinstance(primary, Sandbox)
    user = "only_" + grant.split()[-1].lower()
    conn = primary.connect()
    with conn.cursor() as cur:
        cur.execute(f"CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY 'pw'")
        cur.execute(f"GRANT {grant} ON *.* TO '{user}'@'%'")
    conn.close()
    proc = run_relay(f"mysql://{user}:pw@127.0.0.1:{primary.port}", tmp_path / "store", timeout=30)
    assert proc.returncode == 1
    assert missing in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("lonely_server", [{"binlog_format": "STATEMENT"}], indirect=True)
def test_statement_format_is_relayed_with_a_warning(lonely_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lonely_server.execute("CREATE DATABASE s",
                          "CREATE TABLE s.t (id INT PRIMARY KEY, v INT)",
                          "INSERT INTO s.t VALUES (1, 1), (2, 2)")
    store = tmp_path / "store"
    proc = run_relay(lonely_server.dsn, store)
    assert proc.returncode == 0, proc.stderr
    assert "binlog_format is STATEMENT" in proc.stderr and "need ROW" in proc.stderr
    assert_store_matches(store, lonely_server)


@pytest.mark.parametrize("lonely_server", [{}], indirect=True)
def test_purged_start_gtid_names_what_is_missing(lonely_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    conn = lonely_server.connect()
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE p")
        cur.execute("CREATE TABLE p.t (id INT PRIMARY KEY)")
        for i in range(5):
            cur.execute(f"INSERT INTO p.t VALUES ({i})")
        cur.execute("FLUSH BINARY LOGS")
        cur.execute("SHOW MASTER STATUS")
        current = cur.fetchone()[0]

        def purged() -> bool:
            # MariaDB keeps a file until its binlog checkpoint moved on: retry until it is gone.
            cur.execute(f"PURGE BINARY LOGS TO '{current}'")
            cur.execute("SHOW BINARY LOGS")
            return [r[0] for r in cur.fetchall()] == [current]

        wait_until(purged, timeout=20)
    conn.close()
    proc = run_relay(lonely_server.dsn, tmp_path / "store", "--start-gtid", "0-1-2", timeout=30)
    assert proc.returncode == 1
    assert "purged" in proc.stderr and "after seq 2" in proc.stderr, proc.stderr


def test_encrypted_upstream_is_stored_decrypted_and_said_so(mariadb_factory: MariadbFactory, tmp_path: Path) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text("1;a7addd9adea9978fda19f21e6be987880e68ac92632ca052e5bb42b1a506939a\n")
    server = mariadb_factory(extra_args=["--plugin-load-add=file_key_management",
                                         f"--file-key-management-filename={keys}", "--encrypt-binlog=ON"])
    server.execute("CREATE DATABASE e",
                   "CREATE TABLE e.t (id INT PRIMARY KEY, v TEXT)",
                   "INSERT INTO e.t VALUES (1, 'secret'), (2, 'stuff')")
    store = tmp_path / "store"
    proc = run_relay(server.dsn, store)
    assert proc.returncode == 0, proc.stderr
    assert "encrypt_binlog=ON" in proc.stderr
    stored = stored_files(store)
    primary_copy = (server.binlog_dir / stored[0].name).read_bytes()
    assert b"secret" in stored[0].read_bytes() and b"secret" not in primary_copy  # decrypted here only
    ls = subprocess.run([sys.executable, "-m", "binhub", "binlog", "ls", "--data-dir", str(store)],
                        capture_output=True, text=True, timeout=60)
    assert "not byte-identical" in ls.stdout
    assert mariadb_binlog_reads(stored[0]).returncode == 0
