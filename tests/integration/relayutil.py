"""Running ``binhub relay`` and ``binhub serve`` as users do (child processes, see
:class:`binhub.sandbox.binhub_process.BinhubProcess`) and checking a store against its primary."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from binhub.sandbox import Sandbox
from binhub.sandbox.binhub_process import BinhubProcess, binhub_command
from binhub.sandbox.process import free_port
from binhub.store import StoreReader
from binhub.store.catalog import verify_files
from tests.integration.workload import wait_until

BINHUB = binhub_command()


def relay_args(source: str, data_dir: Path, *extra: str) -> list[str]:
    return ["relay", "--source", source, "--data-dir", str(data_dir), *extra]


def run_relay(source: str, data_dir: Path, *extra: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``binhub relay ... --until-caught-up``: returns the finished process (exit code, stderr)."""
    return subprocess.run([*BINHUB, *relay_args(source, data_dir, "--until-caught-up", *extra)],
                          capture_output=True, text=True, timeout=timeout)


def start_relay(source: str, data_dir: Path, *extra: str, log: Path | None = None) -> BinhubProcess:
    """A long-running relay (no --until-caught-up); stop it with :func:`stop_relay` or kill it."""
    log = log or data_dir.parent / f"{data_dir.name}-relay.log"
    return BinhubProcess(relay_args(source, data_dir, *extra), log).start()


def stop_relay(proc: BinhubProcess, timeout: float = 30) -> int:
    """SIGTERM, and the exit code (a relay that does not stop in ``timeout`` fails the test)."""
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=timeout)


def start_serve(data_dir: Path, log: Path, *, user: str, password: str, server_id: int, port: int | None = None,
                extra: tuple[str, ...] = ("--no-tls",)) -> BinhubProcess:
    """``binhub serve`` on ``data_dir`` (plain TCP unless ``extra`` says otherwise), listening once this returns."""
    port = port or free_port()
    return BinhubProcess(["serve", "--data-dir", str(data_dir), "--listen", f"127.0.0.1:{port}", "--user", user,
                          "--password", password, "--server-id", str(server_id), *extra], log, port=port).start()


def same_bytes(a: Path, b: Path) -> bool:
    return a.stat().st_size == b.stat().st_size and a.read_bytes() == b.read_bytes()


def stored_files(data_dir: Path) -> list[Path]:
    store = StoreReader.open(data_dir)
    return [store.file_path(n) for n in store.files]


def assert_store_matches(data_dir: Path, primary: Sandbox, *, from_file: str | None = None,
                         through_active: bool = True) -> list[Path]:
    """Every stored file equals the primary's byte for byte (the active one too, in-use flag and all),
    every CRC is valid, and the store holds every primary file from ``from_file`` on."""
    files = stored_files(data_dir)
    assert files, f"the store {data_dir} holds no files"
    primary_names = [p.name for p in primary.binlog_files()]
    first = from_file or primary_names[0]
    expected = primary_names[primary_names.index(first):]
    if not through_active:
        expected = expected[:-1]
    names = [p.name for p in files]
    assert names[: len(expected)] == expected, f"stored {names}, primary has {expected}"
    for path in files:
        theirs = primary.binlog_dir / path.name
        if path.name == expected[-1] and not through_active:
            continue
        assert same_bytes(path, theirs), _first_difference(path, theirs)
    report = verify_files(files)
    assert report.ok, report.problems
    return files


def _first_difference(a: Path, b: Path) -> str:
    x, y = a.read_bytes(), b.read_bytes()
    for i, (p, q) in enumerate(zip(x, y, strict=False)):
        if p != q:
            return f"{a.name} differs from the primary's at byte {i} (sizes {len(x)} vs {len(y)})"
    return f"{a.name}: sizes differ ({len(x)} stored vs {len(y)} on the primary)"


def mariadb_binlog_reads(path: Path) -> subprocess.CompletedProcess[str]:
    """The independent decoder: mariadb-binlog -v over a stored file."""
    return subprocess.run(["mariadb-binlog", "--base64-output=decode-rows", "-v", str(path)],
                          capture_output=True, text=True, errors="replace", timeout=120)


def env_without_ci() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "CI"}


def wait_binlog_settled(server: Sandbox, timeout: float = 30.0) -> None:
    """Wait until MariaDB has written the binlog checkpoint of its active file into that file.

    After a rotation (FLUSH BINARY LOGS, a restart) the server appends a BINLOG_CHECKPOINT event to
    the new file asynchronously, once the previous file's commits are durable in InnoDB. A copy
    taken before it is a true prefix, but compares unequal with the server's file a moment later.
    """
    conn = server.connect()
    try:
        def settled() -> bool:
            with conn.cursor() as cur:
                cur.execute("SHOW MASTER STATUS")
                active = str(cur.fetchone()[0])
                # Under load the checkpoint can land after many transactions: look at the whole file
                # (test files are a few MB).
                cur.execute(f"SHOW BINLOG EVENTS IN '{active}'")
                return any(str(r[2]) == "Binlog_checkpoint" and f"{active}" in str(r[5]) for r in cur.fetchall())

        wait_until(settled, timeout=timeout, message=f"no binlog checkpoint in {server.name}'s active file")
    finally:
        conn.close()
