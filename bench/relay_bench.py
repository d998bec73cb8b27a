"""Relay benchmark: binhub relay vs ``mariadb-binlog --raw --stop-never`` on the same binlog.

    python bench/relay_bench.py [--workloads oltp,mixed] [--repeat 5] [--keep] [--workdir DIR]

Two workloads, each on a sandbox MariaDB of its own:

  oltp   at least ``--size-gib`` (1.0) in 256 MiB files: many small OLTP transactions, some large
         batch ones, two events above 16 MiB;
  mixed  at least ``--mixed-mib`` (633) in 64 MiB files: multi-row INSERTs of 50 rows with DECIMAL,
         DATETIME(6), JSON and BLOB columns (row events of up to 8 KiB), periodic UPDATEs and
         DELETEs, an ALTER, one 20 MiB row.

Each is copied ``--repeat`` times by every tool, one after the other within a round (paired,
interleaved: load on the machine hits every tool of a round alike):

  (a) mariadb-binlog --read-from-remote-server --raw --stop-never  (stopped once it holds every byte)
  (b) binhub relay --until-caught-up --durability rotate
  (c) binhub relay --until-caught-up --durability txn

each into a fresh directory. binhub's files must be byte-identical to the primary's, or its figures
are not reported. The ratio of a round is mariadb-binlog's wall / binhub's wall; the report gives
the median of the rounds' ratios, the median run's figures, and writes the relay section of
bench/RESULTS.md. ``--workdir`` keeps the sandboxes there and reuses their binlogs on the next run
(handy while profiling).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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
    generate_mixed_binlog,
    machine_facts,
    mariadb_binlog_command,
    master_status,
    measure,
    redact,
    replace_section,
    start_primary,
)
from binhub.sandbox import Sandbox  # noqa: E402
from binhub.store.durable_position import read_durable  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
SECTION_START = "<!-- relay-bench:start -->"
SECTION_END = "<!-- relay-bench:end -->"
REFERENCE = "mariadb-binlog"
TOOLS = (REFERENCE, "binhub-rotate", "binhub-txn")
GOAL = 1.0  # for both durabilities, on both workloads


@dataclass(frozen=True)
class Workload:
    name: str
    file_size: str  # the primary's max_binlog_size
    generate: Callable[..., Generated]
    describe: Callable[[Generated], str]


WORKLOADS = {
    "oltp": Workload(
        "oltp", "256M", generate_binlog,
        lambda g: (f"{g.small_transactions:,} small OLTP transactions (sysbench-like INSERT/UPDATE/DELETE, some "
                   f"multi-statement), {g.large_transactions} large batch transactions (INSERT … SELECT / range "
                   f"UPDATE / DELETE of tens of MB), {g.huge_events} row events above 16 MiB")),
    "mixed": Workload(
        "mixed", "64M", generate_mixed_binlog,
        lambda g: (f"{g.large_transactions:,} transactions: multi-row INSERTs of 50 rows (DECIMAL, DATETIME(6), "
                   f"JSON, BLOB of 0.2–2.6 KB), a 50-row UPDATE every 10 INSERTs and a 100-row DELETE every 20 "
                   f"(row events of up to 8 KiB); one ALTER TABLE halfway; {g.huge_events} row of 20 MiB")),
}


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


def children_user_sys() -> tuple[float, float]:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime, ru.ru_stime


def timed(m_fn: Callable[[], tuple[float, float, int, str]]) -> tuple[float, float, int, str, float, float]:
    """``measure`` plus the child's user and system CPU seconds apart."""
    u0, s0 = children_user_sys()
    wall, cpu, rc, err = m_fn()
    u1, s1 = children_user_sys()
    return wall, cpu, rc, err, u1 - u0, s1 - s0


def run_mariadb_binlog(sb: Sandbox, out: Path, total: int, events: int, first: str) -> tuple[Measured, str]:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    cmd = mariadb_binlog_command(sb, out, first, server_id=9001)
    server = ProcCpu(sb.pid)
    wall, cpu, rc, err, user, system = timed(lambda: measure(cmd, done=lambda: dir_bytes(out) >= total))
    got = dir_bytes(out)
    m = Measured(REFERENCE, wall, cpu, got, events, server_cpu=server.since_start(),
                 extra={"user": user, "sys": system})
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


