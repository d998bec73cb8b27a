"""Physical backup and restore: ``binhub backup --physical`` vs ``mariadb-backup --backup``, and
``binhub restore`` vs ``mariadb-backup --prepare`` + ``--move-back``, on the same datadir.

    .venv/bin/python bench/backup_bench.py [--size-mib 300] [--oltp-rows N] [--repeat 3] [--parallel 2] [--workdir DIR]

The datadir: a sandbox MariaDB with small OLTP tables (sysbench-like: 16 tables of id, k,
CHAR(120), CHAR(60)) for about 60% of ``--size-mib`` (or ``--oltp-rows`` rows in all) and one
table of wide rows (8 KiB TEXT) for the rest. The server is idle while the tools run (the same for
both). Each round runs the tools of each pair in alternating order, so load on the machine hits
both alike; figures are best and median of the rounds, with CPU seconds and peak RSS (of the
process tree: a restore's includes its throwaway mariadbd) from ``wait4``. binhub's backups must be
complete (manifest) and its restores must give every table the source's CHECKSUM TABLE, checked
once; mariadb-backup must exit 0.

Pairs: backup; restore keeping the backup (binhub copies, checking; mariadb-backup needs a
``cp -a`` first since its prepare changes the backup; with and without an fsync of what it restored); restore using the backup up (``binhub
restore --move`` vs ``mariadb-backup --prepare`` + ``--move-back``, each on an untimed copy).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import MIB, binhub_command, machine_facts, replace_section, start_primary  # noqa: E402
from binhub.backup import Manifest  # noqa: E402
from binhub.sandbox import Sandbox, SandboxSpec  # noqa: E402

DB = "bench"
OLTP_TABLES = 16
OLTP_ROW_BYTES = 240  # on disk, roughly, with the secondary index
WIDE_ROW_BYTES = 8192
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
START, END = "<!-- backup-bench:start -->", "<!-- backup-bench:end -->"


def datadir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def populate(sb: Sandbox, size: int, total_oltp_rows: int | None = None) -> None:
    oltp_rows = int(size * 0.6 / OLTP_ROW_BYTES / OLTP_TABLES) if total_oltp_rows is None \
        else total_oltp_rows // OLTP_TABLES
    wide_rows = int(size * 0.4 / (WIDE_ROW_BYTES * 1.1))
    statements = [f"CREATE DATABASE {DB}"]
    for i in range(1, OLTP_TABLES + 1):
        statements += [
            f"CREATE TABLE {DB}.sbtest{i} (id INT PRIMARY KEY, k INT NOT NULL, c CHAR(120) NOT NULL, "
            "pad CHAR(60) NOT NULL, KEY (k)) ENGINE=InnoDB",
            f"INSERT INTO {DB}.sbtest{i} SELECT seq, seq * 7 % {oltp_rows}, LPAD(MD5(seq), 120, 'c'), "
            f"LPAD(SHA1(seq), 60, 'p') FROM {DB}.seq_1_to_{oltp_rows}",
        ]
    statements += [
        f"CREATE TABLE {DB}.wide (id INT PRIMARY KEY, body MEDIUMTEXT) ENGINE=InnoDB",
        f"INSERT INTO {DB}.wide SELECT seq, REPEAT(MD5(seq), {WIDE_ROW_BYTES // 32}) FROM {DB}.seq_1_to_{wide_rows}",
        "SET GLOBAL innodb_max_dirty_pages_pct = 0",
    ]
    conn = sb.connect()
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()
    time.sleep(5)  # let the page cleaner write the pages out: both tools then read the same files


def checksums(sb: Sandbox) -> dict[str, object]:
    names = [str(r[0]) for r in sb.query(f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{DB}'")]
    return {name: sb.query(f"CHECKSUM TABLE {DB}.{name}")[0][1] for name in sorted(names)}


@dataclass
class Figures:
    """Every round's wall, CPU and peak RSS of each labelled command."""

    wall: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    rss: dict[str, list[int]] = field(default_factory=dict)

    def add(self, label: str, wall: float, cpu: float, rss: int) -> None:
        self.wall.setdefault(label, []).append(wall)
        self.cpu.setdefault(label, []).append(cpu)
        self.rss.setdefault(label, []).append(rss)


