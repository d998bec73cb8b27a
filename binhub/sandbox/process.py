"""The sandbox's ``mariadbd`` as an operating-system process: spawning it, knowing whether it still
runs, ports, and reading what it said when it would not start.

Apart from the server handle because these answers come from the kernel (pids, ``/proc``,
zombies, sockets, ``PR_SET_PDEATHSIG``), not from the sandbox's own state, and must hold for a
server another process started: ``binhub sandbox status`` judges a pid saved in ``sandbox.json``.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
from pathlib import Path

import pymysql  # type: ignore[import-untyped, unused-ignore]

from binhub.errors import SandboxError

__all__ = ["TAIL_LINES", "PortInUse", "accepts_connections", "file_size", "forget_child", "free_port",
           "port_is_free", "process_alive", "spawn_server", "tail"]

TAIL_LINES = 15

# Popen objects of servers this process started, by pid: polling them reaps the exited child, which
# would otherwise linger as a zombie that `kill(pid, 0)` still reports as alive.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
_HAS_PROC = Path("/proc/self/stat").exists()


class PortInUse(Exception):
    """A start failed only because the port was taken; ``error`` is what to raise if no other port is tried."""

    def __init__(self, error: SandboxError) -> None:
        super().__init__(str(error))
        self.error = error


def spawn_server(cmd: list[str], out_path: Path, *, die_with_parent: bool) -> subprocess.Popen[bytes]:
    """Start ``cmd`` detached from the terminal, its stdout and stderr appended to ``out_path``."""
    with out_path.open("ab") as out:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, close_fds=True,
            # Its own session: Ctrl-C in the terminal that ran `binhub sandbox start` must not
            # reach the server, which outlives the command.
            start_new_session=True,
            preexec_fn=_die_with_parent if die_with_parent else None,
        )
    _CHILDREN[proc.pid] = proc
    return proc


def forget_child(pid: int) -> None:
    """Stop tracking the child ``pid`` (it exited, or its pid is no longer the sandbox's)."""
    _CHILDREN.pop(pid, None)


def process_alive(pid: int, datadir: Path) -> bool:
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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the server may still lose a race for it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As mariadbd does: otherwise our own just-closed connections in TIME_WAIT would make the
        # port look taken right after a stop, and a restart would move to a new port.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def accepts_connections(unix_socket: Path, port: int) -> bool:
    """Whether the server behind ``unix_socket`` answers, and is the one listening on ``port``."""
    # Probe through our own unix socket, not the TCP port: whatever else may listen on that port
    # (a server that beat ours to it) must not pass for ours. mariadbd binds TCP before the
    # socket, so an answer on the socket means the port is ours too. Read/write timeouts matter:
    # PyMySQL's connect_timeout covers only the TCP/socket connect, not the handshake.
    try:
        conn = pymysql.connect(unix_socket=str(unix_socket), user="root", password="",
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


def tail(path: Path, offset: int = 0, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of ``path`` from ``offset`` on ("" when it cannot be read)."""
    try:
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return ""
    text = data.decode("utf-8", "replace").rstrip("\n")
    return "\n".join(text.splitlines()[-lines:])


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
