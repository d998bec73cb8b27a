"""``binhub apply --from kafka://… --to mysql://…`` with real servers: primary → binhub relay →
``binhub stream --to kafka://`` (Tansu) → ``binhub apply`` → a second MariaDB. The oracle is the
primary's CHECKSUM TABLE of every table; ``kill -9`` of the consumer, a message that is not a
change, a broker that cannot be reached and a downstream restarting under a live apply."""

from __future__ import annotations

import logging
import re
import signal
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer

from binhub.apply.debezium import DebeziumConverter
from binhub.sandbox import Sandbox
from binhub.sandbox.binhub_process import BinhubProcess
from binhub.sinks.mysql.connection import Downstream
from binhub.sinks.mysql.dsn import parse_mysql_target
from binhub.sinks.mysql.options import Renames
from tests.integration.applyutil import assert_same_tables, checksums, query, relay, target
from tests.integration.conftest import PrimaryDb
from tests.integration.relayutil import BINHUB
from tests.integration.tansu import TansuBroker, free_port
from tests.integration.test_apply_mysql import hot_workload
from tests.integration.test_stream import write_workload
from tests.integration.test_stream_kafka import big_workload
from tests.integration.workload import wait_until


def stream_to_kafka(data_dir: Path, broker: TansuBroker, topic: str, name: str, *extra: str) -> None:
    proc = subprocess.run([*BINHUB, "stream", "--data-dir", str(data_dir), "--to",
                           f"kafka://{broker.bootstrap}/{topic}", "--name", name, "--kafka-timeout", "10",
                           "--until-caught-up", *extra], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


def apply_args(broker: TansuBroker, topic: str, server: Sandbox, name: str, *extra: str) -> list[str]:
    return ["apply", "--from", f"kafka://{broker.bootstrap}/{topic}", "--to", target(server), "--name", name,
            "--kafka-timeout", "10", *extra]


def run_apply(broker: TansuBroker, topic: str, server: Sandbox, name: str, *extra: str,
              check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*BINHUB, *apply_args(broker, topic, server, name, "--until-caught-up", *extra)],
                          capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def _log_rows(server: Sandbox, db: str) -> int:
    """Rows of hot_workload's log table applied so far (0 before the apply created the table)."""
    exists = query(server, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND "
                           "TABLE_NAME = 'log'", (db,))[0][0]
    return int(query(server, f"SELECT COUNT(*) FROM `{db}`.log")[0][0]) if exists else 0


def checkpoint_rows(server: Sandbox, name: str) -> list[tuple[object, ...]]:
    return query(server, "SELECT slot, file, pos, offsets FROM binhub.stream_checkpoint WHERE stream = %s", (name,))


@pytest.mark.slow
def test_topics_per_table_apply_to_equal_tables_across_kill_9_of_the_consumer(
        primary_db: PrimaryDb, fresh_downstream: Sandbox, tansu_broker: TansuBroker, tmp_path: Path) -> None:
    """The issue's proof: transactions spanning tables (hot + log) arrive in two topics and are
    applied whole, in order, with kill -9 of the consumer again and again."""
    write_workload(primary_db)
    hot_workload(primary_db, 1500)
    data_dir = tmp_path / "store"
    relay(primary_db, data_dir)
    name = f"a1-{uuid.uuid4().hex[:6]}"
    topic = f"{name}.{{db}}.{{table}}"
    stream_to_kafka(data_dir, tansu_broker, topic, name, "--include", f"{primary_db.name}.*")
    theirs = checksums(primary_db.sandbox, primary_db.name)
    total = query(primary_db.sandbox, f"SELECT COUNT(*) FROM `{primary_db.name}`.log")[0][0]
    partial = 0
    for i, share in enumerate((0.1, 0.35, 0.6, 0.85)):  # kill by progress: a fast apply outruns a timed kill
        workers = "4" if i % 2 else "1"
        proc = BinhubProcess(apply_args(tansu_broker, topic, fresh_downstream, name, "--workers", workers),
                             tmp_path / f"apply{i}.log").start()
        wait_until(lambda at=total * share, p=proc: _log_rows(fresh_downstream, primary_db.name) >= at
                   or p.poll() is not None, timeout=120, interval=0.01, message="the apply made no progress")
        assert proc.poll() is None, proc.tail()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        partial += checksums(fresh_downstream, primary_db.name) not in (theirs, {})
    assert partial, "every kill -9 came before or after the whole apply: none was mid-run"
    run_apply(tansu_broker, topic, fresh_downstream, name, "--workers", "4")
    assert_same_tables(primary_db.sandbox, fresh_downstream, primary_db.name)
    rows = checkpoint_rows(fresh_downstream, name)
    assert rows and all(r[3] for r in rows), "the Kafka offsets ride in the checkpoint rows"
    # Started again, it applies nothing twice (a duplicate insert would stop it with a conflict).
    run_apply(tansu_broker, topic, fresh_downstream, name)
    assert_same_tables(primary_db.sandbox, fresh_downstream, primary_db.name)


def test_more_changes_arrive_while_apply_follows_the_topics(
        primary_db: PrimaryDb, fresh_downstream: Sandbox, tansu_broker: TansuBroker, tmp_path: Path) -> None:
    """A live apply takes what a later stream run adds, and the downstream restarting under it
    (reconnect, resume from its checkpoint)."""
    c = primary_db.conn.cursor()
    c.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40))")
    c.executemany("INSERT INTO t VALUES (%s, %s)", [(i, f"first {i}") for i in range(200)])
    data_dir = tmp_path / "store"
    relay(primary_db, data_dir)
    name = f"a2-{uuid.uuid4().hex[:6]}"
    stream_to_kafka(data_dir, tansu_broker, name, name)
    proc = BinhubProcess(apply_args(tansu_broker, name, fresh_downstream, name, "--workers", "2"),
                         tmp_path / "apply.log").start()
    try:
        theirs = checksums(primary_db.sandbox, primary_db.name)
        wait_until(lambda: checksums(fresh_downstream, primary_db.name) == theirs or proc.poll() is not None,
                   timeout=120, interval=0.3, message="apply did not catch up")
        fresh_downstream.restart(timeout=90)
        hot_workload(primary_db, 200)
        relay(primary_db, data_dir)
        stream_to_kafka(data_dir, tansu_broker, name, name)
        theirs = checksums(primary_db.sandbox, primary_db.name)
        wait_until(lambda: checksums(fresh_downstream, primary_db.name) == theirs or proc.poll() is not None,
                   timeout=120, interval=0.3, message="apply did not catch up after the downstream's restart")
        assert proc.poll() is None, proc.tail()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert code == 0, proc.tail()
    assert "reconnecting" in proc.tail(100_000), "apply saw the downstream go away"
    assert_same_tables(primary_db.sandbox, fresh_downstream, primary_db.name)


