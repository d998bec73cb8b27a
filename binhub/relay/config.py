"""What the relay is told: the upstream's address (:class:`SourceDSN`) and :class:`RelayConfig`.

Plain frozen values; :mod:`binhub.ops.config` builds them from the config file, the environment
and flags, and the relay never reads any of those itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal, cast
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from binhub.errors import ConfigError

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_HEARTBEAT_PERIOD",
    "DEFAULT_MYSQL_PORT",
    "DEFAULT_RECONNECT_MAX_BACKOFF",
    "DEFAULT_SERVER_ID",
    "SSL_MODES",
    "RelayConfig",
    "SourceDSN",
    "SslMode",
    "parse_source_dsn",
]

DEFAULT_MYSQL_PORT = 3306
# binhub registers with the upstream as a replica, so its server_id must differ from the primary's
# and from every other replica's, including other binhub nodes (the primary silently disconnects
# the older of two replicas sharing an id). 1001 stays clear of the small ids (1, 2, 3, ...) that
# primaries and hand-numbered replicas usually get; set it explicitly whenever several run.
DEFAULT_SERVER_ID = 1001
DEFAULT_HEARTBEAT_PERIOD = 1.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_RECONNECT_MAX_BACKOFF = 30.0

SslMode = Literal["disabled", "preferred", "required", "verify_ca"]
SSL_MODES: tuple[SslMode, ...] = ("disabled", "preferred", "required", "verify_ca")


@dataclass(frozen=True, slots=True)
class SourceDSN:
    """Where the relay connects: ``mysql://user:pw@host:port`` (or ``mariadb://``).

    The password is kept out of ``repr`` and ``str`` so that logging a config never leaks it.
    ``scheme`` is the flavour the operator expects; the relay still detects the real one.
    """

    host: str
    port: int = DEFAULT_MYSQL_PORT
    user: str = ""
    password: str = field(default="", repr=False)
    params: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    scheme: Literal["mysql", "mariadb"] = "mysql"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        secret = ":***" if self.password else ""
        return f"{self.scheme}://{self.user}{secret}@{host}:{self.port}"

    def secret_url(self) -> str:
        """The DSN as :func:`parse_source_dsn` reads it, password included: to hand on, never to log."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        query = f"?{urlencode(dict(self.params))}" if self.params else ""
        return f"{self.scheme}://{quote(self.user, safe='')}:{quote(self.password, safe='')}@{host}:{self.port}{query}"

    def with_password(self, password: str) -> SourceDSN:
        return SourceDSN(self.host, self.port, self.user, password, self.params, self.scheme)


def parse_source_dsn(text: str, *, key: str = "relay.source") -> SourceDSN:
    """``mysql://user:pw@host:port?param=value`` (or ``mariadb://``) → :class:`SourceDSN`.

    User and password may be percent-encoded (``p%40ss`` for ``p@ss``). Errors never repeat the
    text itself, because it may hold the password.
    """
    try:
        parts = urlsplit(text.strip())
        port = parts.port  # raises ValueError for a non-numeric or out-of-range port
    except ValueError as exc:
        raise ConfigError(key, f"not a valid source URL ({exc}); expected mysql://user:password@host:port") from None
    if parts.scheme not in ("mysql", "mariadb"):
        what = f"scheme {parts.scheme!r}" if parts.scheme else "no scheme"
        raise ConfigError(key, f"{what}; expected mysql://user:password@host:port or mariadb://...")
    if not parts.hostname:
        raise ConfigError(key, "no host; expected mysql://user:password@host:port")
    if not parts.username:
        raise ConfigError(key, "no user; the relay needs a user with REPLICATION SLAVE (and BINLOG MONITOR on MariaDB)")
    if parts.path not in ("", "/"):
        raise ConfigError(key, "a database name has no meaning for replication; remove the path after host:port")
    if parts.fragment:
        raise ConfigError(key, "unexpected '#' fragment in the source URL")
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    return SourceDSN(
        host=parts.hostname,
        port=DEFAULT_MYSQL_PORT if port is None else port,
        user=unquote(parts.username),
        password=unquote(parts.password or ""),
        params=MappingProxyType(params),
        scheme=cast(Literal["mysql", "mariadb"], parts.scheme),
    )


@dataclass(frozen=True, slots=True)
class RelayConfig:
    """The upstream connection. At most one of ``start_gtid``, ``start_file`` and ``from_now`` is set;
    with none, the relay resumes where the store left off (or, on an empty store, applies its own
    default). ``until_caught_up``: finish once the store holds what the upstream had at start."""

    source: SourceDSN
    server_id: int = DEFAULT_SERVER_ID
    start_gtid: str | None = None
    start_file: str | None = None
    start_pos: int | None = None
    from_now: bool = False
    semi_sync: bool = False
    heartbeat_period: float = DEFAULT_HEARTBEAT_PERIOD
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    reconnect_max_backoff: float = DEFAULT_RECONNECT_MAX_BACKOFF
    ssl_mode: SslMode = "preferred"
    ssl_ca: Path | None = None
    until_caught_up: bool = False
    compress: bool = False  # the compressed protocol (zstd, else zlib) if the upstream offers it
