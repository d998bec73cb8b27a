"""Every serve counter moves, as Prometheus sees it: ``/metrics`` scraped through the admin API of
a real ``binhub run`` (relay + serve) of a real MariaDB primary, with independent clients reading
through binhub: ``mariadb-binlog`` asking for a file binhub does not have (a dump error) and a real
MariaDB replica with semi-sync on and a 1 s heartbeat period (semi-sync requests, acks, heartbeats,
events and bytes)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from binhub.sandbox import Sandbox
from tests.integration.conftest import MariadbFactory, PrimaryDb
from tests.integration.test_serve_daemon import Daemon
from tests.integration.test_serve_replicas import PASSWORD, USER, point_at
from tests.integration.workload import create_tables, insert_rows, table_checksums, wait_until

COUNTERS = ("dump_errors", "semisync_requests", "semisync_acks", "heartbeats", "dump_events", "dump_bytes",
            "dumps", "logins")


@pytest.fixture
def daemon(primary_db: PrimaryDb, tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path, primary_db.dsn, primary_db.start_file)
    d.configure()
    d.start()
    yield d
    d.stop()


@pytest.fixture
def replica(mariadb_factory: MariadbFactory) -> Iterator[Sandbox]:
    sb = mariadb_factory("metrics_rep", server_id=351)
    yield sb
    with contextlib.suppress(Exception):
        sb.kill()


def _counters(daemon: Daemon) -> dict[str, float]:
    return {name: daemon.metric(f"binhub_serve_{name}_total") for name in COUNTERS}


@pytest.mark.skipif(shutil.which("mariadb-binlog") is None, reason="mariadb-binlog is not installed")
def test_every_serve_counter_moves(primary_db: PrimaryDb, daemon: Daemon, replica: Sandbox) -> None:
    table = create_tables(primary_db.conn, primary_db.name, 1)[0]
    before = _counters(daemon)

    # A dump of a file binhub never had: mariadb-binlog gets error 1236, binhub counts a dump error.
    proc = subprocess.run(["mariadb-binlog", "--read-from-remote-server", "--host=127.0.0.1", f"--port={daemon.port}",
                           f"--user={USER}", f"--password={PASSWORD}", "mariadb-bin.999999"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "mariadb-bin.999999" in proc.stderr, proc.stderr
    wait_until(lambda: daemon.metric("binhub_serve_dump_errors_total") > before["dump_errors"], timeout=10,
               message="binhub_serve_dump_errors_total did not move")

    # A semi-sync replica (MASTER_HEARTBEAT_PERIOD=1): every transaction asks it for an ack.
    point_at(replica, daemon.port, gtid=primary_db.start_gtid, semisync=True)
    insert_rows(primary_db.conn, primary_db.name, table, 100, batch=10)
    expected = table_checksums(primary_db.conn, primary_db.name)
    conn = replica.connect()
    try:
        wait_until(lambda: table_checksums(conn, primary_db.name) == expected, timeout=60,
                   message="the semi-sync replica did not replicate")
    finally:
        conn.close()
    semi = replica.query("SHOW STATUS LIKE 'Rpl_semi_sync_slave_status'")
    assert semi and semi[0][1] == "ON", semi
    # Idle now: binhub sends the replica a heartbeat every second.
    heartbeats = daemon.metric("binhub_serve_heartbeats_total")
    wait_until(lambda: daemon.metric("binhub_serve_heartbeats_total") > heartbeats, timeout=10,
               message="binhub_serve_heartbeats_total did not move while the replica was idle")

    after = _counters(daemon)
    for name in COUNTERS:
        assert after[name] > before[name], (name, before, after)
    # Ten transactions and their acks, at least (a batch of transactions asks once).
    assert after["semisync_acks"] - before["semisync_acks"] >= 1
    assert after["semisync_requests"] >= after["semisync_acks"], after
