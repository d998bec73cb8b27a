"""Faults during ``binhub backup --physical`` and ``binhub restore``, against real servers.

The target's disk fills up (a small tmpfs, or a file-size limit where mounting is not allowed);
the source server is killed with ``kill -9`` half-way; a DDL already running holds BACKUP STAGE
BLOCK_DDL past ``--lock-wait-timeout``. Each fails with a clear error and exit status 1, the
manifest says the backup is incomplete, and the source server is left as it was.
"""

from __future__ import annotations

import contextlib
import re
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from binhub.backup import Manifest, NoProgress, PhysicalBackup
from binhub.errors import ConnectionFailed
from binhub.sandbox import Sandbox
from tests.integration.conftest import MariadbFactory
from tests.integration.test_backup_physical import DB, _config
from tests.integration.workload import wait_until

BINHUB = str(Path(sys.executable).with_name("binhub"))
SMALL = 8 * 2**20  # smaller than ibdata1 alone (12 MiB)


@pytest.fixture(scope="module")
def source(mariadb_factory: MariadbFactory) -> Sandbox:
    sb = mariadb_factory("faults_source", server_id=81)
    sb.execute(f"CREATE DATABASE {DB}",
               f"CREATE TABLE {DB}.orders (id INT PRIMARY KEY, note TEXT) ENGINE=InnoDB",
               f"INSERT INTO {DB}.orders SELECT seq, REPEAT('o', 200) FROM {DB}.seq_1_to_2000",
               f"CREATE TABLE {DB}.counters_myisam (k INT PRIMARY KEY, v INT NOT NULL) ENGINE=MyISAM")
    return sb


class SmallDisk:
    """A directory whose disk holds only :data:`SMALL` bytes: a tmpfs where this host lets us mount
    one, otherwise a file-size limit (RLIMIT_FSIZE) on the binhub process, which fails its writes
    the same way (EFBIG instead of ENOSPC; SIGXFSZ ignored so the write raises)."""

    def __init__(self, root: Path, mounted: bool) -> None:
        self.root = root
        self.mounted = mounted

    def limit(self) -> Callable[[], None] | None:
        if self.mounted:
            return None

        def child() -> None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (SMALL, SMALL))
        return child


@pytest.fixture
def small_disk() -> Iterator[SmallDisk]:
    root = Path(tempfile.mkdtemp(prefix="binhub-small-disk-"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SMALL}", "tmpfs", str(root)],
                             capture_output=True, timeout=30).returncode == 0
    try:
        yield SmallDisk(root, mounted)
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(root)], capture_output=True, timeout=30)
        with contextlib.suppress(OSError):
            root.rmdir()


def _binhub(*args: str, preexec: Callable[[], None] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BINHUB, *args], capture_output=True, text=True, timeout=timeout, preexec_fn=preexec)


def _backup_args(sb: Sandbox, target: Path, *extra: str) -> list[str]:
    return ["backup", "--physical", "--source", "mysql://root@localhost", "--socket", str(sb.socket),
            "--datadir", str(sb.datadir), "--to", str(target), "--no-progress", *extra]


def test_disk_full_at_the_target_fails_clearly_and_releases_the_source(source: Sandbox, small_disk: SmallDisk) -> None:
    target = small_disk.root / "backup"
    proc = _binhub(*_backup_args(source, target), preexec=small_disk.limit())
    assert proc.returncode == 1, proc.stderr
    assert f"cannot write {target / 'ibdata1'}: no space left on its disk" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    manifest = Manifest.read(target)  # written before the copy began, small enough to fit
    assert not manifest.complete
    # The source's backup locks are gone: a DDL goes through at once.
    conn = source.connect()
    with conn.cursor() as cur:
        cur.execute("SET SESSION lock_wait_timeout = 5")
        cur.execute(f"CREATE TABLE {DB}.after_disk_full (id INT PRIMARY KEY) ENGINE=InnoDB")
        cur.execute(f"DROP TABLE {DB}.after_disk_full")


