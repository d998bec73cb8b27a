"""Where a range lies in the store: the first and last transaction its bounds select.

Found with a cheap pass over the events (transaction boundaries, GTIDs and header times; no row is
decoded), so bounds that match nothing are refused before any work, with what the store holds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

from binhub.binlog.gtid import MariadbGtid, MysqlGtid
from binhub.binlog.transaction import TransactionTracker
from binhub.errors import RangeError
from binhub.flashback.bounds import Bound, RangeBounds, TransactionHead
from binhub.store.follower import StoreFollower
from binhub.store.index import file_seq
from binhub.store.reader import StoreReader

__all__ = ["Span", "locate", "store_events"]


@dataclass(frozen=True, slots=True)
class Span:
    """The transactions ``first`` … ``last`` (inclusive); the last ends at ``end_file:end_pos``."""

    first: TransactionHead
    last: TransactionHead
    end_file: str
    end_pos: int
    transactions: int


async def store_events(reader: StoreReader, file: str, pos: int, *, holder: str,
                       ) -> AsyncIterator[tuple[str, int, memoryview]]:
    """(file, offset, event) from ``file:pos`` to what is durable now (a reader lease held meanwhile)."""
    with StoreFollower(reader, file, pos, holder=holder) as follower:
        while True:
            batch = await follower.read(0)
            if not batch.events:
                return
            for offset, event in batch.events:
                yield batch.file, offset, event


async def transaction_heads(reader: StoreReader, file: str, *, holder: str,
                            ) -> AsyncIterator[tuple[TransactionHead, int]]:
    """Every complete transaction from the start of ``file`` on: its head, and where it ends."""
    tracker = TransactionTracker()
    current = ""
    crc = 4
    start: tuple[int, int] | None = None  # (offset, header time) of the open transaction
    async for name, offset, event in store_events(reader, file, 4, holder=holder):
        if name != current:
            current, crc, start = name, 4 if reader.file_head(name).crc else 0, None
            tracker.reset()
        opened = tracker.in_transaction
        done = tracker.transactions
        # a control event outside a transaction (GTID_LIST, BINLOG_CHECKPOINT, ...) ends a unit, not a transaction
        ended = tracker.feed(event, crc) and tracker.transactions != done
        if not opened and (ended or tracker.in_transaction):
            start = (offset, int.from_bytes(event[0:4], "little"))
        if ended and start is not None:
            gtid = tracker.last_gtid
            yield TransactionHead(name, start[0], None if gtid is None else str(gtid).lower(), start[1]), \
                offset + len(event)
            start = None


async def locate(reader: StoreReader, bounds: RangeBounds, *, holder: str) -> Span:
    """The span ``bounds`` select (see :mod:`binhub.flashback.bounds`); :class:`RangeError` when
    a bound matches nothing or no transaction falls between them."""
    names = reader.files
    if not names:
        raise RangeError("the store holds no binlog file yet", hint="start the relay first")
    start, stop = bounds.start, bounds.stop
    file = names[0]
    if start is not None and start.file is not None:
        file = _stored(reader, start.file, "--start-file")
    elif start is not None:
        file = _first_file(reader, start)
    if stop is not None and stop.file is not None:
        _stored(reader, stop.file, "--stop-file")
    first: TransactionHead | None = None
    last: TransactionHead | None = None
    seen_first: TransactionHead | None = None
    seen_last: TransactionHead | None = None
    end = (file, 4)
    count = 0
    async for head, head_end in transaction_heads(reader, file, holder="range scan"):
        seen_first = seen_first or head
        seen_last = head
        if first is None:
            if start is not None and not start.reached_by(head):
                if stop is not None and stop.gtid is not None and stop.reached_by(head):
                    raise RangeError(f"--stop-gtid {stop.gtid} comes before the start ({start.text}) in the store")
                continue
            first = head
        if stop is not None and stop.gtid is None and stop.reached_by(head):
            break
        last, end, count = head, (head.file, head_end), count + 1
        if stop is not None and stop.gtid is not None and stop.reached_by(head):
            break
    else:
        if stop is not None and stop.gtid is not None and first is not None:
            raise RangeError(f"--stop-gtid {stop.gtid} is not in the store after {first.gtid or first.file}"
                             f" ({_held(seen_first, seen_last)})")
    if first is None:
        raise RangeError(f"no transaction of the store matches the start ({_what(start)}); "
                         f"{_held(seen_first, seen_last)}")
    if last is None:
        raise RangeError(f"no transaction lies {bounds.describe()}: the first one after the start "
                         f"({first.gtid or f'{first.file}:{first.pos}'}, {_when(first.time)}) is already past the stop")
    return Span(first, last, end[0], end[1], count)


def _first_file(reader: StoreReader, start: Bound) -> str:
    """The newest stored file the start can lie in, from the files' heads (no event read): the GTID
    state before a file (MariaDB's GTID_LIST, MySQL's PREVIOUS_GTIDS) holds a GTID that lies in an
    older file; a file begun (its FORMAT_DESCRIPTION's time) after the start time holds only later
    transactions, save one begun before and committed across the rotation, which the file before
    it starts earlier still. Where the heads cannot tell, the store's first file."""
    names = reader.files
    for name in reversed(names):
        head = reader.file_head(name)
        if start.time is not None:
            if int.from_bytes(head.fde[0:4], "little") < start.time:
                return name
        elif start.gtid is not None and ":" not in start.gtid and head.gtid_list is not None:
            gtid = MariadbGtid.parse(start.gtid)
            if not any(g.domain_id == gtid.domain_id and g.seq_no >= gtid.seq_no for g in head.gtid_list):
                return name
        elif start.gtid is not None and ":" in start.gtid and head.previous_gtids is not None:
            if MysqlGtid.parse(start.gtid) not in head.previous_gtids:
                return name
        else:
            break
    return names[0]


def _stored(reader: StoreReader, file: str, option: str) -> str:
    names = reader.files
    if file not in names:
        older = file_seq(file) < file_seq(names[0])
        raise RangeError(f"{option} {file} is not in the store, which holds {names[0]} … {names[-1]}"
                         + (" (it was purged)" if older else ""))
    return file


def _what(bound: Bound | None) -> str:
    return "the store's first transaction" if bound is None else bound.text


def _when(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _held(first: TransactionHead | None, last: TransactionHead | None) -> str:
    if first is None or last is None:
        return "the store holds no complete transaction"
    return (f"the store holds {first.gtid or f'{first.file}:{first.pos}'} ({_when(first.time)}) … "
            f"{last.gtid or f'{last.file}:{last.pos}'} ({_when(last.time)})")
