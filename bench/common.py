"""Reusable pieces of the benches: a sandbox primary, a realistic binlog, timing and CPU helpers.

Every bench runs binhub and the reference tool (``mariadb-binlog``) side by side on the same data,
one after the other (never concurrently: the machines we measure on may have only 2 cores), and
checks that binhub's output is right before it reports a figure for it.

    start_primary(base_dir, ...)         a throwaway mariadbd tuned for fast bulk generation
    generate_binlog(sandbox, size)       >= size bytes of binlog: many small row transactions
                                         plus some large ones (and a few events > 16 MiB)
    binlog_files / binlog_total / count_events / compare_files
    measure(...) / Measured              wall seconds and child CPU seconds of one subprocess run
    ProcCpu                              CPU seconds of a process we did not start (the server)
    binhub_command() / mariadb_binlog_command()   (the first from binhub.sandbox.binhub_process)
    machine_facts()                      cores, CPU model, memory, kernel, versions
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import os
import platform
import resource
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from binhub.sandbox import Sandbox, SandboxSpec
from binhub.sandbox.binhub_process import binhub_command as binhub_command  # the benches import it from here

GIB = 1 << 30
MIB = 1 << 20
LARGE_EVENT_BYTES = 17 * MIB  # above 16 MiB - 1: such an event crosses several protocol packets

# Server settings that make generation fast; none of them changes what the binlog looks like.
FAST_WRITE_ARGS = (
    "--innodb-buffer-pool-size=1G",
    "--innodb-log-file-size=512M",
    "--innodb-flush-log-at-trx-commit=0",
    "--innodb-doublewrite=0",
    "--sync-binlog=0",
    "--binlog-cache-size=1M",
)

_HEADER = struct.Struct("<IBIIIH")  # timestamp, type, server_id, event_size, log_pos, flags


# ---------------------------------------------------------------------------------------- timing


def children_cpu() -> float:
    """User + system CPU seconds of every child this process has waited for so far."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


@dataclass
class Measured:
    """One run of a tool: wall and CPU seconds (CPU of the child only, not of this process)."""

    name: str
    wall: float
    cpu: float
    bytes: int
    events: int
    server_cpu: float = 0.0  # CPU seconds the server spent meanwhile (its dump thread, mostly)
    ok: bool = True
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.wall if self.wall else 0.0

    @property
    def events_per_s(self) -> float:
        return self.events / self.wall if self.wall else 0.0

    @property
    def cpu_per_gb(self) -> float:
        return self.cpu / (self.bytes / 1e9) if self.bytes else 0.0


class ProcCpu:
    """CPU seconds (user + system) a running process has used, read from /proc (Linux)."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self._start = self.read()

    def read(self) -> float:
        if self.pid is None:
            return 0.0
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14, 15 of stat)

    def since_start(self) -> float:
        return self.read() - self._start


def rss_mib(pid: int | None) -> float:
    """Resident memory of a running process in MiB (VmRSS from /proc), 0 if unknown."""
    if pid is None:
        return 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def measure(cmd: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
            done: Callable[[], bool] | None = None, poll: float = 0.005, timeout: float = 1800.0,
            stop_signal: int = signal.SIGKILL) -> tuple[float, float, int, str]:
    """Run ``cmd``; return (wall seconds, child CPU seconds, exit code, stderr tail).

    Without ``done`` the command runs to its end. With ``done`` it is polled every ``poll``
    seconds and the command is stopped with ``stop_signal`` once ``done()`` is true (for tools
    such as ``mariadb-binlog --stop-never`` that never end by themselves); the wall time is the
    moment ``done()`` first held. CPU comes from ``RUSAGE_CHILDREN`` deltas, so only the one child.
    """
    cpu_before = children_cpu()
    began = time.perf_counter()
    with subprocess.Popen(list(cmd), env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE) as proc:
        errors: list[bytes] = []
        reader = threading.Thread(target=lambda: errors.append(proc.stderr.read() if proc.stderr else b""),
                                  daemon=True)
        reader.start()
        deadline = began + timeout
        if done is None:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise
            wall = time.perf_counter() - began
        else:
            while True:
                if done():
                    wall = time.perf_counter() - began
                    break
                if proc.poll() is not None:
                    wall = time.perf_counter() - began
                    break
                if time.perf_counter() > deadline:
                    proc.kill()
                    proc.wait()
                    raise TimeoutError(f"{cmd[0]} did not finish within {timeout:g}s")
                time.sleep(poll)
            if proc.poll() is None:
                proc.send_signal(stop_signal)
            proc.wait()
        reader.join(timeout=10)
    cpu = children_cpu() - cpu_before
    stderr = b"".join(errors).decode(errors="replace")
    return wall, cpu, proc.returncode, "\n".join(stderr.strip().splitlines()[-10:])


# ---------------------------------------------------------------------------------------- primary


def start_primary(base_dir: Path, *, name: str = "primary", max_binlog_size: str = "256M",
                  extra_args: Sequence[str] = (), server_id: int = 1, timeout: float = 120.0) -> Sandbox:
    """A throwaway mariadbd under ``base_dir`` (ROW binlog, files of ``max_binlog_size``), started.

    The server dies with this process (PR_SET_PDEATHSIG), so an interrupted bench leaves none behind.
    """
    args = [*FAST_WRITE_ARGS, f"--max-binlog-size={max_binlog_size}", *extra_args]
    sb = Sandbox.create(SandboxSpec(name=name, base_dir=base_dir, server_id=server_id, extra_args=args))
    sb.start(timeout=timeout, die_with_parent=True)
    return sb


def binlog_files(sb: Sandbox) -> list[Path]:
    """The primary's binlog files, oldest first."""
    return sb.binlog_files()


