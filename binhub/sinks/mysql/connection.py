"""One connection to the downstream server, in the session the MySQL sink's statements assume.

Rows run with :data:`~binhub.sinks.mysql.sql.SESSION_SETTINGS` (UTC, no strict mode, zero kept in
AUTO_INCREMENT columns) and ``foreign_key_checks = 0`` (the primary already checked them, and a
child row may arrive in an order the downstream's constraints would refuse mid-transaction).
``CLIENT_FOUND_ROWS`` makes an UPDATE count the rows it matched, not the ones it changed, so a
missing row is told apart from an update that leaves a row as it was. ``CLIENT_MULTI_STATEMENTS``
lets a worker send many statements in one round trip (:meth:`Downstream.execute_batch`): a replica's
SQL thread applies row events inside the server, binhub pays a network round trip per packet.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import ssl
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pymysql  # type: ignore[import-untyped, unused-ignore]
from pymysql.constants import CLIENT  # type: ignore[import-untyped, unused-ignore]

from binhub.errors import DownstreamUnavailable
from binhub.sinks.mysql.dsn import MysqlTarget
from binhub.sinks.mysql.sql import SESSION_SETTINGS
from binhub.wire.errors import ErrorCode

__all__ = ["DUPLICATE_KEY", "LOST", "RETRY_TRANSACTION", "Downstream", "error_code", "is_lost"]

log = logging.getLogger(__name__)

T = TypeVar("T")

LOST = frozenset({1053, 1927, 2003, 2006, 2013, 2055, 4031})  # shutdown, killed, gone away, lost
RETRY_TRANSACTION = frozenset({ErrorCode.LOCK_WAIT_TIMEOUT, ErrorCode.LOCK_DEADLOCK})  # the whole transaction again
DUPLICATE_KEY = frozenset({1062, 1586})
_CLIENT_PACKET_LIMIT = 1 << 30


@functools.cache
def _preferred_tls() -> ssl.SSLContext:
    """The context of every downstream connection: TLS when the server offers it, unverified (no CA
    is configured), as PyMySQL does unasked. PyMySQL would make one per connection and load the
    system's CA store into it, which it never reads (17 ms of CPU a connection, a sink opening
    one per worker)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def error_code(exc: BaseException) -> int:
    """The server's error number of a PyMySQL error (0 for a connection that is already closed)."""
    if isinstance(exc, pymysql.err.MySQLError) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return 0


def is_lost(exc: BaseException) -> bool:
    return isinstance(exc, pymysql.err.InterfaceError | ConnectionError) or (
        isinstance(exc, pymysql.err.OperationalError) and error_code(exc) in LOST)


class Downstream:
    """A PyMySQL connection (autocommit off) with the sink's session, reconnected on demand."""

    def __init__(self, target: MysqlTarget, *, connect_timeout: float = 10.0, label: str = "") -> None:
        self.target = target
        self.connect_timeout = connect_timeout
        self.label = label
        self._conn: Any = None
        self.max_allowed_packet = 4 << 20
        self.flavour = "mysql"

    def connect(self) -> None:
        self.close()
        try:
            conn = pymysql.connect(host=self.target.host, port=self.target.port, user=self.target.user,
                                   password=self.target.password, charset="utf8mb4", autocommit=False,
                                   connect_timeout=self.connect_timeout, client_flag=CLIENT.FOUND_ROWS | CLIENT.MULTI_STATEMENTS,
                                   max_allowed_packet=_CLIENT_PACKET_LIMIT, ssl_disabled=True, defer_connect=True)
            conn.ssl, conn.ctx = True, _preferred_tls()  # TLS when the server offers it, on one context
            conn.connect()
        except pymysql.err.MySQLError as exc:
            raise DownstreamUnavailable(f"cannot connect to the downstream {self.target}: {exc}",
                                        hint="check that it runs and that the user may connect") from exc
        self._conn = conn
        with conn.cursor() as cur:
            cur.execute(SESSION_SETTINGS + ", foreign_key_checks = 0")
            cur.execute("SELECT @@max_allowed_packet, VERSION()")
            packet, version = cur.fetchone()
        self.max_allowed_packet = int(packet)
        self.flavour = "mariadb" if "mariadb" in str(version).lower() else "mysql"

    @property
    def connected(self) -> bool:
        return self._conn is not None

    def execute(self, sql: str) -> int:
        """Run one statement; the rows it matched (UPDATE), affected (INSERT, DELETE) or returned."""
        if self._conn is None:
            self.connect()
        conn = self._conn
        conn.query(sql)
        return int(conn.affected_rows())

    def execute_batch(self, statements: Sequence[str]) -> tuple[list[int], pymysql.err.MySQLError | None]:
        """Run statements in one round trip: the rows each matched (as :meth:`execute` counts them),
        and the error of the first one that failed (the server runs none after it), else None. A
        lost connection raises."""
        if self._conn is None:
            self.connect()
        conn = self._conn
        counts: list[int] = []
        try:
            conn.query(";\n".join(statements))
            counts.append(int(conn.affected_rows()))
            while conn._result is not None and conn._result.has_next:
                counts.append(int(conn.next_result()))
        except pymysql.err.MySQLError as exc:
            if is_lost(exc):
                raise
            return counts, exc
        return counts, None

    def fetch(self, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
        if self._conn is None:
            self.connect()
        with self._conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())

    def commit(self) -> None:
        self._conn.commit()

    def rollback(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(pymysql.err.MySQLError, OSError):
                self._conn.rollback()

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def retrying(self, work: Callable[[], T], give_up_after: float) -> T:
        """``work()``, run again on a new connection if the downstream went away (only for work that
        is safe to repeat: reads, an idempotent upsert in a transaction of its own)."""
        try:
            return work()
        except pymysql.err.MySQLError as exc:
            if not is_lost(exc):
                raise
            log.warning("lost the downstream %s (%s); reconnecting", self.target, exc)
        self.reconnect(give_up_after)
        return work()

    def reconnect(self, give_up_after: float, stopping: Any = None) -> None:
        """Connect again, backing off up to ``give_up_after`` seconds (the downstream restarting)."""
        self.close()
        deadline = time.monotonic() + give_up_after
        delay = 0.2
        while True:
            try:
                self.connect()
                return
            except DownstreamUnavailable:
                if time.monotonic() + delay > deadline or (stopping is not None and stopping()):
                    raise
                log.warning("the downstream %s is unreachable%s; retrying in %.1f s", self.target,
                            f" ({self.label})" if self.label else "", delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
