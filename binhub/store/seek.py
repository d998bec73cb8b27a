"""Where a reader starts: the file, the offset, and what to skip, for a file/position or a GTID set.

* By file/position (both flavours): the named file (an empty name means the first file, as both
  servers do), at a position that must be an event boundary within what is durable.
* After a MySQL GTID set (COM_BINLOG_DUMP_GTID): the newest file whose PREVIOUS_GTIDS the set
  contains (``find_first_log_not_in_gtid_set``); transactions in the set are skipped.
* After a MariaDB GTID position (``@slave_connect_state``): the newest file whose GTID_LIST the
  position covers (``gtid_find_binlog_file`` / ``contains_all_slave_gtid`` in
  ``sql/sql_repl.cc``), skipping per domain until the requested GTID.

Both servers then read that file from offset 4 and skip. binhub uses its ``gtid.index`` to jump
deep into the file instead (the skipped transactions are invisible to the reader either way), but
only where the jump provably skips nothing the reader lacks: the file's transactions must come
from one GTID source (one MySQL uuid/tag, or one MariaDB domain) in increasing order.

A start the store cannot serve raises :class:`~binhub.errors.StartPositionError` with the words
the primaries use (replicas show them as they are; ``plain`` says it in binhub's terms for a
stream), and :class:`~binhub.errors.StoreBehind` when
the store has not reached it yet, an empty store included: the caller may wait for the relay.
Only durable files are considered. The dump turns these into error 1236 (``binhub.serve.dump``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from binhub.binlog.constants import HEADER_SIZE, ROWS_EVENT_TYPES, ROWS_STMT_END_F
from binhub.binlog.gtid import MariadbGtid, MariadbGtidList, MysqlGtid, MysqlGtidSet
from binhub.errors import GtidError, StartPositionError, StoreBehind
from binhub.store.file_head import FileHead
from binhub.store.index import GtidIndexEntry, file_seq
from binhub.store.reader import StoreReader


@dataclass
class StartPlan:
    """Where to read from, and what the reader already has.

    Open a :class:`~binhub.store.follower.StoreFollower` at ``(file, position)``; a reader that
    needs the file's head first (a dump: the FDE, PREVIOUS_GTIDS / GTID_LIST) reads from offset 4
    to ``head_end`` and then jumps to ``position``. Transactions whose GTID is in
    ``mysql_exclude``, or (MariaDB) at or before ``mariadb_pending`` in their domain, are ones the
    reader has: skip them.
    """

    file: str
    position: int  # where reading starts; an event boundary
    rotate_position: int  # named by the first artificial ROTATE
    mid_file: bool = False  # file/position start past the file's start
    # File/position start between two row events of one statement (the one before lacks STMT_END_F):
    # a replica reconnecting there already has the statement's first row events.
    mid_statement: bool = False
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


def _names(reader: StoreReader) -> list[str]:
    """The files a start may be in: every durable file (one holding more than the magic)."""
    names = [name for name, size in reader.durable_files() if size > 4]
    if not names:
        raise StoreBehind("Binary log is not open (binhub's store holds no binlog files yet; the relay has not "
                          "stored any)", plain="binhub's store holds no binlog files yet: the relay has not stored any")
    return names


# --------------------------------------------------------------------------- file / position

def plan_file_position(reader: StoreReader, filename: str, position: int) -> StartPlan:
    names = _names(reader)
    name = filename or names[0]
    if name not in names:
        later = _same_series(name, names[-1]) and file_seq(name) > file_seq(names[-1])
        held = f"'{name}' is not in binhub's store, which holds {names[0]} … {names[-1]}"
        held += "; the relay has not reached it" if later else ""
        raise (StoreBehind if later else StartPositionError)(
            f"Could not find first log file name in binary log index file ({held})", plain=held)
    end = reader.durable_end(name)
    if position > end and name == names[-1]:
        beyond = f"beyond what binhub's store holds ({end}); the relay has not reached it"
        raise StoreBehind(f"Client requested master to start replication from position {position} in '{name}', "
                          f"{beyond}", plain=f"position {position} in {name} is {beyond}")
    if position < 4 or position > end:
        raise StartPositionError(f"Client requested master to start replication from impossible position; the first "
                                 f"event '{name}' at {position}, the last event read from '{name}' at 4, the last byte "
                                 f"read from '{name}' at 4.",
                                 plain=f"position {position} is not in {name}, which binhub's store holds from 4 "
                                       f"to {end}")
    before = _event_before(reader, name, position) if position > 4 else b""
    return StartPlan(name, position, position, mid_file=position > 4, mid_statement=_unfinished_statement(before))


def _same_series(a: str, b: str) -> bool:
    """Two names of one binlog series (``mysql-bin.000007`` and ``mysql-bin.000003``)."""
    return a.rpartition(".")[0] == b.rpartition(".")[0] and a.rpartition(".")[2].isdigit()


def _event_before(reader: StoreReader, name: str, position: int) -> bytes:
    """Check that ``position`` is an event boundary, walking event headers from the nearest known
    one (a gtid.index entry); returns the start of the event that ends there (b"" if the walk
    started there: a gtid.index entry begins a transaction).
    """
    starts = [e.offset for e in reader.gtid_index.entries() if e.file == name and e.offset <= position]
    pos = max(starts, default=4)
    head = b""
    with open(reader.file_path(name), "rb") as f:
        while pos < position:
            # The header and, for a row event, its flags (after the 6-byte table id).
            head = os.pread(f.fileno(), HEADER_SIZE + 8, pos)
            if len(head) < HEADER_SIZE:
                break
            size = int.from_bytes(head[9:13], "little")
            if size < HEADER_SIZE:
                break
            pos += size
    if pos != position:
        not_start = f"not the start of an event (the nearest event starts at {pos})"
        raise StartPositionError(f"Client requested master to start replication from position {position} in "
                                 f"'{name}', which is {not_start}", plain=f"position {position} in {name} is "
                                 f"{not_start}")
    return head


def _unfinished_statement(event: bytes) -> bool:
    """A row event whose statement goes on in the next event (no STMT_END_F in its flags)."""
    return (len(event) >= HEADER_SIZE + 8 and event[4] in ROWS_EVENT_TYPES
            and not int.from_bytes(event[HEADER_SIZE + 6:HEADER_SIZE + 8], "little") & ROWS_STMT_END_F)


# --------------------------------------------------------------------------- MySQL GTID

def plan_mysql_gtid(reader: StoreReader, exclude: MysqlGtidSet) -> StartPlan:
    names = _names(reader)
    first = reader.file_head(names[0])
    purged = first.previous_gtids or MysqlGtidSet()
    if not purged.issubset(exclude):
        missing = purged - exclude
        raise StartPositionError(
            "Cannot replicate because the source purged required binary logs. Replicate the missing "
            "transactions from elsewhere, or provision a new replica from backup. Consider increasing the "
            f"source's binary log expiration period. The GTID set sent by the replica is '{exclude}', and the "
            f"missing transactions are '{missing}'",
            plain=f"binhub's store no longer holds the transactions {missing}, which a start after {exclude} "
                  f"needs: they were purged (its oldest file, {names[0]}, begins after {purged})")
    chosen = names[0]
    for name in reversed(names):
        prev = reader.file_head(name).previous_gtids or MysqlGtidSet()
        if prev.issubset(exclude):
            chosen = name
            break
    head = reader.file_head(chosen)
    plan = StartPlan(chosen, 4, 4, gtid_mode=True, head_end=head.end, mysql_exclude=exclude)
    _mysql_jump(reader, names, plan, head)
    return plan


def _mysql_jump(reader: StoreReader, names: list[str], plan: StartPlan, head: FileHead) -> None:
    known = _known_file_gtids(reader, names, plan.file, head)
    if known is None or plan.mysql_exclude is None:
        return
    file_gtids, limit = known
    tsids = [tsid for tsid, _ in file_gtids.items()]
    if len(tsids) != 1:
        return
    tsid = tsids[0]
    entries = _entries(reader, plan.file, limit)
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


def _known_file_gtids(reader: StoreReader, names: list[str], name: str,
                      head: FileHead) -> tuple[MysqlGtidSet, int] | None:
    """The GTIDs of ``name`` (exactly) and up to which offset that is known."""
    prev = head.previous_gtids or MysqlGtidSet()
    i = names.index(name)
    if i + 1 < len(names):
        nxt = reader.file_head(names[i + 1]).previous_gtids
        if nxt is None:
            return None
        return nxt - prev, os.path.getsize(reader.file_path(name))
    executed, upto = _executed_snapshot(reader, name)
    if not isinstance(executed, MysqlGtidSet):
        return None
    return executed - prev, upto


def _executed_snapshot(reader: StoreReader, name: str) -> tuple[MysqlGtidSet | MariadbGtidList | None, int]:
    """A consistent (executed GTIDs, offset in ``name``) pair, if ``name`` is the durable file."""
    durable, executed = reader.executed_snapshot()
    if durable is None or durable.file != name:
        return None, 0
    return executed, durable.position


def _entries(reader: StoreReader, name: str, limit: int) -> list[GtidIndexEntry]:
    return [e for e in reader.gtid_index.entries() if e.file == name and e.offset <= limit]


# --------------------------------------------------------------------------- MariaDB GTID

def plan_mariadb_gtid(reader: StoreReader, wanted: MariadbGtidList, *, strict: bool,
                      ignore_duplicates: bool) -> StartPlan:
    have = reader.mariadb_state()
    for g in wanted:
        mine = have.get(g.domain_id)
        if mine is None or mine.seq_no >= g.seq_no:
            continue  # a domain binhub has never seen is served by another primary (as MariaDB allows)
        if ignore_duplicates:
            continue
        raise StoreBehind(f"Error: connecting slave requested to start from GTID {g}, which is not in the "
                          f"master's binlog (binhub's store has {have}: the relay has not reached it, or the "
                          "replica has transactions its primary never had)",
                          plain=f"GTID {g} is not in binhub's store, which holds up to {have}: the relay has not "
                                "reached it, or it never was in this primary's binlog")
    pending = {g.domain_id: g for g in wanted}
    names = _names(reader)
    chosen: str | None = None
    glist: tuple[MariadbGtid, ...] = ()
    for name in reversed(names):
        head = reader.file_head(name)
        entries = head.gtid_list
        if entries is None or _contains_all(pending, entries):
            chosen, glist = name, entries or ()
            break
    if chosen is None:
        raise StartPositionError("Could not find GTID state requested by slave in any binlog files. Probably the slave "
                        "state is too old and required binlog files have been purged.",
                        plain=f"binhub's store no longer holds the binlog that follows GTID {wanted}: the files "
                              f"it was in were purged (the oldest stored file is {names[0]})")
    for entry in glist:
        req = pending.get(entry.domain_id)
        if req is not None and req.server_id == entry.server_id and req.seq_no == entry.seq_no:
            del pending[entry.domain_id]  # the requested GTID ends the previous file: skip nothing here
    head = reader.file_head(chosen)
    plan = StartPlan(chosen, 4, 4, gtid_mode=True, head_end=head.end, mariadb_pending=pending,
                     mariadb_state={(g.domain_id, g.server_id): g.seq_no for g in glist},
                     strict=strict, ignore_duplicates=ignore_duplicates)
    _mariadb_jump(reader, names, plan)
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


def _mariadb_jump(reader: StoreReader, names: list[str], plan: StartPlan) -> None:
    if len(plan.mariadb_pending) != 1:
        return
    (domain, req), = plan.mariadb_pending.items()
    # Every domain that ever appears up to the end of this file must be ``domain``.
    i = names.index(plan.file)
    if i + 1 < len(names):
        later = reader.file_head(names[i + 1]).gtid_list
        if later is None:
            return
        domains = {g.domain_id for g in later}
        limit = os.path.getsize(reader.file_path(plan.file))
    else:
        snapshot, limit = _executed_snapshot(reader, plan.file)
        if not isinstance(snapshot, MariadbGtidList):
            return
        domains = set(snapshot.domains)
    domains |= {d for d, _ in plan.mariadb_state}
    if domains != {domain}:
        return
    best, last_seq = -1, -1
    parsed: list[tuple[int, MariadbGtid]] = []
    for e in _entries(reader, plan.file, limit):
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


__all__ = ["StartPlan", "plan_file_position", "plan_mariadb_gtid", "plan_mysql_gtid"]
