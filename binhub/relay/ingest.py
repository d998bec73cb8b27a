"""Ingest: the relay's hot path, from batches of upstream events to appends in the store.

Per batch, one C-level pass (:func:`binhub._speedups.scan_batch`) finds the type bytes, the rare
events and whether every CRC32 holds; runs of ordinary events are then appended one transaction at
a time, with transaction boundaries from :class:`~binhub.binlog.transaction.TransactionTracker`
and each stored position checked against the upstream's log_pos. The rare events (FDE, ROTATE,
STOP, heartbeats, artificial events) take a slower path one by one.

It is apart from :mod:`binhub.relay.relay`, the service that connects, reconnects, commits and
stops, because its cost model differs: the service's code runs per session or per batch, this
runs per event, so Python here runs per transaction and keeps its state in locals
(``bench/relay_bench.py`` measures it). No I/O but the store's buffered appends.
"""

from __future__ import annotations

import logging
import struct

from binhub._speedups import crc32, scan_batch
from binhub._speedups.pure import CRC32_RESIDUE
from binhub.binlog.checksum import fde_checksum_size
from binhub.binlog.constants import EventType
from binhub.binlog.transaction import INERT_IN_EXPLICIT, TransactionTracker
from binhub.errors import ChecksumMismatch, ProtocolError
from binhub.relay.metrics import RelayMetrics
from binhub.store.store import BinlogStore, file_seq

LOG = logging.getLogger("binhub.relay")

_U32 = struct.Struct("<I")
_FDE = EventType.FORMAT_DESCRIPTION
_ROTATE = EventType.ROTATE
_STOP = EventType.STOP
_HEARTBEATS = (EventType.HEARTBEAT, EventType.HEARTBEAT_V2)
_ARTIFICIAL = 0x20
# Events store_batch leaves to _handle: rare, and each needs more than "append and track".
_SLOW_TYPES = frozenset({_FDE, _ROTATE, _STOP, *_HEARTBEATS})
# zlib.crc32 over data followed by its own little-endian CRC32 always gives this value.
_CRC32_RESIDUE = CRC32_RESIDUE
# Lookup tables over a batch's type bytes: 1 marks what to find.
_SLOW_TYPE_TABLE = bytes(1 if t in _SLOW_TYPES else 0 for t in range(256))
_NOT_INERT_TABLE = bytes(0 if t in INERT_IN_EXPLICIT else 1 for t in range(256))
_IN_USE = 0x01

# What the upstream connection hands over per read: whole events, header to CRC.
EventBatch = list[memoryview | bytes]


