"""What a logical restore has done, kept on the target itself, so a restore cut short resumes.

Two tables in the ``binhub`` schema of the target (where binhub keeps its other bookkeeping, e.g.
the MySQL sink's checkpoint):

- ``binhub.logical_restores``: one row per backup restored here (the backup is named by the
  SHA-256 of its manifest), written before the schema is created and marked finished at the end;
- ``binhub.logical_restore_chunks``: one row per chunk loaded, inserted **in the chunk's own
  transaction**, so the row exists exactly when the chunk's rows are committed (InnoDB). A
  ``kill -9`` of the restore, or of the target, leaves every chunk either loaded and listed or
  neither. Rows of a non-transactional table (MyISAM, Aria) are written at once, not at the commit:
  a resume empties such a table and loads it again unless all of its chunks are listed.

The chunk rows are deleted when the restore finishes; the restore's own row stays (what was
restored here, when, at which GTID of the source).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from binhub.backup.logical.literals import quote_text
from binhub.backup.metadata import MANIFEST
from binhub.backup.session import ServerSession

SCHEMA = "`binhub`"
RESTORES = f"{SCHEMA}.`logical_restores`"
CHUNKS = f"{SCHEMA}.`logical_restore_chunks`"
_CREATE = (
    f"CREATE TABLE IF NOT EXISTS {RESTORES} (backup CHAR(64) NOT NULL PRIMARY KEY, path VARCHAR(4096) NOT NULL, "
    "gtid TEXT NULL, started_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), finished_at TIMESTAMP(6) NULL) "
    "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    f"CREATE TABLE IF NOT EXISTS {CHUNKS} (backup CHAR(64) NOT NULL, "
    "chunk VARCHAR(1024) CHARACTER SET ascii COLLATE ascii_bin NOT NULL, "  # file names are percent-encoded
    "loaded_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), PRIMARY KEY (backup, chunk)) "
    "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
)


def backup_id(backup: Path) -> str:
    """A backup's identity: the SHA-256 of its manifest (never rewritten once the backup is complete)."""
    return hashlib.sha256((backup / MANIFEST).read_bytes()).hexdigest()


@dataclass(frozen=True, slots=True)
class RestoreState:
    started_at: str
    finished_at: str | None


class RestoreLedger:
    """The target's record of one backup's restore (see the module docstring)."""

    def __init__(self, backup: Path) -> None:
        self.backup = backup
        self.id = backup_id(backup)

    def state(self, admin: ServerSession) -> RestoreState | None:
        """When a restore of this backup began and finished here; None: never (or no ledger at all)."""
        if not admin.query("SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'binhub' "
                           "AND TABLE_NAME = 'logical_restores'"):
            return None
        rows = admin.query(f"SELECT started_at, finished_at FROM {RESTORES} WHERE backup = {quote_text(self.id)}")
        if not rows:
            return None
        started, finished = rows[0]
        return RestoreState(str(started), None if finished is None else str(finished))

    def begin(self, admin: ServerSession, gtid: str | None) -> None:
        """A new restore of the backup (one before it, finished or given up, is forgotten)."""
        admin.execute(f"CREATE DATABASE IF NOT EXISTS {SCHEMA}")
        for statement in _CREATE:
            admin.execute(statement)
        admin.execute(f"DELETE FROM {CHUNKS} WHERE backup = {quote_text(self.id)}")
        admin.execute(f"REPLACE INTO {RESTORES} (backup, path, gtid) VALUES ({quote_text(self.id)}, "
                      f"{quote_text(str(self.backup))}, {'NULL' if gtid is None else quote_text(gtid)})")

    def loaded(self, admin: ServerSession) -> set[str]:
        """The chunks (their files) already committed on the target."""
        return {str(chunk) for (chunk,) in admin.query(
            f"SELECT chunk FROM {CHUNKS} WHERE backup = {quote_text(self.id)}")}

    def record_sql(self, chunk: str) -> str:
        """The statement a chunk's transaction runs before its COMMIT."""
        return f"INSERT INTO {CHUNKS} (backup, chunk) VALUES ({quote_text(self.id)}, {quote_text(chunk)})"

    def forget(self, admin: ServerSession, chunks: list[str]) -> None:
        """Chunks to load again (a non-transactional table emptied for the resume)."""
        if chunks:
            admin.execute(f"DELETE FROM {CHUNKS} WHERE backup = {quote_text(self.id)} AND chunk IN "
                          f"({','.join(quote_text(c) for c in chunks)})")

    def finish(self, admin: ServerSession) -> None:
        admin.execute(f"UPDATE {RESTORES} SET finished_at = CURRENT_TIMESTAMP(6) WHERE backup = {quote_text(self.id)}")
        admin.execute(f"DELETE FROM {CHUNKS} WHERE backup = {quote_text(self.id)}")
