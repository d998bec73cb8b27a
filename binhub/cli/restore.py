"""``binhub restore``: a backup into a datadir a server starts from (physical), or into a running
server (logical): one command that dispatches on the backup's kind (manifest.json)."""

from __future__ import annotations

import os
import shutil
import sys
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
from rich.console import Console

from binhub.backup import ServerAddress
from binhub.backup.logical import LogicalRestoreResult, restore_logical
from binhub.backup.restore import (
    PREPARE_WITH,
    PhysicalRestore,
    RestoreConfig,
    RestoreReport,
    check_complete,
    parse_owner,
    read_manifest,
)
from binhub.cli.backup import LineProgress, TtyProgress
from binhub.errors import ConfigError
from binhub.ops.parsers import parse_listen
from binhub.relay.config import parse_source_dsn
from binhub.sandbox import find_server_binary

if TYPE_CHECKING:  # the point-in-time replay loads the store and asyncio: imported when one is asked for
    from binhub.ops.pitr import PitrTarget

SERVE_PASSWORD_ENV = "BINHUB_RESTORE_SERVE_PASSWORD"
PASSWORD_ENV = "BINHUB_RESTORE_PASSWORD"


def restore_logical_backup(backup: Path, to: str, *, parallel: int, indexes_after: bool, binlog: bool,
                           users: bool, progress: bool | None, unix_socket: Path | None = None,
                           resume: bool = False) -> LogicalRestoreResult:
    """Load the logical backup ``backup`` into the server ``to`` (a DSN), with a progress bar on a TTY."""
    dsn = parse_source_dsn(to, key="--to")
    target = ServerAddress(dsn.host, dsn.port, dsn.user, dsn.password or os.environ.get(PASSWORD_ENV, ""),
                           unix_socket)
    show_bars = sys.stderr.isatty() if progress is None else progress
    if show_bars:
        with TtyProgress(Console(stderr=True)) as bars:
            result = restore_logical(backup, target, parallel=parallel, indexes_after=indexes_after, binlog=binlog,
                                     users=users, resume=resume, progress=bars)
    else:
        result = restore_logical(backup, target, parallel=parallel, indexes_after=indexes_after, binlog=binlog,
                                 users=users, resume=resume, progress=LineProgress("binhub restore", "MiB of chunks"))
    where = (f"binlog {result.binlog_file}:{result.binlog_position}, GTID {result.gtid or '(empty)'}"
             if result.binlog_file else "no binlog position (the source's binlog was off)")
    skipped = f"; accounts already there, left as they were: {', '.join(result.skipped_users)}" \
        if result.skipped_users else ""
    click.echo(f"restore complete in {result.seconds:.1f}s: {result.tables} tables, {result.rows} rows from "
               f"{result.chunks} chunks, {result.objects} views/routines/triggers/events, {result.users} accounts; "
               f"the data is the source's at {where}{skipped}")
    return result


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
@click.option("--to", "to", required=True, metavar="DATADIR|DSN",
              help=f"Physical: a new or empty directory that becomes the restored server's datadir. Logical: the "
                   f"server to load into, e.g. mysql://root@127.0.0.1:3306 (password: in the DSN or ${PASSWORD_ENV}).")
@click.option("--prepare-with", type=click.Choice(PREPARE_WITH), default="mariadbd", show_default=True,
              help="mariadbd: recover the copy by booting a throwaway server on it (no networking), then a "
                   "slow shutdown; mariadb-backup: run `mariadb-backup --prepare` on it.")
@click.option("--owner", metavar="USER[:GROUP]",
              help="Owner of the restored files when run as root (default: the owner of DATADIR, or of the "
                   "nearest existing directory above it).")
