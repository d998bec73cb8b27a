"""Helpers of the MySQL sink's tests: a downstream server, ``binhub stream --to mysql://`` runs,
and the comparison of the primary's tables with the downstream's (CHECKSUM TABLE per table)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from binhub.sandbox import Sandbox
from tests.integration.conftest import PrimaryDb
from tests.integration.relayutil import BINHUB, run_relay
from tests.integration.workload import q


def target(server: Sandbox) -> str:
    return f"mysql://root@127.0.0.1:{server.port}"


def relay(primary_db: PrimaryDb, data_dir: Path) -> None:
    proc = run_relay(primary_db.dsn, data_dir, "--start-file", primary_db.start_file, "--server-id", "9311")
    assert proc.returncode == 0, proc.stderr


def stream_args(data_dir: Path, server: Sandbox, name: str, *extra: str) -> list[str]:
    """``binhub stream`` arguments (without the command: BinhubProcess adds it)."""
    return ["stream", "--data-dir", str(data_dir), "--to", target(server), "--name", name, *extra]


def apply(data_dir: Path, server: Sandbox, name: str, *extra: str, check: bool = True,
          timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*BINHUB, *stream_args(data_dir, server, name, "--until-caught-up"), *extra],
                          capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def tables(server: Sandbox, db: str) -> list[str]:
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s ORDER BY 1", (db,))
            return [r[0] for r in cur.fetchall()]
    finally:
        conn.close()


def checksums(server: Sandbox, db: str, renamed: str | None = None) -> dict[str, Any]:
    """CHECKSUM TABLE of every table of ``db`` (read from ``renamed`` on this server, if given)."""
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            out = {}
            for table in tables(server, renamed or db):
                cur.execute(f"CHECKSUM TABLE {q(renamed or db, table)}")
                out[table] = cur.fetchone()[1]
            return out
    finally:
        conn.close()


def assert_same_tables(primary: Sandbox, downstream: Sandbox, db: str) -> None:
    theirs = checksums(primary, db)
    assert theirs, "the workload made tables"
    assert checksums(downstream, db) == theirs


def query(server: Sandbox, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())
    finally:
        conn.close()
