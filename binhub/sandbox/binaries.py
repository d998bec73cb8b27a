"""Where the MariaDB programs a sandbox runs are: ``mariadbd`` and the ``mariadb-install-db`` beside it.

Apart from the server handle because finding them is a question about the machine, not about any
one sandbox: the test fixtures ask it before they make one (to skip when there is no server), and
the answer differs between distributions, tarballs and source builds. What a running server's
version string says (:func:`is_mariadb_at_least`) is here for the same reason: it is about the
programs, not the sandbox.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from binhub.errors import SandboxError

__all__ = ["FALLBACK_DIRS", "INSTALL_DB_NAMES", "INSTALL_HINT", "SERVER_NAMES", "find_install_db_binary",
           "find_server_binary", "is_mariadb_at_least"]

INSTALL_HINT = "install it: apt-get install mariadb-server (Debian/Ubuntu)"
SERVER_NAMES = ("mariadbd", "mysqld")
INSTALL_DB_NAMES = ("mariadb-install-db", "mysql_install_db")
# Searched after $PATH: Debian and most distributions keep the server in sbin, which is not on a
# normal user's PATH; some (Fedora, SUSE) use libexec.
FALLBACK_DIRS: tuple[str, ...] = ("/usr/sbin", "/usr/libexec", "/usr/local/sbin", "/usr/local/libexec",
                                  "/usr/bin", "/usr/local/bin")


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


def is_mariadb_at_least(version: str, wanted: tuple[int, int]) -> bool:
    """Whether ``version`` (``SELECT VERSION()``) is a MariaDB of release ``wanted`` (major, minor) or later."""
    if "mariadb" not in version.lower():
        return False
    m = re.match(r"(\d+)\.(\d+)", version)
    return m is not None and (int(m.group(1)), int(m.group(2))) >= wanted
