"""Faults while the relay runs: kill -9 of the relay, primary restarts and crashes, a full disk, a
duplicate server_id, semi-sync, and a network that cuts the stream at random points.

Every server a test stops, kills or reconfigures is its own (``mariadb_factory``); the shared
primary is never touched. Every wait has a deadline. The end state is always the same check: each
stored file is byte-identical to the primary's, and the stored GTIDs are exactly the primary's,
each once, without a gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from binhub.binlog.file import BinlogFileReader
from binhub.binlog.gtid import MariadbGtid
from binhub.binlog.transaction import TransactionTracker
from binhub.sandbox import Sandbox
from binhub.store.catalog import verify_files
from tests.integration.conftest import MariadbFactory, missing_prerequisite
from tests.integration.relayutil import (
    BINHUB,
    assert_store_matches,
    run_relay,
    start_relay,
    stop_relay,
    stored_files,
    wait_binlog_settled,
)
from tests.integration.workload import large_transaction, q, wait_until

FDE_FLAGS_BYTE = 21  # the FDE's low flags byte: 4 (magic) + 17 (header offset of the flags)


# ---------------------------------------------------------------------------------------------
# helpers


def file_gtids(paths: list[Path]) -> list[str]:
    """Every completed transaction's GTID in the files, in order."""
    out: list[str] = []
    for path in paths:
        tracker = TransactionTracker()
        with open(path, "rb") as f:
            reader = BinlogFileReader(f, path.name)
            for ev in reader:
                done = tracker.transactions
                if tracker.feed(ev.data, reader.fde.checksum_size if reader.fde else 4) \
                        and tracker.transactions != done and tracker.last_gtid is not None:
                    out.append(str(tracker.last_gtid))
    return out


def assert_same_gtids(data_dir: Path, server: Sandbox) -> list[str]:
    """The store's GTIDs are the primary's: each once, in order, and seq 1..N contiguous in domain 0."""
    stored = file_gtids(stored_files(data_dir))
    theirs = file_gtids(server.binlog_files())
    assert stored == theirs, f"stored {len(stored)} GTIDs, primary has {len(theirs)}"
    assert len(set(stored)) == len(stored), "a GTID is stored twice"
    seqs = [MariadbGtid.parse(g).seq_no for g in stored if MariadbGtid.parse(g).domain_id == 0]
    assert seqs == list(range(1, len(seqs) + 1)), "the stored GTIDs of domain 0 have a gap"
    return stored


def caught_up(data_dir: Path, server: Sandbox) -> bool:
    """Every file of the primary is in the store with the same size (the primary is idle)."""
    try:
        mine = {p.name: p.stat().st_size for p in stored_files(data_dir)}
    except Exception:  # the store may be between two writes of its index
        return False
    theirs = {p.name: p.stat().st_size for p in server.binlog_files()}
    return all(mine.get(name) == size for name, size in theirs.items())


def own_server(mariadb_factory: MariadbFactory, name: str, **spec: Any) -> Sandbox:
    server = mariadb_factory(f"{name}_{random.randrange(1 << 30):x}", **spec)
    server.create_replication_user()
    return server


