"""What a sandbox's server is made of: its datadir's bootstrap and the ``mariadbd`` command line.

Every setting that decides which server the sandbox is lives here: ``--no-defaults`` (the Debian
package runs its own server on 3306 from ``/etc/mysql``; a sandbox reads none of that), loopback
only, the binary log in ROW format, utf8mb4, InnoDB sizes, root without a password over TCP
(``--auth-root-authentication-method=normal``, acceptable only because the server listens on the
loopback interface and holds throwaway data). Apart from the server handle, which only runs
what this builds, so the configuration can be read in one place.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

from binhub.errors import SandboxError
from binhub.sandbox.binaries import find_install_db_binary, find_server_binary
from binhub.sandbox.layout import SandboxSpec
from binhub.sandbox.process import TAIL_LINES

__all__ = ["INNODB_ARGS", "MAX_ALLOWED_PACKET", "install_datadir", "server_command"]

log = logging.getLogger("binhub.sandbox")

MAX_ALLOWED_PACKET = 64 * 1024 * 1024
# InnoDB sizes are passed to mariadb-install-db too, so the bootstrap creates the redo log at its
# final size instead of the 96M default that the first start would then have to resize.
INNODB_ARGS = ("--innodb-buffer-pool-size=64M", "--innodb-log-file-size=48M")


def install_datadir(datadir: Path, tmpdir: Path) -> None:
    """Create ``datadir`` with ``mariadb-install-db`` (removing the leftover of a failed bootstrap)."""
    server = find_server_binary()
    install_db = find_install_db_binary(server)
    if datadir.exists():
        # A datadir without the mysql schema is the leftover of a failed bootstrap.
        shutil.rmtree(datadir)
    tmpdir.mkdir(parents=True, exist_ok=True)
    cmd = [str(install_db), "--no-defaults", f"--datadir={datadir}", f"--tmpdir={tmpdir}",
           "--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve",
           *INNODB_ARGS]
    log.info("creating sandbox datadir %s", datadir)
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=180, check=False)
    except subprocess.TimeoutExpired as exc:
        raise SandboxError(f"mariadb-install-db did not finish within 180s for {datadir}") from exc
    if proc.returncode != 0:
        out = (proc.stdout + proc.stderr).decode("utf-8", "replace").strip().splitlines()
        raise SandboxError(f"mariadb-install-db failed (exit {proc.returncode}) for {datadir}; "
                           "last lines:\n" + "\n".join(out[-TAIL_LINES:]))


def server_command(server: Path, spec: SandboxSpec, *, datadir: Path, tmpdir: Path, port: int, socket: Path,
                   error_log: Path) -> list[str]:
    """The full ``mariadbd`` command line of the sandbox ``spec`` on ``port``."""
    args = [str(server), "--no-defaults"]
    # --user=root is required when running as root (mariadbd refuses root otherwise) and
    # ignored with a warning when not, so only pass it as root.
    if os.geteuid() == 0:
        args.append("--user=root")
    args += [
        f"--datadir={datadir}",
        f"--tmpdir={tmpdir}",
        f"--port={port}",
        f"--socket={socket}",
        f"--pid-file={datadir / 'mariadbd.pid'}",
        "--bind-address=127.0.0.1",
        f"--log-bin={spec.log_bin}",
        f"--server-id={spec.server_id}",
        f"--binlog-format={spec.binlog_format}",
        f"--gtid-domain-id={spec.gtid_domain_id}",
        f"--max-allowed-packet={MAX_ALLOWED_PACKET}",
        *INNODB_ARGS,
        # Debian's packaged config makes utf8mb4 the default; without it (--no-defaults) the
        # server would fall back to latin1 and differ from the servers users actually run.
        "--character-set-server=utf8mb4",
        "--collation-server=utf8mb4_general_ci",
        "--skip-name-resolve",
        f"--log-error={error_log}",
        *spec.extra_args,
    ]
    return args