@click.option("--parallel", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Physical: threads copying and checking the backup's files. Logical: sessions loading chunks.")
@click.option("--move", is_flag=True,
              help="Physical: rename the backup's files into DATADIR instead of copying them (same filesystem, "
                   "uncompressed backup), checking each where it lands. Uses the backup up, as "
                   "`mariadb-backup --move-back` does: it is marked incomplete before the first file moves.")
@click.option("--socket", "unix_socket", type=click.Path(path_type=Path), metavar="PATH",
              help="Logical: connect through this unix socket instead of the DSN's host and port.")
@click.option("--indexes-after/--no-indexes-after", default=True, show_default=True,
              help="Logical: create InnoDB tables without their secondary indexes and add them once the rows are "
                   "in, one sort per index (tables with foreign keys keep theirs).")
@click.option("--binlog/--no-binlog", default=False, show_default=True,
              help="Logical: write the load to the target's binlog (off: SET sql_log_bin=0, which needs BINLOG ADMIN).")
@click.option("--users/--no-users", default=True, show_default=True,
              help="Logical: create the backup's accounts and roles (one the target already has is left as it is).")
@click.option("--resume", is_flag=True,
              help="Logical: go on with a restore of this backup that was cut short (killed, target restarted): "
                   "load only the parts of chunks the target's binhub.logical_restore_chunks does not count as committed.")
@click.option("--progress/--no-progress", default=None, help="Logical: progress bars (default: when stderr is a terminal).")
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
@click.option("--serve-user", help="User of --serve (default: binhub_restore, the user a point-in-time restore "
                                  "replicates as).")
@click.option("--serve-password", envvar=SERVE_PASSWORD_ENV, default="", show_default=False,
              help=f"Password of --serve-user (or ${SERVE_PASSWORD_ENV}).")
def restore(backup: Path, to: str, prepare_with: str, owner: str | None, parallel: int, move: bool,
            unix_socket: Path | None, indexes_after: bool, binlog: bool, users: bool, resume: bool,
            progress: bool | None, until_time: str | None,
            tz: str, until_gtid: str | None, until_before_gtid: str | None, data_dir: Path | None,
            serve: str | None, serve_user: str | None, serve_password: str) -> None:
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

    A logical backup (binhub backup --logical) is loaded into the running server --to DSN. Refused
    before anything is touched when the backup is incomplete, a chunk fails its CRC-32C (named), a
    database of the backup already has tables on the target, or the target has local_infile off.
    Then: databases and tables, the chunks in parallel by LOAD DATA LOCAL INFILE streamed from
    binhub (foreign_key_checks, unique_checks and the binlog off), secondary indexes
    (unless --no-indexes-after), accounts, views, routines, triggers and events. The restored data is the
    source's at the binlog position and GTID printed at the end. Each part of a chunk commits with
    its count in binhub.logical_restore_chunks on the target: after a kill or a crash, --resume
    loads only what is missing (no row twice).
    """
    targets = [t for t in (until_time, until_gtid, until_before_gtid) if t is not None]
    if len(targets) > 1:
        raise click.UsageError("give one of --until, --until-gtid, --until-before-gtid")
    if not targets and (data_dir is not None or serve is not None):
        raise click.UsageError("--data-dir and --serve go with --until, --until-gtid or --until-before-gtid")
    if targets and data_dir is None and serve is None:
        raise click.UsageError("a point-in-time restore replays the store: give --data-dir STORE (or --serve HOST:PORT)")
    # the target is checked before anything is copied
    target: PitrTarget | None = None
    if targets:
        from binhub.ops.pitr import PitrTarget

        target = PitrTarget(until_gtid=until_gtid, until_before_gtid=until_before_gtid,
                            until_time=_parse_time(until_time, tz) if until_time is not None else None)
    data = read_manifest(backup)
    check_complete(backup, data)
    if data.get("kind", "physical") == "logical":
        if targets:
            raise click.UsageError("point-in-time restore is for physical backups; a logical one is loaded as it is")
        if move:
            raise click.UsageError("--move is for physical backups: a logical one is loaded, not laid out as files")
        restore_logical_backup(backup, to, parallel=parallel, indexes_after=indexes_after, binlog=binlog, users=users,
                               progress=progress, unix_socket=unix_socket, resume=resume)
        return
    if resume:
        raise click.UsageError("--resume is for logical backups; a physical restore that failed empties DATADIR: rerun it")
    which = shutil.which("mariadb-backup")
    config = RestoreConfig(
        backup=backup, target=Path(to), mariadbd=find_server_binary(), prepare_with=prepare_with,
        mariadb_backup=Path(which) if which else None, owner=parse_owner(owner) if owner else None,
        parallel=parallel, move=move,
    )
    click.echo(f"binhub restore: {'moving' if move else 'copying'} and checking {backup} into {to}, then preparing "
               f"it with {prepare_with}", err=True)
    if target is None:
        report = PhysicalRestore(config).run()
    else:
        from binhub.ops.pitr import RESTORE_USER, PitrSource, point_in_time_restore

        click.echo(f"binhub restore: then replaying up to {target.describe()}", err=True)
        source = PitrSource(data_dir, parse_listen(serve, key="--serve") if serve else None, serve_user or RESTORE_USER,
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
