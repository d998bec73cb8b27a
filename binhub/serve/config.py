"""What the binlog server is told: where to listen, whom to let in, TLS, its identity."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from binhub.serve.users import User

__all__ = ["DEFAULT_SERVE_LISTEN", "REPLICA_AHEAD_WAIT", "SERVE_AUTH_CHOICES", "ServeConfig"]

DEFAULT_SERVE_LISTEN = "127.0.0.1:3307"
#: A replica asking for a place the store has not reached waits this long for the relay by default.
REPLICA_AHEAD_WAIT = 30.0
SERVE_AUTH_CHOICES = ("auto", "mysql_native_password", "caching_sha2_password")


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """The replicas' accounts come from ``users_file`` (re-read when it changes) and/or ``users``
    (fixed accounts, e.g. ``binhub serve --user``; only their password hashes are kept)."""

    host: str
    port: int
    server_id: int
    users_file: Path | None = None
    users: tuple[User, ...] = ()
    tls: bool = True  # offer TLS: the given pair, or a self-signed one kept in the store
    tls_cert: Path | None = None
    tls_key: Path | None = None
    default_auth: str | None = None  # the greeting's auth plugin; None: as the upstream's flavour
    replica_ahead_wait: float = REPLICA_AHEAD_WAIT  # a replica ahead of the store waits this long
