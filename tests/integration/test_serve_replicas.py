"""Real MariaDB 10.11 replicas replicating from binhub (``binhub relay`` + ``binhub serve``, or ``binhub run``).

The shape of every test: the shared primary, binhub relaying it into a store, binhub serving that
store, real ``mariadbd`` replicas pointed at binhub with CHANGE MASTER TO, a workload on the
primary (inserts, updates, deletes, DDL, a transaction with events over 16 MiB), then: every
replica's CHECKSUM TABLE equals the primary's for every table, and SHOW SLAVE STATUS shows both
threads running and no error.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path
from typing import Any

import pymysql
import pymysql.cursors
import pytest

from binhub.sandbox import Sandbox
from binhub.sandbox.binhub_process import BinhubProcess
from tests.integration.conftest import MariadbFactory, PrimaryDb
from tests.integration.relayutil import same_bytes, start_relay, start_serve, stop_relay, stored_files
from tests.integration.workload import insert_rows, run_workload, table_checksums, wait_until

USER, PASSWORD = "repl_binhub", "s3cret-binhub"
CATCH_UP = 180.0


def serve(data_dir: Path, server_id: int, log: Path, port: int | None = None) -> BinhubProcess:
    """``binhub serve`` on a data dir (the relay runs beside it, another process)."""
    return start_serve(data_dir, log, user=USER, password=PASSWORD, server_id=server_id, port=port)


def slave_status(sb: Sandbox) -> dict[str, Any]:
    conn = sb.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW SLAVE STATUS")
            row = cur.fetchone()
            names = [d[0] for d in cur.description or ()]
            return dict(zip(names, row, strict=True)) if row else {}
    finally:
        conn.close()


def point_at(replica: Sandbox, port: int, *, gtid: str | None = None, file: str | None = None, pos: int = 4,
             semisync: bool = False, compressed: bool = False) -> None:
    """CHANGE MASTER TO binhub, by GTID (slave_pos) or by file/position, and START SLAVE."""
    stmts = ["STOP SLAVE"]
    if semisync:
        stmts.append("SET GLOBAL rpl_semi_sync_slave_enabled = ON")
    if compressed:
        # binhub offers CLIENT_COMPRESS: the replica's IO thread connects with zlib.
        stmts.append("SET GLOBAL slave_compressed_protocol = ON")
    common = (f"MASTER_HOST='127.0.0.1', MASTER_PORT={port}, MASTER_USER='{USER}', "
              f"MASTER_PASSWORD='{PASSWORD}', MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1")
    if gtid is not None:
        stmts += [f"SET GLOBAL gtid_slave_pos = '{gtid}'", f"CHANGE MASTER TO {common}, MASTER_USE_GTID=slave_pos"]
    else:
        stmts.append(f"CHANGE MASTER TO {common}, MASTER_LOG_FILE='{file}', MASTER_LOG_POS={pos}, MASTER_USE_GTID=no")
    stmts.append("START SLAVE")
    for s in stmts:
        replica.query(s)


def assert_replicas_match(primary_db: PrimaryDb, replicas: list[Sandbox]) -> None:
    expected = table_checksums(primary_db.conn, primary_db.name)
    assert expected, "the workload made no tables"
    for replica in replicas:
        conn = replica.connect()
        try:
            def same(conn: Any = conn) -> bool:
                with contextlib.suppress(Exception):
                    return table_checksums(conn, primary_db.name) == expected
                return False
            try:
                wait_until(same, timeout=CATCH_UP, interval=0.5)
            except AssertionError:
                raise AssertionError(f"replica {replica.name} did not catch up: {slave_status(replica)}") from None
        finally:
            conn.close()
        status = slave_status(replica)
        assert status["Slave_IO_Running"] == "Yes" and status["Slave_SQL_Running"] == "Yes", status
        assert not status["Last_IO_Error"] and not status["Last_SQL_Error"], status


def start_binhub(primary_db: PrimaryDb, tmp_path: Path, name: str = "hub") -> tuple[BinhubProcess, BinhubProcess]:
    """(relay, serve) of the shared primary on ``tmp_path / name``."""
    data_dir = tmp_path / name
    relay = start_relay(primary_db.dsn, data_dir, "--start-file", primary_db.start_file, "--server-id", "9001",
                        log=tmp_path / f"{name}-relay.log")
    wait_until(lambda: (data_dir / "binlog").is_dir() and any((data_dir / "binlog").glob("*.0*")), timeout=30,
               message="the relay stored nothing")
    return relay, serve(data_dir, 9001, tmp_path / f"{name}-serve.log")


def test_three_replicas_through_binhub(primary_db: PrimaryDb, replicas: list[Sandbox], tmp_path: Path) -> None:
    relay, hub = start_binhub(primary_db, tmp_path)
    try:
        gtid_rep, pos_rep, semi_rep = replicas
        point_at(gtid_rep, hub.port, gtid=primary_db.start_gtid)
        point_at(pos_rep, hub.port, file=primary_db.start_file, compressed=True)
        point_at(semi_rep, hub.port, gtid=primary_db.start_gtid, semisync=True)
        run_workload(primary_db.conn, primary_db.name)
        assert_replicas_match(primary_db, replicas)
        semi = semi_rep.query("SHOW STATUS LIKE 'Rpl_semi_sync_slave_status'")
        assert semi and semi[0][1] == "ON", semi
        _check_binhub_slave_status(primary_db, hub, relay)
    finally:
        hub.stop()
        stop_relay(relay)


def wire_bytes_received(replica: Sandbox, port: int) -> int:
    """Bytes the kernel delivered to ``replica``'s connections to ``port``: what crossed the wire."""
    out = subprocess.run(["ss", "-tinpH", "state", "established", f"( dport = :{port} )"], capture_output=True,
                         text=True, check=True).stdout
    total, ours = 0, False
    for line in out.splitlines():
        if not line[:1].isspace():  # a socket line; its details follow on the next, indented line
            ours = f"pid={replica.pid}," in line
        elif ours:
            total += int(line.split("bytes_received:", 1)[1].split()[0])
    return total


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2) to count bytes on the wire")
def test_compressed_replica_gets_fewer_bytes(primary_db: PrimaryDb, replicas: list[Sandbox], tmp_path: Path) -> None:
    """slave_compressed_protocol=ON through binhub: the same stream in fewer bytes, as from mariadbd."""
    relay, hub = start_binhub(primary_db, tmp_path)
    try:
        plain, compressed, direct = replicas
        file, pos, _ = primary_db.position()  # only this workload: earlier tests wrote random blobs
        point_at(plain, hub.port, file=file, pos=pos)
        point_at(compressed, hub.port, file=file, pos=pos, compressed=True)
        primary = primary_db.sandbox
        direct.query("SET GLOBAL slave_compressed_protocol = ON")
        direct.query(f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={primary.port}, "
                     f"MASTER_USER='{primary.repl_user}', MASTER_PASSWORD='{primary.repl_password}', "
                     f"MASTER_LOG_FILE='{file}', MASTER_LOG_POS={pos}, MASTER_USE_GTID=no, MASTER_HEARTBEAT_PERIOD=1")
        direct.query("START SLAVE")
        run_workload(primary_db.conn, primary_db.name, large=False)  # compressible rows, as real ones are
        assert_replicas_match(primary_db, replicas)
        plain_bytes = wire_bytes_received(plain, hub.port)
        compressed_bytes = wire_bytes_received(compressed, hub.port)
        direct_bytes = wire_bytes_received(direct, primary.port)
        figures = {"plain": plain_bytes, "compressed": compressed_bytes, "mariadbd compressed": direct_bytes}
        assert plain_bytes > 1_000_000 and compressed_bytes < 0.8 * plain_bytes, figures
        assert compressed_bytes < 1.1 * direct_bytes, figures  # binhub compresses at least as well as mariadbd
        assert "compressed zlib" in hub.log.read_text()  # binhub's access log names it per session
    finally:
        hub.stop()
        stop_relay(relay)


