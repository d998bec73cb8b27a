"""``mysql://USER:PASSWORD@HOST:PORT``: where the MySQL sink applies changes."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from binhub.errors import ConfigError

__all__ = ["DEFAULT_PORT", "MysqlTarget", "parse_mysql_target"]

DEFAULT_PORT = 3306


@dataclass(frozen=True, slots=True)
class MysqlTarget:
    host: str
    port: int = DEFAULT_PORT
    user: str = "root"
    password: str = field(default="", repr=False)

    def __str__(self) -> str:  # never the password
        return f"mysql://{self.user}@{self.host}:{self.port}"


def parse_mysql_target(text: str, *, key: str = "--to") -> MysqlTarget:
    """``mysql://user:pw@host:port`` (user and password may be percent-encoded). Errors never
    repeat the text, which may hold the password."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError as exc:
        raise ConfigError(key, f"not a valid MySQL URL ({exc}); expected mysql://user:password@host:port") from None
    if parts.scheme not in ("mysql", "mariadb") or not parts.hostname:
        raise ConfigError(key, "expected mysql://user:password@host:port")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(key, "the MySQL sink takes no database, query or fragment: changes go to the "
                               "databases they were made in (use --rename to map them)")
    return MysqlTarget(parts.hostname, DEFAULT_PORT if port is None else port,
                       unquote(parts.username or "root"), unquote(parts.password or ""))
