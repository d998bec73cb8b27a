"""What a replica gets of the store's events, given where it started: the dump's per-event decisions.

One :class:`EventSelector` per dump, made once the start is planned (``binhub.store.seek``). It turns
batches of file events into what goes on the wire and keeps what the replica has been told
(file, position, checksum setting), as a primary's dump thread does:

* GTID skipping: transactions the replica has are not sent (MySQL: in its GTID set; MariaDB: up to
  the GTID of ``@slave_connect_state`` per domain, with GTID strict mode's missing-GTID error).
  MySQL marks the end of a skipped run with a heartbeat, MariaDB with an artificial GTID_LIST
  naming every GTID seen so far, as the primaries do;
* each file's FORMAT_DESCRIPTION as the primary sends it, after a fake ROTATE at a file switch;
* ANNOTATE_ROWS only to a replica that asked for it or cannot tolerate the hole;
* heartbeats (v1, or v2 for a MySQL replica that asked) naming where the replica stands.

It is apart from the session (``dump.py``) because these are the decisions, with their state,
while the session owns the socket, the start and the framing; the session's shared-span fast
path asks :meth:`EventSelector.passes_span` once per span whether there is anything to decide.
"""

from __future__ import annotations

import struct

from binhub.binlog.constants import EventType
from binhub.binlog.decode import decode_event
from binhub.binlog.events import GtidEvent
from binhub.binlog.gtid import MariadbGtid
from binhub.binlog.transaction import TransactionTracker
from binhub.serve import preamble
from binhub.serve.dump_error import DumpError
from binhub.serve.metrics import ServeMetrics
from binhub.store.follower import Batch
from binhub.store.seek import StartPlan

MARIA_SLAVE_CAPABILITY_ANNOTATE = 1
MARIA_SLAVE_CAPABILITY_TOLERATE_HOLES = 2
MARIA_SLAVE_CAPABILITY_GTID = 4

_FDE = int(EventType.FORMAT_DESCRIPTION)
_ANNOTATE = int(EventType.MARIA_ANNOTATE_ROWS)
_MARIA_GTID = int(EventType.MARIA_GTID)
_MYSQL_GTIDS = frozenset((int(EventType.GTID), int(EventType.GTID_TAGGED), int(EventType.ANONYMOUS_GTID)))
_MARIA_GTID_BODY = struct.Struct("<QI")
_U32 = struct.Struct("<I")

#: What :meth:`EventSelector.select` returns per event: the event, and whether it ends a transaction.
Selected = tuple[bytes | memoryview, bool]


