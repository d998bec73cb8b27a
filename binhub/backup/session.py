"""The SQL side of a physical backup: server facts, BACKUP STAGE, the binlog position and the LSN.

One :class:`ServerSession` per thread that talks to the server (PyMySQL connections are not shared
between threads): the coordinator holds the backup locks, the redo copier asks for the current LSN.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import pymysql  # type: ignore[import-untyped, unused-ignore]
from pymysql.constants import COMMAND  # type: ignore[import-untyped, unused-ignore]

from binhub.backup.config import ServerAddress
from binhub.errors import BackupError, BinhubError, ConnectionFailed, UpstreamError

# What the backup reads once at the start (get_mysql_vars() in mariadb-backup's backup_mysql.cc).
VARIABLES = (
    "version", "version_comment", "datadir", "innodb_page_size", "innodb_log_file_size",
    "innodb_data_file_path", "innodb_data_home_dir", "innodb_log_group_home_dir", "innodb_undo_directory",
    "innodb_undo_tablespaces", "innodb_checksum_algorithm", "innodb_compression_level", "innodb_encrypt_log",
    "log_bin", "server_id",
)
STAGES = ("START", "FLUSH", "BLOCK_DDL", "BLOCK_COMMIT", "END")
LOST_HINT = "did the server stop or restart? see its error log"  # the backup or the load is then cut short
READ_BYTES = 1 << 20  # what one read of a result's row packets asks the socket for
LOCAL_INFILE_REQUEST = 0xFB  # the server's answer to LOAD DATA LOCAL: send the file
LOCAL_PACKET_BYTES = 1 << 16  # the file is sent in packets of this size (far below any max_allowed_packet)


@dataclass(frozen=True, slots=True)
class BinlogPosition:
    """Where the server's binlog stood at the consistent point (BACKUP STAGE BLOCK_COMMIT)."""

    file: str
    position: int
    gtid: str  # @@gtid_binlog_pos: the GTID of every domain's last change in the binlog


