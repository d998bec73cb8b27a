"""What a logical backup and its restore are told."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from binhub.backup.config import DEFAULT_LOCK_WAIT_TIMEOUT, ServerAddress
from binhub.errors import ConfigError

DEFAULT_PARALLEL = 4
DEFAULT_CHUNK_ROWS = 250_000
# A chunk file is closed at this many bytes of SQL even before chunk_rows: wide rows stay in bounded memory.
DEFAULT_CHUNK_BYTES = 64 * 2**20
# The restore loads a chunk in parts of about this many bytes of lines, each a LOAD DATA committed
# with its count in the target's ledger (what a resume goes on from).
DEFAULT_PART_BYTES = 4 * 2**20
# Tables the backup never takes: the server's own (users come through SHOW CREATE USER / SHOW GRANTS).
SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")


@dataclass(frozen=True, slots=True)
class LogicalBackupConfig:
    """``binhub backup --logical``: the server, the target directory, how to split and how hard to work.

    ``include``/``exclude`` are globs on ``db.table`` (as in ``binhub stream``); a database whose
    tables are all excluded is still created (empty) on restore when ``include`` names it.
    """

    source: ServerAddress
    target: Path
    parallel: int = DEFAULT_PARALLEL
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    users: bool = True
    compression_level: int = 1  # zstd: level 1 compresses 2-3x faster than 3, with the same ratio on SQL
    lock_wait_timeout: int = DEFAULT_LOCK_WAIT_TIMEOUT

    def __post_init__(self) -> None:
        if self.parallel < 1:
            raise ConfigError("--parallel", "must be at least 1")
        if self.chunk_rows < 1:
            raise ConfigError("--chunk-rows", "must be at least 1")


@dataclass(frozen=True, slots=True)
class LogicalRestoreConfig:
    """``binhub restore BACKUP --to mysql://...`` for a logical backup.

    ``indexes_after``: tables are created without their secondary indexes, which are added once the
    table's rows are in (one sort per index instead of a B-tree insert per row); tables with foreign
    keys keep theirs, since a foreign key needs its index. On by default (as current myloader's
    ``--optimize-keys=AFTER_IMPORT_PER_TABLE``): 25-30% off the load of a table with a secondary
    index. ``binlog``: whether the load is written to the target's binlog (off by default, as
    myloader: a restore is not a change to replicate).
    ``resume``: go on with a restore of this backup that was cut short, loading only the chunks the
    target does not list as committed (``binhub.logical_restore_chunks``, see ``ledger.py``).
    """

    backup: Path
    target: ServerAddress
    parallel: int = DEFAULT_PARALLEL
    indexes_after: bool = True
    binlog: bool = False
    users: bool = True
    resume: bool = False
    lock_wait_timeout: int = DEFAULT_LOCK_WAIT_TIMEOUT
    part_bytes: int = DEFAULT_PART_BYTES  # a resume must use the same as the restore it goes on with

    def __post_init__(self) -> None:
        if self.parallel < 1:
            raise ConfigError("--parallel", "must be at least 1")
