"""A physical backup holds nothing past its consistent point, and its prepare survives the server's
own two-phase commit caught half-way.

Commits between InnoDB's prepare and the binlog write are what BACKUP STAGE BLOCK_COMMIT keeps out
of a backup: the redo copy must end at the LSN read under it. The first test writes redo after that
LSN is read (an open transaction's rows; commits wait) and checks that none of it is copied. The
second makes such a half-done commit for real, deterministically: the binlog group commit is told to
wait for a second transaction (``binlog_commit_wait_count``) while one sits prepared in InnoDB, and
the server is killed there. ``mariadbd`` without a binlog refuses that image ("Found 1 prepared
transactions!", the oracle that the image holds one); the restore's throwaway server rolls it back
and keeps a user's XA transaction prepared.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from binhub.backup import NoProgress, PhysicalBackup
from binhub.backup.recovery_server import RecoveryServer
from binhub.backup.restore import PhysicalRestore, RestoreConfig
from binhub.backup.session import ServerSession
from binhub.innodb import START_OFFSET
from binhub.sandbox import Sandbox, find_server_binary
from tests.integration.conftest import MariadbFactory
from tests.integration.test_backup_physical import _config
from tests.integration.workload import wait_until

DB = "cpoint"


class AtConsistentPoint(NoProgress):
    """Notes that the backup holds BLOCK_COMMIT (the LSN it reads next is its consistent point)."""

    def __init__(self) -> None:
        self.holding = False

    def phase(self, name: str, total_bytes: int) -> None:
        self.holding = name == "consistent point"


def test_redo_written_after_the_consistent_point_stays_out_of_the_copy(
        mariadb_factory: MariadbFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    source = mariadb_factory("cpoint_source", server_id=31)
    source.execute(f"CREATE DATABASE {DB}", f"CREATE TABLE {DB}.t (id INT PRIMARY KEY, v TEXT) ENGINE=InnoDB",
                   f"INSERT INTO {DB}.t SELECT seq, 'committed' FROM {DB}.seq_1_to_100")
    late = source.connect(database=DB)
    progress = AtConsistentPoint()
    read_lsn = ServerSession.current_lsn
    lsns: list[int] = []

    def current_lsn_then_more_redo(session: ServerSession) -> int:
        lsn = read_lsn(session)
        if progress.holding and not lsns:
            lsns.append(lsn)
            # What the server writes after the LSN is read (commits wait under BLOCK_COMMIT, their
            # rows do not); the backup's FLUSH ENGINE LOGS, next, puts it on disk for the copier.
            with late.cursor() as cur:
                cur.execute("BEGIN")
                cur.execute("INSERT INTO t SELECT seq + 1000, REPEAT('after', 2000) FROM seq_1_to_500")
            assert read_lsn(session) > lsn + 1_000_000
        return lsn

    monkeypatch.setattr(ServerSession, "current_lsn", current_lsn_then_more_redo)
    try:
        manifest = PhysicalBackup(_config(source, tmp_path / "backup"), progress).run()
    finally:
        monkeypatch.undo()
        with late.cursor() as cur:
            cur.execute("ROLLBACK")
        late.close()

    assert manifest.complete and lsns == [manifest.end_lsn]
    assert manifest.checkpoint_lsn is not None and manifest.end_lsn is not None
    assert manifest.last_lsn == manifest.end_lsn
    redo = (tmp_path / "backup" / "ib_logfile0").read_bytes()
    assert len(redo) == START_OFFSET + manifest.end_lsn - manifest.checkpoint_lsn
    assert b"afterafter" not in redo

    target = tmp_path / "restored"
    PhysicalRestore(RestoreConfig(tmp_path / "backup", target, find_server_binary())).run()
    with RecoveryServer(find_server_binary(), target) as restored:
        assert restored.query(f"SELECT COUNT(*), MAX(id) FROM {DB}.t") == [(100, 100)]
        restored.shutdown()


def _commit_held_in_the_binlog_group_commit(source: Sandbox) -> threading.Thread:
    """An INSERT whose commit InnoDB has prepared and the binlog has not written (it waits for a
    second transaction to share its group commit, for a minute); returned once it waits there."""
    source.execute("SET GLOBAL binlog_commit_wait_count = 2", "SET GLOBAL binlog_commit_wait_usec = 60000000")

    def insert() -> None:
        conn = source.connect(database=DB)
        try:
            with conn.cursor() as cur:
                cur.execute("INSERT INTO t VALUES (2, 'held between prepare and binlog')")
        except Exception:  # noqa: S110 - the server is killed under it
            pass
        finally:
            conn.close()

    thread = threading.Thread(target=insert, daemon=True)
    thread.start()
    wait_until(lambda: source.query("SELECT STATE FROM information_schema.PROCESSLIST "
                                    "WHERE INFO LIKE 'INSERT INTO t VALUES (2%'") == [("Commit",)],
               timeout=30, message="the INSERT did not reach its commit")
    source.execute("FLUSH NO_WRITE_TO_BINLOG ENGINE LOGS")  # its prepare is in the redo log on disk
    return thread


def _start_plain(mariadbd: Path, datadir: Path, scratch: Path) -> subprocess.CompletedProcess[Any]:
    """``mariadbd`` on ``datadir`` without a binlog and without --tc-heuristic-recover (the oracle)."""
    scratch.mkdir()
    args = [str(mariadbd), "--no-defaults", f"--datadir={datadir}", "--skip-networking", "--skip-grant-tables",
            f"--socket={scratch / 's.sock'}", f"--log-error={scratch / 'error.log'}", f"--tmpdir={scratch}"]
    if os.geteuid() == 0:
        args.append("--user=root")
    # It refuses the datadir at once; should it start, the timeout kills it (and the test fails).
    return subprocess.run(args, timeout=120, capture_output=True, check=False)


def test_a_commit_prepared_but_not_in_the_binlog_is_rolled_back_and_user_xa_stays_prepared(
        mariadb_factory: MariadbFactory, tmp_path: Path) -> None:
    source = mariadb_factory("cpoint_crashed", server_id=32)
    source.execute(f"CREATE DATABASE {DB}", f"CREATE TABLE {DB}.t (id INT PRIMARY KEY, v TEXT) ENGINE=InnoDB",
                   f"INSERT INTO {DB}.t VALUES (1, 'committed')")
    xa = source.connect(database=DB)
    with xa.cursor() as cur:
        for statement in ("XA START 'user-xa'", "INSERT INTO t VALUES (3, 'user XA')", "XA END 'user-xa'",
                          "XA PREPARE 'user-xa'"):
            cur.execute(statement)
    held = _commit_held_in_the_binlog_group_commit(source)
    source.kill()
    held.join(30)
    xa.close()

    # The oracle: the image holds a transaction of the server's own two-phase commit, prepared.
    mariadbd = find_server_binary()
    probe = tmp_path / "probe"
    shutil.copytree(source.datadir, probe, symlinks=True)
    refused = _start_plain(mariadbd, probe, tmp_path / "probe-scratch")
    error_log = (tmp_path / "probe-scratch" / "error.log").read_text(errors="replace")
    assert refused.returncode != 0 and "Found 1 prepared transactions!" in error_log, error_log[-2000:]

    with RecoveryServer(mariadbd, source.datadir) as recovered:
        assert recovered.query(f"SELECT id, v FROM {DB}.t ORDER BY id") == [(1, "committed")]
        assert [row[3] for row in recovered.query("XA RECOVER")] == [b"user-xa"]
        recovered.query("XA ROLLBACK 'user-xa'")
        recovered.shutdown()