def test_semisync_replica_over_compression(primary_db: PrimaryDb, replicas: list[Sandbox], tmp_path: Path) -> None:
    """A semi-sync replica with slave_compressed_protocol=ON replicates through binhub: its acks come
    in compressed packets, and the dump restarts its counts after each ack request (the compressed
    count's restart itself is pinned by test_net_server_writes: MariaDB's replica tolerates either)."""
    relay, hub = start_binhub(primary_db, tmp_path)
    try:
        rep = replicas[0]
        point_at(rep, hub.port, gtid=primary_db.start_gtid, semisync=True, compressed=True)
        run_workload(primary_db.conn, primary_db.name, large=False)
        assert_replicas_match(primary_db, [rep])
        semi = rep.query("SHOW STATUS LIKE 'Rpl_semi_sync_slave_status'")
        assert semi and semi[0][1] == "ON", semi
        assert "compressed zlib" in hub.log.read_text()
    finally:
        hub.stop()
        stop_relay(relay)


def _check_binhub_slave_status(primary_db: PrimaryDb, hub: BinhubProcess, relay: BinhubProcess) -> None:
    """SHOW SLAVE STATUS on binhub shows its own upstream: the primary, and where the store stands."""
    def hub_status() -> dict[str, Any]:
        conn = pymysql.connect(host="127.0.0.1", port=hub.port, user=USER, password=PASSWORD, connect_timeout=10,
                               cursorclass=pymysql.cursors.DictCursor)
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW SLAVE STATUS")
                return dict(cur.fetchone() or {})
        finally:
            conn.close()

    def caught_up() -> dict[str, Any] | None:
        st, (file, position, _) = hub_status(), primary_db.position()
        return st if (st["Master_Log_File"], st["Read_Master_Log_Pos"]) == (file, position) else None

    primary = primary_db.sandbox
    st = wait_until(caught_up, timeout=30, message="binhub's SHOW SLAVE STATUS did not reach the primary's position")
    assert (st["Master_Host"], st["Master_Port"], st["Master_User"]) == ("127.0.0.1", primary.port, primary.repl_user)
    assert (st["Slave_IO_Running"], st["Slave_SQL_Running"], st["Seconds_Behind_Master"]) == ("Yes", "Yes", 0), st
    assert st["Exec_Master_Log_Pos"] == st["Read_Master_Log_Pos"] and st["Relay_Log_File"] == st["Master_Log_File"]
    assert st["Master_Server_Id"] == 1 and st["Gtid_IO_Pos"] == primary_db.position()[2], st
    assert primary.repl_password not in str(st.values())
    stop_relay(relay)  # the relay (another process) lets go of the store's lock
    st = hub_status()
    assert (st["Slave_IO_Running"], st["Slave_IO_State"], st["Master_Host"]) == ("No", "", "127.0.0.1"), st
    assert (st["Slave_SQL_Running"], st["Seconds_Behind_Master"]) == ("No", None), st


