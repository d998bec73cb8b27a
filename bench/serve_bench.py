"""Serve benchmarks: ``binhub serve`` vs ``mariadbd`` itself, side by side, on the same binlog.

    python bench/serve_bench.py [--size-gib 1.0] [--ttfe-gib 10.0] [--clients 50] [--only fanout,ttfe,lag]

1. Fan-out: ``--clients`` concurrent ``mariadb-binlog --read-from-remote-server --raw --stop-never``
   read the whole ``--size-gib`` binlog, first from the primary, then from ``binhub serve`` on a
   store relayed from it (``binhub relay --until-caught-up --durability rotate``). Aggregate MB/s,
   ratio binhub/mariadbd, server CPU seconds. A few clients write real files (checked: binhub's
   copies equal mariadbd's, and the primary's closed files); the others write to /dev/null
   symlinks, so 50 GiB of client output never touch the disk; progress is read from /proc/PID/io.
2. Time to first event: the binlog grows to ``--ttfe-gib`` (1 GiB files), the store follows; a
   replica asks for a GTID deep in the last file (``@slave_connect_state``) and the time until the
   first GTID event after it arrives is measured, median of ``--ttfe-runs``, mariadbd vs binhub.
3. Replication lag: a real mariadbd replica through ``binhub run`` (relay + serve, durability txn)
   and one replicating directly from the primary; ``--lag-commits`` single-row commits at
   ``--lag-rate`` per second; for each commit, the time from the primary's commit returning to
   ``MASTER_GTID_WAIT`` returning on each replica (p50/p99).

Prints the figures and writes (or replaces) the "Serve benchmark results" section of
bench/RESULTS.md, leaving the other sections alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    GIB,
    MIB,
    ProcCpu,
    binhub_command,
    binlog_files,
    binlog_total,
    children_cpu,
    compare_files,
    count_events,
    free_port,
    generate_binlog,
    grow_binlog_bulk,
    machine_facts,
    mariadb_binlog_command,
    master_status,
    percentile,
    proc_written,
    redact,
    rss_mib,
    run_threads,
    start_primary,
)
from binhub.binlog.constants import EventType  # noqa: E402
from binhub.errors import EndOfDump  # noqa: E402
from binhub.net.client import UpstreamConnection  # noqa: E402
from binhub.sandbox import Sandbox  # noqa: E402
from binhub.sandbox.binhub_process import BinhubProcess  # noqa: E402
from binhub.serve.keys import self_signed_pair  # noqa: E402
from binhub.wire.compression import Algorithm  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
SECTION_START = "<!-- serve-bench:start -->"
SECTION_END = "<!-- serve-bench:end -->"
VERIFIED_CLIENTS = 3  # clients writing real files, checked byte for byte
SERVE_ID = 9201
BENCHES = ("fanout", "compress", "ttfe", "lag")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run_quiet(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])}… exited {proc.returncode}: {proc.stderr[-2000:]}")
    return proc


def start_serve(data_dir: Path, user: str, password: str, log_path: Path,
                tls: tuple[Path, Path] | None = None, code: Path | None = None) -> BinhubProcess:
    """``binhub serve`` on a store, listening once this returns; stop it with ``.stop()`` (SIGTERM).

    ``code``: run the binhub package of another checkout (a baseline) instead of this one.
    """
    port = free_port()
    tls_args = ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])] if tls else ["--no-tls"]
    return BinhubProcess(["serve", "--data-dir", str(data_dir), "--listen", f"127.0.0.1:{port}", "--user", user,
                          "--password", password, "--server-id", str(SERVE_ID), *tls_args, "--log-level", "warning"],
                         log_path, port=port, env={"PYTHONPATH": str(code)} if code is not None else None).start()


def relay(sb: Sandbox, store: Path, durability: str = "rotate") -> float:
    began = time.perf_counter()
    run_quiet([*binhub_command(), "relay", "--source", sb.dsn, "--data-dir", str(store), "--server-id", "9200",
               "--until-caught-up", "--durability", durability, "--log-level", "warning"], timeout=3600)
    return time.perf_counter() - began


# ----------------------------------------------------------------------------------------- fan-out

@dataclass
class FanoutRun:
    name: str
    wall: float = 0.0
    first_done: float = 0.0
    median_done: float = 0.0
    server_cpu: float = 0.0
    server_rss: float = 0.0  # peak resident MiB during the run (sampled every 0.1 s)
    client_cpu: float = 0.0
    bytes: int = 0
    ok: bool = True
    note: str = ""
    out: Path | None = None

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.wall if self.wall else 0.0


def fanout_run(name: str, sb: Sandbox, port: int, server_pid: int | None, files: list[Path], total: int,
               clients: int, out_root: Path, timeout: float, tls: bool = False) -> tuple[FanoutRun, str]:
    shutil.rmtree(out_root, ignore_errors=True)
    cmds: list[list[str]] = []
    for i in range(clients):
        d = out_root / f"c{i:02d}"
        d.mkdir(parents=True)
        if i >= VERIFIED_CLIENTS:
            for f in files:
                (d / f.name).symlink_to(os.devnull)
        cmd = mariadb_binlog_command(sb, d, files[0].name, server_id=20000 + i)
        cmd = [a if not a.startswith("--port=") else f"--port={port}" for a in cmd]
        # binhub greets with caching_sha2_password, which the MariaDB client completes only over TLS
        # (or RSA): both servers get the same clients, speaking mysql_native_password from the start.
        cmd.insert(1, "--default-auth=mysql_native_password")
        # The client takes TLS whenever the server offers it (10.11's --ssl defaults on); say so either way.
        cmd.insert(1, "--ssl" if tls else "--skip-ssl")
        cmds.append(cmd)
    run = FanoutRun(name, out=out_root)
    server = ProcCpu(server_pid)
    cpu_before = children_cpu()
    began = time.perf_counter()
    procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for c in cmds]
    done_at: dict[int, float] = {}
    rss_sampled = 0.0
    try:
        while len(done_at) < clients:
            now = time.perf_counter()
            if now - rss_sampled >= 0.1:
                rss_sampled = now
                run.server_rss = max(run.server_rss, rss_mib(server_pid))
            if now - began > timeout:
                run.ok = False
                run.note = f"only {len(done_at)} of {clients} clients done after {timeout:g}s"
                break
            for i, p in enumerate(procs):
                if i in done_at:
                    continue
                # wchar counts a TLS client's socket writes too: a client writing real files is done
                # once they are whole, the others (a few hundred bytes early at worst) by the count.
                if proc_written(p.pid) >= total and (i >= VERIFIED_CLIENTS or _whole(out_root / f"c{i:02d}", files)):
                    done_at[i] = now
                    p.kill()
                elif p.poll() is not None:
                    done_at[i] = now
                    run.ok = False
                    err = p.stderr.read().decode(errors="replace") if p.stderr else ""
                    run.note = f"client {i} exited {p.returncode} early: {err.strip()[-300:]}"
            time.sleep(0.005)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            if p.stderr:
                p.stderr.close()
    run.server_cpu = server.since_start()
    run.client_cpu = children_cpu() - cpu_before
    times = sorted(t - began for t in done_at.values())
    run.wall = times[-1] if times else 0.0
    run.first_done = times[0] if times else 0.0
    run.median_done = statistics.median(times) if times else 0.0
    run.bytes = total * len(done_at)
    return run, redact(cmds[0], sb, replace={str(out_root / "c00"): "OUT", str(port): "PORT"})


def _whole(out: Path, files: list[Path]) -> bool:
    """Every file of ``files`` is in ``out`` with its full size."""
    try:
        return all((out / f.name).stat().st_size >= f.stat().st_size for f in files)
    except OSError:
        return False


def check_fanout(ref: FanoutRun, hub: FanoutRun, files: list[Path]) -> None:
    """binhub's clients got what mariadbd's got; the closed files equal the primary's."""
    assert ref.out is not None and hub.out is not None
    problems: list[str] = []
    for i in range(VERIFIED_CLIENTS):
        for run in (ref, hub):
            assert run.out is not None
            problems += [f"{run.name} c{i}: {p}" for p in compare_files(files[:-1], run.out / f"c{i:02d}")]
        problems += [f"binhub c{i} vs mariadbd c0: {p}"
                     for p in compare_files([ref.out / "c00" / f.name for f in files], hub.out / f"c{i:02d}")]
    if problems:
        hub.ok = False
        hub.note = "NOT identical: " + "; ".join(problems[:3])


