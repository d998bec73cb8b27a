"""``binhub run``, ``binhub relay`` and ``binhub serve`` are one daemon: the same config loader
(``BINHUB_SERVE_*`` reach ``binhub serve``) and the same graceful stop on SIGTERM, exit 0, with the
relay's last transaction durable and nothing torn."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pymysql
import pytest

from binhub.sandbox.process import free_port
from binhub.serve.users import UsersFile, make_user
from binhub.store import StoreReader
from tests.integration.conftest import PrimaryDb
from tests.integration.serveutil import mariadb_store
from tests.integration.workload import create_tables, insert_rows, wait_until

BINHUB = [sys.executable, "-m", "binhub"]
USER, PASSWORD = "repl", "l1fe-cycle"


def _start(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    out = open(log, "a")  # noqa: SIM115 - handed to the child
    return subprocess.Popen([*BINHUB, *args], stdout=out, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})})


def _wait_for_line(proc: subprocess.Popen[str], log: Path, text: str, timeout: float = 30) -> None:
    def seen() -> bool:
        assert proc.poll() is None, f"binhub exited ({proc.returncode}): {log.read_text()[-3000:]}"
        return text in log.read_text()
    wait_until(seen, timeout=timeout, message=f"{text!r} not logged: {log.read_text()[-3000:]}")


def test_binhub_serve_takes_its_settings_from_the_environment(tmp_path: Path) -> None:
    mariadb_store(tmp_path / "store").close()
    port, http_port = free_port(), free_port()
    env = {"BINHUB_STORE_DATA_DIR": str(tmp_path / "store"), "BINHUB_SERVE_LISTEN": f"127.0.0.1:{port}",
           "BINHUB_SERVE_USER": USER, "BINHUB_SERVE_PASSWORD": PASSWORD, "BINHUB_SERVE_SERVER_ID": "4711",
           "BINHUB_SERVE_TLS": "false", "BINHUB_HTTP_LISTEN": f"127.0.0.1:{http_port}"}
    log = tmp_path / "serve.log"
    proc = _start(["serve"], log, env)  # not one flag: everything comes from BINHUB_*
    try:
        _wait_for_line(proc, log, "binhub running")
        assert f"binhub serving on 127.0.0.1:{port}" in log.read_text()
        conn = pymysql.connect(host="127.0.0.1", port=port, user=USER, password=PASSWORD, connect_timeout=10)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT @@server_id")
                assert cur.fetchone() == (4711,)
                assert conn.get_server_info().endswith("-binhub")
        finally:
            conn.close()
        with pytest.raises(pymysql.err.OperationalError):  # TLS off: a client that insists is refused
            pymysql.connect(host="127.0.0.1", port=port, user=USER, password=PASSWORD, connect_timeout=10,
                            ssl={"check_hostname": False})
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5) as resp:
            assert "binhub_serve_logins_total 1.0" in resp.read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()[-3000:]


@pytest.mark.parametrize("command", ["run", "relay", "serve"])
def test_sigterm_stops_every_command_the_same_way(command: str, primary_db: PrimaryDb, tmp_path: Path) -> None:
    store_dir, port = tmp_path / "store", free_port()
    users = tmp_path / "users.json"
    UsersFile(users).add(make_user(USER, PASSWORD))
    relay_args = ["--source", primary_db.dsn, "--data-dir", str(store_dir), "--server-id", "9301",
                  "--start-file", primary_db.start_file]
    serve_args = ["--data-dir", str(store_dir), "--listen", f"127.0.0.1:{port}", "--users", str(users)]
    if command == "relay":
        args = ["relay", *relay_args]
    elif command == "serve":
        mariadb_store(store_dir).close()
        args = ["serve", *serve_args]
    else:
        config = tmp_path / "binhub.toml"
        config.write_text(f'[store]\ndata_dir = "{store_dir}"\n'
                          f'[relay]\nsource = "{primary_db.dsn}"\nserver_id = 9301\nstart_file = "{primary_db.start_file}"\n'
                          f'[serve]\nlisten = "127.0.0.1:{port}"\nusers_file = "{users}"\n'
                          '[http]\nlisten = "127.0.0.1:0"\n')
        args = ["run", "--config", str(config)]
    log = tmp_path / f"{command}.log"
    proc = _start(args, log)
    try:
        _wait_for_line(proc, log, "binhub running")
        if command != "serve":
            table = create_tables(primary_db.conn, primary_db.name, 1)[0]
            insert_rows(primary_db.conn, primary_db.name, table, 50, batch=5)
            file, position, _ = primary_db.position()

            def stored() -> bool:
                durable = StoreReader.open(store_dir).durable_position
                return durable is not None and (durable.file, durable.position) == (file, position)
            wait_until(stored, timeout=30, message=f"{file}:{position} was not stored")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    text = log.read_text()
    assert code == 0, text[-3000:]
    assert "received SIGTERM; shutting down" in text and "binhub stopped" in text, text[-3000:]
    assert "Traceback" not in text, text
    if command != "serve":
        # Stopped gracefully: the store ends where it is durable, at a transaction boundary, nothing torn.
        store = StoreReader.open(store_dir)
        durable = store.durable_position
        assert durable is not None and durable.file == store.files[-1]
        assert store.file_path(durable.file).stat().st_size == durable.position
