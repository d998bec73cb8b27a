"""``binhub binlog ls|show|verify|purge|import`` as users run it (a subprocess), against a store
relayed from the shared primary and against the primary's own files."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import PrimaryDb
from tests.integration.relayutil import (
    BINHUB,
    assert_store_matches,
    run_relay,
    stored_files,
    wait_binlog_settled,
)
from tests.integration.workload import create_tables, insert_rows, q


def binlog_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BINHUB, "binlog", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def relayed(primary_db: PrimaryDb, tmp_path: Path) -> tuple[PrimaryDb, Path]:
    """A store holding this test's traffic in two closed files and an active one."""
    tables = create_tables(primary_db.conn, primary_db.name, 1)
    insert_rows(primary_db.conn, primary_db.name, tables[0], 40, batch=10)
    with primary_db.conn.cursor() as cur:
        cur.execute("FLUSH BINARY LOGS")
        cur.execute(f"CREATE TABLE {q(primary_db.name, 'm')} (id INT PRIMARY KEY, v TEXT)")
        cur.execute("BEGIN")
        cur.execute(f"INSERT INTO {q(primary_db.name, 'm')} VALUES (1, 'a'), (2, 'b')")
        cur.execute(f"UPDATE {q(primary_db.name, 'm')} SET v = 'c' WHERE id = 2")
        cur.execute("COMMIT")
        cur.execute("FLUSH BINARY LOGS")
        cur.execute(f"INSERT INTO {q(primary_db.name, 'm')} VALUES (3, 'd')")
    wait_binlog_settled(primary_db.sandbox)
    store = tmp_path / "store"
    proc = run_relay(primary_db.dsn, store, "--start-file", primary_db.start_file)
    assert proc.returncode == 0, proc.stderr
    assert_store_matches(store, primary_db.sandbox, from_file=primary_db.start_file)
    return primary_db, store


def test_ls_lists_sizes_gtids_and_the_file_in_use(relayed: tuple[PrimaryDb, Path]) -> None:
    _, store = relayed
    files = stored_files(store)
    proc = binlog_cli("ls", "--data-dir", str(store), "--json")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["name"] for r in rows] == [p.name for p in files]
    assert [r["size"] for r in rows] == [p.stat().st_size for p in files]
    assert [r["in_use"] for r in rows] == [False] * (len(rows) - 1) + [True]
    assert all(r["first_gtid"].startswith("0-1-") and r["last_gtid"].startswith("0-1-") for r in rows)
    firsts = [int(r["first_gtid"].rsplit("-", 1)[1]) for r in rows]
    lasts = [int(r["last_gtid"].rsplit("-", 1)[1]) for r in rows]
    assert all(f <= la for f, la in zip(firsts, lasts, strict=True))
    assert all(lasts[i] + 1 == firsts[i + 1] for i in range(len(rows) - 1))  # no gap between files
    text = binlog_cli("ls", "--data-dir", str(store))
    assert text.returncode == 0, text.stderr
    assert "in use" in text.stdout and files[0].name in text.stdout and rows[0]["first_gtid"] in text.stdout
    assert f"{files[0].stat().st_size:,}" in text.stdout


def _server_events(primary_db: PrimaryDb, name: str) -> list[tuple[int, int, int, str]]:
    with primary_db.conn.cursor() as cur:
        cur.execute(f"SHOW BINLOG EVENTS IN '{name}'")
        return [(int(r[1]), int(r[4]), int(r[3]), str(r[2])) for r in cur.fetchall()]


# SHOW BINLOG EVENTS' names for the types binhub names after the protocol constants
SERVER_NAMES = {"FORMAT_DESCRIPTION": "Format_desc", "MARIA_GTID_LIST": "Gtid_list",
                "MARIA_BINLOG_CHECKPOINT": "Binlog_checkpoint", "MARIA_GTID": "Gtid", "QUERY": "Query",
                "MARIA_ANNOTATE_ROWS": "Annotate_rows", "TABLE_MAP": "Table_map", "XID": "Xid",
                "ROTATE": "Rotate", "STOP": "Stop"}


def test_show_json_matches_the_servers_own_listing(relayed: tuple[PrimaryDb, Path]) -> None:
    primary_db, store = relayed
    for path in stored_files(store):
        proc = binlog_cli("show", "--format", "json", "--data-dir", str(store), path.name)
        assert proc.returncode == 0, proc.stderr
        events = [json.loads(line) for line in proc.stdout.splitlines()]
        server = _server_events(primary_db, path.name)
        assert [(e["pos"], e["end_log_pos"], e["server_id"]) for e in events] == [s[:3] for s in server]
        for e, s in zip(events, server, strict=True):
            expected = SERVER_NAMES.get(e["type"])
            if expected is not None:
                assert s[3] == expected, (e["pos"], e["type"], s[3])
            elif "ROWS" in e["type"]:
                assert s[3].endswith("_rows_v1") or s[3].endswith("_rows"), (e["type"], s[3])
        # a path works as well as a store name, and --limit bounds the output
        direct = binlog_cli("show", "--format", "json", "--limit", "3", str(path))
        assert direct.returncode == 0 and direct.stdout.splitlines() == proc.stdout.splitlines()[:3]
    text = binlog_cli("show", "--data-dir", str(store))
    assert text.returncode == 0, text.stderr
    first = stored_files(store)[0].name
    assert f"{first}:4 " in text.stdout and "FORMAT_DESCRIPTION" in text.stdout


