"""One consistent point for every thread of a logical backup (mydumper's and MySQL Shell's recipe).

The coordinator stops commits for an instant — ``BACKUP STAGE START`` + ``BACKUP STAGE
BLOCK_COMMIT`` on MariaDB 10.4+, ``FLUSH TABLES WITH READ LOCK`` elsewhere — and inside it every
worker session opens ``START TRANSACTION WITH CONSISTENT SNAPSHOT``; the binlog file:pos and GTID
read there are the position of every snapshot. BLOCK_COMMIT is taken rather than FTWRL where the
server has it: it waits only for running DDL and non-transactional writes, not for every open table
to be closed (a long SELECT stalls FTWRL and every writer queued behind it).

While the lock holds, no commit happens, no DDL runs and non-transactional tables (MyISAM, Aria,
...) take no writes: what the caller reads inside the ``with`` (the tables' DDL, and the
non-transactional tables' rows, which no snapshot protects — mydumper's rule) belongs to the same
point. Leaving the ``with`` releases the lock; the snapshots stay.

When the lock cannot be had within ``--lock-wait-timeout`` (a long ALTER TABLE or CREATE ... SELECT
holds the backup lock; a long query keeps FTWRL from closing its tables), the error names the
sessions in the way — id, account, how long, statement — so the DBA knows what to wait for or KILL.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

from binhub.backup.session import BinlogPosition, ServerSession
from binhub.errors import BackupError, BinhubError, UpstreamError
from binhub.wire.errors import ErrorCode

BACKUP_STAGE = "BACKUP STAGE BLOCK_COMMIT"
FTWRL = "FLUSH TABLES WITH READ LOCK"


# Statements that wait for a lock are victims, not blockers (our own request is gone by the time we look).
_WAITING = "Waiting for%lock%"
_STATEMENT_CHARS = 200


@dataclass(frozen=True, slots=True)
class Blocker:
    """A session the consistency lock waited for."""

    session: int
    account: str
    seconds: int
    statement: str

    def __str__(self) -> str:
        return f"session {self.session} ({self.account}, running {self.seconds}s): {self.statement}"


@dataclass(slots=True)
class SnapshotPoint:
    lock: str
    position: BinlogPosition | None
    locked_at: float
    released_at: float | None = None

    @property
    def lock_seconds(self) -> float:
        return (self.released_at or time.monotonic()) - self.locked_at


def has_backup_stage(version: str) -> bool:
    """MariaDB 10.4.1+ has BACKUP STAGE."""
    match = re.match(r"(\d+)\.(\d+)\.(\d+)", version)
    return "mariadb" in version.lower() and match is not None and \
        tuple(int(x) for x in match.groups()) >= (10, 4, 1)


def read_position(session: ServerSession, flavour: str) -> BinlogPosition | None:
    if flavour == "mariadb":
        return session.binlog_position()
    rows = session.query("SHOW MASTER STATUS")
    if not rows:
        return None
    gtid = session.query("SELECT @@GLOBAL.gtid_executed")[0][0]
    return BinlogPosition(str(rows[0][0]), int(rows[0][1]), str(gtid or "").replace("\n", ""))


def lock_timeout(session: ServerSession, lock: str) -> BackupError:
    """The error for a consistency lock that timed out, naming the sessions it waited for."""
    blockers = blocking_sessions(session)
    waited = f"{lock} waited {session.lock_wait_timeout}s (--lock-wait-timeout)"
    if not blockers:
        return BackupError(f"{waited}; nothing runs on the server any more",
                           hint="the statement in the way has finished: take the backup again")
    first = blockers[0]
    return BackupError(f"{waited} for {'; '.join(str(b) for b in blockers)}",
                       hint=f"wait for it to finish, or KILL {first.session} on the source; or raise --lock-wait-timeout")


def blocking_sessions(session: ServerSession, limit: int = 5) -> list[Blocker]:
    """The sessions a backup lock (or FTWRL) most likely waits for, the surest first.

    With MariaDB's metadata_lock_info plugin loaded, the holders of a backup lock (a running DDL
    holds MDL_BACKUP_DDL, a MyISAM/Aria write MDL_BACKUP_DML); besides them, or without the plugin,
    every running statement that is not itself waiting for a lock, DDL first, then the longest
    (FTWRL waits for every open table, so a long SELECT stops it too).
    """
    with contextlib.suppress(BinhubError):  # a report only: the timeout is the error
        holders: set[int] = set()
        with contextlib.suppress(UpstreamError):  # no metadata_lock_info plugin
            holders = {int(thread) for (thread,) in session.query(
                "SELECT DISTINCT THREAD_ID FROM information_schema.METADATA_LOCK_INFO "
                "WHERE LOCK_TYPE = 'Backup lock' AND THREAD_ID <> CONNECTION_ID()")}
        rows = session.query(
            f"SELECT ID, USER, SUBSTRING_INDEX(HOST, ':', 1), TIME, LEFT(INFO, {_STATEMENT_CHARS}), "
            "INFO REGEXP '^[[:space:]]*(ALTER|CREATE|DROP|RENAME|TRUNCATE|OPTIMIZE|REPAIR|ANALYZE)[[:space:]]' "
            "FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() "
            "AND (COMMAND = 'Query' OR COMMAND LIKE 'Slave%' AND INFO IS NOT NULL) "
            f"AND IFNULL(STATE, '') NOT LIKE '{_WAITING}'")
        ranked = sorted(rows, key=lambda r: (int(r[0]) not in holders, not r[5], -int(r[3])))
        return [Blocker(int(thread), f"{user}@{host}", int(seconds), " ".join(str(info or "").split()))
                for thread, user, host, seconds, info, _ in ranked[:limit]]
    return []


@contextlib.contextmanager
def consistent_point(coordinator: ServerSession, workers: list[ServerSession], *, version: str,
                     flavour: str) -> Iterator[SnapshotPoint]:
    """Lock, open every worker's snapshot, read the position; release on leaving the ``with``."""
    for worker in workers:
        worker.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    lock = BACKUP_STAGE if has_backup_stage(version) else FTWRL
    try:
        if lock == BACKUP_STAGE:
            coordinator.execute("BACKUP STAGE START")
            coordinator.execute("BACKUP STAGE BLOCK_COMMIT")
        else:
            coordinator.execute(FTWRL)
    except UpstreamError as exc:
        if exc.code == ErrorCode.LOCK_WAIT_TIMEOUT:
            raise lock_timeout(coordinator, lock) from exc
        if exc.code in (ErrorCode.DBACCESS_DENIED_ERROR, ErrorCode.ACCESS_DENIED_ERROR,
                        ErrorCode.SPECIFIC_ACCESS_DENIED_ERROR):
            raise BackupError(f"{lock} was refused: {exc.server_message}",
                              hint="the backup user needs RELOAD (and BINLOG MONITOR for the binlog position)") \
                from exc
        raise
    point = SnapshotPoint(lock, None, time.monotonic())
    try:
        for worker in workers:
            worker.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        point.position = read_position(coordinator, flavour)
        yield point
    finally:
        with contextlib.suppress(Exception):
            coordinator.execute("BACKUP STAGE END" if lock == BACKUP_STAGE else "UNLOCK TABLES")
        point.released_at = time.monotonic()