# ----------------------------------------------------------------------------------------- compressed

def compressed_client(port: int, user: str, password: str, first_file: str, server_id: int,
                      compress: str) -> tuple[int, int]:
    """One replica-like reader (binhub's client) of the whole binlog: (event bytes, bytes on the wire)."""
    async def run() -> tuple[int, int]:
        algorithm: bool | Algorithm = Algorithm(compress) if compress != "none" else False
        conn = await UpstreamConnection.connect("127.0.0.1", port, user, password, compress=algorithm)
        try:
            if compress != "none" and (conn.compression is None or conn.compression.algorithm.value != compress):
                raise RuntimeError(f"asked for {compress}, got {conn.compression}")
            for stmt in ("SET @master_binlog_checksum=@@global.binlog_checksum", "SET @mariadb_slave_capability=4"):
                await conn.execute(stmt)
            await conn.start_binlog_dump(first_file, 4, server_id, flags=1)  # NON_BLOCK: EOF at the end
            nbytes = 0
            with contextlib.suppress(EndOfDump):
                while True:
                    nbytes += sum(len(e) for e in await conn.read_events())
            return nbytes, conn.received_bytes
        finally:
            await conn.close()
    return asyncio.run(run())


@dataclass
class CompressedRun:
    server: str
    compress: str
    wall: float = float("inf")
    event_bytes: int = 0
    wire_bytes: int = 0  # per client
    server_cpu: float = 0.0

    @property
    def mb_per_s(self) -> float:
        return self.event_bytes / 1e6 / self.wall if self.wall else 0.0