class Writer(threading.Thread):
    """Commits small, medium, multi-statement transactions, DDL and now and then FLUSH BINARY LOGS,
    until stopped. Survives a server restart (reconnects); counts what it committed."""

    def __init__(self, server: Sandbox, db: str, *, seed: int = 1, flush_every: int = 60,
                 pause: float = 0.0) -> None:
        super().__init__(daemon=True, name=f"writer-{db}")
        self.server, self.db, self.flush_every, self.pause = server, db, flush_every, pause
        self.rng = random.Random(seed)
        self.stopping = threading.Event()
        self.commits = 0
        self.errors = 0
        self.failure: BaseException | None = None

    def run(self) -> None:
        conn = None
        i = 0
        try:
            while not self.stopping.is_set():
                try:
                    if conn is None:
                        conn = self.server.connect(read_timeout=30, write_timeout=30)
                        with conn.cursor() as cur:
                            cur.execute(f"CREATE DATABASE IF NOT EXISTS {q(self.db)}")
                            cur.execute(f"CREATE TABLE IF NOT EXISTS {q(self.db, 't')} "
                                        "(id INT PRIMARY KEY AUTO_INCREMENT, n INT, s VARCHAR(64), b BLOB)")
                    self._one(conn, i)
                    i += 1
                except Exception:
                    # The server went away (a restart or crash in the test): reconnect and go on.
                    self.errors += 1
                    if conn is not None:
                        with contextlib.suppress(Exception):
                            conn.close()
                    conn = None
                    self.stopping.wait(0.2)
                if self.pause:
                    self.stopping.wait(self.pause)
        except BaseException as exc:  # pragma: no cover - surfaced by the test
            self.failure = exc
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()

    def _one(self, conn: Any, i: int) -> None:
        t = q(self.db, "t")
        r = self.rng
        with conn.cursor() as cur:
            kind = r.random()
            if self.flush_every and i % self.flush_every == self.flush_every - 1:
                cur.execute("FLUSH BINARY LOGS")
            elif kind < 0.45:
                cur.execute(f"INSERT INTO {t} (n, s) VALUES (%s, %s)", (i, f"small {i}"))
            elif kind < 0.7:
                cur.executemany(f"INSERT INTO {t} (n, s, b) VALUES (%s, %s, %s)",
                                [(i, f"medium {i}.{k}", r.randbytes(r.randint(50, 800))) for k in range(30)])
            elif kind < 0.93:
                cur.execute("BEGIN")
                cur.execute(f"INSERT INTO {t} (n, s) VALUES (%s, 'multi')", (i,))
                cur.execute(f"UPDATE {t} SET n = n + 1 WHERE id %% 17 = %s", (i % 17,))
                cur.execute(f"DELETE FROM {t} WHERE id %% 97 = %s AND s = 'multi'", (i % 97,))
                cur.execute("COMMIT")
            else:
                name = q(self.db, f"ddl{i}")
                cur.execute(f"CREATE TABLE {name} (id INT PRIMARY KEY, v VARCHAR(10))")
                cur.execute(f"ALTER TABLE {name} ADD COLUMN w INT")
                cur.execute(f"DROP TABLE {name}")
        self.commits += 1

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=60)
        assert not self.is_alive(), "the writer did not stop"
        assert self.failure is None, self.failure


@contextlib.contextmanager
def writing(server: Sandbox, db: str, **kwargs: Any) -> Iterator[Writer]:
    writer = Writer(server, db, **kwargs)
    writer.start()
    try:
        yield writer
    finally:
        writer.stopping.set()
        writer.join(timeout=60)


@contextlib.contextmanager
def relay_running(source: str, data_dir: Path, log: Path, *extra: str) -> Iterator[subprocess.Popen[str]]:
    proc = start_relay(source, data_dir, *extra, log=log)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def finish(data_dir: Path, server: Sandbox, log: Path) -> None:
    """One-shot catch-up, then the end-state checks."""
    wait_binlog_settled(server)
    proc = run_relay(server.dsn, data_dir, timeout=60)
    log.open("a").write(proc.stderr)
    assert proc.returncode == 0, proc.stderr
    assert_store_matches(data_dir, server)
    assert_same_gtids(data_dir, server)


def dump_log(log: Path) -> str:
    return log.read_text(errors="replace") if log.exists() else ""


# ---------------------------------------------------------------------------------------------
# 1. kill -9 of the relay, again and again, under a heavy write workload


