"""Crash recovery: where a store's last file really ends, and what GTIDs lie before that.

A store always ends at a transaction boundary: ``scan_tail`` walks the last file from a known
boundary (the state file's durable position, or the file's start) and reports the last boundary
it can prove (every event whole and CRC-valid), whether the file is finished (ROTATE or STOP), and
the GTIDs of the transactions it passed. Anything after that boundary was never durable.
``recover_tail`` adds the executed GTID set at that boundary, which the store opens with.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from binhub.binlog.constants import BINLOG_MAGIC, HEADER_SIZE, EventType
from binhub.binlog.gtid import MariadbGtid, MariadbGtidList, MysqlGtid, MysqlGtidSet
from binhub.binlog.header import EventHeader
from binhub.binlog.transaction import TransactionTracker
from binhub.errors import BinlogError, StorageError

if TYPE_CHECKING:
    from binhub.binlog.file import BinlogFileReader

LOG = logging.getLogger("binhub.store")

Gtid = MysqlGtid | MariadbGtid
GtidSet = MysqlGtidSet | MariadbGtidList


class TailScan(NamedTuple):
    boundary: int  # the offset after the last complete transaction (or control event)
    finished: bool  # the file ends with ROTATE or STOP
    next_name: str  # from the closing ROTATE
    gtids: list[Gtid]  # of the transactions passed, in order
    header_set: GtidSet | None  # the file's PREVIOUS_GTIDS / GTID_LIST, if the scan passed it


def scan_tail(path: Path, start: int, size: int) -> TailScan:
    """Walk ``path`` from ``start`` (a boundary) and return the last boundary and what lies before it."""
    tracker = TransactionTracker()
    boundary = start if start > 4 else 4
    finished, next_name = False, ""
    gtids: list[Gtid] = []
    header_set: GtidSet | None = None
    if size <= 4:
        return TailScan(4, False, "", [], None)
    # The file reader loads the event classes: imported only when a tail is there to walk, so the
    # relay's start on an empty store does not pay for them.
    from binhub.binlog.file import BinlogFileReader

    with open(path, "rb") as f:
        if f.read(4) != BINLOG_MAGIC:
            raise StorageError(f"{path.name} in the store does not start with the binlog magic bytes",
                               hint="the file is not a binlog file; restore it or remove the store")
        reader = BinlogFileReader(f, path.name, start=start, verify_checksums=True)
        try:
            for ev in reader:
                kind = ev.header.type_code
                if kind in (EventType.PREVIOUS_GTIDS, EventType.MARIA_GTID_LIST) and header_set is None:
                    header_set = header_gtid_set(ev.data, reader)
                done = tracker.transactions
                if tracker.feed(ev.data, reader.fde.checksum_size if reader.fde else 4):
                    boundary = ev.offset + ev.header.event_size
                    if tracker.transactions != done and tracker.last_gtid is not None:
                        gtids.append(tracker.last_gtid)
                    finished = kind in (EventType.ROTATE, EventType.STOP)
                    if kind == EventType.ROTATE:
                        next_name = rotate_next_name(ev.data, reader)
        except BinlogError as exc:
            # Anything after the last boundary was never durable: a torn write, not corruption.
            LOG.info("recovery stops at %s", exc)
        if boundary == start > 4:
            # The scan began at the recorded end of the file and found nothing after it: whether
            # the file is finished depends on the event that ends there.
            finished, next_name = ends_with_rotate_or_stop(f, path.name, start)
    return TailScan(boundary, finished, next_name, gtids, header_set)


def recover_tail(binlog_dir: Path, names: list[str], start: int, size: int,
                 executed: GtidSet | None) -> tuple[TailScan, GtidSet | None]:
    """Scan the store's last file from ``start``; also the executed GTID set at the boundary found.

    ``executed`` is the state file's set: exact at ``start`` when the state names this file, older
    (or None) when ``start`` is 4.
    """
    tail = scan_tail(binlog_dir / names[-1], start, size)
    if start == 4:
        # The state is older than this file: the file's own GTID header says what came before it.
        # Keep the state's set too: a file killed right after its creation has no header yet,
        # and the union of two views of the past is still the past (both are idempotent sets).
        executed = union_sets(executed, tail.header_set)
        if executed is None and len(names) > 1:
            # No state and no header yet (killed right after the file was created): the file
            # before it tells what came before, by its own header and transactions.
            prev = binlog_dir / names[-2]
            _, _, _, prev_gtids, executed = scan_tail(prev, 4, prev.stat().st_size)
            for gtid in prev_gtids:
                executed = add_gtid(executed, gtid)
    for gtid in tail.gtids:
        executed = add_gtid(executed, gtid)
    return tail, executed


def add_gtid(executed: GtidSet | None, gtid: Gtid) -> GtidSet:
    if isinstance(gtid, MariadbGtid):
        base = executed if isinstance(executed, MariadbGtidList) else MariadbGtidList.parse("")
        return base.add(gtid)
    base2 = executed if isinstance(executed, MysqlGtidSet) else MysqlGtidSet.parse("")
    return base2.add(gtid)


def union_sets(a: GtidSet | None, b: GtidSet | None) -> GtidSet | None:
    if a is None or b is None:
        return a if b is None else b
    if isinstance(a, MariadbGtidList) and isinstance(b, MariadbGtidList):
        return a.union(b)
    if isinstance(a, MysqlGtidSet) and isinstance(b, MysqlGtidSet):
        return a.union(b)
    return b  # flavours differ: the file's own header is the better witness


# ROTATE is header + 8-byte position + the next name (+ CRC); names are short, but allow for long ones.
MAX_CLOSING_EVENT = HEADER_SIZE + 8 + 512 + 4


def ends_with_rotate_or_stop(f: Any, name: str, end: int) -> tuple[bool, str]:
    """Whether the event that ends at ``end`` is a ROTATE (its next name) or STOP, found without a scan.

    Events carry no back pointer, so each candidate start is tried: a header whose size reaches
    exactly to ``end``, whose end position says ``end`` and whose CRC holds is the last event.
    """
    from binhub.binlog.checksum import verify_checksum

    lo = max(4, end - MAX_CLOSING_EVENT)
    f.seek(lo)
    tail = f.read(end - lo)
    if len(tail) != end - lo:
        return False, ""
    for start in range(len(tail) - HEADER_SIZE, -1, -1):
        kind = tail[start + 4]
        if kind not in (EventType.ROTATE, EventType.STOP):
            continue
        try:
            header = EventHeader.unpack(tail, start)
        except BinlogError:
            continue
        if header.event_size != len(tail) - start or header.log_pos not in (0, end):
            continue
        data = tail[start:]
        crc = 4
        try:
            verify_checksum(data, file=name, offset=lo + start)
        except BinlogError:
            if header.log_pos != end:
                continue
            crc = 0  # a file without checksums: the position match has to do
        if kind == EventType.STOP:
            return True, ""
        return True, bytes(data[HEADER_SIZE + 8 : len(data) - crc]).decode(errors="replace")
    return False, ""


def header_gtid_set(data: bytes, reader: BinlogFileReader) -> GtidSet | None:
    from binhub.binlog.decode import decode_event
    from binhub.binlog.events import MariadbGtidListEvent, PreviousGtidsEvent

    event = decode_event(data, reader.fde)
    if isinstance(event, PreviousGtidsEvent):
        return event.gtid_set
    if isinstance(event, MariadbGtidListEvent):
        return mariadb_position(event.gtids)
    return None


def mariadb_position(gtids: Any) -> MariadbGtidList:
    """A GTID_LIST (one entry per domain and server) as a position: the highest seq_no per domain."""
    result = MariadbGtidList()
    for gtid in gtids:
        result = result.union(MariadbGtidList([gtid]))
    return result


def rotate_next_name(data: bytes, reader: BinlogFileReader) -> str:
    crc = reader.fde.checksum_size if reader.fde else 4
    return bytes(data[HEADER_SIZE + 8 : len(data) - crc]).decode()
