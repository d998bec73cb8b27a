"""``binhub run`` with ``[relay]`` and ``[serve]`` in one process, and real MariaDB 10.11 replicas.

In one daemon the server's dumps follow the relay's own writer store and are woken by its
in-process listeners (no inotify, no state-file polling), so this is a different code path from
the two-process variant in ``test_serve_replicas.py``. The module proves:

* three replicas (GTID slave_pos, file/position, semi-sync) replicate the workload exactly, and
  the semi-sync acks show in binhub's metrics;
* a daemon restart while replicas stream: they reconnect and continue, no error, no duplicate;
  a file/position replica whose connection drops inside a statement (a proxy cuts it there, which
  a restart does by chance) reconnects there without error 1595;
* error 1236 with a clear message for an unknown file, an unknown GTID and a purged file, as a
  real replica's Last_IO_Error shows it; PURGE BINARY LOGS of a file a dump reads is refused,
  naming the reader.

The three replicas are the session's pool (``replicas`` in conftest.py), re-pointed by each test:
starting a server costs seconds on a 2-core machine.
"""

from __future__ import annotations

import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql
import pytest

from binhub.binlog.constants import HEADER_SIZE, ROWS_EVENT_TYPES, ROWS_STMT_END_F
from binhub.sandbox import Sandbox
from binhub.sandbox.binhub_process import BinhubProcess, binhub_command
from binhub.sandbox.process import free_port
from binhub.wire.commands import ComBinlogDump
from binhub.wire.constants import Command
from tests.integration.conftest import PrimaryDb
from tests.integration.serveutil import packet
from tests.integration.test_serve_replicas import (
    PASSWORD,
    USER,
    assert_replicas_match,
    point_at,
    slave_status,
)
from tests.integration.workload import (
    create_tables,
    insert_rows,
    large_transaction,
    run_workload,
    table_checksums,
    wait_until,
)

BINHUB = binhub_command()
ADMIN, ADMIN_PASSWORD = "binhub_admin", "adm1n-pw"
SERVE_ID = 9101
REPLICA_AHEAD_WAIT = 2


@dataclass
class Daemon:
    """``binhub run`` with a relay of the shared primary and a server on one store."""

    dir: Path
    source: str
    start_file: str
    port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    process: BinhubProcess | None = None

    @property
    def data_dir(self) -> Path:
        return self.dir / "store"

    @property
    def log(self) -> Path:
        return self.dir / "daemon.log"

    def configure(self) -> None:
        users = self.dir / "users.toml"
        for name, pw, extra in ((USER, PASSWORD, []), (ADMIN, ADMIN_PASSWORD, ["--admin"])):
            subprocess.run([*BINHUB, "user", "add", "--users", str(users), name, "--password", pw, *extra],
                           check=True, capture_output=True, timeout=60)
        (self.dir / "binhub.toml").write_text(f"""
[store]
data_dir = "{self.data_dir}"
durability = "txn"

[relay]
source = "{self.source}"
server_id = 9100
start_file = "{self.start_file}"

[serve]
listen = "127.0.0.1:{self.port}"
users_file = "{users}"
server_id = {SERVE_ID}
# A replica ahead of the store (the unknown GTID below) waits this long for the relay before its
# error 1236: long enough to see it wait, short enough not to idle the suite (default 30 s).
replica_ahead_wait = "{REPLICA_AHEAD_WAIT}s"

[http]
listen = "127.0.0.1:{self.http_port}"
""")

    def start(self) -> None:
        if self.process is None:
            self.process = BinhubProcess(["run", "--config", str(self.dir / "binhub.toml")], self.log, port=self.port)
        self.process.start()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None:
            self.process.stop(sig)

    def metric(self, name: str) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")]
        return values[0] if values else 0.0

    def admin(self) -> pymysql.Connection[Any]:
        return pymysql.connect(host="127.0.0.1", port=self.port, user=ADMIN, password=ADMIN_PASSWORD,
                               connect_timeout=10, read_timeout=30)


@pytest.fixture
def daemon(primary_db: PrimaryDb, tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path, primary_db.dsn, primary_db.start_file)
    d.configure()
    d.start()
    yield d
    d.stop()


