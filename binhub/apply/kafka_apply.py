"""The apply service: Kafka topics written by ``binhub stream`` applied to MySQL/MariaDB through the
MySQL sink, exactly once (what TiDB Binlog's arbiter does, without its at-least-once window).

The :class:`~binhub.apply.consumer.KafkaReader` reads every partition into the
:class:`~binhub.apply.merge.Merger`, which releases changes in the upstream's order once nothing
can come before them. Consecutive changes with one GTID are one transaction (without GTIDs, what a
seal delimits is one); a transaction ends when the next one begins or a seal is reached, and is
handed to the sink (:class:`~binhub.sinks.mysql.sink.MysqlSink`) with a checkpoint carrying the
offsets every partition resumes at. The sink commits those offsets in the downstream's
``binhub.stream_checkpoint`` in the same transaction as the rows, so a restart (after ``kill -9``
too) seeks to exactly what the downstream holds: nothing applied twice, nothing lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import threading
import time
from typing import Any

import orjson

from binhub.apply.changes import Change
from binhub.apply.config import KafkaApplyConfig
from binhub.apply.consumer import KafkaReader
from binhub.apply.debezium import DebeziumConverter
from binhub.apply.metrics import ApplyMetrics
from binhub.binlog.gtid import MariadbGtid, MariadbGtidList, MysqlGtid, MysqlGtidSet, parse_gtid_set
from binhub.errors import BinhubError, GtidError
from binhub.sinks import Checkpoint
from binhub.sinks.mysql.sink import MysqlSink
from binhub.store.recovery import add_gtid

__all__ = ["KafkaApply"]

log = logging.getLogger(__name__)

_POLL = 0.2  # seconds a poll waits for messages
_TICK = 1.0  # seconds between metric updates
_BAD_WAIT = 10.0  # seconds a bad message waits for seals that release what comes before it


class _Executed:
    """The GTIDs applied so far (through the checkpoint's set), for the checkpoint row."""

    def __init__(self, text: str) -> None:
        self.set: MysqlGtidSet | MariadbGtidList | None = None
        if text:
            with contextlib.suppress(GtidError, ValueError):
                self.set = parse_gtid_set(text)

    def add(self, gtid: str) -> None:
        with contextlib.suppress(GtidError, ValueError):
            mariadb = "-" in gtid and ":" not in gtid
            self.set = add_gtid(self.set, MariadbGtid.parse(gtid) if mariadb else MysqlGtid.parse(gtid))

    def __str__(self) -> str:
        return str(self.set) if self.set is not None else ""


class KafkaApply:
    """One ``binhub apply``: :meth:`run` until caught up (``until_caught_up``) or :meth:`stop`."""

    def __init__(self, config: KafkaApplyConfig, sink: MysqlSink, *, metrics: ApplyMetrics | None = None) -> None:
        self.config = config
        self.sink = sink
        self.metrics = metrics if metrics is not None else ApplyMetrics(config.name)
        resume = sink.resume_point()
        self.reader = KafkaReader(config, resume)
        self.converter = DebeziumConverter(sink.main, sink.renames, sink.options.reconnect_for) \
            if config.format == "debezium" else None
        self._executed = _Executed(resume.gtid_set if resume is not None else "")
        self._stopping = threading.Event()
        self._task: asyncio.Task[None] | None = None
        self._open: Change | None = None  # the first change of the transaction being handed over
        self._last: Change | None = None
        self.rows = 0
        self.transactions = 0
        self._bad_seen: float | None = None

    # -- the daemon's Service protocol -----------------------------------------------------------
    async def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"apply {self.config.name}")

    async def stop(self) -> None:
        self.request_stop()
        if self._task is not None:
            with contextlib.suppress(BinhubError, asyncio.CancelledError):
                await self._task

    async def wait(self) -> None:
        if self._task is not None:
            await self._task

    def request_stop(self) -> None:
        """Stop after the transactions released so far are handed over; safe from a signal handler."""
        self._stopping.set()

    def status(self) -> dict[str, Any]:
        return {"name": self.config.name, "rows": self.rows, "transactions": self.transactions,
                "position": f"{self._last.file}:{self._last.pos}" if self._last is not None else "",
                "lag_messages": self.reader.lag()}

    async def run(self) -> None:
        await asyncio.to_thread(self.run_blocking)

    # -- the loop (in a thread of its own: librdkafka and the sink block) -------------------------
    def run_blocking(self) -> None:
        try:
            self._run()
        finally:
            try:
                self.sink.close()
            finally:
                self.reader.close()

    def _run(self) -> None:
        reader, merger = self.reader, self.reader.merger
        ends = reader.ends() if self.config.until_caught_up else None
        ticked = time.monotonic()
        while not self._stopping.is_set():
            reader.poll(_POLL)
            reader.clear_waiting()
            self._release()
            self.sink.commit()  # the workers' errors surface here
            if reader.bad is not None and self._stuck_at_bad():
                raise reader.bad  # the transaction it may belong to is not handed over
            if time.monotonic() - ticked >= _TICK:
                ticked = time.monotonic()
                self.metrics.tick(self.rows, reader.lag())
            if ends is not None and reader.reached(ends) and merger.peek() is None and self._open is None \
                    and (merger.at_seal() or merger.buffered() == 0):
                break
        self.metrics.tick(self.rows, reader.lag())
        if merger.copies:
            log.info("%d change(s) the topics hold twice (a producer's restart) were applied once",
                     merger.copies)

    def _stuck_at_bad(self) -> bool:
        """Whether everything that surely comes before the bad message is released."""
        merger = self.reader.merger
        if merger.peek() is not None:
            self._bad_seen = None
            return False
        if self.reader.bad_partition in merger.waiting:
            return True
        # Its partition still holds changes past the last seal: wait a while for another seal.
        now = time.monotonic()
        if self._bad_seen is None:
            self._bad_seen = now
        return now - self._bad_seen > _BAD_WAIT

    def _release(self) -> None:
        merger = self.reader.merger
        while (change := merger.peek()) is not None:
            opened = self._open
            if opened is not None and (change.gtid != opened.gtid or change.ddl or opened.ddl):
                self._end()
            merger.pop()
            self._feed(change)
        if self._open is not None and merger.at_seal():
            self._end()

    def _feed(self, change: Change) -> None:
        if self._open is None:
            self._open = change
        self._last = change
        if not self._wanted(change):
            return
        if change.line is not None:
            self.sink.write(change.line)
        else:
            assert self.converter is not None and change.envelope is not None
            doc = self.converter.document(change.envelope, str(change.where))
            self.sink.write(orjson.dumps(doc) + b"\n")
        if not change.ddl:
            self.rows += 1
            self.metrics.rows.inc()

    def _end(self) -> None:
        opened, last = self._open, self._last
        assert opened is not None and last is not None
        if opened.gtid:
            self._executed.add(opened.gtid)
        self.sink.transaction_end(Checkpoint(last.file, last.pos, str(self._executed), offsets=self.reader.offsets()))
        self._open = None
        self.transactions += 1
        self.metrics.transactions.inc()
        if opened.ddl and self.converter is not None:
            self.converter.forget()

    def _wanted(self, change: Change) -> bool:
        include, exclude = self.config.include, self.config.exclude
        if not include and not exclude:
            return True
        if change.table:
            name = f"{change.db}.{change.table}"
            return (not include or any(fnmatch.fnmatchcase(name, p) for p in include)) and \
                not any(fnmatch.fnmatchcase(name, p) for p in exclude)
        # A statement on a database: wanted if some table of it may be.
        db = change.db
        return (not include or any(fnmatch.fnmatchcase(db, p.partition(".")[0]) for p in include)) and \
            not any(fnmatch.fnmatchcase(db, p.partition(".")[0]) and p.partition(".")[2] == "*" for p in exclude)