def binlog_total(sb: Sandbox) -> int:
    """Bytes in all of the primary's binlog files (what a full copy must hold)."""
    return sum(p.stat().st_size for p in sb.binlog_files() if p.exists())


def master_status(sb: Sandbox) -> tuple[str, int]:
    conn = sb.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW MASTER STATUS")
            row = cur.fetchone()
    finally:
        conn.close()
    return str(row[0]), int(row[1])


def count_events(paths: Sequence[Path]) -> int:
    """Events in binlog files, by walking their 19-byte headers."""
    total = 0
    unpack = _HEADER.unpack_from
    for path in paths:
        data = path.read_bytes()
        pos, end = 4, len(data)
        while pos + 19 <= end:
            size = unpack(data, pos)[3]
            if size < 19:
                raise ValueError(f"{path.name}: bad event size {size} at offset {pos}")
            pos += size
            total += 1
    return total


def compare_files(expected: Sequence[Path], actual_dir: Path) -> list[str]:
    """Each expected file must exist under ``actual_dir`` with the very same bytes; returns what differs."""
    problems: list[str] = []
    for src in expected:
        dst = actual_dir / src.name
        if not dst.exists():
            problems.append(f"{src.name}: missing")
            continue
        if src.stat().st_size != dst.stat().st_size:
            problems.append(f"{src.name}: {dst.stat().st_size} bytes, expected {src.stat().st_size}")
            continue
        with src.open("rb") as a, dst.open("rb") as b:
            offset = 0
            while True:
                x, y = a.read(8 * MIB), b.read(8 * MIB)
                if x != y:
                    at = offset + next(i for i, (p, q) in enumerate(zip(x, y, strict=False)) if p != q)
                    problems.append(f"{src.name}: differs at offset {at}")
                    break
                if not x:
                    break
                offset += len(x)
    return problems


# ---------------------------------------------------------------------------------------- workload

BENCH_DB = "bench"

