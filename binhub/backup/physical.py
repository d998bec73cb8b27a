"""The physical hot backup of a running MariaDB: the xtrabackup algorithm, with BACKUP STAGE.

Order of work (mariadb-backup 10.11.8+ does the same, but holds BLOCK_DDL for less time):

1. read the server's facts; start copying the redo log from its newest checkpoint (a thread);
2. ``BACKUP STAGE START``, ``FLUSH``, ``BLOCK_DDL``: from here no table is created, dropped,
   renamed or rebuilt, and writes to non-transactional tables (MyISAM, Aria, CSV, ...) wait, so the
   file list stays true and those tables stay still;
3. copy the InnoDB tablespaces with N threads, every page checked (InnoDB writes go on: the redo
   copy covers them), then the other engines' files and every table's metadata (N threads too);
4. ``BACKUP STAGE BLOCK_COMMIT``, the consistent point: nothing commits. Copy the statistics and
   log tables and Aria's logs, read the binlog file:pos and ``gtid_binlog_pos``, read the current
   LSN, make the log durable, and wait until the redo copy has it (and nothing after it);
5. ``BACKUP STAGE END``; write ``xtrabackup_checkpoints``, ``xtrabackup_binlog_info``,
   ``backup-my.cnf`` and the final ``manifest.json`` (``complete: true``).

Recovery of the copy (``mariadb-backup --prepare``, or a ``mariadbd`` started on it) replays the
redo from the checkpoint to the consistent point and rolls back what had not committed there.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from binhub.backup.config import PhysicalBackupConfig
from binhub.backup.datafiles import (
    BACKUP_DISK_FULL,
    BACKUP_DISK_FULL_AT_START,
    CopiedFile,
    DatadirFile,
    DatadirInventory,
    TablespaceCopier,
    copy_plain_file,
    describe_file,
    naming_a_full_disk,
    sync_to_disk,
    take_inventory,
)
from binhub.backup.metadata import (
    MANIFEST,
    Manifest,
    write_backup_my_cnf,
    write_binlog_info,
    write_checkpoints,
)
from binhub.backup.redo_copier import RedoCopier
from binhub.backup.session import ServerSession
from binhub.errors import BackupError, ConfigError, TargetFull

log = logging.getLogger("binhub.backup")

REDO_LOG = "ib_logfile0"
MIN_VERSION = (10, 8)  # the single-file redo format


class Progress(Protocol):
    """What the backup reports while it runs (a TTY progress bar, a log, nothing)."""

    def phase(self, name: str, total_bytes: int) -> None: ...

    def advance(self, nbytes: int) -> None: ...  # called from the copy threads

    def redo(self, copied_lsn: int) -> None: ...  # called from the redo thread


class NoProgress:
    def phase(self, name: str, total_bytes: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass

    def redo(self, copied_lsn: int) -> None:
        pass


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _mib(nbytes: int) -> str:
    return f"{nbytes / 2**20:,.1f} MiB"


def _size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _server_version(version: str) -> tuple[int, int, int]:
    match = re.match(r"(\d+)\.(\d+)\.(\d+)", version)
    if not match:
        raise BackupError(f"cannot read the server version {version!r}")
    major, minor, patch = (int(x) for x in match.groups())
    return major, minor, patch


class PhysicalBackup:
    """One run of ``binhub backup --physical``. :meth:`run` returns the final manifest or raises;
    either way the target's ``manifest.json`` says whether the backup is complete."""

    def __init__(self, config: PhysicalBackupConfig, progress: Progress | None = None) -> None:
        self.config = config
        self.progress: Progress = progress or NoProgress()
        self._datadir_bytes = 0  # what the copy of the data files will write (the redo log comes on top)

    def run(self) -> Manifest:
        config = self.config
        created = self._prepare_target()
        with ServerSession(config.source, lock_wait_timeout=config.lock_wait_timeout) as session:
            variables = session.variables()
            version = self._check_server(variables)
            self._datadir_bytes = DatadirInventory.size_of(take_inventory(config.datadir).every_file)
            manifest = Manifest(server_version=variables["version"], flavour="mariadb", started_at=_now(),
                                compression=config.compress)
            try:
                self._check_free_space()
                with naming_a_full_disk(config.target / MANIFEST, BACKUP_DISK_FULL_AT_START):
                    manifest.write(config.target)
            except BaseException:
                if created:  # nothing was copied and the source was not locked: leave no backup behind
                    shutil.rmtree(config.target, ignore_errors=True)
                raise
            try:
                with naming_a_full_disk(config.target, BACKUP_DISK_FULL):
                    self._copy(session, variables, version, manifest)
            except BaseException as exc:
                # The source first: its backup locks go whatever happened to the target.
                with contextlib.suppress(Exception):
                    session.backup_stage("END")
                error = exc
                if isinstance(exc, TargetFull):  # say how much room the backup wants
                    error = TargetFull(exc.path, f"{exc.reason}; {self._space_report()}", hint=exc.hint or BACKUP_DISK_FULL)
                manifest.error = str(error) or type(error).__name__
                manifest.finished_at = _now()
                # A full disk may refuse this too; the manifest written at the start says incomplete.
                with contextlib.suppress(OSError):
                    manifest.write(config.target)
                if error is not exc:
                    raise error from exc
                raise
        return manifest

    # --- space on the target ----------------------------------------------------------------------

    def _check_free_space(self) -> None:
        """Refuse a target whose disk cannot hold the datadir's files, before the source is locked
        (compressed backups are not checked: their size is not known in advance)."""
        if self.config.compress is not None:
            return
        free = shutil.disk_usage(self.config.target).free
        if free < self._datadir_bytes:
            raise TargetFull(str(self.config.target),
                             f"the backup needs at least {_mib(self._datadir_bytes)} (the datadir's files, "
                             f"before the redo log written meanwhile), its disk has {_mib(free)} free",
                             hint=BACKUP_DISK_FULL_AT_START)

    def _space_report(self) -> str:
        """What a backup that filled its disk needed, had written and has left (for the error)."""
        written = 0
        for path in self.config.target.rglob("*"):
            with contextlib.suppress(OSError):
                written += path.lstat().st_size if path.is_file() else 0
        redo = _size_of(self.config.target / REDO_LOG)
        free = shutil.disk_usage(self.config.target).free
        return (f"the backup needs at least {_mib(self._datadir_bytes + redo)} (the datadir's files and the "
                f"redo log copied so far), {_mib(written)} were written, {_mib(free)} are free")

    # --- checks -----------------------------------------------------------------------------------------

    def _prepare_target(self) -> bool:
        """Make the target directory; True when this backup created it."""
        target = self.config.target
        if target.exists() and any(target.iterdir()):
            raise ConfigError("--to", f"{target} is not empty; a backup goes into a new or empty directory")
        created = not target.exists()
        target.mkdir(mode=0o700, parents=True, exist_ok=True)
        return created

    def _check_server(self, variables: dict[str, str]) -> tuple[int, int, int]:
        if "mariadb" not in variables.get("version", "").lower():
            raise BackupError(f"the server is not MariaDB ({variables.get('version')}); "
                              "binhub's physical backup reads MariaDB 10.8+ files only")
        version = _server_version(variables["version"])
        if version[:2] < MIN_VERSION:
            raise BackupError(f"MariaDB {variables['version']} uses the redo format of 10.5-10.7; "
                              "binhub's physical backup needs MariaDB 10.8 or later")
        server_datadir = Path(variables.get("datadir", ""))
        if not self.config.datadir.is_dir():
            raise ConfigError("--datadir", f"{self.config.datadir} is not a directory on this host")
        with contextlib.suppress(OSError):
            if not server_datadir.samefile(self.config.datadir):
                raise ConfigError("--datadir", f"{self.config.datadir} is not the server's datadir ({server_datadir}); "
                                  "run the backup on the database host and name its datadir")
        for name in ("innodb_data_home_dir", "innodb_undo_directory"):
            if not self._inside_datadir(variables.get(name, "")):
                raise BackupError(f"{name}={variables[name]} puts InnoDB files outside the datadir; "
                                  "binhub's physical backup copies a datadir that holds them all")
        if variables.get("innodb_encrypt_log", "OFF").upper() == "ON":
            raise BackupError("the server encrypts its redo log (innodb_encrypt_log=ON); binhub cannot copy it yet")
        return version

    def _inside_datadir(self, setting: str) -> bool:
        path = self._path_in_datadir(setting)
        try:
            return path.samefile(self.config.datadir)
        except OSError:
            return False

    def _path_in_datadir(self, setting: str) -> Path:
        path = Path(setting or ".")
        return path if path.is_absolute() else self.config.datadir / path

    # --- the copy ---------------------------------------------------------------------------------------

    def _copy(self, session: ServerSession, variables: dict[str, str], version: tuple[int, int, int],
              manifest: Manifest) -> None:
        config = self.config
        probe = ServerSession(config.source)
        try:
            copier = RedoCopier(
                self._path_in_datadir(variables.get("innodb_log_group_home_dir", "")) / REDO_LOG,
                config.target / REDO_LOG,
                lsn_probe=probe.current_lsn,
                creator="Backup {}.{}.{}".format(*version),
                interval=config.log_copy_interval,
                on_progress=self.progress.redo,
            )
        except BaseException:
            probe.close()
            raise
        manifest.checkpoint_lsn = copier.start_lsn
        try:
            copier.start()
            for stage in ("START", "FLUSH", "BLOCK_DDL"):
                session.backup_stage(stage)
            inventory = take_inventory(config.datadir)
            flags = session.tablespace_flags()
            self.progress.phase("InnoDB", inventory.size_of(inventory.innodb))
            manifest.add_files(self._copy_innodb(inventory.innodb, flags, int(variables["innodb_page_size"]),
                                                 copier.check))
            self.progress.phase("other engines", inventory.size_of(inventory.other))
            manifest.add_files(self._in_threads([functools.partial(self._copy_plain_file, f) for f in inventory.other]))

            copier.check()
            session.backup_stage("BLOCK_COMMIT")
            self.progress.phase("consistent point", inventory.size_of(inventory.at_commit))
            session.flush_engine_logs()  # Aria's log reaches the disk before it is copied
            manifest.add_files(self._copy_plain(inventory.at_commit))
            position = session.binlog_position()
            # The copy ends exactly at this LSN: past it, once END lets commits go on, the log holds
            # transactions the binlog position leaves out (prepared or committed after it).
            end_lsn = copier.end_at(session.current_lsn)
            session.flush_engine_logs()  # and InnoDB's, up to end_lsn
            copier.wait_for(end_lsn, config.redo_catch_up_timeout)
            session.backup_stage("END")
        finally:
            try:
                copier.close()
            finally:
                probe.close()
        # The redo log gets its checksum (a restore checks it too), and is compressed when asked.
        if config.compress is None:
            size, crc = copier.written
            manifest.add_files([CopiedFile(REDO_LOG, size, f"{crc:08x}")])
        else:
            manifest.add_files([describe_file(config.target, REDO_LOG, config.compress)])
        # Durable before "complete": every copied file, then the directories that name them.
        sync_to_disk([config.target / (f["stored"] or f["relpath"]) for f in manifest.files],
                     threads=max(4, config.parallel))
        manifest.set_binlog(position)
        manifest.end_lsn = end_lsn
        manifest.last_lsn = copier.copied_lsn
        write_checkpoints(config.target, checkpoint_lsn=copier.start_lsn, last_lsn=copier.copied_lsn)
        if position is not None:
            write_binlog_info(config.target, position)
        write_backup_my_cnf(config.target, variables)
        manifest.complete = True
        manifest.finished_at = _now()
        manifest.write(config.target)

    def _copy_innodb(self, files: list[DatadirFile], flags: dict[str, int], page_size: int,
                     redo_ok: Callable[[], None]) -> list[CopiedFile]:
        copier = TablespaceCopier(default_page_size=page_size, retries=self.config.page_retries,
                                  retry_delay=self.config.page_retry_delay, compression=self.config.compress)

        def one(item: DatadirFile) -> CopiedFile:
            redo_ok()  # a failed redo copy fails the backup now, not after every file is copied
            hint = flags.get(item.relpath.removesuffix(".ibd")) if item.relpath.endswith(".ibd") else None
            with naming_a_full_disk(self.config.target / item.relpath, BACKUP_DISK_FULL):
                return copier.copy(self.config.datadir / item.relpath, self.config.target / item.relpath,
                                   item.relpath, hint, self.progress.advance)

        return self._in_threads([functools.partial(one, f) for f in files])

    def _copy_plain(self, files: list[DatadirFile]) -> list[CopiedFile]:
        return [self._copy_plain_file(f) for f in files]

    def _copy_plain_file(self, item: DatadirFile) -> CopiedFile:
        with naming_a_full_disk(self.config.target / item.relpath, BACKUP_DISK_FULL):
            return copy_plain_file(self.config.datadir / item.relpath, self.config.target / item.relpath,
                                   item.relpath, self.progress.advance, self.config.compress)

    def _in_threads(self, jobs: Sequence[Callable[[], CopiedFile]]) -> list[CopiedFile]:
        if self.config.parallel == 1 or len(jobs) < 2:
            return [job() for job in jobs]
        started = time.monotonic()
        with ThreadPoolExecutor(self.config.parallel, thread_name_prefix="binhub-copy") as pool:
            futures = [pool.submit(job) for job in jobs]
            try:
                results = [future.result() for future in futures]
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        log.debug("copied %d files in %.1fs", len(jobs), time.monotonic() - started)
        return results
