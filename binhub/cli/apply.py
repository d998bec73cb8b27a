"""``binhub apply``: Kafka topics written by ``binhub stream --to kafka://`` applied to MySQL/MariaDB,
exactly once (TiDB Binlog's arbiter)."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import click

from binhub.apply import KafkaApply, KafkaApplyConfig, KafkaSource
from binhub.apply.config import FORMATS
from binhub.cli.apply_options import apply_config, apply_options
from binhub.cli.params import TABLE_PATTERNS
from binhub.errors import ConfigError
from binhub.ops.logging import setup_logging
from binhub.sinks.kafka_config import DEFAULT_CHECKPOINT_TOPIC
from binhub.sinks.mysql.dsn import parse_mysql_target
from binhub.sinks.mysql.sink import MysqlSink


@click.command("apply")
@click.option("--from", "source", required=True, metavar="kafka://HOST:PORT/TOPIC[,TOPIC…]",
              help="The topics binhub stream wrote: names, the stream's template ({db}/{table}: every topic it "
              "makes, its DDL topic binhub.NAME.ddl included) or ^regular expressions, comma-separated.")
@click.option("--to", "target", required=True, metavar="mysql://USER:PW@HOST:PORT",
              help="The server to apply to (its binhub.stream_checkpoint table keeps the Kafka offsets).")
@click.option("--name", default="stream", show_default=True,
              help="The name of the binhub stream that wrote the topics (its checkpoints in the broker are "
              "binhub.NAME), and of this apply's checkpoint downstream.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="binhub", show_default=True,
              help="What the messages are: binhub JSON lines or Debezium's envelope (as binhub stream --format "
              "writes them).")
@click.option("--kafka-id", default="", metavar="ID",
              help="The writing stream's kafka_id, if it was given one (default binhub.NAME).")
@click.option("--checkpoint-topic", default=DEFAULT_CHECKPOINT_TOPIC, show_default=True,
              help="Where the writing stream commits its checkpoints.")
@click.option("--include", multiple=True, metavar="DB.TABLE", callback=TABLE_PATTERNS,
              help="Only tables matching this glob (repeatable; e.g. shop.* or *.orders).")
@click.option("--exclude", multiple=True, metavar="DB.TABLE", callback=TABLE_PATTERNS, help="Leave out tables matching this glob (repeatable).")
@click.option("--until-caught-up", is_flag=True,
              help="Exit 0 once everything in the topics when apply started is applied.")
@click.option("--kafka-timeout", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
              metavar="SECONDS", help="How long the broker may be unreachable at start before apply stops.")
@apply_options
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="warning")
def apply(source: str, target: str, name: str, fmt: str, kafka_id: str, checkpoint_topic: str,
          include: tuple[str, ...], exclude: tuple[str, ...], until_caught_up: bool, kafka_timeout: float,
          log_level: str, **options: Any) -> None:
    """Apply the row changes and DDL of Kafka topics written by `binhub stream --to kafka://` to the
    server --to, exactly once, in parallel with --workers: TiDB Binlog's arbiter.

    Changes are applied in the upstream's commit order across every topic and partition (a
    transaction spanning tables in several topics is applied whole), once the stream's checkpoint
    record in the checkpoint topic shows they are complete. The offsets reached are committed in the
    target's binhub.stream_checkpoint row with the rows they carry: a restart, after kill -9 too,
    resumes exactly there. Follows the topics until SIGINT/SIGTERM, unless --until-caught-up.
    """
    setup_logging(log_level, "text")
    try:
        config = KafkaApplyConfig(source=KafkaSource.parse(source), to=target, name=name, format=fmt,
                                  kafka_id=kafka_id, checkpoint_topic=checkpoint_topic, include=include,
                                  exclude=exclude, until_caught_up=until_caught_up, timeout=kafka_timeout,
                                  apply=apply_config(**options))
    except ConfigError as exc:
        raise click.UsageError(exc.message) from None
    sink = MysqlSink(parse_mysql_target(target), name, config.apply)
    try:
        runner = KafkaApply(config, sink)
    except BaseException:
        sink.close()
        raise
    asyncio.run(_run(runner))


async def _run(runner: KafkaApply) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, runner.request_stop)
    await runner.run()