def _point_three(replicas: list[Sandbox], port: int, primary_db: PrimaryDb) -> None:
    gtid_rep, pos_rep, semi_rep = replicas
    point_at(gtid_rep, port, gtid=primary_db.start_gtid)
    point_at(pos_rep, port, file=primary_db.start_file)
    point_at(semi_rep, port, gtid=primary_db.start_gtid, semisync=True)


def _assert_no_errno(replicas: list[Sandbox]) -> None:
    for sb in replicas:
        status = slave_status(sb)
        assert status["Last_IO_Errno"] == 0 and status["Last_SQL_Errno"] == 0, (sb.name, status)


def test_three_replicas_through_binhub_run(primary_db: PrimaryDb, daemon: Daemon, replicas: list[Sandbox]) -> None:
    _point_three(replicas, daemon.port, primary_db)
    summary = run_workload(primary_db.conn, primary_db.name)
    assert summary.transactions > 50
    assert_replicas_match(primary_db, replicas)
    _assert_no_errno(replicas)
    semi = replicas[2].query("SHOW STATUS LIKE 'Rpl_semi_sync_slave_status'")
    assert semi and semi[0][1] == "ON", semi
    # Every transaction of the workload asked the semi-sync replica for an ack, and binhub read them.
    acks = daemon.metric("binhub_serve_semisync_acks_total")
    assert acks >= summary.transactions / 2, acks


def test_restart_while_replicas_stream(primary_db: PrimaryDb, daemon: Daemon, replicas: list[Sandbox]) -> None:
    """The daemon restarts (relay and server) while inserts stream; the replicas reconnect and continue."""
    _point_three(replicas, daemon.port, primary_db)
    table = create_tables(primary_db.conn, primary_db.name, 1)[0]
    stop = threading.Event()
    inserted: list[int] = []
    errors: list[BaseException] = []

    def writer() -> None:
        # A connection of its own: the test thread keeps primary_db.conn.
        conn = primary_db.connect()
        try:
            next_id = 1
            while not stop.is_set() and next_id < 20_000:
                insert_rows(conn, primary_db.name, table, 20, start_id=next_id, batch=20)
                next_id += 20
                inserted.append(next_id)
                time.sleep(0.01)
        except BaseException as exc:
            errors.append(exc)
        finally:
            conn.close()

    thread = threading.Thread(target=writer, name="restart-writer")
    thread.start()
    try:
        wait_until(lambda: len(inserted) > 20, timeout=60, message="the writer made no progress")
        wait_until(lambda: all(slave_status(sb).get("Exec_Master_Log_Pos", 0) for sb in replicas), timeout=60)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            daemon.stop(sig)  # mid-stream: the replicas' IO threads see the connection drop
            _wait_for_rows(inserted, 10)  # the primary goes on while binhub is down
            daemon.start()
            _wait_for_rows(inserted, 30)
    finally:
        stop.set()
        thread.join(60)
    assert not errors, errors
    assert_replicas_match(primary_db, replicas)
    _assert_no_errno(replicas)
    # No duplicate and nothing lost: every replica applied each transaction exactly once.
    want = primary_db.sandbox.query("SELECT @@gtid_binlog_pos")[0][0]
    for sb in replicas:
        assert sb.query("SELECT @@gtid_slave_pos")[0][0] == want, sb.name
        count = sb.query(f"SELECT COUNT(*), COUNT(DISTINCT id) FROM `{primary_db.name}`.`{table}`")[0]
        assert count[0] == count[1] == inserted[-1] - 1, (sb.name, count, inserted[-1])


def test_reconnect_inside_a_statement(primary_db: PrimaryDb, daemon: Daemon, replicas: list[Sandbox]) -> None:
    """A file/position replica whose connection drops between two row events of one statement
    (what a restart mid-stream leaves behind) reconnects there and goes on: binhub sends the rest of
    the statement first, since a ROTATE there would stop it with 1595 (see ``binhub.serve.dump``)."""
    replica = replicas[1]
    with _CuttingProxy(daemon.port) as proxy:
        point_at(replica, proxy.port, file=primary_db.start_file)
        table = create_tables(primary_db.conn, primary_db.name, 1)[0]
        # Wide rows, 20 a statement: mariadbd splits each statement into several WRITE_ROWS.
        insert_rows(primary_db.conn, primary_db.name, table, 200, batch=20)
        wait_until(lambda: proxy.cut.is_set(), timeout=60, message="the stream had no statement of several row events")
        assert_replicas_match(primary_db, [replica])
        _assert_no_errno([replica])  # before the proxy goes, and the replica's connection with it


