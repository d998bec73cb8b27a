"""The README's main job, end to end: sandbox primary → workload → ``binhub relay`` → verify.

Everything runs on this machine: a throwaway ``mariadbd`` that binhub starts itself, a workload
of inserts, updates, deletes, DDL and one large transaction over several binlog files, the real
``binhub relay --until-caught-up`` command, and an independent check that every stored file is
byte-identical to the primary's and every CRC is valid.
"""

from __future__ import annotations

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
from binhub.store import BinlogStore
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

    @property
    def identical(self) -> int:
        return sum(1 for _, _, same in self.files if same)

    @property
    def ok(self) -> bool:
        return self.crc_ok and self.identical == len(self.files) and bool(self.files)


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
        if keep:
            say(f"kept: store {data_dir}, sandbox {sandbox.datadir} (port {sandbox.port}); "
                f"stop it with: binhub sandbox stop --name demo")
        return result
    finally:
        if not keep:
            sandbox.destroy()
            shutil.rmtree(base, ignore_errors=True)


def check_store(data_dir: Path, primary_binlog_dir: Path, relay_seconds: float) -> DemoResult:
    """Compare each stored file with the primary's, byte for byte, and verify every CRC."""
    store = BinlogStore.open_readonly(data_dir)
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
