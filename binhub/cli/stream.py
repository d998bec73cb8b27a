"""``binhub stream``: the store's row changes and DDL as JSON (binhub, Debezium, Canal or Maxwell), to
files, stdout or Kafka."""

from __future__ import annotations

import asyncio
import gc
import signal
from pathlib import Path
from typing import Any

import click

from binhub.cli.apply_options import apply_config, apply_options
from binhub.cli.params import SIZE, TABLE_PATTERNS
from binhub.ops.logging import setup_logging
from binhub.ops.schema_sync import current_history
from binhub.sinks import KafkaOptions, open_sink
from binhub.store import StoreReader
from binhub.store.retention import StreamLease
from binhub.stream import Stream, StreamConfig, StreamStart
from binhub.stream.columns import ColumnRules
from binhub.stream.formats import FORMATS
from binhub.stream.metrics import StreamMetrics


@click.command("stream")
@click.option("--data-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The store to read (a relay may be writing it).")
@click.option("--to", "target", metavar="jsonl:DIR|-|kafka://HOST:PORT/TOPIC|mysql://…",
              help="jsonl:DIR: rotating NAME-NNNNNN.jsonl files and NAME.checkpoint.json in DIR "
              "(exactly once across restarts); -: standard output; kafka://HOST:PORT/TOPIC: a message "
              "per change keyed by primary key, {db}/{table} in TOPIC for a topic per table, the "
              "checkpoint in the same Kafka transaction (docs/stream.md); mysql://USER:PW@HOST:PORT: apply the "
              "changes to that server, exactly once (checkpoint in its binhub.stream_checkpoint table).")
@click.option("--format", "output", type=click.Choice(list(FORMATS)), default="binhub", show_default=True,
              help="binhub JSON lines, or Debezium's, Canal's (FlatMessage) or Maxwell's JSON (not for mysql://).")
@click.option("--transaction-metadata", is_flag=True,
              help="debezium: BEGIN/END events on the topic NAME.transaction and a transaction block in each change "
              "(Debezium's provide.transaction.metadata).")
@click.option("--name", default="stream", show_default=True,
              help="The stream's name: its files, its checkpoint and its reader lease.")
@click.option("--include", multiple=True, metavar="DB.TABLE", callback=TABLE_PATTERNS,
              help="Only tables matching this glob (repeatable; e.g. shop.* or *.orders).")
@click.option("--exclude", multiple=True, metavar="DB.TABLE", callback=TABLE_PATTERNS, help="Leave out tables matching this glob (repeatable).")
@click.option("--start-gtid", metavar="SET", help="Start after this GTID set (MySQL) or GTID position (MariaDB).")
@click.option("--start-file", metavar="FILE", help="Start at this stored binlog file.")
@click.option("--start-pos", type=click.IntRange(min=4), metavar="N", help="With --start-file: the position in it.")
@click.option("--from-now", is_flag=True, help="Start at the end of what the store holds now.")
@click.option("--until-caught-up", is_flag=True,
              help="Exit 0 once everything durable when the stream started has been delivered.")
@click.option("--rotate-size", callback=SIZE, default="64MiB", show_default=True, metavar="SIZE",
              help="jsonl: start a new file once the current one reaches SIZE (at a transaction boundary).")
@click.option("--kafka-ddl-topic", metavar="TOPIC",
              help="kafka: where DDL goes (default: TOPIC without placeholders, else binhub.NAME.ddl; with "
              "--format debezium, NAME: Debezium's schema-change topic).")
@click.option("--kafka-transactions", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
              help="kafka: exactly once with a transactional producer (auto: when the broker supports it); "
              "off: at least once, the checkpoint written after delivery.")
@click.option("--kafka-max-message-size", callback=SIZE, default="1000000", show_default=True, metavar="SIZE",
              help="kafka: a change bigger than this stops the stream with an error naming it (never dropped).")
@click.option("--kafka-timeout", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
              metavar="SECONDS", help="kafka: how long the broker may be unreachable before the stream stops.")
@click.option("--exclude-column", "exclude_columns", multiple=True, metavar="DB.TABLE.COLUMN",
              help="Leave this column out of every image and key (repeatable; globs, e.g. shop.*.notes).")
@click.option("--mask-column", "mask_columns", multiple=True, metavar="DB.TABLE.COLUMN[=hash|null|redact]",
              help="Replace this column's values (repeatable; globs): hash (the default; sha256 of the value, so equal "
              "values stay equal), null, or redact (\"[redacted]\"); a masked key column is masked in pk too.")
