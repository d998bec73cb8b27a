"""The Kafka sink's settings and its ``--to kafka://HOST:PORT/TOPIC`` target, apart from the sink
itself (:mod:`binhub.sinks.kafka`) so that reading a config does not load librdkafka."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from binhub.errors import ConfigError

__all__ = ["DEFAULT_CHECKPOINT_TOPIC", "KafkaOptions", "KafkaTarget", "topic_name"]

DEFAULT_CHECKPOINT_TOPIC = "binhub.checkpoints"
_TOPIC_CHARS = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True, slots=True)
class KafkaOptions:
    """A Kafka sink's settings (``[[stream]]`` keys ``kafka_*``; see docs/configuration.md)."""

    id: str = ""  # transactional.id and checkpoint key; "" = "binhub.<stream name>"
    ddl_topic: str = ""  # "" = TOPIC when it has no placeholders, else "<id>.ddl"
    checkpoint_topic: str = DEFAULT_CHECKPOINT_TOPIC
    transactions: str = "auto"  # auto | on | off
    max_message_bytes: int = 1_000_000  # librdkafka's message.max.bytes default
    timeout: float = 60.0  # seconds of broker trouble before the stream stops
    partitions: int = -1  # for topics binhub creates; -1 = the broker's default

    def __post_init__(self) -> None:
        if self.transactions not in ("auto", "on", "off"):
            raise ConfigError("kafka_transactions", f"{self.transactions!r}: use auto, on or off")
        if self.max_message_bytes < 1000:
            raise ConfigError("kafka_max_message_bytes", f"{self.max_message_bytes} is below Kafka's minimum of 1000")
        if self.timeout <= 0:
            raise ConfigError("kafka_timeout", "must be a positive number of seconds")


@dataclass(frozen=True, slots=True)
class KafkaTarget:
    """``kafka://HOST:PORT[,HOST:PORT…]/TOPIC`` parsed."""

    bootstrap: str
    topic: str

    @classmethod
    def parse(cls, target: str, key: str = "--to") -> KafkaTarget:
        parts = urlsplit(target)
        topic = parts.path.lstrip("/")
        if parts.scheme != "kafka" or not parts.netloc or not topic or "/" in topic:
            raise ConfigError(key, f"{target!r}: a Kafka sink is kafka://HOST:PORT/TOPIC "
                                      "({db} and {table} in TOPIC for a topic per database or table)")
        try:
            topic.format(db="d", table="t")
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(key, f"{target!r}: the topic may only use {{db}} and {{table}}: {exc}") from None
        return cls(parts.netloc, topic)


def topic_name(template: str, db: str, table: str) -> str:
    """The topic of a table: the template filled in, with characters Kafka refuses made ``_``."""
    return _TOPIC_CHARS.sub("_", template.format(db=db, table=table))[:249]
