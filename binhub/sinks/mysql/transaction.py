"""One upstream transaction turned into the statements that apply it downstream, and its keys.

:class:`TransactionBuilder` takes a transaction's row changes in order — as the decoder's
:class:`~binhub.binlog.changes.RowChange` records (a stream), or as binhub JSON documents (Kafka, a
jsonl directory: their values are turned back into binhub form first) — and makes statements for the downstream tables (matched by column name, renamed by
``--rename``): consecutive inserts into one table with the same columns become one multi-row
INSERT (bounded by the downstream's ``max_allowed_packet``); an UPDATE or DELETE finds its row by
the downstream table's primary key, else by a unique key whose values are not NULL, else by the
whole before image (``<=>``, ``LIMIT 1``). Safe mode writes INSERT as REPLACE and UPDATE as DELETE
of the old key plus REPLACE of the new row, so rows the target already holds are no conflict.

Each change also yields its *keys* for the parallel scheduler: one per unique key of the table
(the primary key included) with the values of the before and the after image; a table without
a unique key has one key for the whole table, so its changes stay in order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from binhub.binlog.changes import RowChange
from binhub.errors import ApplyError
from binhub.sinks.base import Checkpoint
from binhub.sinks.mysql.catalog import Catalog, DownstreamTable
from binhub.sinks.mysql.options import OnConflict, Renames
from binhub.sinks.mysql.sql import (
    InsertMode,
    SqlColumn,
    delete_sql,
    from_json,
    insert_sql,
    literal,
    update_sql,
)

__all__ = ["Ddl", "Statement", "Transaction", "TransactionBuilder"]

_BATCH_SLACK = 64 << 10  # room left in max_allowed_packet for the statement around the values


@dataclass(slots=True)
class Statement:
    sql: str
    op: str  # insert, update or delete
    table: DownstreamTable
    gtid: str | None
    must_match: bool  # an UPDATE/DELETE that matches no row is a conflict (a missing row)
    # The row as a conflict names it (its key, or the first rows of a batch), and the statements
    # that replace this one: made only when a conflict happens, which most statements never meet.
    row: Callable[[], str]
    on_conflict: Callable[[OnConflict], list[str]]


@dataclass(slots=True)
class Ddl:
    sql: str
    gtid: str | None
    session: dict[str, Any]  # default database, sql_mode, collations, time zone on the primary
    db: str
    table: str | None


@dataclass(slots=True)
class Transaction:
    gtid: str | None = None
    statements: list[Statement] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)
    ddl: Ddl | None = None
    size: int = 0  # bytes of SQL
    rows: int = 0  # row changes
    checkpoint: Checkpoint | None = None
    seq: int = 0

    @property
    def ident(self) -> str:
        """How the checkpoint names it: its GTID, or where it ends."""
        if self.gtid:
            return self.gtid
        assert self.checkpoint is not None
        return f"{self.checkpoint.file}:{self.checkpoint.pos}"


def _positional(db: str, table: str, gtid: str | None) -> ApplyError:
    return ApplyError(f"the row change of {db}.{table} (GTID {gtid}) has positional column names: the schema "
                      "history did not know the table's columns there, so binhub cannot tell which downstream "
                      "column each value belongs to",
                      hint="seed the schema history for the table (binhub schema) and restart the stream")


def _from_json(table: DownstreamTable, image: dict[str, Any] | None) -> dict[str, Any] | None:
    """A binhub JSON image's values in binhub form (only the columns whose JSON form differs)."""
    converted = table.converted
    if image is not None and converted:
        columns = table.columns
        for name in converted.intersection(image):
            image[name] = from_json(columns[name], image[name])
    return image


def _key_text(values: tuple[Any, ...]) -> str:
    return orjson.dumps(values, default=repr).decode()


@dataclass(slots=True)
class _InsertBatch:
    table: DownstreamTable
    columns: list[SqlColumn]
    names: tuple[str, ...]
    rows: list[list[Any]]
    size: int
    gtid: str | None


