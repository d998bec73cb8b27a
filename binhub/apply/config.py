"""What ``binhub apply`` is told: its flags (later a section of ``binhub run``), parsed once into
typed values; the Kafka source ``kafka://HOST:PORT[,HOST:PORT…]/TOPIC[,TOPIC…]`` included."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from binhub.errors import ConfigError
from binhub.sinks.kafka_config import DEFAULT_CHECKPOINT_TOPIC
from binhub.sinks.mysql.options import ApplyOptions

__all__ = ["FORMATS", "KafkaApplyConfig", "KafkaSource"]

FORMATS = ("binhub", "debezium")
_PLACEHOLDER = re.compile(r"\{(db|table)\}")


@dataclass(frozen=True, slots=True)
class KafkaSource:
    """``kafka://HOST:PORT/TOPIC[,TOPIC…]``: the broker, and the topics as given. A topic may be a
    ``binhub stream`` template (``shop.{table}``: every topic it can make) or a regular expression
    (``^shop\\..*``, librdkafka's convention)."""

    bootstrap: str
    topics: tuple[str, ...]

    @classmethod
    def parse(cls, url: str, key: str = "--from") -> KafkaSource:
        parts = urlsplit(url)
        names = tuple(t for t in parts.path.lstrip("/").split(",") if t)
        if parts.scheme != "kafka" or not parts.netloc or not names:
            raise ConfigError(key, f"{url!r}: the source is kafka://HOST:PORT/TOPIC[,TOPIC…] (a topic may be a "
                                   "template with {db}/{table}, as binhub stream writes them, or a ^regex)")
        for name in names:
            if name.startswith("^"):
                try:
                    re.compile(name)
                except re.error as exc:
                    raise ConfigError(key, f"{name!r} is not a regular expression: {exc}") from None
        return cls(parts.netloc, names)

    @property
    def templated(self) -> bool:
        return any(n.startswith("^") or _PLACEHOLDER.search(n) for n in self.topics)

    def matcher(self) -> re.Pattern[str]:
        """One expression matching every topic the source names."""
        alternatives = []
        for name in self.topics:
            if name.startswith("^"):
                alternatives.append(f"(?:{name.removeprefix('^').removesuffix('$')})")
            else:
                # binhub stream replaces what Kafka refuses in {db}/{table} by "_": a placeholder is a name.
                pieces = _PLACEHOLDER.split(name)
                pattern = "".join(re.escape(p) if i % 2 == 0 else "[A-Za-z0-9._-]+" for i, p in enumerate(pieces))
                alternatives.append(f"(?:{pattern})")
        return re.compile("^(?:" + "|".join(alternatives) + ")$")


@dataclass(frozen=True, slots=True)
class KafkaApplyConfig:
    """One ``binhub apply --from kafka://… --to mysql://…``."""

    source: KafkaSource
    to: str  # mysql://USER:PW@HOST:PORT
    name: str = "stream"  # its checkpoint rows downstream; and, by default, the stream that wrote the topics
    format: str = "binhub"  # binhub | debezium
    kafka_id: str = ""  # the writing stream's transactional id and checkpoint key ("" = binhub.<name>)
    checkpoint_topic: str = DEFAULT_CHECKPOINT_TOPIC
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    until_caught_up: bool = False
    timeout: float = 60.0  # seconds the broker may be unreachable before apply stops
    apply: ApplyOptions = field(default_factory=ApplyOptions)

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ConfigError("format", f"{self.format!r}: binhub apply reads {' or '.join(FORMATS)} JSON")
        if self.timeout <= 0:
            raise ConfigError("kafka_timeout", "must be a positive number of seconds")

    @property
    def producer_id(self) -> str:
        return self.kafka_id or f"binhub.{self.name}"

    @property
    def schema_topic(self) -> str:
        """Where a Debezium stream puts its schema changes: the topic named after it (Debezium's
        ``topic.prefix``); binhub lines put DDL with the rows, or in the DDL topic."""
        return self.name if self.format == "debezium" else ""
