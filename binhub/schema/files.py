"""The history's files: an append-only log of checksummed JSON records, and atomic JSON documents.

A log record is one line: the CRC32 of the JSON text in 8 hex digits, a space, the JSON, a newline.
A crash while appending leaves at most the last line torn (no newline, or a CRC that does not
match): :func:`read_log` drops it and cuts the file back to the last whole record. A bad record
anywhere else is not a torn write but damage, and is refused (rebuild the history from the store).

Documents (snapshots, progress) are written tmp → fsync → rename → fsync of the directory, as the
store writes its own state (:func:`binhub.fsutil.atomic_write`).
"""

from __future__ import annotations

import json
import logging
import os
import zlib
from pathlib import Path
from typing import Any

from binhub.errors import SchemaHistoryError
from binhub.fsutil import atomic_write, write_all

__all__ = ["append_log", "atomic_write_json", "read_json", "read_log"]

log = logging.getLogger("binhub.schema")


def _line(record: dict[str, Any]) -> bytes:
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return b"%08x %s\n" % (zlib.crc32(text), text)


def append_log(path: Path, records: list[dict[str, Any]]) -> None:
    """Append records and fsync: when this returns, they survive a crash."""
    if not records:
        return
    data = b"".join(_line(r) for r in records)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise SchemaHistoryError(f"cannot append to the schema history log {path}: {exc.strerror or exc}") from exc


def read_log(path: Path, *, salvage: bool = False) -> list[dict[str, Any]]:
    """Every whole record of the log; a torn last record is dropped and cut off the file. A damaged
    record elsewhere is an error, or with ``salvage`` skipped (for a rebuild that keeps what it can)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    records = []
    offset = 0
    while offset < len(data):
        newline = data.find(b"\n", offset)
        line = data[offset:newline] if newline >= 0 else data[offset:]
        record = _parse(line)
        if record is None or newline < 0:
            if newline < 0 or newline + 1 >= len(data):  # the last line: a torn append
                log.warning("schema history log %s: dropping a torn last record at offset %d (%d bytes)",
                            path, offset, len(data) - offset)
                _truncate(path, offset)
                break
            if salvage:
                log.warning("schema history log %s: skipping a damaged record at offset %d", path, offset)
                offset = newline + 1
                continue
            raise SchemaHistoryError(
                f"the schema history log {path} is damaged at offset {offset} (a record in the middle "
                f"fails its checksum)", hint="rebuild it from the store: binhub schema rebuild --data-dir DIR")
        records.append(record)
        offset = newline + 1
    return records


def _parse(line: bytes) -> dict[str, Any] | None:
    if len(line) < 10 or line[8:9] != b" ":
        return None
    text = line[9:]
    try:
        if int(line[:8], 16) != zlib.crc32(text):
            return None
        record = json.loads(text)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _truncate(path: Path, size: int) -> None:
    try:
        with open(path, "r+b") as f:
            f.truncate(size)
            os.fsync(f.fileno())
    except OSError as exc:
        raise SchemaHistoryError(f"cannot cut the torn end off {path}: {exc.strerror or exc}") from exc


def atomic_write_json(path: Path, doc: dict[str, Any]) -> None:
    """Readers and crashes see the old document or the new one, never half of one."""
    data = (json.dumps(doc, sort_keys=True, ensure_ascii=False) + "\n").encode()
    try:
        atomic_write(path, data)
    except OSError as exc:
        raise SchemaHistoryError(f"cannot write {path}: {exc.strerror or exc}") from exc


def read_json(path: Path) -> dict[str, Any] | None:
    """A document written by :func:`atomic_write_json`; None if absent or unreadable."""
    try:
        doc = json.loads(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None
