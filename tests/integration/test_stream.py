"""``binhub stream`` end to end: a real MariaDB's changes, relayed into a store, streamed as binhub
JSON lines, and replayed. The oracle is the primary's own ``SELECT``: replaying the stream must
rebuild every table exactly, DDL included (default ``binlog_row_metadata``, so the column names come
from binhub's schema history)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import decimal
import hashlib
import json
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

from binhub.sandbox.binhub_process import BinhubProcess
from binhub.store import StoreReader
from tests.integration.conftest import PrimaryDb
from tests.integration.relayutil import BINHUB, run_relay, start_relay, stop_relay
from tests.integration.workload import wait_until

SCHEMA = """CREATE TABLE orders (
  id INT PRIMARY KEY,
  name VARCHAR(40) CHARACTER SET utf8mb4,
  note VARCHAR(20) CHARACTER SET latin1,
  price DECIMAL(10,3),
  qty BIGINT UNSIGNED,
  ratio DOUBLE,
  born DATE,
  at DATETIME(6),
  data BLOB,
  kind ENUM('x','y','z'),
  flags SET('a','b','c')
)"""


def relay(primary_db: PrimaryDb, data_dir: Path) -> None:
    proc = run_relay(primary_db.dsn, data_dir, "--start-file", primary_db.start_file, "--server-id", "9301")
    assert proc.returncode == 0, proc.stderr


def stream(data_dir: Path, out: Path | str, *extra: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    target = "-" if out == "-" else f"jsonl:{out}"
    proc = subprocess.run([*BINHUB, "stream", "--data-dir", str(data_dir), "--to", target, "--until-caught-up",
                           *extra], capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def lines_of(out: Path, name: str = "stream") -> list[dict[str, Any]]:
    return [json.loads(line) for line in raw_lines(out, name)]


def raw_lines(out: Path, name: str = "stream") -> list[bytes]:
    data = b"".join(p.read_bytes() for p in sorted(out.glob(f"{name}-*.jsonl")))
    assert not data or data.endswith(b"\n"), "the output ends with a whole line"
    return data.splitlines()


def mine(changes: list[dict[str, Any]], db: str) -> list[dict[str, Any]]:
    return [c for c in changes if c["db"] == db]


def binhub_form(value: Any) -> Any:
    """A value as pymysql returns it, in binhub JSON form (the issue's value rules)."""
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, set):
        return ",".join(v for v in ("a", "b", "c") if v in value)
    return value


def select_all(primary_db: PrimaryDb, table: str) -> dict[int, dict[str, Any]]:
    with primary_db.conn.cursor() as cur:
        cur.execute(f"SELECT * FROM {primary_db.table(table)}")
        names = [d[0] for d in cur.description]
        return {row[0]: {n: binhub_form(v) for n, v in zip(names, row, strict=True)} for row in cur.fetchall()}


def write_workload(primary_db: PrimaryDb) -> None:
    """Inserts, updates and deletes over several types, with ADD/DROP COLUMN and RENAME TABLE between."""
    c = primary_db.conn.cursor()
    c.execute(SCHEMA)
    c.execute("CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(20))")
    c.execute("CREATE TABLE nokey (a INT, b VARCHAR(5))")
    for i in range(1, 41):
        c.execute("INSERT INTO orders VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                  (i, f"name {i} ✓𝄞", f"caf\xe9 {i}", decimal.Decimal(f"{i}.{i % 1000:03d}") * (-1 if i % 3 else 1),
                   2**64 - i, i / 7, dt.date(2000 + i, 1 + i % 12, 1 + i % 28),
                   dt.datetime(2020, 1, 1, 12, 0, i % 60, i * 1000), bytes(range(i % 256)) * 3,
                   "xyz"[i % 3], "a,c" if i % 2 else ""))
        c.execute("INSERT INTO audit (what) VALUES (%s)", (f"insert {i}",))
    c.execute("INSERT INTO nokey VALUES (1, 'x'), (1, 'x'), (2, NULL)")
    c.execute("BEGIN")
    c.execute("UPDATE orders SET price = price * 2, name = NULL WHERE id % 5 = 0")
    c.execute("DELETE FROM orders WHERE id % 7 = 0")
    c.execute("COMMIT")
    c.execute("ALTER TABLE orders ADD COLUMN extra INT NOT NULL DEFAULT 7 AFTER name")
    c.execute("UPDATE orders SET extra = id * 10 WHERE id % 4 = 0")
    c.execute("INSERT INTO orders (id, name, extra, kind) VALUES (100, 'after add', 1, 'y')")
    c.execute("ALTER TABLE orders DROP COLUMN kind")
    c.execute("INSERT INTO orders (id, name, extra, note) VALUES (101, 'after drop', 2, 'n')")
    c.execute("DELETE FROM nokey WHERE a = 1 LIMIT 1")
    c.execute("RENAME TABLE orders TO orders_v2")
    c.execute("UPDATE orders_v2 SET qty = 5 WHERE id < 10")
    c.execute("INSERT INTO orders_v2 (id, name, extra) VALUES (102, 'after rename', 3)")
    c.execute("DELETE FROM orders_v2 WHERE id = 1")


