"""Faults during ``binhub backup --physical`` and ``binhub restore``, against real servers.

The target's disk fills up (a small tmpfs, or a file-size limit where mounting is not allowed);
the source server is killed with ``kill -9`` half-way; an ALTER TABLE already running holds the
backup lock past ``--lock-wait-timeout``. Each fails with a clear error (the file, the server, the
timeout and the ALTER named) and exit status 1, the manifest says the backup is incomplete, a
restore of it is refused, and the source server is left as it was. Without the timeout, the
backup waits for the ALTER and copies its result.
"""

from __future__ import annotations

import contextlib
import json
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
from binhub.errors import ConnectionFailed, TargetFull
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


@contextlib.contextmanager
def _tmpfs(size: int) -> Iterator[Path | None]:
    """A tmpfs of ``size`` bytes mounted on a new directory (None where this host lets no one mount)."""
    root = Path(tempfile.mkdtemp(prefix="binhub-small-disk-"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(root)],
                             capture_output=True, timeout=30).returncode == 0
    try:
        yield root if mounted else None
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(root)], capture_output=True, timeout=30)
        with contextlib.suppress(OSError):
            root.rmdir()


@pytest.fixture
def small_disk() -> Iterator[SmallDisk]:
    with _tmpfs(SMALL) as root:
        if root is not None:
            yield SmallDisk(root, True)
            return
    root = Path(tempfile.mkdtemp(prefix="binhub-small-disk-"))
    try:
        yield SmallDisk(root, False)
    finally:
        subprocess.run(["rm", "-rf", str(root)], timeout=30)


def fill(disk: Path) -> int:
    """Write zeros to ``disk/filler`` until the disk is full; return how many bytes went in."""
    written = 0
    with open(disk / "filler", "wb", buffering=0) as out:
        for size in (1 << 20, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    written += out.write(bytes(size))
    return written


def _checksums(sb: Sandbox) -> dict[str, int]:
    return {table: sb.query(f"CHECKSUM TABLE {DB}.{table}")[0][1] for table in ("orders", "counters_myisam")}


def _ddl_goes_through(sb: Sandbox) -> None:
    """No backup lock of ours is left on the source: a CREATE and a DROP TABLE pass at once."""
    conn = sb.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION lock_wait_timeout = 5")
            cur.execute(f"CREATE TABLE {DB}.after_disk_full (id INT PRIMARY KEY) ENGINE=InnoDB")
            cur.execute(f"DROP TABLE {DB}.after_disk_full")
    finally:
        conn.close()


def _binhub(*args: str, preexec: Callable[[], None] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BINHUB, *args], capture_output=True, text=True, timeout=timeout, preexec_fn=preexec)


def _backup_args(sb: Sandbox, target: Path, *extra: str) -> list[str]:
    return ["backup", "--physical", "--source", "mysql://root@localhost", "--socket", str(sb.socket),
            "--datadir", str(sb.datadir), "--to", str(target), "--no-progress", *extra]


def test_disk_full_at_the_target_fails_clearly_and_releases_the_source(source: Sandbox, tmp_path: Path) -> None:
    """The disk fills while a data file is written (here a file-size limit, which fails the writes
    of ibdata1, the first and largest file, the same way and lets the check of free space pass)."""
    target = tmp_path / "backup"
    proc = _binhub(*_backup_args(source, target), preexec=SmallDisk(tmp_path, mounted=False).limit())
    assert proc.returncode == 1, proc.stderr
    assert f"cannot write {target / 'ibdata1'}: no space left on its disk" in proc.stderr, proc.stderr
    assert re.search(r"the backup needs at least [\d.,]+ MiB \(the datadir's files and the redo log copied so far\), "
                     r"[\d.,]+ MiB were written", proc.stderr), proc.stderr
    assert "Traceback" not in proc.stderr
    manifest = Manifest.read(target)  # written before the copy began, small enough to fit
    assert not manifest.complete
    _ddl_goes_through(source)  # the source's backup locks are gone


