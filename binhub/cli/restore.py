"""``binhub restore BACKUP --to mysql://...``: load a logical backup into a running server.

The logical part lives in :func:`restore_logical_backup` so that one ``restore`` command can
dispatch on the backup's kind (manifest.json) to it or to a physical restore.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from rich.console import Console

from binhub.backup import ServerAddress
from binhub.backup.logical import LogicalRestoreResult, restore_logical
from binhub.backup.logical.config import DEFAULT_PARALLEL
from binhub.cli.backup import LineProgress, TtyProgress
from binhub.relay.config import parse_source_dsn

PASSWORD_ENV = "BINHUB_RESTORE_PASSWORD"


def restore_logical_backup(backup: Path, to: str, *, parallel: int, indexes_after: bool, binlog: bool,
                           users: bool, progress: bool | None, unix_socket: Path | None = None) -> LogicalRestoreResult:
    """Load the logical backup ``backup`` into the server ``to`` (a DSN), with a progress bar on a TTY."""
    dsn = parse_source_dsn(to, key="--to")
    target = ServerAddress(dsn.host, dsn.port, dsn.user, dsn.password or os.environ.get(PASSWORD_ENV, ""),
                           unix_socket)
    show_bars = sys.stderr.isatty() if progress is None else progress
    if show_bars:
        with TtyProgress(Console(stderr=True)) as bars:
            result = restore_logical(backup, target, parallel=parallel, indexes_after=indexes_after, binlog=binlog,
                                     users=users, progress=bars)
    else:
        result = restore_logical(backup, target, parallel=parallel, indexes_after=indexes_after, binlog=binlog,
                                 users=users, progress=LineProgress("binhub restore", "MiB of chunks"))
    where = (f"binlog {result.binlog_file}:{result.binlog_position}, GTID {result.gtid or '(empty)'}"
             if result.binlog_file else "no binlog position (the source's binlog was off)")
    skipped = f"; accounts already there, left as they were: {', '.join(result.skipped_users)}" \
        if result.skipped_users else ""
    click.echo(f"restore complete in {result.seconds:.1f}s: {result.tables} tables, {result.rows} rows from "
               f"{result.chunks} chunks, {result.objects} views/routines/triggers/events, {result.users} accounts; "
               f"the data is the source's at {where}{skipped}")
    return result


@click.command("restore")
@click.argument("backup", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--to", "to", metavar="DSN", required=True,
              help=f"The server to load into, e.g. mysql://root@127.0.0.1:3306 (password: in the DSN or "
                   f"${PASSWORD_ENV}).")
@click.option("--socket", "unix_socket", type=click.Path(path_type=Path), metavar="PATH",
              help="Connect through this unix socket instead of the DSN's host and port.")
@click.option("--parallel", type=click.IntRange(1, 64), default=DEFAULT_PARALLEL, show_default=True,
              help="Sessions loading chunks at once.")
@click.option("--indexes-after", is_flag=True,
              help="Create InnoDB tables without their secondary indexes and add them once the rows are in "
                   "(tables with foreign keys keep theirs).")
@click.option("--binlog/--no-binlog", default=False, show_default=True,
              help="Write the load to the target's binlog (off: SET sql_log_bin=0, which needs BINLOG ADMIN).")
@click.option("--users/--no-users", default=True, show_default=True,
              help="Create the backup's accounts and roles (one the target already has is left as it is).")
@click.option("--progress/--no-progress", default=None, help="Progress bars (default: when stderr is a terminal).")
def restore(backup: Path, to: str, unix_socket: Path | None, parallel: int, indexes_after: bool, binlog: bool,
            users: bool, progress: bool | None) -> None:
    """Restore the logical backup BACKUP (binhub backup --logical) into the server --to.

    Refused before anything is touched when the backup is incomplete, a chunk fails its CRC-32C
    (named), a database of the backup already has tables on the target, or the target's
    max_allowed_packet is smaller than the longest INSERT. Then: databases and tables, the chunks
    in parallel (one transaction each; foreign_key_checks, unique_checks and the binlog off),
    secondary indexes (--indexes-after), accounts, views, routines, triggers and events. The
    restored data is the source's at the binlog position and GTID printed at the end: a replica
    set up from it starts there. Exit status 1 on failure, 2 for bad usage.
    """
    restore_logical_backup(backup, to, parallel=parallel, indexes_after=indexes_after, binlog=binlog, users=users,
                           progress=progress, unix_socket=unix_socket)