SCHEMA = (
    f"CREATE DATABASE IF NOT EXISTS {BENCH_DB}",
    # sysbench-like table for the small OLTP transactions.
    f"""CREATE TABLE IF NOT EXISTS {BENCH_DB}.sbtest (
        id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
        k INT UNSIGNED NOT NULL DEFAULT 0,
        c CHAR(120) NOT NULL DEFAULT '',
        pad CHAR(60) NOT NULL DEFAULT '',
        amount DECIMAL(12,2) NULL,
        updated DATETIME(6) NULL,
        KEY k (k)) ENGINE=InnoDB""",
    # Wide-ish rows for the large batch transactions.
    f"""CREATE TABLE IF NOT EXISTS {BENCH_DB}.batch (
        id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
        grp INT NOT NULL,
        name VARCHAR(64) NOT NULL,
        body TEXT NOT NULL,
        score DOUBLE NULL,
        created DATETIME NOT NULL) ENGINE=InnoDB""",
    f"""CREATE TABLE IF NOT EXISTS {BENCH_DB}.blobs (
        id INT NOT NULL PRIMARY KEY, data LONGBLOB NOT NULL) ENGINE=InnoDB""",
    f"DROP PROCEDURE IF EXISTS {BENCH_DB}.oltp",
    # Many small transactions, each its own GTID group (autocommit statements in a loop, plus a
    # short BEGIN..COMMIT of several statements every few rounds): a sysbench-like write mix.
    f"""CREATE PROCEDURE {BENCH_DB}.oltp(IN n INT)
    BEGIN
      DECLARE i INT DEFAULT 0;
      DECLARE last BIGINT;
      WHILE i < n DO
        INSERT INTO {BENCH_DB}.sbtest (k, c, pad, amount, updated)
          VALUES (FLOOR(RAND() * 1000000), CONCAT(MD5(RAND()), '-', MD5(RAND()), '-', MD5(RAND())),
                  MD5(RAND()), RAND() * 10000, NOW(6));
        SET last = LAST_INSERT_ID();
        IF i % 3 = 0 THEN
          UPDATE {BENCH_DB}.sbtest SET k = k + 1, updated = NOW(6) WHERE id = last;
        END IF;
        IF i % 5 = 0 THEN
          START TRANSACTION;
          UPDATE {BENCH_DB}.sbtest SET c = CONCAT(MD5(RAND()), MD5(RAND())) WHERE id = last;
          INSERT INTO {BENCH_DB}.sbtest (k, c, pad) VALUES (i, MD5(i), 'x'), (i + 1, MD5(i + 1), 'y');
          DELETE FROM {BENCH_DB}.sbtest WHERE id = last;
          COMMIT;
        END IF;
        SET i = i + 1;
      END WHILE;
    END""",
)


@dataclass
class Generated:
    """What :func:`generate_binlog` made."""

    seconds: float
    bytes: int
    files: int
    small_calls: int = 0  # CALL oltp(...) rounds
    small_transactions: int = 0
    large_transactions: int = 0
    huge_events: int = 0  # row events above 16 MiB


def _oltp_transactions(n: int) -> int:
    # Per loop round: INSERT; UPDATE on every 3rd; one BEGIN..COMMIT on every 5th.
    return n + (n + 2) // 3 + (n + 4) // 5


