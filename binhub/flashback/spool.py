"""Transactions kept in store order and given back newest first, in memory or spilled to disk.

A flashback undoes the newest change first, but the store is read oldest first: everything in the
range must be held until its end. Up to ``memory_limit`` bytes of JSON lines stay in memory; past
that the spool moves to a file in a temporary directory and appends there, and the file is read
back from its end in blocks (what binlog2sql does with its ``reversed_lines``), so memory stays
bounded whatever the size of the range or of one transaction.

On disk each transaction is its lines followed by one mark line (``#`` and the mark as JSON): read
backwards, a mark comes first and its lines follow, newest first.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import BinaryIO

import orjson

from binhub.flashback.reading import TransactionMark

__all__ = ["Spool"]

BLOCK = 1 << 20  # bytes read at a time when the spill file is read backwards


class Spool:
    """Add the lines and marks of transactions in order; :meth:`newest_first` gives them back."""

    def __init__(self, memory_limit: int = 256 << 20, temp_dir: Path | None = None) -> None:
        self.memory_limit = memory_limit
        self.temp_dir = temp_dir
        self.transactions = 0
        self.rows = 0
        self._memory: list[bytes | TransactionMark] = []
        self._held = 0
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._file: BinaryIO | None = None

    @property
    def spilled(self) -> Path | None:
        """The spill file, once the range outgrew memory."""
        return None if self._dir is None else Path(self._dir.name) / "spool"

    def add(self, lines: bytes) -> None:
        """Whole JSON lines (each ends with a newline) of the open transaction."""
        self.rows += lines.count(b"\n")
        if self._file is not None:
            self._file.write(lines)
            return
        self._memory.append(lines)
        self._held += len(lines)
        if self._held > self.memory_limit:
            self._spill()

    def end(self, mark: TransactionMark) -> None:
        """The open transaction ends here."""
        self.transactions += 1
        if self._file is not None:
            self._file.write(_mark_line(mark))
        else:
            self._memory.append(mark)

    def _spill(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="binhub-flashback-", dir=self.temp_dir)
        assert self.spilled is not None
        self._file = open(self.spilled, "wb", buffering=BLOCK)  # noqa: SIM115 (closed by close())
        for piece in self._memory:
            self._file.write(_mark_line(piece) if isinstance(piece, TransactionMark) else piece)
        self._memory.clear()
        self._held = 0

    def newest_first(self) -> Iterator[tuple[TransactionMark, Iterator[bytes]]]:
        """Each transaction, newest first, with its lines newest first (consume them before the next)."""
        lines = self._lines_backwards()
        pending = next(lines, None)
        while pending is not None:
            assert pending.startswith(b"#"), "the spool ends with a transaction's mark"
            mark = TransactionMark(**orjson.loads(pending[1:]))
            pending = None

            def rows() -> Iterator[bytes]:
                nonlocal pending
                for line in lines:
                    if line.startswith(b"#"):
                        pending = line
                        return
                    yield line
            body = rows()
            yield mark, body
            for _ in body:  # what the caller left
                pass

    def _lines_backwards(self) -> Iterator[bytes]:
        if self._file is None:
            for piece in reversed(self._memory):
                if isinstance(piece, TransactionMark):
                    yield _mark_line(piece)[:-1]
                else:
                    yield from reversed(piece.splitlines())
            return
        self._file.flush()
        with open(self._file.name, "rb") as f:
            yield from _backwards(f)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None
        self._memory.clear()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _mark_line(mark: TransactionMark) -> bytes:
    return b"#" + orjson.dumps(asdict(mark)) + b"\n"


def _backwards(f: BinaryIO) -> Iterator[bytes]:
    """The lines of a file (each ending with a newline), last first, reading blocks from the end."""
    end = f.seek(0, os.SEEK_END)
    tail = b""
    while end > 0:
        start = max(0, end - BLOCK)
        f.seek(start)
        block = f.read(end - start) + tail
        end = start
        parts = block.split(b"\n")
        # the block ends with a newline, so parts[-1] is empty; parts[0] may be the end of a line
        # that starts in the block before: it is read again with that block
        tail = parts[0] + b"\n" if start > 0 else b""
        yield from reversed(parts[1:-1] if start > 0 else parts[:-1])
