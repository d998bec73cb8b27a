"""The stream service: read the store from a start, decode every transaction, deliver it to a sink.

Where it starts, first match wins: the sink's checkpoint (a restart resumes exactly where the
output ends); ``--start-gtid`` (transactions in the set are skipped); ``--start-file/--start-pos``;
``--from-now`` (the durable end); otherwise the store's first file. A start the store no longer
holds (purged by retention while the stream was stopped) is a :class:`StartPositionError` naming
both. While it runs, the follower's reader lease keeps purge away from the file it reads; a stream
whose sink keeps a checkpoint also holds a durable lease on its checkpoint's file
(:class:`~binhub.store.retention.StreamLease`), so files it needs survive while it is stopped.

The sink commits at a transaction boundary (:mod:`binhub.sinks`) after the batch the follower
returns when that batch reaches what is durable; while the stream catches up, at most every
``COMMIT_INTERVAL`` (a fsync and a checkpoint, or a Kafka transaction, per quarter second, not per
1 MiB batch).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from binhub.binlog.gtid import MariadbGtidList, parse_gtid_set
from binhub.errors import BinhubError, GtidError, StartPositionError
from binhub.schema import SchemaHistory
from binhub.sinks import ChangeSink, KeyedSink, Sink
from binhub.store.follower import Batch, StoreFollower
from binhub.store.index import file_seq
from binhub.store.reader import StoreReader
from binhub.store.recovery import GtidSet
from binhub.store.retention import StreamLease
from binhub.store.seek import plan_file_position, plan_mariadb_gtid, plan_mysql_gtid
from binhub.stream.changes import ChangeReader, TableFilter, TransactionEnd
from binhub.stream.columns import ColumnRules
from binhub.stream.config import StreamConfig
from binhub.stream.formats import BinhubFormat, output_format
from binhub.stream.metrics import StreamMetrics

__all__ = ["Stream"]

log = logging.getLogger(__name__)

T = TypeVar("T")

POLL = 0.5  # seconds between checks for stop() while the store is quiet
# While catching up, commit (fsync and checkpoint; a Kafka transaction) at most this often; once
# everything durable is read, after every batch.
COMMIT_INTERVAL = 0.25


@dataclass(slots=True)
class _Plan:
    file: str
    pos: int  # where the follower starts; past the head, the file's FDE is fed first
    executed: GtidSet | None
    emit_from: tuple[str, int] | None = None
    skip: GtidSet | None = None


class Stream:
    """One stream: :meth:`run` until caught up (``until_caught_up``) or :meth:`stop`."""

    def __init__(self, config: StreamConfig, reader: StoreReader, sink: Sink,
                 refresh_schema: Callable[[], SchemaHistory], *, metrics: StreamMetrics | None = None,
                 seed_schema: Callable[[], SchemaHistory] | None = None) -> None:
        self.config = config
        self.reader = reader
        self.sink = sink
        self.refresh_schema = refresh_schema
        self.seed_schema = seed_schema  # seeds the history from the upstream (see ChangeReader)
        self.metrics = metrics if metrics is not None else StreamMetrics(config.name)
        self.transactions = 0
        self.lines = 0
        self.position = ""  # file:pos after the last transaction delivered
        self._counted = self._lines_counted = 0
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- the daemon's Service protocol ---------------------------------------------------------
    async def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"stream {self.config.name}")

    async def stop(self) -> None:
        self.request_stop()
        if self._task is not None:
            with contextlib.suppress(BinhubError, asyncio.CancelledError):
                await self._task

    async def wait(self) -> None:
        if self._task is not None:
            await self._task

    def status(self) -> dict[str, Any]:
        return {"name": self.config.name, "position": self.position, "transactions": self.transactions,
                "lines": self.lines}

    def request_stop(self) -> None:
        """Stop after the batch in hand (committed); safe from a signal handler."""
        self._stopping.set()

    async def run(self) -> None:
        """Deliver until caught up (``until_caught_up``) or stopped; the sink is closed at the end."""
        try:
            await self._run()
        finally:
            await _off_loop(self.sink.close)

    async def _run(self) -> None:
        reader = self.reader
        target = reader.durable_position if self.config.until_caught_up else None
        while not reader.files:
            if self.config.until_caught_up or self._stopping.is_set():
                return  # an empty store: everything it holds has been delivered
            await reader.wait(POLL)
        try:
            plan = self._plan()
        except StartPositionError as exc:
            raise exc.in_plain_words() from None  # the store's words for a replica, not for a stream user
        keyed = self.sink if isinstance(self.sink, KeyedSink) else None
        lease: StreamLease | None = StreamLease(reader.readers_dir, self.config.name)
        assert lease is not None
        if not self.config.lease:
            lease.forget()  # `lease = false`: a lease an earlier run left holds nothing any more
            lease = None
        elif self.config.to == "-":
            lease = None  # stdout keeps no checkpoint to resume from
        else:
            lease.hold(plan.file, target=self.config.to)
        rules = ColumnRules(self.config.exclude_columns, self.config.mask_columns)
        output = output_format(self.config.format, stream_name=self.config.name, keyed=keyed is not None,
                               transaction_metadata=self.config.transaction_metadata)
        records = self.sink if isinstance(self.sink, ChangeSink) else None
        if records is not None and isinstance(output, BinhubFormat) and not rules:
            # Records straight from the decoder, not JSON the sink would parse back (column rules
            # work on JSON lines: with them the sink is given lines, which it reads as well).
            output = BinhubFormat(stream_name=self.config.name, keyed=False, records=True)
        changes = ChangeReader(refresh_schema=self.refresh_schema,
                               table_filter=TableFilter(self.config.include, self.config.exclude),
                               executed=plan.executed, emit_from=plan.emit_from, skip=plan.skip,
                               output=output, columns=rules, seed_schema=self.seed_schema)
        if plan.pos > 4:
            changes.feed(plan.file, 4, reader.file_head(plan.file).fde)  # the FDE the events need
        # share=False: a stream's reads are its own; kept in the hub's window they would cost up to
        # 192 MiB for nothing (and a 1 GiB transaction would fill it).
        with StoreFollower(reader, plan.file, plan.pos, holder=f"stream {self.config.name}", share=False) as follower:
            last: TransactionEnd | None = None
            held = plan.file
            commit_due = time.monotonic() + COMMIT_INTERVAL
            while not self._stopping.is_set():
                batch = await follower.read(POLL)
                end = await _off_loop(self._deliver, batch, changes, keyed, records)
                if end is not None:
                    last = end
                done = target is not None and not changes.in_transaction and \
                    (file_seq(batch.file), batch.end) >= (target.file_seq, target.position)
                if not done and time.monotonic() < commit_due and not self._stopping.is_set() \
                        and not follower.caught_up():
                    continue  # catching up: this batch is committed with a later one
                await _off_loop(self.sink.commit)
                commit_due = time.monotonic() + COMMIT_INTERVAL
                if last is not None:
                    self._delivered(last)
                    held = last.file
                    last = None
                if lease is not None:
                    lease.hold(held, target=self.config.to)  # only after the checkpoint is durable
                if done:
                    return
            await _off_loop(self.sink.commit)  # stopped: what was read is delivered
            if last is not None:
                self._delivered(last)
                if lease is not None:
                    lease.hold(last.file, target=self.config.to)

    def _deliver(self, batch: Batch, changes: ChangeReader, keyed: KeyedSink | None,
                 records: ChangeSink | None) -> TransactionEnd | None:
        """Decode one batch of events into the sink (in a thread: see :func:`_off_loop`), uncommitted;
        the last transaction end it gave the sink, if any."""
        last: TransactionEnd | None = None
        # Per event: names bound once, not looked up for each of millions of events.
        feed, write, transaction_end, file = changes.feed, self.sink.write, self.sink.transaction_end, batch.file
        try:
            for offset, event in batch.events:
                messages, end = feed(file, offset, bytes(event))
                if messages:
                    if keyed is not None:
                        keyed.send(messages)
                        self.lines += sum(m.value is not None if m.keys is None else len(m.keys) for m in messages)
                    else:
                        for message in messages:  # the lines (or records) of one rows event, or a DDL's
                            if message.rows is not None:
                                assert records is not None
                                records.write_changes(message.rows)
                                self.lines += len(message.rows)
                            elif message.value is not None:
                                write(message.value)
                                self.lines += message.value.count(b"\n")
                if end is not None:
                    self.transactions += 1
                    transaction_end(end)  # its checkpoint is rendered only if a commit writes it
                    last = end
        except BinhubError:
            # Deliver the transactions completed before the one that cannot be decoded: a
            # restart after the fix then begins with that one.
            with contextlib.suppress(BinhubError):
                self.sink.commit()
            raise
        return last

    def _delivered(self, end: TransactionEnd) -> None:
        m = self.metrics
        m.commits.inc()
        m.transactions.inc(self.transactions - self._counted)
        m.lines.inc(self.lines - self._lines_counted)
        self._counted, self._lines_counted = self.transactions, self.lines
        m.lag.set(max(0.0, time.time() - end.timestamp))
        self.position = f"{end.file}:{end.pos}"

    # -- where to start -------------------------------------------------------------------------
    def _plan(self) -> _Plan:
        reader = self.reader
        names = reader.files
        checkpoint = self.sink.resume_point()
        start = self.config.start
        if checkpoint is not None:
            self._must_hold(checkpoint.file, f"the stream {self.config.name!r}'s checkpoint "
                                              f"{checkpoint.file}:{checkpoint.pos}")
            return _Plan(checkpoint.file, checkpoint.pos, _parse_set(checkpoint.gtid_set))
        if start.gtid is not None:
            wanted = _parse_set(start.gtid)
            if isinstance(wanted, MariadbGtidList):
                file = plan_mariadb_gtid(reader, wanted, strict=False, ignore_duplicates=False).file
            else:
                assert wanted is not None
                file = plan_mysql_gtid(reader, wanted).file
            return _Plan(file, 4, wanted, skip=wanted)
        if start.file is not None:
            self._must_hold(start.file, f"--start-file {start.file}")
            pos = start.pos if start.pos is not None else 4
            plan_file_position(reader, start.file, pos)  # an event boundary within what is durable
            return _Plan(start.file, 4, self._head_set(start.file), emit_from=(start.file, pos))
        if start.from_now:
            durable, executed = reader.executed_snapshot()
            assert durable is not None
            return _Plan(durable.file, durable.position, executed)
        return _Plan(names[0], 4, self._head_set(names[0]))

    def _must_hold(self, file: str, what: str) -> None:
        names = self.reader.files
        if file in names:
            return
        if file_seq(file) < file_seq(names[0]):
            raise StartPositionError(
                f"{what} is older than the store's retention: {file} was purged, the oldest stored file is "
                f"{names[0]}", hint="the changes in between are gone from this store; start the stream afresh "
                "(a new --to directory) from a position the store holds, e.g. its first file")
        raise StartPositionError(f"{what}: {file} is not in the store, which holds {names[0]} … {names[-1]}")

    def _head_set(self, file: str) -> GtidSet | None:
        head = self.reader.file_head(file)
        if head.gtid_list is not None:
            return MariadbGtidList(head.gtid_list)
        return head.previous_gtids


async def _off_loop(work: Callable[..., T], *args: Any) -> T:
    """``work(*args)`` in a thread: decoding and the sink's blocking work (a MySQL downstream that
    applies slowly holds the stream back, a DDL drains the workers, an fsync) must not stall the
    event loop, which the other services of ``binhub run`` share. A cancelled stream still waits for
    the work to end, so the sink is never closed while it is being written to."""
    future = asyncio.get_running_loop().run_in_executor(None, work, *args)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            await future
        raise


def _parse_set(text: str) -> GtidSet | None:
    if not text:
        return None
    try:
        return parse_gtid_set(text)
    except GtidError as exc:
        raise StartPositionError(f"{text!r} is not a GTID set: {exc}") from exc
