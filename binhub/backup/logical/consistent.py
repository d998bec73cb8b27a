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
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

from binhub.backup.session import BinlogPosition, ServerSession
from binhub.errors import BackupError, UpstreamError
from binhub.wire.errors import ErrorCode

BACKUP_STAGE = "BACKUP STAGE BLOCK_COMMIT"
FTWRL = "FLUSH TABLES WITH READ LOCK"


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
            raise BackupError(f"{lock} waited too long for running DDL or writes",
                              hint="retry when no long ALTER TABLE or MyISAM write runs, "
                                   "or raise --lock-wait-timeout") from exc
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