def test_verify_good_store_and_a_corrupt_copy(relayed: tuple[PrimaryDb, Path], tmp_path: Path) -> None:
    _, store = relayed
    ok = binlog_cli("verify", "--data-dir", str(store))
    assert ok.returncode == 0 and ok.stdout.startswith("OK:"), ok.stdout + ok.stderr
    files = stored_files(store)
    copy = tmp_path / "copy" / files[0].name
    copy.parent.mkdir()
    shutil.copyfile(files[0], copy)
    assert binlog_cli("verify", str(copy)).returncode == 0
    events = [json.loads(line) for line in binlog_cli("show", "--format", "json", str(copy)).stdout.splitlines()]
    victim = events[len(events) // 2]
    data = bytearray(copy.read_bytes())
    data[victim["pos"] + 19 + (victim["length"] - 23) // 2] ^= 0x40  # inside the body: the CRC catches it
    copy.write_bytes(bytes(data))
    bad = binlog_cli("verify", str(copy))
    assert bad.returncode == 1
    assert f"{copy.name} at offset {victim['pos']}" in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr


def test_purge_keeps_the_newest_files(relayed: tuple[PrimaryDb, Path]) -> None:
    _, store = relayed
    before = [p.name for p in stored_files(store)]
    proc = binlog_cli("purge", "--data-dir", str(store), "--max-files", "1")
    assert proc.returncode == 0, proc.stderr
    assert f"purged {len(before) - 1} file(s)" in proc.stdout
    assert [p.name for p in stored_files(store)] == before[-1:]
    assert binlog_cli("verify", "--data-dir", str(store)).returncode == 0


def test_import_the_primarys_closed_files(primary_db: PrimaryDb, tmp_path: Path) -> None:
    tables = create_tables(primary_db.conn, primary_db.name, 1)
    insert_rows(primary_db.conn, primary_db.name, tables[0], 30, batch=10)
    with primary_db.conn.cursor() as cur:
        cur.execute("FLUSH BINARY LOGS")
    insert_rows(primary_db.conn, primary_db.name, tables[0], 10, start_id=100)
    with primary_db.conn.cursor() as cur:
        cur.execute("FLUSH BINARY LOGS")
    names = [p.name for p in primary_db.sandbox.binlog_files()]
    closed = [primary_db.sandbox.binlog_dir / n for n in names[names.index(primary_db.start_file):-1]]
    assert len(closed) == 2
    store = tmp_path / "store"
    proc = binlog_cli("import", "--data-dir", str(store), *map(str, closed))
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in stored_files(store)] == [p.name for p in closed]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(stored_files(store), closed, strict=True))
    verify = binlog_cli("verify", "--data-dir", str(store))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # and the relay carries on from there, byte-identically
    wait_binlog_settled(primary_db.sandbox)
    relay = run_relay(primary_db.dsn, store)
    assert relay.returncode == 0, relay.stderr
    assert_store_matches(store, primary_db.sandbox, from_file=primary_db.start_file)


def test_find_names_the_transactions_that_deleted_rows_of_a_table(primary_db: PrimaryDb, tmp_path: Path) -> None:
    """``find --table db.t --op delete``: the bad DELETE's GTID (the primary's @@last_gtid), once per
    transaction however many rows events it has; the pattern may be the argument (DESIGN's form)."""
    gtids = {}
    with primary_db.conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v TEXT)")
        cur.executemany("INSERT INTO t VALUES (%s, REPEAT('x', 2000))", [(i,) for i in range(40)])
        cur.execute("UPDATE t SET v = 'y' WHERE id < 5")
        cur.execute("CREATE TABLE other (id INT PRIMARY KEY)")
        cur.execute("INSERT INTO other VALUES (1)")
        for step, sql in (("delete", "DELETE FROM t WHERE id >= 10"), ("other", "DELETE FROM other"),
                          ("drop", "DROP TABLE other")):
            cur.execute(sql)
            cur.execute("SELECT @@last_gtid")
            gtids[step] = cur.fetchone()[0]
    store = tmp_path / "store"
    proc = run_relay(primary_db.dsn, store, "--start-file", primary_db.start_file)
    assert proc.returncode == 0, proc.stderr
    table = f"{primary_db.name}.t"
    found = binlog_cli("find", "--data-dir", str(store), "--table", table, "--op", "delete", "--format", "json")
    assert found.returncode == 0, found.stderr
    matches = [json.loads(line) for line in found.stdout.splitlines()]
    assert [(m["gtid"], m["statement"]) for m in matches] == [(gtids["delete"], f"(delete rows of {table})")]
    found = binlog_cli("find", "--data-dir", str(store), "DROP TABLE")
    assert found.returncode == 0 and found.stdout.startswith(gtids["drop"] + " "), found.stdout + found.stderr
    refused = binlog_cli("find", "--data-dir", str(store), "--op", "delete")
    assert refused.returncode == 2 and "--op goes with --table" in refused.stderr