@pytest.fixture(scope="module")
def complete_backup(source: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("faults") / "backup"
    assert PhysicalBackup(_config(source, target)).run().complete
    return target


def test_restore_into_a_full_disk_fails_clearly_and_leaves_nothing(complete_backup: Path,
                                                                   small_disk: SmallDisk) -> None:
    target = small_disk.root / "datadir"
    proc = _binhub("restore", str(complete_backup), "--to", str(target), preexec=small_disk.limit())
    assert proc.returncode == 1, proc.stderr
    assert f"cannot write {target / 'ibdata1'}: no space left on its disk" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not target.exists()  # binhub created it, so it removed it again
    # The backup itself is untouched.
    assert Manifest.read(complete_backup).complete


class KillAt(NoProgress):
    """``kill -9`` of the source's mariadbd when the backup enters the phase ``name``."""

    def __init__(self, sb: Sandbox, name: str) -> None:
        self.sb = sb
        self.name = name
        self.killed = False

    def phase(self, name: str, total_bytes: int) -> None:
        if name == self.name:
            self.sb.kill()
            self.killed = True


@pytest.mark.parametrize("phase", ["InnoDB", "consistent point"])
def test_source_killed_mid_backup_fails_clearly_and_the_copy_is_never_restored(
        mariadb_factory: MariadbFactory, phase: str, tmp_path: Path) -> None:
    doomed = mariadb_factory(f"faults_killed_{phase.replace(' ', '_')}", server_id=82)
    doomed.execute(f"CREATE DATABASE {DB}", f"CREATE TABLE {DB}.t (id INT PRIMARY KEY) ENGINE=InnoDB",
                   f"INSERT INTO {DB}.t SELECT seq FROM {DB}.seq_1_to_1000")
    target = tmp_path / "backup"
    killer = KillAt(doomed, phase)
    with pytest.raises(ConnectionFailed) as caught:
        PhysicalBackup(_config(doomed, target, parallel=2), killer).run()
    assert killer.killed
    assert f"lost the connection to root@{doomed.socket}" in str(caught.value)
    assert "did the server stop or restart?" in str(caught.value)
    manifest = Manifest.read(target)
    assert not manifest.complete and manifest.error == str(caught.value)
    assert not (target / "xtrabackup_checkpoints").exists()

    proc = _binhub("restore", str(target), "--to", str(tmp_path / "datadir"))
    assert proc.returncode == 1
    assert "incomplete backup" in proc.stderr, proc.stderr
    assert not (tmp_path / "datadir").exists()


def test_a_running_alter_makes_the_backup_give_up_after_the_lock_wait_timeout_and_names_it(
        source: Sandbox, tmp_path: Path) -> None:
    """An ALTER TABLE ... ALGORITHM=COPY is running (held at its metadata-lock upgrade by an open
    transaction on the table) when the backup starts: its backup lock waits, and after
    --lock-wait-timeout the backup fails naming the stage, the timeout and the ALTER; the ALTER
    is unharmed and finishes once let go."""
    source.execute(f"CREATE TABLE {DB}.altered (id INT PRIMARY KEY) ENGINE=InnoDB",
                   f"INSERT INTO {DB}.altered VALUES (1)")
    reader = source.connect(database=DB)
    alter_errors: list[BaseException] = []

    def alter() -> None:
        conn = source.connect(database=DB)
        try:
            with conn.cursor() as cur:
                cur.execute("SET SESSION lock_wait_timeout = 60")
                cur.execute("ALTER TABLE altered ADD COLUMN note VARCHAR(20), ALGORITHM=COPY")
        except BaseException as exc:
            alter_errors.append(exc)
        finally:
            conn.close()

    ddl = threading.Thread(target=alter, daemon=True)
    try:
        with reader.cursor() as cur:
            cur.execute("START TRANSACTION")
            cur.execute("SELECT * FROM altered")
        ddl.start()
        wait_until(lambda: source.query(
            "SELECT COUNT(*) FROM information_schema.processlist "
            "WHERE info LIKE 'ALTER TABLE altered%' AND state LIKE 'Waiting for table metadata lock'")[0][0],
                   timeout=30, message="the ALTER TABLE did not reach its metadata-lock wait")
        started = time.monotonic()
        proc = _binhub(*_backup_args(source, tmp_path / "backup", "--lock-wait-timeout", "2"), timeout=60)
        took = time.monotonic() - started
        assert proc.returncode == 1, proc.stderr
        # A copying ALTER holds the server's backup lock against BACKUP STAGE START already.
        assert "BACKUP STAGE START waited 2s (--lock-wait-timeout) for running DDL or commits" in proc.stderr
        assert re.search(r"DDL on the server: thread \d+ \(\d+s\): ALTER TABLE altered ADD COLUMN", proc.stderr), \
            proc.stderr
        assert "Traceback" not in proc.stderr
        assert 2 <= took < 30
        assert not Manifest.read(tmp_path / "backup").complete
        assert ddl.is_alive(), "the ALTER TABLE did not wait for the reader"
    finally:
        with reader.cursor() as cur:
            cur.execute("COMMIT")
        reader.close()
        ddl.join(30)
    assert not alter_errors, alter_errors
    assert [row[0] for row in source.query(f"SHOW COLUMNS FROM {DB}.altered")] == ["id", "note"]