def test_chained_binhub_and_restart(primary_db: PrimaryDb, replicas: list[Sandbox], tmp_path: Path) -> None:
    """primary → binhub A → binhub B → replica; then A's server restarts while replicas stream."""
    relay_a, hub_a = start_binhub(primary_db, tmp_path, "a")
    data_b = tmp_path / "b"
    relay_b = start_relay(f"mysql://{USER}:{PASSWORD}@127.0.0.1:{hub_a.port}", data_b,
                          "--start-file", primary_db.start_file, "--server-id", "9002",
                          log=tmp_path / "b-relay.log")
    hub_b: BinhubProcess | None = None
    try:
        wait_until(lambda: (data_b / "binlog").is_dir() and any((data_b / "binlog").glob("*.0*")), timeout=60,
                   message="binhub B stored nothing (see b-relay.log)")
        hub_b = serve(data_b, 9002, tmp_path / "b-serve.log")
        direct, chained, _ = replicas
        point_at(direct, hub_a.port, gtid=primary_db.start_gtid)
        point_at(chained, hub_b.port, gtid=primary_db.start_gtid)
        summary = run_workload(primary_db.conn, primary_db.name)
        table = summary.tables[1]  # a wide table the workload did not ALTER
        # Restart A's server while both replicas (and binhub B) stream from it.
        hub_a.stop(signal.SIGKILL)
        insert_rows(primary_db.conn, primary_db.name, table, 50, start_id=100_000)
        hub_a.start()
        insert_rows(primary_db.conn, primary_db.name, table, 50, start_id=200_000)
        assert_replicas_match(primary_db, [direct, chained])
    finally:
        if hub_b is not None:
            hub_b.stop()
        stop_relay(relay_b)
        hub_a.stop()
        stop_relay(relay_a)