@pytest.mark.slow
def test_relay_survives_repeated_kill_9_under_load(mariadb_factory: MariadbFactory, tmp_path: Path) -> None:
    server = own_server(mariadb_factory, "kill9")
    data_dir, log = tmp_path / "store", tmp_path / "relay.log"
    rng = random.Random(20240917)
    kills = mid_dump = 0
    slow_start = 0.0  # a loaded machine imports Python slowly: wait longer until kills land mid-dump too
    deadline = time.monotonic() + 150
    with writing(server, "k9", flush_every=80) as writer:
        wait_until(lambda: writer.commits > 20, timeout=30)
        while kills < 22 or mid_dump < 8:
            assert time.monotonic() < deadline, f"only {kills} kills ({mid_dump} with a store) in time"
            proc = start_relay(server.dsn, data_dir, log=log)
            try:
                # From "still importing Python" through "mid-dump under load": every stage gets hit.
                time.sleep(rng.uniform(0.15, 1.6) + slow_start)
                assert proc.poll() is None, f"the relay exited by itself:\n{dump_log(log)[-3000:]}"
            finally:
                proc.kill()
                proc.wait(timeout=30)
            kills += 1
            if (data_dir / "binlog").is_dir():
                mid_dump += 1
            else:
                slow_start = min(slow_start + 0.5, 5.0)
        assert writer.commits > 200, writer.commits
        writer.stop()
    finish(data_dir, server, log)
    assert len(stored_files(data_dir)) >= 2
    assert "Traceback" not in dump_log(log)


# ---------------------------------------------------------------------------------------------
# 2. the primary restarts cleanly, and crashes, while the relay runs


def test_primary_restart_and_crash_while_relaying(mariadb_factory: MariadbFactory, tmp_path: Path) -> None:
    server = own_server(mariadb_factory, "crashy")
    data_dir, log = tmp_path / "store", tmp_path / "relay.log"
    with relay_running(server.dsn, data_dir, log) as proc, writing(server, "cr", flush_every=0, pause=0.01) as w:
        wait_until(lambda: w.commits > 30, timeout=30)
        server.restart(timeout=60)  # clean: STOP event, in-use flag cleared
        wait_until(lambda: w.commits > 80, timeout=30)
        crashed = server.binlog_files()[-1].name
        server.kill()  # crash: the active file keeps its in-use flag
        server.start(timeout=90)
        wait_until(lambda: w.commits > 130, timeout=30)
        w.stop()
        wait_binlog_settled(server)
        wait_until(lambda: caught_up(data_dir, server), timeout=30)
        assert proc.poll() is None, dump_log(log)
        assert stop_relay(proc) == 0
    files = {p.name: p for p in assert_store_matches(data_dir, server)}
    assert_same_gtids(data_dir, server)
    # What mariadbd leaves on disk, and so what the store must hold too: the crashed file keeps the
    # in-use flag (its crash recovery does not clear it), the cleanly closed ones have it cleared,
    # and the active one has it set.
    names = sorted(files)
    assert files[crashed].read_bytes()[FDE_FLAGS_BYTE] & 1 == 1
    assert (server.binlog_dir / crashed).read_bytes()[FDE_FLAGS_BYTE] & 1 == 1
    assert files[names[-1]].read_bytes()[FDE_FLAGS_BYTE] & 1 == 1
    clean = [n for n in names[:-1] if n != crashed]
    assert clean and all(files[n].read_bytes()[FDE_FLAGS_BYTE] & 1 == 0 for n in clean)
    text = dump_log(log)
    assert "reconnecting" in text and "Traceback" not in text

    # A store whose last file ends with STOP (here: imported up to the cleanly stopped file) has no
    # ROTATE naming the next file: the relay must still continue with the upstream's next file.
    stopped = min(clean)
    seeded = tmp_path / "seeded"
    proc2 = subprocess.run([*BINHUB, "binlog", "import", "--data-dir", str(seeded),
                            *[str(server.binlog_dir / n) for n in names if n <= stopped]],
                           capture_output=True, text=True, timeout=60)
    assert proc2.returncode == 0, proc2.stderr
    finish(seeded, server, log)


