"""The decoded changes of a span, transaction by transaction, in store order.

The decoding itself is the stream's (:class:`binhub.stream.ChangeReader`: the row decoder with the
schema each row was written under, DDL, transaction ends); a service does not import another, so
the caller hands it in as a :class:`ChangeDecoder` factory and this module drives it over the store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from binhub.flashback.span import Span, store_events
from binhub.sinks.base import Message
from binhub.store.reader import StoreReader

__all__ = ["ChangeDecoder", "DecoderFactory", "TransactionMark", "read_changes", "read_span"]


class TransactionEndLike(Protocol):
    @property
    def file(self) -> str: ...
    @property
    def pos(self) -> int: ...
    @property
    def gtid(self) -> object | None: ...


class ChangeDecoder(Protocol):
    """Fed the store's events in order: the binhub-format messages of each (their values are JSON
    lines), and the transaction end it completes."""

    def feed(self, file: str, offset: int, data: bytes) -> tuple[list[Message], TransactionEndLike | None]: ...


# (include globs, exclude globs) -> a fresh decoder
DecoderFactory = Callable[[Sequence[str], Sequence[str]], ChangeDecoder]


@dataclass(frozen=True, slots=True)
class TransactionMark:
    """The end of one transaction's lines: which transaction, and where it lies in the store."""

    gtid: str | None
    time: int  # the GTID event's header time, seconds since the epoch
    file: str
    pos: int  # where it starts
    end: int  # where the next one starts


async def read_changes(reader: StoreReader, decoder: ChangeDecoder, file: str, pos: int, *,
                       stop: tuple[str, int] | None = None, holder: str,
                       ) -> AsyncIterator[bytes | TransactionMark]:
    """Chunks of JSON lines, each transaction's followed by its mark, from ``file:pos`` (a
    transaction boundary) until the transaction ending at ``stop`` (else what is durable now)."""
    if pos > 4:
        decoder.feed(file, 4, reader.file_head(file).fde)  # the FDE the events need
    start: tuple[int, int] | None = None
    async for name, offset, event in store_events(reader, file, pos, holder=holder):
        data = bytes(event)
        if start is None:
            start = (offset, int.from_bytes(data[0:4], "little"))
        messages, end = decoder.feed(name, offset, data)
        for message in messages:
            if message.value:
                yield message.value
        if end is None:
            continue
        gtid = None if end.gtid is None else str(end.gtid).lower()
        yield TransactionMark(gtid, start[1], name, start[0], end.pos)
        start = None
        if stop is not None and (name, end.pos) == stop:
            return


async def read_span(reader: StoreReader, span: Span, decoder: ChangeDecoder, *, holder: str,
                    ) -> AsyncIterator[bytes | TransactionMark]:
    """:func:`read_changes` over exactly the span's transactions."""
    async for piece in read_changes(reader, decoder, span.first.file, span.first.pos,
                                    stop=(span.end_file, span.end_pos), holder=holder):
        yield piece
