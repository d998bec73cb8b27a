"""The durable position marker, shared with readers in other processes.

After every group commit the writer overwrites one small record in ``DATA_DIR/durable`` with
``pwrite`` (no fsync needed: readers share the page cache, and after a crash recovery rewrites it).
The record carries its own CRC, so a reader that races a write sees a bad CRC and reads again
instead of trusting a torn record.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path

RECORD_SIZE = 512


@dataclass(frozen=True, slots=True, order=True)
class DurablePosition:
    """Everything up to ``position`` in ``file`` (and all earlier files) is durable."""

    file_seq: int
    file: str
    position: int


def encode(pos: DurablePosition) -> bytes:
    body = f"{pos.file_seq}\t{pos.file}\t{pos.position}".encode()
    line = body + b"\t" + f"{zlib.crc32(body):08x}".encode() + b"\n"
    return line.ljust(RECORD_SIZE, b"\0")


def decode(data: bytes) -> DurablePosition | None:
    line = data.split(b"\n", 1)[0]
    body, _, crc = line.rpartition(b"\t")
    if not body or crc != f"{zlib.crc32(body):08x}".encode():
        return None
    seq, name, pos = body.decode().split("\t")
    return DurablePosition(int(seq), name, int(pos))


class DurableMarker:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    def publish(self, pos: DurablePosition) -> None:
        os.pwrite(self._fd, encode(pos), 0)

    def close(self) -> None:
        os.close(self._fd)


def read_durable(path: Path, attempts: int = 5) -> DurablePosition | None:
    """The last published durable position, or None if the store never published one."""
    try:
        with open(path, "rb") as f:
            for _ in range(attempts):
                f.seek(0)
                pos = decode(f.read(RECORD_SIZE))
                if pos is not None:
                    return pos
    except FileNotFoundError:
        return None
    return None
