"""What a sandbox is asked to be (:class:`SandboxSpec`), where it lives on disk, and what it keeps
there for other processes to find it.

On disk::

    BASE_DIR/<name>/sandbox.json   port, pid, socket, replication password: lets another process
                                   (``binhub sandbox status|stop``) find and control the server
    BASE_DIR/<name>/data/          the datadir; also holds the binlog files and error.log
    BASE_DIR/<name>/mysql.sock     the unix socket, or a short path in the temp dir when this one
                                   is too long for a socket address (107 bytes)

``BASE_DIR`` is ``$BINHUB_SANDBOX_DIR`` or ``~/.local/share/binhub/sandboxes``.

Apart from the server handle because these are the sandbox's contract with other processes: a
later ``binhub sandbox stop`` reads what an earlier ``start`` wrote, so the state file is written
atomically and its location never depends on anything but the spec's base directory and name.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from binhub.errors import SandboxError

__all__ = ["MAX_SOCKET_PATH", "SANDBOX_DIR_ENV", "STATE_FILE_NAME", "STATE_VERSION", "SandboxSpec", "default_base_dir", "read_state",
           "socket_path", "write_state"]

SANDBOX_DIR_ENV = "BINHUB_SANDBOX_DIR"
# sun_path is 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107
STATE_FILE_NAME = "sandbox.json"
STATE_VERSION = 1
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def default_base_dir() -> Path:
    """``$BINHUB_SANDBOX_DIR`` or ``~/.local/share/binhub/sandboxes`` (never inside a checkout)."""
    env = os.environ.get(SANDBOX_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".local" / "share" / "binhub" / "sandboxes"


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


def socket_path(sandbox_dir: Path) -> Path:
    """The unix socket of the sandbox in ``sandbox_dir``: in it if the path fits a socket address."""
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


def read_state(path: Path) -> dict[str, Any] | None:
    """The saved state file at ``path``, or None when there is none."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise SandboxError(f"cannot read sandbox state {path}: {exc}",
                           hint="remove the sandbox directory and start again") from exc
    if not isinstance(data, dict):
        raise SandboxError(f"cannot read sandbox state {path}: not a JSON object")
    return data


def write_state(path: Path, data: dict[str, Any]) -> None:
    """Replace the state file at ``path`` with ``data``, readable by its owner only."""
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
