"""Row decoding: ``binhub binlog show --rows --format json`` vs ``mariadb-binlog --base64-output=decode-rows -v``.

    .venv/bin/python bench/rows_bench.py [--oltp-txns 200000] [--small-rows 800000] [--wide-rows 300000] [--repeat 3]
                                         [--keep] [--workdir DIR] [--tools binhub,mariadb-binlog]

1. Starts a sandbox MariaDB (``binlog_row_metadata=FULL``, so binhub knows names and charsets as a
   CDC pipeline would) and writes a binlog of >= 1 M row changes: single-row OLTP transactions
   (autocommit INSERT/UPDATE/DELETE from a stored procedure), sysbench-like small rows in bulk
   (INSERT … SELECT batches of 10,000 rows, then range UPDATEs and DELETEs) and wide rows of mixed
   types (26 columns: integers, DECIMAL, FLOAT/DOUBLE, temporals with fractions, utf8mb4 text,
   binary, ENUM/SET/BIT, JSON).
2. Checks that both tools print the same number of row changes (binhub's JSON lines against
   mariadb-binlog's ``### INSERT/UPDATE/DELETE`` lines), then times each tool writing to
   /dev/null, interleaved (binhub, mariadb-binlog, binhub, …), ``--repeat`` times.
3. Prints rows/s, CPU and the ratio (binhub rows/s / mariadb-binlog rows/s; the goal is >= 0.6),
   and writes the "Row decoding" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import binhub_command, mariadb_binlog_binary, measure, start_primary, teardown  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
SECTION = "# Row decoding benchmark results"

SMALL_DDL = """CREATE TABLE bench.oltp (id INT NOT NULL PRIMARY KEY, k INT NOT NULL, c CHAR(120) NOT NULL,
  pad CHAR(60) NOT NULL, KEY (k)) ENGINE=InnoDB"""
WIDE_DDL = """CREATE TABLE bench.wide (id INT UNSIGNED NOT NULL PRIMARY KEY, ti TINYINT, si SMALLINT UNSIGNED,
  mi MEDIUMINT, bi BIGINT, d DECIMAL(14,4), f FLOAT, db DOUBLE, dt DATE, tm TIME(3), dtm DATETIME(6),
  ts TIMESTAMP(3) NULL DEFAULT NULL, y YEAR, name VARCHAR(100) CHARACTER SET utf8mb4,
  note VARCHAR(255) CHARACTER SET utf8mb4, body TEXT CHARACTER SET utf8mb4, tag CHAR(8) CHARACTER SET latin1,
  vb VARBINARY(32), bl BLOB, e ENUM('new','paid','shipped','done'), s SET('a','b','c','d'), b BIT(10),
  j JSON, flag TINYINT UNSIGNED, amount BIGINT UNSIGNED, city VARCHAR(40) CHARACTER SET utf8mb4) ENGINE=InnoDB"""
WIDE_SELECT = """SELECT seq, seq % 127, seq % 65535, CAST(seq AS SIGNED) % 8388607 - 4000000, seq * 1000003, seq / 7 + 0.1234,
  seq / 3, seq * 1.000001, '2020-01-01' + INTERVAL (seq % 3000) DAY, SEC_TO_TIME(seq % 86400) + INTERVAL 0.123 SECOND,
  '2020-01-01 00:00:00.000001' + INTERVAL seq SECOND, FROM_UNIXTIME(1600000000 + seq) + INTERVAL 0.5 SECOND,
  1901 + seq % 250, CONCAT('name-', seq, ' ünïcödé'), REPEAT(MD5(seq), 3), REPEAT(SHA1(seq), 5),
  CONCAT('t', seq % 1000), UNHEX(MD5(seq)), UNHEX(SHA1(seq)), ELT(1 + seq % 4, 'new','paid','shipped','done'),
  ELT(1 + seq % 3, 'a', 'a,c', 'b,d'), seq % 1024, JSON_OBJECT('id', seq, 'tags', JSON_ARRAY('x', seq % 5)),
  seq % 2, seq * 99991, ELT(1 + seq % 5, 'Berlin', 'Zürich', '東京', 'São Paulo', 'Kraków')"""


OLTP_PROCEDURE = """CREATE PROCEDURE bench.oltp_txns(n INT) BEGIN
  DECLARE i INT DEFAULT 1;
  WHILE i <= n DO
    INSERT INTO bench.txn VALUES (i, i % 10007, MD5(i), SHA1(i));
    IF i % 4 = 0 THEN UPDATE bench.txn SET k = k + 1 WHERE id = i - 1; END IF;
    IF i % 10 = 0 THEN DELETE FROM bench.txn WHERE id = i - 5; END IF;
    SET i = i + 1;
  END WHILE;
