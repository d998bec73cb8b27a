"""Where a dump starts: the file, the offset, and what to skip, for each kind of request.

* COM_BINLOG_DUMP by file/position (both flavours): the named file (an empty name means the
  first file, as both servers do), at a position that must be an event boundary within what is
  durable.
* COM_BINLOG_DUMP_GTID (MySQL): the newest file whose PREVIOUS_GTIDS the replica's set contains
  (``find_first_log_not_in_gtid_set``); transactions in the replica's set are skipped.
* COM_BINLOG_DUMP with ``@slave_connect_state`` (MariaDB): the newest file whose GTID_LIST the
  requested position covers (``gtid_find_binlog_file`` / ``contains_all_slave_gtid`` in
  ``sql/sql_repl.cc``), skipping per domain until the requested GTID.

Both servers then read that file from offset 4 and skip. binhub uses its ``gtid.index`` to jump
deep into the file instead (the skipped transactions are invisible to the replica either way), but
only where the jump provably skips nothing the replica lacks: the file's transactions must come
from one GTID source (one MySQL uuid/tag, or one MariaDB domain) in increasing order.

Errors are what the primaries say, with error 1236 (ER_MASTER_FATAL_ERROR_READING_BINLOG), which
makes a replica stop instead of reconnecting in a loop.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from binhub.binlog.constants import HEADER_SIZE, EventType
from binhub.binlog.events import MariadbGtidListEvent, PreviousGtidsEvent, decode_event
from binhub.binlog.file import BinlogFileReader
from binhub.binlog.gtid import MariadbGtid, MariadbGtidList, MysqlGtid, MysqlGtidSet
from binhub.binlog.transaction import TransactionTracker
from binhub.errors import BinhubError, GtidError
from binhub.serve.preamble import fde_checksum
from binhub.store.index import GtidIndexEntry
from binhub.store.store import BinlogStore, file_seq
from binhub.wire.errors import ErrorCode, MysqlError

HEAD_READ = 64 * 1024

_HEAD_TYPES = frozenset(int(t) for t in (
    EventType.FORMAT_DESCRIPTION, EventType.PREVIOUS_GTIDS, EventType.MARIA_GTID_LIST,
    EventType.MARIA_BINLOG_CHECKPOINT, EventType.MARIA_START_ENCRYPTION, EventType.IGNORABLE,
))


class DumpError(MysqlError):
    """A dump that cannot start or go on: error 1236, which makes a replica stop, not retry."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.MASTER_FATAL_ERROR_READING_BINLOG, message)


class StoreBehind(DumpError):
    """The replica asks for a place binhub's store has not reached yet: the relay is behind it.

    A primary would refuse such a replica; a binlog server is often just a moment behind the
    primary the replica came from, so the dump waits a while for the relay (see ``DumpSession``)
    before sending this as the error.
    """


@dataclass(frozen=True, slots=True)
class FileHead:
    """The events at the start of a file, before its first transaction."""

    fde: bytes
    crc: bool
    previous_gtids: MysqlGtidSet | None
    gtid_list: tuple[MariadbGtid, ...] | None
    end: int  # offset of the first event that is not part of the head


@dataclass
class StartPlan:
    file: str
    position: int  # where reading starts; an event boundary
    rotate_position: int  # named by the first artificial ROTATE
    mid_file: bool = False  # file/position start past the file's start
    gtid_mode: bool = False
    head_end: int = 4  # with a GTID-index jump: events before this offset are sent, then ``position``
    mysql_exclude: MysqlGtidSet | None = None
    mariadb_pending: dict[int, MariadbGtid] = field(default_factory=dict)
    mariadb_state: dict[tuple[int, int], int] = field(default_factory=dict)  # (domain, server) -> seq
    strict: bool = False
    ignore_duplicates: bool = False

    @property
    def jumps(self) -> bool:
        return self.position > self.head_end


_HEADS: dict[tuple[str, str], FileHead] = {}