class _CuttingProxy:
    """A TCP proxy to binhub that cuts its first binlog dump right after a row event without STMT_END_F."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.cut = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port: int = self.listener.getsockname()[1]
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._accept, name="cutting-proxy", daemon=True)]

    def __enter__(self) -> _CuttingProxy:
        self.threads[0].start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.listener.close()
        for t in self.threads:
            t.join(10)

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                client, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            server = socket.create_connection(("127.0.0.1", self.target), timeout=10)
            dumping = threading.Event()
            for args in ((client, server, dumping, False), (server, client, dumping, True)):
                t = threading.Thread(target=self._pump, args=args, daemon=True)
                self.threads.append(t)
                t.start()

    def _pump(self, src: socket.socket, dst: socket.socket, dumping: threading.Event, from_server: bool) -> None:
        """Forward packets; the client's COM_BINLOG_DUMP arms the cut, the first unfinished statement fires it."""
        src.settimeout(0.2)
        buf = b""
        try:
            while not self.stop.is_set():
                try:
                    data = src.recv(1 << 16)
                except TimeoutError:
                    continue
                if not data:
                    break
                buf += data
                while len(buf) >= 4 and len(buf) >= 4 + int.from_bytes(buf[:3], "little"):
                    size = 4 + int.from_bytes(buf[:3], "little")
                    pkt, buf = buf[:size], buf[size:]
                    dst.sendall(pkt)
                    if not from_server and pkt[4] == Command.BINLOG_DUMP:
                        dumping.set()
                    elif from_server and dumping.is_set() and not self.cut.is_set() and _unfinished_statement(pkt[5:]):
                        self.cut.set()
                        return
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                sock.close()


def _unfinished_statement(event: bytes) -> bool:
    """A row event whose flags (after its 6-byte table id) lack STMT_END_F."""
    return (len(event) > HEADER_SIZE + 8 and event[4] in ROWS_EVENT_TYPES
            and not int.from_bytes(event[HEADER_SIZE + 6:HEADER_SIZE + 8], "little") & ROWS_STMT_END_F)


def _wait_for_rows(inserted: list[int], batches: int) -> None:
    target = len(inserted) + batches
    wait_until(lambda: len(inserted) >= target, timeout=60, message="the writer stalled")


def _io_error(sb: Sandbox) -> dict[str, Any]:
    def failed() -> dict[str, Any] | None:
        status = slave_status(sb)
        return status if status.get("Last_IO_Errno") else None
    return wait_until(failed, timeout=30, message=f"{sb.name} reported no IO error")