def compressed_run(server: str, port: int, pid: int | None, user: str, password: str, first_file: str,
                   compress: str, clients: int) -> CompressedRun:
    run = CompressedRun(server, compress)
    cpu = ProcCpu(pid)
    began = time.perf_counter()
    with ProcessPoolExecutor(clients) as pool:
        results = list(pool.map(compressed_client, *zip(*[(port, user, password, first_file, 31000 + i, compress)
                                                          for i in range(clients)], strict=True)))
    run.wall = time.perf_counter() - began
    run.server_cpu = cpu.since_start()
    run.event_bytes = sum(r[0] for r in results)
    run.wire_bytes = max(r[1] for r in results)
    return run


# ----------------------------------------------------------------------------------------- TTFE

_MARIA_GTID = int(EventType.MARIA_GTID)


async def first_event(port: int, user: str, password: str, gtid: str, server_id: int) -> tuple[float, float, str]:
    """(seconds from connect to the first GTID event, seconds from COM_BINLOG_DUMP to it, that GTID)."""
    began = time.perf_counter()
    conn = await UpstreamConnection.connect("127.0.0.1", port, user, password)
    try:
        for stmt in (f"SET @slave_connect_state='{gtid}'", "SET @mariadb_slave_capability=4",
                     "SET @master_binlog_checksum=@@global.binlog_checksum", "SET @slave_gtid_strict_mode=1"):
            await conn.execute(stmt)
        await conn.register_replica(server_id)
        dumped = time.perf_counter()
        await conn.start_binlog_dump("", 4, server_id)
        while True:
            for ev in await conn.read_events():
                if ev[4] == _MARIA_GTID and not (int.from_bytes(ev[17:19], "little") & 0x20):  # not artificial
                    end = time.perf_counter()
                    seq = int.from_bytes(ev[19:27], "little")
                    domain = int.from_bytes(ev[27:31], "little")
                    server = int.from_bytes(ev[5:9], "little")
                    return end - began, end - dumped, f"{domain}-{server}-{seq}"
    finally:
        with contextlib.suppress(Exception):
            await conn.close()


@dataclass
class Ttfe:
    name: str
    totals: list[float] = field(default_factory=list)
    dumps: list[float] = field(default_factory=list)
    got: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.totals) if self.totals else float("nan")


# ----------------------------------------------------------------------------------------- lag

@dataclass
class Lag:
    name: str
    lags: list[float] = field(default_factory=list)
    timeouts: int = 0

    def p(self, q: float) -> float:
        return percentile(self.lags, q) * 1000


def measure_lag(primary: Sandbox, replicas: dict[str, Sandbox], commits: int, rate: float,
                domain_server: str, first_seq: int) -> dict[str, Lag]:
    """Commit ``commits`` single-row transactions at ``rate``/s; per replica, when each was applied."""
    committed = [0.0] * commits
    seen: dict[str, list[float]] = {name: [0.0] * commits for name in replicas}
    results = {name: Lag(name) for name in replicas}
    ready = threading.Barrier(len(replicas) + 1)

    def waiter(name: str, sb: Sandbox) -> None:
        conn = sb.connect()
        try:
            with conn.cursor() as cur:
                ready.wait()
                for i in range(commits):
                    cur.execute(f"SELECT MASTER_GTID_WAIT('{domain_server}-{first_seq + i}', 10)")
                    seen[name][i] = time.perf_counter()
                    if cur.fetchone()[0] != 0:
                        results[name].timeouts += 1
        finally:
            conn.close()

    threads = [threading.Thread(target=waiter, args=(n, sb), daemon=True) for n, sb in replicas.items()]
    for t in threads:
        t.start()
    conn = primary.connect(database="lagbench")
    try:
        with conn.cursor() as cur:
            ready.wait()
            period = 1.0 / rate
            start = time.perf_counter() + 0.05
            for i in range(commits):
                delay = start + i * period - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                cur.execute("INSERT INTO hb (id, ts) VALUES (%s, NOW(6))", (i,))
                committed[i] = time.perf_counter()
    finally:
        conn.close()
    for t in threads:
        t.join(timeout=60)
    for name in replicas:
        results[name].lags = [s - c for s, c in zip(seen[name], committed, strict=True)]
    return results


def fill_small(sb: Sandbox, nbytes: int, connections: int = 2) -> None:
    """Small OLTP transactions (``bench.oltp``, made by generate_binlog) until the current file holds ``nbytes``."""
    def worker() -> None:
        conn = sb.connect()
        try:
            with conn.cursor() as cur:
                while master_status(sb)[1] < nbytes:
                    cur.execute("CALL bench.oltp(2000)")
        finally:
            conn.close()

    run_threads([worker] * connections, [])


def binhub_run_config(dir_: Path, sb: Sandbox, start_gtid: str, port: int, user: str, password: str) -> Path:
    users = dir_ / "users.toml"
    run_quiet([*binhub_command(), "user", "add", "--users", str(users), user, "--password", password], timeout=60)
    config = dir_ / "binhub.toml"
    config.write_text(f"""
[store]
data_dir = "{dir_ / 'store'}"
durability = "txn"

[relay]
source = "{sb.dsn}"
server_id = 9300
start_gtid = "{start_gtid}"

[serve]
enabled = true
listen = "127.0.0.1:{port}"
users_file = "{users}"
server_id = {SERVE_ID}

[http]
enabled = false

[log]
level = "warning"
""")
    return config