def read_head(store: BinlogStore, name: str) -> FileHead:
    """The head of ``name`` (cached once complete: heads never change after the first transaction)."""
    key = (str(store.data_dir), name)
    cached = _HEADS.get(key)
    if cached is not None:
        return cached
    path = store.file_path(name)
    try:
        with open(path, "rb") as f:
            data = f.read(HEAD_READ)
    except FileNotFoundError:
        raise DumpError(f"could not open {name}: it was purged from binhub's store") from None
    pos = 4
    fde = b""
    crc = True
    prev: MysqlGtidSet | None = None
    glist: tuple[MariadbGtid, ...] | None = None
    complete = False
    while len(data) - pos >= HEADER_SIZE:
        size = int.from_bytes(data[pos + 9:pos + 13], "little")
        if size < HEADER_SIZE or pos + size > len(data):
            break
        raw = data[pos:pos + size]
        kind = raw[4]
        if kind not in _HEAD_TYPES:
            complete = True
            break
        if kind == EventType.FORMAT_DESCRIPTION:
            fde, crc = raw, fde_checksum(raw)
        elif kind == EventType.PREVIOUS_GTIDS:
            ev = decode_event(raw, None, checksum_size=4 if crc else 0)
            if isinstance(ev, PreviousGtidsEvent):
                prev = ev.gtid_set
        elif kind == EventType.MARIA_GTID_LIST:
            ev2 = decode_event(raw, None, checksum_size=4 if crc else 0)
            if isinstance(ev2, MariadbGtidListEvent):
                glist = ev2.gtids
        pos += size
    if not fde:
        raise DumpError(f"Failed to find format descriptor event in start of binlog {name}")
    head = FileHead(fde, crc, prev, glist, pos)
    if complete:
        _HEADS[key] = head
    return head


def _names(store: BinlogStore) -> list[str]:
    if store.readonly:
        store.index.load()
    names = store.files
    if not names:
        raise DumpError("Binary log is not open (binhub's store holds no binlog files yet)")
    return names


def _durable_end(store: BinlogStore, name: str) -> int:
    durable = store.durable_position
    if durable is None:
        return 4
    if durable.file == name:
        return durable.position
    if durable.file_seq > file_seq(name):
        return os.path.getsize(store.file_path(name))
    return 4


# --------------------------------------------------------------------------- file / position

def plan_file_position(store: BinlogStore, filename: str, position: int) -> StartPlan:
    names = _names(store)
    name = filename or names[0]
    if name not in names:
        later = _same_series(name, names[-1]) and file_seq(name) > file_seq(names[-1])
        raise (StoreBehind if later else DumpError)(
            f"Could not find first log file name in binary log index file ('{name}' is not in "
            f"binhub's store, which holds {names[0]} … {names[-1]}{'; the relay has not reached it' if later else ''})")
    end = _durable_end(store, name)
    if position > end and name == names[-1]:
        raise StoreBehind(f"Client requested master to start replication from position {position} in '{name}', "
                          f"beyond what binhub's store holds ({end}); the relay has not reached it")
    if position < 4 or position > end:
        raise DumpError(f"Client requested master to start replication from impossible position; the first "
                        f"event '{name}' at {position}, the last event read from '{name}' at 4, the last byte "
                        f"read from '{name}' at 4.")
    if position > 4:
        _check_boundary(store, name, position)
    return StartPlan(name, position, position, mid_file=position > 4)


def _same_series(a: str, b: str) -> bool:
    """Two names of one binlog series (``mysql-bin.000007`` and ``mysql-bin.000003``)."""
    return a.rpartition(".")[0] == b.rpartition(".")[0] and a.rpartition(".")[2].isdigit()


def _check_boundary(store: BinlogStore, name: str, position: int) -> None:
    """Walk event headers from the nearest known boundary (a gtid.index entry) to ``position``."""
    starts = [e.offset for e in store.gtid_index.entries() if e.file == name and e.offset <= position]
    pos = max(starts, default=4)
    with open(store.file_path(name), "rb") as f:
        while pos < position:
            head = os.pread(f.fileno(), HEADER_SIZE, pos)
            if len(head) < HEADER_SIZE:
                break
            size = int.from_bytes(head[9:13], "little")
            if size < HEADER_SIZE:
                break
            pos += size
    if pos != position:
        raise DumpError(f"Client requested master to start replication from position {position} in '{name}', "
                        f"which is not the start of an event (the nearest event starts at {pos})")


# --------------------------------------------------------------------------- MySQL GTID

def plan_mysql_gtid(store: BinlogStore, exclude: MysqlGtidSet) -> StartPlan:
    names = _names(store)
    first = read_head(store, names[0])
    purged = first.previous_gtids or MysqlGtidSet()
    if not purged.issubset(exclude):
        missing = purged - exclude
        raise DumpError(
            "Cannot replicate because the source purged required binary logs. Replicate the missing "
            "transactions from elsewhere, or provision a new replica from backup. Consider increasing the "
            f"source's binary log expiration period. The GTID set sent by the replica is '{exclude}', and the "
            f"missing transactions are '{missing}'")
    chosen = names[0]
    for name in reversed(names):
        prev = read_head(store, name).previous_gtids or MysqlGtidSet()
        if prev.issubset(exclude):
            chosen = name
            break
    head = read_head(store, chosen)
    plan = StartPlan(chosen, 4, 4, gtid_mode=True, head_end=head.end, mysql_exclude=exclude)
    _mysql_jump(store, names, plan, head)
    return plan


