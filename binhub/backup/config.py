"""What a physical backup is told: where the server and its files are, where the copy goes, how hard to work."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from binhub.errors import ConfigError

DEFAULT_LOG_COPY_INTERVAL = 0.2  # seconds between polls of ib_logfile0 (mariadb-backup: 1 s)
DEFAULT_PAGE_RETRIES = 10  # re-reads of a page that fails its checksum before it is called corrupt
DEFAULT_PAGE_RETRY_DELAY = 0.1
DEFAULT_LOCK_WAIT_TIMEOUT = 60  # seconds a BACKUP STAGE may wait for running DDL or commits
DEFAULT_REDO_CATCH_UP_TIMEOUT = 120.0  # seconds the redo copy may take to reach the consistent point


@dataclass(frozen=True, slots=True)
class ServerAddress:
    """How to reach the server being backed up (TCP, or its unix socket when given)."""

    host: str = "127.0.0.1"
    port: int = 3306
    user: str = "root"
    password: str = field(default="", repr=False)
    unix_socket: Path | None = None

    def __str__(self) -> str:
        if self.unix_socket is not None:
            return f"{self.user}@{self.unix_socket}"
        return f"{self.user}@{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class PhysicalBackupConfig:
    """``binhub backup --physical``: the server, its datadir on this host, and the target directory.

    ``parallel`` threads copy InnoDB tablespaces (one file per thread at a time, as mariadb-backup).
    """

    source: ServerAddress
    datadir: Path
    target: Path
    parallel: int = 1
    log_copy_interval: float = DEFAULT_LOG_COPY_INTERVAL
    page_retries: int = DEFAULT_PAGE_RETRIES
    page_retry_delay: float = DEFAULT_PAGE_RETRY_DELAY
    lock_wait_timeout: int = DEFAULT_LOCK_WAIT_TIMEOUT
    redo_catch_up_timeout: float = DEFAULT_REDO_CATCH_UP_TIMEOUT
    compress: str | None = None  # "zstd": each data file stored as NAME.zst

    def __post_init__(self) -> None:
        if self.parallel < 1:
            raise ConfigError("backup.parallel", "must be at least 1")
        if self.compress not in (None, "zstd"):
            raise ConfigError("backup.compress", f"unknown compression {self.compress!r}; binhub offers zstd")