# ---------------------------------------------------------------------------------------------
# 3. the store's disk fills up


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "small_disk"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3M", "tmpfs", str(mnt)], capture_output=True,
                          text=True, timeout=30)
    if proc.returncode != 0:
        missing_prerequisite(f"mounting a size-limited tmpfs is not permitted here ({proc.stderr.strip()}); "
                             "the disk-full test needs root or CAP_SYS_ADMIN")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)


@pytest.mark.slow
def test_disk_full_then_space_freed(mariadb_factory: MariadbFactory, small_tmpfs: Path, tmp_path: Path) -> None:
    server = own_server(mariadb_factory, "diskfull")
    data_dir, log = small_tmpfs / "store", tmp_path / "relay.log"
    with relay_running(server.dsn, data_dir, log) as proc:
        with writing(server, "df", flush_every=150) as w:
            wait_until(lambda: "no space left on device" in dump_log(log), timeout=60)
            w.stop()
        # It keeps retrying and does not crash: a second attempt hits the full disk too (its backoff
        # starts at 0.2 s); what it holds is whole transactions.
        def disk_full_retries() -> int:
            return sum("no space left on device" in line and "reconnecting in" in line
                       for line in dump_log(log).splitlines())
        wait_until(lambda: disk_full_retries() >= 2 or proc.poll() is not None, timeout=30,
                   message="the relay did not try again after the disk filled up")
        assert proc.poll() is None, dump_log(log)[-3000:]
        report = verify_files(stored_files(data_dir))
        assert report.ok, report.problems
        text = dump_log(log)
        assert str(data_dir) in text and "Traceback" not in text
        subprocess.run(["mount", "-o", "remount,size=64M", str(small_tmpfs)], check=True, timeout=30)
        wait_until(lambda: caught_up(data_dir, server), timeout=45)
        assert proc.poll() is None
        assert stop_relay(proc) == 0
    assert_store_matches(data_dir, server)
    assert_same_gtids(data_dir, server)


# ---------------------------------------------------------------------------------------------
# 4. another replica registers with binhub's server_id


def test_duplicate_server_id_stops_the_relay(mariadb_factory: MariadbFactory, tmp_path: Path) -> None:
    from binhub.net.client import UpstreamConnection

    server = own_server(mariadb_factory, "dupid")
    data_dir, log = tmp_path / "store", tmp_path / "relay.log"
    with relay_running(server.dsn, data_dir, log, "--server-id", "4242") as proc:
        wait_until(lambda: "relaying from" in dump_log(log), timeout=30)

        async def intruder() -> None:
            conn = await UpstreamConnection.connect("127.0.0.1", server.port, server.repl_user,
                                                    server.repl_password)
            try:
                await conn.execute("SET @master_binlog_checksum = @@global.binlog_checksum")
                await conn.register_replica(4242)
                await conn.start_binlog_dump(server.binlog_files()[0].name, 4, 4242)
                await asyncio.wait_for(conn.read_events(), 10)
                # Stay on while the relay reacts; it must not take the id back.
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(6):
                        while proc.poll() is None:
                            await conn.read_events()
            finally:
                await conn.close()

        began = time.monotonic()
        asyncio.run(intruder())
        code = proc.wait(timeout=10)
        took = time.monotonic() - began
    text = dump_log(log)
    assert code != 0, text
    assert took < 10, f"the relay took {took:.1f}s to give up"
    assert "server_id 4242" in text and "no other replica uses" in text, text
    assert text.count("4052") <= 1, text  # no fight for the id in a reconnect loop
    assert "Traceback" not in text


# ---------------------------------------------------------------------------------------------
# 5. semi-sync upstream


def _status(conn: Any, name: str) -> int:
    with conn.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS LIKE %s", (name,))
        row = cur.fetchone()
    return int(row[1])


