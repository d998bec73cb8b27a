"""``binhub restore`` of a physical backup against real servers, a replica as the oracle.

The proof: a backup taken under writes (InnoDB, Aria, MyISAM), with an XA transaction left
prepared on the source, is restored twice, once prepared by a throwaway ``mariadbd`` and once by
``mariadb-backup --prepare``; a server started on either datadir has every table's CHECKSUM TABLE
of a real replica stopped (START SLAVE UNTIL master_gtid_pos) at the GTID the backup recorded, and
the prepared XA transaction is reported and still there. The faults: an incomplete backup, a
non-empty target, a damaged byte (named, and the target emptied again).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from binhub.backup import Manifest, PhysicalBackup
from binhub.backup.recovery_server import RecoveryServer
from binhub.backup.restore import PhysicalRestore, RestoreConfig
from binhub.errors import BackupDamaged, RecoveryFailed, RestoreError
from binhub.sandbox import Sandbox, find_server_binary
from tests.integration.conftest import MariadbFactory
from tests.integration.test_backup_physical import (
    DB,
    Workload,
    _config,
    _create_schema,
    _start_on,
    _stop_replica_at,
    mariadb_backup,
)
from tests.integration.workload import q, table_checksums, wait_until

__all__ = ["mariadb_backup"]  # a fixture, imported for the tests here

XID = "'restore-xa'"


@pytest.fixture(scope="module")
def taken(mariadb_factory: MariadbFactory, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[Sandbox, Path, dict[str, int | None]]]:
    """A backup taken under writes with an XA transaction prepared, and the checksums of a replica
    stopped at its GTID."""
    source = mariadb_factory("restore_source", server_id=71)
    replica = mariadb_factory("restore_replica", server_id=72)
    replica.query("STOP SLAVE")
    replica.query(f"SET GLOBAL gtid_slave_pos = '{source.query('SELECT @@gtid_binlog_pos')[0][0]}'")
    replica.query(
        f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={source.port}, MASTER_USER='{source.repl_user}', "
        f"MASTER_PASSWORD='{source.repl_password}', MASTER_CONNECT_RETRY=1, MASTER_USE_GTID=slave_pos")
    _create_schema(source)
    source.execute(f"CREATE TABLE {DB}.xa_t (id INT PRIMARY KEY, v INT) ENGINE=InnoDB",
                   f"INSERT INTO {DB}.xa_t VALUES (1, 1)")
    xa = source.connect(database=DB)
    with xa.cursor() as cur:
        for statement in (f"XA START {XID}", "UPDATE xa_t SET v = 2 WHERE id = 1", "INSERT INTO xa_t VALUES (2, 2)",
                          f"XA END {XID}", f"XA PREPARE {XID}"):
            cur.execute(statement)
    backup = tmp_path_factory.mktemp("restore") / "backup"
    with Workload(source) as workload:
        wait_until(lambda: workload.innodb_statements > 200 and workload.other_statements > 50, timeout=60,
                   message="the workload did not start")
        manifest = PhysicalBackup(_config(source, backup, parallel=2)).run()
    assert not workload.errors, workload.errors
    assert manifest.gtid
    _stop_replica_at(replica, manifest.gtid)
    expected = table_checksums(replica.connect(), DB)
    assert set(expected) >= {"orders", "audit_aria", "counters_myisam", "xa_t"}
    yield source, backup, expected
    with xa.cursor() as cur:
        cur.execute(f"XA ROLLBACK {XID}")
    xa.close()


def _restore(backup: Path, target: Path, **kw: object) -> PhysicalRestore:
    mb = shutil.which("mariadb-backup")
    return PhysicalRestore(RestoreConfig(backup=backup, target=target, mariadbd=find_server_binary(),
                                         mariadb_backup=Path(mb) if mb else None, **kw))  # type: ignore[arg-type]


@pytest.mark.parametrize("prepare_with", ["mariadbd", "mariadb-backup"])
def test_restored_datadir_matches_a_replica_at_the_backup_gtid(
        taken: tuple[Sandbox, Path, dict[str, int | None]], mariadb_factory: MariadbFactory, mariadb_backup: str,
        prepare_with: str, tmp_path: Path) -> None:
    _, backup, expected = taken
    before = {p.name: p.stat().st_mtime_ns for p in backup.rglob("*")}
    target = tmp_path / "datadir"
    report = _restore(backup, target, prepare_with=prepare_with).run()

    assert report.files == len(Manifest.read(backup).files)
    assert not report.unverified  # the redo log has its checksum in the manifest too
    assert {p.name: p.stat().st_mtime_ns for p in backup.rglob("*")} == before, "the backup was modified"
    names = {p.name for p in target.iterdir()}
    assert not names & {"manifest.json", "backup-my.cnf", "xtrabackup_checkpoints", "xtrabackup_binlog_info"}
    if prepare_with == "mariadbd":
        assert report.prepared_xa and "restore-xa" in report.prepared_xa[0]
        # Recovered and shut down cleanly: the copied log (checkpoint..consistent point) was replaced
        # by an empty one of the server's configured size.
        log_size = next(line for line in (backup / "backup-my.cnf").read_text().splitlines()
                        if line.startswith("innodb_log_file_size="))
        assert (target / "ib_logfile0").stat().st_size == int(log_size.split("=")[1])
        assert (target / "ib_logfile0").stat().st_size != (backup / "ib_logfile0").stat().st_size

    restored = _start_on(mariadb_factory, f"restored_{prepare_with.replace('-', '_')}", target)
    assert table_checksums(restored.connect(), DB) == expected
    with restored.connect().cursor() as cur:
        cur.execute(f"CHECK TABLE {q(DB, 'orders')}, {q(DB, 'audit_aria')}, {q(DB, 'counters_myisam')}")
        assert {row[3] for row in cur.fetchall() if row[2] == "status"} == {"OK"}
        cur.execute("XA RECOVER")
        assert [row[3] for row in cur.fetchall()] == [b"restore-xa"]


def test_move_renames_the_files_checks_them_and_uses_the_backup_up(
        taken: tuple[Sandbox, Path, dict[str, int | None]], mariadb_factory: MariadbFactory, tmp_path: Path) -> None:
    _, backup, expected = taken
    spare = tmp_path / "spare"
    shutil.copytree(backup, spare)
    inodes = {f["relpath"]: (spare / f["relpath"]).stat().st_ino for f in Manifest.read(spare).files}
    target = tmp_path / "datadir"
    report = _restore(spare, target, move=True).run()

    assert report.files == len(inodes)
    # Renamed, not copied: the restored tablespaces are the backup's own files (recovery writes in place).
    for relpath in ("ibdata1", f"{DB}/orders.ibd"):
        assert (target / relpath).stat().st_ino == inodes[relpath]
        assert not (spare / relpath).exists()
    spent = Manifest.read(spare)
    assert not spent.complete and f"used up by `binhub restore --move` into {target}" in (spent.error or "")
    with pytest.raises(RestoreError, match="incomplete backup .used up by `binhub restore --move`"):
        _restore(spare, tmp_path / "again").run()

    restored = _start_on(mariadb_factory, "restored_moved", target)
    assert table_checksums(restored.connect(), DB) == expected


def test_move_across_filesystems_is_refused_before_anything_moves(
        taken: tuple[Sandbox, Path, dict[str, int | None]], tmp_path: Path) -> None:
    _, backup, _ = taken
    other = tmp_path / "other-fs"
    other.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(other)], capture_output=True,
                      timeout=30).returncode != 0:
        pytest.skip("needs a tmpfs (mount as root) for a second filesystem")
    try:
        before = {p.name: p.stat().st_ino for p in backup.rglob("*")}
        with pytest.raises(RestoreError, match="on another filesystem"):
            _restore(backup, other / "datadir", move=True).run()
        assert {p.name: p.stat().st_ino for p in backup.rglob("*")} == before
        assert Manifest.read(backup).complete
        assert not (other / "datadir").exists()
    finally:
        subprocess.run(["umount", "-l", str(other)], capture_output=True, timeout=30)


def test_incomplete_backup_is_refused(taken: tuple[Sandbox, Path, dict[str, int | None]], tmp_path: Path) -> None:
    _, backup, _ = taken
    broken = tmp_path / "broken"
    shutil.copytree(backup, broken)
    data = json.loads((broken / "manifest.json").read_text())
    data.update(complete=False, error="the redo copy fell behind")
    (broken / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(RestoreError, match="incomplete backup .the redo copy fell behind"):
        _restore(broken, tmp_path / "datadir").run()
    assert not (tmp_path / "datadir").exists()


def test_damaged_byte_is_named_and_the_target_emptied(taken: tuple[Sandbox, Path, dict[str, int | None]],
                                                       tmp_path: Path) -> None:
    _, backup, _ = taken
    damaged = tmp_path / "damaged"
    shutil.copytree(backup, damaged)
    victim = damaged / DB / "counters_myisam.MYD"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    target = tmp_path / "datadir"
    target.mkdir()
    with pytest.raises(BackupDamaged, match=f"{DB}/counters_myisam.MYD is damaged: CRC-32C") as caught:
        _restore(damaged, target).run()
    assert caught.value.file == f"{DB}/counters_myisam.MYD"
    assert target.is_dir() and not any(target.iterdir())


def test_cli_refuses_a_non_empty_target_and_names_the_owner(
        taken: tuple[Sandbox, Path, dict[str, int | None]], tmp_path: Path) -> None:
    _, backup, _ = taken
    binhub = Path(sys.executable).with_name("binhub")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "ibdata1").write_bytes(b"precious")
    proc = subprocess.run([str(binhub), "restore", str(backup), "--to", str(tmp_path / "old")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "is not empty" in proc.stderr
    assert (tmp_path / "old" / "ibdata1").read_bytes() == b"precious"

    # The owner's server must reach the datadir: pytest's own temp dirs are root's alone.
    user = "mysql" if _user_exists("mysql") else "nobody"
    outside = Path(tempfile.mkdtemp(prefix="binhub-restore-test-"))
    try:
        outside.chmod(0o755)
        new = outside / "datadir"
        proc = subprocess.run([str(binhub), "restore", str(backup), "--to", str(new), "--owner", user],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        assert f"owned by {user}" in proc.stdout and "1 XA transaction(s) left prepared" in proc.stdout
        if os.geteuid() == 0:
            assert {p.stat().st_uid for p in [new, *new.rglob("*")]} == {pwd.getpwnam(user).pw_uid}
    finally:
        shutil.rmtree(outside, ignore_errors=True)


def _servers_on(datadir: Path) -> list[str]:
    """The processes whose command line names ``datadir`` as theirs."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if f"--datadir={datadir}".encode() in cmdline.read_bytes():
                found.append(cmdline.parent.name)
        except OSError:  # exited meanwhile
            continue
    return found


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def test_a_restore_killed_half_way_is_marked_and_redone(taken: tuple[Sandbox, Path, dict[str, int | None]],
                                                        mariadb_factory: MariadbFactory, tmp_path: Path) -> None:
    _, backup, expected = taken
    binhub = Path(sys.executable).with_name("binhub")
    target = tmp_path / "datadir"
    proc = subprocess.Popen([str(binhub), "restore", str(backup), "--to", str(target)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: (target / DB).is_dir(), timeout=120, interval=0.01, message="the restore did not start")
    finally:
        proc.kill()  # kill -9: no cleanup runs
        proc.wait()
    assert (target / ".binhub-restore-in-progress").is_file()
    # Its throwaway server, if it had started, died with it (nothing holds the files any more).
    wait_until(lambda: not _servers_on(target), timeout=30, message="the restore's mariadbd outlived it")

    again = subprocess.run([str(binhub), "restore", str(backup), "--to", str(target)], capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert not (target / ".binhub-restore-in-progress").exists()
    restored = _start_on(mariadb_factory, "restored_after_kill", target)
    assert table_checksums(restored.connect(), DB) == expected


def test_a_recovery_server_that_fails_to_start_is_not_left_running(mariadbd_binary: Path, tmp_path: Path) -> None:
    """A start that times out (or is interrupted by Ctrl-C) stops the server: one left running kept
    writing into the datadir the restore was emptying (Ctrl-C while preparing left ibtmp1 and
    multi-master.info, and the next restore refused the 'non-empty' directory)."""
    server = RecoveryServer(mariadbd_binary, tmp_path / "datadir", start_timeout=0)  # gives up after its first look
    (tmp_path / "datadir").mkdir()
    with pytest.raises(RecoveryFailed, match="did not finish recovering"), server:
        pass
    assert server._proc is not None and server._proc.poll() is not None, "mariadbd still runs"
    assert server._scratch is not None and not server._scratch.exists()
