"""A ``binhub`` command (``serve``, ``relay``, ``run``, ...) as a child process, for ``binhub demo``,
the integration tests and the benches: one way to start it, wait until it listens, and stop it.

The child's stdout and stderr are appended to a log file, so a test or a bench that fails can say
what binhub printed (:meth:`BinhubProcess.tail`). Stopping sends SIGTERM (binhub's graceful
shutdown) and falls back to SIGKILL after a deadline; a test that wants a crash sends SIGKILL itself.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from binhub.errors import SandboxError

__all__ = ["BinhubProcess", "binhub_command"]

TAIL_CHARS = 3000


def binhub_command() -> list[str]:
    """How to run the ``binhub`` CLI of this interpreter's install: the console script beside the
    interpreter (a venv's ``bin/binhub``), else ``python -m binhub``.

    Never a ``binhub`` found on PATH: a child must run the same install as its parent.
    """
    script = Path(sys.executable).with_name("binhub")
    return [str(script)] if script.exists() else [sys.executable, "-m", "binhub"]


class BinhubProcess:
    """``binhub ARGS`` running as a child process; ``port`` is where it listens, when it does."""

    def __init__(self, args: Sequence[str], log: Path, *, port: int | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        self.args = list(args)
        self.log = log
        self.port = port
        self.env = dict(env) if env else {}  # added to (or replacing) this process's environment
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def command(self) -> list[str]:
        return [*binhub_command(), *self.args]

    def start(self, timeout: float = 30.0) -> BinhubProcess:
        """Spawn it (again, after a stop); with a ``port``, return only once it accepts connections there."""
        if self.running:
            raise SandboxError(f"binhub {self.args[0]} is already running (pid {self.pid})")
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         env={**os.environ, **self.env} if self.env else None)
        if self.port is not None:
            self.wait_listening(timeout)
        return self

    def wait_listening(self, timeout: float = 30.0) -> None:
        """Until 127.0.0.1:``port`` accepts a TCP connection; fails at once if the process exits."""
        assert self.port is not None, "wait_listening needs a port"
        deadline = time.monotonic() + timeout
        while True:
            if not self.running:
                raise SandboxError(f"binhub {self.args[0]} exited with {self.returncode} before listening on "
                                   f"127.0.0.1:{self.port}; its output:\n{self.tail()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return
            if time.monotonic() >= deadline:
                raise SandboxError(f"binhub {self.args[0]} does not listen on 127.0.0.1:{self.port} after "
                                   f"{timeout:g}s; its output:\n{self.tail()}")
            time.sleep(0.05)

    # --- the process, as subprocess.Popen offers it ------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def poll(self) -> int | None:
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(sig)

    def wait(self, timeout: float | None = None) -> int:
        """Its exit code, once it has exited (``subprocess.TimeoutExpired`` after ``timeout``)."""
        if self.proc is None:
            raise SandboxError(f"binhub {self.args[0]} was never started")
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL, and reap it: a crash, as ``kill -9`` does it."""
        self.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        """Send ``sig`` and wait for the exit (SIGKILL after ``timeout``); its exit code, None if never started."""
        if self.proc is None:
            return None
        self.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def tail(self, chars: int = TAIL_CHARS) -> str:
        """The end of what it printed."""
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else f"exited {self.returncode}" if self.proc else "not started"
        return f"BinhubProcess({' '.join(self.args[:1])}, {state}, log {self.log})"