END"""


def generate(sb: object, small_rows: int, wide_rows: int, oltp_txns: int) -> list[Path]:
    conn = sb.connect()  # type: ignore[attr-defined]
    batch = 10_000
    with conn.cursor() as cur:
        cur.execute("SET SESSION time_zone = '+00:00'")
        cur.execute("CREATE DATABASE bench")
        cur.execute("USE bench")  # the SEQUENCE engine's seq_N_to_M tables need a current database
        cur.execute("FLUSH BINARY LOGS")
        cur.execute("SHOW MASTER STATUS")
        first = cur.fetchone()[0]
        cur.execute(SMALL_DDL)
        cur.execute(SMALL_DDL.replace("bench.oltp", "bench.txn"))
        cur.execute(WIDE_DDL)
        cur.execute(OLTP_PROCEDURE)
        cur.execute(f"CALL bench.oltp_txns({oltp_txns})")  # autocommit: one transaction per statement
        for lo in range(1, small_rows + 1, batch):
            hi = min(lo + batch - 1, small_rows)
            cur.execute(f"INSERT INTO bench.oltp SELECT seq, seq % 10007, CONCAT_WS('-', MD5(seq), MD5(seq + 1), "
                        f"MD5(seq + 2)), SHA1(seq) FROM seq_{lo}_to_{hi}")
        for lo in range(1, small_rows + 1, 50 * batch):
            cur.execute(f"UPDATE bench.oltp SET k = k + 1 WHERE id BETWEEN {lo} AND {lo + 50 * batch - 1} "
                        f"AND id % 5 = 0")
        cur.execute("DELETE FROM bench.oltp WHERE id % 10 = 1")
        for lo in range(1, wide_rows + 1, batch):
            hi = min(lo + batch - 1, wide_rows)
            cur.execute(f"INSERT INTO bench.wide {WIDE_SELECT} FROM seq_{lo}_to_{hi}")
        cur.execute("UPDATE bench.wide SET note = 'updated', amount = amount + 1 WHERE id % 4 = 0")
        cur.execute("FLUSH BINARY LOGS")
    conn.close()
    files = sb.binlog_files()  # type: ignore[attr-defined]
    names = [p.name for p in files]
    return files[names.index(first):-1]


def count_rows(cmd: list[str], pattern: bytes) -> int:
    proc = subprocess.run(cmd, capture_output=True, check=True, timeout=3600)
    return len(re.findall(pattern, proc.stdout, re.MULTILINE))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--oltp-txns", type=int, default=200_000,
                    help="single-row autocommit INSERTs (plus an UPDATE every 4th, a DELETE every 10th)")
    ap.add_argument("--small-rows", type=int, default=800_000)
    ap.add_argument("--wide-rows", type=int, default=300_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep the sandbox and its binlog")
    ap.add_argument("--workdir", type=Path, help="where the sandbox lives (default: a temp dir)")
    ap.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    args = ap.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="binhub-rows-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    sb = start_primary(workdir, name="rows", max_binlog_size="1G", extra_args=["--binlog-row-metadata=FULL"])
    try:
        began = time.perf_counter()
        files = generate(sb, args.small_rows, args.wide_rows, args.oltp_txns)
        generated_s = time.perf_counter() - began
        size = sum(p.stat().st_size for p in files)
        binhub = [*binhub_command(), "binlog", "show", "--rows", "--format", "json", *map(str, files)]
        mariadb = [mariadb_binlog_binary(), "--base64-output=decode-rows", "-v", *map(str, files)]
        theirs = count_rows(mariadb, rb"^### (INSERT INTO|UPDATE|DELETE FROM) ")
        ours = count_rows(binhub, rb"^\{")
        print(f"binlog: {size / 2**20:.0f} MiB in {len(files)} file(s), {theirs:,} row changes "
              f"(generated in {generated_s:.0f} s); binhub printed {ours:,}")
        if ours != theirs:
            print("FAIL: the tools disagree on the number of row changes", file=sys.stderr)
            return 1
        walls: dict[str, list[float]] = {"binhub": [], "mariadb-binlog": []}
        cpus: dict[str, list[float]] = {"binhub": [], "mariadb-binlog": []}
        loads = []
        for _ in range(args.repeat):
            for tool, cmd in (("binhub", binhub), ("mariadb-binlog", mariadb)):
                wall, cpu, rc, err = measure(cmd)
                if rc != 0:
                    print(f"FAIL: {tool} exited {rc}: {err}", file=sys.stderr)
                    return 1
                walls[tool].append(wall)
                cpus[tool].append(cpu)
            loads.append(os.getloadavg()[0])
        # The pure-Python path (no C extension), once: it only shows what the extension buys.
        pure_wall, pure_cpu, rc, err = measure(binhub, env={**os.environ, "BINHUB_NO_SPEEDUPS": "1"})
        if rc != 0:
            print(f"FAIL: binhub (pure) exited {rc}: {err}", file=sys.stderr)
            return 1
        rows: list[tuple[str, float, float, float, float]] = []
        for tool in walls:
            best, median = min(walls[tool]), statistics.median(walls[tool])
            rows.append((tool, best, median, theirs / median, statistics.median(cpus[tool])))
        ratio = rows[1][2] / rows[0][2]
        cpu_ratio = rows[1][4] / rows[0][4]
        rows.append(("binhub, pure Python (1 run)", pure_wall, pure_wall, theirs / pure_wall, pure_cpu))
        lines = [
            SECTION, "",
            f"Produced by `python bench/rows_bench.py --oltp-txns {args.oltp_txns} --small-rows {args.small_rows} "
            f"--wide-rows {args.wide_rows} --repeat {args.repeat}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Both tools read the "
            f"same {len(files)} binlog file(s) ({size / 2**20:.0f} MiB, {theirs:,} row changes: {args.oltp_txns:,} "
            f"single-row autocommit inserts with an update every 4th and a delete every 10th (one transaction each), "
            f"{args.small_rows:,} small sysbench-like rows inserted in batches, range updates and deletes, "
            f"{args.wide_rows:,} wide "
            f"26-column mixed-type inserts and updates; binlog_row_metadata=FULL) and write to /dev/null, "
            f"interleaved. Row counts were checked equal. 1-minute load average during the runs: "
            f"{', '.join(f'{x:.2f}' for x in loads)} (2 cores shared with other work).", "",
            "| tool | best wall s | median wall s | rows/s (median) | CPU s (median) |",
            "| ---- | ----------- | ------------- | --------------- | -------------- |",
            *[f"| {t} | {b:.2f} | {m:.2f} | {r:,.0f} | {c:.2f} |" for t, b, m, r, c in rows], "",
            f"Ratio (binhub rows/s / mariadb-binlog rows/s, medians): **{ratio:.2f}** (goal >= 0.6); by CPU "
            f"seconds (mariadb-binlog / binhub): {cpu_ratio:.2f}, the figure load disturbs least. "
            f"All walls: " + "; ".join(f"{t} {[round(w, 2) for w in ws]}" for t, ws in walls.items()) + ".", "",
            "Commands (files: the binlog files of the workload):", "",
            "    binhub binlog show --rows --format json FILES > /dev/null",
            "    mariadb-binlog --base64-output=decode-rows -v FILES > /dev/null", "",
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
        teardown(sb, workdir, keep=args.keep, made_workdir=not args.workdir)


if __name__ == "__main__":
    sys.exit(main())