def test_a_message_that_is_no_change_stops_apply_naming_it(
        primary_db: PrimaryDb, fresh_downstream: Sandbox, tansu_broker: TansuBroker, tmp_path: Path) -> None:
    c = primary_db.conn.cursor()
    c.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    c.execute("INSERT INTO t VALUES (1), (2)")
    data_dir = tmp_path / "store"
    relay(primary_db, data_dir)
    name = f"a3-{uuid.uuid4().hex[:6]}"
    stream_to_kafka(data_dir, tansu_broker, name, name)
    producer = Producer({"bootstrap.servers": tansu_broker.bootstrap})
    producer.produce(name, b"this is not JSON", partition=0)
    producer.flush(10)
    c.execute("INSERT INTO t VALUES (3)")
    relay(primary_db, data_dir)
    stream_to_kafka(data_dir, tansu_broker, name, name)
    proc = run_apply(tansu_broker, name, fresh_downstream, name, check=False)
    assert proc.returncode != 0
    assert f"topic {name} partition 0 offset" in proc.stderr and "not binhub JSON" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    # Its transaction cannot be told (it has no position): the one before it is not applied either.
    assert query(fresh_downstream, f"SELECT id FROM `{primary_db.name}`.t ORDER BY id") == []


def test_a_broker_that_cannot_be_reached_stops_apply_with_a_clear_error(
        primary_db: PrimaryDb, fresh_downstream: Sandbox, tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    proc = subprocess.run([*BINHUB, "apply", "--from", f"kafka://{address}/t", "--to", target(fresh_downstream),
                           "--kafka-timeout", "3"], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "Kafka broker" in proc.stderr and address in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_debezium_topics_apply_to_equal_tables_but_the_excluded_one(
        primary_db: PrimaryDb, fresh_downstream: Sandbox, tansu_broker: TansuBroker, tmp_path: Path) -> None:
    hot_workload(primary_db, 100)
    c = primary_db.conn.cursor()
    c.execute("CREATE TABLE types (id BIGINT UNSIGNED PRIMARY KEY, d DECIMAL(12,3), dt DATETIME(3), "
              "dt6 DATETIME(6), ts TIMESTAMP(2) NULL, da DATE, ti TIME(1), b BIT(1), b9 BIT(9), bin VARBINARY(8), "
              "e ENUM('x','y'), s SET('a','b','c'), j JSON, y YEAR)")
    c.execute("INSERT INTO types VALUES (18446744073709551615, -12.345, '2024-05-01 10:00:00.250', "
              "'1969-12-31 23:59:59.000001', '2024-05-01 10:00:00.25', '1901-02-03', '-838:59:58.5', 1, 300, "
              "X'00ff10', 'y', 'a,c', '{\"k\": [1, 2]}', 2024)")
    c.execute("INSERT INTO types (id) VALUES (1)")
    c.execute("UPDATE types SET d = 0.5, b = 0 WHERE id = 18446744073709551615")
    data_dir = tmp_path / "store"
    relay(primary_db, data_dir)
    name = f"a5-{uuid.uuid4().hex[:6]}"
    topic = f"{name}.{{table}}"
    stream_to_kafka(data_dir, tansu_broker, topic, name, "--format", "debezium")
    run_apply(tansu_broker, topic, fresh_downstream, name, "--format", "debezium", "--workers", "2",
              "--exclude", f"{primary_db.name}.bag")
    theirs = checksums(primary_db.sandbox, primary_db.name)
    assert "bag" in theirs and "types" in theirs
    del theirs["bag"]  # excluded: its CREATE TABLE and rows too
    assert checksums(fresh_downstream, primary_db.name) == theirs


def test_a_checkpoint_table_an_older_binhub_made_gains_the_offsets_column(
        primary_db: PrimaryDb, fresh_downstream: Sandbox, tansu_broker: TansuBroker, tmp_path: Path) -> None:
    """The table without ``offsets`` (as an older binhub made it) is extended on first use, and a
    stream's row in it keeps working."""
    query(fresh_downstream, "CREATE DATABASE IF NOT EXISTS binhub")
    query(fresh_downstream, "CREATE TABLE IF NOT EXISTS binhub.stream_checkpoint (stream VARCHAR(128) NOT NULL, "
                            "slot SMALLINT UNSIGNED NOT NULL, file VARCHAR(255) NOT NULL, pos BIGINT UNSIGNED NOT NULL, "
                            "gtid_set MEDIUMTEXT NOT NULL, applied MEDIUMTEXT NOT NULL, pending_ddl VARCHAR(255) NULL, "
                            "PRIMARY KEY (stream, slot))")
    old = f"old-{uuid.uuid4().hex[:6]}"
    columns = "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'binhub' " \
              "AND TABLE_NAME = 'stream_checkpoint' AND COLUMN_NAME = 'offsets'"
    if query(fresh_downstream, columns):
        query(fresh_downstream, "ALTER TABLE binhub.stream_checkpoint DROP COLUMN offsets")
    query(fresh_downstream, "INSERT INTO binhub.stream_checkpoint (stream, slot, file, pos, gtid_set, applied) "
                            "VALUES (%s, 0, 'mysql-bin.000007', 1234, '0-1-99', '[]')", (old,))
    try:
        c = primary_db.conn.cursor()
        c.execute("CREATE TABLE t (id INT PRIMARY KEY)")
        c.execute("INSERT INTO t VALUES (1), (2)")
        data_dir = tmp_path / "store"
        relay(primary_db, data_dir)
        name = f"a6-{uuid.uuid4().hex[:6]}"
        stream_to_kafka(data_dir, tansu_broker, name, name)
        run_apply(tansu_broker, name, fresh_downstream, name)
        assert query(fresh_downstream, columns), "the column was added"
        assert_same_tables(primary_db.sandbox, fresh_downstream, primary_db.name)
        assert query(fresh_downstream, "SELECT file, pos, gtid_set, offsets FROM binhub.stream_checkpoint "
                                       "WHERE stream = %s", (old,)) == [("mysql-bin.000007", 1234, "0-1-99", None)]
    finally:
        query(fresh_downstream, "DELETE FROM binhub.stream_checkpoint WHERE stream = %s", (old,))


def test_an_apply_section_of_binhub_run(
        primary_db: PrimaryDb, fresh_downstream: Sandbox, tansu_broker: TansuBroker, tmp_path: Path) -> None:
    """``[[apply]]`` in the daemon, its rows and lag on the daemon's /metrics."""
    hot_workload(primary_db, 50)
    data_dir = tmp_path / "store"
    relay(primary_db, data_dir)
    name = f"a7-{uuid.uuid4().hex[:6]}"
    stream_to_kafka(data_dir, tansu_broker, f"{name}.{{table}}", name)
    port = free_port()
    config = tmp_path / "binhub.toml"
    config.write_text(f'[store]\ndata_dir = "{tmp_path / "daemon-store"}"\n[http]\nlisten = "127.0.0.1:{port}"\n'
                      f'[[apply]]\nname = "{name}"\nfrom = "kafka://{tansu_broker.bootstrap}/{name}.{{table}}"\n'
                      f'to = "{target(fresh_downstream)}"\nworkers = 2\n')
    proc = BinhubProcess(["run", "--config", str(config)], tmp_path / "daemon.log").start()
    try:
        theirs = checksums(primary_db.sandbox, primary_db.name)
        wait_until(lambda: checksums(fresh_downstream, primary_db.name) == theirs or proc.poll() is not None,
                   timeout=120, interval=0.3, message="the daemon's apply did not catch up")

        def metric(family: str) -> float | None:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
            m = re.search(rf'^{family}{{apply="{re.escape(name)}"}} (\S+)$', text, re.M)
            return float(m.group(1)) if m else None
        rows = query(primary_db.sandbox, f"SELECT COUNT(*) FROM `{primary_db.name}`.log")[0][0]
        assert (metric("binhub_kafka_apply_rows_total") or 0) >= rows
        wait_until(lambda: metric("binhub_kafka_apply_lag_messages") == 0, timeout=10, interval=0.3,
                   message="the lag did not fall to 0")
        assert proc.poll() is None, proc.tail()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert code == 0, proc.tail()


@pytest.mark.parametrize("transactions", ["auto", "off"])
def test_topics_a_killed_stream_wrote_twice_are_applied_once(
        primary_db: PrimaryDb, fresh_downstream: Sandbox, tansu_broker: TansuBroker, tmp_path: Path,
        transactions: str) -> None:
    """``kill -9`` of the *producing* stream: at least once (``off``), or on a broker that shows
    aborted transactions (Tansu), the topic holds what followed its checkpoint twice, a partial copy
    first. apply drops the copies: every insert once (a second one would stop it as a conflict)."""
    big_workload(primary_db, transactions=600)
    data_dir = tmp_path / "store"
    relay(primary_db, data_dir)
    name = f"a8-{uuid.uuid4().hex[:6]}"
    args = ("--name", name, "--kafka-transactions", transactions, "--kafka-timeout", "10")
    stream = [*BINHUB, "stream", "--data-dir", str(data_dir), "--to", f"kafka://{tansu_broker.bootstrap}/{name}", *args]
    for delay in (1.0, 1.6):
        proc = subprocess.Popen(stream, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    stream_to_kafka(data_dir, tansu_broker, name, name, "--kafka-transactions", transactions)
    run_apply(tansu_broker, name, fresh_downstream, name, "--workers", "3")
    assert_same_tables(primary_db.sandbox, fresh_downstream, primary_db.name)


def test_debezium_apply_restores_zero_dates_and_runs_ddl_in_the_primarys_session(
        primary_db: PrimaryDb, fresh_downstream: Sandbox, tansu_broker: TansuBroker, tmp_path: Path) -> None:
    """Debezium's encodings make a zero date null (the epoch in a NOT NULL column) and its DDL events
    carry no sql_mode: binhub's envelopes carry both in ``source.binhub``, and apply restores them.
    The oracle is the primary's CHECKSUM TABLE (it differs without either)."""
    c = primary_db.conn.cursor()
    c.execute("SET SESSION sql_mode = 'PIPES_AS_CONCAT'")  # || concatenates in this DDL's default
    c.execute("CREATE TABLE dates (id INT PRIMARY KEY, d DATE NOT NULL, dn DATE NULL, dt DATETIME(2) NOT NULL, "
              "ts TIMESTAMP(3) NULL, v VARCHAR(9) DEFAULT ('a' || 'b'))")
    c.execute("INSERT INTO dates (id, d, dn, dt, ts) VALUES (1, '0000-00-00', '0000-00-00', '0000-00-00 00:00:00', "
              "'0000-00-00 00:00:00'), (2, '2020-00-15', '2020-02-00', '2024-05-01 10:00:00.25', NULL), "
              "(3, '1970-01-01', NULL, '1970-01-01 00:00:00', '2024-05-01 10:00:00.125')")
    c.execute("UPDATE dates SET dn = '2024-01-02' WHERE id = 1")  # the before image's zero date too
    c.execute("UPDATE dates SET d = '0000-00-00', dn = NULL WHERE id = 3")
    c.execute("DELETE FROM dates WHERE id = 2")
    assert query(primary_db.sandbox, f"SELECT v FROM {primary_db.table('dates')} WHERE id = 1") == [("ab",)]
    data_dir = tmp_path / "store"
    relay(primary_db, data_dir)
    name = f"z-{uuid.uuid4().hex[:6]}"
    topic = f"{name}.{{table}}"
    stream_to_kafka(data_dir, tansu_broker, topic, name, "--format", "debezium")
    run_apply(tansu_broker, topic, fresh_downstream, name, "--format", "debezium")
    assert checksums(fresh_downstream, primary_db.name) == checksums(primary_db.sandbox, primary_db.name)
    rows = query(fresh_downstream, f"SELECT id, CAST(d AS CHAR), CAST(dn AS CHAR), v FROM "
                                   f"{primary_db.table('dates')} ORDER BY id")
    assert rows == [(1, "0000-00-00", "2024-01-02", "ab"), (3, "0000-00-00", None, "ab")]


def test_a_debezium_envelope_not_written_by_binhub_keeps_its_losses_and_says_so(
        fresh_downstream: Sandbox, primary_db: PrimaryDb, caplog: pytest.LogCaptureFixture) -> None:
    """What Debezium's connector writes has no ``source.binhub``: its DDL runs in the downstream's
    defaults, and the epoch in a NOT NULL date column (what it makes of a zero date) is applied as
    the epoch with a warning naming the column and the transaction."""
    db = primary_db.name
    query(fresh_downstream, f"CREATE DATABASE IF NOT EXISTS `{db}`")
    query(fresh_downstream, f"CREATE TABLE `{db}`.z (id INT PRIMARY KEY, d DATE NOT NULL, dn DATE NULL)")
    downstream = Downstream(parse_mysql_target(target(fresh_downstream)))
    converter = DebeziumConverter(downstream, Renames())
    source = {"version": "2.7.0.Final", "connector": "mysql", "db": db, "table": "z", "gtid": "0-1-77",
              "file": "mysql-bin.000001", "pos": 4}
    with caplog.at_level(logging.WARNING, logger="binhub.apply"):
        doc = converter.document({"before": None, "after": {"id": 1, "d": 0, "dn": None}, "source": source,
                                  "op": "c"}, "t:0:1")
    assert doc["after"] == {"id": 1, "d": "1970-01-01", "dn": None}
    assert [r.getMessage() for r in caplog.records if "epoch" in r.getMessage()] == [
        f"{db}.z.d is the epoch in the Debezium change of 0-1-77: Debezium writes a zero date in a NOT NULL column "
        "as the epoch, and the envelope cannot tell which it was; applied as 1970-01-01"]
    ddl = converter.document({"source": source | {"table": None}, "databaseName": db, "ddl": "DROP TABLE z"}, "t:0:2")
    assert ddl["session"] == {"db": db}
    # binhub's own envelope: the lost dates come back from source.binhub, without a warning.
    caplog.clear()
    ours = source | {"version": "binhub-1", "binhub": {"dates": {"after": {"d": "0000-00-00", "dn": "2020-00-15"}}}}
    doc = converter.document({"before": None, "after": {"id": 2, "d": 0, "dn": None}, "source": ours, "op": "c"},
                             "t:0:3")
    assert doc["after"] == {"id": 2, "d": "0000-00-00", "dn": "2020-00-15"} and not caplog.records
    downstream.close()