class EventSelector:
    """The events one replica gets, from its start plan on; tracks the file and position it has reached."""

    def __init__(self, plan: StartPlan, *, flavour: str, server_id: int, crc: bool, send_annotate: bool,
                 capability: int, heartbeat_v2: bool, metrics: ServeMetrics) -> None:
        self.plan = plan
        self.flavour = flavour
        self.server_id = server_id
        self.send_annotate = send_annotate
        self.capability = capability
        self.heartbeat_v2 = heartbeat_v2
        self.metrics = metrics
        # The event type a shared span leaves out (-1: none); fixed for the dump, so worked out once.
        self.dropped_type = (_ANNOTATE if not send_annotate and capability >= MARIA_SLAVE_CAPABILITY_TOLERATE_HOLES
                             else -1)
        # What the replica has been told.
        self.crc = crc
        self.file = plan.file
        self.pos = plan.rotate_position
        self.tracker = TransactionTracker()
        self.skipping = False
        self.skipped_end = 0  # MySQL: end of a skipped run not yet announced with a heartbeat
        # GTID mode: until the replica's position is reached, an FDE goes out with ``created`` zeroed.
        self.reached = not plan.gtid_mode or (plan.mysql_exclude is None and not plan.mariadb_pending)
        self.fake_gtid_list = False

    def passes_span(self, file: str, position: int) -> bool:
        """Whether the events of ``file`` from ``position`` on can go out as they are, none decided.

        Once a replica has reached its start nothing is skipped any more (MariaDB; MySQL GTID dumps
        always decide), and a file's FDE (at offset 4) is always rewritten.
        """
        plan = self.plan
        return not (self.skipping or self.fake_gtid_list or self.skipped_end or plan.mysql_exclude is not None
                    or plan.mariadb_pending or file != self.file or position == 4)

    def jumped(self, position: int) -> None:
        """The dump jumped over transactions to ``position`` (the GTID index): MySQL announces the run."""
        if self.flavour == "mysql":
            self.skipped_end = position

    def select(self, batch: Batch, jump_pending: bool) -> tuple[list[Selected], bool]:
        """Turn a batch into (event, ends a transaction) pairs; True as well if the jump is due.

        File events stay views of the (immutable) batch: they are copied once, when framed.
        """
        out: list[Selected] = []
        plan = self.plan
        for offset, ev in batch.events:
            if jump_pending and batch.file == plan.file and offset >= plan.head_end:
                return out, True
            kind = ev[4]
            end = offset + len(ev)
            if offset == 4 and kind == _FDE:
                if batch.file != self.file:
                    # A file switch: MariaDB's fake ROTATE carries the previous file's checksum setting.
                    out.append((preamble.fake_rotate(batch.file, 4, self.server_id, crc=self.crc), False))
                self.file = batch.file
                self.crc = preamble.fde_checksum(ev)
                self.tracker = TransactionTracker()
                zero_created = plan.gtid_mode and not self.reached
                out.append((preamble.dump_fde(ev, zero_log_pos=False, zero_created=zero_created, crc=self.crc),
                            False))
                self.pos = end
                continue
            self.file = batch.file
            send = self._filter(kind, ev)
            done = self.tracker.transactions
            boundary = self.tracker.feed(ev, 4 if self.crc else 0)
            ends_txn = boundary and self.tracker.transactions != done
            self.pos = end
            if self.skipping:
                if boundary:
                    self.skipping = False
                    if self.fake_gtid_list:
                        # mariadbd: once the group holding the requested GTID has been skipped.
                        self.fake_gtid_list = False
                        out.append((self._gtid_list_event(end), False))
                if self.flavour == "mysql":
                    self.skipped_end = end
                continue
            if not send:
                continue
            if self.skipped_end:
                out.extend((p, False) for p in self.announce_skipped())
            out.append((ev, ends_txn))
            if self.fake_gtid_list:
                # mariadbd: right after the first event past the requested GTID (a gap before it).
                self.fake_gtid_list = False
                out.append((self._gtid_list_event(end), False))
        return out, False

    def announce_skipped(self) -> list[bytes]:
        """MySQL: a heartbeat at the end of a skipped run, so the replica's position moves past it."""
        if not self.skipped_end:
            return []
        pos, self.skipped_end = self.skipped_end, 0
        return [self.heartbeat(pos)]

    def heartbeat(self, pos: int | None = None) -> bytes:
        """A heartbeat naming the current file and ``pos`` (by default where the replica stands)."""
        self.metrics.heartbeats.inc()
        build = preamble.heartbeat_v2 if self.heartbeat_v2 else preamble.heartbeat_v1
        return build(self.file, self.pos if pos is None else pos, self.server_id, crc=self.crc)

    def _filter(self, kind: int, ev: memoryview) -> bool:
        """Whether to send ``ev``; starts a skipped group when the replica already has it."""
        plan = self.plan
        if kind == _MARIA_GTID and plan.gtid_mode:
            return self._mariadb_gtid(ev)
        if kind in _MYSQL_GTIDS and plan.mysql_exclude is not None:
            gtid = None
            if kind != EventType.ANONYMOUS_GTID:
                event = decode_event(bytes(ev), None, checksum_size=4 if self.crc else 0)
                gtid = event.gtid if isinstance(event, GtidEvent) else None
            if gtid is not None and gtid in plan.mysql_exclude:
                self.skipping = True
                return False
            self.reached = True
            return True
        if kind == _ANNOTATE and not self.send_annotate:
            # mariadbd: a replica that tolerates holes gets none; one that only knows the event gets it.
            return self.capability < MARIA_SLAVE_CAPABILITY_TOLERATE_HOLES
        return True

    def _mariadb_gtid(self, ev: memoryview) -> bool:
        plan = self.plan
        seq_no, domain = _MARIA_GTID_BODY.unpack_from(ev, 19)
        server = _U32.unpack_from(ev, 5)[0]
        plan.mariadb_state[(domain, server)] = seq_no
        req = plan.mariadb_pending.get(domain)
        if req is None:
            return True
        skip = server != req.server_id or seq_no <= req.seq_no
        if server == req.server_id and seq_no >= req.seq_no:
            if plan.strict and seq_no > req.seq_no:
                raise DumpError(f"The binlog on the master is missing the GTID {req} requested by the slave (even "
                                "though both a prior and a subsequent sequence number does exist), and GTID "
                                "strict mode is enabled")
            self.fake_gtid_list = True
            del plan.mariadb_pending[domain]
            self.reached = not plan.mariadb_pending
        if skip:
            self.skipping = True
            return False
        return True

    def _gtid_list_event(self, log_pos: int) -> bytes:
        """The artificial GTID_LIST MariaDB sends once the requested position is reached."""
        gtids = [MariadbGtid(d, s, n) for (d, s), n in sorted(self.plan.mariadb_state.items())]
        return preamble.gtid_list(gtids, self.server_id, log_pos=log_pos, crc=self.crc)


__all__ = ["MARIA_SLAVE_CAPABILITY_ANNOTATE", "MARIA_SLAVE_CAPABILITY_GTID", "MARIA_SLAVE_CAPABILITY_TOLERATE_HOLES",
           "EventSelector", "Selected"]