def run_one(cmd: list[str], timeout: float = 3600) -> tuple[float, float, int, int, str]:
    """Run ``cmd``: (wall s, CPU s, peak RSS bytes, exit code, stderr tail). CPU and RSS come from
    ``wait4`` of that child (its process tree: a restore's throwaway mariadbd counts), so neither
    this process nor earlier commands can leak into them."""
    began = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        deadline = began + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                raise SystemExit(f"{cmd[0]} did not finish within {timeout:g}s")
            time.sleep(0.005)
        wall = time.perf_counter() - began
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read()[-2000:].decode(errors="replace")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, proc.returncode, tail


def run(label: str, cmd: list[str], figures: Figures) -> None:
    wall, used, rss, code, err = run_one(cmd)
    if code != 0:
        raise SystemExit(f"{label} failed (exit {code}): {err}")
    figures.add(label, wall, used, rss)
    print(f"  {label:<36} {wall:7.2f} s  (CPU {used:.2f} s, peak RSS {rss / MIB:.0f} MiB)", flush=True)


def paired(pairs: list[tuple[str, list[str]]], round_no: int, figures: Figures) -> None:
    for label, cmd in pairs if round_no % 2 == 0 else reversed(pairs):
        run(label, cmd, figures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=300)
    parser.add_argument("--oltp-rows", type=int, help="Rows of the 16 OLTP tables in all (default: from --size-mib).")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--no-write", action="store_true", help="Print the figures, leave RESULTS.md alone.")
    args = parser.parse_args()
    mariadb_backup = shutil.which("mariadb-backup")
    if mariadb_backup is None:
        raise SystemExit("mariadb-backup is not installed")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="binhub-backup-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    sb = start_primary(work / "sandboxes", name="backup-source")
    try:
        print(f"populating {args.size_mib} MiB ...", flush=True)
        populate(sb, args.size_mib * MIB, args.oltp_rows)
        rows = sum(int(r[0]) for r in sb.query(f"SELECT table_rows FROM information_schema.tables WHERE table_schema = '{DB}'"))
        print(f"datadir: {datadir_bytes(sb.datadir) / MIB:.0f} MiB with the redo log and binlogs, ~{rows:,} rows",
              flush=True)
        expected = checksums(sb)
        binhub = binhub_command()
        size = 0
        figures = Figures()
        load_before = os.getloadavg()
        for round_no in range(args.repeat):
            print(f"round {round_no + 1} (load {os.getloadavg()[0]:.1f})", flush=True)
            ours, theirs, synced = work / "binhub-backup", work / "mb-backup", work / "mb-backup-synced"
            for path in (ours, theirs, synced):
                shutil.rmtree(path, ignore_errors=True)
            mb_backup = [mariadb_backup, "--backup", "--user=root", f"--socket={sb.socket}", f"--parallel={args.parallel}"]
            paired([
                ("binhub backup", [*binhub, "backup", "--physical", "--source", "mysql://root@localhost",
                                   "--socket", str(sb.socket), "--datadir", str(sb.datadir), "--to", str(ours),
                                   "--parallel", str(args.parallel), "--no-progress"]),
                ("mariadb-backup --backup", [*mb_backup, f"--target-dir={theirs}"]),
                # As durable as binhub's: every file fsynced (coreutils sync FILE...), then the directories.
                ("mariadb-backup --backup + fsync", ["sh", "-c", f"{shlex.join(mb_backup)} --target-dir={synced} && "
                                                     f"find {synced} -type f -exec sync {{}} + && "
                                                     f"find {synced} -type d -exec sync {{}} +"]),
            ], round_no, figures)
            shutil.rmtree(synced, ignore_errors=True)
            manifest = Manifest.read(ours)
            if not manifest.complete:
                raise SystemExit(f"binhub's backup is not complete: {manifest.error}")
            size = manifest.total_bytes  # what a physical backup copies: tablespaces, redo, other files
            restored, scratch, moved = work / "binhub-restored", work / "mb-prepared", work / "mb-restored"
            restored_mb, scratch_synced, moved_synced = work / "binhub-restored-mb", work / "mb-prepared-s", work / "mb-restored-s"
            ours_spare, theirs_spare = work / "binhub-backup-spare", work / "mb-backup-spare"
            moved_ours, moved_theirs = work / "binhub-moved", work / "mb-moved"
            for path in (restored, restored_mb, scratch, moved, ours_spare, theirs_spare, moved_ours, moved_theirs,
                         scratch_synced, moved_synced):
                shutil.rmtree(path, ignore_errors=True)
            paired([
                ("binhub restore", [*binhub, "restore", str(ours), "--to", str(restored),
                                    "--parallel", str(args.parallel)]),
                ("binhub restore (mb prepare)", [*binhub, "restore", str(ours), "--to", str(restored_mb),
                                                 "--parallel", str(args.parallel), "--prepare-with", "mariadb-backup"]),
                ("mariadb-backup prepare+move", ["sh", "-c", f"cp -a {theirs} {scratch} && {mariadb_backup} --prepare "
                                                 f"--target-dir={scratch} && {mariadb_backup} --move-back "
                                                 f"--target-dir={scratch} --datadir={moved}"]),
                # As durable as binhub's restore: every restored file and directory fsynced.
                ("mariadb-backup prepare+move + fsync", [
                    "sh", "-c", f"cp -a {theirs} {scratch_synced} && {mariadb_backup} --prepare "
                                f"--target-dir={scratch_synced} && {mariadb_backup} --move-back "
                                f"--target-dir={scratch_synced} --datadir={moved_synced} && "
                                f"find {moved_synced} -type f -exec sync {{}} + && find {moved_synced} -type d -exec sync {{}} +"]),
            ], round_no, figures)
            for path in (scratch_synced, moved_synced):
                shutil.rmtree(path, ignore_errors=True)
            # Using the backup up: both on a copy made outside the timing.
            subprocess.run(["cp", "-a", str(ours), str(ours_spare)], check=True)
            subprocess.run(["cp", "-a", str(theirs), str(theirs_spare)], check=True)
            subprocess.run(["sync"], check=True)
            paired([
                ("binhub restore --move", [*binhub, "restore", str(ours_spare), "--to", str(moved_ours),
                                           "--parallel", str(args.parallel), "--move"]),
                ("mariadb-backup --prepare --move-back", [
                    "sh", "-c", f"{mariadb_backup} --prepare --target-dir={theirs_spare} && {mariadb_backup} "
                                f"--move-back --target-dir={theirs_spare} --datadir={moved_theirs}"]),
            ], round_no, figures)
            if round_no == 0:
                for label, datadir in (("binhub restore", restored), ("binhub restore --move", moved_ours)):
                    check = Sandbox.create(SandboxSpec(name="restored-check", base_dir=work / "sandboxes", server_id=77))
                    shutil.rmtree(check.datadir)
                    shutil.copytree(datadir, check.datadir)
                    check.start(timeout=300, die_with_parent=True)
                    try:
                        if checksums(check) != expected:
                            raise SystemExit(f"{label} gave other table checksums than the source")
                    finally:
                        check.stop()
                        shutil.rmtree(check.sandbox_dir, ignore_errors=True)
        report(args, size, rows, figures, load_before, sb)
    finally:
        sb.kill()
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