def test_a_disk_too_small_is_refused_before_anything_is_written(source: Sandbox) -> None:
    """The disk cannot take even the manifest: the backup says how much it needs and how much is
    free, leaves no directory that could pass for a backup, and never locks the source."""
    before = _checksums(source)
    with _tmpfs(SMALL) as disk:
        if disk is None:
            pytest.skip("needs a small tmpfs (mount as root)")
        fill(disk)
        target = disk / "backup"
        proc = _binhub(*_backup_args(source, target))
        assert proc.returncode == 1, proc.stderr
        assert re.search(rf"cannot write {re.escape(str(target))}: the backup needs at least [\d.,]+ MiB "
                         r"\(the datadir's files, before the redo log written meanwhile\), its disk has 0\.0 MiB free",
                         proc.stderr), proc.stderr
        assert "nothing was copied and the source was not locked" in proc.stderr
        assert "Traceback" not in proc.stderr
        assert not target.exists()  # binhub made it and removed it again: nothing to mistake for a backup
        listed = _binhub("backup", "ls", str(disk), "--json")
        assert listed.returncode == 0 and listed.stdout == "", listed
    _ddl_goes_through(source)
    assert _checksums(source) == before


class FillDiskDuringRedoCopy(NoProgress):
    """When the InnoDB copy is about to start (the redo copy running, BLOCK_DDL held): fill the
    target's disk, write to the source so the redo copier has log to write, and hold the data copy
    until the copier has failed on it (its thread ends only on an error or at the end)."""

    def __init__(self, sb: Sandbox, disk: Path) -> None:
        self.sb = sb
        self.disk = disk
        self.filled = False

    def phase(self, name: str, total_bytes: int) -> None:
        if name != "InnoDB":
            return
        fill(self.disk)
        self.filled = True
        self.sb.execute(f"INSERT INTO {DB}.redo_load SELECT seq, REPEAT('r', 2000) FROM {DB}.seq_1_to_2000")
        wait_until(lambda: not any(t.name == "binhub-redo-copier" for t in threading.enumerate()), timeout=60,
                   message="the redo copy did not fail on the full disk")


def test_disk_full_during_the_redo_copy_names_the_log_and_the_space_needed(source: Sandbox) -> None:
    source.execute(f"CREATE TABLE {DB}.redo_load (id INT PRIMARY KEY, pad TEXT) ENGINE=InnoDB")
    before = _checksums(source)
    needed = sum(p.stat().st_size for p in source.datadir.rglob("*") if p.is_file())
    with _tmpfs(needed + 64 * 2**20) as disk:
        if disk is None:
            pytest.skip("needs a tmpfs (mount as root)")
        target = disk / "backup"
        filler = FillDiskDuringRedoCopy(source, disk)
        with pytest.raises(TargetFull) as caught:
            PhysicalBackup(_config(source, target, log_copy_interval=0.05), filler).run()
        assert filler.filled
        assert caught.value.path == str(target / "ib_logfile0")
        assert re.fullmatch(rf"cannot write {re.escape(str(target))}/ib_logfile0: no space left on its disk "
                            r"\(No space left on device\); the backup needs at least [\d.,]+ MiB \(the datadir's "
                            r"files and the redo log copied so far\), [\d.,]+ MiB were written, 0\.0 MiB are free "
                            r"\(free space on the backup's disk or choose another --to; the partial backup is "
                            r"marked incomplete\)", str(caught.value)), str(caught.value)
        assert not Manifest.read(target).complete  # the first manifest: the disk took no later one
        assert not list(target.glob("*.tmp"))
        listed = _binhub("backup", "ls", str(disk), "--json")
        assert json.loads(listed.stdout)["complete"] is False, listed
        verified = _binhub("backup", "verify", str(target))
        assert verified.returncode == 1 and "INCOMPLETE" in verified.stdout, verified
    _ddl_goes_through(source)
    assert _checksums(source) == before
    assert source.query(f"SELECT COUNT(*) FROM {DB}.redo_load")[0][0] == 2000  # the writes made meanwhile
    source.execute(f"DROP TABLE {DB}.redo_load")


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


