"""Relay benchmark: binhub relay vs ``mariadb-binlog --raw --stop-never`` on the same binlog.

    python bench/relay_bench.py [--size-gib 1.0] [--repeat 1] [--keep] [--workdir DIR]

Starts a sandbox MariaDB (256 MiB binlog files), writes a binlog of at least ``--size-gib`` with a
realistic mix (many small OLTP transactions, some large batch ones, two events above 16 MiB), then
copies it, one tool after the other, with

  (a) mariadb-binlog --read-from-remote-server --raw --stop-never  (stopped once it holds every byte)
  (b) binhub relay --until-caught-up --durability rotate
  (c) binhub relay --until-caught-up --durability txn

each into a fresh directory. binhub's files must be byte-identical to the primary's, or its figures
are not reported. Prints a table and writes bench/RESULTS.md. ``--workdir`` keeps the sandbox
there and reuses its binlog on the next run (handy while profiling).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    GIB,
    MIB,
    Generated,
    Measured,
    ProcCpu,
    binhub_command,
    binlog_files,
    binlog_total,
    compare_files,
    count_events,
    fsync_throughput,
    generate_binlog,
    machine_facts,
    mariadb_binlog_command,
    master_status,
    measure,
    redact,
    start_primary,
)
from binhub.sandbox import Sandbox  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
TOOLS = ("mariadb-binlog", "binhub-rotate", "binhub-txn")
GOALS = {"binhub-rotate": 1.0, "binhub-txn": 0.7}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def dir_bytes(path: Path) -> int:
    total = 0
    try:
        with os.scandir(path) as it:
            for entry in it:
                if entry.is_file():
                    total += entry.stat().st_size
    except FileNotFoundError:
        return 0
    return total


def run_mariadb_binlog(sb: Sandbox, out: Path, total: int, events: int, first: str) -> tuple[Measured, str]:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    cmd = mariadb_binlog_command(sb, out, first, server_id=9001)
    server = ProcCpu(sb.pid)
    wall, cpu, rc, err = measure(cmd, done=lambda: dir_bytes(out) >= total)
    got = dir_bytes(out)
    m = Measured("mariadb-binlog", wall, cpu, got, events, server_cpu=server.since_start())
    if got != total:
        m.ok = False
        m.note = f"wrote {got} of {total} bytes (exit {rc}): {err}"
    # Its copy of the active file lacks the in-use flag the server keeps on disk; sizes must match.
    sizes_ok = all((out / p.name).exists() and (out / p.name).stat().st_size == p.stat().st_size
                   for p in binlog_files(sb))
    if not sizes_ok:
        m.ok = False
        m.note = m.note or "file sizes differ from the primary's"
    return m, redact(cmd, sb, replace={str(out): "OUT"})


def run_binhub(sb: Sandbox, data_dir: Path, total: int, events: int, durability: str) -> tuple[Measured, str]:
    shutil.rmtree(data_dir, ignore_errors=True)
    cmd = [*binhub_command(), "relay", "--source", sb.dsn, "--data-dir", str(data_dir), "--server-id", "9002",
           "--until-caught-up", "--durability", durability, "--log-level", "warning"]
    server = ProcCpu(sb.pid)
    wall, cpu, rc, err = measure(cmd)
    m = Measured(f"binhub-{durability}", wall, cpu, total, events, server_cpu=server.since_start())
    if rc != 0:
        m.ok = False
        m.note = f"exit {rc}: {err}"
    else:
        problems = compare_files(binlog_files(sb), data_dir / "binlog")
        if problems:
            m.ok = False
            m.note = "NOT byte-identical: " + "; ".join(problems[:3])
    return m, redact(cmd, sb, replace={str(data_dir): "STORE"})


def median_run(runs: list[Measured]) -> Measured:
    ok = [r for r in runs if r.ok] or runs
    best = sorted(ok, key=lambda r: r.wall)[len(ok) // 2]
    best.extra["walls"] = [round(r.wall, 3) for r in runs]
    return best


def table(results: dict[str, Measured]) -> list[str]:
    ref = results.get("mariadb-binlog")
    head = ("tool", "wall s", "MB/s", "events/s", "CPU s", "CPU s/GB", "server CPU s", "ratio", "identical")
    rows = [head]
    for name in TOOLS:
        m = results.get(name)
        if m is None:
            continue
        ratio = ref.wall / m.wall if ref and ref.ok and m.ok and m.wall else float("nan")
        ident = "-" if name == "mariadb-binlog" else ("yes" if m.ok else "NO")
        rows.append((name, f"{m.wall:.2f}", f"{m.mb_per_s:,.0f}", f"{m.events_per_s:,.0f}", f"{m.cpu:.2f}",
                     f"{m.cpu_per_gb:.2f}", f"{m.server_cpu:.2f}",
                     "1.00" if name == "mariadb-binlog" else f"{ratio:.2f}", ident))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    lines.insert(1, "| " + " | ".join("-" * w for w in widths) + " |")
    return lines


def write_results(path: Path, results: dict[str, Measured], commands: dict[str, str], facts: dict[str, str],
                  gen: Generated | None, total: int, events: int, files: int, args: argparse.Namespace,
                  fsync_mbs: float) -> None:
    lines = ["# Relay benchmark results", "",
             "Produced by `python bench/relay_bench.py` (see bench/README.md). Ratio = mariadb-binlog wall "
             "time / binhub wall time on the same binlog: above 1.0 binhub is faster. Goals: "
             "≥ 1.0 with `--durability rotate`, ≥ 0.7 with `--durability txn`.", "",
             f"Binlog: {total / MIB:,.0f} MiB in {files} files (256 MiB each), {events:,} events. "
             f"binhub's copies were checked byte-identical to the primary's files."]
    if gen is not None:
        lines.append(f"Generated in {gen.seconds:.0f} s: {gen.small_transactions:,} small OLTP transactions "
                     f"(sysbench-like INSERT/UPDATE/DELETE, some multi-statement), {gen.large_transactions} large "
                     f"batch transactions (INSERT … SELECT / range UPDATE / DELETE of tens of MB), "
                     f"{gen.huge_events} row events above 16 MiB.")
    lines += ["", *table(results), "",
              "wall: from starting the tool to the last byte on disk (binhub: process exit, including "
              "interpreter start-up, the final fsync and state writes; mariadb-binlog: until its files hold "
              "as many bytes as the primary's, polled every 5 ms, then killed). CPU: user+sys of the tool's "
              "process (RUSAGE_CHILDREN). server CPU: the mariadbd process meanwhile (mostly its dump thread). "
              f"Median of {args.repeat} run(s); all walls: "
              + ", ".join(f"{k} {v.extra.get('walls')}" for k, v in results.items()) + ".",
              "",
              f"mariadb-binlog never fsyncs; binhub's `rotate` fsyncs every file when complete and `txn` "
              f"after every group commit. This machine's disk: {fsync_mbs:,.0f} MB/s write+fsync "
              "(256 MiB probe).", "",
              "## Commands", ""]
    for name, cmd in commands.items():
        lines.append(f"- {name}: `{cmd}`")
    lines += ["", "## Machine", ""]
    lines += [f"- {k}: {v}" for k, v in facts.items()]
    lines.append("")
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-gib", type=float, default=1.0, help="binlog size to generate (default 1.0)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per tool; the median is reported (default 1)")
    ap.add_argument("--keep", action="store_true", help="keep the sandbox and the copies afterwards")
    ap.add_argument("--workdir", type=Path, help="work here instead of a temp dir; kept, and its binlog reused")
    ap.add_argument("--tools", default=",".join(TOOLS), help=f"comma-separated subset of {','.join(TOOLS)}")
    ap.add_argument("--results", type=Path, default=RESULTS, help="where to write the markdown report")
    ap.add_argument("--no-results", action="store_true", help="do not write the report")
    args = ap.parse_args(argv)
    tools = [t for t in args.tools.split(",") if t]
    unknown = set(tools) - set(TOOLS)
    if unknown:
        ap.error(f"unknown tools: {', '.join(sorted(unknown))}")
    size = int(args.size_gib * GIB)

    keep = args.keep or args.workdir is not None
    work = args.workdir or Path(tempfile.mkdtemp(prefix="binhub-relay-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    sb: Sandbox | None = None
    try:
        log(f"starting the sandbox primary in {work}")
        sb = start_primary(work / "sandboxes")
        gen: Generated | None = None
        if binlog_total(sb) < size:
            log(f"generating {size / GIB:.2f} GiB of binlog")
            gen = generate_binlog(sb, size, progress=log)
            log(f"generated {gen.bytes / MIB:,.0f} MiB in {gen.seconds:.1f}s ({gen.small_transactions:,} small, "
                f"{gen.large_transactions} large transactions)")
        else:
            log("reusing the binlog already there")
        files = binlog_files(sb)
        total = binlog_total(sb)
        status = master_status(sb)
        events = count_events(files)
        log(f"binlog: {total / MIB:,.0f} MiB, {len(files)} files, {events:,} events, ends at {status[0]}:{status[1]}")

        results: dict[str, Measured] = {}
        commands: dict[str, str] = {}
        runs: dict[str, list[Measured]] = {t: [] for t in tools}
        jobs: dict[str, Callable[[], tuple[Measured, str]]] = {
            "mariadb-binlog": lambda: run_mariadb_binlog(sb, work / "mariadb-binlog-out", total, events,
                                                         files[0].name),
            "binhub-rotate": lambda: run_binhub(sb, work / "store-rotate", total, events, "rotate"),
            "binhub-txn": lambda: run_binhub(sb, work / "store-txn", total, events, "txn"),
        }
        for i in range(args.repeat):
            for tool in tools:
                os.sync()  # start every run with no dirty pages left over from the previous one
                m, cmd = jobs[tool]()
                runs[tool].append(m)
                commands[tool] = cmd
                log(f"run {i + 1}: {tool}: {m.wall:.2f}s wall, {m.cpu:.2f}s CPU, {m.mb_per_s:,.0f} MB/s"
                    + ("" if m.ok else f"  FAILED: {m.note}"))
        for tool in tools:
            results[tool] = median_run(runs[tool])
        if not keep:
            for d in ("mariadb-binlog-out", "store-rotate", "store-txn"):
                shutil.rmtree(work / d, ignore_errors=True)

        print()
        print("\n".join(table(results)))
        bad = [m for m in results.values() if not m.ok]
        for m in bad:
            print(f"{m.name}: {m.note}")
        if not args.no_results:
            fsync_mbs = fsync_throughput(work)
            write_results(args.results, results, commands, machine_facts(sb), gen, total, events, len(files), args,
                          fsync_mbs)
            log(f"wrote {args.results.name}")
        return 1 if bad else 0
    finally:
        if sb is not None and not keep:
            sb.destroy()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
        elif sb is not None:
            log(f"kept {work} (sandbox {sb.name} on port {sb.port}); stop it with Sandbox.destroy or rm -rf")


if __name__ == "__main__":
    sys.exit(main())
