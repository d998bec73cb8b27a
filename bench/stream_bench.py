"""Streaming row changes: ``binhub stream --to jsonl:`` vs ``mariadb-binlog -v`` vs PyPI ``mysql-replication``.

    .venv/bin/python bench/stream_bench.py [--oltp-txns 200000] [--small-rows 800000] [--wide-rows 300000]
                                           [--repeat 3] [--keep] [--workdir DIR] [--no-write] [--no-mysql-replication]

1. Starts a sandbox MariaDB (``binlog_row_metadata=FULL``, which mysql-replication needs for column
   names) and writes the workload of ``bench/rows_bench.py`` (>= 1 M row changes: single-row OLTP
   transactions, small rows in bulk, 26-column mixed-type wide rows).
2. Imports the binlog files into a binhub store (``binhub binlog import``), the store a relay
   would have written.
3. Checks that the three read the same number of row changes, then times, interleaved, ``--repeat``
   times: ``binhub stream --data-dir STORE --to jsonl:OUT --until-caught-up`` (decodes every row,
   writes binhub JSON lines to rotating files and commits checkpoints, fsync included);
   ``mariadb-binlog --base64-output=decode-rows -v FILES > /dev/null`` (C; decodes and prints
   every row as text); and mysql-replication's ``BinLogStreamReader`` reading the same rows from
   the primary over the replication protocol (pure Python; it only decodes the rows into Python
   dicts and counts them, writing nothing).
4. Prints rows/s, CPU, the ratios (goals: >= 0.6 of mariadb-binlog, >= 10 x mysql-replication)
   and binhub's peak RSS, and writes the "Stream benchmark" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    binhub_command,
    mariadb_binlog_binary,
    replace_section,
    rss_mib,
    start_primary,
    teardown,
)
from bench.rows_bench import count_rows, generate  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
SECTION_START = "<!-- stream-bench:start -->"
SECTION_END = "<!-- stream-bench:end -->"


def read_with_mysql_replication(port: int, first_file: str) -> int:
    """mysql-replication from the primary, from ``first_file`` to the end; returns the row count."""
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

    stream = BinLogStreamReader(
        connection_settings={"host": "127.0.0.1", "port": port, "user": "root", "passwd": ""},
        # By file and position (its MariaDB GTID mode loses the connection at the end of a non-blocking read).
        server_id=4343, blocking=False, log_file=first_file, log_pos=4, resume_stream=True,
        only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent])
    rows = 0
    try:
        for event in stream:
            rows += len(event.rows)
    finally:
        stream.close()
    return rows


def timed(cmd: list[str], *, stdout: int | None = subprocess.DEVNULL) -> tuple[float, float, float, str]:
    """(wall s, CPU s, peak RSS MiB, stdout) of one run of ``cmd`` (RSS sampled from /proc every 20 ms)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    peak = 0.0
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE)
    out: list[bytes] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read() if proc.stdout else b""), daemon=True)
    reader.start()
    while proc.poll() is None:
        peak = max(peak, rss_mib(proc.pid))
        time.sleep(0.02)
    wall = time.perf_counter() - began
    reader.join()
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"FAIL: {cmd[0]} … exited {proc.returncode}: {err[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, peak, b"".join(out).decode()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--oltp-txns", type=int, default=200_000)
    ap.add_argument("--small-rows", type=int, default=800_000)
    ap.add_argument("--wide-rows", type=int, default=300_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep the sandbox, the store and the output")
    ap.add_argument("--workdir", type=Path, help="where everything lives (default: a temp dir)")
    ap.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    ap.add_argument("--no-mysql-replication", action="store_true",
                    help="leave mysql-replication out (its runs take minutes: for iterating on binhub)")
    ap.add_argument("--read-mysql-replication", nargs=2, metavar=("PORT", "FILE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.read_mysql_replication:  # the child the bench times
        print(read_with_mysql_replication(int(args.read_mysql_replication[0]), args.read_mysql_replication[1]))
        return 0
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="binhub-stream-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    sb = start_primary(workdir, name="stream", max_binlog_size="1G", extra_args=["--binlog-row-metadata=FULL"])
    try:
        began = time.perf_counter()
        files = generate(sb, args.small_rows, args.wide_rows, args.oltp_txns)
        generated_s = time.perf_counter() - began
        size = sum(p.stat().st_size for p in files)
        store = workdir / "store"
        subprocess.run([*binhub_command(), "binlog", "import", "--data-dir", str(store), *map(str, files)],
                       check=True, capture_output=True, timeout=3600)
        out = workdir / "out"

        def binhub_stream() -> list[str]:
            shutil.rmtree(out, ignore_errors=True)
            return [*binhub_command(), "stream", "--data-dir", str(store), "--to", f"jsonl:{out}",
                    "--until-caught-up"]

        mariadb = [mariadb_binlog_binary(), "--base64-output=decode-rows", "-v", *map(str, files)]
        replication = [sys.executable, str(Path(__file__).resolve()), "--read-mysql-replication", str(sb.port),
                       files[0].name]
        theirs = count_rows(mariadb, rb"^### (INSERT INTO|UPDATE|DELETE FROM) ")
        timed(binhub_stream())
        ours = sum(sum(1 for line in p.open("rb") if line.startswith(b'{"op":"') and not
                       line.startswith(b'{"op":"ddl"')) for p in out.glob("stream-*.jsonl"))
        pyrep = theirs if args.no_mysql_replication else int(timed(replication, stdout=subprocess.PIPE)[3].strip())
        print(f"binlog: {size / 2**20:.0f} MiB in {len(files)} file(s), {theirs:,} row changes "
              f"(generated in {generated_s:.0f} s); binhub stream wrote {ours:,}, mysql-replication read "
              f"{'-' if args.no_mysql_replication else f'{pyrep:,}'}")
        if not ours == theirs == pyrep:
            print("FAIL: the tools disagree on the number of row changes", file=sys.stderr)
            return 1
        tools: tuple[str, ...] = ("binhub stream", "mariadb-binlog") if args.no_mysql_replication else \
            ("binhub stream", "mariadb-binlog", "mysql-replication")
        walls: dict[str, list[float]] = {t: [] for t in tools}
        cpus: dict[str, list[float]] = {t: [] for t in tools}
        peaks: list[float] = []
        loads = []
        for _ in range(args.repeat):
            for tool in tools:
                cmd = binhub_stream() if tool == "binhub stream" else mariadb if tool == "mariadb-binlog" \
                    else replication
                wall, cpu, peak, _ = timed(cmd, stdout=subprocess.PIPE if tool == "mysql-replication" else
                                           subprocess.DEVNULL)
                walls[tool].append(wall)
                cpus[tool].append(cpu)
                if tool == "binhub stream":
                    peaks.append(peak)
            loads.append(os.getloadavg()[0])
        output_mib = sum(p.stat().st_size for p in out.glob("stream-*.jsonl")) / 2**20
        medians = {t: statistics.median(walls[t]) for t in tools}
        cpu_medians = {t: statistics.median(cpus[t]) for t in tools}
        vs_mariadb = medians["mariadb-binlog"] / medians["binhub stream"]
        lines = [
            "# Stream benchmark results", "",
            f"Produced by `python bench/stream_bench.py --oltp-txns {args.oltp_txns} --small-rows {args.small_rows} "
            f"--wide-rows {args.wide_rows} --repeat {args.repeat}"
            f"{' --no-mysql-replication' if args.no_mysql_replication else ''}` on "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. The workload of bench/rows_bench.py "
            f"({len(files)} binlog file(s), {size / 2**20:.0f} MiB, {theirs:,} row changes: single-row OLTP "
            f"transactions, small rows in bulk, 26-column mixed-type wide rows; binlog_row_metadata=FULL), "
            f"imported into a binhub store. Row counts were checked equal for {', '.join(tools)}. Runs interleaved "
            f"({', '.join(tools)}, …); 1-minute load average after each round: "
            f"{', '.join(f'{x:.2f}' for x in loads)} (2 cores shared with other work).", "",
            "| tool | best wall s | median wall s | rows/s (median) | CPU s (median) |",
            "| ---- | ----------- | ------------- | --------------- | -------------- |",
            *[f"| {t} | {min(walls[t]):.2f} | {medians[t]:.2f} | {theirs / medians[t]:,.0f} | {cpu_medians[t]:.2f} |"
              for t in tools], "",
            f"binhub stream / mariadb-binlog (rows/s, medians): **{vs_mariadb:.2f}** (goal >= 0.6); by CPU seconds: "
            f"{cpu_medians['mariadb-binlog'] / cpu_medians['binhub stream']:.2f}. "
            + ("" if "mysql-replication" not in medians else
               f"binhub stream / mysql-replication: **{medians['mysql-replication'] / medians['binhub stream']:.1f}x** "
               f"(goal >= 10x); by CPU seconds: "
               f"{cpu_medians['mysql-replication'] / cpu_medians['binhub stream']:.1f}x (its CPU is the Python "
               f"client's only, not the server's). ")
            + f"binhub's output: {output_mib:.0f} MiB of JSON lines in rotating "
            f"files with checkpoints; its peak RSS: {max(peaks):.0f} MiB. All walls: "
            + "; ".join(f"{t} {[round(w, 2) for w in ws]}" for t, ws in walls.items()) + ".", "",
            "Commands (FILES: the workload's binlog files; STORE: a store they were imported into):", "",
            "    binhub binlog import --data-dir STORE FILES",
            "    binhub stream --data-dir STORE --to jsonl:OUT --until-caught-up",
            "    mariadb-binlog --base64-output=decode-rows -v FILES > /dev/null",
            "    python bench/stream_bench.py --read-mysql-replication PORT FIRST_FILE   # BinLogStreamReader, "
            "blocking=False, rows counted", "",
        ]
        print("\n".join(lines))
        if not args.no_write:
            replace_section(RESULTS, SECTION_START, SECTION_END, lines)
        return 0
    finally:
        teardown(sb, workdir, keep=args.keep, made_workdir=not args.workdir)


if __name__ == "__main__":
    sys.exit(main())
