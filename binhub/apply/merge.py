"""The changes of several Kafka partitions put back into the upstream's order, released only when
nothing can still come before them. No Kafka in here: :mod:`binhub.apply.consumer` feeds it.

Each partition holds its changes in the upstream's order (``binhub stream`` writes them in commit
order), but the partitions interleave: a transaction spanning two tables has rows in two topics,
and a consumer may see one before the other. Two facts make the merge exact:

* **Seals.** ``binhub stream`` commits a checkpoint record (the store position after the last
  transaction it delivered) in the topic ``binhub.checkpoints``, in the same Kafka transaction as
  the changes, or after they were acknowledged. Every change before a seal's position is in its
  partition's log once the seal can be read: transactions before it are complete.
* **Clear partitions.** A partition whose buffer is empty may still be about to deliver a change
  before the seal (Kafka makes a transaction visible partition by partition). It is *clear* for a
  seal once the consumer has read up to its high watermark measured after the seal was read: all
  it held then is read, and anything written later comes after the seal.

:meth:`Merger.pop` releases the smallest buffered change below the latest seal while every
partition has a buffered change or is clear: no partition can then deliver one that comes first.

Copies: after the resume point (``resume_after``: the downstream's checkpoint) and before the last
change released, a change is a copy (a producer restarted at its checkpoint delivered it again, at
least once, or a broker showed an aborted transaction) and is dropped; a partition whose positions
go backwards has its buffered tail dropped (a partial copy, delivered again in full after it).
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections import deque
from dataclasses import dataclass, field

from binhub.apply.changes import Change, OrderKey

__all__ = ["Merger", "PartitionId"]

log = logging.getLogger(__name__)

PartitionId = tuple[str, int]  # (topic, partition)


@dataclass(slots=True)
class _Partition:
    next_offset: int  # where it resumes: past every change released or dropped, in its order
    buffer: deque[Change] = field(default_factory=deque)
    last_key: OrderKey | None = None
    lines_at_last: set[bytes | None] = field(default_factory=set)  # the lines buffered at last_key
    clear_for: int = -1  # the seal number it is known to hold nothing more before


class Merger:
    def __init__(self, resume_after: tuple[int, int] | None = None) -> None:
        self.resume_after = resume_after if resume_after is not None else (-1, -1)
        self.released: OrderKey = (-1, -1, -1)
        self.parts: dict[PartitionId, _Partition] = {}
        self.seal: OrderKey | None = None  # changes before it are complete
        self.seal_number = 0
        self.seal_offset = -1  # the checkpoint record's own offset (a restart reads it again)
        self.waiting: set[PartitionId] = set()  # empty, and not clear for the latest seal
        self.copies = 0
        self._heap: list[tuple[OrderKey, int, Change, PartitionId]] = []
        self._at_released: list[tuple[PartitionId, bytes | None]] = []  # changes released at ``released``
        self._seq = itertools.count()

    # -- what the consumer reads ------------------------------------------------------------------
    def add(self, pid: PartitionId, next_offset: int) -> None:
        if pid not in self.parts:
            self.parts[pid] = _Partition(next_offset)
            self.waiting.add(pid)

    def push(self, pid: PartitionId, change: Change) -> None:
        """A change read from ``pid`` (in the partition's order)."""
        part = self.parts[pid]
        key = change.key
        if key[:2] <= self.resume_after or key < self.released:
            self.copies += 1
            self._passed(part, change.next_offset)
            return
        last = part.last_key
        if last is not None and (key < last or (key == last and change.unique and change.line in part.lines_at_last)):
            self._drop_tail(pid, part, key)  # went back, or repeats a change of the rows event it is in
        if key != part.last_key:
            part.lines_at_last.clear()
        part.lines_at_last.add(change.line)
        change.seq = next(self._seq)
        part.buffer.append(change)
        part.last_key = key
        heapq.heappush(self._heap, (key, change.seq, change, pid))
        self.waiting.discard(pid)

    def passed(self, pid: PartitionId, offset: int) -> None:
        """A message that is no change (a tombstone) at ``offset``."""
        self._passed(self.parts[pid], offset + 1)

    def sealed(self, key: OrderKey, offset: int) -> None:
        """A checkpoint record: every change before ``key`` is complete."""
        if self.seal is not None and key <= self.seal:
            return
        self.seal, self.seal_offset = key, offset
        self.seal_number += 1
        self.waiting.update(pid for pid, p in self.parts.items() if not p.buffer)

    def clear(self, pid: PartitionId, seal_number: int) -> None:
        """``pid`` is read up to its high watermark measured after seal ``seal_number``."""
        part = self.parts[pid]
        part.clear_for = max(part.clear_for, seal_number)
        if part.clear_for >= self.seal_number:
            self.waiting.discard(pid)

    # -- what is applied -------------------------------------------------------------------------
    def peek(self) -> Change | None:
        """The next change in the upstream's order, once nothing can come before it (else None)."""
        heap = self._heap
        while heap:
            key, _, change, pid = heap[0]
            if change.dead:
                heapq.heappop(heap)
                continue
            if self.waiting or self.seal is None or key >= self.seal:
                return None
            if key == self.released and self._copy_of_released(change, pid):
                self._take()  # dropped: its partition moves past it
                self.copies += 1
                continue
            return change
        return None

    def pop(self) -> Change | None:
        """Release :meth:`peek`'s change."""
        if self.peek() is None:
            return None
        change, pid = self._take()
        if change.key != self.released:
            self._at_released.clear()
        self.released = change.key
        self._at_released.append((pid, change.line))
        return change

    def _take(self) -> tuple[Change, PartitionId]:
        _, _, change, pid = heapq.heappop(self._heap)
        part = self.parts[pid]
        first = part.buffer.popleft()
        assert first is change, "a partition's changes leave in its order"
        part.next_offset = change.next_offset
        if not part.buffer and part.clear_for < self.seal_number:
            self.waiting.add(pid)
        return change, pid

    def _copy_of_released(self, change: Change, pid: PartitionId) -> bool:
        """A change at the position released last is a copy when it is a Debezium change (its row
        number makes its position its own) or repeats a released line: from another partition (a
        change without a Kafka key, a DDL, may land anywhere), or from its own when the line is
        unique at its position (equal rows of a table without a key share a rows event)."""
        if change.line is None:
            return True
        return any(line == change.line and (other != pid or change.unique) for other, line in self._at_released)

    def at_seal(self) -> bool:
        """Everything before the latest seal is released: the transaction released last is whole."""
        if self.peek() is not None:
            return False
        heap = self._heap
        return self.seal is not None and not self.waiting and (not heap or heap[0][0] >= self.seal)

    def offsets(self) -> dict[PartitionId, int]:
        """Where each partition resumes after what was released."""
        return {pid: p.next_offset for pid, p in self.parts.items()}

    def buffered(self) -> int:
        return sum(len(p.buffer) for p in self.parts.values())

    # -- helpers -----------------------------------------------------------------------------------
    def _passed(self, part: _Partition, next_offset: int) -> None:
        if part.buffer:
            part.buffer[-1].next_offset = next_offset
        else:
            part.next_offset = next_offset

    def _drop_tail(self, pid: PartitionId, part: _Partition, key: OrderKey) -> None:
        dropped = 0
        while part.buffer and part.buffer[-1].key >= key:
            part.buffer.pop().dead = True
            dropped += 1
        part.lines_at_last.clear()
        part.last_key = part.buffer[-1].key if part.buffer else None
        self.copies += dropped
        log.log(logging.WARNING if dropped else logging.DEBUG,
                "%s[%d] went back to an earlier position (binlog #%d at %d): its producer restarted; the %d "
                "change(s) it had sent since are a partial copy, dropped", pid[0], pid[1], key[0], key[1], dropped)
