"""The MySQL sink under faults, with real servers: ``kill -9`` of the stream again and again while
the primary's workload runs (inside large transactions and DDL too), and the downstream restarted
under a live stream. The oracle is the primary's CHECKSUM TABLE of every table."""

from __future__ import annotations

import random
import signal
import threading
import time
from pathlib import Path

import pymysql
import pytest

from binhub.sandbox import Sandbox
from binhub.sandbox.binhub_process import BinhubProcess
from tests.integration.applyutil import apply, assert_same_tables, checksums, query, stream_args
from tests.integration.conftest import PrimaryDb
from tests.integration.relayutil import run_relay, start_relay, stop_relay
from tests.integration.test_apply_mysql import _ddl_gtids, hot_workload, more_workload
from tests.integration.test_stream import write_workload
from tests.integration.workload import wait_until


class Workload(threading.Thread):
    """The primary's workload, in the background (its own connection's errors fail the test)."""

    def __init__(self, primary_db: PrimaryDb, *, big: bool = True) -> None:
        super().__init__(daemon=True)
        self.primary_db, self.big = primary_db, big
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            write_workload(self.primary_db)
            hot_workload(self.primary_db, 300)
            if self.big:
                more_workload(self.primary_db)
        except BaseException as exc:  # noqa: BLE001 - reported by finish()
            self.error = exc

    def finish(self) -> None:
        self.join(timeout=300)
        assert not self.is_alive() and self.error is None, self.error


def _catch_up(primary_db: PrimaryDb, data_dir: Path, relay: BinhubProcess) -> None:
    assert stop_relay(relay) == 0, relay.tail()
    proc = run_relay(primary_db.dsn, data_dir, "--server-id", "9312")
    assert proc.returncode == 0, proc.stderr


def _stopped(relay: BinhubProcess) -> None:
    """A relay a failed test left running is stopped (it would outlive the test's servers)."""
    if relay.running:
        relay.stop()


@pytest.mark.slow
def test_kill_9_during_the_workload_loses_and_repeats_nothing(
        primary_db: PrimaryDb, fresh_downstream: Sandbox, tmp_path: Path) -> None:
    data_dir = tmp_path / "store"
    relay = start_relay(primary_db.dsn, data_dir, "--start-file", primary_db.start_file, "--server-id", "9312")
    try:
        workload = Workload(primary_db)
        workload.start()
        rng = random.Random(7)
        for i in range(10):
            workers = "1" if i % 2 else "4"  # a restart with other workers folds the slots
            proc = BinhubProcess(stream_args(data_dir, fresh_downstream, primary_db.name, "--workers", workers),
                                 tmp_path / f"stream{i}.log").start()
            time.sleep(rng.uniform(1.0, 3.5))
            assert proc.poll() is None, proc.tail()
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        workload.finish()
        _catch_up(primary_db, data_dir, relay)
    finally:
        _stopped(relay)
    apply(data_dir, fresh_downstream, primary_db.name, "--workers", "4")
    assert_same_tables(primary_db.sandbox, fresh_downstream, primary_db.name)


def test_the_downstream_restarting_under_a_live_stream(
        primary_db: PrimaryDb, fresh_downstream: Sandbox, tmp_path: Path) -> None:
    data_dir = tmp_path / "store"
    relay = start_relay(primary_db.dsn, data_dir, "--start-file", primary_db.start_file, "--server-id", "9313")
    stream = BinhubProcess(stream_args(data_dir, fresh_downstream, primary_db.name, "--workers", "4"),
                           tmp_path / "stream.log").start()
    workload = Workload(primary_db, big=False)
    workload.start()
    try:
        applying = f"SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{primary_db.name}'"
        wait_until(lambda: query(fresh_downstream, applying)[0][0] > 0 or stream.poll() is not None, timeout=120,
                   interval=0.2, message="the stream applied nothing")
        for pause in (0.5, 2.0):
            time.sleep(pause)
            fresh_downstream.restart(timeout=90)
            assert stream.poll() is None, stream.tail()
        workload.finish()
        _catch_up(primary_db, data_dir, relay)
        theirs = checksums(primary_db.sandbox, primary_db.name)
        wait_until(lambda: checksums(fresh_downstream, primary_db.name) == theirs or stream.poll() is not None,
                   timeout=120, interval=0.5, message="the stream did not catch up after the restarts")
        assert stream.poll() is None, stream.tail()
    finally:
        _stopped(relay)
        stream.send_signal(signal.SIGTERM)
        code = stream.wait(timeout=60)
    assert code == 0, stream.tail()
    assert "reconnecting" in stream.tail(100_000), "the stream saw the downstream go away"
    assert_same_tables(primary_db.sandbox, fresh_downstream, primary_db.name)


