"""Throwaway local MariaDB servers ("sandboxes") for ``binhub demo``, the integration tests and the benches.

A sandbox is one ``mariadbd`` started with ``--no-defaults`` (the Debian package runs its own server on
3306 from ``/etc/mysql``; we must read none of that) on its own datadir, port and unix socket, bound
to 127.0.0.1, with the binary log on in ROW format. Root logs in without a password over TCP
(``--auth-root-authentication-method=normal``); that is acceptable only because the server listens
on the loopback interface and holds throwaway data.

On disk::

    BASE_DIR/<name>/sandbox.json   port, pid, socket, replication password: lets another process
                                   (``binhub sandbox status|stop``) find and control the server
    BASE_DIR/<name>/data/          the datadir; also holds the binlog files and error.log
    BASE_DIR/<name>/mysql.sock     the unix socket, or a short path in the temp dir when this one
                                   is too long for a socket address (107 bytes)

``BASE_DIR`` is ``$BINHUB_SANDBOX_DIR`` or ``~/.local/share/binhub/sandboxes``.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql  # type: ignore[import-untyped, unused-ignore]

from binhub.errors import SandboxError

__all__ = ["Sandbox", "SandboxSpec", "default_base_dir", "find_install_db_binary", "find_server_binary"]

log = logging.getLogger("binhub.sandbox")

SANDBOX_DIR_ENV = "BINHUB_SANDBOX_DIR"
INSTALL_HINT = "install it: apt-get install mariadb-server (Debian/Ubuntu)"
SERVER_NAMES = ("mariadbd", "mysqld")
INSTALL_DB_NAMES = ("mariadb-install-db", "mysql_install_db")
# Searched after $PATH: Debian and most distributions keep the server in sbin, which is not on a
# normal user's PATH; some (Fedora, SUSE) use libexec.
FALLBACK_DIRS: tuple[str, ...] = ("/usr/sbin", "/usr/libexec", "/usr/local/sbin", "/usr/local/libexec",
                                  "/usr/bin", "/usr/local/bin")
# sun_path is 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107
MAX_ALLOWED_PACKET = 64 * 1024 * 1024
# InnoDB sizes are passed to mariadb-install-db too, so the bootstrap creates the redo log at its
# final size instead of the 96M default that the first start would then have to resize.
INNODB_ARGS = ("--innodb-buffer-pool-size=64M", "--innodb-log-file-size=48M")
STATE_VERSION = 1
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_TAIL_LINES = 15

# Popen objects of servers this process started, by pid: polling them reaps the exited child, which
# would otherwise linger as a zombie that `kill(pid, 0)` still reports as alive.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def default_base_dir() -> Path:
    """``$BINHUB_SANDBOX_DIR`` or ``~/.local/share/binhub/sandboxes`` (never inside a checkout)."""
    env = os.environ.get(SANDBOX_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".local" / "share" / "binhub" / "sandboxes"


def _search_dirs(search_path: str | None) -> list[Path]:
    if search_path is not None:
        entries = search_path.split(os.pathsep)
    else:
        entries = os.environ.get("PATH", "").split(os.pathsep) + list(FALLBACK_DIRS)
    return [Path(e) for e in entries if e]


def _find_executable(names: tuple[str, ...], dirs: list[Path]) -> Path | None:
    # Names first, then directories: a mariadbd anywhere beats a mysqld earlier on the PATH
    # (mysqld may be Oracle MySQL, whose bootstrap is different).
    for name in names:
        for d in dirs:
            candidate = d / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return candidate
    return None


def find_server_binary(search_path: str | None = None) -> Path:
    """The ``mariadbd`` (or ``mysqld``) to run.

    Looks on ``search_path`` (``os.pathsep``-separated) when given, else on ``$PATH`` and then in the
    usual sbin/libexec directories. Raises :class:`SandboxError` with an install hint when absent.
    """
    found = _find_executable(SERVER_NAMES, _search_dirs(search_path))
    if found is None:
        raise SandboxError("mariadbd not found", hint=INSTALL_HINT)
    return found


def find_install_db_binary(server: Path | None = None, search_path: str | None = None) -> Path:
    """The ``mariadb-install-db`` that belongs with ``server`` (looked for beside it first)."""
    dirs = _search_dirs(search_path)
    if server is not None:
        # A tarball or source build keeps the script in bin/ or scripts/ next to the server's dir.
        base = server.resolve().parent
        dirs = [base, base.parent / "bin", base.parent / "scripts", *dirs]
    found = _find_executable(INSTALL_DB_NAMES, dirs)
    if found is None:
        raise SandboxError("mariadb-install-db not found", hint=INSTALL_HINT)
    return found


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the server may still lose a race for it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As mariadbd does: otherwise our own just-closed connections in TIME_WAIT would make the
        # port look taken right after a stop, and a restart would move to a new port.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _socket_path(sandbox_dir: Path) -> Path:
    preferred = sandbox_dir / "mysql.sock"
    if len(os.fsencode(str(preferred))) <= MAX_SOCKET_PATH:
        return preferred
    # Too long for sun_path: a short name in the temp dir, derived from the sandbox dir so it is
    # stable across restarts and distinct between sandboxes.
    digest = hashlib.sha256(os.fsencode(str(sandbox_dir))).hexdigest()[:16]
    for tmp in (Path(tempfile.gettempdir()), Path("/tmp")):
        short = tmp / f"binhub-{digest}.sock"
        if len(os.fsencode(str(short))) <= MAX_SOCKET_PATH:
            return short
    raise SandboxError(f"no unix socket path short enough for sandbox {sandbox_dir}",
                       hint="set TMPDIR to a short directory such as /tmp")


def _tail(path: Path, offset: int = 0, lines: int = _TAIL_LINES) -> str:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return ""
    text = data.decode("utf-8", "replace").rstrip("\n")
    return "\n".join(text.splitlines()[-lines:])


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    # tmp + fsync + rename: a reader in another process never sees half a state file.
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    # The password is in there: keep it to the owner.
    os.chmod(path, 0o600)


_HAS_PROC = Path("/proc/self/stat").exists()


def _process_alive(pid: int, datadir: Path) -> bool:
    """Whether ``pid`` is a live (not zombie) mariadbd serving ``datadir``."""
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is not None:
            del _CHILDREN[pid]
            return False
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists but belongs to someone else; /proc below decides whether it is ours
    if not _HAS_PROC:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return False
        # The pid in sandbox.json may have been reused by an unrelated process after a reboot.
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return os.fsencode(f"--datadir={datadir}") in args


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # PR_SET_PDEATHSIG: the kernel sends SIGKILL to the server when the process that started it
    # dies, so a test run killed with SIGKILL leaves no orphan servers behind.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)


@dataclass
class SandboxSpec:
    """What a sandbox looks like. ``port=None`` picks a free port (and keeps it across restarts)."""

    name: str = "default"
    port: int | None = None
    base_dir: Path = field(default_factory=default_base_dir)
    server_id: int = 1
    log_bin: str = "mysql-bin"
    binlog_format: str = "ROW"
    extra_args: list[str] = field(default_factory=list)
    gtid_domain_id: int = 0

    def __post_init__(self) -> None:
        # The name becomes a directory: refuse anything that could escape base_dir.
        if not _NAME_RE.match(self.name):
            raise SandboxError(f"invalid sandbox name {self.name!r}",
                               hint="use letters, digits, '.', '_' or '-' (at most 64)")
        if "/" in self.log_bin or not self.log_bin:
            raise SandboxError(f"invalid log_bin {self.log_bin!r}", hint="give a base name such as mysql-bin")
        self.base_dir = Path(self.base_dir).expanduser()


class Sandbox:
    """One throwaway ``mariadbd``. Build it with :meth:`create` (new or existing) or :meth:`open`."""

    def __init__(self, spec: SandboxSpec) -> None:
        self.spec = spec
        self._port: int | None = spec.port
        self._pid: int | None = None
        self._repl_user = "repl"
        self._repl_password = secrets.token_hex(12)
        self._users_ready = False
        self._socket = _socket_path(self.sandbox_dir)
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
        saved = sb._read_state()
        if saved is not None:
            sb._load_state(saved, keep_spec=True)
        if not (sb.datadir / "mysql").is_dir():
            sb._install_db()
        sb._save_state()
        return sb

    @classmethod
    def open(cls, name: str = "default", base_dir: Path | None = None) -> Sandbox:
        """The existing sandbox ``name`` as saved by the process that created it."""
        spec = SandboxSpec(name=name, base_dir=base_dir if base_dir is not None else default_base_dir())
        sb = cls(spec)
        saved = sb._read_state()
        if saved is None:
            raise SandboxError(f"no sandbox named {name!r} in {spec.base_dir}",
                               hint=f"create it with: binhub sandbox start --name {name}")
        sb._load_state(saved, keep_spec=False)
        return sb

    @classmethod
    def exists(cls, name: str = "default", base_dir: Path | None = None) -> bool:
        base = base_dir if base_dir is not None else default_base_dir()
        return (Path(base).expanduser() / name / "sandbox.json").is_file()

    def _read_state(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise SandboxError(f"cannot read sandbox state {self.state_file}: {exc}",
                               hint="remove the sandbox directory and start again") from exc
        if not isinstance(data, dict):
            raise SandboxError(f"cannot read sandbox state {self.state_file}: not a JSON object")
        return data

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
        _write_json_atomic(self.state_file, {
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

    def _install_db(self) -> None:
        server = find_server_binary()
        install_db = find_install_db_binary(server)
        if self.datadir.exists():
            # A datadir without the mysql schema is the leftover of a failed bootstrap.
            shutil.rmtree(self.datadir)
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        cmd = [str(install_db), "--no-defaults", f"--datadir={self.datadir}", f"--tmpdir={self.tmpdir}",
               "--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve",
               *INNODB_ARGS]
        log.info("creating sandbox datadir %s", self.datadir)
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=180, check=False)
        except subprocess.TimeoutExpired as exc:
            raise SandboxError(f"mariadb-install-db did not finish within 180s for {self.datadir}") from exc
        if proc.returncode != 0:
            out = (proc.stdout + proc.stderr).decode("utf-8", "replace").strip().splitlines()
            raise SandboxError(f"mariadb-install-db failed (exit {proc.returncode}) for {self.datadir}; "
                               "last lines:\n" + "\n".join(out[-_TAIL_LINES:]))

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
        return self.sandbox_dir / "sandbox.json"

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
        return self._pid is not None and _process_alive(self._pid, self.datadir)

    def server_args(self, server: Path, port: int) -> list[str]:
        """The full ``mariadbd`` command line for ``port``."""
        args = [str(server), "--no-defaults"]
        # --user=root is required when running as root (mariadbd refuses root otherwise) and
        # ignored with a warning when not, so only pass it as root.
        if os.geteuid() == 0:
            args.append("--user=root")
        args += [
            f"--datadir={self.datadir}",
            f"--tmpdir={self.tmpdir}",
            f"--port={port}",
            f"--socket={self._socket}",
            f"--pid-file={self.datadir / 'mariadbd.pid'}",
            "--bind-address=127.0.0.1",
            f"--log-bin={self.spec.log_bin}",
            f"--server-id={self.spec.server_id}",
            f"--binlog-format={self.spec.binlog_format}",
            f"--gtid-domain-id={self.spec.gtid_domain_id}",
            f"--max-allowed-packet={MAX_ALLOWED_PACKET}",
            *INNODB_ARGS,
            # Debian's packaged config makes utf8mb4 the default; without it (--no-defaults) the
            # server would fall back to latin1 and differ from the servers users actually run.
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
            "--skip-name-resolve",
            f"--log-error={self.error_log}",
            *self.spec.extra_args,
        ]
        return args

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
            self._install_db()
        server = find_server_binary()
        # A port we chose ourselves can be taken between choosing and binding: then choose again.
        attempts = 1 if self.spec.port is not None else 3
        for attempt in range(attempts):
            if self.spec.port is not None:
                port = self.spec.port
            elif self._port is not None and attempt == 0 and _port_is_free(self._port):
                port = self._port  # keep the DSN stable across restarts
            else:
                port = _free_port()
            try:
                self._start_once(server, port, timeout, die_with_parent)
                break
            except _PortInUse as exc:
                if attempt + 1 == attempts:
                    raise exc.error from None
                log.info("port %d was taken before mariadbd could bind it; trying another", port)
        if not self._users_ready:
            self._bootstrap_users()

    def _start_once(self, server: Path, port: int, timeout: float, die_with_parent: bool) -> None:
        self._socket.parent.mkdir(parents=True, exist_ok=True)
        log_offset = _file_size(self.error_log)
        out_path = self.sandbox_dir / "mariadbd.out"
        cmd = self.server_args(server, port)
        log.info("starting sandbox %s on 127.0.0.1:%d", self.name, port)
        with out_path.open("ab") as out:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, close_fds=True,
                # Its own session: Ctrl-C in the terminal that ran `binhub sandbox start` must not
                # reach the server, which outlives the command.
                start_new_session=True,
                preexec_fn=_die_with_parent if die_with_parent else None,
            )
        _CHILDREN[proc.pid] = proc
        self._port, self._pid = port, proc.pid
        self._save_state()

        deadline = time.monotonic() + timeout
        while True:
            code = proc.poll()
            if code is not None:
                _CHILDREN.pop(proc.pid, None)
                self._pid = None
                self._save_state()
                raise self._start_failure(f"mariadbd exited with code {code}", log_offset, out_path, port)
            if self._accepts_connections(port):
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
        tail = _tail(self.error_log, log_offset) or _tail(out_path)
        message = f"sandbox {self.name!r} did not start on port {port}: {what}"
        if tail:
            message += f"; last lines of {self.error_log}:\n{tail}"
        hint = f"see {self.error_log}"
        error = SandboxError(message, hint=hint)
        if "Address already in use" in tail or "Do you already have another" in tail:
            error = SandboxError(message, hint=f"port {port} is in use; choose another with --port")
            return _PortInUse(error)
        return error

    def _accepts_connections(self, port: int) -> bool:
        # Probe through our own unix socket, not the TCP port: whatever else may listen on that port
        # (a server that beat ours to it) must not pass for ours. mariadbd binds TCP before the
        # socket, so an answer on the socket means the port is ours too. Read/write timeouts matter:
        # PyMySQL's connect_timeout covers only the TCP/socket connect, not the handshake.
        try:
            conn = pymysql.connect(unix_socket=str(self._socket), user="root", password="",
                                   connect_timeout=2, read_timeout=5, write_timeout=5)
        except (pymysql.err.MySQLError, OSError):
            return False
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT @@port")
                row = cur.fetchone()
        except pymysql.err.MySQLError:
            return False
        finally:
            conn.close()
        return row is not None and int(row[0]) == port

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
            _CHILDREN.pop(self._pid, None)
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
                monitor = "BINLOG MONITOR" if _is_mariadb_at_least(version, (10, 5)) else "REPLICATION CLIENT"
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


class _PortInUse(Exception):
    """Internal: the start failed only because the port was taken."""

    def __init__(self, error: SandboxError) -> None:
        super().__init__(str(error))
        self.error = error


def _is_mariadb_at_least(version: str, wanted: tuple[int, int]) -> bool:
    if "mariadb" not in version.lower():
        return False
    m = re.match(r"(\d+)\.(\d+)", version)
    return m is not None and (int(m.group(1)), int(m.group(2))) >= wanted
