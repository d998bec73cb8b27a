"""Apply rate: ``binhub stream --to mysql://`` versus a native MariaDB replica's SQL thread.

    .venv/bin/python bench/apply_bench.py [--oltp-txns 5000] [--bulk-txns 40] [--repeat 2] [--workdir DIR]
                                          [--baseline SRC]

1. A primary (fast writes) produces two binlog ranges: ``oltp``, sysbench-like transactions of 1-5
   rows (point UPDATEs, an INSERT and a DELETE on a 10,000-row table), and ``bulk``, transactions
   of 1,000 inserted rows. Each range is relayed into a store of its own (``binhub relay``).
2. A target with production durability (``innodb_flush_log_at_trx_commit=1``, binlog on with
   ``sync_binlog=1`` and ``log_slave_updates``) applies each range from a full backlog, the tools
   interleaved in every round (load hits all of them):
   * ``replica-1``: the replica's SQL thread, single-threaded: the IO thread first downloads the
     whole range into the relay log, then the SQL thread is timed from START to the range's end;
   * ``replica-4opt``: the same with ``slave_parallel_threads=4``, ``slave_parallel_mode=optimistic``;
   * ``binhub-1``/``binhub-4``: ``binhub stream --until-caught-up --to mysql://`` with 1 or 4 workers
     (process start-up included); with ``--baseline SRC`` also ``before-1``/``before-4``, the binhub
     of another source tree (an older commit) in the same rounds.
   The target starts every run with the range's database dropped. Every run's tables are checked
   against the primary's (CHECKSUM TABLE). Both trees' bytecode is compiled first, as an install has it.
3. Prints transactions/s, rows/s, each tool's ratio to ``replica-1`` and ``replica-4opt``, and the CPU
   seconds of the target server and of the binhub process (medians: on a loaded machine CPU seconds
   say more than walls), and writes the "Apply" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    ProcCpu,
    baseline_command,
    binhub_command,
    binhub_python,
    children_cpu,
    master_status,
    replace_section,
    start_primary,
)
from binhub.sandbox import Sandbox, SandboxSpec  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
START, END = "<!-- apply-bench:start -->", "<!-- apply-bench:end -->"
DURABLE = ("--innodb-flush-log-at-trx-commit=1", "--sync-binlog=1", "--log-slave-updates=ON",
           "--innodb-buffer-pool-size=512M", "--max-allowed-packet=256M")


@dataclass
class Range:
    name: str
    db: str
    start_file: str
    end_file: str
    end_pos: int
    transactions: int
    rows: int
    store: Path


def q(sb: Sandbox, sql: str, *, fetch: bool = False) -> Any:
    conn = sb.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall() if fetch else None
    finally:
        conn.close()


def make_range(primary: Sandbox, workdir: Path, name: str, oltp_txns: int, bulk_txns: int) -> Range:
    conn = primary.connect()
    cur = conn.cursor()
    cur.execute("FLUSH BINARY LOGS")
    start_file, _ = master_status(primary)
    db = f"apply_{name}"
    cur.execute(f"CREATE DATABASE {db}")
    cur.execute(f"CREATE TABLE {db}.sbtest (id INT PRIMARY KEY, k INT NOT NULL, c CHAR(120) NOT NULL, "
                "pad CHAR(60) NOT NULL, KEY (k))")
    rows = txns = 0
    if name == "oltp":
        for chunk in range(10):
            cur.execute(f"INSERT INTO {db}.sbtest VALUES " + ",".join(
                f"({i}, {i % 997}, '{'c' * 100}{i}', 'pad{i}')" for i in range(chunk * 1000 + 1, chunk * 1000 + 1001)))
        rows, txns = 10_000, 10
        nxt = 10_001
        for t in range(oltp_txns):
            n = 1 + t % 5
            cur.execute("BEGIN")
            for j in range(n - 1 if n > 2 else n):
                cur.execute(f"UPDATE {db}.sbtest SET k = k + 1, c = CONCAT('u', %s) WHERE id = %s", (t, 1 + (t * 37 + j * 101) % 10_000))
            if n > 2:
                cur.execute(f"DELETE FROM {db}.sbtest WHERE id = %s", (nxt - 1 if t % 2 else 1 + t % 10_000,))
                cur.execute(f"INSERT INTO {db}.sbtest VALUES (%s, %s, 'ins', 'pad')", (nxt, t))
                nxt += 1
                n = n - 1 + 2
            cur.execute("COMMIT")
            rows += n
            txns += 1
    else:
        for t in range(bulk_txns):
            base = t * 1000
            cur.execute(f"INSERT INTO {db}.sbtest VALUES " + ",".join(
                f"({base + i}, {i}, '{'b' * 110}', 'pad{i}')" for i in range(1, 1001)))
            rows += 1000
            txns += 1
    end_file, end_pos = master_status(primary)  # the range's end: the replica's SQL thread stops there
    cur.execute("FLUSH BINARY LOGS")
    conn.close()
    store = workdir / f"store-{name}"
    proc = subprocess.run([*binhub_command(), "relay", "--source", primary.dsn, "--data-dir", str(store),
                           "--start-file", start_file, "--server-id", "9401", "--until-caught-up"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    return Range(name, db, start_file, end_file, end_pos, txns, rows, store)


def checksum(sb: Sandbox, db: str) -> Any:
    return q(sb, f"CHECKSUM TABLE {db}.sbtest", fetch=True)[0][1]


def reset_target(target: Sandbox, rng: Range) -> None:
    q(target, "STOP SLAVE")
    q(target, "RESET SLAVE ALL")
    q(target, f"DROP DATABASE IF EXISTS {rng.db}")
    q(target, "DROP DATABASE IF EXISTS binhub")
    q(target, "RESET MASTER")


@dataclass
class Run:
    wall: float
    server_cpu: float  # CPU seconds of the target's mariadbd meanwhile (its SQL thread, or binhub's sessions)
    client_cpu: float = 0.0  # CPU seconds of the binhub process (0 for the replica: it runs inside the server)


def run_replica(primary: Sandbox, target: Sandbox, rng: Range, threads: int) -> Run:
    reset_target(target, rng)
    q(target, f"SET GLOBAL slave_parallel_threads = {threads}")
    q(target, f"SET GLOBAL slave_parallel_mode = '{'optimistic' if threads else 'conservative'}'")
    q(target, f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={primary.port}, MASTER_USER='"
              f"{primary.repl_user}', MASTER_PASSWORD='{primary.repl_password}', MASTER_LOG_FILE='{rng.start_file}', "
              "MASTER_LOG_POS=4, MASTER_USE_GTID=no")
    q(target, "START SLAVE IO_THREAD")
    while True:  # the whole range in the relay log first: only the SQL thread is timed
        status = q(target, "SHOW SLAVE STATUS", fetch=True)
        cols = status[0]
        if (cols[5], int(cols[6])) >= (rng.end_file, rng.end_pos):  # same base name: compares by sequence
            break
        time.sleep(0.05)
    server = ProcCpu(target.pid)
    began = time.perf_counter()
    q(target, f"START SLAVE SQL_THREAD UNTIL MASTER_LOG_FILE='{rng.end_file}', MASTER_LOG_POS={rng.end_pos}")
    while True:
        conn = target.connect()
        try:
            with conn.cursor(__import__("pymysql").cursors.DictCursor) as cur:
                cur.execute("SHOW SLAVE STATUS")
                st = cur.fetchone()
        finally:
            conn.close()
        if st["Slave_SQL_Running"] == "No":
            assert not st["Last_SQL_Error"], st["Last_SQL_Error"]
            break
        time.sleep(0.01)
    wall = time.perf_counter() - began
    cpu = server.since_start()
    q(target, "STOP SLAVE")
    return Run(wall, cpu)


def run_binhub(target: Sandbox, rng: Range, workers: int, command: list[str] | None = None) -> Run:
    reset_target(target, rng)
    server, client = ProcCpu(target.pid), children_cpu()
    began = time.perf_counter()
    proc = subprocess.run([*(command or binhub_command()), "stream", "--data-dir", str(rng.store), "--to",
                           f"mysql://root@127.0.0.1:{target.port}", "--name", f"bench-{rng.name}", "--until-caught-up",
                           "--workers", str(workers)], capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - began
    assert proc.returncode == 0, proc.stderr
    return Run(wall, server.since_start(), children_cpu() - client)


TOOLS = {
    "replica-1": lambda p, t, r: run_replica(p, t, r, 0),
    "replica-4opt": lambda p, t, r: run_replica(p, t, r, 4),
    "binhub-1": lambda p, t, r: run_binhub(t, r, 1),
    "binhub-4": lambda p, t, r: run_binhub(t, r, 4),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--oltp-txns", type=int, default=5000)
    ap.add_argument("--bulk-txns", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--no-write", action="store_true", help="print, do not update bench/RESULTS.md")
    ap.add_argument("--baseline", type=Path, metavar="SRC",
                    help="also time the binhub of this source tree (an older commit): before-1, before-4")
    args = ap.parse_args()
    tools = dict(TOOLS)
    if args.baseline:
        before = baseline_command(args.baseline)
        tools["before-1"] = lambda p, t, r: run_binhub(t, r, 1, before)
        tools["before-4"] = lambda p, t, r: run_binhub(t, r, 4, before)
    # As an installed binhub has (pip compiles it): with PYTHONDONTWRITEBYTECODE set, a source tree
    # would otherwise compile every module at every start (~0.2 CPU s of an OLTP run's ~1.3).
    for tree in [HERE.parent, *([args.baseline] if args.baseline else [])]:
        subprocess.run([binhub_python(), "-m", "compileall", "-q", str(tree / "binhub")], check=True,
                       stdout=subprocess.DEVNULL)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="apply-bench-"))
    primary = start_primary(workdir, name="apply-primary")
    target = Sandbox.create(SandboxSpec(name="apply-target", base_dir=workdir, server_id=2, extra_args=list(DURABLE)))
    target.start(timeout=120, die_with_parent=True)
    lines: list[str] = []
    try:
        ranges = [make_range(primary, workdir, "oltp", args.oltp_txns, 0),
                  make_range(primary, workdir, "bulk", 0, args.bulk_txns)]
        load_before = os.getloadavg()
        began = time.strftime("%H:%M UTC", time.gmtime())
        for rng in ranges:
            want = checksum(primary, rng.db)
            runs: dict[str, list[Run]] = {t: [] for t in tools}
            for _ in range(args.repeat):
                for tool, run in tools.items():
                    runs[tool].append(run(primary, target, rng))
                    assert checksum(target, rng.db) == want, f"{tool}: the target's table differs"
            base = {b: statistics.median(r.wall for r in runs[b]) for b in ("replica-1", "replica-4opt")}
            lines += ["", f"### `{rng.name}`: {rng.transactions:,} transactions, {rng.rows:,} rows", "",
                      "| tool | wall s (median) | txn/s | rows/s | vs replica-1 | vs replica-4opt | server CPU s | "
                      "binhub CPU s | all walls |",
                      "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
            for tool in tools:
                wall = statistics.median(r.wall for r in runs[tool])
                server_cpu = statistics.median(r.server_cpu for r in runs[tool])
                client_cpu = statistics.median(r.client_cpu for r in runs[tool])
                lines.append(f"| {tool} | {wall:.2f} | {rng.transactions / wall:,.0f} | {rng.rows / wall:,.0f} | "
                             f"{base['replica-1'] / wall:.2f} | {base['replica-4opt'] / wall:.2f} | {server_cpu:.2f} | "
                             f"{client_cpu:.2f} | {', '.join(f'{r.wall:.2f}' for r in runs[tool])} |")
        load_after = os.getloadavg()
    finally:
        target.kill()
        primary.kill()
    head = ["# Apply benchmark results (`binhub stream --to mysql://` vs a replica's SQL thread)", "",
            f"Produced by `python bench/apply_bench.py --oltp-txns {args.oltp_txns} --bulk-txns {args.bulk_txns} "
            f"--repeat {args.repeat}{' --baseline SRC' if args.baseline else ''}`, from {began}; load average before {load_before[0]:.1f} / "
            f"{load_before[1]:.1f}, after {load_after[0]:.1f} / {load_after[1]:.1f} (2 cores shared).",
            "Target: MariaDB with `innodb_flush_log_at_trx_commit=1`, `sync_binlog=1`, `log_slave_updates=ON`. "
            "The replica's wall is its SQL thread only (the relay log was downloaded first); binhub's includes "
            "process start-up and reading the store. Ratios above 1.0: binhub is faster. Every run's table was "
            "checked equal to the primary's (CHECKSUM TABLE)."]
    print("\n".join(head + lines))
    if not args.no_write:
        replace_section(RESULTS, START, END, head + lines)


if __name__ == "__main__":
    main()