class TransactionBuilder:
    """Builds a :class:`Transaction` from a transaction's documents (module docstring)."""

    def __init__(self, catalog: Catalog, *, renames: Renames, safe_mode: bool, max_packet: int) -> None:
        self.catalog = catalog
        self.renames = renames
        self.safe_mode = safe_mode
        self.max_batch = max(1 << 16, max_packet - _BATCH_SLACK)
        self.txn = Transaction()
        self._batch: _InsertBatch | None = None
        self._tables: dict[tuple[str, str], DownstreamTable] = {}

    def take(self) -> Transaction:
        """The transaction built so far (its statements), and a fresh one to continue with."""
        self._flush()
        txn, self.txn = self.txn, Transaction(gtid=self.txn.gtid)
        return txn

    def reset(self) -> None:
        self._batch = None
        self.txn = Transaction()

    # -- changes --------------------------------------------------------------------------------
    def add(self, doc: dict[str, Any]) -> None:
        """A change as a binhub JSON document (read with orjson): from Kafka, a jsonl directory, or
        a stream's DDL line."""
        txn = self.txn
        if txn.gtid is None:
            txn.gtid = doc.get("gtid")
        if doc["op"] == "ddl":
            self._flush()
            txn.ddl = Ddl(doc["sql"], doc.get("gtid"), doc.get("session") or {}, doc.get("db") or "", doc.get("table"))
            return
        if doc.get("positional"):
            raise _positional(doc["db"], doc["table"], doc.get("gtid"))
        table = self._table(doc["db"], doc["table"])
        self._change(table, doc["op"], _from_json(table, self._image(table, doc["before"])),
                     _from_json(table, self._image(table, doc["after"])), doc.get("gtid"),
                     complete=not doc.get("partial"))

    def add_change(self, change: RowChange) -> None:
        """A change as the decoder made it (values in binhub form already)."""
        txn = self.txn
        if txn.gtid is None:
            txn.gtid = change.gtid
        if not change.names_known:
            raise _positional(change.db, change.table, change.gtid)
        table = self._table(change.db, change.table)
        self._change(table, change.op, self._image(table, change.before), self._image(table, change.after),
                     change.gtid, complete=change.complete)

    def _table(self, db: str, table: str) -> DownstreamTable:
        """The downstream table of an upstream one (renamed), found once until :meth:`forget_tables`."""
        self.txn.rows += 1
        found = self._tables.get((db, table))
        if found is None:
            found = self._tables[(db, table)] = self.catalog.table(*self.renames(db, table))
        return found

    def forget_tables(self) -> None:
        """After a DDL: the downstream's tables are read again."""
        self._tables.clear()
        self.catalog.forget()

    def _change(self, table: DownstreamTable, op: str, before: dict[str, Any] | None, after: dict[str, Any] | None,
                gtid: str | None, *, complete: bool) -> None:
        self._keys(table, before, after)
        if op == "insert":
            assert after is not None
            self._insert(table, after, gtid)
            return
        self._flush()
        assert before is not None
        if op == "update":
            assert after is not None
            self._update(table, before, after, gtid, complete=complete)
        else:
            self._delete(table, before, gtid)

    @staticmethod
    def _image(table: DownstreamTable, image: dict[str, Any] | None) -> dict[str, Any] | None:
        """The image, checked: every column it names exists downstream."""
        if image is not None and not table.columns.keys() >= image.keys():
            for name in image:
                table.column(name)  # names the one the downstream lacks
        return image

    def _keys(self, table: DownstreamTable, *images: dict[str, Any] | None) -> None:
        keys = self.txn.keys
        if not table.unique_keys:
            keys.add(table.whole_key)
            return
        for image in images:
            if image is None:
                continue
            for prefix, values_of, single in table.key_getters:
                try:
                    values = values_of(image)
                except KeyError:  # an image without the key's columns: the primary key's stands for the table
                    if prefix is table.key_getters[0][0]:
                        keys.add(table.whole_key)
                    continue
                if single:  # (an integer's digits cannot be mistaken for the JSON array of another value)
                    if values is not None:
                        keys.add(prefix + (str(values) if type(values) is int else _key_text((values,))))
                elif None not in values:
                    keys.add(prefix + _key_text(values))

    # -- statements -----------------------------------------------------------------------------
    def _add(self, statement: Statement) -> None:
        self.txn.statements.append(statement)
        self.txn.size += len(statement.sql)

    def _insert(self, table: DownstreamTable, after: dict[str, Any], gtid: str | None) -> None:
        names = tuple(after)
        values = list(after.values())
        size = sum([len(v) for v in values if isinstance(v, (str, bytes))], 8 * len(values)) * 2  # noqa: UP038 (faster)
        batch = self._batch
        if batch is not None and (batch.table is not table or batch.names != names
                                  or batch.size + size > self.max_batch or batch.gtid != gtid):
            self._flush()
            batch = None
        if batch is None:
            self._batch = _InsertBatch(table, [table.columns[n] for n in names], names, [values], size, gtid)
        else:
            batch.rows.append(values)
            batch.size += size

    def _flush(self) -> None:
        batch = self._batch
        if batch is None:
            return
        self._batch = None
        table, columns, rows = batch.table, batch.columns, batch.rows
        mode = InsertMode.REPLACE if self.safe_mode else InsertMode.INSERT

        def on_conflict(policy: OnConflict) -> list[str]:
            alt = InsertMode.REPLACE if policy is OnConflict.OVERWRITE else InsertMode.IGNORE
            return [insert_sql(table.quoted, columns, rows, alt)]

        def shown() -> str:
            named = table.primary_key or batch.names
            return ", ".join("(" + ", ".join(f"{c.name}={literal(c, v)[:40]}" for c, v in zip(columns, row, strict=True)
                                             if c.name in named) + ")" for row in rows[:3]) + (
                f" and {len(rows) - 3} more rows" if len(rows) > 3 else "")
        self._add(Statement(insert_sql(table.quoted, columns, rows, mode), "insert", table, batch.gtid, False,
                            shown, on_conflict))

    def _where(self, table: DownstreamTable, before: dict[str, Any]) -> tuple[list[tuple[SqlColumn, Any]], bool]:
        """(key pairs, whole row?) that find the row downstream (the image's columns are checked)."""
        columns = table.columns
        for key in table.unique_keys:
            values = [before.get(c) for c in key]
            if None not in values:
                return [(columns[c], v) for c, v in zip(key, values, strict=True)], False
        return [(columns[c], v) for c, v in before.items()], True

    @staticmethod
    def _shown(where: list[tuple[SqlColumn, Any]]) -> Callable[[], str]:
        return lambda: ", ".join(f"{c.name}={literal(c, v)[:60]}" for c, v in where[:8])

    def _update(self, table: DownstreamTable, before: dict[str, Any], after: dict[str, Any], gtid: str | None,
                *, complete: bool) -> None:
        where, whole = self._where(table, before)
        columns = table.columns  # (the images' columns are checked)
        changed = [(columns[n], v) for n, v in after.items() if n not in before or before[n] != v
                   or type(before[n]) is not type(v)]
        assignments = changed or [(columns[n], v) for n, v in after.items()]

        def delete_and_replace() -> list[str]:
            return [delete_sql(table.quoted, where, whole_row=whole),
                    insert_sql(table.quoted, [columns[n] for n in after], [list(after.values())],
                               InsertMode.REPLACE)]
        if self.safe_mode:
            if not complete:
                raise ApplyError(f"safe mode needs full row images, and {table.db}.{table.table}'s update "
                                 f"(GTID {gtid}) carries only some columns (binlog_row_image is not FULL)")
            for sql in delete_and_replace():
                self._add(Statement(sql, "update", table, gtid, False, self._shown(where), lambda _: []))
            return

        def on_conflict(policy: OnConflict) -> list[str]:
            if policy is OnConflict.SKIP:
                return []
            if not complete:
                raise ApplyError(f"--on-conflict overwrite needs full row images, and {table.db}.{table.table}'s "
                                 f"update (GTID {gtid}) carries only some columns")
            return delete_and_replace()
        self._add(Statement(update_sql(table.quoted, assignments, where, whole_row=whole), "update", table, gtid,
                            True, self._shown(where), on_conflict))

    def _delete(self, table: DownstreamTable, before: dict[str, Any], gtid: str | None) -> None:
        where, whole = self._where(table, before)
        self._add(Statement(delete_sql(table.quoted, where, whole_row=whole), "delete", table, gtid,
                            not self.safe_mode, self._shown(where), lambda _: []))
