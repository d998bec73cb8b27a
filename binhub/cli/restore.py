"""``binhub restore``: a backup into a datadir a server starts from (physical), or into a server (logical)."""

from __future__ import annotations

import importlib
import os
import shutil
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
from binhub.errors import ConfigError, RestoreError
from binhub.ops.parsers import parse_listen
from binhub.ops.pitr import RESTORE_USER, PitrSource, PitrTarget, point_in_time_restore
from binhub.sandbox import find_server_binary

SERVE_PASSWORD_ENV = "BINHUB_RESTORE_SERVE_PASSWORD"


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
    if report.reached is not None:
        lines.append(f"replayed the store up to GTID position {report.reached}")
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
@click.option("--until", "until_time", metavar="'YYYY-MM-DD HH:MM:SS'",
              help="Point in time: replay the store up to the last transaction committed at or before this time.")
@click.option("--tz", default="UTC", show_default=True, metavar="ZONE",
              help="Time zone of --until: a name (Europe/Paris) or an offset (+02:00).")
@click.option("--until-gtid", metavar="GTID[,GTID...]", help="Point in time: replay up to this GTID position.")
@click.option("--until-before-gtid", metavar="GTID",
              help="Point in time: replay up to the transaction just before GTID (e.g. a bad DROP TABLE "
                   "found with `binhub binlog find`).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), metavar="STORE",
              help="The binhub store to replay from (served by binhub itself on a free 127.0.0.1 port).")
@click.option("--serve", metavar="HOST:PORT", help="Replay from this running `binhub serve` instead.")
@click.option("--serve-user", default=RESTORE_USER, show_default=True, help="User of --serve.")
@click.option("--serve-password", envvar=SERVE_PASSWORD_ENV, default="", show_default=False,
              help=f"Password of --serve-user (or ${SERVE_PASSWORD_ENV}).")
def restore(backup: Path, to: str, prepare_with: str, owner: str | None, parallel: int, until_time: str | None,
            tz: str, until_gtid: str | None, until_before_gtid: str | None, data_dir: Path | None,
            serve: str | None, serve_user: str, serve_password: str) -> None:
    """Restore BACKUP (a directory written by `binhub backup`).

    A physical backup is copied into DATADIR, every file checked against the CRC-32C its
    manifest.json records, then prepared: InnoDB crash recovery applies the copied redo log. Start
    a server on DATADIR afterwards, e.g. `mariadbd --datadir DATADIR`. An incomplete backup, a
    damaged file or a non-empty DATADIR is refused (exit status 1); a failure half-way empties
    DATADIR again. XA transactions left prepared are listed.

    Point in time (--until, --until-gtid, --until-before-gtid): after the restore, the restored
    server (still private: no networking) replicates the store from the backup's GTID with START
    SLAVE UNTIL master_gtid_pos=TARGET, from a `binhub serve` on --data-dir that binhub starts, or
    from --serve; then replication is reset and the server shut down cleanly. The store must hold
    every transaction from the backup to the target, or nothing is touched.
    """
    targets = [t for t in (until_time, until_gtid, until_before_gtid) if t is not None]
    if len(targets) > 1:
        raise click.UsageError("give one of --until, --until-gtid, --until-before-gtid")
    if not targets and (data_dir is not None or serve is not None):
        raise click.UsageError("--data-dir and --serve go with --until, --until-gtid or --until-before-gtid")
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
    if not targets:
        report = PhysicalRestore(config).run()
    else:
        target = PitrTarget(until_gtid=until_gtid, until_before_gtid=until_before_gtid,
                            until_time=_parse_time(until_time, tz) if until_time is not None else None)
        click.echo(f"binhub restore: then replaying up to {target.describe()}", err=True)
        source = PitrSource(data_dir, parse_listen(serve, key="--serve") if serve else None, serve_user,
                            serve_password or os.environ.get(SERVE_PASSWORD_ENV, ""))
        report = point_in_time_restore(config, target, source)
    click.echo(_summary(report))


def _zone(name: str) -> tzinfo:
    if name.upper() in ("UTC", "Z"):
        return UTC
    if name[:1] in "+-" and ":" in name:
        sign = -1 if name[0] == "-" else 1
        hours, minutes = name[1:].split(":", 1)
        return timezone(sign * timedelta(hours=int(hours), minutes=int(minutes)))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError("--tz", f"unknown time zone {name!r}", hint="a name such as Europe/Paris, or +02:00") from None


def _parse_time(text: str, tz: str) -> datetime:
    try:
        naive = datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise ConfigError("--until", f"{text!r} is not a time of the form 'YYYY-MM-DD HH:MM:SS'") from None
    return naive.replace(tzinfo=_zone(tz))