def test_replica_disconnecting_mid_event(primary_db: PrimaryDb, replicas: list[Sandbox], tmp_path: Path) -> None:
    """A client that drops in the middle of a > 16 MiB event: binhub keeps serving the others.

    (The first version of this test read "20 MB" with binhub's own client, which only hands over
    whole events; the stream held less than that, so it waited forever for more. Reading raw
    packets lets the test stop exactly inside the split event.)
    """
    relay, hub = start_binhub(primary_db, tmp_path)
    try:
        replica = replicas[0]
        point_at(replica, hub.port, gtid=primary_db.start_gtid)
        run_workload(primary_db.conn, primary_db.name)
        data_dir = tmp_path / "hub"
        wait_until(lambda: any(p.stat().st_size > 16 << 20 for p in (data_dir / "binlog").glob("*.0*")),
                   timeout=60, message="the large transaction did not reach the store")
        for _ in range(3):
            assert _half_read_dump(hub.port, primary_db.start_file) > 0
        assert hub.running, hub.tail()
        assert_replicas_match(primary_db, [replica])
        # Each dropped dump released its reader lease: only the replica's remains.
        wait_until(lambda: len(list((data_dir / "readers").glob("*.json"))) == 1, timeout=10,
                   message="a dropped dump kept its reader lease")
    finally:
        hub.stop()
        stop_relay(relay)