class Ingest:
    """Store one upstream's events, batch by batch, and count them.

    The relay owns one for its whole life; a new session gives it a fresh ``tracker`` and the
    upstream's ``checksum_size``. ``store_batch`` is the only call the relay's pump makes per batch.
    """

    def __init__(self, store: BinlogStore, metrics: RelayMetrics) -> None:
        self.store = store
        self.metrics = metrics
        self.tracker = TransactionTracker()
        self.checksum_size = 4
        # (file seq, position) where the upstream's binlog ended when it last said (the session's
        # SHOW MASTER STATUS, then each heartbeat): the relay is caught up once the store reaches it.
        self.upstream_end: tuple[int, int] | None = None
        self.last_event_ts = 0  # the newest stored event's timestamp (0 after a heartbeat): the relay's lag
        self.transactions = 0
        self.bytes = 0
        self.events = 0

    def store_batch(self, events: EventBatch, start: int) -> tuple[int, bool]:
        """Store ``events[start:]`` until one closes the current file.

        Returns the index after the last event handled, and whether that event closed the file.
        This is the hot path, so the per-event work is done by C-level passes over the batch
        (:func:`binhub._speedups.scan_batch`, ``bytes.find``) and Python code runs per transaction, not per event:
        runs of ordinary events go to :meth:`_store_run`; the rare ones (FDE, ROTATE, STOP,
        heartbeats, artificial events) to :meth:`_handle`, one by one.
        """
        batch = events[start:] if start else events
        count = len(batch)
        # One C-level pass (binhub._speedups) gives the type bytes, where the rare events are (a
        # slow type, or the artificial flag) and the CRCs of the whole batch: only a batch with a
        # mismatch (or without CRCs) is checked event by event.
        types, marks, crc_ok = scan_batch(batch, _SLOW_TYPE_TABLE, self.checksum_size != 0)
        i = 0
        while i < count:
            slow = marks.find(1, i)
            if slow < 0:
                slow = count
            if slow > i:
                self._store_run(batch[i:slow], types[i:slow], crc_ok)
                i = slow
                if i == count:
                    break
            i += 1
            if self._handle(batch[slow]):
                return start + i, True
        return start + count, False

    def _store_run(self, run: EventBatch, types: bytes, crc_ok: bool) -> None:
        """Store events that are all file content (no FDE/ROTATE/STOP, nothing artificial), in order.

        Each event's end position (log_pos) is compared with the stored copy where a transaction
        ends and where the run ends, before the transaction is marked complete: a dropped,
        duplicated or cut event shifts every later position, so it is caught there, and with
        CRCs on a mis-framed event fails its CRC first.
        """
        store = self.store
        crc = self.checksum_size
        if crc and not crc_ok:
            for ev in run:
                if crc32(ev) != _CRC32_RESIDUE:
                    self._verify(ev)  # raises ChecksumMismatch with the details
        position = store.position
        # Transaction boundaries: inside BEGIN..COMMIT, rows, table maps and annotations cannot end
        # the group, so find() jumps over them and feed() sees the few events that matter.
        tracker = self.tracker
        feed = tracker.feed
        marks = types.translate(_NOT_INERT_TABLE)
        unpack = _U32.unpack_from
        append = store.append_events
        mark_boundary = store.mark_boundary
        done = tracker.transactions
        txns = 0
        flushed = k = 0  # events before ``flushed`` are appended to the store
        count = len(run)
        while k < count:
            if tracker.explicit:
                k = marks.find(1, k)
                if k < 0:
                    break
            ev = run[k]
            k += 1
            if feed(ev, crc):
                append(run[flushed:k])  # one append per transaction, not per event (no copy)
                flushed = k
                self._check_position(ev, store.position)
                ts = unpack(ev, 0)[0]
                if tracker.transactions != done:
                    done = tracker.transactions
                    txns += 1
                    mark_boundary(tracker.last_gtid_event, ts)  # decoded later, only if needed
                else:
                    mark_boundary(None, ts)  # a control event: a boundary, but no transaction
        if flushed < count:
            append(run[flushed:])
            self._check_position(run[-1], store.position)
        nbytes = store.position - position
        self.last_event_ts = unpack(run[-1], 0)[0]
        # Counters and metrics once per run, not per event (a prometheus inc takes a lock).
        self.events += count
        self.bytes += nbytes
        self.transactions += txns
        metrics = self.metrics
        metrics.events.inc(count)
        metrics.bytes.inc(nbytes)
        if txns:
            metrics.transactions.inc(txns)

    def _check_position(self, ev: memoryview | bytes, position: int) -> None:
        log_pos = _U32.unpack_from(ev, 13)[0]
        if log_pos != position and log_pos:  # log_pos 0: an event without an end position
            self._position_mismatch(ev[4], log_pos, position)

    def _position_mismatch(self, etype: int, log_pos: int, position: int) -> None:
        store = self.store
        raise ProtocolError(
            f"event of type {etype} ends at {log_pos} according to the upstream but at {position} "
            f"in the stored copy of {store.current_file}; refusing to store a file that differs",
            hint="this is a bug or an upstream that rewrites positions; please report it")

    def _note_heartbeat(self, ev: bytes | memoryview) -> None:
        # The upstream sends a heartbeat when its dump has nothing more to send: the (file,
        # position) it names is where the primary's binlog ended when it was sent.
        from binhub.binlog.decode import decode_event  # noqa: PLC0415 - only an idle relay meets one
        from binhub.binlog.events import HeartbeatEvent  # noqa: PLC0415 - (kept off the start-up path)

        heartbeat = decode_event(ev, checksum_size=self.checksum_size)
        if isinstance(heartbeat, HeartbeatEvent) and heartbeat.log_pos and heartbeat.log_ident[-1:].isdigit():
            self.upstream_end = (file_seq(heartbeat.log_ident), heartbeat.log_pos)

    def _handle(self, ev: bytes | memoryview) -> bool:
        """Store one event if it is file content. Returns True when it closed the current file."""
        etype = ev[4]
        if etype in _HEARTBEATS:
            self.last_event_ts = 0
            self._note_heartbeat(ev)
            return False
        flags = ev[17] | (ev[18] << 8)
        if flags & _ARTIFICIAL:
            if etype == _ROTATE:
                self._fake_rotate(ev)
            return False
        store = self.store
        size = len(ev)
        if etype == _FDE:
            if store.position != 4:
                return False  # the server repeats the file's FDE when a dump resumes mid-file
            self.checksum_size = fde_checksum_size(ev)
            if self.checksum_size:
                self._verify(ev, fde=True)
            store.append_fde(ev)
        else:
            if self.checksum_size:
                self._verify(ev)
            store.append(ev)
        log_pos = _U32.unpack_from(ev, 13)[0]
        if log_pos and log_pos != store.position:
            raise ProtocolError(
                f"event of type {etype} ends at {log_pos} according to the upstream but at {store.position} "
                f"in the stored copy of {store.current_file}; refusing to store a file that differs",
                hint="this is a bug or an upstream that rewrites positions; please report it")
        self.events += 1
        self.bytes += size
        self.metrics.events.inc()
        self.metrics.bytes.inc(size)
        self.last_event_ts = _U32.unpack_from(ev, 0)[0]
        tracker = self.tracker
        done = tracker.transactions
        if tracker.feed(ev, self.checksum_size):
            # Control events (ROTATE, FDE, ...) are boundaries too, but complete no transaction.
            gtid = tracker.last_gtid_event if tracker.transactions != done else None
            store.mark_boundary(gtid, self.last_event_ts)
            if tracker.transactions != done:
                self.transactions += 1
                self.metrics.transactions.inc()
            if etype == _ROTATE:
                end = size - self.checksum_size
                store.mark_finished(bytes(ev[27:end]).decode())
                return True
            if etype == _STOP:
                store.mark_finished("")
                return True
        return False

    def _verify(self, ev: bytes | memoryview, *, fde: bool = False) -> None:
        body = memoryview(ev)[:-4]
        expected = _U32.unpack_from(ev, len(ev) - 4)[0]
        if fde and ev[17] & _IN_USE:
            data = bytearray(body)
            data[17] &= ~_IN_USE
            actual = crc32(data)
        else:
            actual = crc32(body)
        if actual != expected:
            raise ChecksumMismatch(
                f"event of type {ev[4]} received with a bad CRC32 (expected {expected:#010x}, got {actual:#010x})",
                file=self.store.current_file, offset=self.store.position)

    def _fake_rotate(self, ev: bytes | memoryview) -> None:
        """The server names the file it is about to send (dump start, or a file switch)."""
        end = len(ev) - self.checksum_size if self.checksum_size else len(ev)
        name = bytes(ev[27:end]).decode()
        store = self.store
        current = store.current_file
        if name == current:
            return
        if current is not None:
            if not store.at_boundary:
                raise ProtocolError(f"the upstream switched to {name} in the middle of a transaction in {current}")
            if file_seq(name) != file_seq(current) + 1:
                LOG.warning("the upstream skipped from %s to %s", current, name)
            if not store.current_finished:
                # The upstream's file ended without ROTATE or STOP (it crashed): it is complete as it is.
                LOG.info("%s ended without a ROTATE or STOP event (the upstream restarted)", current)
        store.begin_file(name)
        self.tracker = TransactionTracker()


__all__ = ["EventBatch", "Ingest"]
