"""Small parsers for the values operators write: durations, sizes, HOST:PORT, DB.TABLE globs.

Used by :mod:`binhub.ops.config` and, on their own, by the one-shot CLI commands that take the same
strings as flags. Each raises ``ValueError`` (durations, sizes) or :class:`ConfigError` naming the
key it was given (listen address). The relay's source DSN is :mod:`binhub.relay.config`'s.
"""

from __future__ import annotations

import re

from binhub.errors import ConfigError

__all__ = ["parse_duration", "parse_listen", "parse_size", "parse_table_pattern"]

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_SIZE_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")


def parse_table_pattern(text: str) -> str:
    """A ``--include``/``--exclude`` glob on ``db.table``. One without a dot is refused: ``shop``
    matches no table (every name it is matched against is ``db.table``), and the user meant ``shop.*``."""
    if "." not in text:
        meant = "*.*" if text == "*" else f"{text}.*"
        raise ValueError(f"{text!r} names no table: a pattern is DB.TABLE (a glob on both), e.g. {meant!r} "
                         f"for every table of {'every database' if text == '*' else repr(text)}")
    return text


def parse_duration(text: str) -> float:
    """``"7d"``, ``"12h"``, ``"1h30m"``, ``"250ms"`` → seconds. A unit is required: a bare number is
    ambiguous between seconds and days for retention, and that is an expensive mistake."""
    value = text.strip().lower().replace(" ", "")
    if not value:
        raise ValueError("empty duration; use e.g. '7d', '12h', '30m', '10s' or '250ms'")
    pos, total = 0, 0.0
    while pos < len(value):
        match = _DURATION_PART.match(value, pos)
        if match is None:
            raise ValueError(f"{text!r} is not a duration; use e.g. '7d', '12h', '1h30m', '10s' or '250ms'")
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    return total


def parse_size(text: str) -> int:
    """``"50GiB"`` → bytes. KiB/MiB/GiB/TiB are powers of 1024, KB/MB/GB/TB powers of 1000, a bare
    number is bytes. ``"50G"`` is refused: which of the two it means is exactly the ambiguity."""
    match = _SIZE.fullmatch(text.strip().lower())
    if match is None or match.group(2) not in _SIZE_UNITS:
        raise ValueError(f"{text!r} is not a size; use e.g. '50GiB', '500MiB' or '10GB'")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])


def parse_listen(text: str, *, key: str = "listen") -> tuple[str, int]:
    """``"127.0.0.1:9307"`` / ``"[::1]:9307"`` → (host, port); port 0 picks a free port."""
    value = text.strip()
    host, sep, port_text = value.rpartition(":")
    if not sep or not host:
        raise ConfigError(key, f"{text!r} is not HOST:PORT, e.g. 127.0.0.1:9307")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ConfigError(key, f"{text!r}: write an IPv6 address in brackets, e.g. [::1]:9307")
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ConfigError(key, f"{text!r}: port must be a number from 0 to 65535")
    return host, int(port_text)