def test_errors_1236_and_purge_refused(primary_db: PrimaryDb, daemon: Daemon, replicas: list[Sandbox]) -> None:
    # Two transactions with events above 16 MiB in the first file, so a dump that does not read
    # stays inside it (the server stops at its write buffer's high-water mark).
    large_transaction(primary_db.conn, primary_db.name, table="big1")
    large_transaction(primary_db.conn, primary_db.name, table="big2", seed=1)
    primary_db.sandbox.query("FLUSH BINARY LOGS")
    second = primary_db.position()[0]
    create_tables(primary_db.conn, primary_db.name, 1)
    wait_until(lambda: second in [r[0] for r in _show_binary_logs(daemon)], timeout=60,
               message="binhub did not store the second file")

    unknown_file, unknown_gtid, purged = replicas
    unknown_file.query("STOP SLAVE")
    unknown_file.query(f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={daemon.port}, "
                      f"MASTER_USER='{USER}', MASTER_PASSWORD='{PASSWORD}', MASTER_CONNECT_RETRY=1, "
                      "MASTER_LOG_FILE='mariadb-bin.999999', MASTER_LOG_POS=4, MASTER_USE_GTID=no")
    unknown_file.query("START SLAVE")
    point_at(unknown_gtid, daemon.port, gtid="0-1-999999999")
    st = _io_error(unknown_file)
    assert st["Last_IO_Errno"] == 1236 and "mariadb-bin.999999" in str(st["Last_IO_Error"]), st
    assert "not in binhub's store" in str(st["Last_IO_Error"]), st
    st = _io_error(unknown_gtid)
    assert st["Last_IO_Errno"] == 1236 and "0-1-999999999" in str(st["Last_IO_Error"]), st

    # A dump that reads the first file and does not read on: it holds that file's lease.
    stalled = _stalled_dump(daemon.port, primary_db.start_file)
    try:
        wait_until(lambda: _lease_holds(daemon.data_dir, primary_db.start_file), timeout=10)
        with daemon.admin() as conn, conn.cursor() as cur, pytest.raises(pymysql.err.MySQLError) as info:
            cur.execute(f"PURGE BINARY LOGS TO '{second}'")
        code, message = info.value.args[0], info.value.args[1]
        assert code == 1378, info.value
        assert primary_db.start_file in message and "dump of replica 4343" in message, message
        assert (daemon.data_dir / "binlog" / primary_db.start_file).exists()
    finally:
        _drop(stalled)
    # Once the reader is gone its lease goes with it, and the same purge succeeds.
    wait_until(lambda: not _lease_holds(daemon.data_dir, primary_db.start_file), timeout=10)
    with daemon.admin() as conn, conn.cursor() as cur:
        cur.execute(f"PURGE BINARY LOGS TO '{second}'")
    assert primary_db.start_file not in [r[0] for r in _show_binary_logs(daemon)]
    # A replica asking for the purged file gets 1236 naming it.
    purged.query("STOP SLAVE")
    purged.query(f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={daemon.port}, "
                f"MASTER_USER='{USER}', MASTER_PASSWORD='{PASSWORD}', MASTER_CONNECT_RETRY=1, "
                f"MASTER_LOG_FILE='{primary_db.start_file}', MASTER_LOG_POS=4, MASTER_USE_GTID=no")
    purged.query("START SLAVE")
    st = _io_error(purged)
    assert st["Last_IO_Errno"] == 1236 and primary_db.start_file in str(st["Last_IO_Error"]), st
    # The server is unharmed: the first replica, re-pointed by GTID, replicates.
    point_at(unknown_file, daemon.port, gtid=primary_db.sandbox.query("SELECT @@gtid_binlog_pos")[0][0])
    create_tables(primary_db.conn, primary_db.name, 1, prefix="after")
    expected = table_checksums(primary_db.conn, primary_db.name)
    conn = unknown_file.connect()
    try:
        wait_until(lambda: table_checksums(conn, primary_db.name).get("after1") == expected["after1"],
                   timeout=60, message="the re-pointed replica did not replicate")
    finally:
        conn.close()


def _show_binary_logs(daemon: Daemon) -> list[tuple[str, int]]:
    with daemon.admin() as conn, conn.cursor() as cur:
        cur.execute("SHOW BINARY LOGS")
        return [(str(r[0]), int(r[1])) for r in cur.fetchall()]


def _lease_holds(data_dir: Path, file: str) -> bool:
    """Whether a reader lease in the store names ``file`` (a lease may vanish between listing and reading)."""
    for path in (data_dir / "readers").glob("*.json"):
        try:
            if file in path.read_text():
                return True
        except FileNotFoundError:
            continue
    return False


def _stalled_dump(port: int, file: str) -> pymysql.Connection[Any]:
    """A replica that starts a dump of ``file`` and never reads: the server's writes back up.

    The connection is returned (not just its socket): once PyMySQL's object is collected, its
    socket goes with it and the "replica" would be gone.
    """
    # A small receive buffer set before connecting also turns off the kernel's receive autotuning
    # (which may grow to tens of MiB here), so the server's writes back up within a few MiB.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    conn = pymysql.connect(host="127.0.0.1", port=port, user=USER, password=PASSWORD, connect_timeout=10,
                           defer_connect=True)
    conn.connect(sock)
    with conn.cursor() as cur:
        cur.execute("SET @master_binlog_checksum = 'CRC32', @mariadb_slave_capability = 4")
    assert conn._sock is not None  # PyMySQL keeps its own socket object for the fd
    conn._sock.sendall(packet(ComBinlogDump(4, 4343, file).build(), 0))
    return conn


def _drop(conn: pymysql.Connection[Any]) -> None:
    """Vanish as a crashed replica does: a reset, no COM_QUIT (it could not go through a running dump).

    PyMySQL's buffered reader holds a reference to the socket, and a socket with such references
    is only really closed once they are gone: both are closed here.
    """
    sock = conn._sock
    assert sock is not None
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    if conn._rfile is not None:
        conn._rfile.close()
    sock.close()
