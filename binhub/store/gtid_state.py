"""The store's GTID state at its durable position, kept current: the executed set every reader asks
for (:meth:`StoreReader.executed_snapshot`) and what binhub reports as a primary.

``@@gtid_binlog_pos``, ``@@gtid_binlog_state``, ``@@gtid_current_pos`` (MariaDB),
``@@global.gtid_executed`` and ``SHOW MASTER STATUS`` (MySQL) must say what the store holds *now*:
orchestrator, MaxScale's monitor and operators compare them with replicas to judge lag. The state
file is written at most every second, at rotation and on close, so it is only a starting point.

A file's head says the state before its first transaction (MySQL's PREVIOUS_GTIDS, MariaDB's
GTID_LIST, which is the binlog state: one GTID per domain and server). From there (or from the
state file's snapshot, when it lies in the same file), :class:`LiveGtidState` reads the GTID
events up to the durable position, and on the next question only what became durable since.
Everything before the durable position is whole transactions, so every GTID read is executed.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from binhub.binlog.constants import EventType
from binhub.binlog.gtid import MariadbGtid, MariadbGtidList, MysqlGtid, MysqlGtidSet, parse_gtid_set
from binhub.errors import BinhubError, GtidError
from binhub.store.durable_position import DurablePosition

if TYPE_CHECKING:
    from binhub.store.reader import StoreReader

__all__ = ["GtidSnapshot", "LiveGtidState"]

_MYSQL_GTIDS = frozenset((int(EventType.GTID), int(EventType.GTID_TAGGED)))
_MARIA_GTID = int(EventType.MARIA_GTID)


@dataclass(frozen=True, slots=True)
class GtidSnapshot:
    """The GTID state at one durable position (``durable``), in the flavour's terms."""

    durable: DurablePosition | None = None
    mysql: MysqlGtidSet | None = None  # gtid_executed (MySQL)
    #: The binlog state (MariaDB): the last GTID of each (domain, server), a domain's newest one
    #: last; None where nothing says the store is MariaDB's (no GTID_LIST, no GTID).
    mariadb: tuple[MariadbGtid, ...] | None = None

    @property
    def executed(self) -> MysqlGtidSet | MariadbGtidList | None:
        """Every GTID up to the durable position: MySQL's set, MariaDB's position; None if unknown."""
        return self.mysql if self.mysql is not None else self.binlog_pos if self.mariadb is not None else None

    @property
    def binlog_pos(self) -> MariadbGtidList:
        """``@@gtid_binlog_pos``: the newest GTID of each domain."""
        return MariadbGtidList(self.mariadb or ())  # a later entry of a domain replaces an earlier one

    @property
    def binlog_state(self) -> str:
        """``@@gtid_binlog_state``, as mariadbd prints it (by domain, each domain's newest GTID last)."""
        ordered = sorted(enumerate(self.mariadb or ()), key=lambda item: (item[1].domain_id, item[0]))
        return ",".join(str(g) for _, g in ordered)


@dataclass
class _Cursor:
    file: str
    offset: int  # everything before this offset of ``file`` is folded in
    mysql: MysqlGtidSet | None
    mariadb: dict[tuple[int, int], MariadbGtid] | None = None  # insertion order = recency

    def fold_mariadb(self, gtid: MariadbGtid) -> None:
        if self.mariadb is None:
            self.mariadb = {}
        self.mariadb.pop((gtid.domain_id, gtid.server_id), None)
        self.mariadb[(gtid.domain_id, gtid.server_id)] = gtid

    def snapshot(self, durable: DurablePosition) -> GtidSnapshot:
        return GtidSnapshot(durable, self.mysql, None if self.mariadb is None else tuple(self.mariadb.values()))


