"""``binhub replay``: apply a range of row changes and DDL into a database (what reparo does)."""

from __future__ import annotations

import asyncio
import functools
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import click

from binhub.cli.binlog import import_binlog_files
from binhub.cli.range_options import bounds_of, change_decoders, downstream_address, range_options
from binhub.flashback import (
    Downstream,
    HistoryColumns,
    RangeBounds,
    Replay,
    SqlPrinter,
    TransactionMark,
    jsonl_pieces,
    locate,
    read_span,
)
from binhub.flashback.statements import ColumnLookup
from binhub.ops.logging import setup_logging
from binhub.ops.schema_sync import current_history
from binhub.store import StoreReader

HOLDER = "replay"


@click.command("replay")
@click.argument("source", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="The store to replay (instead of SOURCE).")
@click.option("--to", "target", required=True, metavar="mysql://USER:PW@HOST:PORT",
              help="The database to apply into (with --dry-run: where the column types are read for jsonl).")
@range_options
@click.option("--dry-run", is_flag=True, help="Print the SQL that would run, and run nothing.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="warning")
def replay(source: tuple[Path, ...], data_dir: Path | None, target: str, dry_run: bool, log_level: str,
           **options: Any) -> None:
    """Apply a range of row changes and DDL into the database --to, in commit order, one
    transaction per transaction of the range.

    SOURCE is a store directory (or give --data-dir), a directory of binhub JSON lines written by
    `binhub stream --to jsonl:DIR` (its transactions are the lines of one GTID), or binlog files
    (plain or .zst, imported into a temporary store first). For jsonl and binlog files the column
    types come from the tables of --to; rows of tables the files do not describe (no CREATE in them,
    no binlog_row_metadata=FULL) are matched to its columns by position. The range
    options are flashback's: start inclusive, --stop-gtid inclusive (so --stop-gtid G stops where
    START SLAVE UNTIL master_gtid_pos=G stops), --stop-datetime/--stop-file exclusive; bounds that
    match nothing are an error. --dry-run prints the SQL instead of running it.
    """
    if bool(source) == (data_dir is not None):
        raise click.UsageError("give SOURCE or --data-dir (one of them)")
    setup_logging(log_level, "text")
    bounds = bounds_of(options)
    if data_dir is not None or (len(source) == 1 and source[0].is_dir()):
        directory = data_dir if data_dir is not None else source[0]
        asyncio.run(_run(directory, target, dry_run, bounds, options["include"], options["exclude"]))
        return
    if any(p.is_dir() for p in source):
        raise click.UsageError("SOURCE is one directory (a store or jsonl) or binlog files, not both")
    with tempfile.TemporaryDirectory(prefix="binhub-replay-") as tmp:
        for _ in import_binlog_files(Path(tmp), source):
            pass
        asyncio.run(_run(Path(tmp), target, dry_run, bounds, options["include"], options["exclude"],
                         types_from_target=True))


def _is_store(directory: Path) -> bool:
    return (directory / "state.json").exists() or (directory / "binlog").is_dir()


async def _run(directory: Path, target: str, dry_run: bool, bounds: RangeBounds, include: tuple[str, ...],
               exclude: tuple[str, ...], *, types_from_target: bool = False) -> None:
    pieces: AsyncIterator[bytes | TransactionMark]
    downstream: Downstream | None = None
    try:
        if _is_store(directory):
            reader = StoreReader.open(directory)
            refresh = functools.partial(current_history, reader)
            span = await locate(reader, bounds, holder=HOLDER)
            flavour = reader.state.upstream.flavour if reader.state.upstream else "mariadb"
            columns: ColumnLookup = HistoryColumns(refresh(), flavour=flavour)
            pieces = read_span(reader, span, change_decoders(refresh)(include, exclude), holder=HOLDER)
            if not dry_run or types_from_target:
                downstream = Downstream(downstream_address(target, "--to"))
            if types_from_target:
                assert downstream is not None
                columns = downstream.columns
        else:
            downstream = Downstream(downstream_address(target, "--to"))
            columns = downstream.columns
            pieces = jsonl_pieces(directory, bounds, include, exclude)
        runner = Replay(SqlPrinter(sys.stdout) if dry_run or downstream is None else downstream, columns)
        await runner.run(pieces)
        sys.stdout.flush()
        click.echo(f"{'would apply' if dry_run else 'applied'} {runner.transactions} transactions "
                   f"({runner.statements} row statements, {runner.ddl} DDL)", err=True)
    finally:
        if downstream is not None:
            downstream.close()
