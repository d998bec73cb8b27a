"""``binhub backup``: take a backup (``binhub backup --physical ...``), or look after the backups under a
root directory (``ls``, ``verify``, ``prune``)."""

from __future__ import annotations

import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from binhub.cli.backup import backup as take_backup
from binhub.cli.params import DURATION

if TYPE_CHECKING:
    from binhub.backup.catalog import BackupEntry

# The catalogue (restore, recovery server, logical loader), rich's tables and the sandbox are imported
# by the subcommands that use them: taking a backup, the common case, then starts without them.

HELP_OPTIONS = ("-h", "--help")


class BackupGroup(click.Group):
    """Subcommands by name; any other first argument belongs to taking a backup (``--physical ...``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in HELP_OPTIONS:
            args = ["take", *args]
        return super().parse_args(ctx, args)


class _TakeContext(click.Context):
    """``take`` is the group's hidden default: usage errors name ``binhub backup``, what the user typed."""

    @property
    def command_path(self) -> str:
        return self.parent.command_path if self.parent is not None else super().command_path


@click.group("backup", cls=BackupGroup)
def backup() -> None:
    """Take a backup, or list, verify and prune the backups under a directory.

    \b
    binhub backup --physical --source DSN --datadir PATH --to DIR ...   take one
                                              (all options: binhub backup --physical --help)
    binhub backup ls ROOT                     what exists: time, GTID, size, complete or not
    binhub backup verify ROOT|DIR ...         re-check every file's checksum
    binhub backup prune ROOT --keep N | --older-than AGE [--data-dir STORE]
    """


take_backup.context_class = _TakeContext
backup.add_command(take_backup, "take")


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n < 2**30 else f"{n / 2**30:.2f} GiB"


def _state(entry: BackupEntry) -> str:
    if entry.complete:
        return "complete"
    return "running?" if entry.running else "INCOMPLETE"


@backup.command("ls")
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per backup.")
def ls(root: Path, as_json: bool) -> None:
    """List the backups under ROOT (each a directory with a manifest.json), oldest first."""
    from rich.console import Console
    from rich.table import Table

    from binhub.backup.catalog import list_backups

    entries = list_backups(root)
    if as_json:
        for entry in entries:
            click.echo(json.dumps(entry.as_dict()))
        return
    table = Table(box=None)
    for column in ("backup", "kind", "state", "started (UTC)", "GTID", "binlog", "size"):
        table.add_column(column)
    for e in entries:
        table.add_row(e.path.name, e.kind, _state(e), e.started_at.replace("T", " ").rstrip("Z"), e.gtid or "-",
                      e.binlog or "-", _size(e.size))
    Console(width=200).print(table)


@backup.command("verify")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--restore", "by_restore", is_flag=True,
              help="Also restore each good physical backup into a scratch directory, start a throwaway server "
                   "on it and run CHECK TABLE on every table.")
@click.option("--scratch", type=click.Path(file_okay=False, path_type=Path),
              help="Where --restore puts its throwaway datadirs (default: the system's temp dir).")
def verify(paths: tuple[Path, ...], by_restore: bool, scratch: Path | None) -> None:
    """Re-read every file of each backup (a backup directory, or every backup under a root) and
    compare its size and CRC-32C with the manifest; a damaged InnoDB file is named with the offset of
    its first bad page. Exit status 1 when a backup is damaged, incomplete or (--restore) fails CHECK TABLE."""
    from binhub.backup.catalog import list_backups, verify_backup, verify_by_restore
    from binhub.sandbox import find_server_binary

    bad = 0
    for path in paths:
        for entry in list_backups(path):
            if not entry.complete:
                click.echo(f"{entry.path}: INCOMPLETE ({entry.error or 'not finished'})")
                bad += 1
                continue
            started = time.monotonic()
            problems = verify_backup(entry.path)
            if problems:
                bad += 1
                click.echo(f"{entry.path}: DAMAGED")
                for problem in problems:
                    click.echo(f"  {problem}")
                continue
            click.echo(f"{entry.path}: OK ({_size(entry.size)} in {time.monotonic() - started:.1f}s)")
            if by_restore and entry.kind == "physical":
                with tempfile.TemporaryDirectory(prefix="binhub-verify-", dir=scratch) as where:
                    tables, failures = verify_by_restore(entry.path, find_server_binary(), Path(where) / "datadir")
                if failures:
                    bad += 1
                    click.echo(f"{entry.path}: CHECK TABLE failed after restore:")
                    for failure in failures:
                        click.echo(f"  {failure}")
                else:
                    click.echo(f"{entry.path}: restored, CHECK TABLE OK for {tables} tables")
    if bad:
        raise SystemExit(1)


@backup.command("prune")
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--keep", type=click.IntRange(1), help="Keep the newest N complete backups; remove the rest.")
@click.option("--older-than", callback=DURATION, metavar="AGE", help="Remove backups started more than AGE ago (e.g. 30d, 12h).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), metavar="STORE",
              help="The store point-in-time restores replay: the oldest backup it can extend is kept.")
@click.option("--dry-run", is_flag=True, help="Say what would go, remove nothing.")
def prune(root: Path, keep: int | None, older_than: float | None, data_dir: Path | None, dry_run: bool) -> None:
    """Remove old backups under ROOT. Never removed: the newest complete backup; with --data-dir, the
    oldest complete backup the store can extend (the base of a point-in-time restore to the earliest
    moment the store reaches); a backup that may still be running."""
    from binhub.backup.catalog import list_backups, prune_plan, remove_backup

    if keep is None and older_than is None:
        raise click.UsageError("give --keep N, --older-than AGE or both")
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than) if older_than is not None else None
    store_start = None
    if data_dir is not None:
        from binhub.store import StoreReader  # here: loading the store costs every other command its start-up
        from binhub.store.search import first_file_state

        store = StoreReader.open(data_dir)
        try:
            store_start = first_file_state(store)
        finally:
            store.close()
    doomed = prune_plan(list_backups(root), keep=keep, older_than=cutoff, store_start=store_start)
    for entry in doomed:
        click.echo(f"{'would remove' if dry_run else 'removing'} {entry.path} ({_state(entry)}, "
                   f"started {entry.started_at}, GTID {entry.gtid or '-'})")
        if not dry_run:
            remove_backup(entry)
    if not doomed:
        click.echo("nothing to prune")