class LiveGtidState:
    """The GTID state of one store at its durable position; :meth:`snapshot` reads only what is new."""

    def __init__(self, store: StoreReader) -> None:
        self.store = store
        self._cursor: _Cursor | None = None

    def snapshot(self) -> GtidSnapshot:
        store = self.store
        durable = store.durable_position
        if durable is None or durable.file not in store.files:
            return self._from_state_file(durable)  # nothing stored yet: the requested start's state, if any
        cursor = self._cursor
        if cursor is None or cursor.file != durable.file or cursor.offset > durable.position:
            try:
                cursor = self._cursor = self._base(durable.file, durable.position)
            except BinhubError:  # a head it cannot read (purged meanwhile): the state file's word
                return self._from_state_file(durable)
        if cursor.offset < durable.position:
            self._read(cursor, durable.position)
        return cursor.snapshot(durable)

    def _from_state_file(self, durable: DurablePosition | None = None) -> GtidSnapshot:
        state = self.store.state
        flavour = state.upstream.flavour if state.upstream else None
        if state.executed_gtids:
            with contextlib.suppress(GtidError):
                parsed = parse_gtid_set(state.executed_gtids, flavour)
                if isinstance(parsed, MysqlGtidSet):
                    return GtidSnapshot(durable, mysql=parsed)
                return GtidSnapshot(durable, mariadb=parsed.gtids)
        return GtidSnapshot(durable)

    def _base(self, name: str, upto: int) -> _Cursor:
        """Where to start reading ``name``: its head, or the state file's snapshot if that is further."""
        head = self.store.file_head(name)
        cursor = _Cursor(name, head.end, head.previous_gtids, None if head.gtid_list is None else {})
        for g in head.gtid_list or ():
            cursor.fold_mariadb(g)
        state = self.store.state
        if state.last_file == name and head.end < state.last_position <= upto and state.executed_gtids:
            # The state file's executed set is the one at its last position (the writer folds GTIDs in
            # as they become durable), so reading can start there.
            # It is checked against the head (a state never loses what came before the file), so
            # a state file written wrong (an older binhub's) costs a longer read, not a wrong answer.
            snap = self._from_state_file()
            if snap.mysql is not None and head.previous_gtids is not None:
                if head.previous_gtids.issubset(snap.mysql):
                    cursor.mysql, cursor.offset = snap.mysql, state.last_position
            elif snap.mariadb and head.previous_gtids is None:
                position = snap.binlog_pos
                if all((p := position.get(g.domain_id)) is not None and (p.server_id != g.server_id or
                                                                       p.seq_no >= g.seq_no)
                       for g in head.gtid_list or ()):
                    for g in snap.mariadb:  # the newest per domain; other servers' entries stay from the head
                        cursor.fold_mariadb(g)
                    cursor.offset = state.last_position
        return cursor

    def _read(self, cursor: _Cursor, upto: int) -> None:
        # The file reader and the event decoder load on first use, not with the store: the relay
        # imports the store and reads no event back.
        from binhub.binlog.decode import decode_event
        from binhub.binlog.events import GtidEvent
        from binhub.binlog.file import BinlogFileReader

        with open(self.store.file_path(cursor.file), "rb") as f:
            reader = BinlogFileReader(f, cursor.file, start=cursor.offset, verify_checksums=False)
            try:
                for ev in reader:
                    if ev.offset >= upto:
                        break
                    kind = ev.data[4]
                    if kind == _MARIA_GTID:
                        seq_no = int.from_bytes(ev.data[19:27], "little")
                        domain = int.from_bytes(ev.data[27:31], "little")
                        server = int.from_bytes(ev.data[5:9], "little")
                        cursor.fold_mariadb(MariadbGtid(domain, server, seq_no))
                    elif kind in _MYSQL_GTIDS:
                        event = decode_event(bytes(ev.data), None,
                                             checksum_size=reader.fde.checksum_size if reader.fde else 4)
                        if isinstance(event, GtidEvent) and isinstance(event.gtid, MysqlGtid):
                            cursor.mysql = (cursor.mysql or MysqlGtidSet()).add(event.gtid)
                    cursor.offset = ev.offset + len(ev.data)
            except BinhubError:
                pass  # a torn tail past the durable position is not ours to read
