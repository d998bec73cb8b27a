"""Flashback: rollback SQL rows/s of ``binhub flashback --sql`` over a range of >= 1 M row changes,
beside MariaDB's own ``mariadb-binlog --flashback`` and the ``mariadb-binlog -v`` decode of the
same range as yardsticks.

    .venv/bin/python bench/flashback_bench.py [--rows 1000000] [--repeat 3] [--keep] [--workdir DIR] [--no-write]
                                              [--baseline SRC]

1. Starts a sandbox MariaDB and fills a sysbench-like table (id, k, c CHAR(120), pad CHAR(60)) and a
   mixed-type table (DECIMAL, DATETIME(6), utf8mb4 text, VARBINARY, ENUM, JSON) with ``--rows`` rows,
   outside the range.
2. The range, in binlog files of its own: an UPDATE without WHERE of 60 % of the rows (one
   transaction), then a DELETE of the other 40 % — ``--rows`` row changes in all — then relays it into
   a binhub store.
3. Times, interleaved ``--repeat`` times, writing to /dev/null:
   ``binhub flashback --data-dir STORE --start-gtid A --stop-gtid B --sql`` (default 256 MiB memory:
   the range spills to disk), ``mariadb-binlog --flashback FILES`` (rollback as BINLOG base64
   events, MariaDB's native flashback) and ``mariadb-binlog --base64-output=decode-rows -v FILES``.
   binlog2sql is not on PyPI and my2sql is a Go binary (neither installable here); their published
   figures are quoted beside ours. ``--baseline SRC`` adds the binhub of another source tree (an
   older commit) to the same rounds.
4. Writes the "Flashback" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import baseline_command, binhub_command, mariadb_binlog_binary, measure, start_primary  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
SECTION = "# Flashback benchmark results"

DDL = ["CREATE TABLE bench.sb (id INT NOT NULL PRIMARY KEY, k INT NOT NULL, c CHAR(120) NOT NULL, "
       "pad CHAR(60) NOT NULL, KEY (k)) ENGINE=InnoDB",
       "CREATE TABLE bench.mixed (id INT UNSIGNED NOT NULL PRIMARY KEY, amount DECIMAL(14,4), at DATETIME(6), "
       "name VARCHAR(60) CHARACTER SET utf8mb4, vb VARBINARY(20), e ENUM('new','paid','done'), j JSON) "
       "ENGINE=InnoDB"]
FILL = ["INSERT INTO bench.sb SELECT seq, seq % 10007, CONCAT_WS('-', MD5(seq), MD5(seq + 1), MD5(seq + 2)), "
        "SHA1(seq) FROM seq_{lo}_to_{hi}",
        "INSERT INTO bench.mixed SELECT seq, seq / 7, '2020-01-01 00:00:00.000001' + INTERVAL seq SECOND, "
        "CONCAT('name-', seq, ' ünï'), UNHEX(MD5(seq)), ELT(1 + seq % 3, 'new','paid','done'), "
        "JSON_OBJECT('id', seq) FROM seq_{lo}_to_{hi}"]


def generate(sb: object, rows: int) -> tuple[str, list[Path], str, str]:
    """(the file where the tables are created, the binlog files holding just the range, its first
    GTID, its last GTID)."""
    conn = sb.connect()  # type: ignore[attr-defined]
    half = rows // 2  # rows per table
    with conn.cursor() as cur:
        cur.execute("SET SESSION time_zone = '+00:00'")
        cur.execute("FLUSH BINARY LOGS")
        cur.execute("SHOW MASTER STATUS")
        create_file = cur.fetchone()[0]
        cur.execute("CREATE DATABASE bench")
        cur.execute("USE bench")
        for ddl in DDL:
            cur.execute(ddl)
        for lo in range(1, half + 1, 10_000):
            for fill in FILL:
                cur.execute(fill.format(lo=lo, hi=min(lo + 9_999, half)))
        cur.execute("FLUSH BINARY LOGS")
        cur.execute("SHOW MASTER STATUS")
        first_file = cur.fetchone()[0]
        cut = int(half * 0.6)
        cur.execute(f"UPDATE bench.sb SET k = k + 1, c = 'oops' WHERE id <= {cut}")
        cur.execute("SELECT @@last_gtid")
        first = cur.fetchone()[0]
        cur.execute(f"UPDATE bench.mixed SET amount = 0, name = 'oops', j = '{{}}' WHERE id <= {cut}")
        cur.execute(f"DELETE FROM bench.sb WHERE id > {cut}")
        cur.execute(f"DELETE FROM bench.mixed WHERE id > {cut}")
        cur.execute("SELECT @@last_gtid")
        last = cur.fetchone()[0]
        cur.execute("FLUSH BINARY LOGS")
    conn.close()
    files = sb.binlog_files()  # type: ignore[attr-defined]
    names = [p.name for p in files]
    return create_file, files[names.index(first_file):-1], str(first), str(last)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="row changes in the range")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    ap.add_argument("--baseline", type=Path, metavar="SRC",
                    help="also time the binhub of this source tree (an older commit) in the same rounds")
    args = ap.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="binhub-flashback-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    sb = start_primary(workdir, name="flashback", max_binlog_size="1G")
    try:
        began = time.perf_counter()
        create_file, files, first, last = generate(sb, args.rows)
        store = workdir / "store"
        # from the tables' CREATE on, so the store's schema history knows their columns
        relay = [*binhub_command(), "relay", "--source", sb.dsn, "--data-dir", str(store), "--start-file",
                 create_file, "--until-caught-up", "--server-id", "9391"]
        subprocess.run(relay, check=True, capture_output=True, timeout=3600)
        generated_s = time.perf_counter() - began
        size = sum(p.stat().st_size for p in files)
        binhub = [*binhub_command(), "flashback", "--data-dir", str(store), "--start-gtid", first,
                  "--stop-gtid", last, "--sql"]
        proc = subprocess.run(binhub, capture_output=True, timeout=3600)
        if proc.returncode != 0:
            print(f"FAIL: {proc.stderr.decode()}", file=sys.stderr)
            return 1
        undone = int(re.search(rb"-- (\d+) row changes", proc.stderr).group(1))  # type: ignore[union-attr]
        del proc
        print(f"range: {args.rows:,} row changes, {size / 2**20:.0f} MiB of binlog in {len(files)} file(s) "
              f"(made in {generated_s:.0f} s); binhub undid {undone:,}")
        if undone != args.rows // 2 * 2:
            print("FAIL: binhub's statements do not match the range's row changes", file=sys.stderr)
            return 1
        tools = {
            "binhub flashback --sql": binhub,
            "mariadb-binlog --flashback": [mariadb_binlog_binary(), "--flashback", *map(str, files)],
            "mariadb-binlog -v (decode only)": [mariadb_binlog_binary(), "--base64-output=decode-rows", "-v",
                                                *map(str, files)],
        }
        if args.baseline:
            tools["binhub flashback --sql (before)"] = [*baseline_command(args.baseline), *binhub[len(binhub_command()):]]
        walls: dict[str, list[float]] = {t: [] for t in tools}
        cpus: dict[str, list[float]] = {t: [] for t in tools}
        loads = []
        for _ in range(args.repeat):
            for tool, cmd in tools.items():
                wall, cpu, rc, err = measure(cmd, timeout=3600)
                if rc != 0:
                    print(f"FAIL: {tool} exited {rc}: {err}", file=sys.stderr)
                    return 1
                walls[tool].append(wall)
                cpus[tool].append(cpu)
            loads.append(os.getloadavg()[0])
        rows = args.rows // 2 * 2
        table = [(t, min(w), statistics.median(w), rows / statistics.median(w), statistics.median(cpus[t]))
                 for t, w in walls.items()]
        ours = table[0]
        lines = [
            SECTION, "",
            f"Produced by `python bench/flashback_bench.py --rows {args.rows} --repeat {args.repeat}"
            f"{' --baseline SRC' if args.baseline else ''}` on "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. The range: an UPDATE without WHERE of 60 % "
            f"of two tables (a sysbench-like one and a mixed-type one: DECIMAL, DATETIME(6), utf8mb4, VARBINARY, "
            f"ENUM, JSON) and a DELETE of the other 40 %: {rows:,} row changes in 4 transactions, "
            f"{size / 2**20:.0f} MiB of binlog. binhub reads it from its store (relayed from the tables' CREATE, so the fill precedes the range there), spilling to disk past "
            f"its default 256 MiB; the mariadb-binlog runs read the same binlog files. Output to /dev/null, "
            f"interleaved. 1-minute load average during the runs: {', '.join(f'{x:.2f}' for x in loads)} "
            f"(2 cores shared with other work).", "",
            "| tool | best wall s | median wall s | rows/s (median) | CPU s (median) |",
            "| ---- | ----------- | ------------- | --------------- | -------------- |",
            *[f"| {t} | {b:.2f} | {m:.2f} | {r:,.0f} | {c:.2f} |" for t, b, m, r, c in table], "",
            f"binhub writes rollback SQL (exact literals, WHERE by primary key) at {ours[3]:,.0f} rows/s, "
            f"{ours[3] / table[1][3]:.2f}× mariadb-binlog's native --flashback (which writes BINLOG base64 "
            f"events, not SQL) and {ours[3] / table[2][3]:.2f}× its -v decode. Published anchors: my2sql turned "
            f"1.1 GB of binlog into rollback SQL in 100 s (about 11 MB/s of binlog); binlog2sql took 65 min. "
            f"binhub here: {size / 2**20 / ours[2]:.1f} MiB/s of binlog. By CPU seconds, which the load "
            f"disturbs least: binhub {rows / ours[4]:,.0f} rows per CPU second ({size / 2**20 / ours[4]:.1f} MiB), "
            f"{ours[4] / table[1][4]:.1f}× the CPU of mariadb-binlog --flashback. "
            + (f"The baseline tree (before): {table[3][3]:,.0f} rows/s, {table[3][4]:.2f} CPU s; this tree "
               f"{ours[3] / table[3][3]:.2f}× its rows/s, {table[3][4] / ours[4]:.2f}× less CPU. "
               if args.baseline else "")
            + "All walls: " + "; ".join(f"{t} {[round(w, 2) for w in ws]}" for t, ws in walls.items()) + ".", "",
        ]
        report = "\n".join(lines)
        print(report)
        if not args.no_write:
            text = RESULTS.read_text() if RESULTS.exists() else ""
            if SECTION in text:
                head, _, tail = text.partition(SECTION)
                rest = tail.split("\n# ", 1)
                text = head + report + ("\n# " + rest[1] if len(rest) > 1 else "")
            else:
                text = text.rstrip("\n") + "\n\n" + report
            RESULTS.write_text(text)
        return 0
    finally:
        if args.keep:
            print(f"kept: {workdir}")
        else:
            sb.kill()
            if not args.workdir:
                shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
