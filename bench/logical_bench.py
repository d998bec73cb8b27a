"""Logical backup and restore: ``binhub backup --logical`` vs ``mydumper`` and ``mariadb-dump``, ``binhub restore`` vs ``myloader`` and ``mariadb < dump.sql``.

    .venv/bin/python bench/logical_bench.py [--oltp-rows 1000000] [--wide-rows 200000] [--threads 2]
                                            [--repeat 3] [--workdir DIR] [--keep] [--no-write]

Needs Debian's ``mydumper`` package (``apt-get install mydumper``: mydumper/myloader 0.10; the tests
do not need it, only this bench). It:

1. starts a source MariaDB sandbox and fills database ``bench`` with two tables: ``oltp``
   (sysbench-like small rows: INT key, INT k with an index, CHAR(120), CHAR(60)) and ``wide`` (22
   mixed columns: integers, DECIMAL, FLOAT/DOUBLE, temporals with fractions, utf8mb4 text, binary,
   ENUM/SET/BIT, JSON, NULLs), and a target sandbox to restore into;
2. times, interleaved in each round (so the machine's load hits all alike), ``binhub backup
   --logical`` and ``mydumper`` with the same threads and chunk rows, both compressed (binhub:
   zstd; mydumper 0.10: gzip, its only codec), and ``mariadb-dump --single-transaction`` (one
   thread, plain SQL); then ``binhub restore`` (secondary indexes after the rows, its default, and
   ``--no-indexes-after``), ``myloader`` and ``mariadb < dump.sql`` of those backups into the empty
   target (binlog off for all), each restore checked: every table's ``CHECKSUM TABLE`` equals the
   source's;
3. prints the best and median wall of each tool, its CPU and the servers' CPU meanwhile (binhub
   has the source format the rows: its work moves there), and the ratios (the tool's best wall /
   binhub's: above 1.0 binhub is faster), and writes the "Logical backup" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import binhub_command, machine_facts, measure, replace_section, start_primary  # noqa: E402
from binhub.sandbox import Sandbox  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
START, END = "<!-- logical-bench:start -->", "<!-- logical-bench:end -->"
DB = "bench"
CHUNK_ROWS = 100_000
BACKUPS = ("binhub backup", "mydumper", "mariadb-dump")
RESTORES = ("binhub restore", "binhub restore --no-indexes-after", "myloader", "mariadb < dump.sql")

OLTP_DDL = f"""CREATE TABLE {DB}.oltp (id INT NOT NULL PRIMARY KEY, k INT NOT NULL, c CHAR(120) NOT NULL,
pad CHAR(60) NOT NULL, KEY k (k)) ENGINE=InnoDB"""
WIDE_DDL = f"""CREATE TABLE {DB}.wide (
  id BIGINT NOT NULL PRIMARY KEY, tiny TINYINT, small SMALLINT UNSIGNED, big BIGINT, dec_v DECIMAL(20,6),
  flt FLOAT, dbl DOUBLE, bits BIT(12), vc VARCHAR(200) CHARACTER SET utf8mb4, ch CHAR(16), txt TEXT,
  vbin VARBINARY(64), blb BLOB, dtm DATETIME(6), ts TIMESTAMP(3) NULL DEFAULT NULL, dte DATE, tm TIME(2),
  yr YEAR, en ENUM('a','b','c'), st SET('x','y','z'), js JSON, l1 VARCHAR(40) CHARACTER SET latin1
) ENGINE=InnoDB"""
OLTP_FILL = (f"INSERT INTO {DB}.oltp SELECT seq, seq * 7919 % 1000003, "
             "CONCAT(LPAD(seq, 10, '0'), '-', REPEAT(CHAR(48 + seq % 10), 100)), REPEAT('p', 60) "
             f"FROM {DB}.seq_{{lo}}_to_{{hi}}")
WIDE_FILL = (f"INSERT INTO {DB}.wide SELECT seq, CAST(seq % 256 AS SIGNED) - 128, seq % 65536, CAST(seq AS SIGNED) * 1000003 - 7, seq / 7, "
             "seq / 3, seq / 11, seq % 4096, CONCAT('wïde ', seq, ' 😀 ', REPEAT('x', seq % 120)), "
             "LEFT(MD5(seq), 16), IF(seq % 5 = 0, NULL, REPEAT(MD5(seq), 1 + seq % 8)), UNHEX(MD5(seq)), "
             "IF(seq % 3 = 0, NULL, RANDOM_BYTES(1 + seq % 200)), "
             "TIMESTAMPADD(MICROSECOND, seq * 1234567, '2020-01-01'), "
             "TIMESTAMPADD(SECOND, seq, '2001-01-01 00:00:00.123'), DATE('2000-01-01') + INTERVAL seq % 9000 DAY, "
             "SEC_TO_TIME(seq % 86400 + 0.25), 1901 + seq % 255, ELT(1 + seq % 3, 'a', 'b', 'c'), "
             "ELT(1 + seq % 4, '', 'x', 'x,y', 'x,y,z'), JSON_OBJECT('n', seq, 's', CONCAT('v', seq)), "
             f"CONCAT('café ', seq) FROM {DB}.seq_{{lo}}_to_{{hi}}")


def fill(sb: Sandbox, oltp_rows: int, wide_rows: int) -> None:
    statements = [f"CREATE DATABASE {DB}", OLTP_DDL, WIDE_DDL]
    step = 100_000
    statements += [OLTP_FILL.format(lo=lo, hi=min(lo + step - 1, oltp_rows)) for lo in range(1, oltp_rows + 1, step)]
    statements += [WIDE_FILL.format(lo=lo, hi=min(lo + step - 1, wide_rows)) for lo in range(1, wide_rows + 1, step)]
    statements.append(f"ANALYZE TABLE {DB}.oltp, {DB}.wide")
    sb.execute(*statements)


def checksums(sb: Sandbox) -> dict[str, int]:
    return {str(t).split(".")[-1]: int(v) for t, v in sb.query(f"CHECKSUM TABLE {DB}.oltp, {DB}.wide EXTENDED")}


def differing_columns(source: Sandbox, target: Sandbox, table: str) -> list[str]:
    """Columns of ``table`` whose values differ between the two servers (a fingerprint per column)."""
    columns = [(str(c), str(t)) for c, t in source.query(
        "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS "
        f"WHERE TABLE_SCHEMA = '{DB}' AND TABLE_NAME = '{table}'")]
    # FLOAT as DOUBLE: the server prints a FLOAT rounded to 6 digits, which hides a changed value.
    values = [f"`{c}` + 0e0" if t == "float" else f"`{c}`" for c, t in columns]
    sql = ("SELECT " + ", ".join(f"SUM(CRC32(CONCAT(id, ':', IFNULL(HEX(CAST({v} AS BINARY)), 'null'))))" for v in values)
           + f" FROM {DB}.{table}")
    ours, theirs = source.query(sql)[0], target.query(sql)[0]
    return [c for (c, _), a, b in zip(columns, ours, theirs, strict=True) if a != b]


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run(name: str, cmd: list[str], servers: tuple[Sandbox, ...]) -> tuple[float, float, float]:
    """(wall, the tool's CPU, the servers' CPU) of one run."""
    before = sum(server_cpu(sb) for sb in servers)
    wall, cpu, code, err = measure(cmd, timeout=3600)
    if code != 0:
        raise SystemExit(f"{name} failed ({code}): {err}")
    return wall, cpu, sum(server_cpu(sb) for sb in servers) - before


def server_cpu(sb: Sandbox) -> float:
    """CPU seconds the server's process has used (utime + stime from /proc)."""
    fields = Path(f"/proc/{sb.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--oltp-rows", type=int, default=1_000_000)
    ap.add_argument("--wide-rows", type=int, default=200_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    args = ap.parse_args()
    for tool in ("mydumper", "myloader"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed: apt-get install mydumper (Debian's 0.10)")
    dump_tool = shutil.which("mariadb-dump") or "mysqldump"
    client = shutil.which("mariadb") or "mysql"
    work = args.workdir or Path(tempfile.mkdtemp(prefix="binhub-logical-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    source = start_primary(work / "sandboxes", name="source")
    target = start_primary(work / "sandboxes", name="target", server_id=2)
    try:
        print(f"filling {args.oltp_rows:,} oltp + {args.wide_rows:,} wide rows ...", flush=True)
        fill(source, args.oltp_rows, args.wide_rows)
        expected = checksums(source)
        rows = args.oltp_rows + args.wide_rows
        src = f"mysql://root@127.0.0.1:{source.port}"
        dst = f"mysql://root@127.0.0.1:{target.port}"
        t = str(args.threads)
        walls: dict[str, list[float]] = {k: [] for k in (*BACKUPS, *RESTORES)}
        cpus: dict[str, list[float]] = {k: [] for k in walls}
        server_cpus: dict[str, list[float]] = {k: [] for k in walls}
        sizes: dict[str, int] = {}
        inexact: dict[str, list[str]] = {}
        load_before = os.getloadavg()
        started = time.strftime("%H:%M UTC", time.gmtime())
        for round_no in range(args.repeat):
            ours, theirs = work / f"binhub-{round_no}", work / f"mydumper-{round_no}"
            plain_sql = work / f"mariadb-dump-{round_no}.sql"
            for name, cmd in (
                ("binhub backup", [*binhub_command(), "backup", "--logical", "--source", src, "--to", str(ours),
                                   "--parallel", t, "--chunk-rows", str(CHUNK_ROWS), "--include", f"{DB}.*",
                                   "--no-users", "--no-progress"]),
                ("mydumper", ["mydumper", "-h", "127.0.0.1", "-P", str(source.port), "-u", "root", "-t", t,
                              "-B", DB, "-o", str(theirs), "-r", str(CHUNK_ROWS), "-c"]),
                ("mariadb-dump", [dump_tool, "-h127.0.0.1", f"-P{source.port}", "-uroot", "--single-transaction",
                                  "--databases", DB, f"--result-file={plain_sql}"]),
            ):
                wall, cpu, server = run(name, cmd, (source,))
                walls[name].append(wall)
                cpus[name].append(cpu)
                server_cpus[name].append(server)
            sizes = {"binhub backup": du(ours), "mydumper": du(theirs), "mariadb-dump": plain_sql.stat().st_size}
            for name, cmd in (
                ("binhub restore", [*binhub_command(), "restore", str(ours), "--to", dst, "--parallel", t,
                                    "--no-users", "--no-progress"]),
                ("binhub restore --no-indexes-after", [*binhub_command(), "restore", str(ours), "--to", dst,
                                                       "--parallel", t, "--no-users", "--no-progress",
                                                       "--no-indexes-after"]),
                ("myloader", ["myloader", "-h", "127.0.0.1", "-P", str(target.port), "-u", "root", "-t", t,
                              "-d", str(theirs)]),
                ("mariadb < dump.sql", ["sh", "-c", f"exec {client} -h127.0.0.1 -P{target.port} -uroot "
                                                    f"--init-command='SET sql_log_bin=0' < {plain_sql}"]),
            ):
                target.execute(f"DROP DATABASE IF EXISTS {DB}", "DROP DATABASE IF EXISTS binhub")
                wall, cpu, server = run(name, cmd, (target,))
                walls[name].append(wall)
                cpus[name].append(cpu)
                server_cpus[name].append(server)
                got = checksums(target)
                if got != expected:
                    if name.startswith("binhub"):
                        raise SystemExit(f"{name}: restored checksums {got} differ from the source's {expected}")
                    inexact[name] = [f"{t}.{c}" for t in got if got[t] != expected[t]
                                     for c in differing_columns(source, target, t)]
            shutil.rmtree(ours)
            shutil.rmtree(theirs)
            plain_sql.unlink()
            print(f"round {round_no + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in walls.items()), flush=True)
        load_after = os.getloadavg()
        facts = machine_facts(source)
        lines = report(args, walls, cpus, server_cpus, sizes, rows, started, load_before, load_after, facts, inexact)
        print("\n".join(lines))
        if not args.no_write:
            replace_section(RESULTS, START, END, lines)
    finally:
        for sb in (source, target):
            sb.kill()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def report(args: argparse.Namespace, walls: dict[str, list[float]], cpus: dict[str, list[float]],
           server_cpus: dict[str, list[float]], sizes: dict[str, int], rows: int, started: str,
           load_before: tuple[float, ...],
           load_after: tuple[float, ...], facts: dict[str, str], inexact: dict[str, list[str]]) -> list[str]:
    def load(values: tuple[float, ...]) -> str:
        return " / ".join(f"{x:.2f}" for x in values)

    lines = [
        "# Logical backup benchmark results",
        "",
        f"Produced by `python bench/logical_bench.py --oltp-rows {args.oltp_rows} --wide-rows {args.wide_rows} "
        f"--threads {args.threads} --repeat {args.repeat}`. Database `bench`: `oltp` ({args.oltp_rows:,} "
        f"sysbench-like rows) and `wide` ({args.wide_rows:,} rows of 22 mixed columns); {rows:,} rows in all. "
        f"binhub and mydumper/myloader with {args.threads} threads and chunks of {CHUNK_ROWS:,} rows, compressed "
        "(binhub zstd, mydumper 0.10 gzip); `mariadb-dump --single-transaction` (one thread, plain SQL) and "
        "`mariadb < dump.sql`; all interleaved in every round; every restore checked against the source with "
        "`CHECKSUM TABLE` (binhub's must be equal, or the bench stops). Ratio = the tool's best wall / binhub's "
        "best (`binhub backup`, `binhub restore`): above 1.0 binhub is faster. Server CPU: the source's "
        "(backup) or the target's (restore) mariadbd during the run.",
        "",
        f"Runs from {started}; load average (1/5/15 min) {load(load_before)} before, {load(load_after)} after "
        f"(the machine has {facts.get('cores')} cores, shared with other work).",
        "",
        "| step | tool | best wall s | median wall s | rows/s (best) | CPU s (median) | server CPU s (median) "
        "| output MiB | ratio |",
        "| ---- | ---- | ----------- | ------------- | ------------- | -------------- | --------------------- "
        "| ---------- | ----- |",
    ]
    for step, tools in (("backup", BACKUPS), ("restore", RESTORES)):
        ours = min(walls[tools[0]])
        for tool in tools:
            best, median = min(walls[tool]), statistics.median(walls[tool])
            size = f"{sizes[tool] / 2**20:.1f}" if tool in sizes else "-"
            lines.append(f"| {step} | {tool} | {best:.2f} | {median:.2f} | {rows / best:,.0f} | "
                         f"{statistics.median(cpus[tool]):.2f} | {statistics.median(server_cpus[tool]):.2f} | {size} | "
                         f"{best / ours:.2f} |")
    for tool, columns in inexact.items():
        lines += ["", f"**{tool} did not restore the data exactly**: `CHECKSUM TABLE` differs from the source's; "
                  f"the columns whose values differ: {', '.join(columns) or '(none found per column)'}."]
    lines += ["", "All walls (s): " + "; ".join(f"{k} [{', '.join(f'{w:.2f}' for w in v)}]" for k, v in walls.items()),
              "", "Machine: " + "; ".join(f"{k}: {v}" for k, v in facts.items() if k != "mariadb-binlog"),
              "", f"mydumper: `{subprocess.run(['mydumper', '--version'], capture_output=True, text=True).stdout.strip()}`"]
    return lines


if __name__ == "__main__":
    main()
