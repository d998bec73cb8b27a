"""What a logical restore has done, kept on the target itself, so a restore cut short resumes.

Two tables in the ``binhub`` schema of the target (where binhub keeps its other bookkeeping, e.g.
the MySQL sink's checkpoint):

- ``binhub.logical_restores``: one row per backup restored here (the backup is named by the
  SHA-256 of its manifest), written before the schema is created and marked finished at the end;
- ``binhub.logical_restore_chunks``: one row per chunk being loaded, written **in the same
  transaction as the rows**: each INSERT statement of the chunk commits on its own (smaller
  transactions cost the server a fifth less than one per chunk), with the row saying how many of
  the chunk's statements are in (``statements``), NULL once all are. A ``kill -9`` of the restore,
  or of the target, leaves every statement either committed and counted or neither. Rows of a
  non-transactional table (MyISAM, Aria) are written at once, not at the commit: a resume empties
  such a table and loads it again unless all of its chunks are listed whole.

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
    "statements INT UNSIGNED NULL DEFAULT NULL, "  # the INSERTs of the chunk committed; NULL: all of them
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

    def loaded(self, admin: ServerSession) -> dict[str, int | None]:
        """The chunks (their files) with statements committed on the target: how many, None for all."""
        return {str(chunk): None if statements is None else int(statements) for chunk, statements in admin.query(
            f"SELECT chunk, statements FROM {CHUNKS} WHERE backup = {quote_text(self.id)}")}

    def record_sql(self, chunk: str, statements: int | None) -> str:
        """What a statement's transaction runs before its COMMIT: ``statements`` of ``chunk`` are in
        (None: all of them)."""
        count = "NULL" if statements is None else str(statements)
        return (f"INSERT INTO {CHUNKS} (backup, chunk, statements) VALUES ({quote_text(self.id)}, {quote_text(chunk)}, "
                f"{count}) ON DUPLICATE KEY UPDATE statements = {count}")

    def forget(self, admin: ServerSession, chunks: list[str]) -> None:
        """Chunks to load again (a non-transactional table emptied for the resume)."""
        if chunks:
            admin.execute(f"DELETE FROM {CHUNKS} WHERE backup = {quote_text(self.id)} AND chunk IN "
                          f"({','.join(quote_text(c) for c in chunks)})")

    def finish(self, admin: ServerSession) -> None:
        admin.execute(f"UPDATE {RESTORES} SET finished_at = CURRENT_TIMESTAMP(6) WHERE backup = {quote_text(self.id)}")
        admin.execute(f"DELETE FROM {CHUNKS} WHERE backup = {quote_text(self.id)}")
