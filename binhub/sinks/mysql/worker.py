"""A worker: one downstream connection in a thread, applying the transactions it is handed.

It takes whatever its queue holds (up to a bound) and applies it as one downstream transaction
with an upsert of its checkpoint slot (:mod:`~binhub.sinks.mysql.checkpoint`): several small
upstream transactions then cost one commit (one fsync downstream), and the downstream still only
ever holds whole upstream transactions. The group's statements, and the upsert, go to the server in
packets of many statements (one round trip each, not one per statement); a group that meets a
conflict the policy resolves (overwrite, skip) is rolled back and run again statement by statement,
where each conflict is handled as it comes. A deadlock or lock wait timeout replays the group; a lost
connection is reconnected (the downstream restarting) and, when the COMMIT's outcome is unknown,
the worker's own checkpoint row says whether the group committed.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
import pymysql  # type: ignore[import-untyped, unused-ignore]

from binhub.errors import ApplyConflict, ApplyError, BinhubError, DownstreamUnavailable
from binhub.sinks.mysql.checkpoint import CHECKPOINT_TABLE, position_key, slot_sql
from binhub.sinks.mysql.connection import DUPLICATE_KEY, RETRY_TRANSACTION, Downstream, error_code, is_lost
from binhub.sinks.mysql.options import ApplyOptions, OnConflict
from binhub.sinks.mysql.scheduler import Scheduler
from binhub.sinks.mysql.sql import quote_text
from binhub.sinks.mysql.transaction import Statement, Transaction

__all__ = ["Worker", "run_statement"]

log = logging.getLogger(__name__)

_GROUP_TRANSACTIONS = 256
_GROUP_BYTES = 8 << 20
_QUEUE_DEPTH = 512
_PACKET_BYTES = 1 << 20  # SQL sent in one round trip (a statement larger than this goes alone)
_TURN_WAIT = 2.0  # seconds an --ordered worker holds its locks waiting for its turn to commit
_STOP: Any = object()

ConflictCounter = Callable[[str], None]


def run_statement(downstream: Downstream, st: Statement, policy: OnConflict, count: ConflictCounter) -> None:
    """Execute one statement; a duplicate key or a missing row is handled as ``policy`` says."""
    try:
        matched = downstream.execute(st.sql)
    except pymysql.err.IntegrityError as exc:
        if error_code(exc) not in DUPLICATE_KEY:
            raise
        _conflict(downstream, st, policy, count, "duplicate key", f"the downstream already holds the key: {exc.args[1]}")
        return
    if st.must_match and matched == 0:
        _conflict(downstream, st, policy, count, "missing row", "the downstream has no such row")


class _OneByOne(Exception):  # noqa: N818 - a signal inside the worker, never raised out of it
    """A conflict the policy resolves: the group is run again statement by statement."""


def run_batched(downstream: Downstream, statements: list[Statement], policy: OnConflict, count: ConflictCounter,
                then: str | None = None) -> None:
    """Execute statements (and ``then``, e.g. the checkpoint's upsert) in packets of many; a conflict
    stops the stream (policy STOP) or raises :class:`_OneByOne` (the caller rolls back and runs
    them with :func:`run_statement`)."""
    limit = min(_PACKET_BYTES, downstream.max_allowed_packet // 4)
    sqls = [st.sql for st in statements]
    if then is not None:
        sqls.append(then)
    start = 0
    while start < len(sqls):
        end, size = start + 1, len(sqls[start])
        while end < len(sqls) and size + len(sqls[end]) < limit:
            size += len(sqls[end]) + 2
            end += 1
        counts, error = downstream.execute_batch(sqls[start:end])
        for st, matched in zip(statements[start:end], counts, strict=False):
            if st.must_match and matched == 0:
                _batch_conflict(downstream, st, policy, count, "missing row", "the downstream has no such row")
        if error is not None:
            failed = start + len(counts)
            if failed >= len(statements) or not isinstance(error, pymysql.err.IntegrityError) \
                    or error_code(error) not in DUPLICATE_KEY:
                raise error
            _batch_conflict(downstream, statements[failed], policy, count, "duplicate key",
                            f"the downstream already holds the key: {error.args[1]}")
        start = end


def _batch_conflict(downstream: Downstream, st: Statement, policy: OnConflict, count: ConflictCounter, kind: str,
                    why: str) -> None:
    if policy is OnConflict.STOP:
        _conflict(downstream, st, policy, count, kind, why)
    raise _OneByOne


def _conflict(downstream: Downstream, st: Statement, policy: OnConflict, count: ConflictCounter, kind: str,
              why: str) -> None:
    count(kind)
    if policy is OnConflict.STOP:
        raise ApplyConflict(f"{kind} on {st.op} into {st.table.db}.{st.table.table} (GTID {st.gtid}), row {st.row()}: "
                            f"{why}", hint="the downstream was changed outside the stream; fix the row, or "
                            "restart with --on-conflict overwrite|skip (or --safe-mode for a target that already "
                            "holds rows)")
    for sql in st.on_conflict(policy):
        downstream.execute(sql)


class Worker:
    def __init__(self, index: int, downstream: Downstream, options: ApplyOptions, stream: str,
                 count_conflict: ConflictCounter, count_rows: Callable[[int], None]) -> None:
        self.index = index
        self.slot = index + 1  # slot 0 belongs to the sink itself (DDL, large transactions)
        self.downstream = downstream
        self.options = options
        self.stream = stream
        self.count_conflict = count_conflict
        self.count_rows = count_rows  # row changes committed
        self.load = 0  # transactions queued or running (the scheduler's, under its lock)
        self.scheduler: Scheduler | None = None
        self._queue: queue.Queue[Any] = queue.Queue(_QUEUE_DEPTH)
        self._applied: list[tuple[int, str]] = []  # (seq, ident) committed above the mark it wrote
        self._thread = threading.Thread(target=self._run, name=f"binhub-apply-{index}", daemon=True)
        self._stopping = False

    def start(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self._thread.start()

    def put(self, txn: Transaction) -> None:
        while True:
            try:
                self._queue.put(txn, timeout=0.5)
                return
            except queue.Full:
                assert self.scheduler is not None
                self.scheduler.check()

    def stop(self) -> None:
        self._stopping = True
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()
        self.downstream.close()

    # -- the thread -----------------------------------------------------------------------------
    def _run(self) -> None:
        scheduler = self.scheduler
        assert scheduler is not None
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                group = [first]
                size = first.size
                stop = False
                while len(group) < _GROUP_TRANSACTIONS and size < _GROUP_BYTES:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is _STOP:
                        stop = True
                        break
                    group.append(nxt)
                    size += nxt.size
                self._apply(group)
                self.count_rows(sum(t.rows for t in group))
                scheduler.committed([t.seq for t in group])
                if stop:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the stream's thread, which raises it
            self.downstream.rollback()
            scheduler.failed(exc)

    def _apply(self, group: list[Transaction]) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                self._attempt(group)
                return
            except pymysql.err.MySQLError as exc:
                code = error_code(exc)
                if is_lost(exc):
                    if self._stopping:
                        raise DownstreamUnavailable(f"lost the downstream {self.downstream.target}: {exc}") from exc
                    log.warning("worker %d lost the downstream %s (%s); reconnecting", self.index,
                                self.downstream.target, exc)
                    self.downstream.reconnect(self.options.reconnect_for, lambda: self._stopping)
                    if self._committed(group):
                        self._remember(group)
                        return
                elif code in RETRY_TRANSACTION and attempt < 10:
                    self.downstream.rollback()
                    time.sleep(0.05 * attempt)
                else:
                    self.downstream.rollback()
                    txn = group[0]
                    raise ApplyError(f"the downstream refused a change of GTID {txn.gtid or txn.ident}: {exc}") from exc
            except BinhubError:
                self.downstream.rollback()
                raise

    def _attempt(self, group: list[Transaction]) -> None:
        downstream = self.downstream
        if not downstream.connected:  # its first group: the downstream may be restarting right now
            downstream.reconnect(self.options.reconnect_for, lambda: self._stopping)
        policy = self.options.on_conflict
        statements = [st for txn in group for st in txn.statements]
        scheduler = self.scheduler
        assert scheduler is not None
        seqs = [t.seq for t in group]
        ordered = self.options.ordered
        # Unordered, the checkpoint goes in the statements' last packet: the mark as it stands
        # before they run is true too (it only grows; what lies above it is listed as applied).
        checkpoint = None if ordered else self._checkpoint(scheduler, group)
        try:
            run_batched(downstream, statements, policy, self.count_conflict, checkpoint[0] if checkpoint else None)
        except _OneByOne:
            downstream.rollback()
            for st in statements:
                run_statement(downstream, st, policy, self.count_conflict)
            if checkpoint is not None:
                downstream.execute(checkpoint[0])
        if ordered:
            if not scheduler.wait_turn(seqs[0], _TURN_WAIT):
                # An earlier transaction may be waiting for a lock this group holds (a gap lock outside
                # the keys the scheduler knows): give the locks back, wait for the turn, do it again.
                downstream.rollback()
                scheduler.wait_turn(seqs[0])
                self._attempt(group)
                return
            checkpoint = self._checkpoint(scheduler, group)
            downstream.execute(checkpoint[0])
        assert checkpoint is not None
        downstream.commit()
        low = checkpoint[1]
        self._applied = [(s, i) for s, i in self._applied if s > low] + [(t.seq, t.ident) for t in group if t.seq > low]

    def _checkpoint(self, scheduler: Scheduler, group: list[Transaction]) -> tuple[str, int]:
        """The upsert of this worker's slot for ``group`` committed, and the low-water mark's number."""
        low, mark = scheduler.mark_with([t.seq for t in group])  # None: nothing below it has committed yet
        applied = [ident for seq, ident in self._applied if seq > low]
        applied += [t.ident for t in group if t.seq > low]
        return slot_sql(self.stream, self.slot, mark, applied), low

    def _remember(self, group: list[Transaction]) -> None:
        self._applied += [(t.seq, t.ident) for t in group]

    def _committed(self, group: list[Transaction]) -> bool:
        """After a lost connection: did the group's COMMIT make it? Its checkpoint row says."""
        rows = self.downstream.fetch(f"SELECT file, pos, applied FROM {CHECKPOINT_TABLE} WHERE stream = "
                                     f"{quote_text(self.stream)} AND slot = {self.slot}")
        self.downstream.commit()
        if not rows:
            return False
        file, pos, applied = rows[0]
        last = group[-1]
        assert last.checkpoint is not None
        if last.ident in orjson.loads(applied):
            return True
        return position_key(file, int(pos)) >= position_key(last.checkpoint.file, last.checkpoint.pos)
