"""A sink from its ``--to`` target: ``jsonl:DIR``, ``-`` (standard output) or ``kafka://HOST:PORT/TOPIC``."""

from __future__ import annotations

from pathlib import Path

from binhub.errors import ConfigError
from binhub.sinks.base import Sink
from binhub.sinks.jsonl import DEFAULT_ROTATE_BYTES, JsonlSink
from binhub.sinks.kafka_config import KafkaOptions, KafkaTarget
from binhub.sinks.stdout import StdoutSink

__all__ = ["open_sink"]


def open_sink(target: str, name: str, *, rotate_bytes: int = DEFAULT_ROTATE_BYTES,
              kafka: KafkaOptions | None = None) -> Sink:
    """``jsonl:DIR``, ``-`` or ``kafka://HOST:PORT/TOPIC``."""
    if target == "-":
        return StdoutSink()
    kind, _, rest = target.partition(":")
    if kind == "jsonl" and rest:
        return JsonlSink(Path(rest), name, rotate_bytes=rotate_bytes)
    if kind == "kafka":
        from binhub.sinks.kafka import KafkaSink  # librdkafka is loaded only for a Kafka sink

        return KafkaSink(KafkaTarget.parse(target), name, kafka)
    raise ConfigError("--to", f"{target!r} is not a sink binhub knows: use jsonl:DIR, - (stdout) or "
                              "kafka://HOST:PORT/TOPIC")
