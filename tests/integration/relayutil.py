"""Running ``binhub relay`` as users do (a subprocess) and checking a store against its primary."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from binhub.sandbox import Sandbox
from binhub.store import StoreReader
from binhub.store.catalog import verify_files

BINHUB = [sys.executable, "-m", "binhub"]


def relay_args(source: str, data_dir: Path, *extra: str) -> list[str]:
    return [*BINHUB, "relay", "--source", source, "--data-dir", str(data_dir), *extra]


def run_relay(source: str, data_dir: Path, *extra: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``binhub relay ... --until-caught-up``: returns the finished process (exit code, stderr)."""
    return subprocess.run(relay_args(source, data_dir, "--until-caught-up", *extra), capture_output=True,
                          text=True, timeout=timeout)


def start_relay(source: str, data_dir: Path, *extra: str, log: Path | None = None) -> subprocess.Popen[str]:
    """A long-running relay (no --until-caught-up); stop it with :func:`stop_relay` or kill it."""
    out = open(log, "a") if log else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
    return subprocess.Popen(relay_args(source, data_dir, *extra), stdout=out, stderr=subprocess.STDOUT, text=True)


def stop_relay(proc: subprocess.Popen[str], timeout: float = 30) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=timeout)


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


def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {getattr(predicate, '__name__', predicate)}")
        time.sleep(interval)


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

        wait_for(settled, timeout=timeout)
    finally:
        conn.close()
