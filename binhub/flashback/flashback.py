"""Flashback: undo every row change of a range of the store, newest first, one transaction per
transaction of the range (``binhub flashback``).

The range is read once, oldest first, into a :class:`~binhub.flashback.spool.Spool` (spilled to
disk past a memory limit) and given back newest first; each change becomes its inverse (INSERT ↔
DELETE, an UPDATE with its images swapped). DDL in the range is refused unless skipped explicitly:
its rows could not be undone with the schema they would meet. Rows with MINIMAL/NOBLOB images
(``partial``) or of a table whose columns binhub does not know (``positional``) are refused too.

With a downstream (``--apply``), each undone transaction first checks, with the rows locked
(``SELECT … FOR UPDATE``), that every row it touches still holds what the range left in it; a row
changed since is refused, naming the row and the later transaction of the store that changed it,
unless ``force``. Every row is also checked before anything is written, so a refusal leaves the
downstream as it was.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import orjson

from binhub.errors import FlashbackRefused
from binhub.flashback.bounds import RangeBounds
from binhub.flashback.reading import DecoderFactory, TransactionMark, read_changes, read_span
from binhub.flashback.span import Span, locate
from binhub.flashback.spool import Spool
from binhub.flashback.statements import (
    SESSION_SQL,
    ColumnLookup,
    change_sql,
    current_row_check,
    identical_rows_count,
    insert_rows_sql,
    invert,
)
from binhub.sinks.mysql.connection import Downstream
from binhub.sinks.mysql.sql import SqlColumn
from binhub.store.reader import StoreReader

__all__ = ["DdlInRange", "Flashback", "FlashbackConfig", "RowChanged", "UndoTransaction"]

log = logging.getLogger(__name__)
HOLDER = "flashback"
# A multi-row INSERT of --sql holds at most this many rows and about this many bytes of values
# (max_allowed_packet is 16 MiB by default on MariaDB, 64 MiB on MySQL 8).
INSERT_BATCH = 500
INSERT_BYTES = 4 << 20
_WRITE_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class FlashbackConfig:
    bounds: RangeBounds
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    skip_ddl: bool = False
    force: bool = False
    memory_limit: int = 256 << 20
    temp_dir: Path | None = None


class RowChanged(FlashbackRefused):
    """A row no longer holds what the range left in it: undoing the range would lose a later change."""

    def __init__(self, message: str, *, db: str, table: str, key: Mapping[str, Any], hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.db, self.table, self.key = db, table, dict(key)


@dataclass(frozen=True, slots=True)
class DdlInRange:
    gtid: str | None
    file: str
    pos: int
    sql: str


@dataclass(slots=True)
class UndoTransaction:
    """One transaction of the range and its changes, newest first: read from the spool as they are
    consumed (a transaction may be larger than memory), once, before the next transaction."""

    mark: TransactionMark
    changes: Iterator[dict[str, Any]]

    def comment(self) -> str:
        when = datetime.fromtimestamp(self.mark.time, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"-- undoes GTID {self.mark.gtid or '(none)'} committed {when} at {self.mark.file}:{self.mark.pos}"


class Flashback:
    """``await collect()`` the range, then :meth:`write_sql` or :meth:`apply` its undoing."""

    def __init__(self, config: FlashbackConfig, reader: StoreReader, decoders: DecoderFactory,
                 columns: ColumnLookup) -> None:
        self.config = config
        self.reader = reader
        self.decoders = decoders
        self.columns = columns
        self.span: Span | None = None
        self.ddl: list[DdlInRange] = []
        self.spool = Spool(config.memory_limit, config.temp_dir)
        self.statements = 0
        self.rows = 0  # row changes undone

    async def collect(self) -> Span:
        """Read the range into the spool; refuse DDL (unless skipped) and images flashback cannot undo."""
        self.span = span = await locate(self.reader, self.config.bounds, holder=HOLDER)
        decoder = self.decoders(self.config.include, self.config.exclude)
        async for piece in read_span(self.reader, span, decoder, holder=HOLDER):
            if isinstance(piece, TransactionMark):
                self.spool.end(piece)
                continue
            if b'"op":"ddl"' in piece or b'"partial":true' in piece or b'"positional":true' in piece:
                piece = self._screen(piece)
            if piece:
                self.spool.add(piece)
        if self.ddl and not self.config.skip_ddl:
            listed = "; ".join(f"{d.gtid or f'{d.file}:{d.pos}'}: {d.sql}" for d in self.ddl[:5])
            raise FlashbackRefused(
                f"the range holds {len(self.ddl)} DDL statement(s), which flashback does not invert: {listed}",
                hint="narrow the range to exclude them, or give --skip-ddl to undo the row changes only "
                     "(the DDL stays; undo it by hand first if the rows need the old columns)")
        for d in self.ddl:
            log.warning("flashback skips DDL %s at %s:%d: %s", d.gtid, d.file, d.pos, d.sql)
        return span

    def _screen(self, chunk: bytes) -> bytes:
        kept = []
        for line in chunk.splitlines(keepends=True):
            change = orjson.loads(line)
            where = f"{change['db']}.{change['table']} at {change['file']}:{change['pos']} (GTID {change['gtid']})"
            if change["op"] == "ddl":
                self.ddl.append(DdlInRange(change["gtid"], change["file"], change["pos"], change["sql"]))
                continue
            if change.get("positional"):
                raise FlashbackRefused(f"the columns of {where} are unknown to the schema history: binhub "
                                       "will not guess which value belongs to which column")
            if change.get("partial"):
                raise FlashbackRefused(f"{where} was logged with binlog_row_image MINIMAL or NOBLOB: the "
                                       "images lack columns, so the change cannot be undone",
                                       hint="flashback needs binlog_row_image=FULL on the primary")
            kept.append(line)
        return b"".join(kept)

    # -- the undoing ------------------------------------------------------------------------------
    def undo_transactions(self) -> Iterator[UndoTransaction]:
        """The range's transactions newest first, each with its inverse changes newest first."""
        for mark, lines in self.spool.newest_first():
            changes = map(orjson.loads, lines)
            first = next(changes, None)
            if first is not None:
                yield UndoTransaction(mark, itertools.chain((first,), changes))

    def _columns_of(self, change: dict[str, Any]) -> Mapping[str, SqlColumn]:
        return self.columns(change["db"], change["table"], change["file"], change["pos"])

    def write_sql(self, out: TextIO) -> None:
        """The undoing as SQL for the mariadb/mysql client: BEGIN … COMMIT per transaction."""
        out.write("".join(setting + ";\n" for setting in SESSION_SQL))
        pending: list[str] = []  # written in pieces of about _WRITE_BYTES: one write per statement is slow
        size = 0
        for undo in self.undo_transactions():
            pending.append(undo.comment() + "\nBEGIN;\n")
            for sql in self._statements(undo.changes):
                pending.append(sql + ";\n")
                size += len(sql)
                self.statements += 1
                if size > _WRITE_BYTES:
                    out.write("".join(pending))
                    pending.clear()
                    size = 0
            pending.append("COMMIT;\n")
        out.write("".join(pending))

    def _statements(self, changes: Iterable[dict[str, Any]]) -> Iterator[str]:
        """The undoing statements of one transaction's changes (newest first); the rows re-inserted
        into one table one after another go in multi-row INSERTs."""
        batch: list[dict[str, Any]] = []
        batch_bytes = 0
        for change in changes:
            undo = invert(change)
            self.rows += 1
            if undo["op"] == "insert":
                size = sum(len(v) for v in undo["after"].values() if isinstance(v, str))
                if batch and (len(batch) >= INSERT_BATCH or batch_bytes + size > INSERT_BYTES
                              or not _same_shape(batch[0], undo)):
                    yield self._insert(batch)
                    batch, batch_bytes = [], 0
                batch.append(undo)
                batch_bytes += size
                continue
            if batch:
                yield self._insert(batch)
                batch, batch_bytes = [], 0
            sql = change_sql(undo, self._columns_of(change))
            if sql is not None:
                yield sql
        if batch:
            yield self._insert(batch)

    def _insert(self, batch: list[dict[str, Any]]) -> str:
        first = batch[0]
        return insert_rows_sql(first["db"], first["table"], batch, self._columns_of(first))

    async def apply(self, downstream: Downstream) -> int:
        """Undo the range in ``downstream``; the number of transactions committed."""
        if not self.config.force:
            await self._check_all(downstream)
        committed = 0
        for undo in self.undo_transactions():
            try:
                for change in undo.changes:
                    columns = self._columns_of(change)
                    if not self.config.force:
                        await self._check(downstream, change, columns)
                    sql = change_sql(invert(change), columns)
                    self.rows += 1
                    if sql is not None:
                        downstream.execute(sql)
                        self.statements += 1
            except BaseException:
                downstream.rollback()
                raise
            downstream.commit()
            committed += 1
        return committed

    async def _check_all(self, downstream: Downstream) -> None:
        """Every row the range touched, as the range left it (its newest change), before any write;
        then the rows of tables without a key (see :meth:`_check_keyless`)."""
        seen: set[bytes] = set()
        keyless: dict[bytes, dict[str, Any]] = {}
        for undo in self.undo_transactions():
            for change in undo.changes:
                if _keyless(change):
                    keyless.setdefault(_image_key(change, _left(change)), change)
                key = orjson.dumps([change["db"], change["table"], change["pk"]])
                if key in seen:
                    continue
                seen.add(key)
                await self._check(downstream, change, self._columns_of(change))
        if keyless:
            await self._check_keyless(downstream, keyless)

    async def _check_keyless(self, downstream: Downstream, left: dict[bytes, dict[str, Any]]) -> None:
        """Rows of a table without a key are told apart by nothing but their values: the range is
        refused when a transaction after it changed the number of rows identical to one the range
        left (deleted, inserted or updated into), the whole before-image standing for the key.
        The store after the range is read once for those tables; a change made outside the
        replication stream is seen only where the row the undo needs is gone."""
        assert self.span is not None
        tables = {(c["db"], c["table"]) for c in left.values()}
        decoder = self.decoders([_glob(db, table) for db, table in sorted(tables)], [])
        net: dict[bytes, int] = {}
        first: dict[bytes, str] = {}
        async for piece in read_changes(self.reader, decoder, self.span.end_file, self.span.end_pos, holder=HOLDER):
            if isinstance(piece, TransactionMark):
                continue
            for line in piece.splitlines():
                later = orjson.loads(line)
                if later["op"] == "ddl" or (later["db"], later["table"]) not in tables:
                    continue
                for image, step in (("before", -1), ("after", 1)):
                    if later[image] is None:
                        continue
                    key = _image_key(later, image)
                    if key in left:
                        net[key] = net.get(key, 0) + step
                        first.setdefault(key, str(later["gtid"] or f"{later['file']}:{later['pos']}"))
        for key, delta in net.items():
            if delta == 0:
                continue
            change = left[key]
            columns = self._columns_of(change)
            now = downstream.fetch(identical_rows_count(change, _left(change), columns))[0][0]
            name = f"{change['db']}.{change['table']}"
            raise RowChanged(
                f"the table {name} has no key, and the rows identical to {_key_text(change[_left(change)])} "
                f"(left so by {change['gtid']} in the range) were changed after it: the store shows {first[key]} "
                f"changed them first, {abs(delta)} {'more' if delta > 0 else 'fewer'} since the range, {now} now",
                db=change["db"], table=change["table"], key=change[_left(change)],
                hint="undoing the range would lose that change; check it, then give --force to undo regardless")

    async def _check(self, downstream: Downstream, change: dict[str, Any], columns: Mapping[str, SqlColumn]) -> None:
        if change["op"] == "delete" and _keyless(change):
            return  # identical rows may remain: the count of identical rows is checked (_check_keyless)
        rows = downstream.fetch(current_row_check(change, columns))
        row = rows[0] if rows else None
        held = change["op"] != "delete"
        if (row is not None) == held and (row is None or row[0]):
            return
        what = "was deleted" if row is None else ("was inserted again" if not held else "holds other values")
        later = await self._later_change(change)
        name = f"{change['db']}.{change['table']}"
        raise RowChanged(
            f"the row {name} {_key_text(change['pk'])} {what} since the range "
            f"(it was last changed in the range by {change['gtid']}); "
            + (f"the store shows {later} changed it later" if later else
               "the store shows no later change: it was changed outside the replication stream"),
            db=change["db"], table=change["table"], key=change["pk"] or {},
            hint="undoing the range would lose that change; check it, then give --force to undo regardless")

    async def _later_change(self, change: dict[str, Any]) -> str | None:
        """The first transaction after the range that changed the row (GTID, or file:pos)."""
        assert self.span is not None
        key = change["pk"] or {}
        decoder = self.decoders([_glob(change["db"], change["table"])], [])
        async for piece in read_changes(self.reader, decoder, self.span.end_file, self.span.end_pos,
                                        holder=HOLDER):
            if isinstance(piece, TransactionMark):
                continue
            for line in piece.splitlines():
                later = orjson.loads(line)
                if later["op"] == "ddl" or later["db"] != change["db"] or later["table"] != change["table"]:
                    continue
                for image in (later["before"], later["after"]):
                    if image is not None and all(image.get(k) == v for k, v in key.items()):
                        return str(later["gtid"] or f"{later['file']}:{later['pos']}")
        return None

    def close(self) -> None:
        self.spool.close()


def _keyless(change: dict[str, Any]) -> bool:
    """A change of a table without a primary key: its ``pk`` is the whole row."""
    pk = change["pk"]
    return pk is not None and len(pk) == len(change["after"] if change["after"] is not None else change["before"])


def _left(change: dict[str, Any]) -> str:
    """The image of the row as the change left it (the deleted row's, for a DELETE)."""
    return "before" if change["op"] == "delete" else "after"


def _image_key(change: dict[str, Any], image: str) -> bytes:
    return orjson.dumps([change["db"], change["table"], change[image]], option=orjson.OPT_SORT_KEYS)


def _same_shape(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two inserts of one transaction (one schema) can share one INSERT: one table, the same columns."""
    return (a["db"], a["table"]) == (b["db"], b["table"]) and a["after"].keys() == b["after"].keys()


def _key_text(key: Mapping[str, Any] | None) -> str:
    if not key:
        return ""
    return "(" + ", ".join(f"{k}={v!r}" for k, v in key.items()) + ")"


def _glob(db: str, table: str) -> str:
    """An include glob that matches exactly ``db.table``."""
    special = str.maketrans({"*": "[*]", "?": "[?]", "[": "[[]"})
    return f"{db.translate(special)}.{table.translate(special)}"
