"""``binhub replay``: apply a range of row changes and DDL into a database (what reparo does)."""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import click

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
@click.argument("source", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="The store to replay (instead of SOURCE).")
@click.option("--to", "target", required=True, metavar="mysql://USER:PW@HOST:PORT",
              help="The database to apply into (with --dry-run: where the column types are read for jsonl).")
@range_options
@click.option("--dry-run", is_flag=True, help="Print the SQL that would run, and run nothing.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="warning")
def replay(source: Path | None, data_dir: Path | None, target: str, dry_run: bool, log_level: str,
           **options: Any) -> None:
    """Apply a range of row changes and DDL into the database --to, in commit order, one
    transaction per transaction of the range.

    SOURCE is a store directory (or give --data-dir), or a directory of binhub JSON lines written
    by `binhub stream --to jsonl:DIR` (its transactions are the lines of one GTID). The range
    options are flashback's: start inclusive, --stop-gtid inclusive (so --stop-gtid G stops where
    START SLAVE UNTIL master_gtid_pos=G stops), --stop-datetime/--stop-file exclusive; bounds that
    match nothing are an error. --dry-run prints the SQL instead of running it.
    """
    if (source is None) == (data_dir is None):
        raise click.UsageError("give SOURCE or --data-dir (one of them)")
    setup_logging(log_level, "text")
    directory = source if source is not None else data_dir
    assert directory is not None
    asyncio.run(_run(directory, target, dry_run, bounds_of(options), options["include"], options["exclude"]))


def _is_store(directory: Path) -> bool:
    return (directory / "state.json").exists() or (directory / "binlog").is_dir()


async def _run(directory: Path, target: str, dry_run: bool, bounds: RangeBounds, include: tuple[str, ...],
               exclude: tuple[str, ...]) -> None:
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
            if not dry_run:
                downstream = Downstream(downstream_address(target, "--to"))
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
