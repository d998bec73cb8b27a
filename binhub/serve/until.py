"""MariaDB's ``START SLAVE UNTIL master_gtid_pos``, which the primary enforces, not the replica.

A MariaDB replica told to stop at a GTID position sends it as ``SET @slave_until_gtid`` before its
GTID dump; the primary's dump thread stops there (MariaDB ``sql/sql_repl.cc``: ``until_gtid_state``,
``gtid_until_group``, ``is_until_reached``). :class:`UntilGtid` keeps that state for one dump:

* one stop GTID per domain; a domain leaves the set once a GTID of it with the same server id and
  a sequence number at least the stop's has been seen. Events of a domain that has left the set,
  or that the set never named, are not sent;
* a GTID past the stop (the stop GTID itself is missing from the binlog) is not sent either, but
  still ends the domain;
* domains whose stop lies before the start (the start file's GTID_LIST is at or past it) have
  left the set before anything is sent; once the set is empty, at a file's start, the dump stops
  after the first stand-alone event;
* a start GTID the binlog has not reached is no error when its domain's stop is in the binlog (or
  not named): that domain has stopped before the start (:func:`stopped_before_start`);
* when the last domain leaves, the dump stops after the group that made it leave ends (its XID or
  COMMIT/ROLLBACK, or for a stand-alone group the first event that is not part of a group), with an
  artificial GTID_LIST flagged ``FLAG_UNTIL_REACHED`` and then an EOF packet: the replica's IO and
  SQL threads both stop there.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable

from binhub.binlog.constants import EventType
from binhub.binlog.gtid import MariadbGtid, MariadbGtidList

__all__ = ["FLAG_UNTIL_REACHED", "UntilGtid", "stopped_before_start"]

#: Gtid_list_log_event::FLAG_UNTIL_REACHED (1 << 28 of the count word), as ``preamble.gtid_list``'s flags.
FLAG_UNTIL_REACHED = 1

# Log_event::is_part_of_group: these open or continue a group; anything else can end a stand-alone one.
_PART_OF_GROUP = frozenset(int(t) for t in (
    EventType.MARIA_GTID, EventType.INTVAR, EventType.RAND, EventType.USER_VAR, EventType.TABLE_MAP,
    EventType.MARIA_ANNOTATE_ROWS))
_ENDS_TRANSACTION = frozenset((int(EventType.XID), int(EventType.XA_PREPARE)))
_QUERY = int(EventType.QUERY)
_QUERY_FIXED = struct.Struct("<8xBxxH")  # db_len, status_vars_len in the 13-byte post-header
_FL_STANDALONE = 1


class _StopAfter(enum.Enum):
    NOT_YET = 0  # GTID_UNTIL_NOT_DONE
    STANDALONE = 1  # GTID_UNTIL_STOP_AFTER_STANDALONE
    TRANSACTION = 2  # GTID_UNTIL_STOP_AFTER_TRANSACTION


def _is_commit_or_rollback(ev: bytes | memoryview, checksum_size: int) -> bool:
    """Query_log_event::peek_is_commit_rollback: the statement is exactly COMMIT or ROLLBACK."""
    db_len, status_len = _QUERY_FIXED.unpack_from(ev, 19)
    start = 19 + 13 + status_len + db_len + 1
    return bytes(ev[start:len(ev) - checksum_size]).upper() in (b"COMMIT", b"ROLLBACK")


class UntilGtid:
    """The stop position of one dump, and whether the dump has reached it."""

    def __init__(self, until: Iterable[MariadbGtid]) -> None:
        self.pending: dict[int, MariadbGtid] = {g.domain_id: g for g in until}
        self._stop_after = _StopAfter.NOT_YET
        self._start_file_seen = False

    def file_started(self) -> None:
        """A file's FORMAT_DESCRIPTION went out: with nothing left to wait for, stop at once."""
        if not self.pending and self._stop_after is _StopAfter.NOT_YET:
            self._stop_after = _StopAfter.STANDALONE

    def gtid_list(self, gtids: tuple[MariadbGtid, ...]) -> None:
        """A file's GTID_LIST: on the start file, a domain whose stop it covers has already stopped."""
        if self._start_file_seen:
            return
        self._start_file_seen = True
        for g in gtids:
            stop = self.pending.get(g.domain_id)
            if stop is not None and stop.server_id == g.server_id and stop.seq_no <= g.seq_no:
                del self.pending[g.domain_id]
        self.file_started()

    def skips(self, gtid: MariadbGtid, flags2: int) -> bool:
        """Whether the group ``gtid`` opens is past the stop in its domain (and so not sent)."""
        stop = self.pending.get(gtid.domain_id)
        if stop is None:
            return True  # this domain has stopped (or was never to be replicated)
        if gtid.server_id != stop.server_id or gtid.seq_no < stop.seq_no:
            return False
        del self.pending[gtid.domain_id]
        if not self.pending:
            self._stop_after = _StopAfter.STANDALONE if flags2 & _FL_STANDALONE else _StopAfter.TRANSACTION
        return gtid.seq_no > stop.seq_no  # the stop GTID is missing: this one is already beyond it

    def reached_after(self, kind: int, ev: bytes | memoryview, checksum_size: int) -> bool:
        """Whether the dump stops after the event of type ``kind`` (sent or not)."""
        match self._stop_after:
            case _StopAfter.NOT_YET:
                return False
            case _StopAfter.STANDALONE:
                return kind not in _PART_OF_GROUP
            case _StopAfter.TRANSACTION:
                return kind in _ENDS_TRANSACTION or (kind == _QUERY and _is_commit_or_rollback(ev, checksum_size))


def stopped_before_start(have: MariadbGtidList, start: MariadbGtidList, until: dict[int, MariadbGtid]) -> bool:
    """mariadbd's check_slave_start_position with an UNTIL, given the binlog's position ``have``.

    A start GTID past the binlog is an error, unless the domain's stop is in the binlog (or the
    stop does not name the domain): the stop is then before the start, and that domain has already
    stopped. True, and those domains taken out of ``until``, when every start GTID past the binlog
    is such a one: the start may then lie past the binlog, as with ``gtid_ignore_duplicates``.
    """
    ahead = [g.domain_id for g in start if (mine := have.get(g.domain_id)) is not None and mine.seq_no < g.seq_no]
    for domain in ahead:
        stop, mine = until.get(domain), have.get(domain)
        if stop is not None and not (mine is not None and mine.server_id == stop.server_id
                                     and mine.seq_no >= stop.seq_no):
            return False
    for domain in ahead:
        until.pop(domain, None)
    return bool(ahead)
