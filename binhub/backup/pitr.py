"""Point-in-time restore: the restored server replicates the store up to a target GTID position.

Why replication from ``binhub serve`` rather than piping ``mariadb-binlog`` into a client, or
binhub applying row changes itself: the restored server applies its own events with its own
replication SQL thread, exactly as a replica of the primary would (statement and row events, temporary
tables, session variables, XA, DDL, GTID bookkeeping in ``mysql.gtid_slave_pos``), and the stop is
``START SLAVE UNTIL master_gtid_pos``, which binhub's dump enforces exactly as mariadbd's does. None of
the known replay pitfalls (wrong start point, ``--stop-datetime`` in the local time zone,
``mariadb-binlog``'s GTID strict mode, one file at a time) arise, and the result is the state of a
real replica stopped at the same GTID: the tests compare exactly that.

The target is a MariaDB GTID position (one GTID per domain). It is named directly
(``--until-gtid``), or resolved from the store: the position after the last transaction committed
at or before a time (``--until``), or the position just before a transaction (``--until-before-gtid``).
Before anything is restored the store must hold every transaction from the backup's GTID to the
target: the store's oldest file may not begin after the backup, and its end may not lie before the
target.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from binhub.backup.recovery_server import RecoveryServer
from binhub.binlog.gtid import MariadbGtid, MariadbGtidList
from binhub.errors import GtidError, RecoveryFailed, RestoreError
from binhub.store.reader import StoreReader
from binhub.store.search import first_file_state, transactions

log = logging.getLogger("binhub.restore")

DEFAULT_REPLAY_TIMEOUT = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class ReplicationSource:
    """The binlog server the restored server replicates from (``binhub serve``)."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    """From the backup's GTID position to the target, replicated from ``source``."""

    source: ReplicationSource
    start: MariadbGtidList
    until: MariadbGtidList
    timeout: float = DEFAULT_REPLAY_TIMEOUT


def parse_position(text: str, what: str) -> MariadbGtidList:
    try:
        return MariadbGtidList.parse(text)
    except GtidError as exc:
        raise RestoreError(f"{what} {text!r} is not a MariaDB GTID position ({exc})") from None


def _after_start(start: MariadbGtidList, gtid: MariadbGtid | None) -> bool:
    return gtid is not None and not start.contains(gtid)


def until_time(store: StoreReader, start: MariadbGtidList, timestamp: int) -> MariadbGtidList:
    """The position after the last transaction (after ``start``) committed at or before ``timestamp``:
    the walk stops at the first one committed later, as ``mariadb-binlog --stop-datetime`` does."""
    position = start
    for txn in transactions(store):
        if not _after_start(start, txn.gtid):
            continue
        if txn.timestamp > timestamp:
            break
        assert txn.gtid is not None
        position = position.update(txn.gtid)
    return position


def until_before(store: StoreReader, start: MariadbGtidList, bad: MariadbGtid) -> MariadbGtidList:
    """The position just before transaction ``bad``: every domain as it stood when ``bad`` began."""
    if start.contains(bad):
        raise RestoreError(f"{bad} is already in the backup (its GTID position is {start}); "
                           "restore an older backup to stop before it")
    position = start
    for txn in transactions(store):
        if txn.gtid == bad:
            return position
        if _after_start(start, txn.gtid):
            assert txn.gtid is not None
            position = position.update(txn.gtid)
    raise RestoreError(f"transaction {bad} is not in the store after the backup's position {start}",
                       hint="`binhub binlog find --data-dir STORE --grep ...` lists GTIDs with their statements")


def check_store_covers(store: StoreReader, start: MariadbGtidList, until: MariadbGtidList) -> None:
    """The store must hold every transaction from ``start`` to ``until``, or nothing is touched."""
    if not until.covers(start):
        raise RestoreError(f"the target {until} lies before the backup's GTID position {start}",
                           hint="restore an older backup for that point")
    first = first_file_state(store)
    if first is None:
        raise RestoreError(f"the store {store.data_dir} holds no binlog")
    gap = [g for g in first if not start.contains(g) and until.get(g.domain_id) != start.get(g.domain_id)]
    if gap:
        raise RestoreError(f"the store's oldest file begins after the backup: it starts at {first}, the backup "
                           f"is at {start}; the transactions between were purged from the store",
                           hint="restore a newer backup, or import the missing binlogs (binhub binlog import)")
    end = store.mariadb_state()
    if not end.covers(until):
        raise RestoreError(f"the target {until} lies beyond the store's end ({end or 'empty'})",
                           hint="wait for the relay to catch up, or pick an earlier target")


def replica_server_id(*positions: MariadbGtidList, avoid: int = 0) -> int:
    """A server_id for the replaying server that no replayed event carries (a replica skips its own)."""
    taken = {g.server_id for position in positions for g in position} | {avoid}
    candidate = 4_294_967_295
    while candidate in taken:
        candidate -= 1
    return candidate


def replay(server: RecoveryServer, plan: ReplayPlan) -> MariadbGtidList:
    """Replicate from ``plan.source`` until ``plan.until``; returns the server's ``gtid_slave_pos``.

    On the way out replication is reset (``RESET SLAVE ALL``: no relay logs, no connection settings
    left in the datadir); ``mysql.gtid_slave_pos`` keeps the position reached.
    """
    source = plan.source
    conn = server.connect()
    try:
        run = _runner(conn)
        run("STOP SLAVE")
        run("RESET SLAVE ALL")
        run(f"SET GLOBAL gtid_slave_pos = '{plan.start}'")
        run("CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%s, MASTER_USER=%s, MASTER_PASSWORD=%s, "
            "MASTER_CONNECT_RETRY=1, MASTER_USE_GTID=slave_pos",
            (source.host, source.port, source.user, source.password))
        run(f"START SLAVE UNTIL master_gtid_pos = '{plan.until}'")
        deadline = time.monotonic() + plan.timeout
        while True:
            status = _slave_status(conn)
            if status.get("Last_SQL_Error"):
                raise RecoveryFailed(f"the replay stopped with SQL error {status.get('Last_SQL_Errno')}: "
                                     f"{status['Last_SQL_Error']}")
            if status.get("Last_IO_Error") and status.get("Slave_IO_Running") == "No":
                raise RecoveryFailed(f"the replay could not read from binhub serve at {source.host}:{source.port}: "
                                     f"{status['Last_IO_Error']}")
            if status.get("Slave_SQL_Running") == "No":
                break
            if time.monotonic() > deadline:
                raise RecoveryFailed(f"the replay did not reach {plan.until} within {plan.timeout:g}s "
                                     f"(at {status.get('Gtid_Slave_Pos')})")
            time.sleep(0.1)
        reached = MariadbGtidList.parse(str(_fetch(conn, "SELECT @@gtid_slave_pos")))
        run("STOP SLAVE")
        run("RESET SLAVE ALL")
    finally:
        conn.close()
    if not reached.covers(plan.until):
        raise RecoveryFailed(f"the replay stopped at {reached}, before the target {plan.until}")
    return reached


def _runner(conn: Any) -> Any:
    def run(sql: str, args: tuple[Any, ...] | None = None) -> None:
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
        except Exception as exc:
            raise RecoveryFailed(f"the restored server refused {sql.split(' ', 3)[:3]}: {exc}") from exc
    return run


def _fetch(conn: Any, sql: str) -> Any:
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()[0]


def _slave_status(conn: Any) -> dict[str, Any]:
    with conn.cursor() as cur:
        cur.execute("SHOW SLAVE STATUS")
        row = cur.fetchone()
        if row is None:
            return {}
        return dict(zip([d[0] for d in cur.description], row, strict=True))