def report(args: argparse.Namespace, size: int, rows: int, figures: Figures,
           load_before: tuple[float, float, float], sb: Sandbox) -> None:
    walls = figures.wall

    def row(label: str, reference: str, name: str | None = None) -> str:
        best, median = min(walls[label]), statistics.median(walls[label])
        ratio_best = min(walls[reference]) / best
        ratio_median = statistics.median(walls[reference]) / median
        return (f"| {name or label} | {best:.2f} | {median:.2f} | {size / 1e6 / best:.0f} | "
                f"{statistics.median(figures.cpu[label]):.2f} | {max(figures.rss[label]) / MIB:.0f} | "
                f"{ratio_best:.2f} | {ratio_median:.2f} |")

    load_after = os.getloadavg()
    command = (f"python bench/backup_bench.py --size-mib {args.size_mib} "
               + (f"--oltp-rows {args.oltp_rows} " if args.oltp_rows else "")
               + f"--repeat {args.repeat} --parallel {args.parallel}")
    lines = [
        "# Physical backup benchmark results", "",
        f"Produced by `{command}`. A backup of {size / MIB:.0f} MiB (tablespaces, redo, other files; ~{rows:,} rows): "
        f"{OLTP_TABLES} sysbench-like tables and one "
        "table of 8 KiB rows, server idle. Both tools with the same parallelism, one after the other within a "
        "round (order alternating). ratio = mariadb-backup time / binhub time: above 1.0 binhub is faster. "
        "binhub's restores checked (CHECKSUM TABLE of every table equals the source's). CPU and peak RSS "
        "from wait4 of each command (its process tree: a restore's throwaway mariadbd counts).", "",
        f"Load average (1/5/15 min) {' / '.join(f'{x:.2f}' for x in load_before)} before, "
        f"{' / '.join(f'{x:.2f}' for x in load_after)} after.", "",
        "| tool | best s | median s | MB/s (best) | CPU s (median) | peak RSS MiB | ratio (best) | ratio (median) |",
        "| ---- | ------ | -------- | ----------- | -------------- | ------------ | ------------ | -------------- |",
        row("mariadb-backup --backup", "mariadb-backup --backup"),
        row("binhub backup", "mariadb-backup --backup"),
        row("mariadb-backup --backup + fsync", "mariadb-backup --backup"),
        row("binhub backup", "mariadb-backup --backup + fsync", "binhub backup, against + fsync"),
        row("mariadb-backup prepare+move", "mariadb-backup prepare+move"),
        row("binhub restore", "mariadb-backup prepare+move"),
        row("binhub restore (mb prepare)", "mariadb-backup prepare+move"),
        row("mariadb-backup prepare+move + fsync", "mariadb-backup prepare+move"),
        row("binhub restore", "mariadb-backup prepare+move + fsync", "binhub restore, against + fsync"),
        row("mariadb-backup --prepare --move-back", "mariadb-backup --prepare --move-back"),
        row("binhub restore --move", "mariadb-backup --prepare --move-back"), "",
        "All walls (s): " + "; ".join(f"{k} {[round(w, 2) for w in v]}" for k, v in walls.items()), "",
        "Keeping the backup: binhub restore = copy with CRC-32C checks + prepare by a throwaway mariadbd (crash "
        "recovery, slow shutdown), or `--prepare-with mariadb-backup`; mariadb-backup = `cp -a` of the backup "
        "(its prepare changes it in place) + `--prepare` + `--move-back`. Using the backup up: `binhub restore "
        "--move` (rename, then CRC-32C check in place, prepare by mariadbd) vs `--prepare` + `--move-back`, each "
        "on a copy made outside the timing. Walls include the interpreter's start-up.", "",
        "Durability differs: mariadb-backup makes no fsync at all (strace: no fsync, fdatasync or sync_file_range "
        "in a whole `--backup`), binhub fsyncs every file before its manifest says complete and every restored "
        "file before the restore ends; `mariadb-backup --backup + fsync` and `prepare+move + fsync` are "
        "mariadb-backup made as durable (each file and directory fsynced after it), the like-for-like references.", "",
        "Machine: " + "; ".join(f"{k}: {v}" for k, v in machine_facts(sb).items()),
    ]
    print("\n".join(lines))
    if not args.no_write:
        replace_section(RESULTS, START, END, lines)


if __name__ == "__main__":
    main()
