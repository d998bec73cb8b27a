"""``manifest.json`` of a logical backup: where the server stood, every object's DDL, every chunk's checksum.

Strict JSON with a format number (never an ini file to parse, see mydumper's metadata troubles). It
is written with ``complete: false`` when the backup starts and rewritten at the end: a directory
whose manifest does not say ``complete: true`` is never restored.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from binhub.backup.metadata import MANIFEST, write_atomically
from binhub.backup.session import BinlogPosition
from binhub.errors import BackupError

# 2: chunks of LOAD DATA lines (``.tsv.zst``); 1: chunks of INSERT statements (``.sql.zst``), still restored.
LOGICAL_FORMAT = 2
READABLE_FORMATS = (1, 2)
KIND = "logical"
# TableRecord.kind: a base table's rows; a sequence's state; a system-versioned table's rows with their history.
TABLE, SEQUENCE, VERSIONED = "table", "sequence", "system-versioned"


@dataclass(slots=True)
class ChunkRecord:
    """One data file: ``data/<db>/<table>.<n>.tsv.zst``, zstd-compressed LOAD DATA lines (format 1:
    ``.sql.zst``, INSERT statements)."""

    file: str  # relative to the backup directory
    rows: int
    bytes: int  # compressed, as on disk
    sql_bytes: int  # uncompressed (the name from format 1, when they were SQL)
    crc32c: str  # of the file as on disk, 8 hex digits
    max_statement: int = 0  # format 1: the longest INSERT in it, which the target's max_allowed_packet must hold


@dataclass(slots=True)
class ColumnRecord:
    name: str
    data_type: str  # information_schema.COLUMNS.DATA_TYPE
    charset: str | None
    generated: bool  # VIRTUAL/PERSISTENT columns are computed by the server, never loaded


@dataclass(slots=True)
class TableRecord:
    db: str
    name: str
    engine: str
    create: str  # SHOW CREATE TABLE, read under the consistency lock
    columns: list[ColumnRecord]
    transactional: bool  # InnoDB: read in the snapshot; the others were read under the lock
    rows: int = 0
    sql_bytes: int = 0
    chunks: list[ChunkRecord] = field(default_factory=list)
    # "table"; "sequence": no rows, ``create`` is SHOW CREATE SEQUENCE and the state is restored with
    # SETVAL(next, 0, round); "system-versioned": rows with their history and period columns.
    kind: str = TABLE
    sequence_next: int | None = None
    sequence_round: int | None = None

    @property
    def qualified(self) -> str:
        return f"{self.db}.{self.name}"

    @property
    def is_sequence(self) -> bool:
        return self.kind == SEQUENCE

    @property
    def is_versioned(self) -> bool:
        return self.kind == VERSIONED

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TableRecord:
        data = dict(data)
        data["columns"] = [ColumnRecord(**c) for c in data["columns"]]
        data["chunks"] = [ChunkRecord(**c) for c in data["chunks"]]
        return cls(**data)


@dataclass(slots=True)
class SchemaObject:
    """A view, routine, trigger or event: its DDL and the session it must be created in."""

    kind: str  # "VIEW", "PROCEDURE", "FUNCTION", "PACKAGE", "PACKAGE BODY", "TRIGGER", "EVENT"
    db: str
    name: str
    create: str
    sql_mode: str = ""
    character_set_client: str = "utf8mb4"
    collation_connection: str = "utf8mb4_general_ci"
    time_zone: str | None = None  # events only
    table: str | None = None  # triggers only


@dataclass(slots=True)
class UserRecord:
    user: str
    host: str
    create: str  # SHOW CREATE USER
    grants: list[str]  # SHOW GRANTS FOR
    is_role: bool = False


@dataclass(slots=True)
class DatabaseRecord:
    name: str
    create: str  # SHOW CREATE DATABASE


@dataclass(slots=True)
class LogicalManifest:
    """binhub's record of one logical backup."""

    server_version: str
    flavour: str  # "mariadb" or "mysql"
    started_at: str
    kind: str = KIND
    complete: bool = False
    finished_at: str | None = None
    error: str | None = None
    binlog_file: str | None = None
    binlog_position: int | None = None
    gtid: str | None = None  # @@gtid_binlog_pos (MariaDB) or @@gtid_executed (MySQL) at the consistent point
    lock: str = ""  # how the consistent point was made: "BACKUP STAGE BLOCK_COMMIT" or "FLUSH TABLES WITH READ LOCK"
    lock_seconds: float = 0.0  # how long writers were held off
    options: dict[str, Any] = field(default_factory=dict)
    databases: list[DatabaseRecord] = field(default_factory=list)
    tables: list[TableRecord] = field(default_factory=list)
    objects: list[SchemaObject] = field(default_factory=list)
    users: list[UserRecord] = field(default_factory=list)
    format: int = LOGICAL_FORMAT
    tool: str = "binhub"

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def chunk_bytes(self) -> int:
        return sum(c.bytes for t in self.tables for c in t.chunks)

    def set_binlog(self, position: BinlogPosition | None) -> None:
        if position is not None:
            self.binlog_file, self.binlog_position, self.gtid = position.file, position.position, position.gtid

    def write(self, target: Path) -> None:
        write_atomically(target / MANIFEST, json.dumps(asdict(self), indent=1, ensure_ascii=False) + "\n")

    @classmethod
    def read(cls, backup: Path) -> LogicalManifest:
        """The manifest of ``backup``; a BackupError when there is none or it is not a logical backup's."""
        path = backup / MANIFEST
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise BackupError(f"{backup} holds no {MANIFEST}: not a binhub backup") from None
        except (OSError, ValueError) as exc:
            raise BackupError(f"{path} cannot be read ({exc})", hint="the backup is damaged; take a new one") from None
        if data.get("kind") != KIND:
            raise BackupError(f"{backup} is not a logical backup (kind {data.get('kind', 'physical')!r})")
        if data.get("format") not in READABLE_FORMATS:
            raise BackupError(f"{path} has format {data.get('format')!r}; this binhub reads formats "
                              f"{', '.join(map(str, READABLE_FORMATS))}", hint="restore it with the binhub that took it")
        try:
            data["databases"] = [DatabaseRecord(**d) for d in data["databases"]]
            data["tables"] = [TableRecord.from_json(t) for t in data["tables"]]
            data["objects"] = [SchemaObject(**o) for o in data["objects"]]
            data["users"] = [UserRecord(**u) for u in data["users"]]
            return cls(**data)
        except (KeyError, TypeError) as exc:
            raise BackupError(f"{path} is not a valid logical manifest ({exc})") from None
