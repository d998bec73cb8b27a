"""The sink's checkpoint, kept in the downstream itself: ``binhub.stream_checkpoint``.

One row per (stream, slot). Every worker commits, in the same downstream transaction as the
changes it applies, an upsert of its own slot's row (so workers never contend for a row):

* ``file``, ``pos``, ``gtid_set``: the stream's *low-water mark* as the worker knew it when it
  committed: every upstream transaction up to there is applied;
* ``applied``: the transactions (GTID, or ``file:pos`` of their end without GTIDs) this worker
  applied beyond that mark (out of order, as parallel workers do);
* ``pending_ddl``: slot 0 only, the DDL being run (DDL cannot share a transaction with the row);
* ``offsets``: where a source beyond the store stands at the mark (``binhub apply``'s Kafka topic
  partitions and offsets, JSON), NULL for a stream of the store. Added to a table an older binhub
  made on first use (its rows keep working: NULL).

Resuming takes the highest low-water mark of all the rows (each was true when written, and the
mark only moves forward), and skips exactly the transactions any row lists as applied: everything
else past the mark is applied again. A worker's list holds everything it applied above its own
mark, so the union is complete above the highest mark. With one worker (or ``--ordered``) the mark
is the transaction just committed and the lists stay empty. On start the rows of the previous run
are folded into slot 0 (mark and list), so a run with fewer workers loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from binhub.binlog.gtid import MariadbGtid, MariadbGtidList, MysqlGtid, parse_gtid_set
from binhub.errors import GtidError
from binhub.sinks.base import Checkpoint
from binhub.sinks.mysql.connection import Downstream
from binhub.sinks.mysql.sql import quote_text
from binhub.store.index import file_seq

__all__ = ["CHECKPOINT_TABLE", "Resume", "ensure_checkpoint_table", "fold_checkpoints", "read_resume", "slot_sql"]

CHECKPOINT_TABLE = "`binhub`.`stream_checkpoint`"
_CREATE = (
    "CREATE TABLE IF NOT EXISTS " + CHECKPOINT_TABLE + " ("
    "stream VARCHAR(128) NOT NULL, slot SMALLINT UNSIGNED NOT NULL, "
    "file VARCHAR(255) NOT NULL, pos BIGINT UNSIGNED NOT NULL, gtid_set MEDIUMTEXT NOT NULL, "
    "applied MEDIUMTEXT NOT NULL, pending_ddl VARCHAR(255) NULL, offsets MEDIUMTEXT NULL, "
    "updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), "
    "PRIMARY KEY (stream, slot)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")


@dataclass(frozen=True, slots=True)
class Resume:
    checkpoint: Checkpoint | None  # the low-water mark (None: a first DDL was pending, nothing before it)
    applied: frozenset[str]  # transactions past it that are applied already
    pending_ddl: str | None  # a DDL that may or may not have run when the sink stopped


def position_key(file: str, pos: int) -> tuple[int, int]:
    return (file_seq(file), pos) if file else (-1, 0)


def ensure_checkpoint_table(downstream: Downstream) -> None:
    downstream.execute("CREATE DATABASE IF NOT EXISTS `binhub`")
    downstream.execute(_CREATE)
    if not downstream.fetch("SELECT 1 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'binhub' "
                            "AND TABLE_NAME = 'stream_checkpoint' AND COLUMN_NAME = 'offsets'"):
        downstream.execute(f"ALTER TABLE {CHECKPOINT_TABLE} ADD COLUMN offsets MEDIUMTEXT NULL AFTER pending_ddl")
    downstream.commit()


def read_resume(downstream: Downstream, stream: str) -> Resume | None:
    rows = downstream.fetch(f"SELECT file, pos, gtid_set, applied, pending_ddl, offsets FROM {CHECKPOINT_TABLE} "
                            "WHERE stream = %s", (stream,))
    downstream.commit()  # end the read's snapshot
    if not rows:
        return None
    file, pos, gtid_set, _, _, offsets = max(rows, key=lambda r: position_key(r[0], int(r[1])))
    applied: set[str] = set()
    pending = None
    for row in rows:
        applied.update(orjson.loads(row[3]))
        pending = pending or row[4]
    mark = Checkpoint(file, int(pos), gtid_set, offsets=offsets or "") if file else None
    return Resume(mark, frozenset(a for a in applied if not _covered(a, mark)), pending)


def _covered(ident: str, mark: Checkpoint | None) -> bool:
    """Whether a listed transaction lies at or before the mark (the stream will not meet it again)."""
    if mark is None:
        return False
    file, sep, pos = ident.rpartition(":")
    if sep and pos.isdigit() and "." in file:  # FILE:POS of a transaction without a GTID
        return position_key(file, int(pos)) <= position_key(mark.file, mark.pos)
    if not mark.gtid_set:
        return False
    try:
        executed = parse_gtid_set(mark.gtid_set)
        gtid = MariadbGtid.parse(ident) if isinstance(executed, MariadbGtidList) else MysqlGtid.parse(ident)
    except (GtidError, ValueError):
        return False
    return gtid in executed


def slot_sql(stream: str, slot: int, mark: Checkpoint | None, applied: list[str], pending_ddl: str | None = None) -> str:
    """The upsert of one slot's row, committed with the transactions it records."""
    if mark is None:
        mark = Checkpoint("", 0, "")
    values = (f"{quote_text(stream)}, {slot}, {quote_text(mark.file)}, {mark.pos}, {quote_text(mark.gtid_set)}, "
              f"{quote_text(orjson.dumps(applied).decode())}, "
              f"{'NULL' if pending_ddl is None else quote_text(pending_ddl)}, "
              f"{quote_text(mark.offsets) if mark.offsets else 'NULL'}")
    return (f"INSERT INTO {CHECKPOINT_TABLE} (stream, slot, file, pos, gtid_set, applied, pending_ddl, offsets) "
            f"VALUES ({values}) ON DUPLICATE KEY UPDATE file = VALUES(file), pos = VALUES(pos), "
            "gtid_set = VALUES(gtid_set), applied = VALUES(applied), pending_ddl = VALUES(pending_ddl), "
            "offsets = VALUES(offsets)")


def fold_checkpoints(downstream: Downstream, stream: str, resume: Resume) -> None:
    """Replace the previous run's rows by one (slot 0) that says the same."""
    downstream.execute(f"DELETE FROM {CHECKPOINT_TABLE} WHERE stream = {quote_text(stream)}")
    downstream.execute(slot_sql(stream, 0, resume.checkpoint, sorted(resume.applied), resume.pending_ddl))
    downstream.commit()
