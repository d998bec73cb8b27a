"""What a stream is told: ``binhub stream``'s flags, or a ``[[stream]]`` section of ``binhub run``
(read by :mod:`binhub.ops.config`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from binhub.sinks.jsonl import DEFAULT_ROTATE_BYTES

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
    to: str = "-"  # the sink: jsonl:DIR or - (stdout)
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