def _half_read_dump(port: int, file: str) -> int:
    """Log in, start a dump, read raw packets until inside the first 16 MiB+ event, then drop the socket.

    Returns how many bytes of that event were read before dropping (bounded: 60 s of socket timeouts).
    """
    import pymysql

    from binhub.wire.commands import ComBinlogDump
    from tests.integration.serveutil import packet

    conn = pymysql.connect(host="127.0.0.1", port=port, user=USER, password=PASSWORD, connect_timeout=10)
    try:
        with conn.cursor() as cur:
            cur.execute("SET @master_binlog_checksum = 'CRC32', @mariadb_slave_capability = 4")
        sock = conn._sock  # the dump takes over the connection; PyMySQL has no buffered reply left
        assert sock is not None
        sock.settimeout(10)
        sock.sendall(packet(ComBinlogDump(4, 4242, file).build(), 0))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            head = b""
            while len(head) < 4:
                chunk = sock.recv(4 - len(head))
                assert chunk, "binhub closed the dump"
                head += chunk
            length = int.from_bytes(head[:3], "little")
            if length == 0xFFFFFF:
                # The first packet of a split event: read half of it and go.
                got = 0
                while got < length // 2:
                    got += len(sock.recv(min(1 << 20, length // 2 - got)))
                return got
            left = length
            while left:
                chunk = sock.recv(min(1 << 20, left))
                assert chunk, "binhub closed the dump"
                left -= len(chunk)
        raise AssertionError("no 16 MiB+ event in the dump within 60 s")
    finally:
        # A reset, not a COM_QUIT: the replica vanished. PyMySQL's buffered reader also holds the
        # socket, which only really closes once both are closed.
        if conn._sock is not None:
            conn._sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            if conn._rfile is not None:
                conn._rfile.close()
            conn._sock.close()


def test_relay_acks_semi_sync_mariadbd_and_binhub(mariadb_factory: MariadbFactory, tmp_path: Path) -> None:
    """binhub's relay as a semi-sync replica of mariadbd, then of binhub serving semi-sync.

    A semi-sync primary restarts its packet sequence ids after each event that asks for an ack
    (MariaDB's flush_net: net_clear, then pkt_nr 1); binhub's dump does the same. The relay's
    client must take that from both, with events over 16 MiB in the stream, and its acks must
    reach the primary (Rpl_semi_sync_master_yes_tx) and binhub (the serve log's ack count).
    """
    from tests.integration.relayutil import assert_store_matches, run_relay
    from tests.integration.workload import binlog_position

    semi = mariadb_factory("semi_primary", server_id=61, extra_args=["--rpl-semi-sync-master-enabled=ON",
                                                                     "--rpl-semi-sync-master-timeout=10000"])
    data_a = tmp_path / "a"
    conn = semi.connect()
    try:
        start_file = binlog_position(conn)[0]
        relay = start_relay(semi.dsn, data_a, "--start-file", start_file, "--server-id", "9301", "--semi-sync",
                            log=tmp_path / "a-relay.log")
        try:
            # The workload must commit while the relay is attached: a semi-sync primary without
            # semi-sync replicas times out once and then commits asynchronously (no ack requests).
            def semi_status() -> dict[str, str]:
                return {str(k): str(v) for k, v in semi.query("SHOW STATUS LIKE 'Rpl_semi_sync_master_%'")}
            wait_until(lambda: semi_status()["Rpl_semi_sync_master_clients"] == "1", timeout=30,
                       message="the relay did not attach as a semi-sync replica")
            # The sandbox's own setup committed with no replica and timed out: the primary turns
            # semi-sync back on at the first commit a replica acknowledges.
            with conn.cursor() as cur:
                cur.execute("CREATE DATABASE semi")
            wait_until(lambda: semi_status()["Rpl_semi_sync_master_status"] == "ON", timeout=30)
            no_tx = semi_status()["Rpl_semi_sync_master_no_tx"]
            run_workload(conn, "semi", tables=2, rows=100, many_tables=5, ddl=False)

            def caught_up() -> bool:
                try:
                    assert_store_matches(data_a, semi, from_file=start_file)
                except AssertionError:
                    return False
                return True
            wait_until(caught_up, timeout=60, interval=0.2, message="the semi-sync relay did not catch up")
        finally:
            assert stop_relay(relay) == 0, (tmp_path / "a-relay.log").read_text()[-3000:]
        status = semi_status()
        # Every commit of the workload was acknowledged in time (none fell back to asynchronous).
        assert int(status["Rpl_semi_sync_master_yes_tx"]) > 20 and status["Rpl_semi_sync_master_no_tx"] == no_tx, \
            status
    finally:
        conn.close()

    hub = serve(data_a, 9302, tmp_path / "a-serve.log")
    try:
        data_b = tmp_path / "b"
        done = run_relay(f"mysql://{USER}:{PASSWORD}@127.0.0.1:{hub.port}", data_b, "--start-file", start_file,
                         "--server-id", "9303", "--semi-sync")
        assert done.returncode == 0, done.stderr[-3000:]
    finally:
        hub.stop()
    names = [p.name for p in stored_files(data_a)]
    assert [p.name for p in stored_files(data_b)] == names
    for name in names:
        assert same_bytes(data_a / "binlog" / name, data_b / "binlog" / name), name
    acks = [int(line.rsplit(" semi-sync acks", 1)[0].rsplit(" ", 1)[1])
            for line in hub.log.read_text().splitlines() if "semi-sync acks" in line and "replica 9303" in line]
    assert acks and max(acks) > 0, hub.log.read_text()[-2000:]


def test_replica_ahead_of_binhub_waits_for_the_relay(primary_db: PrimaryDb, replicas: list[Sandbox],
                                                      tmp_path: Path) -> None:
    """A replica moved from the primary to a binhub whose relay is behind it: its dump waits for the
    relay (no error, nothing sent twice), then it replicates on through binhub."""
    replica = replicas[0]
    primary = primary_db.sandbox
    data_dir = tmp_path / "hub"
    table = run_workload(primary_db.conn, primary_db.name, large=False).tables[1]
    run_relay_until_caught_up = start_relay(primary_db.dsn, data_dir, "--start-file", primary_db.start_file,
                                            "--server-id", "9003", "--until-caught-up", log=tmp_path / "relay1.log")
    assert run_relay_until_caught_up.wait(120) == 0, (tmp_path / "relay1.log").read_text()[-2000:]
    # The replica follows the primary directly, past where binhub's store ends.
    replica.query("STOP SLAVE")
    replica.query(f"SET GLOBAL gtid_slave_pos = '{primary_db.start_gtid}'")
    replica.query(f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={primary.port}, "
                  f"MASTER_USER='{primary.repl_user}', MASTER_PASSWORD='{primary.repl_password}', "
                  "MASTER_CONNECT_RETRY=1, MASTER_USE_GTID=slave_pos")
    replica.query("START SLAVE")
    insert_rows(primary_db.conn, primary_db.name, table, 200, start_id=100_000)
    assert_replicas_match(primary_db, [replica])
    hub = serve(data_dir, 9003, tmp_path / "serve.log")
    relay: BinhubProcess | None = None
    try:
        point_at(replica, hub.port, gtid=replica.query("SELECT @@gtid_slave_pos")[0][0])
        # The replica's dump has reached binhub and waits there: binhub says so, and why.
        wait_until(lambda: "ahead of binhub's store" in hub.tail(100_000), timeout=30,
                   message=f"binhub did not log why the replica waits (see {hub.log})")
        status = slave_status(replica)
        assert status["Slave_IO_Running"] in ("Yes", "Connecting") and not status["Last_IO_Error"], status
        relay = start_relay(primary_db.dsn, data_dir, "--server-id", "9003", log=tmp_path / "relay2.log")
        insert_rows(primary_db.conn, primary_db.name, table, 200, start_id=200_000)
        assert_replicas_match(primary_db, [replica])
    finally:
        hub.stop()
        if relay is not None:
            stop_relay(relay)