class ServerSession:
    """A connection to the server being backed up, with the statements a backup needs."""

    def __init__(self, address: ServerAddress, *, lock_wait_timeout: int = 60,
                 connect_options: dict[str, Any] | None = None) -> None:
        self.address = address
        self.lock_wait_timeout = int(lock_wait_timeout)
        try:
            self._conn = pymysql.connect(
                host=address.host, port=address.port, user=address.user, password=address.password,
                unix_socket=str(address.unix_socket) if address.unix_socket else None,
                autocommit=True, connect_timeout=10, charset="utf8mb4", **(connect_options or {}),
            )
        except pymysql.err.OperationalError as exc:
            code = exc.args[0] if exc.args else 0
            if code in (1044, 1045):
                raise UpstreamError(code, "28000", str(exc.args[1]) if len(exc.args) > 1 else str(exc),
                                    hint="the backup user needs RELOAD, PROCESS and BINLOG MONITOR") from exc
            raise ConnectionFailed(f"cannot connect to {address}: {exc}") from exc
        self.execute(f"SET SESSION lock_wait_timeout = {self.lock_wait_timeout}")

    def __enter__(self) -> ServerSession:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.close()

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        try:
            with self._conn.cursor() as cur:
                cur.execute(sql)
                return list(cur.fetchall())
        except pymysql.err.MySQLError as exc:
            raise self._error(sql, exc) from exc

    def execute(self, sql: str | bytes) -> None:
        try:
            with self._conn.cursor() as cur:
                cur.execute(sql)
        except pymysql.err.MySQLError as exc:
            raise self._error(sql if isinstance(sql, str) else sql[:200].decode(errors="replace") + "...", exc) from exc

    def stream(self, sql: str, batch: int = 1000) -> Iterator[list[tuple[Any, ...]]]:
        """The rows of ``sql`` in batches, read as they arrive (unbuffered: a big table needs no memory)."""
        try:
            with self._conn.cursor(pymysql.cursors.SSCursor) as cur:
                cur.execute(sql)
                while rows := cur.fetchmany(batch):
                    yield list(rows)
        except pymysql.err.MySQLError as exc:
            raise self._error(sql, exc) from exc

    # The two raw paths below drive PyMySQL's packet layer directly (its cursors would make a Python
    # object of every value, or need a file on disk): the logical dump's rows and the restore's LOAD DATA.

    def query_packets(self, sql: str) -> tuple[int, Callable[[], bytes]]:
        """Send ``sql`` (a SELECT) and read its column definitions: the number of fields of its rows and
        a function that returns the next bytes of the row packets as they arrive, up to and with the
        EOF packet (never b'': a lost connection raises). The caller reads them all before the session
        is used again."""
        conn = self._conn
        try:
            conn._execute_command(COMMAND.COM_QUERY, sql)
            fields = conn._read_packet().read_length_encoded_integer()
            for _ in range(fields + 1):  # the column definitions and their EOF (no CLIENT_DEPRECATE_EOF)
                conn._read_packet()
        except pymysql.err.MySQLError as exc:
            raise self._error(sql, exc) from exc

        def read() -> bytes:
            try:
                data: bytes = conn._rfile.read1(READ_BYTES)
            except OSError as exc:
                raise ConnectionFailed(f"lost the connection to {self.address} during {sql!r}: {exc}",
                                       hint=LOST_HINT) from exc
            if not data:
                raise ConnectionFailed(f"lost the connection to {self.address} during {sql!r}", hint=LOST_HINT)
            return data

        return int(fields), read

    def load_local(self, sql: bytes, data: bytes | memoryview) -> int:
        """Run ``LOAD DATA LOCAL INFILE`` ``sql`` with ``data`` as the file's content, streamed from
        memory; returns the number of warnings. The session must be opened with ``local_infile``."""
        conn = self._conn
        text = sql[:200].decode(errors="replace")
        try:
            conn._execute_command(COMMAND.COM_QUERY, sql)
            request = conn._read_packet()
            if request.get_bytes(0, 1)[0] != LOCAL_INFILE_REQUEST:
                raise BackupError(f"the server did not ask for the data of {text!r}")
            for start in range(0, len(data), LOCAL_PACKET_BYTES):
                conn.write_packet(data[start:start + LOCAL_PACKET_BYTES])
            conn.write_packet(b"")  # the end of the file
            return int(pymysql.connections.OKPacketWrapper(conn._read_packet()).warning_count)
        except pymysql.err.MySQLError as exc:
            raise self._error(text, exc) from exc

    def _error(self, sql: str, exc: Exception) -> Exception:
        if isinstance(exc, pymysql.err.InterfaceError):  # the connection was already gone (PyMySQL closed it)
            return ConnectionFailed(f"lost the connection to {self.address} before {sql!r}", hint=LOST_HINT)
        if isinstance(exc, pymysql.err.OperationalError) and exc.args and exc.args[0] in (2006, 2013):
            return ConnectionFailed(f"lost the connection to {self.address} during {sql!r}: {exc}", hint=LOST_HINT)
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
        message = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
        return UpstreamError(code, "HY000", f"{message} (during {sql!r})")

    # --- facts -----------------------------------------------------------------------------------------

    def variables(self) -> dict[str, str]:
        names = ", ".join(f"'{name}'" for name in VARIABLES)
        rows = self.query(f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({names})")
        return {str(name).lower(): "" if value is None else str(value) for name, value in rows}

    def current_lsn(self) -> int:
        """``Innodb_lsn_current``: the LSN of the newest mini-transaction (in memory, maybe not yet written)."""
        rows = self.query("SHOW GLOBAL STATUS LIKE 'Innodb_lsn_current'")
        if not rows:
            raise BackupError("the server does not report Innodb_lsn_current; is InnoDB enabled?")
        return int(rows[0][1])

    def tablespace_flags(self) -> dict[str, int]:
        """InnoDB's own flags of every tablespace by name (``db/table``), for files whose page 0 is not on disk yet."""
        rows = self.query("SELECT NAME, FLAG FROM information_schema.INNODB_SYS_TABLESPACES")
        return {str(name): int(flag) for name, flag in rows}

    def binlog_position(self) -> BinlogPosition | None:
        """The binlog file:pos and GTID position, or None when the binlog is off."""
        rows = self.query("SHOW MASTER STATUS")
        if not rows:
            return None
        gtid = self.query("SELECT @@GLOBAL.gtid_binlog_pos")[0][0]
        return BinlogPosition(str(rows[0][0]), int(rows[0][1]), str(gtid or ""))

    # --- locks -----------------------------------------------------------------------------------------

    def backup_stage(self, stage: str) -> None:
        if stage not in STAGES:
            raise ValueError(f"unknown BACKUP STAGE {stage}")
        try:
            self.execute(f"BACKUP STAGE {stage}")
        except UpstreamError as exc:
            if exc.code == 1205:  # ER_LOCK_WAIT_TIMEOUT
                blockers = "; ".join(self._running_ddl()) or "none running now"
                raise BackupError(f"BACKUP STAGE {stage} waited {self.lock_wait_timeout}s (--lock-wait-timeout) "
                                  f"for running DDL or commits; DDL on the server: {blockers}",
                                  hint="retry when no long ALTER TABLE runs, or raise --lock-wait-timeout") from exc
            raise

    def _running_ddl(self) -> list[str]:
        """The DDL statements running on the server (what a backup lock waits for), as
        ``thread N (T s): statement``, so that a DBA sees what to wait for or kill."""
        with contextlib.suppress(BinhubError):  # a report only: the timeout is the error
            rows = self.query(
                "SELECT ID, TIME, LEFT(INFO, 120) FROM information_schema.PROCESSLIST "
                "WHERE ID <> CONNECTION_ID() AND COMMAND = 'Query' AND INFO REGEXP "
                "'^[[:space:]]*(ALTER|CREATE|DROP|RENAME|TRUNCATE|OPTIMIZE|REPAIR|ANALYZE)[[:space:]]' ORDER BY TIME DESC")
            return [f"thread {thread} ({seconds}s): {info}" for thread, seconds, info in rows]
        return []

    def flush_engine_logs(self) -> None:
        """Make InnoDB's redo and Aria's log durable up to now (what mariadb-backup runs under BLOCK_COMMIT)."""
        self.execute("FLUSH NO_WRITE_TO_BINLOG ENGINE LOGS")
