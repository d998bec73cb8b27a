"""`binhub run` against a real primary: relays, serves /metrics and /status, stops gracefully."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from binhub.sandbox.binhub_process import BinhubProcess
from binhub.sandbox.process import free_port
from tests.integration.conftest import PrimaryDb
from tests.integration.relayutil import assert_store_matches
from tests.integration.workload import create_tables, insert_rows, wait_until


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())


def test_daemon_relays_reports_and_stops_gracefully(primary_db: PrimaryDb, tmp_path: Path) -> None:
    tables = create_tables(primary_db.conn, primary_db.name, 1)
    insert_rows(primary_db.conn, primary_db.name, tables[0], 100)
    port = free_port()
    config = tmp_path / "binhub.toml"
    config.write_text(f"""
[store]
data_dir = "store"
durability = "txn"

[relay]
source = "{primary_db.dsn}"
server_id = 4242
start_file = "{primary_db.start_file}"

[http]
listen = "127.0.0.1:{port}"

[log]
format = "json"
""")
    proc = BinhubProcess(["run", "--config", str(config)], tmp_path / "daemon.log").start()
    try:
        _, _, gtid = primary_db.position()

        def caught_up() -> bool:
            try:
                status = json.loads(_get(f"http://127.0.0.1:{port}/status"))
            except OSError:
                return False
            return bool(json.dumps(status).count(gtid))

        wait_until(caught_up, timeout=30, message=f"/status never showed {gtid}")
        insert_rows(primary_db.conn, primary_db.name, tables[0], 50, start_id=5000)
        _, _, gtid = primary_db.position()
        # live: new transactions arrive without a restart
        wait_until(caught_up, timeout=30, message=f"/status never showed {gtid}")

        def relay_caught_up() -> bool:
            # the primary is idle now: its heartbeats say the relay has everything
            return json.loads(_get(f"http://127.0.0.1:{port}/status"))["relay"]["caught_up"] is True

        wait_until(relay_caught_up, timeout=30, message="/status never said the idle relay is caught up")
        metrics = _get(f"http://127.0.0.1:{port}/metrics")
        assert f'binhub_relay_last_gtid_info{{gtid="{gtid}"}}' in metrics
        events = [line for line in metrics.splitlines() if line.startswith("binhub_relay_events_total ")]
        assert events and float(events[0].split()[1]) > 20
        assert "binhub_store_fsync_seconds_count" in metrics
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
    lines = [json.loads(line) for line in (tmp_path / "daemon.log").read_text().splitlines() if line.startswith("{")]
    assert lines and all({"ts", "level", "logger", "msg"} <= set(line) for line in lines)
    assert_store_matches(tmp_path / "store", primary_db.sandbox, from_file=primary_db.start_file)


def test_invalid_config_is_refused_with_the_key(tmp_path: Path) -> None:
    config = tmp_path / "binhub.toml"
    config.write_text('[store]\ndata_dir = "s"\n[relay]\nsource = "mysql://u:p@127.0.0.1:3306"\nserver_id = -3\n')
    proc = subprocess.run([sys.executable, "-m", "binhub", "run", "--config", str(config)],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "relay.server_id" in proc.stderr


def test_demo_command(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "binhub", "demo", "--work-dir", str(tmp_path / "demo")],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    stored = next(line for line in lines if "files identical" in line)
    n = stored.split()[0]
    assert stored == f"{n} of {n} files identical to the primary's, every CRC valid" and int(n) >= 3
    replica = next(line for line in lines if line.startswith("replica through binhub serve:"))
    m = replica.split(": ")[1].split()[0]
    assert replica == f"replica through binhub serve: {m} of {m} tables have the primary's CHECKSUM TABLE"
    assert int(m) >= 9
    # The last step: the tables rebuilt from binhub stream's JSON lines alone equal the primary's rows.
    streamed = lines[-1].split("; ")[1].split()[0]
    assert lines[-1].startswith("binhub stream: ") and int(lines[-1].split()[2].replace(",", "")) > 5000, lines[-1]
    assert lines[-1].endswith(f"{streamed} of {streamed} tables rebuilt from them alone hold exactly the primary's rows")
    assert int(streamed) == 8
    assert not (tmp_path / "demo").exists()  # cleaned up without --keep
