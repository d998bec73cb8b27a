"""Throwaway local MariaDB servers ("sandboxes") for ``binhub demo``, the integration tests and the benches.

The implementation is in :mod:`binhub.sandbox.server`; this package exports its public names.
"""

from binhub.sandbox.server import (
    MAX_SOCKET_PATH,
    Sandbox,
    SandboxSpec,
    default_base_dir,
    find_install_db_binary,
    find_server_binary,
)

__all__ = ["MAX_SOCKET_PATH", "Sandbox", "SandboxSpec", "default_base_dir", "find_install_db_binary",
           "find_server_binary"]