def _variable_status(conn: Any) -> str:
    with conn.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_status'")
        return str(cur.fetchone()[1])


def test_semi_sync_acks_every_transaction(mariadb_factory: MariadbFactory, tmp_path: Path) -> None:
    # wait-no-slave=OFF: the server's own setup (before any replica) need not wait out the timeout.
    server = own_server(mariadb_factory, "semisync", extra_args=[
        "--rpl-semi-sync-master-enabled=ON", "--rpl-semi-sync-master-timeout=10000",
        "--rpl-semi-sync-master-wait-no-slave=OFF"])
    data_dir, log = tmp_path / "store", tmp_path / "relay.log"
    admin = server.connect()
    with relay_running(server.dsn, data_dir, log, "--semi-sync") as proc:
        wait_until(lambda: _status(admin, "Rpl_semi_sync_master_clients") == 1, timeout=30)
        # Semi-sync is switched on once the replica has caught up with the primary.
        wait_until(lambda: _variable_status(admin) == "ON", timeout=30)
        # Commits from before the relay connected (the server's own user setup) count as no_tx.
        yes_before = _status(admin, "Rpl_semi_sync_master_yes_tx")
        no_before = _status(admin, "Rpl_semi_sync_master_no_tx")
        began = time.monotonic()
        with admin.cursor() as cur:
            cur.execute("CREATE DATABASE ss")
            cur.execute("CREATE TABLE ss.t (id INT PRIMARY KEY AUTO_INCREMENT, v INT)")
        assert time.monotonic() - began < 5, "the DDL waited for an ack that never came"
        slowest = [0.0]
        errors: list[BaseException] = []

        def commit_many(k: int) -> None:
            try:
                c = server.connect()
                with c.cursor() as cur:
                    for i in range(25):
                        began = time.monotonic()
                        cur.execute("INSERT INTO ss.t (v) VALUES (%s)", (k * 1000 + i,))
                        slowest[0] = max(slowest[0], time.monotonic() - began)
                c.close()
            except BaseException as exc:
                errors.append(exc)

        # Several concurrent committers: acks requested while an fsync is in flight must not be lost.
        threads = [threading.Thread(target=commit_many, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not errors, errors
        # A lost ack costs the 10 s timeout and turns semi-sync off (no_tx counts it).
        assert slowest[0] < 5, f"a commit waited {slowest[0]:.1f}s for its ack"
        assert _status(admin, "Rpl_semi_sync_master_no_tx") == no_before
        assert _status(admin, "Rpl_semi_sync_master_yes_tx") - yes_before >= 102
        assert _variable_status(admin) == "ON"  # semi-sync never fell back to async
        assert proc.poll() is None
        wait_until(lambda: caught_up(data_dir, server), timeout=30)
        assert stop_relay(proc) == 0
    admin.close()
    assert "semi-sync replication is on" in dump_log(log)
    assert_store_matches(data_dir, server)


# ---------------------------------------------------------------------------------------------
# 6. the network cuts the stream at random points


class CuttingProxy:
    """A TCP proxy on 127.0.0.1 between the relay and its primary. Each of the first connections is
    cut after a planned number of bytes from the server: ``("rst", n)`` resets both sides as a
    broken link does; ``("silent", n)`` just stops forwarding and leaves the sockets open, as a cut
    that no FIN or RST ever reports. Later connections pass through whole."""

    def __init__(self, target_port: int, plan: list[tuple[str, int]]) -> None:
        self.target_port = target_port
        self.plan = list(plan)
        self.cuts_done = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.held: list[socket.socket] = []  # silently cut sockets, closed at the end
        self.thread = threading.Thread(target=self._accept, daemon=True, name="cutting-proxy")
        self.thread.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self.lock:
                cut = self.plan.pop(0) if self.plan else None
                # The primary's end of a silently cut link only times out after net_write_timeout
                # (60 s), and until then its dump thread holds binhub's server_id. Once the relay
                # has noticed the silence and comes back, let the primary notice too.
                held, self.held = self.held, []
            for old in held:
                _reset(old)
            threading.Thread(target=self._serve, args=(client, cut), daemon=True).start()

    def _serve(self, client: socket.socket, cut: tuple[str, int] | None) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        silenced = threading.Event()

        def client_to_server() -> None:
            with contextlib.suppress(OSError):
                while (data := client.recv(65536)) and not silenced.is_set():
                    upstream.sendall(data)
            if not silenced.is_set():
                _reset(upstream)

        threading.Thread(target=client_to_server, daemon=True).start()
        mode, left = cut if cut is not None else ("", -1)
        try:
            while not self.stopping.is_set():
                data = upstream.recv(65536)
                if not data:
                    break
                if left >= 0 and len(data) >= left:
                    client.sendall(data[:left])  # the cut lands wherever it lands: mid-packet, mid-event
                    with self.lock:
                        self.cuts_done += 1
                    if mode == "silent":
                        silenced.set()
                        with self.lock:
                            self.held += [client, upstream]
                        return
                    break
                client.sendall(data)
                if left >= 0:
                    left -= len(data)
        except OSError:
            pass
        _reset(client)
        _reset(upstream)

    def close(self) -> None:
        self.stopping.set()
        self.listener.close()
        self.thread.join(timeout=5)
        for s in self.held:
            _reset(s)


def _reset(s: socket.socket) -> None:
    """Abort a socket with RST. shutdown() first: it wakes a thread blocked in recv() on it, which
    close() alone would not, and the socket would stay open (and silent) until that recv returned."""
    with contextlib.suppress(OSError):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RD)
    s.close()


@pytest.mark.slow
def test_network_cuts_mid_stream(mariadb_factory: MariadbFactory, tmp_path: Path) -> None:
    server = own_server(mariadb_factory, "netcut")
    conn = server.connect()
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE nc")
    # Traffic first, relay later: each cut then lands inside the dump of existing data. The large
    # transaction holds a > 16 MiB event, sent as several packets; cuts are spread over it too.
    with writing(server, "nc", flush_every=40) as w:
        wait_until(lambda: w.commits > 150, timeout=60)
        w.stop()
    large_transaction(conn, "nc", blob_bytes=17 * 1024 * 1024, small_rows=50)
    with conn.cursor() as cur:
        cur.execute("INSERT INTO nc.t (n, s) VALUES (1, 'after large')")
    conn.close()
    total = sum(p.stat().st_size for p in server.binlog_files())
    rng = random.Random(7)
    # Budgets are per connection: the handshake and probe take a few kB, then the dump resumes where
    # the store ends, so small and large budgets both cut inside events.
    plan = [("rst", rng.randint(3_000, 60_000)) for _ in range(3)] + \
           [("rst", rng.randint(200_000, 9_000_000)) for _ in range(4)] + \
           [("silent", rng.randint(100_000, 4_000_000)), ("rst", rng.randint(17_000, 40_000))]
    proxy = CuttingProxy(server.port, plan)
    data_dir, log = tmp_path / "store", tmp_path / "relay.log"
    source = f"mysql://{server.repl_user}:{server.repl_password}@127.0.0.1:{proxy.port}"
    try:
        with relay_running(source, data_dir, log) as proc:
            wait_until(lambda: caught_up(data_dir, server), timeout=45)
            assert proc.poll() is None, dump_log(log)[-3000:]
            assert stop_relay(proc) == 0
        assert proxy.cuts_done >= 7, f"only {proxy.cuts_done} cuts ({total} bytes to relay)"
    finally:
        proxy.close()
    assert_store_matches(data_dir, server)
    assert_same_gtids(data_dir, server)
    text = dump_log(log)
    assert text.count("reconnecting") >= proxy.cuts_done - 1 and "Traceback" not in text