def generate_binlog(sb: Sandbox, size: int, *, small_share: float = 0.3, connections: int = 3,
                    oltp_round: int = 5000, batch_rows: int = 60000,
                    progress: Callable[[str], None] | None = None) -> Generated:
    """Write at least ``size`` bytes of binlog on ``sb`` (counting what is already there).

    About ``small_share`` of the bytes come from small OLTP transactions (sysbench-like; a few
    hundred bytes each, so most of the *events*) run by ``connections - 1`` connections in
    parallel; the rest from large batch transactions (multi-row ``INSERT … SELECT`` of
    ``batch_rows`` rows, range UPDATEs and DELETEs: tens of MB each) on one more connection, plus
    two single rows above 16 MiB (events that span several protocol packets).
    """
    say = progress or (lambda _msg: None)
    began = time.perf_counter()
    admin = sb.connect()
    with admin.cursor() as cur:
        for stmt in SCHEMA:
            cur.execute(stmt)
    base = binlog_total(sb)
    want = max(0, size - base)
    small_budget = int(want * small_share)

    # Calibrate: the bytes one OLTP transaction adds (nothing else runs yet).
    before = binlog_total(sb)
    with admin.cursor() as cur:
        cur.execute(f"CALL {BENCH_DB}.oltp(1000)")
    per_txn = max(1.0, (binlog_total(sb) - before) / _oltp_transactions(1000))
    small_total = max(1, int(small_budget / (per_txn * _oltp_transactions(oltp_round))))
    result = Generated(0.0, 0, 0, small_calls=1, small_transactions=_oltp_transactions(1000))
    lock = threading.Lock()
    small_left = [small_total]
    failures: list[BaseException] = []

    def small_worker() -> None:
        conn = sb.connect()
        try:
            with conn.cursor() as cur:
                while not failures:
                    with lock:
                        if small_left[0] <= 0:
                            return
                        small_left[0] -= 1
                    cur.execute(f"CALL {BENCH_DB}.oltp({oltp_round})")
                    with lock:
                        result.small_calls += 1
                        result.small_transactions += _oltp_transactions(oltp_round)
        except BaseException as exc:
            failures.append(exc)
        finally:
            conn.close()

    def large_worker() -> None:
        conn = sb.connect(database=BENCH_DB)  # the seq_N_to_M tables of the SEQUENCE engine need one
        next_id = 1
        step = 0
        try:
            with conn.cursor() as cur:
                for i in range(2):  # two events above 16 MiB, each in a transaction of its own
                    cur.execute(f"INSERT INTO {BENCH_DB}.blobs VALUES (%s, REPEAT(MD5(%s), %s))",
                                (i, i, LARGE_EVENT_BYTES // 32 + 1))
                    result.huge_events += 1
                    result.large_transactions += 1
                while not failures:
                    with lock:
                        pending_small = small_left[0] * per_txn * _oltp_transactions(oltp_round)
                    if binlog_total(sb) + pending_small >= size:
                        return
                    kind = step % 4
                    if kind in (0, 1):
                        cur.execute(
                            f"INSERT INTO {BENCH_DB}.batch (id, grp, name, body, score, created) "
                            f"SELECT seq, seq % 97, CONCAT('item-', seq), "
                            f"CONCAT_WS(' ', MD5(seq), SHA1(seq), MD5(seq + 1), SHA1(seq + 2), MD5(seq + 3)), "
                            f"seq / 7, NOW() FROM seq_{next_id}_to_{next_id + batch_rows - 1}")
                        next_id += batch_rows
                    elif kind == 2:
                        lo = max(1, next_id - 2 * batch_rows)
                        cur.execute(f"UPDATE {BENCH_DB}.batch SET score = score + 1, grp = grp + 1 "
                                    f"WHERE id BETWEEN {lo} AND {lo + batch_rows // 2 - 1}")
                    else:
                        lo = max(1, next_id - 2 * batch_rows)
                        cur.execute(f"DELETE FROM {BENCH_DB}.batch WHERE id BETWEEN {lo} AND {lo + batch_rows - 1}")
                    result.large_transactions += 1
                    step += 1
                    if step % 8 == 0:
                        say(f"generated {binlog_total(sb) / MIB:,.0f} MiB of {size / MIB:,.0f} MiB")
        except BaseException as exc:
            failures.append(exc)
        finally:
            conn.close()

    run_threads([small_worker] * max(1, connections - 1) + [large_worker], failures)
    # Top up with small transactions if the estimate fell short.
    with admin.cursor() as cur:
        while binlog_total(sb) < size:
            cur.execute(f"CALL {BENCH_DB}.oltp({oltp_round})")
            result.small_calls += 1
            result.small_transactions += _oltp_transactions(oltp_round)
    admin.close()
    return _settled(sb, result, began)


MIXED_ROWS_PER_INSERT = 50
MIXED_HUGE_ROW_BYTES = 20 * MIB
MIXED_SCHEMA = (
    f"CREATE DATABASE IF NOT EXISTS {BENCH_DB}",
    # The types whose row images the relay copies but never decodes: DECIMAL, DATETIME(6), JSON, BLOB.
    f"""CREATE TABLE IF NOT EXISTS {BENCH_DB}.mixed (
        id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
        account INT NOT NULL,
        amount DECIMAL(14,4) NOT NULL,
        created DATETIME(6) NOT NULL,
        doc JSON NOT NULL,
        payload BLOB NOT NULL) ENGINE=InnoDB""",
    f"""CREATE TABLE IF NOT EXISTS {BENCH_DB}.mixed_large (
        id INT NOT NULL PRIMARY KEY, data LONGBLOB NOT NULL) ENGINE=InnoDB""",
    f"DROP PROCEDURE IF EXISTS {BENCH_DB}.mixed_rounds",
    # Round r: one INSERT of 50 rows (ids r*50 ..); every 10th round an UPDATE of 50 older rows,
    # every 20th a DELETE of 100. Every value derives from the id: the same rounds give the same rows.
    f"""CREATE PROCEDURE {BENCH_DB}.mixed_rounds(IN first_round INT, IN rounds INT)
    BEGIN
      DECLARE r INT DEFAULT first_round;
      DECLARE base BIGINT;
      WHILE r < first_round + rounds DO
        SET base = r * {MIXED_ROWS_PER_INSERT};
        INSERT INTO {BENCH_DB}.mixed (id, account, amount, created, doc, payload)
          SELECT base + seq, (base + seq) % 1000, (base + seq) * 1.2345 / 7,
                 TIMESTAMP'2026-01-01 00:00:00' + INTERVAL (base + seq) * 1000003 MICROSECOND,
                 JSON_OBJECT('id', base + seq, 'tags', JSON_ARRAY('a', 'b', seq % 7), 'ref', MD5(base + seq)),
                 LEFT(REPEAT(SHA2(base + seq, 256), 64), 200 + (base + seq) * 37 % 2400)
          FROM seq_0_to_{MIXED_ROWS_PER_INSERT - 1};
        IF r % 10 = 9 AND r >= 20 THEN
          UPDATE {BENCH_DB}.mixed SET amount = amount + 1, created = created + INTERVAL 1 SECOND,
                 doc = JSON_SET(doc, '$.updated', r)
            WHERE id BETWEEN base - 900 AND base - 851;
        END IF;
        IF r % 20 = 19 AND r >= 40 THEN
          DELETE FROM {BENCH_DB}.mixed WHERE id BETWEEN base - 1900 AND base - 1801;
        END IF;
        SET r = r + 1;
      END WHILE;
    END""",
)


def generate_mixed_binlog(sb: Sandbox, size: int, *, chunk_rounds: int = 200,
                          progress: Callable[[str], None] | None = None) -> Generated:
    """Write at least ``size`` bytes of binlog on ``sb`` with the mixed workload, deterministically.

    One connection calls ``mixed_rounds`` (multi-row INSERTs of 50 rows with DECIMAL, DATETIME(6),
    JSON and BLOB columns, a range UPDATE every 10 rounds, a range DELETE every 20), each statement
    its own transaction of tens to hundreds of KB in row events of up to 8 KiB; halfway an ALTER
    TABLE adds a column (the table map changes mid-stream) and one 20 MiB row is inserted (an
    event that spans two protocol packets). The rows depend only on the round number.
    """
    say = progress or (lambda _msg: None)
    began = time.perf_counter()
    result = Generated(0.0, 0, 0)
    conn = sb.connect()
    try:
        with conn.cursor() as cur:
            for stmt in MIXED_SCHEMA:
                cur.execute(stmt)
            cur.execute(f"USE {BENCH_DB}")  # the seq_N_to_M tables of the SEQUENCE engine need one
            cur.execute(f"SELECT COALESCE(MAX(id), -1) FROM {BENCH_DB}.mixed")
            next_round = (int(cur.fetchone()[0]) + 1) // MIXED_ROWS_PER_INSERT
            start = binlog_total(sb)
            altered = huge = False
            while binlog_total(sb) < size:
                cur.execute(f"CALL {BENCH_DB}.mixed_rounds(%s, %s)", (next_round, chunk_rounds))
                next_round += chunk_rounds
                result.small_calls += 1
                result.large_transactions += chunk_rounds + chunk_rounds // 10 + chunk_rounds // 20
                if not altered and binlog_total(sb) - start >= (size - start) // 2:
                    cur.execute(f"ALTER TABLE {BENCH_DB}.mixed ADD COLUMN IF NOT EXISTS note VARCHAR(32) NULL")
                    altered = True
                if not huge and binlog_total(sb) - start >= (size - start) * 3 // 5:
                    cur.execute(f"REPLACE INTO {BENCH_DB}.mixed_large VALUES (1, REPEAT(SHA2('huge', 256), %s))",
                                (MIXED_HUGE_ROW_BYTES // 64,))
                    result.huge_events += 1
                    huge = True
                if result.small_calls % 10 == 0:
                    say(f"generated {binlog_total(sb) / MIB:,.0f} MiB of {size / MIB:,.0f} MiB")
    finally:
        conn.close()
    return _settled(sb, result, began)


def _settled(sb: Sandbox, result: Generated, began: float, quiet: float = 2.0) -> Generated:
    """``result`` completed once the binlog stops growing: MariaDB writes a BINLOG_CHECKPOINT event a
    moment after the last commit, and a copy started before it would come out short of the final size."""
    settled, last = time.monotonic(), binlog_total(sb)
    while time.monotonic() - settled < quiet:
        time.sleep(0.2)
        now = binlog_total(sb)
        if now != last:
            settled, last = time.monotonic(), now
    result.seconds = time.perf_counter() - began
    result.bytes = binlog_total(sb)
    result.files = len(binlog_files(sb))
    return result


# ---------------------------------------------------------------------------------------- commands


def binhub_python() -> str:
    """The interpreter that runs :func:`binhub_command`."""
    script = Path(sys.executable).with_name("binhub")
    return str(script.with_name("python")) if script.exists() else sys.executable


def baseline_command(source: Path) -> list[str]:
    """``binhub`` run from another source tree (an older commit, e.g. ``git worktree add /tmp/base
    main``, with its C speedups built or copied in) on this interpreter: the "before" of a paired
    bench, timed in the same rounds as this tree's binhub."""
    launcher = ("import sys; sys.meta_path = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]; "
                f"sys.path.insert(0, {str(source.resolve())!r}); from binhub.cli.main import main; sys.exit(main())")
    return [binhub_python(), "-c", launcher]


SPEEDUPS_PROBE = ("import binhub._speedups as s; "
                  "print('C extension' if s.NAME == 'c' else 'pure Python (no C extension)', f'(CRC32: {s.CRC32_METHOD})')")


def mariadb_binlog_binary() -> str:
    for name in ("mariadb-binlog", "mysqlbinlog"):
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit("mariadb-binlog not found: apt-get install mariadb-client")


def mariadb_binlog_command(sb: Sandbox, result_dir: Path, first_file: str, *, server_id: int) -> list[str]:
    """``mariadb-binlog`` copying the primary's binlog as raw files into ``result_dir`` (never ends)."""
    return [mariadb_binlog_binary(), "--read-from-remote-server", "--raw", "--stop-never",
            f"--stop-never-slave-server-id={server_id}", "--host=127.0.0.1", f"--port={sb.port}",
            f"--user={sb.repl_user}", f"--password={sb.repl_password}", f"--result-file={result_dir}/",
            first_file]


def redact(cmd: Sequence[str], sb: Sandbox, *, replace: dict[str, str] | None = None) -> str:
    """A command line fit for a report: no password, no paths of this machine."""
    out = [os.path.basename(cmd[0])] if cmd else []
    for arg in cmd[1:]:
        arg = arg.replace(sb.repl_password, "***")
        for old, new in (replace or {}).items():
            arg = arg.replace(old, new)
        out.append(arg)
    return " ".join(out)


# ---------------------------------------------------------------------------------------- machine


def _first_line(cmd: Sequence[str]) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(list(cmd), capture_output=True, text=True, timeout=10).stdout
        return out.strip().splitlines()[0] if out.strip() else ""
    return ""


def machine_facts(sb: Sandbox | None = None) -> dict[str, str]:
    """What a reader needs to judge the figures: cores, CPU, memory, kernel, versions, date."""
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    facts = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": str(os.cpu_count()),
        "cpu": cpu or platform.processor(),
        "memory": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "mariadb-binlog": _first_line([mariadb_binlog_binary(), "--version"]).replace(
            os.path.dirname(mariadb_binlog_binary()) + "/", ""),
        "load average (1/5/15 min) when written": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    # What the binhub that runs has (its own virtualenv: e.g. a default install without extras).
    facts["binhub speedups"] = _first_line([binhub_python(), "-c", SPEEDUPS_PROBE]) or "not importable"
    if sb is not None:
        conn = sb.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT VERSION()")
                facts["server"] = f"MariaDB {cur.fetchone()[0]}"
        finally:
            conn.close()
    return facts


def teardown(sb: Sandbox, workdir: Path, *, keep: bool, made_workdir: bool) -> None:
    """End a bench: keep its sandbox and files (``--keep``), or kill the server and remove the
    working directory the bench made itself (never one the user named)."""
    if keep:
        print(f"kept: {workdir}")
        return
    sb.kill()
    if made_workdir:
        shutil.rmtree(workdir, ignore_errors=True)


def replace_section(path: Path, start: str, end: str, lines: Sequence[str]) -> None:
    """Put ``lines`` between the ``start`` and ``end`` markers of ``path`` (appended if absent), nothing else."""
    text = path.read_text() if path.exists() else ""
    section = "\n".join([start, *lines, end])
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + ("\n\n" if text.strip() else "") + section + "\n"
    path.write_text(text)


def fsync_throughput(directory: Path, size: int = 256 * MIB) -> float:
    """MB/s of writing ``size`` bytes and fsyncing them in ``directory`` (the disk's durable speed)."""
    path = directory / "fsync-probe.bin"
    block = os.urandom(MIB)
    began = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for _ in range(size // MIB):
            os.write(fd, block)
        os.fsync(fd)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return size / 1e6 / (time.perf_counter() - began)


# ---------------------------------------------------------------------------------------- serve benches


def proc_written(pid: int) -> int:
    """Bytes a process has passed to write(2) so far (``wchar`` of /proc/PID/io), 0 once it is gone.

    Counts writes to /dev/null too, so a client writing there still shows its progress.
    """
    try:
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            if line.startswith("wchar:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def grow_binlog_bulk(sb: Sandbox, size: int, *, batch_rows: int = 100000, connections: int = 2,
                     progress: Callable[[str], None] | None = None) -> float:
    """Grow ``sb``'s binlog to at least ``size`` bytes fast: large ``INSERT … SELECT`` batches, each
    followed by a ``DELETE`` of the same rows (so the table stays small while the binlog grows).

    Uses a table of its own (``bench.bulk``), so it can follow :func:`generate_binlog`. Returns
    the seconds it took.
    """
    say = progress or (lambda _msg: None)
    began = time.perf_counter()
    admin = sb.connect()
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {BENCH_DB}")
        cur.execute(f"""CREATE TABLE IF NOT EXISTS {BENCH_DB}.bulk (
            id BIGINT UNSIGNED NOT NULL PRIMARY KEY, grp INT NOT NULL, body VARCHAR(255) NOT NULL,
            created DATETIME NOT NULL) ENGINE=InnoDB""")
        cur.execute(f"SELECT COALESCE(MAX(id), 0) FROM {BENCH_DB}.bulk")
        base = int(cur.fetchone()[0]) + 1
    admin.close()
    failures: list[BaseException] = []
    reported = [0]

    def worker(k: int) -> None:
        conn = sb.connect(database=BENCH_DB)
        lo = base + k * (1 << 40)
        try:
            with conn.cursor() as cur:
                while not failures and binlog_total(sb) < size:
                    hi = lo + batch_rows - 1
                    cur.execute(f"INSERT INTO {BENCH_DB}.bulk (id, grp, body, created) SELECT seq, seq % 97, "
                                f"CONCAT_WS(' ', MD5(seq), SHA1(seq), MD5(seq + 1), SHA1(seq + 2), MD5(seq + 3)), "
                                f"NOW() FROM seq_{lo}_to_{hi}")
                    cur.execute(f"DELETE FROM {BENCH_DB}.bulk WHERE id BETWEEN {lo} AND {hi}")
                    lo = hi + 1
                    if k == 0 and binlog_total(sb) - reported[0] >= GIB:
                        reported[0] = binlog_total(sb)
                        say(f"binlog at {reported[0] / GIB:.1f} GiB of {size / GIB:.1f} GiB")
        except BaseException as exc:
            failures.append(exc)
        finally:
            conn.close()

    run_threads([functools.partial(worker, k) for k in range(max(1, connections))], failures)
    return time.perf_counter() - began


def run_threads(targets: Sequence[Callable[[], None]], failures: list[BaseException]) -> None:
    """Run ``targets`` in threads until all end; re-raise the first exception they put in ``failures``."""
    threads = [threading.Thread(target=t, daemon=True) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest-rank; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 1))))
    return ordered[rank - 1]