def replay(changes: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Apply the stream to empty tables; DDL applied by what it says (the statements the test ran)."""
    tables: dict[str, list[dict[str, Any]]] = {}
    for c in changes:
        if c["op"] == "ddl":
            sql = c["sql"]
            if sql.startswith("CREATE TABLE"):
                tables[c["table"]] = []
            elif "ADD COLUMN extra" in sql:
                tables["orders"] = [{**{k: v for k, v in r.items() if k != "extra"}, "extra": 7}
                                    for r in tables["orders"]]
            elif "DROP COLUMN kind" in sql:
                tables["orders"] = [{k: v for k, v in r.items() if k != "kind"} for r in tables["orders"]]
            elif sql.startswith("RENAME TABLE orders TO orders_v2"):
                tables["orders_v2"] = tables.pop("orders")
            continue
        rows = tables[c["table"]]
        if c["op"] in ("update", "delete"):
            rows.remove(c["before"])  # the whole before image must be a row the table has
        if c["op"] in ("insert", "update"):
            rows.append(c["after"])
    return tables


def canonical(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True) for r in rows)


def test_replaying_the_stream_rebuilds_every_table(primary_db: PrimaryDb, tmp_path: Path) -> None:
    write_workload(primary_db)
    data_dir, out = tmp_path / "store", tmp_path / "out"
    relay(primary_db, data_dir)
    stream(data_dir, out)
    changes = mine(lines_of(out), primary_db.name)
    assert not any(c.get("positional") or c.get("partial") for c in changes), "names come from the schema history"

    tables = replay(changes)
    for table in ("orders_v2", "audit", "nokey"):
        expected = list(select_all(primary_db, table).values())
        assert canonical(tables[table]) == canonical(expected), table
    assert "orders" not in tables

    # Rows carry the columns their table had when they were written.
    first = next(c for c in changes if c["op"] == "insert" and c["table"] == "orders")
    assert list(first["after"]) == ["id", "name", "note", "price", "qty", "ratio", "born", "at", "data", "kind",
                                    "flags"]
    assert first["pk"] == {"id": 1} and first["before"] is None and first["ts"].endswith("Z")
    inserted = {c["after"]["id"]: c for c in changes if c["op"] == "insert" and c["table"].startswith("orders")}
    assert "extra" in inserted[100]["after"] and "kind" in inserted[100]["after"]
    assert "extra" in inserted[101]["after"] and "kind" not in inserted[101]["after"]
    assert inserted[102]["table"] == "orders_v2"
    # A table without a primary key is keyed by the whole row.
    nokey = next(c for c in changes if c["op"] == "delete" and c["table"] == "nokey")
    assert nokey["pk"] == nokey["before"] == {"a": 1, "b": "x"}
    # DDL lines, and one GTID per transaction in commit order.
    ddl = [c for c in changes if c["op"] == "ddl"]
    assert all(d["gtid"] for d in ddl)
    assert ddl[0]["sql"].startswith("CREATE DATABASE") and ddl[0]["table"] is None
    assert all(d["table"] for d in ddl[1:])
    assert [d["sql"].split("(")[0].strip() for d in ddl][-3:] == [
        "ALTER TABLE orders ADD COLUMN extra INT NOT NULL DEFAULT 7 AFTER name",
        "ALTER TABLE orders DROP COLUMN kind", "RENAME TABLE orders TO orders_v2"]
    seqs = [int(c["gtid"].split("-")[2]) for c in changes]
    assert seqs == sorted(seqs)
    assert set(changes[0]) >= {"op", "db", "table", "pk", "before", "after", "gtid", "file", "pos", "ts"}

    # The same lines on stdout, and a second run over the finished checkpoint adds nothing.
    assert stream(data_dir, "-").stdout.encode().splitlines() == raw_lines(out)
    before = raw_lines(out)
    stream(data_dir, out)
    assert raw_lines(out) == before


def test_include_and_exclude(primary_db: PrimaryDb, tmp_path: Path) -> None:
    write_workload(primary_db)
    data_dir = tmp_path / "store"
    relay(primary_db, data_dir)
    db = primary_db.name
    stream(data_dir, tmp_path / "all")
    stream(data_dir, tmp_path / "some", "--include", f"{db}.orders*", "--include", f"{db}.nokey",
           "--exclude", f"{db}.nokey")
    every = mine(lines_of(tmp_path / "all"), db)
    some = lines_of(tmp_path / "some")
    assert some == [c for c in every if (c["table"] or "").startswith("orders")]
    assert {c["table"] for c in some} == {"orders", "orders_v2"}


def test_kill_9_and_restart_give_the_lines_of_an_uninterrupted_run(primary_db: PrimaryDb, tmp_path: Path) -> None:
    c = primary_db.conn.cursor()
    c.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(200))")
    for batch in range(300):
        c.execute("INSERT INTO t VALUES " + ",".join(f"({batch * 20 + i}, '{'v' * 150}')" for i in range(20)))
        c.execute("UPDATE t SET v = 'u' WHERE id = %s", (batch * 20,))
    data_dir = tmp_path / "store"
    relay(primary_db, data_dir)
    stream(data_dir, tmp_path / "whole", "--rotate-size", "256KiB")
    whole = raw_lines(tmp_path / "whole")
    assert len(whole) > 6000

    out = tmp_path / "killed"
    cmd = ["stream", "--data-dir", str(data_dir), "--to", f"jsonl:{out}", "--until-caught-up",
           "--rotate-size", "256KiB"]
    sizes = []
    for kill_at in (50_000, 400_000, 900_000):  # bytes of output: early, mid-file, after rotations
        proc = BinhubProcess(cmd, tmp_path / "stream.log").start()
        wait_until(lambda at=kill_at, p=proc: _output_size(out) >= at or p.poll() is not None, timeout=120,
                   interval=0.005, message="the stream wrote nothing")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        sizes.append(_output_size(out))
    stream(data_dir, out, "--rotate-size", "256KiB")
    assert raw_lines(out) == whole, f"killed at output sizes {sizes}"
    assert len(list(out.glob("stream-*.jsonl"))) > 3, "the output rotated"


def _output_size(out: Path) -> int:
    """Bytes in the output files; a restarted stream removes files begun after its checkpoint meanwhile."""
    size = 0
    for path in out.glob("stream-*.jsonl"):
        with contextlib.suppress(FileNotFoundError):
            size += path.stat().st_size
    return size


def test_a_stopped_stream_keeps_its_files_until_forgotten_then_is_behind_the_retention(
        primary_db: PrimaryDb, tmp_path: Path) -> None:
    c = primary_db.conn.cursor()
    c.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    c.execute("INSERT INTO t VALUES (1), (2)")
    data_dir, out = tmp_path / "store", tmp_path / "out"
    relay(primary_db, data_dir)
    stream(data_dir, out)
    checkpoint = json.loads((out / "stream.checkpoint.json").read_text())
    c.execute("FLUSH BINARY LOGS")
    c.execute("INSERT INTO t VALUES (3)")
    relay(primary_db, data_dir)
    newest = primary_db.position()[0]

    def purge() -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*BINHUB, "binlog", "purge", "--data-dir", str(data_dir), "--to", newest],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc

    # The stream is stopped, retention would purge the file its checkpoint is in: its lease keeps it.
    kept = purge()
    assert f"kept: {checkpoint['file']} holds the checkpoint of stream stream" in kept.stderr, kept.stderr
    assert checkpoint["file"] in StoreReader.open(data_dir).files
    stream(data_dir, out)  # a restart resumes from the checkpoint: only the row written since
    inserts = [ch["after"] for ch in mine(_committed(out, "stream"), primary_db.name) if ch["op"] == "insert"]
    assert inserts == [{"id": 1}, {"id": 2}, {"id": 3}], "resumed where it stopped: nothing lost or repeated"
    moved = json.loads((out / "stream.checkpoint.json").read_text())
    assert json.loads((data_dir / "readers" / "stream-stream.json").read_text())["file"] == moved["file"] == newest

    # Forgotten, the stream holds nothing: an older checkpoint is then behind the retention.
    (out / "stream.checkpoint.json").write_text(json.dumps(checkpoint | {"format": 1}))
    forget = subprocess.run([*BINHUB, "stream", "--data-dir", str(data_dir), "--forget", "stream"],
                            capture_output=True, text=True, timeout=60)
    assert forget.returncode == 0 and "removed" in forget.stdout, forget.stderr
    assert "kept" not in purge().stderr

    resumed = stream(data_dir, out, check=False)
    assert resumed.returncode != 0
    assert f"checkpoint {checkpoint['file']}:{checkpoint['pos']} is older than the store's retention" in resumed.stderr
    assert f"the oldest stored file is {newest}" in resumed.stderr
    fresh = stream(data_dir, tmp_path / "fresh", "--start-file", checkpoint["file"], check=False)
    assert fresh.returncode != 0 and "older than the store's retention" in fresh.stderr, fresh.stderr


def test_follows_the_relay_live_and_stops_on_sigterm(primary_db: PrimaryDb, tmp_path: Path) -> None:
    c = primary_db.conn.cursor()
    c.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
    data_dir, out = tmp_path / "store", tmp_path / "out"
    relay_proc = start_relay(primary_db.dsn, data_dir, "--start-file", primary_db.start_file, "--server-id", "9302")
    stream_proc = None
    try:
        wait_until(lambda: (data_dir / "durable").exists(), timeout=60, message="the relay stored nothing")
        stream_proc = BinhubProcess(["stream", "--data-dir", str(data_dir), "--to", f"jsonl:{out}"],
                                    tmp_path / "stream.log").start()
        for i in range(5):
            c.execute("INSERT INTO t VALUES (%s, %s)", (i, i))
            # Each row reaches the output while the stream runs: the relay's publish wakes it.
            wait_until(lambda n=i: any(ch["op"] == "insert" and ch["after"] == {"id": n, "v": n}
                                       for ch in _committed(out, "stream")), timeout=30,
                       message=f"row {i} did not reach the stream's output")
        # A DDL that arrives while the stream runs: the history learns it before the next row.
        c.execute("ALTER TABLE t ADD COLUMN w VARCHAR(5) FIRST")
        c.execute("INSERT INTO t VALUES ('new', 5, 5)")
        wait_until(lambda: any(ch["op"] == "insert" and ch["after"] == {"w": "new", "id": 5, "v": 5}
                               for ch in _committed(out, "stream")), timeout=30,
                   message="the row after the DDL did not reach the output with its new column")
        assert stream_proc.stop() == 0, stream_proc.tail()
        stream_proc = None
        checkpoint = json.loads((out / "stream.checkpoint.json").read_text())
        assert checkpoint["gtid_set"] == primary_db.position()[2], "the GTID set executed through the last line"
    finally:
        if stream_proc is not None:
            stream_proc.kill()
        stop_relay(relay_proc)


def test_start_gtid_and_from_now(primary_db: PrimaryDb, tmp_path: Path) -> None:
    c = primary_db.conn.cursor()
    c.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    for i in range(10):
        c.execute("INSERT INTO t VALUES (%s)", (i,))
    middle_file, middle_pos, middle = primary_db.position()
    for i in range(10, 20):
        c.execute("INSERT INTO t VALUES (%s)", (i,))
    data_dir = tmp_path / "store"
    relay(primary_db, data_dir)
    everything = mine(lines_of(_stream_to(data_dir, tmp_path / "all")), primary_db.name)
    after = lines_of(_stream_to(data_dir, tmp_path / "after", "--start-gtid", middle))
    assert [ch["after"]["id"] for ch in after] == list(range(10, 20))
    assert after == everything[-10:]
    by_file = lines_of(_stream_to(data_dir, tmp_path / "by-file", "--start-file", middle_file,
                                  "--start-pos", str(middle_pos)))
    assert by_file == after
    assert lines_of(_stream_to(data_dir, tmp_path / "now", "--from-now")) == []
    # A start the store cannot serve is told in the stream user's terms, not the primary's words to a replica.
    domain, server, _ = middle.split("-")
    ahead = stream(data_dir, tmp_path / "ahead", "--start-gtid", f"{domain}-{server}-999999", check=False)
    assert ahead.returncode != 0 and f"GTID {domain}-{server}-999999 is not in binhub's store" in ahead.stderr
    inside = stream(data_dir, tmp_path / "inside", "--start-file", middle_file, "--start-pos", "5", check=False)
    assert inside.returncode != 0 and f"position 5 in {middle_file} is not the start of an event" in inside.stderr
    for proc in (ahead, inside):
        assert "slave" not in proc.stderr and "Client requested" not in proc.stderr, proc.stderr


def _stream_to(data_dir: Path, out: Path, *extra: str) -> Path:
    stream(data_dir, out, *extra)
    return out


def test_a_table_map_the_history_disagrees_with_stops_the_stream(primary_db: PrimaryDb, tmp_path: Path) -> None:
    c = primary_db.conn.cursor()
    c.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
    c.execute("INSERT INTO t VALUES (1, 1)")
    c.execute("SET sql_log_bin = 0")  # a DDL the binlog never sees: the history cannot know it
    c.execute("ALTER TABLE t ADD COLUMN w VARCHAR(10)")
    c.execute("SET sql_log_bin = 1")
    c.execute("INSERT INTO t VALUES (2, 2, 'x')")
    data_dir, out = tmp_path / "store", tmp_path / "out"
    relay(primary_db, data_dir)
    proc = stream(data_dir, out, check=False)
    assert proc.returncode != 0
    assert f"the TABLE_MAP of {primary_db.name}.t has 3 columns" in proc.stderr, proc.stderr
    assert "the schema history has 2 columns (id, v)" in proc.stderr, proc.stderr
    assert re.search(r"mysql-bin\.\d+ at offset \d+: ", proc.stderr), "the TABLE_MAP's place is named"
    # Nothing of the transaction it could not decode was committed; the one before it was.
    assert [ch["after"] for ch in _committed(out, "stream") if ch["op"] == "insert"] == [{"id": 1, "v": 1}]


def test_the_stream_as_a_daemon_service_counts_what_it_delivers(primary_db: PrimaryDb, tmp_path: Path) -> None:
    from binhub.ops.schema_sync import current_history
    from binhub.sinks import JsonlSink
    from binhub.store import StoreReader
    from binhub.stream import Stream, StreamConfig

    write_workload(primary_db)
    data_dir = tmp_path / "store"
    relay(primary_db, data_dir)
    reader = StoreReader.open(data_dir)
    service = Stream(StreamConfig(name="svc", until_caught_up=True), reader, JsonlSink(tmp_path / "out", "svc"),
                     lambda: current_history(reader))

    async def go() -> None:
        await service.start()
        await service.wait()
        await service.stop()  # safe after it ended by itself

    asyncio.run(go())
    delivered = raw_lines(tmp_path / "out", "svc")
    assert service.metrics.lines._value.get() == len(delivered) == service.status()["lines"]
    assert service.metrics.transactions._value.get() == service.transactions > 0
    checkpoint = json.loads((tmp_path / "out" / "svc.checkpoint.json").read_text())
    assert service.status()["position"] == f"{checkpoint['file']}:{checkpoint['pos']}"


def test_history_of_one_row(primary_db: PrimaryDb, tmp_path: Path) -> None:
    write_workload(primary_db)
    data_dir = tmp_path / "store"
    relay(primary_db, data_dir)
    db = primary_db.name
    everything = mine(lines_of(_stream_to(data_dir, tmp_path / "all")), db)

    def history(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*BINHUB, "history", *args, "--data-dir", str(data_dir)], capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc

    as_json = [json.loads(line) for line in history(f"{db}.orders", "--pk", "5", "--format", "json").stdout.splitlines()]
    # Followed through RENAME TABLE orders TO orders_v2: the changes under both names.
    assert as_json == [c for c in everything if c["table"] in ("orders", "orders_v2") and c["op"] != "ddl"
                       and 5 in ((c["before"] or {}).get("id"), (c["after"] or {}).get("id"))]
    assert [(c["op"], c["table"]) for c in as_json] == [("insert", "orders"), ("update", "orders"),
                                                        ("update", "orders_v2")]
    assert as_json[1]["before"] == as_json[0]["after"] and as_json[1]["after"]["name"] is None
    assert as_json[2]["after"]["qty"] == 5

    text = history(f"{db}.orders_v2", "--pk", "id=1").stdout.splitlines()  # the new name finds the old too
    assert [(line.split()[3], line.split()[4]) for line in text] == [
        ("insert", f"{db}.orders"), ("update", f"{db}.orders_v2"), ("delete", f"{db}.orders_v2")]
    assert "no change to" in history(f"{db}.orders", "--pk", "999").stderr


def test_history_follows_renames_and_composite_keys(primary_db: PrimaryDb, tmp_path: Path) -> None:
    c = primary_db.conn.cursor()
    db = primary_db.name
    c.execute("CREATE TABLE pairs (a INT, b VARCHAR(5), v INT, PRIMARY KEY (a, b))")
    c.execute("INSERT INTO pairs VALUES (1, 'x', 1), (1, 'y', 2), (2, 'x', 3)")
    c.execute("UPDATE pairs SET v = 10 WHERE a = 1 AND b = 'x'")
    c.execute(f"CREATE DATABASE {db}_other")
    c.execute(f"RENAME TABLE pairs TO {db}_other.moved")  # to another database
    c.execute(f"ALTER TABLE {db}_other.moved RENAME TO {db}.pairs3")
    c.execute("UPDATE pairs3 SET v = 11 WHERE a = 1")
    c.execute("CREATE TABLE pairs (a INT, b VARCHAR(5), v INT, PRIMARY KEY (a, b))")  # another table, same name
    c.execute("INSERT INTO pairs VALUES (1, 'x', 99)")
    c.execute("DELETE FROM pairs3 WHERE b = 'x'")
    c.execute(f"DROP DATABASE {db}_other")
    data_dir = tmp_path / "store"
    relay(primary_db, data_dir)

    def history(table: str, pk: str) -> list[tuple[str, str, Any]]:
        proc = subprocess.run([*BINHUB, "history", f"{db}.{table}", "--pk", pk, "--data-dir", str(data_dir),
                               "--format", "json"], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return [(ch["op"], f"{ch['db']}.{ch['table']}", (ch["after"] or ch["before"])["v"])
                for ch in map(json.loads, proc.stdout.splitlines())]

    old_table = [("insert", f"{db}.pairs", 1), ("update", f"{db}.pairs", 10), ("update", f"{db}.pairs3", 11),
                 ("delete", f"{db}.pairs3", 11)]
    assert history("pairs3", "1,x") == old_table
    assert history("pairs3", "b=x,a=1") == old_table
    # "pairs" names two tables over time: both are shown, each change under the name it was made.
    assert history("pairs", "a=1,b=x") == old_table[:3] + [("insert", f"{db}.pairs", 99)] + old_table[3:]
    assert history("pairs3", "2,x") == [("insert", f"{db}.pairs", 3), ("delete", f"{db}.pairs3", 3)]
    bad = subprocess.run([*BINHUB, "history", f"{db}.pairs3", "--pk", "1", "--data-dir", str(data_dir)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "give --pk as a=V,b=V or V,V in key order" in bad.stderr, bad.stderr


def test_binhub_run_with_a_relay_and_two_streams(primary_db: PrimaryDb, tmp_path: Path) -> None:
    c = primary_db.conn.cursor()
    c.execute("CREATE TABLE a (id INT PRIMARY KEY)")
    c.execute("CREATE TABLE b (id INT PRIMARY KEY)")
    db = primary_db.name
    config = tmp_path / "binhub.toml"
    config.write_text(f"""
[store]
data_dir = "{tmp_path / 'store'}"

[relay]
source = "{primary_db.dsn}"
server_id = 9303
start_file = "{primary_db.start_file}"

[http]
enabled = false

[[stream]]
name = "only-a"
to = "jsonl:out"
include = ["{db}.a"]

[[stream]]
name = "everything"
to = "jsonl:out"
""")
    daemon = BinhubProcess(["run", "--config", str(config)], tmp_path / "daemon.log").start()
    try:
        for i in range(3):
            c.execute("INSERT INTO a VALUES (%s)", (i,))
            c.execute("INSERT INTO b VALUES (%s)", (i,))
        out = tmp_path / "out"
        wait_until(lambda: len([ch for ch in _committed(out, "everything") if ch["db"] == db and ch["op"] != "ddl"])
                   == 6, timeout=60, message="the daemon's stream did not deliver the rows")
        wait_until(lambda: len(_committed(out, "only-a")) == 3 + 1, timeout=60,  # + CREATE TABLE a
                   message="the filtered stream did not deliver its rows")
        assert daemon.stop() == 0, daemon.tail()
    finally:
        daemon.kill()
    assert [ch["after"] for ch in _committed(out, "only-a") if ch["op"] == "insert"] == [{"id": i} for i in range(3)]


def _committed(out: Path, name: str) -> list[dict[str, Any]]:
    """The lines a checkpoint covers (what a consumer of the files may rely on)."""
    try:
        checkpoint = json.loads((out / f"{name}.checkpoint.json").read_text())
    except FileNotFoundError:
        return []
    data = b"".join(p.read_bytes() for p in sorted(out.glob(f"{name}-*.jsonl")) if p.name < checkpoint["out_file"])
    data += (out / checkpoint["out_file"]).read_bytes()[:checkpoint["out_offset"]]
    return [json.loads(line) for line in data.splitlines()]


def test_excluded_and_masked_columns(primary_db: PrimaryDb, tmp_path: Path) -> None:
    c = primary_db.conn.cursor()
    c.execute("CREATE TABLE users (email VARCHAR(40) CHARACTER SET utf8mb4 PRIMARY KEY, name VARCHAR(20), "
              "ssn CHAR(11), notes TEXT, age INT)")
    c.execute("CREATE TABLE orders (id INT PRIMARY KEY, email VARCHAR(40), notes TEXT)")
    c.execute("INSERT INTO users VALUES ('ä@x.org', 'Ann', '123-45-6789', 'vip', 40), ('b@x.org', 'Bo', NULL, "
              "NULL, 30)")
    c.execute("UPDATE users SET age = age + 1, ssn = '000-00-0000'")
    c.execute("DELETE FROM users WHERE email = 'b@x.org'")
    c.execute("INSERT INTO orders VALUES (1, 'ä@x.org', 'n')")
    data_dir = tmp_path / "store"
    relay(primary_db, data_dir)
    db = primary_db.name
    plain = mine(lines_of(_stream_to(data_dir, tmp_path / "plain")), db)
    masked = mine(lines_of(_stream_to(data_dir, tmp_path / "masked", "--exclude-column", f"{db}.users.notes",
                                      "--mask-column", f"{db}.users.email", "--mask-column", f"{db}.u*.ssn=redact",
                                      "--mask-column", f"{db}.users.name=null")), db)

    def sha(value: Any) -> str:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

    def expect(row: dict[str, Any] | None) -> dict[str, Any] | None:
        if row is None:
            return None
        out = {k: v for k, v in row.items() if k != "notes"}
        for k, mask in (("email", sha), ("ssn", lambda _: "[redacted]"), ("name", lambda _: None)):
            if k in out and out[k] is not None:
                out[k] = mask(out[k])
        return out

    assert len(masked) == len(plain) and [ch["op"] for ch in plain].count("update") == 2
    for p, m in zip(plain, masked, strict=True):
        if p["op"] == "ddl" or p["table"] == "orders":
            assert m == p, "a table without rules comes out as it was"
            continue
        assert m == p | {"before": expect(p["before"]), "after": expect(p["after"]), "pk": expect(p["pk"])}
        assert m["pk"] == {"email": sha(next(r for r in (p["before"], p["after"]) if r)["email"])}
    bad = stream(data_dir, tmp_path / "bad", "--mask-column", f"{db}.users", check=False)
    assert bad.returncode != 0 and "is not DB.TABLE.COLUMN" in bad.stderr


def test_a_table_older_than_the_store_is_seeded_from_the_upstream(primary_db: PrimaryDb, tmp_path: Path) -> None:
    c = primary_db.conn.cursor()
    db = primary_db.name
    c.execute("CREATE TABLE old (id INT PRIMARY KEY, v VARCHAR(10))")
    c.execute("CREATE TABLE altered (id INT PRIMARY KEY, v INT)")
    c.execute("FLUSH BINARY LOGS")  # the store begins after both CREATEs
    start = primary_db.position()[0]
    c.execute("INSERT INTO old VALUES (1, 'a'), (2, 'b')")
    c.execute("INSERT INTO altered VALUES (1, 10)")
    data_dir = tmp_path / "store"
    proc = run_relay(primary_db.dsn, data_dir, "--start-file", start, "--server-id", "9304")
    assert proc.returncode == 0, proc.stderr
    # A DDL the store does not hold yet: information_schema now describes a table its rows predate.
    c.execute("ALTER TABLE altered ADD COLUMN w INT")

    unseeded = mine(lines_of(_stream_to(data_dir, tmp_path / "plain")), db)
    assert [(ch["table"], ch["after"]["@1"], ch.get("positional")) for ch in unseeded] == [
        ("old", 1, True), ("old", 2, True), ("altered", 1, True)]  # without a seed: positional, as before

    seeded_run = stream(data_dir, tmp_path / "seeded", "--seed-from", primary_db.sandbox.root_dsn)
    seeded = mine(lines_of(tmp_path / "seeded"), db)
    assert [(ch["table"], ch["after"], ch["pk"], ch.get("positional")) for ch in seeded] == [
        ("old", {"id": 1, "v": "a"}, {"id": 1}, None), ("old", {"id": 2, "v": "b"}, {"id": 2}, None),
        ("altered", {"@1": 1, "@2": 10}, None, True)]
    log = seeded_run.stderr
    assert f"{db}.old at {start}:" in log and "seeded it from the upstream's information_schema" in log, log
    assert f"the columns of {db}.altered were seeded from information_schema" in log, log
    assert "a DDL between changed the table" in log and "column count differs" in log, log
    assert f"{db}.old were seeded" not in log, "a seeded table whose TABLE_MAP has its shape is not an error"
    # Recorded in the store's history: a second stream needs no upstream, and still checks the shapes.
    again_run = stream(data_dir, tmp_path / "again")
    assert mine(lines_of(tmp_path / "again"), db) == seeded
    assert f"the columns of {db}.altered were seeded" in again_run.stderr

    down = stream(data_dir, tmp_path / "down", "--seed-from", "mysql://root@127.0.0.1:1", check=False)
    assert down.returncode == 0, down.stderr  # nothing unknown left: the seed is not even tried
