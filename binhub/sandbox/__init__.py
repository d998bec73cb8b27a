"""Throwaway local MariaDB servers ("sandboxes") for ``binhub demo``, the integration tests and the benches.

A sandbox is one ``mariadbd`` started with ``--no-defaults`` on its own datadir, port and unix
socket, bound to 127.0.0.1, with the binary log on in ROW format; root logs in without a password
over TCP. The package, one concept a module:

* ``layout``    what a sandbox is asked to be (:class:`SandboxSpec`), where it lives on disk, and
                the state file that lets another process find it;
* ``binaries``  where ``mariadbd`` and ``mariadb-install-db`` are on this machine;
* ``bootstrap`` the datadir's bootstrap and the server's command line (its whole configuration);
* ``process``   the server as an OS process: spawning, liveness by pid, ports;
* ``server``    :class:`Sandbox`, the handle: lifecycle and helpers for using the running server;
* ``binhub_process``  a ``binhub`` command (serve, relay, run) as a child process beside the sandboxes.
"""

from binhub.sandbox.binaries import find_install_db_binary, find_server_binary
from binhub.sandbox.layout import MAX_SOCKET_PATH, SandboxSpec, default_base_dir
from binhub.sandbox.server import Sandbox

__all__ = ["MAX_SOCKET_PATH", "Sandbox", "SandboxSpec", "default_base_dir", "find_install_db_binary",
           "find_server_binary"]
