"""``binhub backup --physical`` (a hot physical backup of the MariaDB running on this host) and
``binhub backup --logical`` (a consistent, parallel dump of any reachable server)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from binhub.backup import Manifest, PhysicalBackup, PhysicalBackupConfig, ServerAddress
from binhub.backup.config import DEFAULT_LOCK_WAIT_TIMEOUT
from binhub.backup.logical import LogicalBackup, LogicalBackupConfig, LogicalManifest
from binhub.backup.logical.config import DEFAULT_CHUNK_ROWS, DEFAULT_PARALLEL
from binhub.cli.params import TABLE_PATTERNS
from binhub.errors import ConfigError

PASSWORD_ENV = "BINHUB_BACKUP_PASSWORD"


class TtyProgress:
    """One bar per phase (bytes, speed, time left) and a line that follows the redo copy."""

    def __init__(self, console: Console) -> None:
        self._bars = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(bar_width=24), DownloadColumn(), TransferSpeedColumn(),
            TimeRemainingColumn(), TextColumn("{task.fields[redo]}"), console=console, transient=False,
        )
        self._task: TaskID | None = None
        self._start_lsn: int | None = None
        self._redo = ""

    def __enter__(self) -> TtyProgress:
        self._bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bars.stop()

    def phase(self, name: str, total_bytes: int) -> None:
        if self._task is not None:
            task = self._bars.tasks[self._task]
            self._bars.update(self._task, completed=max(task.completed, task.total or 0))
        self._task = self._bars.add_task(name, total=max(total_bytes, 1), redo=self._redo)

    def advance(self, nbytes: int) -> None:
        if self._task is not None:
            self._bars.update(self._task, advance=nbytes)

    def redo(self, copied_lsn: int) -> None:
        if self._start_lsn is None:
            self._start_lsn = copied_lsn
        self._redo = f"redo +{(copied_lsn - self._start_lsn) / 2**20:.1f} MiB"
        if self._task is not None:
            self._bars.update(self._task, redo=self._redo)


class RowsProgress:
    """A logical dump on a TTY: one bar per phase, counting rows against the tables' estimates."""

    def __init__(self, console: Console) -> None:
        self._bars = Progress(TextColumn("[bold]{task.description}"), BarColumn(bar_width=24), MofNCompleteColumn(),
                              TextColumn("rows"), TimeRemainingColumn(), console=console, transient=False)
        self._task: TaskID | None = None

    def __enter__(self) -> RowsProgress:
        self._bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bars.stop()

    def phase(self, name: str, total: int) -> None:
        self._task = self._bars.add_task(name, total=max(total, 1))

    def advance(self, amount: int) -> None:
        if self._task is not None:
            self._bars.update(self._task, advance=amount)


class LineProgress:
    """Without a TTY: one line per phase on stderr, e.g. ``binhub backup: tables: 1,234 rows to dump``."""

    def __init__(self, command: str = "binhub backup", what: str = "MiB to copy") -> None:
        self._command = command
        self._what = what

    def phase(self, name: str, total_bytes: int) -> None:
        amount = f"{total_bytes / 2**20:.1f}" if self._what.startswith("MiB") else f"{total_bytes:,}"
        click.echo(f"{self._command}: {name}: {amount} {self._what}", err=True)

    def advance(self, nbytes: int) -> None:
        pass

    def redo(self, copied_lsn: int) -> None:
        pass


def _where(binlog_file: str | None, position: int | None, gtid: str | None) -> str:
    return f"binlog {binlog_file}:{position}, GTID {gtid or '(empty)'}" if binlog_file \
        else "binlog off: no binlog position"


def _logical_summary(manifest: LogicalManifest, target: Path, seconds: float) -> str:
    chunks = sum(len(t.chunks) for t in manifest.tables)
    return (f"backup complete in {seconds:.1f}s: {target} ({len(manifest.tables)} tables, {manifest.rows} rows in "
            f"{chunks} chunks, {manifest.chunk_bytes / 2**20:.1f} MiB); "
            f"{_where(manifest.binlog_file, manifest.binlog_position, manifest.gtid)}; "
            f"writers held {manifest.lock_seconds:.3f}s by {manifest.lock}")


def _summary(manifest: Manifest, target: Path, seconds: float) -> str:
    where = _where(manifest.binlog_file, manifest.binlog_position, manifest.gtid)
    return (f"backup complete in {seconds:.1f}s: {target} ({len(manifest.files)} files, "
            f"{manifest.total_bytes / 2**20:.1f} MiB); {where}; redo LSN {manifest.checkpoint_lsn}..{manifest.last_lsn}")


@click.command("backup")
@click.option("--physical", "take_physical", is_flag=True,
              help="Copy the server's files (InnoDB pages and redo, the other engines' files); needs --datadir.")
@click.option("--logical", "take_logical", is_flag=True,
              help="Dump the rows and the schema as SQL, in parallel, at one consistent point.")
@click.option("--source", metavar="DSN", required=True,
              help=f"The server, e.g. mysql://backup@127.0.0.1:3306 (password: in the DSN or ${PASSWORD_ENV}).")
@click.option("--socket", "unix_socket", type=click.Path(path_type=Path), metavar="PATH",
              help="Connect through this unix socket instead of the DSN's host and port.")
