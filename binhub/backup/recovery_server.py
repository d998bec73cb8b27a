"""A throwaway ``mariadbd`` on a restored datadir: InnoDB crash recovery applies the copied redo.

A physical backup is a crash image: pages copied at different moments plus the redo log from a
checkpoint older than all of them to the consistent point. A ``mariadbd`` started on it does what
``mariadb-backup --prepare`` does (apply the redo) and what the first real start would do anyway
(roll back what had not committed, purge). Shut down slowly (``innodb_fast_shutdown=0``), it leaves
a datadir whose redo log holds nothing to apply.

The server is isolated: ``--no-defaults`` (nothing from /etc/mysql), ``--skip-networking`` (no TCP
listener; replication *out* to a binlog server still works), its own unix socket and temp dir in a
scratch directory, ``--skip-grant-tables`` (the restored users and their passwords are the
source's, unknown here; with no network only this process can connect), ``--skip-slave-start``,
no binlog, no fsync per commit and no doublewrite, and the server's own prepared transactions
rolled back (see :meth:`RecoveryServer.command`). The InnoDB
settings that decide the files' format come from the backup's ``backup-my.cnf``.
"""

from __future__ import annotations

import configparser
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import pymysql  # type: ignore[import-untyped, unused-ignore]

from binhub.errors import RecoveryFailed

log = logging.getLogger("binhub.restore")

DEFAULT_START_TIMEOUT = 1800.0  # crash recovery of a large redo log can take a while
DEFAULT_STOP_TIMEOUT = 1800.0  # a slow shutdown purges everything first
LOG_TAIL_LINES = 20


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # PR_SET_PDEATHSIG: a restore killed with kill -9 must not leave its server running on the
    # target, where the next restore would wipe the files under it.
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


@dataclass(frozen=True, slots=True)
class ServerOwner:
    """Whom the restored files belong to (and the throwaway server runs as, when we are root)."""

    uid: int
    gid: int
    name: str


def innodb_settings(backup_my_cnf: Path) -> list[str]:
    """``--name=value`` for each setting of ``backup-my.cnf``'s [mysqld] section (the files' format)."""
    if not backup_my_cnf.is_file():
        return []
    parser = configparser.ConfigParser(allow_no_value=True, interpolation=None, strict=False)
    parser.read(backup_my_cnf)
    if not parser.has_section("mysqld"):
        return []
    return [f"--{name}={value}" if value is not None else f"--{name}" for name, value in parser.items("mysqld")]


@dataclass
class RecoveryServer:
    """``with RecoveryServer(...) as server:`` starts ``mariadbd`` on ``datadir`` and waits for it;
    :meth:`shutdown` stops it slowly (leaving the ``with`` without it kills it: the datadir is then
    a crash image again, as before, and the caller reports the failure)."""

    mariadbd: Path
    datadir: Path
    settings: list[str] = field(default_factory=list)  # --name=value, e.g. from backup-my.cnf
    owner: ServerOwner | None = None
    server_id: int = 1
    start_timeout: float = DEFAULT_START_TIMEOUT
    stop_timeout: float = DEFAULT_STOP_TIMEOUT
    _scratch: Path | None = None
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        assert self._scratch is not None, "not started"
        return self._scratch / "mysqld.sock"

    @property
    def error_log(self) -> Path:
        assert self._scratch is not None, "not started"
        return self._scratch / "error.log"

    def command(self) -> list[str]:
        assert self._scratch is not None
        args = [str(self.mariadbd), "--no-defaults"]
        if os.geteuid() == 0:
            args.append(f"--user={self.owner.name if self.owner else 'root'}")
        return [
            *args,
            f"--datadir={self.datadir}",
            f"--socket={self.socket}",
            f"--pid-file={self._scratch / 'mysqld.pid'}",
            f"--tmpdir={self._scratch}",
            f"--log-error={self.error_log}",
            f"--server-id={self.server_id}",
            "--skip-networking",
            "--skip-grant-tables",
            "--skip-slave-start",
            "--innodb-fast-shutdown=0",
            # No fsync per commit and no doublewrite while it recovers and replays (mariadb-backup
            # --prepare runs without doublewrite too): the slow shutdown writes and syncs every page,
            # and a crash before it ends leaves the restore marked unfinished, to be redone from the
            # backup, so nothing written here needs to survive one on its own.
            "--innodb-flush-log-at-trx-commit=2",
            "--innodb-doublewrite=0",
            # A transaction InnoDB holds prepared by the server's own two-phase commit (prepared, not
            # yet in the binlog) is not in the backup's binlog position: it is rolled back, as binlog
            # recovery would (a replay from that position brings it back). Without a binlog, mariadbd
            # would refuse to start on one ("Found 1 prepared transactions!"). With InnoDB the only
            # two-phase engine it goes on running after this; user XA transactions (not the server's
            # XIDs) stay prepared, for XA RECOVER.
            "--tc-heuristic-recover=ROLLBACK",
            *self.settings,
        ]

    # --- lifecycle ------------------------------------------------------------------------------------

    def __enter__(self) -> RecoveryServer:
        try:
            self.start()
        except BaseException:  # a start that fails or is interrupted (Ctrl-C) must not leave the server running:
            self.__exit__(None, None, None)  # it would write into the datadir the caller is emptying
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)

    def start(self) -> None:
        # A short path: a unix socket address holds 107 bytes.
        self._scratch = Path(tempfile.mkdtemp(prefix="binhub-recover-", dir="/tmp" if Path("/tmp").is_dir() else None))
        if self.owner is not None and os.geteuid() == 0:
            os.chown(self._scratch, self.owner.uid, self.owner.gid)
        log.info("starting mariadbd on %s to recover it", self.datadir)
        self._proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True,
                                      preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self._proc.poll() is not None:
                raise RecoveryFailed(f"mariadbd exited with code {self._proc.returncode} while recovering "
                                     f"{self.datadir}; its log:\n{self.log_tail()}")
            with contextlib.suppress(pymysql.err.MySQLError, OSError):
                self.connect().close()
                return
            if time.monotonic() > deadline:
                raise RecoveryFailed(f"mariadbd did not finish recovering {self.datadir} within "
                                     f"{self.start_timeout:g}s; its log:\n{self.log_tail()}")
            time.sleep(0.05)  # a small recovery is ready in about a second: poll briskly

    def connect(self, **kwargs: Any) -> Any:
        """A connection through the server's private socket (no grant tables: any user will do)."""
        return pymysql.connect(unix_socket=str(self.socket), user="root", autocommit=True, connect_timeout=5,
                               charset="utf8mb4", **kwargs)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return list(cur.fetchall())
        except pymysql.err.MySQLError as exc:
            raise RecoveryFailed(f"the recovery server refused {sql!r}: {exc}") from exc
        finally:
            conn.close()

    def shutdown(self) -> None:
        """A slow shutdown (purge, change buffer merge, a clean redo log); fails unless it completes."""
        assert self._proc is not None, "not started"
        self._proc.send_signal(signal.SIGTERM)
        try:
            code = self._proc.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            raise RecoveryFailed(f"mariadbd did not shut down within {self.stop_timeout:g}s after recovering "
                                 f"{self.datadir}; its log:\n{self.log_tail()}") from None
        if code != 0:
            raise RecoveryFailed(f"mariadbd exited with code {code} at shutdown; its log:\n{self.log_tail()}")

    def log_tail(self) -> str:
        try:
            lines = self.error_log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no error log)"
        return "\n".join(lines[-LOG_TAIL_LINES:])
