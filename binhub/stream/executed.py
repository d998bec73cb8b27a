"""The GTID set a stream has executed through each transaction, folded only when a checkpoint asks.

A checkpoint records the set executed through its transaction, but a sink writes one checkpoint
per commit (a jsonl file or a Kafka transaction per quarter second while catching up), not one
per transaction: copying the set and decoding the GTID for each of a million single-row
transactions was ~8 % of a stream's CPU. So the reader only appends each transaction's raw GTID
event here, and :meth:`ExecutedLog.through` folds them in when a checkpoint is rendered.

The folds go forward only: the set through a transaction can be asked for until a later
transaction's has been (the sinks ask for the last transaction end they were given, or for each
as they are given it); asking for an earlier one after that is a programming error.
"""

from __future__ import annotations

from binhub.binlog.gtid import MariadbGtidList
from binhub.binlog.transaction import GtidEvent, decode_gtid_event, gtid_event_domain
from binhub.store.recovery import GtidSet, add_gtid

__all__ = ["ExecutedLog"]

# Unasked, the raw events are folded in every this many transactions (a sink that keeps no
# checkpoint, such as stdout, never asks), all but the last: a sink may still ask for the end
# before the one just read (the stream commits what it has when writing the new one's lines fails).
_FOLD_EVERY = 4096


class ExecutedLog:
    """The start set plus the GTID events of the transactions read since, in order."""

    __slots__ = ("_folded", "_pending", "_set")

    def __init__(self, start: GtidSet | None) -> None:
        self._set = start
        self._folded = 0  # transactions (with a GTID) already in _set
        self._pending: list[GtidEvent] = []

    @property
    def count(self) -> int:
        """Transactions with a GTID read so far: what :meth:`through` takes."""
        return self._folded + len(self._pending)

    def append(self, event: GtidEvent) -> int:
        """One more transaction, by its GTID event; returns :attr:`count` after it."""
        pending = self._pending
        pending.append(event)
        if len(pending) >= _FOLD_EVERY:
            self.through(self._folded + len(pending) - 1)
        return self._folded + len(pending)

    def through(self, count: int) -> GtidSet | None:
        """The set executed through the ``count``-th transaction with a GTID (None: the start set
        was None and no GTID has been read)."""
        folded = self._folded
        if count < folded:
            raise RuntimeError(f"the executed GTID set through transaction {count} was asked for after the one "
                               f"through {folded}: checkpoints must be rendered in order")
        n = count - folded
        if n:
            batch, self._pending = self._pending[:n], self._pending[n:]
            self._set = _fold(self._set, batch)
            self._folded = count
        return self._set


def _fold(executed: GtidSet | None, events: list[GtidEvent]) -> GtidSet | None:
    if executed is None or isinstance(executed, MariadbGtidList):
        # MariaDB: a position keeps only the last GTID of each domain, so only those are decoded
        # (and each update copies the list: one per domain, not one per transaction).
        last_by_domain: dict[int, GtidEvent] = {}
        for event in events:
            domain = gtid_event_domain(event)
            if domain is None:
                break  # a MySQL GTID among them: every one counts, in order
            last_by_domain[domain] = event
        else:
            events = list(last_by_domain.values())
    for event in events:
        gtid = decode_gtid_event(event)
        if gtid is not None:
            executed = add_gtid(executed, gtid)
    return executed
