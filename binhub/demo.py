"""The README's main job, end to end: sandbox primary → workload → ``binhub relay`` → verify →
``binhub serve`` → a real replica → ``binhub stream`` → the tables rebuilt from the change stream.

Everything runs on this machine: a throwaway ``mariadbd`` that binhub starts itself, a workload
of inserts, updates, deletes, DDL and one large transaction over several binlog files, the real
``binhub relay --until-caught-up`` command, an independent check that every stored file is
byte-identical to the primary's and every CRC is valid, then ``binhub serve`` on that store and a
second ``mariadbd`` that replicates from it (CHANGE MASTER TO binhub, GTID auto-position), its
tables compared with the primary's by CHECKSUM TABLE. Last, ``binhub stream --until-caught-up``
decodes every row change of the store into binhub JSON lines (with the columns each table had when
the row was written: the workload alters a table half-way), and the tables rebuilt from those
lines alone are compared with the primary's rows.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from binhub.errors import BinhubError
from binhub.sandbox import Sandbox, SandboxSpec
from binhub.sandbox.binhub_process import BinhubProcess
from binhub.sandbox.process import free_port
from binhub.store import StoreReader
from binhub.store.catalog import summarize, verify_files

LARGE_BLOB = 17 * 1024 * 1024  # one row event over 16 MiB: exercises split packets end to end


@dataclass(frozen=True, slots=True)
class DemoResult:
    files: list[tuple[str, int, bool]]  # name, size, identical to the primary's
    first_gtid: str
    last_gtid: str
    events: int
    crc_ok: bool
    relay_seconds: float
    replica_tables: int = 0  # tables compared on the replica that replicated through binhub serve
    replica_equal: int = 0  # of those, how many have the primary's CHECKSUM TABLE
    stream_changes: int = 0  # row changes binhub stream delivered
    stream_tables: int = 0  # tables rebuilt from the stream and compared with the primary
    stream_equal: int = 0  # of those, how many hold exactly the primary's rows

    @property
    def replica_ok(self) -> bool:
        return self.replica_tables > 0 and self.replica_equal == self.replica_tables

    @property
    def stream_ok(self) -> bool:
        return self.stream_tables > 0 and self.stream_equal == self.stream_tables

    @property
    def identical(self) -> int:
        return sum(1 for _, _, same in self.files if same)

    @property
    def ok(self) -> bool:
        files_ok = self.crc_ok and bool(self.files) and self.identical == len(self.files)
        return files_ok and self.replica_ok and self.stream_ok


def write_workload(conn: Any, rotations: int = 2) -> int:
    """Inserts, updates, deletes, DDL, many tables and one >16 MiB row, over ``rotations + 1`` files."""
    cur = conn.cursor()
    cur.execute("CREATE DATABASE IF NOT EXISTS demo")
    cur.execute("USE demo")
    statements = 0
    for i in range(8):
        cur.execute(f"CREATE TABLE IF NOT EXISTS t{i} (id INT PRIMARY KEY, name VARCHAR(64), "
                    "amount DECIMAL(12,2), created DATETIME(6), doc JSON, body MEDIUMTEXT)")
        statements += 1
    for part in range(rotations + 1):
        for i in range(8):
            rows = [(part * 1000 + n, f"row {n}", n * 1.25, f'{{"n": {n}, "part": {part}}}', "x" * (n % 300))
                    for n in range(200)]
            cur.executemany(f"INSERT INTO t{i} (id, name, amount, created, doc, body) "
                            "VALUES (%s, %s, %s, NOW(6), %s, %s)", rows)
            conn.commit()
            cur.execute(f"UPDATE t{i} SET amount = amount * 2 WHERE id % 3 = 0 AND id >= {part * 1000}")
            cur.execute(f"DELETE FROM t{i} WHERE id % 7 = 0 AND id >= {part * 1000}")
            conn.commit()
            statements += 3
        if part < rotations:
            cur.execute("FLUSH BINARY LOGS")
    cur.execute("ALTER TABLE t0 ADD COLUMN note VARCHAR(32) DEFAULT 'new'")
    cur.execute("CREATE TABLE big (id INT PRIMARY KEY, payload LONGBLOB)")
    cur.execute("INSERT INTO big VALUES (1, REPEAT('b', %s))", (LARGE_BLOB,))
    conn.commit()
    statements += 3
    return statements


def stop_command(base: Path) -> str:
    """How a user stops the sandbox ``--keep`` left: it lives in the demo's folder, not the default one."""
    return f"binhub sandbox stop --name demo --base-dir {shlex.quote(str(base / 'sandboxes'))}"


