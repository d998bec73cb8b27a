"""The sandbox itself: CLI start/stop/status, errors operators see, restarts and crashes."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest
from click.testing import CliRunner

import binhub.sandbox.binaries as binaries_module
from binhub.cli.sandbox import sandbox as sandbox_cli
from binhub.demo import stop_command
from binhub.errors import SandboxError
from binhub.sandbox import MAX_SOCKET_PATH, Sandbox, SandboxSpec, find_server_binary
from tests.integration.conftest import MariadbFactory, PrimaryDb
from tests.integration.workload import (
    LARGE_EVENT_BYTES,
    run_workload,
    snapshot,
    table_checksums,
    wait_until,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def cli_base_dir(tmp_path: Path) -> Iterator[Path]:
    """A sandbox base dir for CLI tests; whatever the CLI started there is killed afterwards."""
    base = tmp_path / "sb"
    yield base
    for state in base.glob("*/sandbox.json"):
        Sandbox.open(state.parent.name, base).destroy()


def _count(sb: Sandbox, sql: str) -> int:
    conn = sb.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def test_cli_start_status_stop(mariadbd_binary: Path, cli_base_dir: Path) -> None:
    runner = CliRunner()
    base = ["--name", "cli", "--base-dir", str(cli_base_dir)]

    result = runner.invoke(sandbox_cli, ["start", *base])
    assert result.exit_code == 0, result.output
    dsn, root_dsn = result.stdout.splitlines()
    assert dsn.startswith("mysql://repl:") and root_dsn.startswith("mysql://root@127.0.0.1:")

    # The replication DSN works and has what a binlog reader needs.
    userinfo, hostport = dsn.removeprefix("mysql://").split("@")
    user, password = userinfo.split(":")
    port = int(hostport.rsplit(":", 1)[1])
    conn = pymysql.connect(host="127.0.0.1", port=port, user=user, password=password)
    with conn.cursor() as cur:
        cur.execute("SHOW BINARY LOGS")
        assert cur.fetchall()
    conn.close()

    # start again: idempotent, same DSN.
    again = runner.invoke(sandbox_cli, ["start", *base])
    assert again.exit_code == 0 and again.stdout.splitlines() == [dsn, root_dsn]

    status = runner.invoke(sandbox_cli, ["status", *base])
    assert status.exit_code == 0, status.output
    info = json.loads(status.stdout)
    assert info["running"] is True and info["port"] == port and info["dsn"] == dsn
    assert "MariaDB" in info["version"] and info["binlog_files"]

    stop = runner.invoke(sandbox_cli, ["stop", *base])
    assert stop.exit_code == 0, stop.output
    status = runner.invoke(sandbox_cli, ["status", *base])
    assert status.exit_code == 3 and json.loads(status.stdout)["running"] is False

    destroy = runner.invoke(sandbox_cli, ["stop", "--destroy", *base])
    assert destroy.exit_code == 0, destroy.output
    assert not (cli_base_dir / "cli").exists()


def test_status_and_stop_from_another_process(mariadbd_binary: Path, cli_base_dir: Path) -> None:
    """sandbox.json lets a second process find and stop a server this one started."""
    sb = Sandbox.create(SandboxSpec(name="xproc", base_dir=cli_base_dir))
    sb.start()
    env = {**os.environ, "BINHUB_SANDBOX_DIR": str(cli_base_dir)}
    code = "from binhub.cli.sandbox import sandbox; sandbox()"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", code, *args, "--name", "xproc"], env=env,
                              capture_output=True, text=True, timeout=60)

    status = cli("status")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["pid"] == sb.pid

    stop = cli("stop")
    assert stop.returncode == 0, stop.stderr
    wait_until(lambda: not sb.is_running(), timeout=10, message="server still running after CLI stop")


def test_missing_binary_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    with pytest.raises(SandboxError) as excinfo:
        find_server_binary(search_path=str(empty))
    assert "mariadbd not found" in str(excinfo.value)
    assert excinfo.value.hint is not None and "apt-get install mariadb-server" in excinfo.value.hint

    # The CLI turns it into one sentence on stderr and a non-zero exit.
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(binaries_module, "FALLBACK_DIRS", ())
    result = CliRunner().invoke(sandbox_cli, ["start", "--name", "nobin", "--base-dir", str(tmp_path / "sb")])
    assert result.exit_code != 0
    assert "mariadbd not found" in result.stderr and "apt-get install mariadb-server" in result.stderr
    assert result.stdout == ""


def test_restart_keeps_data_and_port(mariadb_factory: MariadbFactory) -> None:
    sb = mariadb_factory("restart")
    sb.execute("CREATE DATABASE d",
               "CREATE TABLE d.t (id INT PRIMARY KEY)",
               "INSERT INTO d.t VALUES (1), (2), (3)")
    port, pid, files = sb.port, sb.pid, sb.binlog_files()

    sb.restart()

    assert sb.port == port and sb.pid != pid
    assert _count(sb, "SELECT COUNT(*) FROM d.t") == 3
    # A restart opens a new binlog file and keeps the old ones.
    after = sb.binlog_files()
    assert after[: len(files)] == files and len(after) == len(files) + 1
    assert all(p.is_file() for p in after)


def test_kill9_then_start_recovers(mariadb_factory: MariadbFactory) -> None:
    sb = mariadb_factory("crash")
    conn = sb.connect()
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE d")
        cur.execute("CREATE TABLE d.t (id INT PRIMARY KEY, v VARCHAR(10))")
        cur.executemany("INSERT INTO d.t VALUES (%s, %s)", [(i, str(i)) for i in range(1000)])
        cur.execute("SELECT @@gtid_binlog_pos")
        gtid_before = cur.fetchone()[0]
    conn.close()

    sb.kill()
    assert not sb.is_running() and sb.pid is None
    sb.start()

    assert sb.is_running()
    assert _count(sb, "SELECT COUNT(*) FROM d.t") == 1000
    conn = sb.connect()
    with conn.cursor() as cur:
        cur.execute("SELECT @@gtid_binlog_pos")
        assert cur.fetchone()[0] == gtid_before  # binlog crash recovery kept every committed txn
    conn.close()


def test_start_failure_quotes_the_error_log(mariadb_factory: MariadbFactory) -> None:
    sb = mariadb_factory("badopt", start=False, extra_args=["--no-such-option-binhub"])
    with pytest.raises(SandboxError) as excinfo:
        sb.start(timeout=30)
    message = str(excinfo.value)
    assert "did not start" in message and "no-such-option-binhub" in message
    assert not sb.is_running()


def test_port_in_use_names_the_port(mariadb_factory: MariadbFactory) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        sb = mariadb_factory("busyport", start=False, port=port)
        with pytest.raises(SandboxError) as excinfo:
            sb.start(timeout=30)
    assert f"port {port} is in use" in str(excinfo.value)


def test_long_base_dir_gets_a_short_socket(mariadb_factory: MariadbFactory, tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 60) / ("y" * 60)
    sb = Sandbox.create(SandboxSpec(name="deep", base_dir=deep))
    mariadb_factory.sandboxes.append(sb)  # the factory tears it down
    assert len(os.fsencode(str(deep / "deep" / "mysql.sock"))) > MAX_SOCKET_PATH
    assert len(os.fsencode(str(sb.socket))) <= MAX_SOCKET_PATH
    sb.start()
    conn = pymysql.connect(unix_socket=str(sb.socket), user="root")
    conn.close()


def test_workload_runs_and_writes_a_large_event(primary_db: PrimaryDb) -> None:
    summary = run_workload(primary_db.conn, primary_db.name, rows=60, many_tables=5)
    assert summary.inserted > 0 and summary.updated > 0 and summary.deleted > 0
    assert summary.transactions > 10
    # The > 16 MiB row event landed in the binlog files this test wrote.
    files = [p for p in primary_db.sandbox.binlog_files() if p.name >= primary_db.start_file]
    assert sum(p.stat().st_size for p in files) > LARGE_EVENT_BYTES
    # Deterministic: the same workload in another database gives the same data.
    other = primary_db.name + "_b"
    run_workload(primary_db.conn, other, rows=60, many_tables=5)
    try:
        assert table_checksums(primary_db.conn, other) == table_checksums(primary_db.conn, primary_db.name)
        assert snapshot(primary_db.conn, other)["wide1"] == snapshot(primary_db.conn, primary_db.name)["wide1"]
    finally:
        with primary_db.conn.cursor() as cur:
            cur.execute(f"DROP DATABASE `{other}`")


def test_primary_db_isolation(primary_db: PrimaryDb) -> None:
    """Each test gets its own database and a binlog file that starts with it."""
    assert primary_db.start_pos <= 400  # a fresh file: just the header events
    with primary_db.conn.cursor() as cur:
        cur.execute("SELECT DATABASE()")
        assert cur.fetchone()[0] == primary_db.name
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
        cur.execute("INSERT INTO t VALUES (1)")
    file, pos, gtid = primary_db.position()
    assert file == primary_db.start_file and pos > primary_db.start_pos and gtid != primary_db.start_gtid


def test_the_demos_keep_hint_finds_its_sandbox(mariadbd_binary: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """`binhub demo --keep` prints how to stop the sandbox it leaves: that command must reach it, in
    the demo's own folder (it said `binhub sandbox stop --name demo`, which looks in the default one)."""
    monkeypatch.delenv("BINHUB_SANDBOX_DIR", raising=False)
    base = tmp_path / "demo"
    Sandbox.create(SandboxSpec(name="demo", base_dir=base / "sandboxes"))
    binhub, *args = shlex.split(stop_command(base))
    assert binhub == "binhub"
    result = CliRunner().invoke(sandbox_cli, args[1:])
    assert result.exit_code == 0, result.output
    assert "'demo' was not running" in result.output