def _relay_and_make_table(primary_db: PrimaryDb, downstream: Sandbox, tmp_path: Path, server_id: str,
                          table_ddl: str) -> Path:
    """Relay the primary from its first file into a store, and make its database and one table
    downstream by hand (``table_ddl``: the table's name and columns); the store's directory."""
    data_dir = tmp_path / "store"
    proc = run_relay(primary_db.dsn, data_dir, "--start-file", primary_db.start_file, "--server-id", server_id)
    assert proc.returncode == 0, proc.stderr
    query(downstream, f"CREATE DATABASE `{primary_db.name}`")
    query(downstream, f"CREATE TABLE `{primary_db.name}`.{table_ddl}")
    return data_dir


@pytest.mark.parametrize("ordered", [False, True], ids=["out-of-order", "ordered"])
def test_kill_9_with_workers_committed_out_of_order_resumes_exactly(
        primary_db: PrimaryDb, fresh_downstream: Sandbox, tmp_path: Path, ordered: bool) -> None:
    """Transaction 1 is held back downstream (a lock), 2…6 commit on other workers past it, the stream
    is killed: the restart must apply 1 and skip 2…6 (per-worker slots and the low-water mark)."""
    c = primary_db.conn.cursor()
    c.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
    for i in range(1, 7):
        c.execute("INSERT INTO t VALUES (%s, %s)", (i, i * 10))
    data_dir = _relay_and_make_table(primary_db, fresh_downstream, tmp_path, "9314", "t (id INT PRIMARY KEY, v INT)")
    db = primary_db.name
    locker = fresh_downstream.connect()
    try:
        with locker.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute(f"INSERT INTO `{db}`.t VALUES (1, -1)")  # transaction 1 waits for this lock
        skips = [a for g in _ddl_gtids(primary_db) for a in ("--skip-gtid", g)]  # the tables exist already
        extra = ["--workers", "4", *(["--ordered"] if ordered else []), *skips]
        stream = BinhubProcess(stream_args(data_dir, fresh_downstream, db, *extra), tmp_path / "stream.log").start()
        count = f"SELECT COUNT(*) FROM `{db}`.t"
        if ordered:
            time.sleep(8)  # time enough for 2…6 to be applied (and held before COMMIT)
        else:  # the workers other than transaction 1's commit theirs (one may queue behind it)
            wait_until(lambda: query(fresh_downstream, count)[0][0] >= 3 or stream.poll() is not None,
                       timeout=60, message="transactions 2-6 did not commit")
            time.sleep(1)
        assert stream.poll() is None, stream.tail()
        committed = query(fresh_downstream, count)[0][0]
        assert committed == 0 if ordered else committed >= 3, "ordered: nothing commits past transaction 1"
        stream.send_signal(signal.SIGKILL)
        stream.wait(timeout=30)
    finally:
        locker.rollback()
        locker.close()
    apply(data_dir, fresh_downstream, db, *extra)
    assert_same_tables(primary_db.sandbox, fresh_downstream, db)


def test_kill_9_while_a_ddl_runs_downstream_runs_it_once(
        primary_db: PrimaryDb, fresh_downstream: Sandbox, tmp_path: Path) -> None:
    """The stream is killed while its ALTER TABLE waits downstream (a reader holds the table's
    metadata lock): the checkpoint holds the DDL as pending; the restart runs it (or finds it done)
    and goes on, nothing lost or doubled."""
    db = primary_db.name
    c = primary_db.conn.cursor()
    c.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
    created = _ddl_gtids(primary_db)  # CREATE DATABASE, CREATE TABLE: made downstream by hand
    c.execute("INSERT INTO t VALUES (1, 1), (2, 2)")
    c.execute("ALTER TABLE t ADD COLUMN w INT DEFAULT 7")
    c.execute("SELECT @@last_gtid")
    alter = c.fetchone()[0]
    c.execute("INSERT INTO t VALUES (3, 3, 3)")
    data_dir = _relay_and_make_table(primary_db, fresh_downstream, tmp_path, "9315", "t (id INT PRIMARY KEY, v INT)")
    skips = [a for g in created for a in ("--skip-gtid", g)]
    locker = fresh_downstream.connect()
    try:
        with locker.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute(f"SELECT * FROM `{db}`.t")  # holds the metadata lock the ALTER waits for
        stream = BinhubProcess(stream_args(data_dir, fresh_downstream, db, *skips), tmp_path / "stream.log").start()
        wait_until(lambda: _pending_ddl(fresh_downstream, db) == [(alter,)] or stream.poll() is not None,
                   timeout=60, interval=0.2, message="the ALTER was not recorded as pending")
        assert stream.poll() is None, stream.tail()
        stream.send_signal(signal.SIGKILL)
        stream.wait(timeout=30)
    finally:
        locker.rollback()
        locker.close()
    apply(data_dir, fresh_downstream, db, *skips)
    assert_same_tables(primary_db.sandbox, fresh_downstream, db)
    assert _pending_ddl(fresh_downstream, db) == [(None,)]