class DurableWatch:
    """When binhub's durable marker first says the whole binlog is durable (polled every 2 ms)."""

    def __init__(self, data_dir: Path, end: tuple[str, int]) -> None:
        self.path = data_dir / "durable"
        self.end = end
        self.began = time.perf_counter()
        self.at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            pos = read_durable(self.path)
            if pos is not None and (pos.file, pos.position) >= self.end:
                self.at = time.perf_counter() - self.began
                return
            time.sleep(0.002)

    def stop(self) -> float | None:
        self._stop.set()
        self._thread.join()
        return self.at


def run_binhub(sb: Sandbox, data_dir: Path, total: int, events: int, durability: str,
               end: tuple[str, int]) -> tuple[Measured, str]:
    shutil.rmtree(data_dir, ignore_errors=True)
    cmd = [*binhub_command(), "relay", "--source", sb.dsn, "--data-dir", str(data_dir), "--server-id", "9002",
           "--until-caught-up", "--durability", durability, "--log-level", "warning"]
    server = ProcCpu(sb.pid)
    watch = DurableWatch(data_dir, end)
    wall_exit, cpu, rc, err, user, system = timed(lambda: measure(cmd))
    durable_at = watch.stop()
    # The clock stops when every byte is durable (mariadb-binlog's stops when every byte is written,
    # never fsynced, and it is then killed); the process exit, with the interpreter's teardown, is kept apart.
    wall = durable_at if durable_at is not None else wall_exit
    m = Measured(f"binhub-{durability}", wall, cpu, total, events, server_cpu=server.since_start(),
                 extra={"user": user, "sys": system, "exit": wall_exit})
    if durable_at is None and rc == 0:
        m.ok = False
        m.note = f"the durable marker never reached {end[0]}:{end[1]}"
    if rc != 0:
        m.ok = False
        m.note = f"exit {rc}: {err}"
    else:
        problems = compare_files(binlog_files(sb), data_dir / "binlog")
        if problems:
            m.ok = False
            m.note = "NOT byte-identical: " + "; ".join(problems[:3])
    return m, redact(cmd, sb, replace={str(data_dir): "STORE"})


@dataclass
class Summary:
    """One tool on one workload over every round: the median run and the rounds' paired ratios."""

    median: Measured
    walls: list[float]
    ratios: list[float] = field(default_factory=list)  # per round: reference wall / this wall
    exit_ratios: list[float] = field(default_factory=list)  # per round: reference wall / this process's exit

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios) if self.ratios else float("nan")

    @property
    def exit_ratio(self) -> float:
        return statistics.median(self.exit_ratios) if self.exit_ratios else float("nan")


