"""What a stream is told: ``binhub stream``'s flags, or a ``[[stream]]`` section of ``binhub run``
(read by :mod:`binhub.ops.config`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from binhub.errors import ConfigError
from binhub.sinks.jsonl import DEFAULT_ROTATE_BYTES
from binhub.sinks.kafka_config import KafkaOptions
from binhub.sinks.mysql.options import ApplyOptions

__all__ = ["DEFAULT_ROTATE_BYTES", "StreamConfig", "StreamStart"]


@dataclass(frozen=True, slots=True)
class StreamStart:
    """Where a stream without a checkpoint begins (at most one of these; none: the store's start)."""

    gtid: str | None = None
    file: str | None = None
    pos: int | None = None
    from_now: bool = False


@dataclass(frozen=True, slots=True)
class StreamConfig:
    """One stream: ``binhub stream``'s flags, or a ``[[stream]]`` section of ``binhub run``."""

    name: str = "stream"
    to: str = "-"  # the sink: jsonl:DIR, - (stdout), kafka://HOST:PORT/TOPIC or mysql://USER:PW@HOST:PORT
    format: str = "binhub"  # binhub | debezium | canal | maxwell (binhub.stream.formats)
    kafka: KafkaOptions = field(default_factory=KafkaOptions)
    rotate_bytes: int = DEFAULT_ROTATE_BYTES
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    start: StreamStart = field(default_factory=StreamStart)
    until_caught_up: bool = False
    exclude_columns: tuple[str, ...] = ()  # DB.TABLE.COLUMN globs
    mask_columns: tuple[str, ...] = ()  # DB.TABLE.COLUMN[=hash|null|redact] globs
    # The upstream to seed the schema history from when a table is unknown (a DSN, password included).
    seed_from: str | None = field(default=None, repr=False)
    lease: bool = True  # hold a durable lease on the checkpoint's file (keeps it while the stream is stopped)
    apply: ApplyOptions = field(default_factory=ApplyOptions)  # the mysql:// sink's
    transaction_metadata: bool = False  # debezium: BEGIN/END events and a transaction block (provide.transaction.metadata)

    @property
    def sink_apply(self) -> ApplyOptions:
        """The mysql:// sink's options with the stream's table filters (its DDL is judged by them)."""
        return replace(self.apply, include=self.include, exclude=self.exclude)

    def __post_init__(self) -> None:
        if self.transaction_metadata and self.format != "debezium":
            raise ConfigError("transaction_metadata", "is Debezium's (provide.transaction.metadata): it needs --format "
                                                      f"debezium, not {self.format}")
        if self.format != "binhub" and self.to.partition(":")[0] in ("mysql", "mariadb"):
            raise ConfigError("format", f"a mysql:// sink applies binhub's own change model; --format {self.format} "
                                        "is for jsonl, stdout and Kafka")
