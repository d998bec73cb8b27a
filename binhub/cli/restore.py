"""``binhub restore``: a backup into a datadir a server starts from (physical), or into a server (logical)."""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path
from typing import Any

import click

from binhub.backup.restore import (
    PREPARE_WITH,
    PhysicalRestore,
    RestoreConfig,
    RestoreReport,
    check_complete,
    parse_owner,
    read_manifest,
)
from binhub.errors import RestoreError
from binhub.sandbox import find_server_binary


def restore_logical(backup: Path, to: str, **options: Any) -> None:
    """The dispatch point for logical backups (``binhub.backup.logical.restore_logical``)."""
    try:
        module = importlib.import_module("binhub.backup.logical")
    except ModuleNotFoundError:
        raise RestoreError(f"{backup} is a logical backup, and this binhub cannot restore those yet") from None
    module.restore_logical(backup, to, **options)


def _summary(report: RestoreReport) -> str:
    m = report.manifest
    where = f"binlog {m.binlog_file}:{m.binlog_position}, GTID {m.gtid or '(empty)'}" if m.binlog_file \
        else "no binlog position"
    lines = [f"restored {report.files} files ({report.bytes / 2**20:.1f} MiB) into {report.target}, "
             f"owned by {report.owner}; the backup's {where}"]
    if report.unverified:
        lines.append(f"warning: no checksum in the manifest for {', '.join(report.unverified)} (copied unchecked)")
    if report.prepared_xa:
        lines.append(f"{len(report.prepared_xa)} XA transaction(s) left prepared; after starting the server, "
                     "XA COMMIT or XA ROLLBACK each (XA RECOVER lists them):")
        lines += [f"  {xid}" for xid in report.prepared_xa]
    return "\n".join(lines)


@click.command("restore")
@click.argument("backup", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--to", "to", required=True, metavar="DATADIR",
              help="A new or empty directory that becomes the restored server's datadir.")
@click.option("--prepare-with", type=click.Choice(PREPARE_WITH), default="mariadbd", show_default=True,
              help="mariadbd: recover the copy by booting a throwaway server on it (no networking), then a "
                   "slow shutdown; mariadb-backup: run `mariadb-backup --prepare` on it.")
@click.option("--owner", metavar="USER[:GROUP]",
              help="Owner of the restored files when run as root (default: the owner of DATADIR, or of the "
                   "nearest existing directory above it).")
@click.option("--parallel", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Threads copying and checking the backup's files.")
def restore(backup: Path, to: str, prepare_with: str, owner: str | None, parallel: int) -> None:
    """Restore BACKUP (a directory written by `binhub backup`).

    A physical backup is copied into DATADIR, every file checked against the CRC-32C its
    manifest.json records, then prepared: InnoDB crash recovery applies the copied redo log. Start
    a server on DATADIR afterwards, e.g. `mariadbd --datadir DATADIR`. An incomplete backup, a
    damaged file or a non-empty DATADIR is refused (exit status 1); a failure half-way empties
    DATADIR again. XA transactions left prepared are listed.
    """
    data = read_manifest(backup)
    check_complete(backup, data)
    if data.get("kind", "physical") == "logical":
        restore_logical(backup, to, parallel=parallel)
        return
    which = shutil.which("mariadb-backup")
    config = RestoreConfig(
        backup=backup, target=Path(to), mariadbd=find_server_binary(), prepare_with=prepare_with,
        mariadb_backup=Path(which) if which else None, owner=parse_owner(owner) if owner else None,
        parallel=parallel,
    )
    click.echo(f"binhub restore: copying and checking {backup} into {to}, then preparing it with {prepare_with}",
               err=True)
    report = PhysicalRestore(config).run()
    click.echo(_summary(report))