@click.option("--datadir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="--physical: the server's datadir on this host (the backup reads its files directly).")
@click.option("--to", "target", type=click.Path(path_type=Path), required=True, metavar="DIR",
              help="A new or empty directory for the backup.")
@click.option("--parallel", type=click.IntRange(1, 64), default=None,
              help=f"Threads: --physical copies one InnoDB file each at a time (default 1); --logical has one "
                   f"session each reading chunks (default {DEFAULT_PARALLEL}).")
@click.option("--include", multiple=True, metavar="DB.TABLE", callback=TABLE_PATTERNS,
              help="--logical: take only tables matching this glob (repeatable), e.g. 'shop.*'.")
@click.option("--exclude", multiple=True, metavar="DB.TABLE", callback=TABLE_PATTERNS, help="--logical: leave out tables matching this glob.")
@click.option("--chunk-rows", type=click.IntRange(1), default=DEFAULT_CHUNK_ROWS, show_default=True,
              help="--logical: rows per chunk file (a table with an integer key is split into ranges of about this).")
@click.option("--users/--no-users", default=True, show_default=True,
              help="--logical: take the accounts and roles (SHOW CREATE USER, SHOW GRANTS).")
@click.option("--lock-wait-timeout", type=click.IntRange(1), default=DEFAULT_LOCK_WAIT_TIMEOUT, show_default=True,
              help="Seconds the backup lock may wait for running DDL or commits before the backup gives up.")
@click.option("--compress", type=click.Choice(["zstd"]),
              help="--physical: store each data file as NAME.zst (checksums are of the uncompressed data; binhub "
                   "restore decompresses; mariadb-backup --prepare does not read it).")
@click.option("--progress/--no-progress", default=None, help="Progress bars (default: when stderr is a terminal).")
def backup(take_physical: bool, take_logical: bool, source: str, unix_socket: Path | None, datadir: Path | None,
           target: Path, parallel: int | None, include: tuple[str, ...], exclude: tuple[str, ...], chunk_rows: int, users: bool,
           lock_wait_timeout: int, compress: str | None, progress: bool | None) -> None:
    """Take a backup: physical (--physical, on the database host) or logical (--logical, from anywhere).

    --physical copies a running MariaDB 10.8+: the redo log is copied from the last checkpoint
    while N threads copy the InnoDB tablespaces, checking every page; BACKUP STAGE keeps DDL out
    meanwhile and makes a consistent point at which the binlog file:pos and GTID are recorded. DIR
    then holds what `mariadb-backup --prepare --target-dir DIR` turns into a datadir. The user
    needs RELOAD, PROCESS and BINLOG MONITOR.

    --logical stops commits for an instant (BACKUP STAGE BLOCK_COMMIT, or FLUSH TABLES WITH READ
    LOCK), opens N consistent snapshots inside it and records the binlog file:pos and GTID there;
    non-transactional tables are dumped before the lock is released. Tables are split into key
    ranges, each chunk a zstd-compressed file of LOAD DATA lines with its CRC-32C in manifest.json, beside
    the schema, views, routines, triggers, events and users; sequences with their state (SETVAL
    on restore), system-versioned tables with their history (FOR SYSTEM_TIME ALL). A lock that
    waits past --lock-wait-timeout fails naming the session in its way (id, account, time,
    statement). `binhub restore DIR --to DSN` loads it. The user needs SELECT, RELOAD, PROCESS,
    SHOW VIEW, TRIGGER, EVENT, BINLOG MONITOR and, for the users, SELECT on mysql.

    Both write manifest.json ("complete": true only when the backup finished). Exit status 1 when
    the backup fails (manifest.json in DIR then says why and "complete": false), 2 for bad usage.
    """
    if take_physical == take_logical:
        raise click.UsageError("choose one of --physical, --logical" if take_physical else
                               "say which backup: --physical or --logical")
    # Here, not at the top: the package binhub.relay loads the whole relay (a second of start-up on a busy host).
    from binhub.relay.config import parse_source_dsn

    dsn = parse_source_dsn(source, key="--source")
    password = dsn.password or os.environ.get(PASSWORD_ENV, "")
    address = ServerAddress(dsn.host, dsn.port, dsn.user, password, unix_socket)
    show_bars = sys.stderr.isatty() if progress is None else progress
    started = time.monotonic()
    if take_logical:
        if datadir is not None:
            raise ConfigError("--datadir", "a logical backup reads through SQL only; --datadir is for --physical")
        if compress is not None:
            raise click.UsageError("--compress is for --physical: a logical backup's chunks are always zstd")
        config = LogicalBackupConfig(address, target, parallel=parallel or DEFAULT_PARALLEL, chunk_rows=chunk_rows,
                                     include=include, exclude=exclude, users=users,
                                     lock_wait_timeout=lock_wait_timeout)
        if show_bars:
            with RowsProgress(Console(stderr=True)) as rows_bars:
                logical = LogicalBackup(config, rows_bars).run()
        else:
            logical = LogicalBackup(config, LineProgress(what="rows (estimated) to dump")).run()
        click.echo(_logical_summary(logical, target, time.monotonic() - started))
        return
    if datadir is None:
        raise click.UsageError("--physical needs --datadir (the server's datadir on this host)")
    if include or exclude:
        raise click.UsageError("--include/--exclude are for --logical; a physical backup copies the whole server")
    physical = PhysicalBackupConfig(address, datadir, target, parallel=parallel or 1,
                                    lock_wait_timeout=lock_wait_timeout, compress=compress)
    if show_bars:
        with TtyProgress(Console(stderr=True)) as bars:
            manifest = PhysicalBackup(physical, bars).run()
    else:
        manifest = PhysicalBackup(physical, LineProgress()).run()
    click.echo(_summary(manifest, target, time.monotonic() - started))