@click.option("--seed-from", metavar="DSN", envvar="BINHUB_STREAM_SEED_FROM",
              help="The upstream (mysql://user:pw@host:port) whose information_schema seeds the schema history when "
              "the stream meets a table it does not know (created before the store began); without it such rows "
              "get positional names @1, @2, … [env BINHUB_STREAM_SEED_FROM]")
@click.option("--no-lease", "no_lease", is_flag=True,
              help="Hold no durable lease: the store may purge files this stream still needs while it is stopped "
              "(and a lease an earlier run left is removed).")
@click.option("--forget", metavar="NAME",
              help="Remove the durable lease of the stream NAME from the store and exit (the stream is gone for "
              "good: retention may now purge the files it held).")
@apply_options
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="warning")
def stream(data_dir: Path, target: str, name: str, include: tuple[str, ...], exclude: tuple[str, ...],
           start_gtid: str | None, start_file: str | None, start_pos: int | None, from_now: bool,
           until_caught_up: bool, rotate_size: int, output: str, kafka_ddl_topic: str | None,
           kafka_transactions: str, kafka_max_message_size: int, kafka_timeout: float,
           exclude_columns: tuple[str, ...], mask_columns: tuple[str, ...], seed_from: str | None, no_lease: bool,
           forget: str | None, log_level: str, transaction_metadata: bool, **apply: Any) -> None:
    """Decode every row change and DDL of the store in DATA_DIR, in commit order, as binhub JSON
    lines: {"op","db","table","pk","before","after","gtid","file","pos","ts"} (DDL: op "ddl" and
    "sql"), or with --format as Debezium, Canal or Maxwell JSON. Rows are decoded with the columns their table had when they were written (the schema
    history, DATA_DIR/schema/).

    Without a start option the stream begins at the store's first file. A jsonl sink with a
    checkpoint resumes from it (start options then do not apply). Follows the store live until
    SIGINT/SIGTERM, unless --until-caught-up. A Kafka sink resumes from its checkpoint in the
    broker's binhub.checkpoints topic.

    A named stream with a checkpoint holds a durable lease in the store (DATA_DIR/readers/stream-NAME.json)
    on the file its checkpoint is in: retention keeps that file and later ones while the stream is
    stopped, until `--forget NAME` (or store.retention.stream_lease_max_age passes).
    """
    if forget is not None:
        gone = StreamLease(data_dir / "readers", forget).forget()
        click.echo(f"the lease of stream {forget} was removed" if gone else f"stream {forget} holds no lease "
                   f"in {data_dir}", err=not gone)
        return
    if target is None:
        raise click.UsageError("--to is required: jsonl:DIR, -, kafka://HOST:PORT/TOPIC or mysql://USER:PW@HOST:PORT")
    if sum(bool(x) for x in (start_gtid, start_file, from_now)) > 1:
        raise click.UsageError("use only one of --start-gtid, --start-file, --from-now")
    if start_pos is not None and not start_file:
        raise click.UsageError("--start-pos needs --start-file")
    setup_logging(log_level, "text")
    reader = StoreReader.open(data_dir, must_exist=until_caught_up)
    kafka = KafkaOptions(ddl_topic=kafka_ddl_topic or "", transactions=kafka_transactions,
                         max_message_bytes=kafka_max_message_size, timeout=kafka_timeout)
    config = StreamConfig(name=name, to=target, format=output, kafka=kafka,
                          rotate_bytes=rotate_size, include=include,
                          exclude=exclude, until_caught_up=until_caught_up, lease=not no_lease,
                          exclude_columns=exclude_columns, mask_columns=mask_columns, seed_from=seed_from,
                          start=StreamStart(gtid=start_gtid, file=start_file, pos=start_pos, from_now=from_now),
                          apply=apply_config(**apply), transaction_metadata=transaction_metadata)
    ColumnRules(exclude_columns, mask_columns)  # a malformed rule is refused before anything starts
    seed = None
    if seed_from:  # (the seeder and its upstream client load only when asked for)
        from binhub.ops.schema_seed import stream_seeder

        seed = stream_seeder(reader, seed_from)  # a malformed DSN, too
    sink = open_sink(config.to, config.name, rotate_bytes=config.rotate_bytes, kafka=config.kafka, apply=config.sink_apply)
    # What start-up made (modules, click's, the store's objects) lives as long as the process: frozen,
    # the collector never walks it again, during the run or at exit (a 261,000-row catch-up: 2.08 ->
    # 1.83 CPU s, of which 0.12-0.19 -> 0.04 s after atexit).
    gc.freeze()
    # No admin API exports this process's metrics: they are discarded (no prometheus-client to load).
    asyncio.run(_run(Stream(config, reader, sink, lambda: current_history(reader), seed_schema=seed,
                            metrics=StreamMetrics.off())))


async def _run(runner: Stream) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, runner.request_stop)
    await runner.run()
