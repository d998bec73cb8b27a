"""``binhub serve`` started before ``binhub relay`` (two systemd units, a container restart: any order).

The server starts on a data dir that does not exist yet, listens, answers probes as a server with
no binlog yet, and a real MariaDB replica pointed at it (GTID, ``slave_pos``) waits in its dump
for the relay; once the relay has stored the first file, the replica streams and catches up.
``binhub run`` with ``[serve]`` and no ``[relay]`` does the same.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pymysql

from binhub.sandbox import Sandbox
from tests.integration.conftest import MariadbFactory, PrimaryDb
from tests.integration.relayutil import start_relay, stop_relay
from tests.integration.test_serve_daemon import Daemon
from tests.integration.test_serve_replicas import (
    PASSWORD,
    USER,
    assert_replicas_match,
    point_at,
    serve,
    slave_status,
)
from tests.integration.workload import insert_rows, run_workload, wait_until


def _probe(port: int, sql: str) -> tuple[list[str], list[tuple[object, ...]]]:
    conn = pymysql.connect(host="127.0.0.1", port=port, user=USER, password=PASSWORD, connect_timeout=10)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return [d[0] for d in cur.description or ()], list(cur.fetchall())
    finally:
        conn.close()


def test_serve_before_the_relay_on_a_missing_store(primary_db: PrimaryDb, mariadb_factory: MariadbFactory,
                                                    tmp_path: Path) -> None:
    data_dir = tmp_path / "not-yet" / "hub"
    hub = serve(data_dir, 9011, tmp_path / "serve.log")  # fails if serve exits ("no store at ...")
    replica: Sandbox | None = None
    relay = None
    try:
        # Probes on an empty store answer like a server with no binlog yet.
        cols, rows = _probe(hub.port, "SHOW MASTER STATUS")
        assert cols[:2] == ["File", "Position"] and rows == []
        assert _probe(hub.port, "SHOW BINARY LOGS")[1] == []
        assert _probe(hub.port, "SELECT @@gtid_binlog_pos")[1] == [("",)]

        # A replica points at binhub before anything is stored: its dump waits for the relay.
        replica = mariadb_factory("rep_before_relay", server_id=170 + 10 * len(mariadb_factory.sandboxes))
        point_at(replica, hub.port, gtid=primary_db.start_gtid)
        summary = run_workload(primary_db.conn, primary_db.name, large=False)
        wait_until(lambda: slave_status(replica)["Slave_IO_Running"] == "Yes", timeout=30,
                   message="the replica's IO thread did not connect to binhub")
        status = slave_status(replica)
        assert not status["Last_IO_Error"], status

        relay = start_relay(primary_db.dsn, data_dir, "--start-file", primary_db.start_file, "--server-id", "9011",
                            log=tmp_path / "relay.log")
        insert_rows(primary_db.conn, primary_db.name, summary.tables[1], 100, start_id=100_000)
        assert_replicas_match(primary_db, [replica])
        # It replicates by GTID, as told: the greeting it got before the relay ran (a default, MySQL
        # version) did not make it fall back to file/position.
        assert slave_status(replica)["Using_Gtid"] == "Slave_Pos"
        assert "(GTID" in hub.log.read_text(), hub.log.read_text()[-3000:]
        cols, rows = _probe(hub.port, "SHOW MASTER STATUS")
        assert rows and rows[0][0] == primary_db.position()[0], rows
    finally:
        if replica is not None:
            with contextlib.suppress(Exception):
                replica.query("STOP SLAVE")
            with contextlib.suppress(Exception):
                replica.kill()
        hub.stop()
        if relay is not None:
            stop_relay(relay)


def test_run_with_serve_only_before_the_relay(primary_db: PrimaryDb, tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, primary_db.dsn, primary_db.start_file)
    daemon.configure()
    config = tmp_path / "binhub.toml"
    config.write_text(re.sub(r"\[relay\].*?\n\n", "", config.read_text(), flags=re.S))  # the relay runs apart
    assert "[relay]" not in config.read_text() and not daemon.data_dir.exists()
    daemon.start()
    relay = None
    try:
        assert _probe(daemon.port, "SHOW MASTER STATUS")[1] == []
        relay = start_relay(primary_db.dsn, daemon.data_dir, "--start-file", primary_db.start_file,
                            "--server-id", "9012", log=tmp_path / "relay.log")
        file = primary_db.position()[0]
        wait_until(lambda: [r[0] for r in _probe(daemon.port, "SHOW MASTER STATUS")[1]] == [file], timeout=30,
                   message="binhub run did not see the relay's store")
        assert _probe(daemon.port, "SELECT @@gtid_binlog_pos")[1] == [(primary_db.position()[2],)]
    finally:
        daemon.stop()
        if relay is not None:
            stop_relay(relay)