def run_demo(*, keep: bool = False, say: Callable[[str], None] = print, work_dir: Path | None = None) -> DemoResult:
    base = work_dir or Path(tempfile.mkdtemp(prefix="binhub-demo-"))
    data_dir = base / "store"
    sandbox = Sandbox.create(SandboxSpec(name="demo", base_dir=base / "sandboxes",
                                         extra_args=["--max-binlog-size=64M"]))
    try:
        say(f"starting a sandbox MariaDB primary in {sandbox.datadir} …")
        sandbox.start()
        sandbox.create_replication_user()
        say(f"primary up on 127.0.0.1:{sandbox.port}; writing a workload …")
        conn = sandbox.connect()
        try:
            write_workload(conn)
        finally:
            conn.close()
        say(f"relaying with: binhub relay --source {_redact(sandbox.dsn)} --data-dir {data_dir} --until-caught-up")
        began = time.monotonic()
        cmd = [sys.executable, "-m", "binhub", "relay", "--source", sandbox.dsn, "--data-dir", str(data_dir),
               "--until-caught-up"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        took = time.monotonic() - began
        if proc.returncode != 0:
            raise BinhubError(f"binhub relay failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
        result = check_store(data_dir, sandbox.binlog_dir, took)
        report(result, data_dir, say)
        tables, equal = replicate_through_serve(sandbox, data_dir, base, say)
        result = dataclasses.replace(result, replica_tables=tables, replica_equal=equal)
        say(f"replica through binhub serve: {equal} of {tables} tables have the primary's CHECKSUM TABLE")
        changes, tables, equal = rebuild_from_stream(sandbox, data_dir, base, say)
        result = dataclasses.replace(result, stream_changes=changes, stream_tables=tables, stream_equal=equal)
        say(f"binhub stream: {changes:,} row changes; {equal} of {tables} tables rebuilt from them alone "
            "hold exactly the primary's rows")
        if keep:
            say(f"kept: store {data_dir}, sandbox {sandbox.datadir} (port {sandbox.port}); "
                f"stop it with: {stop_command(base)}")
        return result
    finally:
        if not keep:
            sandbox.destroy()
            shutil.rmtree(base, ignore_errors=True)


def replicate_through_serve(primary: Sandbox, data_dir: Path, base: Path,
                            say: Callable[[str], None]) -> tuple[int, int]:
    """Serve the store and let a real replica catch up through it; (tables compared, tables equal)."""
    port = free_port()
    password = secrets.token_hex(8)
    serve = BinhubProcess(["serve", "--data-dir", str(data_dir), "--listen", f"127.0.0.1:{port}", "--user", "repl",
                           "--password", password, "--server-id", "1001", "--log-level", "warning"],
                          base / "serve.log", port=port)
    replica = Sandbox.create(SandboxSpec(name="demo-replica", base_dir=base / "sandboxes", server_id=2))
    try:
        say(f"serving the store with: binhub serve --data-dir {data_dir} --listen 127.0.0.1:{port}; "
            "starting a replica that replicates from it …")
        serve.start()
        replica.start()
        with primary.connect() as src, replica.connect() as dst:
            src_cur, dst_cur = src.cursor(), dst.cursor()
            dst_cur.execute(f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={port}, MASTER_USER='repl', "
                            f"MASTER_PASSWORD='{password}', MASTER_USE_GTID=slave_pos")
            dst_cur.execute("START SLAVE")
            src_cur.execute("SELECT @@gtid_binlog_pos")
            want = src_cur.fetchone()[0]

            def caught_up() -> bool:
                dst_cur.execute("SELECT @@gtid_slave_pos")
                return bool(dst_cur.fetchone()[0] == want)

            _wait(caught_up, 60, f"the replica to reach {want}")
            src_cur.execute("SHOW TABLES FROM demo")
            tables = [row[0] for row in src_cur.fetchall()]
            equal = 0
            for table in tables:
                src_cur.execute(f"CHECKSUM TABLE demo.`{table}`")
                dst_cur.execute(f"CHECKSUM TABLE demo.`{table}`")
                equal += src_cur.fetchone()[1] == dst_cur.fetchone()[1]
            dst_cur.execute("STOP SLAVE")
        return len(tables), equal
    finally:
        serve.stop()
        replica.destroy()


def rebuild_from_stream(primary: Sandbox, data_dir: Path, base: Path,
                        say: Callable[[str], None]) -> tuple[int, int, int]:
    """Stream the store to jsonl, replay the lines into tables; (row changes, tables compared, tables equal).

    The primary's ``SELECT`` is the oracle: for every table of the workload, the rows keyed by ``id``
    with every column binhub JSON renders as MySQL prints it (names, text, decimals) must be equal.
    """
    out = base / "stream"
    cmd = [sys.executable, "-m", "binhub", "stream", "--data-dir", str(data_dir), "--to", f"jsonl:{out}",
           "--include", "demo.*", "--until-caught-up"]
    say(f"streaming row changes with: binhub stream --data-dir {data_dir} --to jsonl:{out} --include 'demo.*' "
        "--until-caught-up")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise BinhubError(f"binhub stream failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    tables: dict[str, dict[object, dict[str, Any]]] = {}
    changes = 0
    for path in sorted(out.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            change = json.loads(line)
            if change["op"] == "ddl":
                continue
            changes += 1
            rows = tables.setdefault(change["table"], {})
            if change["before"] is not None:
                rows.pop(change["before"]["id"], None)
            if change["after"] is not None:
                rows[change["after"]["id"]] = change["after"]
    compared = equal = 0
    with primary.connect() as conn:
        cur = conn.cursor()
        for table in sorted(t for t in tables if t.startswith("t")):  # the demo's t0..t7 (big is a 17 MiB blob)
            cur.execute(f"SELECT id, name, CAST(amount AS CHAR) FROM demo.`{table}` ORDER BY id")
            want = [(row[0], row[1], row[2]) for row in cur.fetchall()]
            got = [(r["id"], r["name"], r["amount"]) for _, r in sorted(tables[table].items())]
            compared += 1
            equal += want == got
    return changes, compared, equal


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise BinhubError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.1)


def check_store(data_dir: Path, primary_binlog_dir: Path, relay_seconds: float) -> DemoResult:
    """Compare each stored file with the primary's, byte for byte, and verify every CRC."""
    store = StoreReader.open(data_dir)
    paths = [store.file_path(n) for n in store.files]
    files = []
    for path in paths:
        theirs = primary_binlog_dir / path.name
        same = theirs.exists() and _same_bytes(path, theirs)
        files.append((path.name, path.stat().st_size, same))
    verified = verify_files(paths)
    summaries = [summarize(p) for p in paths]
    firsts = [s.first_gtid for s in summaries if s.first_gtid]
    lasts = [s.last_gtid for s in summaries if s.last_gtid]
    return DemoResult(files, firsts[0] if firsts else "", lasts[-1] if lasts else "", verified.events,
                      verified.ok, relay_seconds)


def _same_bytes(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


def report(result: DemoResult, data_dir: Path, say: Callable[[str], None]) -> None:
    say(f"stored in {data_dir}/binlog (relay took {result.relay_seconds:.1f}s):")
    for name, size, same in result.files:
        say(f"  {name:<22} {size:>12,} bytes  {'identical to the primary' if same else 'DIFFERS from the primary'}")
    say(f"GTID range: {result.first_gtid or '-'} … {result.last_gtid or '-'}; {result.events:,} events")
    crc = "every CRC valid" if result.crc_ok else "CRC ERRORS found"
    say(f"{result.identical} of {len(result.files)} files identical to the primary's, {crc}")


def _redact(dsn: str) -> str:
    head, _, tail = dsn.rpartition("@")
    scheme, _, userpass = head.partition("://")
    user = userpass.split(":", 1)[0]
    return f"{scheme}://{user}:***@{tail}"