def _mysql_jump(store: BinlogStore, names: list[str], plan: StartPlan, head: FileHead) -> None:
    known = _known_file_gtids(store, names, plan.file, head)
    if known is None or plan.mysql_exclude is None:
        return
    file_gtids, limit = known
    tsids = [tsid for tsid, _ in file_gtids.items()]
    if len(tsids) != 1:
        return
    tsid = tsids[0]
    entries = _entries(store, plan.file, limit)
    parsed: list[tuple[int, MysqlGtid]] = []
    for e in entries:
        try:
            g = MysqlGtid.parse(e.gtid)
        except GtidError:
            return
        if g.tsid != tsid or (parsed and g.gno <= parsed[-1][1].gno):
            return
        parsed.append((e.offset, g))
    best = 0
    for offset, g in parsed:
        before = file_gtids - MysqlGtidSet({tsid: [(g.gno, 1 << 62)]})
        if before.issubset(plan.mysql_exclude):
            best = offset
        else:
            break
    if best > plan.head_end:
        plan.position = best


def _known_file_gtids(store: BinlogStore, names: list[str], name: str,
                      head: FileHead) -> tuple[MysqlGtidSet, int] | None:
    """The GTIDs of ``name`` (exactly) and up to which offset that is known."""
    prev = head.previous_gtids or MysqlGtidSet()
    i = names.index(name)
    if i + 1 < len(names):
        nxt = read_head(store, names[i + 1]).previous_gtids
        if nxt is None:
            return None
        return nxt - prev, os.path.getsize(store.file_path(name))
    executed, upto = _executed_snapshot(store, name)
    if not isinstance(executed, MysqlGtidSet):
        return None
    return executed - prev, upto


def _executed_snapshot(store: BinlogStore, name: str) -> tuple[MysqlGtidSet | MariadbGtidList | None, int]:
    """A consistent (executed GTIDs, offset in ``name``) pair: live in the writer, from state.json otherwise."""
    if not store.readonly:
        durable = store.durable_position
        if durable is not None and durable.file == name:
            return store.executed_gtids, durable.position
        return None, 0
    from binhub.store.state import StoreState

    state = StoreState.load(store.state_path)
    if state.last_file != name or not state.executed_gtids:
        return None, 0
    from binhub.binlog.gtid import parse_gtid_set

    flavour = state.upstream.flavour if state.upstream else None
    return parse_gtid_set(state.executed_gtids, flavour), state.last_position


def _entries(store: BinlogStore, name: str, limit: int) -> list[GtidIndexEntry]:
    return [e for e in store.gtid_index.entries() if e.file == name and e.offset <= limit]


# --------------------------------------------------------------------------- MariaDB GTID

def binlog_state(store: BinlogStore) -> MariadbGtidList:
    """The store's MariaDB GTID position (last GTID per domain) up to the durable position."""
    if not store.readonly and isinstance(store.executed_gtids, MariadbGtidList):
        return store.executed_gtids
    durable = store.durable_position
    if durable is None:
        return MariadbGtidList()
    snapshot, upto = _executed_snapshot(store, durable.file)
    if isinstance(snapshot, MariadbGtidList) and upto <= durable.position:
        state, start = snapshot, upto
    else:
        head = read_head(store, durable.file)
        state, start = MariadbGtidList(), 4
        for g in head.gtid_list or ():
            state = state.union(MariadbGtidList([g]))
    if start >= durable.position:
        return state
    tracker = TransactionTracker()
    with open(store.file_path(durable.file), "rb") as f:
        reader = BinlogFileReader(f, durable.file, start=max(start, 4), verify_checksums=False)
        try:
            for ev in reader:
                if ev.offset >= durable.position:
                    break
                done = tracker.transactions
                if tracker.feed(ev.data, reader.fde.checksum_size if reader.fde else 4) and \
                        tracker.transactions != done and isinstance(tracker.last_gtid, MariadbGtid):
                    state = state.update(tracker.last_gtid)
        except BinhubError:
            pass  # past the durable position: not ours to read
    return state


