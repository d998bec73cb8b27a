"""Point-in-time restore: how fast the restored server replays the store, in rows per second.

    .venv/bin/python bench/pitr_bench.py [--bulk-rows 200000] [--batch 1000] [--oltp 5000] [--repeat 2]

A source whose binlog ``binhub relay`` copies into a store, a physical backup of it, then writes
after the backup: ``--bulk-rows`` rows inserted in transactions of ``--batch`` rows, and ``--oltp``
single-row UPDATE transactions. Each round restores the backup with ``--until-gtid`` the source's
last GTID (``point_in_time_restore``, as ``binhub restore`` runs it) and times the replay phase
alone (around ``binhub.backup.restore.replay``: from ``START SLAVE UNTIL`` to the SQL thread
stopping at the target). The restored server applies the events with its own replication SQL
thread, fed by ``binhub serve`` on the store, so the figure is that server's apply rate through
binhub's dump. Every restore is checked: the replayed table's CHECKSUM TABLE equals the source's.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import binhub.backup.pitr as pitr_module  # noqa: E402
from bench.common import binhub_command, machine_facts, replace_section, start_primary  # noqa: E402
from binhub.backup import PhysicalBackup, PhysicalBackupConfig, ServerAddress  # noqa: E402
from binhub.backup.restore import RestoreConfig  # noqa: E402
from binhub.ops.pitr import PitrSource, PitrTarget, point_in_time_restore  # noqa: E402
from binhub.sandbox import Sandbox, SandboxSpec, find_server_binary  # noqa: E402

DB = "bench"
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
START, END = "<!-- pitr-bench:start -->", "<!-- pitr-bench:end -->"


def writes_after_backup(sb: Sandbox, bulk_rows: int, batch: int, oltp: int) -> None:
    conn = sb.connect(database=DB)
    try:
        with conn.cursor() as cur:
            for first in range(0, bulk_rows, batch):
                cur.execute("BEGIN")
                cur.execute(f"INSERT INTO bulk SELECT seq, seq * 7, REPEAT('b', 100) FROM seq_{first + 1}_to_"
                            f"{min(first + batch, bulk_rows)}")
                cur.execute("COMMIT")
            for i in range(oltp):
                cur.execute("UPDATE oltp SET v = v + 1 WHERE id = %s", (i % 1000 + 1,))
    finally:
        conn.close()


def checksum(sb: Sandbox, table: str) -> Any:
    return sb.query(f"CHECKSUM TABLE {DB}.{table}")[0][1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bulk-rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--oltp", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--no-write", action="store_true", help="Print the figures, leave RESULTS.md alone.")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="binhub-pitr-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    replays: list[float] = []
    real_replay = pitr_module.replay

    def timed_replay(*a: Any, **kw: Any) -> Any:
        began = time.perf_counter()
        try:
            return real_replay(*a, **kw)
        finally:
            replays.append(time.perf_counter() - began)

    setattr(pitr_module, "replay", timed_replay)  # noqa: B010 - the restore imports it from there when it replays
    sb = start_primary(work / "sandboxes", name="pitr-source")
    try:
        sb.execute(f"CREATE DATABASE {DB}",
                   f"CREATE TABLE {DB}.bulk (id INT PRIMARY KEY, k INT NOT NULL, pad CHAR(100), KEY (k)) ENGINE=InnoDB",
                   f"CREATE TABLE {DB}.oltp (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB",
                   f"INSERT INTO {DB}.oltp SELECT seq, 0 FROM {DB}.seq_1_to_1000")
        backup, store = work / "backup", work / "store"
        shutil.rmtree(backup, ignore_errors=True)
        manifest = PhysicalBackup(PhysicalBackupConfig(ServerAddress(unix_socket=sb.socket), sb.datadir, backup)).run()
        print(f"backup at GTID {manifest.gtid}; writing {args.bulk_rows:,} rows in transactions of {args.batch} "
              f"and {args.oltp:,} single-row updates ...", flush=True)
        writes_after_backup(sb, args.bulk_rows, args.batch, args.oltp)
        until = str(sb.query("SELECT @@gtid_binlog_pos")[0][0])
        expected = {t: checksum(sb, t) for t in ("bulk", "oltp")}
        relay = subprocess.run([*binhub_command(), "relay", "--source", sb.dsn, "--data-dir", str(store),
                                "--until-caught-up"], capture_output=True, text=True, timeout=1800)
        if relay.returncode != 0:
            raise SystemExit(f"binhub relay failed: {relay.stderr[-2000:]}")
        rows = args.bulk_rows + args.oltp
        walls: list[float] = []
        for round_no in range(args.repeat):
            target = work / f"restored-{round_no}"
            shutil.rmtree(target, ignore_errors=True)
            began = time.perf_counter()
            point_in_time_restore(RestoreConfig(backup=backup, target=target, mariadbd=find_server_binary()),
                                  PitrTarget(until_gtid=until), PitrSource(store))
            walls.append(time.perf_counter() - began)
            print(f"  round {round_no + 1}: restore + replay {walls[-1]:.2f} s, replay {replays[-1]:.2f} s "
                  f"({rows / replays[-1]:,.0f} rows/s)", flush=True)
            if round_no == 0:
                check = Sandbox.create(SandboxSpec(name="pitr-check", base_dir=work / "sandboxes", server_id=77))
                shutil.rmtree(check.datadir)
                shutil.copytree(target, check.datadir)
                check.start(timeout=300, die_with_parent=True)
                try:
                    got = {t: checksum(check, t) for t in expected}
                finally:
                    check.stop()
                    shutil.rmtree(check.sandbox_dir, ignore_errors=True)
                if got != expected:
                    raise SystemExit(f"the replayed tables differ from the source's: {got} != {expected}")
            shutil.rmtree(target, ignore_errors=True)
        best, median = min(replays), statistics.median(replays)
        command = (f"python bench/pitr_bench.py --bulk-rows {args.bulk_rows} --batch {args.batch} "
                   f"--oltp {args.oltp} --repeat {args.repeat}")
        lines = [
            "# Point-in-time replay benchmark results", "",
            f"Produced by `{command}`. After a physical backup: {args.bulk_rows:,} rows inserted in transactions of "
            f"{args.batch} rows, then {args.oltp:,} single-row UPDATE transactions; `binhub restore --until-gtid` "
            "the last one, the restored server replicating binhub's store through `binhub serve`. Replay = from "
            "`START SLAVE UNTIL` to the SQL thread stopping at the target; checked: the replayed tables' CHECKSUM "
            "TABLE equals the source's.", "",
            "| rows replayed | replay best s | replay median s | rows/s (best) | rows/s (median) | restore + replay median s |",
            "| ------------- | ------------- | --------------- | ------------- | --------------- | ------------------------- |",
            f"| {rows:,} | {best:.2f} | {median:.2f} | {rows / best:,.0f} | {rows / median:,.0f} | "
            f"{statistics.median(walls):.2f} |", "",
            "Machine: " + "; ".join(f"{k}: {v}" for k, v in machine_facts(sb).items()),
        ]
        print("\n".join(lines))
        if not args.no_write:
            replace_section(RESULTS, START, END, lines)
    finally:
        sb.kill()
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