def point_replica(replica: Sandbox, port: int, user: str, password: str, gtid: str) -> None:
    for stmt in ("STOP SLAVE", "RESET SLAVE ALL", f"SET GLOBAL gtid_slave_pos = '{gtid}'",
                 f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={port}, MASTER_USER='{user}', "
                 f"MASTER_PASSWORD='{password}', MASTER_CONNECT_RETRY=1, MASTER_USE_GTID=slave_pos",
                 "START SLAVE"):
        replica.query(stmt)


def wait_binhub_has(port: int, user: str, password: str, gtid: str, timeout: float = 900.0) -> None:
    async def pos() -> str:
        conn = await UpstreamConnection.connect("127.0.0.1", port, user, password)
        try:
            rows = (await conn.query("SELECT @@gtid_binlog_pos")).rows
            return str(rows[0][0]) if rows else ""
        finally:
            await conn.close()

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if asyncio.run(pos()) == gtid:
                return
        time.sleep(0.1)
    raise TimeoutError(f"binhub did not reach {gtid} within {timeout:g}s")


def wait_gtid(replica: Sandbox, gtid: str, timeout: int = 60) -> None:
    got = replica.query(f"SELECT MASTER_GTID_WAIT('{gtid}', {timeout})")[0][0]
    if got != 0:
        status = replica.query("SHOW SLAVE STATUS")
        raise RuntimeError(f"replica {replica.name} did not reach {gtid}: {status}")


# ----------------------------------------------------------------------------------------- report

def table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    lines.insert(1, "| " + " | ".join("-" * w for w in widths) + " |")
    return lines


def write_section(path: Path, body: list[str]) -> None:
    """Replace this bench's section of ``path`` (or append it), leaving every other line alone."""
    text = path.read_text() if path.exists() else ""
    section = "\n".join([SECTION_START, *body, SECTION_END])
    if SECTION_START in text and SECTION_END in text:
        head, rest = text.split(SECTION_START, 1)
        tail = rest.split(SECTION_END, 1)[1]
        text = head + section + tail
    else:
        text = text.rstrip("\n") + ("\n\n" if text.strip() else "") + section + "\n"
    path.write_text(text)


