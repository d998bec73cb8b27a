"""``binhub flashback``: undo a range of the store's row changes, as SQL or straight into a database."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from binhub.cli.interrupt import run_interruptible
from binhub.cli.params import SIZE
from binhub.cli.range_options import bounds_of, change_decoders, connect_downstream, range_options
from binhub.flashback import Flashback, FlashbackConfig, HistoryColumns
from binhub.ops.logging import setup_logging
from binhub.ops.schema_sync import current_history
from binhub.schema import SchemaHistory
from binhub.store import StoreReader


@click.command("flashback")
@click.option("--data-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The store holding the range.")
@range_options
@click.option("--sql", "as_sql", is_flag=True, help="Print the undoing SQL on standard output (the default).")
@click.option("--apply", "apply_to", metavar="mysql://USER:PW@HOST:PORT",
              help="Undo the range in this database, checking each row first.")
@click.option("--force", is_flag=True, help="With --apply: undo rows that changed again after the range too.")
@click.option("--skip-ddl", is_flag=True,
              help="Undo the row changes of a range that holds DDL (the DDL is reported, never inverted).")
@click.option("--memory", callback=SIZE, default="256MiB", show_default=True, metavar="SIZE",
              help="Hold up to SIZE of the range in memory; past it, spill to a temporary directory.")
@click.option("--temp-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where to spill (default: the system's temporary directory).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="warning")
def flashback(data_dir: Path, as_sql: bool, apply_to: str | None, force: bool, skip_ddl: bool, memory: int,
              temp_dir: Path | None, log_level: str, **options: Any) -> None:
    """Undo every row change of a range of the store in DATA_DIR: newest first, one transaction per
    transaction of the range (INSERT becomes DELETE, DELETE becomes INSERT, UPDATE swaps its images;
    rows found by primary key, or by the whole row where the table has none).

    The range: a start and a stop, each a GTID, a commit time or a binlog position (start inclusive;
    --stop-gtid inclusive, --stop-datetime/--stop-file exclusive). Bounds that match nothing are an
    error. DDL in the range is refused unless --skip-ddl; MINIMAL row images are refused.

    --sql prints BEGIN … COMMIT per transaction with a comment naming the original GTID and time,
    ready for the mariadb/mysql client. --apply checks, in the same transaction, that every row still
    holds what the range left in it (SELECT … FOR UPDATE), and refuses otherwise, naming the row and
    the later GTID that changed it, unless --force.
    """
    if as_sql and apply_to:
        raise click.UsageError("use --sql or --apply, not both")
    if force and not apply_to:
        raise click.UsageError("--force goes with --apply")
    setup_logging(log_level, "text")
    reader = StoreReader.open(data_dir)
    config = FlashbackConfig(bounds_of(options), include=options["include"], exclude=options["exclude"],
                             skip_ddl=skip_ddl, force=force, memory_limit=memory, temp_dir=temp_dir)
    refresh = functools.partial(current_history, reader)
    run_interruptible(_run(config, reader, refresh, apply_to))


async def _run(config: FlashbackConfig, reader: StoreReader, refresh: Callable[[], SchemaHistory], apply_to: str | None) -> None:
    history = refresh()
    flavour = reader.state.upstream.flavour if reader.state.upstream else "mariadb"
    runner = Flashback(config, reader, change_decoders(refresh), HistoryColumns(history, flavour=flavour))
    try:
        span = await runner.collect()
        spilled = " (the range spilled to a temporary file)" if runner.spool.spilled is not None else ""
        if apply_to is None:
            runner.write_sql(sys.stdout)
            sys.stdout.flush()
            click.echo(f"-- {runner.rows} row changes of {span.transactions} transactions "
                       f"({span.first.gtid} … {span.last.gtid}) undone by {runner.statements} statements{spilled}",
                       err=True)
            return
        downstream = connect_downstream(apply_to, "--apply")
        try:
            committed = await runner.apply(downstream)
        finally:
            downstream.close()
        click.echo(f"undid {span.transactions} transactions ({span.first.gtid} … {span.last.gtid}): "
                   f"{committed} committed, {runner.rows} row changes undone{spilled}", err=True)
    finally:
        runner.close()
