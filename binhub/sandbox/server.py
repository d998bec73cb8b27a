"""The handle of one sandbox: make it, start and stop its ``mariadbd``, and talk to it.

:class:`Sandbox` is what ``binhub sandbox``, ``binhub demo``, the integration tests and the benches
hold. It ties the other modules of the package together: the spec and the state file
(``layout.py``), the datadir and the command line (``bootstrap.py``), the process (``process.py``);
what is left here is the lifecycle (create, start with port retries, stop, kill, destroy) and the
helpers for using a running server (connections, statements, the replication user, status).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pymysql  # type: ignore[import-untyped, unused-ignore]

from binhub.errors import SandboxError
from binhub.sandbox.binaries import find_server_binary, is_mariadb_at_least
from binhub.sandbox.bootstrap import MAX_ALLOWED_PACKET, install_datadir, server_command
from binhub.sandbox.layout import (
    STATE_FILE_NAME,
    STATE_VERSION,
    SandboxSpec,
    default_base_dir,
    read_state,
    socket_path,
    write_state,
)
from binhub.sandbox.process import (
    PortInUse,
    accepts_connections,
    file_size,
    forget_child,
    free_port,
    port_is_free,
    process_alive,
    spawn_server,
    tail,
)

__all__ = ["Sandbox"]

log = logging.getLogger("binhub.sandbox")


class Sandbox:
    """One throwaway ``mariadbd``. Build it with :meth:`create` (new or existing) or :meth:`open`."""

    def __init__(self, spec: SandboxSpec) -> None:
        self.spec = spec
        self._port: int | None = spec.port
        self._pid: int | None = None
        self._repl_user = "repl"
        self._repl_password = secrets.token_hex(12)
        self._users_ready = False
        self._socket = socket_path(self.sandbox_dir)
        self.die_with_parent = False

    # --- construction and state -----------------------------------------------------------------

    @classmethod
    def create(cls, spec: SandboxSpec) -> Sandbox:
        """Create the datadir (``mariadb-install-db``) unless it exists; idempotent.

        An existing sandbox of the same name keeps its data, port and passwords; the spec's other
        settings (server id, extra args, ...) replace the saved ones for the next start.
        """
        sb = cls(spec)
        sb.sandbox_dir.mkdir(parents=True, exist_ok=True)
        saved = read_state(sb.state_file)
        if saved is not None:
            sb._load_state(saved, keep_spec=True)
        if not (sb.datadir / "mysql").is_dir():
            install_datadir(sb.datadir, sb.tmpdir)
        sb._save_state()
        return sb

    @classmethod
    def open(cls, name: str = "default", base_dir: Path | None = None) -> Sandbox:
        """The existing sandbox ``name`` as saved by the process that created it."""
        spec = SandboxSpec(name=name, base_dir=base_dir if base_dir is not None else default_base_dir())
        sb = cls(spec)
        saved = read_state(sb.state_file)
        if saved is None:
            raise SandboxError(f"no sandbox named {name!r} in {spec.base_dir}",
                               hint=f"create it with: binhub sandbox start --name {name}")
        sb._load_state(saved, keep_spec=False)
        return sb

    @classmethod
    def exists(cls, name: str = "default", base_dir: Path | None = None) -> bool:
        base = base_dir if base_dir is not None else default_base_dir()
        return (Path(base).expanduser() / name / STATE_FILE_NAME).is_file()

    def _load_state(self, data: dict[str, Any], *, keep_spec: bool) -> None:
        if not keep_spec:
            self.spec.server_id = int(data.get("server_id", self.spec.server_id))
            self.spec.log_bin = str(data.get("log_bin", self.spec.log_bin))
            self.spec.binlog_format = str(data.get("binlog_format", self.spec.binlog_format))
            self.spec.extra_args = [str(a) for a in data.get("extra_args", self.spec.extra_args)]
            self.spec.gtid_domain_id = int(data.get("gtid_domain_id", self.spec.gtid_domain_id))
            self.spec.port = data.get("requested_port")
        # The port it last ran on (and still runs on, if it does); start() honours spec.port.
        if data.get("port") is not None:
            self._port = int(data["port"])
        pid = data.get("pid")
        self._pid = int(pid) if pid is not None else None
        self._repl_user = str(data.get("repl_user", self._repl_user))
        self._repl_password = str(data.get("repl_password", self._repl_password))
        self._users_ready = bool(data.get("users_ready", False))
        if data.get("socket"):
            self._socket = Path(data["socket"])

    def _save_state(self) -> None:
        write_state(self.state_file, {
            "version": STATE_VERSION,
            "name": self.spec.name,
            "port": self._port,
            "requested_port": self.spec.port,
            "pid": self._pid,
            "socket": str(self._socket),
            "datadir": str(self.datadir),
            "server_id": self.spec.server_id,
            "log_bin": self.spec.log_bin,
            "binlog_format": self.spec.binlog_format,
            "extra_args": self.spec.extra_args,
            "gtid_domain_id": self.spec.gtid_domain_id,
            "repl_user": self._repl_user,
            "repl_password": self._repl_password,
            "users_ready": self._users_ready,
        })

    # --- where things are -----------------------------------------------------------------------

    @property
    def tmpdir(self) -> Path:
        """The server's own temp dir: a starting mariadbd deletes ``#sql*`` files in its tmpdir, which
        in a shared /tmp are other servers' live temporary tables (a bootstrap then fails)."""
        return self.sandbox_dir / "tmp"

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def sandbox_dir(self) -> Path:
        return self.spec.base_dir / self.spec.name

    @property
    def state_file(self) -> Path:
        return self.sandbox_dir / STATE_FILE_NAME

    @property
    def datadir(self) -> Path:
        return self.sandbox_dir / "data"

    @property
    def binlog_dir(self) -> Path:
        # log_bin is a relative base name, so the server writes the binlogs into the datadir.
        return self.datadir

    @property
    def error_log(self) -> Path:
        return self.datadir / "error.log"

    @property
    def socket(self) -> Path:
        return self._socket

    @property
    def port(self) -> int:
        if self._port is None:
            raise SandboxError(f"sandbox {self.name!r} has no port yet", hint="start it first")
        return self._port

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs, else None."""
        return self._pid if self.is_running() else None

    @property
    def repl_user(self) -> str:
        return self._repl_user

    @property
    def repl_password(self) -> str:
        return self._repl_password

    @property
    def dsn(self) -> str:
        """DSN of the replication user, for ``binhub relay --source``."""
        return f"mysql://{self._repl_user}:{self._repl_password}@127.0.0.1:{self.port}"

    @property
    def root_dsn(self) -> str:
        return f"mysql://root@127.0.0.1:{self.port}"

    # --- lifecycle ------------------------------------------------------------------------------

    def is_running(self) -> bool:
        return self._pid is not None and process_alive(self._pid, self.datadir)

    def server_args(self, server: Path, port: int) -> list[str]:
        """The full ``mariadbd`` command line for ``port``."""
        return server_command(server, self.spec, datadir=self.datadir, tmpdir=self.tmpdir, port=port,
                              socket=self._socket, error_log=self.error_log)

    def start(self, timeout: float = 30.0, *, die_with_parent: bool | None = None) -> None:
        """Start the server and wait until it accepts connections; no-op when already running.

        ``die_with_parent`` (Linux; default: the ``die_with_parent`` attribute, False) has the kernel
        kill the server when the calling process dies; test fixtures set it so that a test run killed
        with SIGKILL leaves no orphan servers. The server outlives the process otherwise, as
        ``binhub sandbox start`` needs.
        """
        if self.is_running():
            return
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        if die_with_parent is None:
            die_with_parent = self.die_with_parent
        # PDEATHSIG fires when the *thread* that forked exits: from a short-lived worker thread it
        # would kill a server the tests still use, so it only applies from the main thread.
        die_with_parent = (die_with_parent and sys.platform == "linux"
                           and threading.current_thread() is threading.main_thread())
        if not (self.datadir / "mysql").is_dir():
            install_datadir(self.datadir, self.tmpdir)
        server = find_server_binary()
        # A port we chose ourselves can be taken between choosing and binding: then choose again.
        attempts = 1 if self.spec.port is not None else 3
        for attempt in range(attempts):
            if self.spec.port is not None:
                port = self.spec.port
            elif self._port is not None and attempt == 0 and port_is_free(self._port):
                port = self._port  # keep the DSN stable across restarts
            else:
                port = free_port()
            try:
                self._start_once(server, port, timeout, die_with_parent)
                break
            except PortInUse as exc:
                if attempt + 1 == attempts:
                    raise exc.error from None
                log.info("port %d was taken before mariadbd could bind it; trying another", port)
        if not self._users_ready:
            self._bootstrap_users()

    def _start_once(self, server: Path, port: int, timeout: float, die_with_parent: bool) -> None:
        self._socket.parent.mkdir(parents=True, exist_ok=True)
        log_offset = file_size(self.error_log)
        out_path = self.sandbox_dir / "mariadbd.out"
        cmd = self.server_args(server, port)
        log.info("starting sandbox %s on 127.0.0.1:%d", self.name, port)
        proc = spawn_server(cmd, out_path, die_with_parent=die_with_parent)
        self._port, self._pid = port, proc.pid
        self._save_state()

        deadline = time.monotonic() + timeout
        while True:
            code = proc.poll()
            if code is not None:
                forget_child(proc.pid)
                self._pid = None
                self._save_state()
                raise self._start_failure(f"mariadbd exited with code {code}", log_offset, out_path, port)
            if accepts_connections(self._socket, port):
                return
            if time.monotonic() >= deadline:
                self._signal(signal.SIGKILL)
                self._wait_exit(10.0)
                self._pid = None
                self._save_state()
                raise self._start_failure(f"mariadbd did not accept connections within {timeout:g}s",
                                          log_offset, out_path, port)
            time.sleep(0.1)

    def _start_failure(self, what: str, log_offset: int, out_path: Path, port: int) -> Exception:
        last = tail(self.error_log, log_offset) or tail(out_path)
        message = f"sandbox {self.name!r} did not start on port {port}: {what}"
        if last:
            message += f"; last lines of {self.error_log}:\n{last}"
        hint = f"see {self.error_log}"
        error = SandboxError(message, hint=hint)
        if "Address already in use" in last or "Do you already have another" in last:
            error = SandboxError(message, hint=f"port {port} is in use; choose another with --port")
            return PortInUse(error)
        return error

    def _bootstrap_users(self) -> None:
        self.create_replication_user(self._repl_user, self._repl_password)
        self._users_ready = True
        self._save_state()

    def stop(self, timeout: float = 30.0) -> None:
        """Shut the server down cleanly (SIGTERM, then wait); no-op when it is not running.

        A server still running after ``timeout`` is killed (crash recovery on the next start keeps
        its data), with a warning: teardown must never leave a server behind.
        """
        if not self.is_running():
            self._forget_pid()
            return
        log.info("stopping sandbox %s", self.name)
        self._signal(signal.SIGTERM)
        if not self._wait_exit(timeout):
            log.warning("sandbox %s did not shut down within %gs; killing it", self.name, timeout)
            self._signal(signal.SIGKILL)
            self._wait_exit(10.0)
        self._forget_pid()

    def kill(self) -> None:
        """``kill -9`` the server, as a crash would; waits until it is gone."""
        if self.is_running():
            log.info("killing sandbox %s", self.name)
            self._signal(signal.SIGKILL)
            if not self._wait_exit(10.0):
                raise SandboxError(f"sandbox {self.name!r} (pid {self._pid}) survived SIGKILL")
        self._forget_pid()

    def restart(self, timeout: float = 30.0) -> None:
        self.stop(timeout)
        self.start(timeout)

    def destroy(self) -> None:
        """Stop the server and remove the whole sandbox (datadir, state, socket)."""
        try:
            self.stop()
        finally:
            if self.is_running():
                self.kill()
            shutil.rmtree(self.sandbox_dir, ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                self._socket.unlink()

    def _signal(self, sig: int) -> None:
        if self._pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, sig)

    def _wait_exit(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.is_running():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def _forget_pid(self) -> None:
        if self._pid is not None:
            forget_child(self._pid)
            self._pid = None
            if self.state_file.exists():
                self._save_state()

    # --- using it -------------------------------------------------------------------------------

    def connect(self, user: str = "root", database: str | None = None, *,
                password: str | None = None, **kwargs: Any) -> pymysql.connections.Connection:
        """A PyMySQL connection over TCP, autocommit on, ``max_allowed_packet`` 64M.

        ``password`` defaults to root's (empty) or the replication user's saved one.
        """
        if password is None:
            password = self._repl_password if user == self._repl_user else ""
        params: dict[str, Any] = {
            "host": "127.0.0.1", "port": self.port, "user": user, "password": password,
            "database": database, "autocommit": True, "charset": "utf8mb4",
            # PyMySQL's default client limit is 16M; the workloads send single rows above that.
            "max_allowed_packet": MAX_ALLOWED_PACKET, "connect_timeout": 10,
        }
        params.update(kwargs)
        return pymysql.connect(**params)

    def query(self, statement: str) -> list[tuple[Any, ...]]:
        """Run one statement as root on a connection of its own; its rows (empty for non-queries)."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
                return list(cur.fetchall())
        finally:
            conn.close()

    def execute(self, *statements: str) -> None:
        """Run statements as root, in order, on one connection of their own."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
        finally:
            conn.close()

    def create_replication_user(self, user: str = "repl", password: str | None = None) -> str:
        """Create (or reset) ``user``@'%' with what a binlog reader needs; returns its password."""
        if password is None:
            password = self._repl_password if user == self._repl_user else secrets.token_hex(12)
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT VERSION()")
                version = str(cur.fetchone()[0])
                # MariaDB 10.5 split SHOW BINARY LOGS / SHOW MASTER STATUS out of REPLICATION
                # CLIENT into BINLOG MONITOR; older servers and MySQL keep REPLICATION CLIENT.
                monitor = "BINLOG MONITOR" if is_mariadb_at_least(version, (10, 5)) else "REPLICATION CLIENT"
                cur.execute("CREATE OR REPLACE USER %s@'%%' IDENTIFIED BY %s", (user, password))
                cur.execute(f"GRANT REPLICATION SLAVE, {monitor} ON *.* TO %s@'%%'", (user,))
        finally:
            conn.close()
        if user == self._repl_user:
            self._repl_password = password
            self._save_state()
        return password

    def binlog_files(self) -> list[Path]:
        """The binlog files in the server's own ``.index``, oldest first."""
        index = self.binlog_dir / f"{self.spec.log_bin}.index"
        try:
            lines = index.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        # Entries are relative to the datadir ("./mysql-bin.000001") unless log_bin was absolute.
        return [Path(os.path.normpath(self.datadir / line)) for line in lines if line.strip()]

    def status(self) -> dict[str, Any]:
        running = self.is_running()
        info: dict[str, Any] = {
            "name": self.name,
            "running": running,
            "pid": self._pid if running else None,
            "port": self._port,
            "socket": str(self._socket),
            "datadir": str(self.datadir),
            "binlog_dir": str(self.binlog_dir),
            "error_log": str(self.error_log),
            "server_id": self.spec.server_id,
            "gtid_domain_id": self.spec.gtid_domain_id,
            "binlog_files": [p.name for p in self.binlog_files()],
        }
        if self._port is not None:
            info["dsn"] = self.dsn
            info["root_dsn"] = self.root_dsn
        if running:
            try:
                conn = self.connect()
                try:
                    with conn.cursor() as cur:
                        cur.execute("SELECT VERSION(), @@gtid_binlog_pos")
                        version, gtid = cur.fetchone()
                finally:
                    conn.close()
                info["version"] = version
                info["gtid_binlog_pos"] = gtid
            except pymysql.err.MySQLError as exc:
                info["error"] = f"running but not answering: {exc}"
        return info

    def __repr__(self) -> str:
        return f"Sandbox(name={self.name!r}, port={self._port}, datadir={str(self.datadir)!r})"