class HeldAlter:
    """``with HeldAlter(sb, table) as held:`` an ALTER TABLE ... ALGORITHM=COPY of a new ``table``
    is running, held at its metadata-lock upgrade by an open transaction that read the table;
    ``held.release()`` (or leaving the ``with``) commits that transaction and the ALTER finishes."""

    def __init__(self, sb: Sandbox, table: str) -> None:
        self.sb = sb
        self.table = table
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._alter, daemon=True)
        self._reader = sb.connect(database=DB)

    def _alter(self) -> None:
        conn = self.sb.connect(database=DB)
        try:
            with conn.cursor() as cur:
                cur.execute("SET SESSION lock_wait_timeout = 60")
                cur.execute(f"ALTER TABLE {self.table} ADD COLUMN note VARCHAR(20), ALGORITHM=COPY")
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)
        finally:
            conn.close()

    def __enter__(self) -> HeldAlter:
        self.sb.execute(f"CREATE TABLE {DB}.{self.table} (id INT PRIMARY KEY) ENGINE=InnoDB",
                        f"INSERT INTO {DB}.{self.table} VALUES (1)")
        with self._reader.cursor() as cur:
            cur.execute("START TRANSACTION")
            cur.execute(f"SELECT * FROM {self.table}")
        self._thread.start()
        wait_until(lambda: self.sb.query(
            "SELECT COUNT(*) FROM information_schema.processlist "
            f"WHERE info LIKE 'ALTER TABLE {self.table}%' AND state = 'Waiting for table metadata lock'")[0][0],
                   timeout=30, message="the ALTER TABLE did not reach its metadata-lock wait")
        return self

    def running(self) -> bool:
        return self._thread.is_alive()

    def release(self) -> None:
        with self._reader.cursor() as cur:
            cur.execute("COMMIT")

    def __exit__(self, *exc: object) -> None:
        self.release()
        self._reader.close()
        self._thread.join(30)

    def columns(self) -> list[str]:
        return [str(row[0]) for row in self.sb.query(f"SHOW COLUMNS FROM {DB}.{self.table}")]


def test_a_running_alter_makes_the_backup_give_up_after_the_lock_wait_timeout_and_names_it(
        source: Sandbox, tmp_path: Path) -> None:
    """A copying ALTER TABLE is running when the backup starts: its backup lock waits, and after
    --lock-wait-timeout the backup fails naming the stage, the timeout and the ALTER; the ALTER
    is unharmed and finishes once let go."""
    with HeldAlter(source, "altered") as held:
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
        assert held.running(), "the ALTER TABLE did not wait for the reader"
    assert not held.errors, held.errors
    assert held.columns() == ["id", "note"]


def test_a_running_alter_is_waited_for_and_the_backup_has_its_result(source: Sandbox, tmp_path: Path) -> None:
    with HeldAlter(source, "altered_then_copied") as held:
        releaser = threading.Timer(1.5, held.release)
        releaser.start()
        started = time.monotonic()
        manifest = PhysicalBackup(_config(source, tmp_path / "backup", lock_wait_timeout=30)).run()
        took = time.monotonic() - started
        releaser.join()
    assert not held.errors, held.errors
    assert manifest.complete
    assert took >= 1.5, "the backup did not wait for the running ALTER"
    copied = {f["relpath"] for f in manifest.files}
    assert f"{DB}/altered_then_copied.frm" in copied and f"{DB}/altered_then_copied.ibd" in copied
    assert not any(name.startswith(f"{DB}/#sql") for name in copied), "the ALTER's temporary table was copied"
    # The table as the ALTER left it (it finished before the backup's locks were granted).
    assert held.columns() == ["id", "note"]
    frm = f"{DB}/altered_then_copied.frm"
    assert (tmp_path / "backup" / frm).read_bytes() == (source.datadir / frm).read_bytes()
