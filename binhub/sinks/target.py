"""A sink from its ``--to`` target: ``jsonl:DIR`` or ``-`` (standard output)."""

from __future__ import annotations

from pathlib import Path

from binhub.errors import ConfigError
from binhub.sinks.base import Sink
from binhub.sinks.jsonl import DEFAULT_ROTATE_BYTES, JsonlSink
from binhub.sinks.stdout import StdoutSink

__all__ = ["open_sink"]


def open_sink(target: str, name: str, *, rotate_bytes: int = DEFAULT_ROTATE_BYTES) -> Sink:
    """``jsonl:DIR`` or ``-``."""
    if target == "-":
        return StdoutSink()
    kind, _, rest = target.partition(":")
    if kind == "jsonl" and rest:
        return JsonlSink(Path(rest), name, rotate_bytes=rotate_bytes)
    raise ConfigError("--to", f"{target!r} is not a sink binhub knows: use jsonl:DIR or - (stdout)")