def summarize(rounds: list[dict[str, Measured]], tools: list[str]) -> dict[str, Summary]:
    out: dict[str, Summary] = {}
    for tool in tools:
        runs = [r[tool] for r in rounds if tool in r]
        ok = [r for r in runs if r.ok] or runs
        median = sorted(ok, key=lambda r: r.wall)[len(ok) // 2]
        paired = [(r[REFERENCE], r[tool]) for r in rounds
                  if REFERENCE in r and tool in r and r[REFERENCE].ok and r[tool].ok and r[tool].wall]
        out[tool] = Summary(median, [round(r.wall, 3) for r in runs], [ref.wall / m.wall for ref, m in paired],
                            [ref.wall / m.extra.get("exit", m.wall) for ref, m in paired])
    return out


def table(results: dict[str, Summary]) -> list[str]:
    head = ("tool", "wall s", "MB/s", "events/s", "CPU s (user+sys)", "CPU s/GB", "server CPU s",
            "ratio (median of rounds)", "ratio range", "exit s", "ratio at exit", "identical")
    rows = [head]
    for name in TOOLS:
        s = results.get(name)
        if s is None:
            continue
        m = s.median
        user, system = m.extra.get("user", 0.0), m.extra.get("sys", 0.0)
        if name == REFERENCE:
            ratio, spread, exit_wall, exit_ratio, ident = "1.00", "-", "-", "-", "-"
        else:
            ratio = f"{s.ratio:.2f}"
            spread = f"{min(s.ratios):.2f}–{max(s.ratios):.2f}" if s.ratios else "-"
            exit_wall, exit_ratio = f"{m.extra.get('exit', m.wall):.2f}", f"{s.exit_ratio:.2f}"
            ident = "yes" if m.ok else "NO"
        rows.append((name, f"{m.wall:.2f}", f"{m.mb_per_s:,.0f}", f"{m.events_per_s:,.0f}",
                     f"{m.cpu:.2f} ({user:.2f}+{system:.2f})", f"{m.cpu_per_gb:.2f}", f"{m.server_cpu:.2f}",
                     ratio, spread, exit_wall, exit_ratio, ident))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    lines.insert(1, "| " + " | ".join("-" * w for w in widths) + " |")
    return lines


@dataclass
class WorkloadRun:
    workload: Workload
    results: dict[str, Summary]
    total: int
    events: int
    files: int
    gen: Generated | None
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    started: str
    commands: dict[str, str]
    server: str


def report(runs: list[WorkloadRun], facts: dict[str, str], args: argparse.Namespace, fsync_mbs: float,
           argv: list[str]) -> list[str]:
    lines = ["# Relay benchmark results", "",
             "Produced by `python bench/relay_bench.py` (see bench/README.md). Ratio = mariadb-binlog wall time / "
             "binhub wall time on the same binlog, paired: each round runs mariadb-binlog, binhub `rotate` and "
             f"binhub `txn` one after the other; the ratio is the median of the {args.repeat} rounds' ratios. Above "
             f"1.0 binhub is faster. Goal: ≥ {GOAL:.1f} on both workloads with both durabilities. binhub's copies "
             "were checked byte-identical to the primary's files in every run."]
    for run in runs:
        w = run.workload
        fmt = lambda x: " / ".join(f"{v:.2f}" for v in x)  # noqa: E731
        lines += ["", f"## Workload `{w.name}`", "",
                  f"Binlog: {run.total / MIB:,.0f} MiB in {run.files} files ({w.file_size}iB each), "
                  f"{run.events:,} events."]
        if run.gen is not None:
            lines.append(f"Generated in {run.gen.seconds:.0f} s: {w.describe(run.gen)}.")
        lines += [f"Runs from {run.started}; load average (1/5/15 min) {fmt(run.load_before)} before, "
                  f"{fmt(run.load_after)} after.", "", *table(run.results), "",
                  "All walls (s): " + "; ".join(f"{k} {v.walls}" for k, v in run.results.items()) + "."]
    lines += ["",
              "wall: from starting the tool (interpreter start-up included) until the copy is complete: for "
              "mariadb-binlog until its files hold as many bytes as the primary's (written, never fsynced; polled "
              "every 5 ms, then it is killed), for binhub until its durable marker says every byte is fsynced "
              "(polled every 2 ms). binhub then exits by itself: exit s is that moment (the interpreter's teardown, "
              "~0.1 s, included) and ratio at exit the rounds' median on it. CPU: user+sys of the tool's process "
              "(RUSAGE_CHILDREN). server CPU: the mariadbd process meanwhile (mostly its dump thread). The "
              "figures of a tool are those of its median run.", "",
              "mariadb-binlog never fsyncs; binhub's `rotate` fsyncs every file when complete and `txn` after "
              f"every group commit. This machine's disk: {fsync_mbs:,.0f} MB/s write+fsync (256 MiB probe).", "",
              "### Commands", "",
              "- the bench: `" + " ".join(["python bench/relay_bench.py", *argv]) + "`"]
    for run in runs[:1]:
        for name, cmd in run.commands.items():
            lines.append(f"- {name}: `{cmd}`")
    lines += ["", "### Machine", ""]
    lines += [f"- {k}: {v}" for k, v in facts.items()]
    lines += [f"- server: MariaDB {runs[0].server}"] if runs else []
    return lines


def shown_args(argv: list[str]) -> list[str]:
    """The bench's own arguments fit for the report: no path of this machine."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] in ("--workdir", "--results"):
            arg = "DIR" if out[-1] == "--workdir" else "FILE"
        elif arg.startswith(("--workdir=", "--results=")):
            arg = arg.split("=", 1)[0] + "=" + ("DIR" if arg.startswith("--workdir") else "FILE")
        out.append(arg)
    return out


def bench_workload(w: Workload, work: Path, size: int, tools: list[str], repeat: int) -> WorkloadRun:
    log(f"[{w.name}] starting the sandbox primary in {work}")
    sb = start_primary(work / "sandboxes", max_binlog_size=w.file_size)
    try:
        gen: Generated | None = None
        if binlog_total(sb) < size:
            log(f"[{w.name}] generating {size / MIB:,.0f} MiB of binlog")
            gen = w.generate(sb, size, progress=log)
            log(f"[{w.name}] generated {gen.bytes / MIB:,.0f} MiB in {gen.seconds:.1f}s")
        else:
            log(f"[{w.name}] reusing the binlog already there")
        files = binlog_files(sb)
        total = binlog_total(sb)
        status = master_status(sb)
        events = count_events(files)
        log(f"[{w.name}] binlog: {total / MIB:,.0f} MiB, {len(files)} files, {events:,} events, "
            f"ends at {status[0]}:{status[1]}")
        jobs: dict[str, Callable[[], tuple[Measured, str]]] = {
            REFERENCE: lambda: run_mariadb_binlog(sb, work / "mariadb-binlog-out", total, events, files[0].name),
            "binhub-rotate": lambda: run_binhub(sb, work / "store-rotate", total, events, "rotate", status),
            "binhub-txn": lambda: run_binhub(sb, work / "store-txn", total, events, "txn", status),
        }
        commands: dict[str, str] = {}
        rounds: list[dict[str, Measured]] = []
        load_before = os.getloadavg()
        started = time.strftime("%H:%M UTC", time.gmtime())
        for i in range(repeat):
            rounds.append({})
            for tool in tools:
                os.sync()  # start every run with no dirty pages left over from the previous one
                m, cmd = jobs[tool]()
                rounds[-1][tool] = m
                commands[tool] = cmd
                ratio = (f", ratio {rounds[-1][REFERENCE].wall / m.wall:.2f}"
                         if tool != REFERENCE and REFERENCE in rounds[-1] and m.ok else "")
                log(f"[{w.name}] round {i + 1}: {tool}: {m.wall:.2f}s wall, {m.cpu:.2f}s CPU "
                    f"(user {m.extra['user']:.2f}), {m.mb_per_s:,.0f} MB/s{ratio}"
                    + ("" if m.ok else f"  FAILED: {m.note}"))
        return WorkloadRun(w, summarize(rounds, tools), total, events, len(files), gen, load_before,
                           os.getloadavg(), started, commands, str(sb.query("SELECT VERSION()")[0][0]))
    finally:
        sb.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", default=",".join(WORKLOADS), help=f"comma-separated subset of {','.join(WORKLOADS)}")
    ap.add_argument("--size-gib", type=float, default=1.0, help="oltp binlog size to generate (default 1.0)")
    ap.add_argument("--mixed-mib", type=float, default=633, help="mixed binlog size to generate (default 633)")
    ap.add_argument("--repeat", type=int, default=5, help="rounds; the median ratio is reported (default 5)")
    ap.add_argument("--keep", action="store_true", help="keep the sandboxes and the copies afterwards")
    ap.add_argument("--workdir", type=Path, help="work here instead of a temp dir; kept, and its binlogs reused")
    ap.add_argument("--tools", default=",".join(TOOLS), help=f"comma-separated subset of {','.join(TOOLS)}")
    ap.add_argument("--results", type=Path, default=RESULTS, help="where to write the markdown report")
    ap.add_argument("--no-results", action="store_true", help="do not write the report")
    args = ap.parse_args(argv)
    tools = [t for t in args.tools.split(",") if t]
    workloads = [w for w in args.workloads.split(",") if w]
    if set(tools) - set(TOOLS):
        ap.error(f"unknown tools: {', '.join(sorted(set(tools) - set(TOOLS)))}")
    if set(workloads) - set(WORKLOADS):
        ap.error(f"unknown workloads: {', '.join(sorted(set(workloads) - set(WORKLOADS)))}")
    sizes = {"oltp": int(args.size_gib * GIB), "mixed": int(args.mixed_mib * MIB)}

    keep = args.keep or args.workdir is not None
    work = args.workdir or Path(tempfile.mkdtemp(prefix="binhub-relay-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    runs: list[WorkloadRun] = []
    try:
        for name in workloads:
            runs.append(bench_workload(WORKLOADS[name], work / name, sizes[name], tools, args.repeat))
            if not keep:
                for d in ("mariadb-binlog-out", "store-rotate", "store-txn"):
                    shutil.rmtree(work / name / d, ignore_errors=True)
        bad = False
        for run in runs:
            print(f"\n{run.workload.name}: {run.total / MIB:,.0f} MiB, {run.files} files, {run.events:,} events")
            print("\n".join(table(run.results)))
            for s in run.results.values():
                if not s.median.ok:
                    bad = True
                    print(f"{s.median.name}: {s.median.note}")
        if not args.no_results:
            facts = machine_facts()
            lines = report(runs, facts, args, fsync_throughput(work), shown_args(argv if argv is not None else sys.argv[1:]))
            replace_section(args.results, SECTION_START, SECTION_END, lines)
            log(f"wrote the relay section of {args.results.name}")
        return 1 if bad else 0
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"kept {work}")


if __name__ == "__main__":
    sys.exit(main())
