"""``binhub replay``: apply a range of row changes and DDL into a database (what reparo does)."""

from __future__ import annotations

import contextlib
import functools
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import click

from binhub.cli.apply_options import apply_config, apply_options
from binhub.cli.binlog import import_binlog_files
from binhub.cli.interrupt import run_interruptible
from binhub.cli.range_options import bounds_of, change_decoders, connect_downstream, range_options
from binhub.flashback import (
    HistoryColumns,
    RangeBounds,
    Replay,
    SinkOutput,
    SqlPrinter,
    TransactionMark,
    jsonl_pieces,
    locate,
    read_span,
)
from binhub.flashback.replay import ReplayOutput
from binhub.flashback.statements import ColumnLookup
from binhub.ops.logging import setup_logging
from binhub.ops.schema_sync import current_history
from binhub.sinks.mysql.catalog import Catalog
from binhub.sinks.mysql.dsn import parse_mysql_target
from binhub.sinks.mysql.options import ApplyOptions, Renames
from binhub.sinks.mysql.sink import MysqlSink
from binhub.store import StoreReader

HOLDER = "replay"


@click.command("replay")
@click.argument("source", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="The store to replay (instead of SOURCE).")
@click.option("--to", "target", required=True, metavar="mysql://USER:PW@HOST:PORT",
              help="The database to apply into (with --dry-run it is only read, for column types).")
@range_options
@click.option("--name", default="replay", show_default=True,
              help="The replay's checkpoint in the target (binhub.stream_checkpoint): a replay started again "
              "with the same name resumes after what the target holds.")
@apply_options
@click.option("--dry-run", is_flag=True, help="Print the SQL that would run, and run nothing.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="warning")
def replay(source: tuple[Path, ...], data_dir: Path | None, target: str, name: str, dry_run: bool, log_level: str,
           workers: int, ordered: bool, on_conflict: str, safe_mode: bool, rename: tuple[str, ...],
           skip_gtids: tuple[str, ...], **options: Any) -> None:
    """Apply a range of row changes and DDL into the database --to, in commit order, one
    transaction per transaction of the range, through the MySQL sink (exactly once: its checkpoint
    is committed in the target with each transaction).

    SOURCE is a store directory (or give --data-dir), a directory of binhub JSON lines written by
    `binhub stream --to jsonl:DIR` (its transactions are the lines of one GTID), or binlog files
    (plain or .zst, imported into a temporary store first). Rows of tables the source does not
    describe (binlog files without the CREATE or binlog_row_metadata=FULL) are matched to the target's
    columns by position. The range options are flashback's: start inclusive, --stop-gtid inclusive
    (so --stop-gtid G stops where START SLAVE UNTIL master_gtid_pos=G stops), --stop-datetime and
    --stop-file exclusive; bounds that match nothing are an error. --dry-run prints the SQL instead.
    """
    if bool(source) == (data_dir is not None):
        raise click.UsageError("give SOURCE or --data-dir (one of them)")
    setup_logging(log_level, "text")
    run = functools.partial(_run, target=target, name=name, dry_run=dry_run, bounds=bounds_of(options),
                            include=options["include"], exclude=options["exclude"],
                            apply=apply_config(workers=workers, ordered=ordered, on_conflict=on_conflict,
                                               safe_mode=safe_mode, rename=rename, skip_gtids=skip_gtids,
                                               include=options["include"], exclude=options["exclude"]))
    if data_dir is not None or (len(source) == 1 and source[0].is_dir()):
        directory = data_dir if data_dir is not None else source[0]
        run_interruptible(run(directory))
        return
    if any(p.is_dir() for p in source):
        raise click.UsageError("SOURCE is one directory (a store or jsonl) or binlog files, not both")
    with tempfile.TemporaryDirectory(prefix="binhub-replay-") as tmp:
        for _ in import_binlog_files(Path(tmp), source):
            pass
        run_interruptible(run(Path(tmp), types_from_target=True))


def _is_store(directory: Path) -> bool:
    return (directory / "state.json").exists() or (directory / "binlog").is_dir()


async def _run(directory: Path, *, target: str, name: str, dry_run: bool, bounds: RangeBounds,
               include: tuple[str, ...], exclude: tuple[str, ...], apply: ApplyOptions,
               types_from_target: bool = False) -> None:
    with contextlib.ExitStack() as stack:
        pieces: AsyncIterator[bytes | TransactionMark]
        columns: ColumnLookup | None = None
        if _is_store(directory):
            reader = StoreReader.open(directory)
            refresh = functools.partial(current_history, reader)
            span = await locate(reader, bounds, holder=HOLDER)
            if not types_from_target:
                flavour = reader.state.upstream.flavour if reader.state.upstream else "mariadb"
                columns = HistoryColumns(refresh(), flavour=flavour)
            pieces = read_span(reader, span, change_decoders(refresh)(include, exclude), holder=HOLDER)
        else:
            pieces = jsonl_pieces(directory, bounds, include, exclude)
        output: ReplayOutput
        if dry_run:
            downstream = connect_downstream(target, "--to")
            stack.callback(downstream.close)
            catalog = Catalog(downstream)
            if columns is None:
                columns = lambda db, table, _file, _pos: catalog.table(db, table).columns  # noqa: E731
            output = SqlPrinter(sys.stdout, columns, Renames(apply.rename))
        else:
            sink = MysqlSink(parse_mysql_target(target), name, apply)
            stack.callback(sink.close)
            catalog = sink.catalog
            output = SinkOutput(sink)
        resume = None if dry_run else sink.resume_point()
        runner = Replay(output, lambda db, table: catalog.table(db, table).columns, resume=resume)
        await runner.run(pieces)
        sys.stdout.flush()
        skipped = f", {runner.skipped} already applied by an earlier run" if runner.skipped else ""
        click.echo(f"{'would apply' if dry_run else 'applied'} {runner.transactions} transactions "
                   f"({runner.changes} row changes, {runner.ddl} DDL){skipped}", err=True)