def _pending_ddl(server: Sandbox, stream: str) -> list[tuple[object, ...]]:
    """Slot 0's pending DDL ([] before the sink made its checkpoint table)."""
    try:
        return query(server, "SELECT pending_ddl FROM binhub.stream_checkpoint WHERE stream = %s AND slot = 0",
                     (stream,))
    except pymysql.err.ProgrammingError:
        return []


def test_a_downstream_unreachable_at_start_is_waited_for(
        primary_db: PrimaryDb, fresh_downstream: Sandbox, tmp_path: Path) -> None:
    c = primary_db.conn.cursor()
    c.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
    c.execute("INSERT INTO t VALUES (1, 1), (2, 2)")
    data_dir = tmp_path / "store"
    proc = run_relay(primary_db.dsn, data_dir, "--start-file", primary_db.start_file, "--server-id", "9316")
    assert proc.returncode == 0, proc.stderr
    fresh_downstream.stop(timeout=60)
    try:
        stream = BinhubProcess(stream_args(data_dir, fresh_downstream, primary_db.name, "--until-caught-up"),
                               tmp_path / "stream.log").start()
        wait_until(lambda: "unreachable" in stream.tail(100_000) or stream.poll() is not None, timeout=60,
                   message="the stream did not say the downstream is unreachable")
        assert stream.poll() is None, stream.tail()
    finally:
        fresh_downstream.start(timeout=90)
    assert stream.wait(timeout=120) == 0, stream.tail()
    assert_same_tables(primary_db.sandbox, fresh_downstream, primary_db.name)


def test_kill_9_inside_a_large_transaction_applies_it_once(
        primary_db: PrimaryDb, fresh_downstream: Sandbox, tmp_path: Path) -> None:
    """A transaction past 32 MiB of SQL is applied as it is read, on the sink's own connection: the
    stream is killed while one of its statements waits for a row lock downstream; nothing of it
    is committed, and the restart applies it whole."""
    db = primary_db.name
    c = primary_db.conn.cursor()
    c.execute("CREATE TABLE big (id INT PRIMARY KEY, b LONGBLOB)")
    created = _ddl_gtids(primary_db)
    blob = bytes(range(256)) * ((17 << 20) // 256)
    c.execute("BEGIN")
    c.execute("INSERT INTO big VALUES (1, %s)", (blob,))
    c.execute("INSERT INTO big VALUES (2, %s)", (blob[::-1],))
    c.execute("INSERT INTO big VALUES (3, 'small')")
    c.execute("COMMIT")
    data_dir = _relay_and_make_table(primary_db, fresh_downstream, tmp_path, "9317",
                                     "big (id INT PRIMARY KEY, b LONGBLOB)")
    skips = [a for g in created for a in ("--skip-gtid", g)]
    locker = fresh_downstream.connect()
    try:
        with locker.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute(f"INSERT INTO `{db}`.big VALUES (3, 'mine')")  # the transaction's last row waits
        stream = BinhubProcess(stream_args(data_dir, fresh_downstream, db, *skips, "--log-level", "info"),
                               tmp_path / "stream.log").start()
        wait_until(lambda: "applied as it is read" in stream.tail(100_000) or stream.poll() is not None,
                   timeout=120, interval=0.2, message="the large transaction was not applied as it came")
        time.sleep(2)  # its first rows are in, its last waits for the lock
        assert stream.poll() is None, stream.tail()
        stream.send_signal(signal.SIGKILL)
        stream.wait(timeout=30)
    finally:
        locker.rollback()
        locker.close()
    assert query(fresh_downstream, f"SELECT COUNT(*) FROM `{db}`.big") == [(0,)], "nothing of it committed"
    apply(data_dir, fresh_downstream, db, *skips)
    assert_same_tables(primary_db.sandbox, fresh_downstream, db)
