"""Causality between upstream transactions, and the low-water mark of what is applied.

Transactions are numbered in upstream order as they are submitted. Each holds keys (see
:mod:`~binhub.sinks.mysql.transaction`); a transaction whose keys are free goes to the least busy
worker (in turns among equals); one that shares keys with in-flight transactions of a single worker goes to that worker
(its queue keeps them in order); one that shares keys with several workers waits until they have
committed. So no worker ever waits for another mid-transaction, and two transactions that touch
the same row are applied in upstream order. DDL and very large transactions :meth:`drain` first. At most
:data:`MAX_INFLIGHT_BYTES` of SQL is in flight: submitting waits while more is.

The low-water mark is the checkpoint of the last transaction before which everything has
committed. Workers ask for it (:meth:`mark_with`) as it will be once their own group commits,
which is what they record in their slot of the checkpoint table.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from binhub.sinks.base import Checkpoint

if TYPE_CHECKING:
    from binhub.sinks.mysql.transaction import Transaction
    from binhub.sinks.mysql.worker import Worker

__all__ = ["MAX_INFLIGHT_BYTES", "Scheduler"]

MAX_INFLIGHT_BYTES = 256 << 20  # SQL handed to workers and not committed yet: the sink's memory bound
_PRUNE_AT = 4096  # keys held before those of committed transactions are dropped

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, workers: Sequence[Worker], mark: Checkpoint | None) -> None:
        self.workers = list(workers)
        self._cond = threading.Condition()
        self._seq = 0
        self._turn = 0
        self._low = 0  # every transaction numbered <= this has committed
        self._mark = mark  # its checkpoint
        self._checkpoints: dict[int, Checkpoint] = {}  # submitted, not below the mark yet
        self._done: set[int] = set()
        self._holders: dict[str, tuple[int, int]] = {}  # key -> (seq, worker index) of its last holder
        self._prune_at = _PRUNE_AT
        self._inflight: dict[int, int] = {}  # seq -> worker index
        self._sizes: dict[int, int] = {}  # seq -> bytes of SQL, while in flight
        self._inflight_bytes = 0
        self.error: BaseException | None = None
        self.error_raised = False  # the error reached the stream's thread (it is raised there once)

    # -- main thread --------------------------------------------------------------------------------
    def number(self, txn: Transaction) -> int:
        self._seq += 1
        txn.seq = self._seq
        assert txn.checkpoint is not None
        with self._cond:
            self._checkpoints[txn.seq] = txn.checkpoint
        return txn.seq

    def submit(self, txn: Transaction) -> None:
        """Hand a numbered transaction to a worker (blocking while it must wait, or queues are full)."""
        with self._cond:
            while True:
                self._raise()
                inflight = self._inflight
                owners = {h[1] for k in txn.keys if (h := self._holders.get(k)) is not None and h[0] in inflight}
                if len(owners) <= 1 and (self._inflight_bytes < MAX_INFLIGHT_BYTES or not self._inflight):
                    break
                self._cond.wait(0.5)
            if owners:
                index = owners.pop()
            else:
                n, turn = len(self.workers), self._turn
                index = min(range(n), key=lambda i: (self.workers[i].load, (i - turn) % n))
                self._turn = (index + 1) % n  # equally busy workers take turns
            for key in txn.keys:
                self._holders[key] = (txn.seq, index)
            self._inflight[txn.seq] = index
            self._sizes[txn.seq] = txn.size
            self._inflight_bytes += txn.size
            self.workers[index].load += 1
        if log.isEnabledFor(logging.DEBUG):  # (sorting the keys is not free: not for every transaction)
            log.debug("transaction %d (%s) to worker %d; keys %s", txn.seq, txn.gtid, index, sorted(txn.keys)[:4])
        self.workers[index].put(txn)

    def skip(self, txn: Transaction) -> None:
        """A numbered transaction with nothing to apply: it counts as committed at once."""
        with self._cond:
            self._complete([txn.seq])

    def drain(self) -> None:
        """Wait until every submitted transaction has committed."""
        with self._cond:
            while self._inflight:
                self._raise()
                self._cond.wait(0.5)
            self._raise()

    @property
    def mark(self) -> Checkpoint | None:
        with self._cond:
            return self._mark

    def check(self) -> None:
        self._raise()  # no lock: a worker's error is set once, and seen here at the latest on the next call

    def _raise(self) -> None:
        if self.error is not None:
            self.error_raised = True
            raise self.error

    # -- workers ------------------------------------------------------------------------------------
    def mark_with(self, seqs: Sequence[int]) -> tuple[int, Checkpoint | None]:
        """The low-water mark (number, checkpoint) as it is once ``seqs`` have committed too."""
        with self._cond:
            low, mark = self._low, self._mark
            pending = set(seqs)
            while low + 1 in self._done or low + 1 in pending:
                low += 1
                mark = self._checkpoints.get(low, mark)
            return low, mark

    def wait_turn(self, first: int, timeout: float | None = None) -> bool:
        """``--ordered``: wait until everything before ``first`` has committed (False: not within
        ``timeout`` seconds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._low < first - 1:
                self._raise()
                left = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def committed(self, seqs: Sequence[int]) -> None:
        with self._cond:
            for seq in seqs:
                index = self._inflight.pop(seq, None)
                if index is not None:
                    self.workers[index].load -= 1
                    self._inflight_bytes -= self._sizes.pop(seq)
            self._complete(seqs)

    def failed(self, error: BaseException) -> None:
        with self._cond:
            if self.error is None:
                self.error = error
            self._cond.notify_all()

    def _complete(self, seqs: Sequence[int]) -> None:
        self._done.update(seqs)
        while self._low + 1 in self._done:
            self._low += 1
            self._done.discard(self._low)
            self._mark = self._checkpoints.pop(self._low, self._mark)
        if not self._inflight:
            self._holders.clear()  # every key is free again
        elif len(self._holders) > self._prune_at:
            # Keys of committed transactions are free again. Pruned when the map has doubled since
            # (large transactions hold thousands of keys: pruning at every commit was quadratic).
            self._holders = {k: v for k, v in self._holders.items() if v[0] in self._inflight}
            self._prune_at = max(_PRUNE_AT, 2 * len(self._holders))
        self._cond.notify_all()