# ----------------------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:  # noqa: C901 - one linear script
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-gib", type=float, default=1.0, help="fan-out binlog size (default 1.0)")
    ap.add_argument("--clients", type=int, default=50, help="fan-out clients (default 50)")
    ap.add_argument("--fanout-timeout", type=float, default=600.0, help="give up a fan-out run after this")
    ap.add_argument("--fanout-runs", type=int, default=2, help="paired fan-out runs; the best of each is kept")
    ap.add_argument("--baseline", type=Path, metavar="DIR",
                    help="fan-out: also run `binhub serve` from this checkout (e.g. main), in the same rounds")
    ap.add_argument("--compress-clients", type=int, default=4,
                    help="compressed bench: concurrent readers (binhub's Python client, so few)")
    ap.add_argument("--tls", action="store_true",
                    help="fan-out over TLS: mariadbd and binhub get the same certificate, the clients --ssl")
    ap.add_argument("--ttfe-gib", type=float, default=10.0, help="binlog size for time to first event (default 10)")
    ap.add_argument("--tail-mib", type=int, default=512,
                    help="small transactions in the last file before the requested GTID (default 512)")
    ap.add_argument("--ttfe-runs", type=int, default=7, help="runs per server; the median is reported")
    ap.add_argument("--lag-commits", type=int, default=2000)
    ap.add_argument("--lag-rate", type=float, default=100.0, help="commits per second (default 100)")
    ap.add_argument("--only", default=",".join(BENCHES), help=f"comma-separated subset of {','.join(BENCHES)}")
    ap.add_argument("--workdir", type=Path, help="work here instead of a temp dir (kept)")
    ap.add_argument("--keep", action="store_true", help="keep the sandboxes and stores afterwards")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--no-results", action="store_true", help="only print")
    args = ap.parse_args(argv)
    only = [b for b in args.only.split(",") if b]
    if set(only) - set(BENCHES):
        ap.error(f"unknown benches: {set(only) - set(BENCHES)}")
    keep = args.keep or args.workdir is not None
    work = args.workdir or Path(tempfile.mkdtemp(prefix="binhub-serve-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    started: list[Sandbox] = []
    serves: list[BinhubProcess] = []
    daemon: BinhubProcess | None = None
    report: list[str] = ["# Serve benchmark results", "",
                         "Produced by `python bench/serve_bench.py` (see bench/README.md): binhub and the "
                         "reference (`mariadbd` itself) one after the other on the same binlog, same clients.", ""]
    commands: dict[str, str] = {}
    failed = False
    try:
        tls_pair = self_signed_pair(work / "tls") if args.tls else None
        log(f"starting the sandbox primary in {work}")
        sb = start_primary(work / "sandboxes", extra_args=[f"--ssl-cert={tls_pair[0]}", f"--ssl-key={tls_pair[1]}"]
                           if tls_pair else ())
        started.append(sb)
        user, password = sb.repl_user, sb.repl_password
        store = work / "store"

        size = int(args.size_gib * GIB)
        if {"fanout", "compress", "ttfe"} & set(only) and binlog_total(sb) < size:
            log(f"generating {size / GIB:.2f} GiB of binlog (mixed workload)")
            gen = generate_binlog(sb, size, progress=log)
            log(f"generated {gen.bytes / MIB:,.0f} MiB in {gen.seconds:.0f}s")

        if "fanout" in only:
            sb.query("FLUSH BINARY LOGS")  # every byte to copy sits in closed files but a tiny active one
            time.sleep(1.0)
            files, total = binlog_files(sb), binlog_total(sb)
            events = count_events(files)
            log(f"fan-out binlog: {total / MIB:,.0f} MiB in {len(files)} files, {events:,} events")
            relay_s = relay(sb, store)
            log(f"relayed into the store in {relay_s:.1f}s")
            os.sync()
            srv = start_serve(store, user, password, work / "serve.log", tls=tls_pair)
            serves.append(srv)
            commands["binhub serve"] = redact([os.path.basename(srv.command[0]), *srv.command[1:]], sb,
                                              replace={str(store): "STORE", str(srv.port): "PORT",
                                                       str(work / "tls"): "TLS"})
            # Paired runs, mariadbd then binhub, best of --fanout-runs: load from other work on the
            # machine hits both alike, and the best run of each is the least disturbed.
            base_srv = start_serve(store, user, password, work / "serve-baseline.log", tls=tls_pair,
                                   code=args.baseline) if args.baseline else None
            if base_srv is not None:
                serves.append(base_srv)
            ref = hub = base = None
            loads: list[float] = []
            for i in range(args.fanout_runs):
                loads.append(os.getloadavg()[0])
                r, cmd = fanout_run("mariadbd", sb, sb.port, sb.pid, files, total, args.clients,
                                    work / "fanout-ref", args.fanout_timeout, tls=tls_pair is not None)
                commands["fan-out client"] = cmd
                log(f"run {i + 1}: mariadbd {r.wall:.1f}s, {r.mb_per_s:,.0f} MB/s, server CPU {r.server_cpu:.1f}s "
                    f"{'' if r.ok else r.note}")
                h, _ = fanout_run("binhub", sb, srv.port, srv.pid, files, total, args.clients,
                                  work / "fanout-hub", args.fanout_timeout, tls=tls_pair is not None)
                if r.ok and h.ok:
                    check_fanout(r, h, files)  # before the next run reuses the output directories
                log(f"run {i + 1}: binhub {h.wall:.1f}s, {h.mb_per_s:,.0f} MB/s, server CPU {h.server_cpu:.1f}s "
                    f"{'' if h.ok else h.note}")
                if base_srv is not None:
                    b, _ = fanout_run("baseline", sb, base_srv.port, base_srv.pid, files, total, args.clients,
                                      work / "fanout-base", args.fanout_timeout, tls=tls_pair is not None)
                    log(f"run {i + 1}: baseline binhub {b.wall:.1f}s, {b.mb_per_s:,.0f} MB/s, "
                        f"server CPU {b.server_cpu:.1f}s")
                    if base is None or (b.ok and b.mb_per_s > base.mb_per_s) or not base.ok:
                        base = b
                if ref is None or (r.ok and r.mb_per_s > ref.mb_per_s) or not ref.ok:
                    ref = r
                if hub is None or (h.ok and h.mb_per_s > hub.mb_per_s) or not hub.ok:
                    hub = h
            assert ref is not None and hub is not None
            for done in (srv, base_srv):
                if done is not None:
                    done.stop()
                    serves.remove(done)
            shutil.rmtree(work / "fanout-ref", ignore_errors=True)
            shutil.rmtree(work / "fanout-hub", ignore_errors=True)
            failed |= not (ref.ok and hub.ok)
            ratio = hub.mb_per_s / ref.mb_per_s if ref.mb_per_s and hub.ok else float("nan")
            rows: list[tuple[str, ...]] = [("server", "wall s (last client)", "first / median client s",
                                            "aggregate MB/s", "server CPU s", "server CPU s/GB sent",
                                            "server peak RSS MiB", "clients CPU s", "ratio", "identical")]
            for r in (ref, hub, *([base] if base is not None else [])):
                rows.append((r.name, f"{r.wall:.2f}", f"{r.first_done:.2f} / {r.median_done:.2f}",
                             f"{r.mb_per_s:,.0f}", f"{r.server_cpu:.2f}", f"{r.server_cpu / (r.bytes / 1e9):.2f}"
                             if r.bytes else "-", f"{r.server_rss:,.0f}", f"{r.client_cpu:.1f}",
                             "1.00" if r is ref else f"{ratio:.2f}" if r is hub else
                             f"{r.mb_per_s / ref.mb_per_s if ref.mb_per_s else float('nan'):.2f}",
                             "-" if r is not hub else ("yes" if r.ok else "NO")))
            print("\n".join(table(rows)))
            over = "over TLS (both servers given the same certificate, clients `--ssl`)" if tls_pair else \
                "over plain TCP (clients `--skip-ssl`)"
            report += [f"## Fan-out: {args.clients} `mariadb-binlog --raw` clients, "
                       f"{'TLS' if tls_pair else 'plain TCP'}", "",
                       f"{args.clients} concurrent `mariadb-binlog --read-from-remote-server --raw --stop-never` "
                       f"clients {over}, best of {args.fanout_runs} paired runs (load average 1 min before "
                       f"each: {', '.join(f'{x:.1f}' for x in loads)}), "
                       f"(distinct server ids) each read the whole binlog: {total / MIB:,.0f} MiB in "
                       f"{len(files)} files, {events:,} events (the relay bench's mixed workload), first from "
                       "`mariadbd`, then from `binhub serve` on a store relayed from it "
                       "(`binhub relay --until-caught-up --durability rotate`). Goal: ratio ≥ 1.0.", "",
                       *table(rows), "",
                       "wall: from starting the clients to the last one holding every byte (progress read from "
                       "/proc/PID/io every 5 ms; each client is killed once done). aggregate MB/s: clients × "
                       "binlog bytes / wall. ratio: binhub aggregate MB/s / mariadbd's. server CPU: user+sys of "
                       "the mariadbd process, resp. the `binhub serve` process, during the run. server peak RSS: the largest resident size "
                       "sampled every 0.1 s during the run (mariadbd's includes its buffer pool). "
                       f"{VERIFIED_CLIENTS} clients write real files (binhub's equal mariadbd's byte for byte, and "
                       f"the closed files equal the primary's: "
                       f"{'checked, identical' if hub.ok else 'NOT identical: ' + hub.note}); the others write "
                       "into /dev/null symlinks in their own directory, so 50 GiB of client output never hit "
                       "the disk (it is the same for both servers). The 2 cores are shared by the server and "
                       "the 50 clients, so the clients' CPU bounds both runs.", ""]

        if "compress" in only:
            sb.query("FLUSH BINARY LOGS")
            time.sleep(1.0)
            files, total = binlog_files(sb), binlog_total(sb)
            relay(sb, store)
            srv = start_serve(store, user, password, work / "serve.log")
            serves.append(srv)
            modes = [("mariadbd", sb.port, sb.pid, "none"), ("binhub", srv.port, srv.pid, "none"),
                     ("mariadbd", sb.port, sb.pid, "zlib"), ("binhub", srv.port, srv.pid, "zlib"),
                     ("binhub", srv.port, srv.pid, "zstd")]
            best: dict[tuple[str, str], CompressedRun] = {}
            loads = []
            for i in range(args.fanout_runs):
                loads.append(os.getloadavg()[0])
                for name, port, pid, mode in modes:
                    cr = compressed_run(name, port, pid, user, password, files[0].name, mode, args.compress_clients)
                    log(f"run {i + 1}: {name} {mode}: {cr.wall:.1f}s, {cr.mb_per_s:,.0f} MB/s, "
                        f"{cr.wire_bytes / MIB:,.1f} MiB on the wire per client")
                    reference = best.get(("mariadbd", "none"), cr).event_bytes
                    if cr.event_bytes != reference:  # every reader gets every event, whatever the mode
                        failed = True
                        log(f"  {cr.event_bytes:,} event bytes, mariadbd's plain readers got {reference:,}")
                    key = (name, mode)
                    if key not in best or cr.mb_per_s > best[key].mb_per_s:
                        best[key] = cr
            srv.stop()
            serves.remove(srv)
            plain_wire = {name: best[(name, "none")].wire_bytes for name in ("mariadbd", "binhub")}
            crows: list[tuple[str, ...]] = [("server", "compression", "wall s", "aggregate MB/s", "MiB on the wire per client",
                     "wire / uncompressed", "server CPU s")]
            for (name, mode), cr in best.items():
                crows.append((name, mode, f"{cr.wall:.2f}", f"{cr.mb_per_s:,.0f}", f"{cr.wire_bytes / MIB:,.1f}",
                             f"{cr.wire_bytes / plain_wire[name]:.2f}", f"{cr.server_cpu:.2f}"))
            print("\n".join(table(crows)))
            report += ["## Compressed protocol: replicas reading the whole binlog", "",
                       f"{args.compress_clients} concurrent readers (binhub's own `UpstreamConnection`, "
                       f"`compress=zlib|zstd`, as a replica with `slave_compressed_protocol=ON` or "
                       f"`source_compression_algorithms`) each dump the whole binlog ({total / MIB:,.0f} MiB in "
                       f"{len(files)} files, the mixed workload) with NON_BLOCK, from mariadbd and from "
                       f"`binhub serve`; best of {args.fanout_runs} rounds (load average 1 min before each: "
                       f"{', '.join(f'{x:.1f}' for x in loads)}). mariadbd 10.11 has zlib only. MiB on the wire: "
                       "what one reader received (compressed packets and headers); MB/s counts event bytes. "
                       "The readers are Python and share the 2 cores, so they bound MB/s for both servers.", "",
                       *table(crows), ""]

        if "ttfe" in only:
            ttfe_size = int(args.ttfe_gib * GIB)
            sb.query(f"SET GLOBAL max_binlog_size = {GIB}")
            sb.query("FLUSH BINARY LOGS")
            disk_free = shutil.disk_usage(work).free
            need = 2.2 * max(0, ttfe_size - binlog_total(sb)) + 4 * GIB
            if disk_free < need:
                ttfe_size = int(binlog_total(sb) + (disk_free - 4 * GIB) / 2.2)
                log(f"disk: {disk_free / GIB:.0f} GiB free; growing only to {ttfe_size / GIB:.1f} GiB")
            log(f"growing the binlog to {ttfe_size / GIB:.1f} GiB (1 GiB files)")
            grow_s = grow_binlog_bulk(sb, ttfe_size - args.tail_mib * MIB, progress=log)
            # The last file: the mixed workload's small transactions (what a busy primary writes), with
            # the requested GTID args.tail_mib into it; mariadbd reads that file from its start up to it.
            sb.query("FLUSH BINARY LOGS")
            tail_began = time.perf_counter()
            fill_small(sb, args.tail_mib * MIB)
            log(f"wrote {args.tail_mib} MiB of small transactions in {time.perf_counter() - tail_began:.0f}s")
            want_gtid = str(sb.query("SELECT @@gtid_binlog_pos")[0][0])
            file, pos = master_status(sb)
            sb.query("CREATE TABLE IF NOT EXISTS bench.tail (id INT PRIMARY KEY)")
            for i in range(100):
                sb.query(f"INSERT INTO bench.tail VALUES ({i})")
            time.sleep(1.0)
            files, total = binlog_files(sb), binlog_total(sb)
            log(f"binlog: {total / GIB:.2f} GiB in {len(files)} files (grown in {grow_s:.0f}s); requested GTID "
                f"{want_gtid} ends at {file}:{pos:,}")
            relay_s = relay(sb, store)
            log(f"store caught up in {relay_s:.1f}s")
            srv = start_serve(store, user, password, work / "serve.log")
            serves.append(srv)
            ref_t, hub_t = Ttfe("mariadbd"), Ttfe("binhub")
            for i in range(args.ttfe_runs):
                for t, port in ((ref_t, sb.port), (hub_t, srv.port)):
                    total_s, dump_s, got = asyncio.run(first_event(port, user, password, want_gtid, 30000 + i))
                    t.totals.append(total_s)
                    t.dumps.append(dump_s)
                    t.got = got
            srv.stop()
            serves.remove(srv)
            seq = int(want_gtid.split("-")[-1])
            expected = "-".join(want_gtid.split("-")[:2] + [str(seq + 1)])
            rows = [("server", "median ms", "min ms", "max ms", "dump → event median ms", "first GTID")]
            for t in (ref_t, hub_t):
                rows.append((t.name, f"{t.median * 1000:.1f}", f"{min(t.totals) * 1000:.1f}",
                             f"{max(t.totals) * 1000:.1f}", f"{statistics.median(t.dumps) * 1000:.1f}",
                             t.got + ("" if t.got == expected else f" (expected {expected}!)")))
                failed |= t.got != expected
            print("\n".join(table(rows)))
            store_bytes = sum(p.stat().st_size for p in (store / "binlog").glob("*") if p.is_file())
            report += ["## Time to first event, GTID near the end of a large store", "",
                       f"Binlog: {total / GIB:.2f} GiB in {len(files)} files (`max_binlog_size=1G`; the fan-out "
                       f"binlog, then large `INSERT … SELECT` / `DELETE` batches, then a last file of the "
                       f"mixed workload's small transactions), relayed into binhub's store "
                       f"({store_bytes / GIB:.2f} GiB). A client (binhub's `UpstreamConnection`) connects, sets "
                       f"`@slave_connect_state='{want_gtid}'` (its transaction ends at {file}:{pos:,}, i.e. "
                       f"{pos / MIB:,.0f} MiB into the last file), `@mariadb_slave_capability=4`, "
                       "`@master_binlog_checksum`, `@slave_gtid_strict_mode=1`, sends COM_REGISTER_SLAVE and "
                       "COM_BINLOG_DUMP and waits for the first non-artificial GTID event (the next transaction). "
                       f"Time from connect to that event; median of {args.ttfe_runs} runs per server, alternating; "
                       "files in the page cache for both. Goal: binhub < 50 ms.", "", *table(rows), "",
                       "mariadbd 10.11 finds the file from the GTID_LIST at each file's head and then reads the "
                       "file from its start up to the GTID; binhub jumps there with its GTID index.", ""]

        if "lag" in only:
            rep_direct = start_primary(work / "sandboxes", name="replica-direct", server_id=11)
            started.append(rep_direct)
            rep_hub = start_primary(work / "sandboxes", name="replica-binhub", server_id=12)
            started.append(rep_hub)
            sb.query("CREATE DATABASE IF NOT EXISTS lagprep")  # a fresh primary has no GTID position yet
            pos_now = str(sb.query("SELECT @@gtid_binlog_pos")[0][0])
            port = free_port()
            hubdir = work / "lag-hub"
            shutil.rmtree(hubdir, ignore_errors=True)
            hubdir.mkdir()
            config = binhub_run_config(hubdir, sb, pos_now, port, user, password)
            daemon = BinhubProcess(["run", "--config", str(config)], hubdir / "run.log", port=port).start()
            run_cmd = daemon.command
            commands["binhub run"] = redact([os.path.basename(run_cmd[0]), *run_cmd[1:]], sb,
                                            replace={str(config): "binhub.toml"})
            wait_binhub_has(port, user, password, pos_now)  # a GTID the store lacks yet is refused (1236)
            point_replica(rep_direct, sb.port, user, password, pos_now)
            point_replica(rep_hub, port, user, password, pos_now)
            for stmt in ("CREATE DATABASE IF NOT EXISTS lagbench",
                         "CREATE TABLE lagbench.hb (id INT PRIMARY KEY, ts DATETIME(6) NOT NULL)"):
                sb.query(stmt)
            for i in range(50):  # warm-up
                sb.query(f"INSERT INTO lagbench.hb VALUES ({-1 - i}, NOW(6))")
            last = str(sb.query("SELECT @@gtid_binlog_pos")[0][0])
            for rep in (rep_direct, rep_hub):
                wait_gtid(rep, last)
            dom, srv_id, seq_s = last.split(",")[0].split("-")
            log(f"lag: {args.lag_commits} commits at {args.lag_rate:g}/s, replicas caught up at {last}")
            lags = measure_lag(sb, {"direct": rep_direct, "through binhub": rep_hub}, args.lag_commits,
                               args.lag_rate, f"{dom}-{srv_id}", int(seq_s) + 1)
            checks = []
            for rep in (rep_direct, rep_hub):
                n = rep.query("SELECT COUNT(*) FROM lagbench.hb")[0][0]
                errs = rep.query("SHOW SLAVE STATUS")
                checks.append(f"{rep.name}: {n} rows")
                if n != args.lag_commits + 50 or not errs:
                    failed = True
            direct, through = lags["direct"], lags["through binhub"]
            rows = [("replica", "p50 ms", "p90 ms", "p99 ms", "max ms", "timeouts")]
            for lg in (direct, through):
                rows.append((lg.name, f"{lg.p(0.5):.2f}", f"{lg.p(0.9):.2f}", f"{lg.p(0.99):.2f}",
                             f"{lg.p(1.0):.2f}", str(lg.timeouts)))
            added = through.p(0.99) - direct.p(0.99)
            rows.append(("binhub adds", f"{through.p(0.5) - direct.p(0.5):.2f}",
                         f"{through.p(0.9) - direct.p(0.9):.2f}", f"{added:.2f}", "", ""))
            print("\n".join(table(rows)))
            report += ["## Replication lag through binhub", "",
                       f"A real mariadbd replica through `binhub run` (relay + serve in one process, "
                       f"`durability = \"txn\"`: fsync after every group commit) and one replicating directly from "
                       f"the primary, both `MASTER_USE_GTID=slave_pos`, in the same run. {args.lag_commits:,} "
                       f"single-row autocommit INSERTs at a steady {args.lag_rate:g}/s (after 50 warm-up commits). "
                       "Lag of a commit: from the primary's COMMIT returning to the client to `MASTER_GTID_WAIT` "
                       "of its GTID returning on the replica (applied by the SQL thread); one waiting thread per "
                       "replica, `time.perf_counter` in one process. Goal: binhub adds < 5 ms at p99.", "",
                       *table(rows), "", "Check: " + ", ".join(checks) + ".", ""]

        if not args.no_results:
            sync_binlog = "sync_binlog=0, innodb_flush_log_at_trx_commit=0"
            report += ["## Commands", "", "    .venv/bin/python bench/serve_bench.py " + " ".join(
                a for a in (argv if argv is not None else sys.argv[1:]) if not a.startswith("/")), ""]
            report += [f"- {k}: `{v}`" for k, v in commands.items()]
            report += ["", f"Primary: sandbox MariaDB with {sync_binlog} (bench generation settings); "
                       "replicas the same.", "", "## Machine", ""]
            report += [f"- {k}: {v}" for k, v in machine_facts(sb).items()]
            report += [f"- disk free when written: {shutil.disk_usage(work).free / GIB:.0f} GiB"]
            write_section(args.results, report)
            log(f"wrote the serve section of {args.results.name}")
        return 1 if failed else 0
    finally:
        for srv_left in serves:
            srv_left.stop()
        if daemon is not None:
            daemon.stop()
        if not keep:
            for s in started:
                with contextlib.suppress(Exception):
                    s.destroy()
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"kept {work}")


if __name__ == "__main__":
    sys.exit(main())
