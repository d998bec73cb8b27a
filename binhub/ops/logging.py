"""Logging for the daemon: one named logger tree, text for humans, JSON lines for machines.

Subsystems log to their own logger (``binhub.relay``, ``binhub.store``, ``binhub.serve``,
``binhub.http``, and ``binhub.access`` for replica connect/disconnect lines) and pass fixed context
keys with ``extra={"upstream": ..., "file": ..., "gtid": ...}``. Both formats show those fields:
text appends them as ``key=value``, JSON makes them members of the line's object. Info is for
lifecycle events; anything per event or per transaction belongs at debug.

The handler goes on the root logger, so aiohttp's and asyncio's warnings come out in the same
format; other libraries stay at WARNING so ``--log-level debug`` shows binhub's detail, not theirs.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import IO, Any

__all__ = [
    "ACCESS",
    "HTTP",
    "LOGGER_NAMES",
    "RELAY",
    "ROOT",
    "SERVE",
    "STORE",
    "JsonFormatter",
    "TextFormatter",
    "setup_logging",
]

ROOT = "binhub"
RELAY = "binhub.relay"
STORE = "binhub.store"
SERVE = "binhub.serve"
HTTP = "binhub.http"
ACCESS = "binhub.access"
LOGGER_NAMES = (ROOT, RELAY, STORE, SERVE, HTTP, ACCESS)

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS and not k.startswith("_")}


def _timestamp(record: logging.LogRecord) -> str:
    # UTC with milliseconds: log lines from several nodes must sort and compare.
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


class TextFormatter(logging.Formatter):
    """``2024-05-01T12:00:00.123Z INFO  binhub.relay: connected upstream=db1:3306 file=mysql-bin.000042``"""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname:<5} {record.name}: {record.getMessage()}"
        fields = _extra_fields(record)
        if fields:
            line += " " + " ".join(f"{k}={_text_value(v)}" for k, v in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


def _text_value(value: Any) -> str:
    text = str(value)
    # Quote values that would otherwise split into several key=value tokens.
    return json.dumps(text) if not text or any(c in text for c in ' "=\n') else text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``{"ts", "level", "logger", "msg", ...extra fields, "exc"?}``."""

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _extra_fields(record).items():
            # An extra field never overwrites the four fixed keys a log pipeline indexes on.
            obj[key if key not in obj else f"extra_{key}"] = value
        if record.exc_info:
            obj["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            obj["stack"] = self.formatStack(record.stack_info)
        return json.dumps(obj, default=str, ensure_ascii=False)


class _BinhubHandler(logging.StreamHandler[IO[str]]):
    """Marks the handler setup_logging installed, so a second call replaces it (and only it)."""


def setup_logging(level: str = "info", fmt: str = "text", *, stream: IO[str] | None = None) -> logging.Handler:
    """Send logs to ``stream`` (stderr) at ``level`` for binhub's loggers, as ``fmt`` ("text"|"json").

    Idempotent: calling it again (tests, a config reload) replaces the previous handler rather than
    doubling every line. Handlers others installed (pytest's caplog) are left alone.
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}; use debug, info, warning or error")
    if fmt not in ("text", "json"):
        raise ValueError(f"unknown log format {fmt!r}; use text or json")
    handler = _BinhubHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())

    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _BinhubHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(numeric, logging.WARNING))
    logging.getLogger(ROOT).setLevel(numeric)
    return handler
