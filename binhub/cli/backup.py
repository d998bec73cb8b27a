"""``binhub backup --physical``: a hot physical backup of the MariaDB running on this host."""

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
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from binhub.backup import Manifest, PhysicalBackup, PhysicalBackupConfig, ServerAddress
from binhub.backup.config import DEFAULT_LOCK_WAIT_TIMEOUT
from binhub.relay.config import parse_source_dsn

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


class LineProgress:
    """Without a TTY: one line per phase on stderr."""

    def phase(self, name: str, total_bytes: int) -> None:
        click.echo(f"binhub backup: {name}: {total_bytes / 2**20:.1f} MiB to copy", err=True)

    def advance(self, nbytes: int) -> None:
        pass

    def redo(self, copied_lsn: int) -> None:
        pass


def _summary(manifest: Manifest, target: Path, seconds: float) -> str:
    where = f"binlog {manifest.binlog_file}:{manifest.binlog_position}, GTID {manifest.gtid or '(empty)'}" \
        if manifest.binlog_file else "binlog off: no binlog position"
    return (f"backup complete in {seconds:.1f}s: {target} ({len(manifest.files)} files, "
            f"{manifest.total_bytes / 2**20:.1f} MiB); {where}; redo LSN {manifest.checkpoint_lsn}..{manifest.last_lsn}")


@click.command("backup")
@click.option("--physical", is_flag=True, required=True,
              help="Copy the server's files (InnoDB pages and redo, the other engines' files); the only kind so far.")
@click.option("--source", metavar="DSN", required=True,
              help=f"The server, e.g. mysql://backup@127.0.0.1:3306 (password: in the DSN or ${PASSWORD_ENV}).")
@click.option("--socket", "unix_socket", type=click.Path(path_type=Path), metavar="PATH",
              help="Connect through this unix socket instead of the DSN's host and port.")
@click.option("--datadir", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="The server's datadir on this host (the backup reads its files directly).")
@click.option("--to", "target", type=click.Path(path_type=Path), required=True, metavar="DIR",
              help="A new or empty directory for the backup.")
@click.option("--parallel", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Threads copying InnoDB tablespaces (one file each at a time).")
@click.option("--lock-wait-timeout", type=click.IntRange(1), default=DEFAULT_LOCK_WAIT_TIMEOUT, show_default=True,
              help="Seconds a BACKUP STAGE may wait for running DDL or commits before the backup gives up.")
@click.option("--compress", type=click.Choice(["zstd"]),
              help="Store each data file as NAME.zst (checksums are of the uncompressed data; binhub restore "
                   "decompresses; mariadb-backup --prepare does not read it).")
@click.option("--progress/--no-progress", default=None, help="Progress bars (default: when stderr is a terminal).")
def backup(physical: bool, source: str, unix_socket: Path | None, datadir: Path, target: Path, parallel: int,
           lock_wait_timeout: int, compress: str | None, progress: bool | None) -> None:
    """Take a hot physical backup of a running MariaDB 10.8+ on this host.

    The redo log is copied from the last checkpoint while N threads copy the InnoDB tablespaces,
    checking every page; BACKUP STAGE keeps DDL out meanwhile and makes a consistent point at
    which the binlog file:pos and GTID are recorded. DIR then holds what `mariadb-backup --prepare
    --target-dir DIR` turns into a datadir, plus manifest.json ("complete": true only when the
    backup finished). The user needs RELOAD, PROCESS and BINLOG MONITOR. Exit status 1 when the
    backup fails (manifest.json in DIR then says why and "complete": false), 2 for bad usage.
    """
    dsn = parse_source_dsn(source, key="--source")
    password = dsn.password or os.environ.get(PASSWORD_ENV, "")
    address = ServerAddress(dsn.host, dsn.port, dsn.user, password, unix_socket)
    config = PhysicalBackupConfig(address, datadir, target, parallel=parallel, lock_wait_timeout=lock_wait_timeout,
                                  compress=compress)
    show_bars = sys.stderr.isatty() if progress is None else progress
    started = time.monotonic()
    if show_bars:
        with TtyProgress(Console(stderr=True)) as bars:
            manifest = PhysicalBackup(config, bars).run()
    else:
        manifest = PhysicalBackup(config, LineProgress()).run()
    click.echo(_summary(manifest, target, time.monotonic() - started))
