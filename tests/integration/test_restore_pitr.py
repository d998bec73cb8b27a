"""Point-in-time restore from binhub's store, a real replica stopped at the same GTID as the oracle.

The story of every PITR: a backup, more writes, a bad ``DROP TABLE``, more writes. ``binhub binlog
find`` names the DROP's GTID; ``binhub restore --until-before-gtid`` it (and ``--until`` the time
just before it, given in another time zone) restores the backup and replays the store through
``binhub serve``; every table of the result has the CHECKSUM TABLE of a replica of the source
stopped with START SLAVE UNTIL master_gtid_pos at the GTID before the DROP, and the dropped table
is there. Targets the store cannot reach are refused before anything is written.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from binhub.backup import Manifest, PhysicalBackup
from binhub.backup.restore import RestoreConfig
from binhub.errors import RestoreError
from binhub.ops.pitr import PitrSource, PitrTarget, point_in_time_restore
from binhub.sandbox import Sandbox, find_server_binary
from tests.integration.conftest import MariadbFactory
from tests.integration.relayutil import run_relay, start_serve
from tests.integration.test_backup_physical import (
    DB,
    Workload,
    _config,
    _create_schema,
    _start_on,
    _stop_replica_at,
)
from tests.integration.workload import table_checksums, wait_until

BINHUB = str(Path(sys.executable).with_name("binhub"))
SOURCE_ID = 81


@dataclass
class Story:
    backup: Path
    store: Path
    manifest: Manifest
    drop_gtid: str  # the bad DROP TABLE's
    before_drop: str  # the GTID position just before it
    drop_time: int  # the source's clock just before it (seconds; every earlier write is 2 s older)
    expected: dict[str, int | None]  # a replica's checksums stopped at before_drop


def _writes(source: Sandbox, start: int, count: int) -> None:
    conn = source.connect(database=DB)
    with conn.cursor() as cur:
        for i in range(start, start + count):
            cur.execute("INSERT INTO victim VALUES (%s, REPEAT('v', 100))", (i,))
            cur.execute("UPDATE orders SET amount = amount + 7 WHERE id = %s", (i,))
            cur.execute("INSERT INTO audit_aria (event) VALUES (%s)", (f"after backup {i}",))
    conn.close()


def _gtid(source: Sandbox) -> str:
    return str(source.query("SELECT @@gtid_binlog_pos")[0][0])


@pytest.fixture(scope="module")
def story(mariadb_factory: MariadbFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    source = mariadb_factory("pitr_source", server_id=SOURCE_ID)
    replica = mariadb_factory("pitr_replica", server_id=82)
    replica.query("STOP SLAVE")
    replica.query(f"SET GLOBAL gtid_slave_pos = '{_gtid(source)}'")
    replica.query(
        f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={source.port}, MASTER_USER='{source.repl_user}', "
        f"MASTER_PASSWORD='{source.repl_password}', MASTER_CONNECT_RETRY=1, MASTER_USE_GTID=slave_pos")
    _create_schema(source)
    source.execute(f"CREATE TABLE {DB}.victim (id INT PRIMARY KEY, v TEXT) ENGINE=InnoDB")
    work = tmp_path_factory.mktemp("pitr")
    backup = work / "backup"
    with Workload(source) as workload:
        wait_until(lambda: workload.innodb_statements > 100, timeout=60, message="the workload did not start")
        manifest = PhysicalBackup(_config(source, backup, parallel=2)).run()
    assert not workload.errors, workload.errors
    _writes(source, 1, 60)
    time.sleep(2.2)  # the DROP's second is later than every write before it
    before_drop = _gtid(source)
    drop_time = int(source.query("SELECT UNIX_TIMESTAMP(NOW())")[0][0])  # the DROP is at or after this second
    source.execute(f"DROP TABLE {DB}.victim")
    drop_gtid = _gtid(source)
    source.execute(f"CREATE TABLE {DB}.victim (id INT PRIMARY KEY, v TEXT) ENGINE=InnoDB")  # a new one: not ours
    _writes(source, 1000, 30)
    store = work / "store"
    relayed = run_relay(source.dsn, store)
    assert relayed.returncode == 0, relayed.stderr

    _stop_replica_at(replica, before_drop)
    expected = table_checksums(replica.connect(), DB)
    assert "victim" in expected
    yield Story(backup, store, manifest, drop_gtid, before_drop, drop_time, expected)


def test_binlog_find_names_the_drop(story: Story) -> None:
    proc = subprocess.run([BINHUB, "binlog", "find", "--data-dir", str(story.store), "--grep", "DROP TABLE",
                           "--table", f"{DB}.victim"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{story.drop_gtid}  mysql-bin.")
    assert f"DROP TABLE `{DB}`.`victim`" in lines[0] or f"DROP TABLE {DB}.victim" in lines[0]
    printed = datetime.strptime(lines[0].split("  ")[2], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    assert story.drop_time <= printed.timestamp() <= story.drop_time + 60

    rows = subprocess.run([BINHUB, "binlog", "find", "--data-dir", str(story.store), "--table", f"{DB}.victim"],
                          capture_output=True, text=True, timeout=60)
    assert rows.returncode == 0, rows.stderr
    assert f"(row changes of {DB}.victim)" in rows.stdout and "DROP TABLE" in rows.stdout


def test_restore_until_before_the_drop_equals_a_replica_stopped_there(
        story: Story, mariadb_factory: MariadbFactory, tmp_path: Path) -> None:
    target = tmp_path / "datadir"
    proc = subprocess.run([BINHUB, "restore", str(story.backup), "--to", str(target), "--data-dir", str(story.store),
                           "--until-before-gtid", story.drop_gtid], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert f"replayed the store up to GTID position {story.before_drop}" in proc.stdout
    restored = _start_on(mariadb_factory, "pitr_restored_gtid", target)
    sums = table_checksums(restored.connect(), DB)
    assert sums == story.expected
    assert restored.query(f"SELECT COUNT(*) FROM {DB}.victim")[0][0] == 60
    assert restored.query("SELECT @@gtid_slave_pos")[0][0] == story.before_drop
    assert restored.query("SHOW SLAVE STATUS") == []  # no replication left configured


def test_restore_until_a_time_in_another_zone(story: Story, mariadb_factory: MariadbFactory, tmp_path: Path) -> None:
    plus_two = timezone(timedelta(hours=2))
    until = datetime.fromtimestamp(story.drop_time - 1, plus_two).replace(tzinfo=plus_two)
    config = RestoreConfig(backup=story.backup, target=tmp_path / "datadir", mariadbd=find_server_binary())
    report = point_in_time_restore(config, PitrTarget(until_time=until), PitrSource(story.store))
    assert str(report.reached) == story.before_drop
    restored = _start_on(mariadb_factory, "pitr_restored_time", tmp_path / "datadir")
    assert table_checksums(restored.connect(), DB) == story.expected


def test_targets_the_store_cannot_reach_are_refused_before_anything_is_written(story: Story, tmp_path: Path) -> None:
    domain, server, seq = story.drop_gtid.split("-")
    config = RestoreConfig(backup=story.backup, target=tmp_path / "datadir", mariadbd=find_server_binary())
    with pytest.raises(RestoreError, match="beyond the store's end"):
        point_in_time_restore(config, PitrTarget(until_gtid=f"{domain}-{server}-{int(seq) + 10_000}"),
                              PitrSource(story.store))
    assert story.manifest.gtid
    backup_seq = int(story.manifest.gtid.split("-")[2])
    with pytest.raises(RestoreError, match="before the backup's GTID position"):
        point_in_time_restore(config, PitrTarget(until_gtid=f"{domain}-{server}-{backup_seq - 1}"),
                              PitrSource(story.store))
    with pytest.raises(RestoreError, match="not in the store after the backup"):
        point_in_time_restore(config, PitrTarget(until_before_gtid=f"{domain}-{server}-{int(seq) + 10_000}"),
                              PitrSource(story.store))
    assert not (tmp_path / "datadir").exists()


def test_a_store_that_begins_after_the_backup_is_refused(story: Story, mariadb_factory: MariadbFactory,
                                                         tmp_path: Path) -> None:
    source = next(sb for sb in mariadb_factory.sandboxes if sb.name == "pitr_source")
    late = tmp_path / "late-store"
    source.execute("FLUSH BINARY LOGS")
    relayed = run_relay(source.dsn, late, "--start-file", source.binlog_files()[-1].name)
    assert relayed.returncode == 0, relayed.stderr
    config = RestoreConfig(backup=story.backup, target=tmp_path / "datadir", mariadbd=find_server_binary())
    with pytest.raises(RestoreError, match="oldest file begins after the backup"):
        point_in_time_restore(config, PitrTarget(until_gtid=story.before_drop), PitrSource(late))
    assert not (tmp_path / "datadir").exists()


def test_restore_from_a_running_serve(story: Story, mariadb_factory: MariadbFactory, tmp_path: Path) -> None:
    serve = start_serve(story.store, tmp_path / "serve.log", user="pitr", password="pitr-secret", server_id=900)
    try:
        target = tmp_path / "datadir"
        proc = subprocess.run([BINHUB, "restore", str(story.backup), "--to", str(target), "--serve",
                               f"127.0.0.1:{serve.port}", "--serve-user", "pitr", "--until-gtid", story.before_drop],
                              capture_output=True, text=True, timeout=600,
                              env={**os.environ, "BINHUB_RESTORE_SERVE_PASSWORD": "pitr-secret"})
        assert proc.returncode == 0, proc.stderr
    finally:
        serve.stop()
    restored = _start_on(mariadb_factory, "pitr_restored_serve", target)
    assert table_checksums(restored.connect(), DB) == story.expected
