"""A sink from its ``--to`` target: ``jsonl:DIR``, ``-`` (standard output), ``kafka://HOST:PORT/TOPIC``
or ``mysql://…``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from binhub.errors import ConfigError
from binhub.sinks.base import Sink
from binhub.sinks.jsonl import DEFAULT_ROTATE_BYTES, JsonlSink
from binhub.sinks.kafka_config import KafkaOptions, KafkaTarget
from binhub.sinks.mysql.options import ApplyOptions
from binhub.sinks.stdout import StdoutSink

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry  # imported by the MySQL sink, which uses it

__all__ = ["open_sink"]


def open_sink(target: str, name: str, *, rotate_bytes: int = DEFAULT_ROTATE_BYTES,
              kafka: KafkaOptions | None = None, apply: ApplyOptions | None = None,
              registry: CollectorRegistry | None = None) -> Sink:
    """``jsonl:DIR``, ``-``, ``kafka://HOST:PORT/TOPIC`` (with ``kafka``'s options) or
    ``mysql://USER:PW@HOST:PORT`` (with ``apply``'s options)."""
    if target == "-":
        return StdoutSink()
    kind, _, rest = target.partition(":")
    if kind == "jsonl" and rest:
        return JsonlSink(Path(rest), name, rotate_bytes=rotate_bytes)
    if kind == "kafka":
        from binhub.sinks.kafka import KafkaSink  # librdkafka is loaded only for a Kafka sink

        return KafkaSink(KafkaTarget.parse(target), name, kafka)
    if kind in ("mysql", "mariadb"):
        from binhub.sinks.mysql.dsn import parse_mysql_target  # PyMySQL only where it is used
        from binhub.sinks.mysql.sink import MysqlSink

        return MysqlSink(parse_mysql_target(target), name, apply, registry=registry)
    raise ConfigError("--to", f"{target!r} is not a sink binhub knows: use jsonl:DIR, - (stdout), "
                              "kafka://HOST:PORT/TOPIC or mysql://USER:PASSWORD@HOST:PORT")