def plan_mariadb_gtid(store: BinlogStore, connect_state: str, *, strict: bool, ignore_duplicates: bool) -> StartPlan:
    try:
        wanted = MariadbGtidList.parse(connect_state)
    except GtidError as exc:
        # mariadbd's GTID list parser answers this before the dump's own "malformed slave request".
        raise MysqlError(ErrorCode.INCORRECT_GTID_STATE, "Could not parse GTID list",
                         hint=f"@slave_connect_state: {exc}") from None
    have = binlog_state(store)
    for g in wanted:
        mine = have.get(g.domain_id)
        if mine is None or mine.seq_no >= g.seq_no:
            continue  # a domain binhub has never seen is served by another primary (as MariaDB allows)
        if ignore_duplicates:
            continue
        raise StoreBehind(f"Error: connecting slave requested to start from GTID {g}, which is not in the "
                          f"master's binlog (binhub's store has {have}: the relay has not reached it, or the "
                          "replica has transactions its primary never had)")
    pending = {g.domain_id: g for g in wanted}
    names = _names(store)
    chosen: str | None = None
    glist: tuple[MariadbGtid, ...] = ()
    for name in reversed(names):
        head = read_head(store, name)
        entries = head.gtid_list
        if entries is None or _contains_all(pending, entries):
            chosen, glist = name, entries or ()
            break
    if chosen is None:
        raise DumpError("Could not find GTID state requested by slave in any binlog files. Probably the slave "
                        "state is too old and required binlog files have been purged.")
    for entry in glist:
        req = pending.get(entry.domain_id)
        if req is not None and req.server_id == entry.server_id and req.seq_no == entry.seq_no:
            del pending[entry.domain_id]  # the requested GTID ends the previous file: skip nothing here
    head = read_head(store, chosen)
    plan = StartPlan(chosen, 4, 4, gtid_mode=True, head_end=head.end, mariadb_pending=pending,
                     mariadb_state={(g.domain_id, g.server_id): g.seq_no for g in glist},
                     strict=strict, ignore_duplicates=ignore_duplicates)
    _mariadb_jump(store, names, plan)
    return plan


def _contains_all(state: dict[int, MariadbGtid], entries: tuple[MariadbGtid, ...]) -> bool:
    """``contains_all_slave_gtid``: can every domain of this file's GTID_LIST start in this file?"""
    for i, entry in enumerate(entries):
        req = state.get(entry.domain_id)
        if req is None:
            return False
        if req.server_id == entry.server_id and req.seq_no <= entry.seq_no:
            if req.seq_no < entry.seq_no:
                return False
            if i + 1 < len(entries) and entries[i + 1].domain_id == entry.domain_id:
                return False
    return True


def _mariadb_jump(store: BinlogStore, names: list[str], plan: StartPlan) -> None:
    if len(plan.mariadb_pending) != 1:
        return
    (domain, req), = plan.mariadb_pending.items()
    # Every domain that ever appears up to the end of this file must be ``domain``.
    i = names.index(plan.file)
    if i + 1 < len(names):
        later = read_head(store, names[i + 1]).gtid_list
        if later is None:
            return
        domains = {g.domain_id for g in later}
        limit = os.path.getsize(store.file_path(plan.file))
    else:
        snapshot, limit = _executed_snapshot(store, plan.file)
        if not isinstance(snapshot, MariadbGtidList):
            return
        domains = set(snapshot.domains)
    domains |= {d for d, _ in plan.mariadb_state}
    if domains != {domain}:
        return
    best, last_seq = -1, -1
    parsed: list[tuple[int, MariadbGtid]] = []
    for e in _entries(store, plan.file, limit):
        try:
            g = MariadbGtid.parse(e.gtid)
        except GtidError:
            return
        if g.domain_id != domain or g.seq_no < last_seq:
            return
        last_seq = g.seq_no
        if not (g.seq_no < req.seq_no or g == req):
            break
        parsed.append((e.offset, g))
        best = len(parsed) - 1
    if best < 0 or parsed[best][0] <= plan.head_end:
        return
    plan.position = parsed[best][0]
    # Transactions before the jump are never read: their GTIDs still belong in the GTID_LIST sent
    # when the start position is reached (the landing transaction itself is read normally).
    for _, g in parsed[:best]:
        key = (g.domain_id, g.server_id)
        plan.mariadb_state[key] = max(plan.mariadb_state.get(key, 0), g.seq_no)


def read_fde(store: BinlogStore, name: str) -> bytes:
    return read_head(store, name).fde


__all__ = ["DumpError", "FileHead", "StartPlan", "StoreBehind", "binlog_state", "plan_file_position", "plan_mariadb_gtid",
           "plan_mysql_gtid", "read_fde", "read_head"]
