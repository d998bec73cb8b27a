"""The SQL of one row change, and of its inverse, from binhub JSON (literals by
:mod:`binhub.sinks.mysql.sql`, with the column types of the table as the change was written).

A change's ``pk`` names the key columns; a table without a primary key has the whole row there,
and its statements match the whole image (NULL-safe) with ``LIMIT 1``, as the primary changed one
of identical rows.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from binhub.errors import FlashbackRefused
from binhub.schema import Position, SchemaHistory, TableName
from binhub.sinks.mysql.sql import (
    SESSION_SETTINGS,
    Kind,
    SqlColumn,
    delete_sql,
    from_json,
    insert_sql,
    quote_name,
    quote_table,
    update_sql,
    where_literal,
)

__all__ = ["SESSION_SQL", "ColumnLookup", "HistoryColumns", "change_sql", "current_row_check", "identical_rows_count",
           "insert_rows_sql", "invert"]

# What the SQL text assumes, as the mariadb/mysql client is to run it (the MySQL sink's session).
SESSION_SQL = ("SET NAMES utf8mb4", SESSION_SETTINGS)

# (db, table, file, pos) -> the table's columns by name
ColumnLookup = Callable[[str, str, str, int], Mapping[str, SqlColumn]]


class HistoryColumns:
    """Column types from the store's schema history, as the table was at a change's position.

    The history changes only at its DDL entries, so a lookup is cached per table and number of
    entries before the position (a flashback asks newest first: a cursor would start over at every
    step back)."""

    def __init__(self, history: SchemaHistory, *, flavour: str) -> None:
        self.history = history
        self.mariadb = flavour == "mariadb"
        self._positions = [e.position for e in history.entries]
        self._cache: dict[tuple[str, str, int], dict[str, SqlColumn]] = {}

    def __call__(self, db: str, table: str, file: str, pos: int) -> Mapping[str, SqlColumn]:
        position = Position.of(file, pos)
        key = (db, table, bisect_left(self._positions, position))
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._columns(db, table, position)
        return found

    def _columns(self, db: str, table: str, position: Position) -> dict[str, SqlColumn]:
        schema = self.history.table_at(TableName(db, table), position)
        if schema is None or not schema.known:
            raise FlashbackRefused(f"the schema history does not know the columns of {db}.{table} at "
                                   f"{position}", hint="rebuild the history (binhub schema) or seed it")
        out: dict[str, SqlColumn] = {}
        for name, info in zip(schema.column_names(), schema.columns, strict=True):
            column = SqlColumn.of(name, info.sql_type or "", info.charset)
            if column.kind is Kind.JSON and self.mariadb:
                column = SqlColumn(name, Kind.TEXT, "utf8mb4")  # MariaDB's JSON is LONGTEXT: no CAST AS JSON
            out[name] = column
        return out


def invert(change: dict[str, Any]) -> dict[str, Any]:
    """The change that undoes ``change``: INSERT ↔ DELETE, an UPDATE with its images swapped."""
    op = change["op"]
    undo = {"insert": "delete", "delete": "insert", "update": "update"}[op]
    return {**change, "op": undo, "before": change["after"], "after": change["before"]}


def _values(change: dict[str, Any], image: str, columns: Mapping[str, SqlColumn],
            names: Iterable[str] | None = None) -> dict[str, Any]:
    """The image's values (only ``names``, if given) in binhub form."""
    row = change[image]
    try:
        return {name: from_json(columns[name], row[name]) for name in (row if names is None else names)}
    except KeyError as exc:
        raise FlashbackRefused(f"{change['db']}.{change['table']} has no column {exc.args[0]} in the schema "
                               f"history at {change['file']}:{change['pos']}") from None


def _key(change: dict[str, Any], image: str, columns: Mapping[str, SqlColumn],
         ) -> tuple[list[tuple[SqlColumn, Any]], bool]:
    """The columns that find the image's row: its primary key, or the whole row where there is none."""
    row = change[image]
    names = list(change["pk"] or row)
    whole_row = len(names) == len(row)
    values = _values(change, image, columns, names)
    return [(columns[n], values[n]) for n in names], whole_row


def change_sql(change: dict[str, Any], columns: Mapping[str, SqlColumn]) -> str | None:
    """The statement applying ``change`` (None for an UPDATE that changes nothing)."""
    op = change["op"]
    if op == "insert":
        return insert_rows_sql(change["db"], change["table"], [change], columns)
    table = quote_table(change["db"], change["table"])
    key, whole_row = _key(change, "before", columns)
    if op == "delete":
        return delete_sql(table, key, whole_row=whole_row)
    before, after = change["before"], change["after"]
    changed = [n for n, v in after.items() if n not in before or before[n] != v]  # binhub JSON compares exactly
    if not changed:
        return None
    values = _values(change, "after", columns, changed)
    return update_sql(table, [(columns[n], values[n]) for n in changed], key, whole_row=whole_row)


def insert_rows_sql(db: str, table: str, changes: Sequence[dict[str, Any]], columns: Mapping[str, SqlColumn]) -> str:
    """One INSERT of the after images of ``changes`` (inserts into one table, with the same columns)."""
    names = list(changes[0]["after"])
    return insert_sql(quote_table(db, table), [columns[n] for n in names],
                      [list(_values(c, "after", columns, names).values()) for c in changes])


def current_row_check(change: dict[str, Any], columns: Mapping[str, SqlColumn]) -> str:
    """A query, run before undoing ``change`` (in the same transaction), that locks the row the
    change left and answers whether the row with its key
    still hold every value the change wrote (no row: absent). For a DELETE the row must be absent."""
    table = quote_table(change["db"], change["table"])
    image = "after" if change["op"] != "delete" else "before"
    values = _values(change, image, columns)
    key, _ = _key(change, image, columns)
    where = " AND ".join(f"{quote_name(c.name)} <=> {where_literal(c, v)}" for c, v in key)
    same = " AND ".join(f"{quote_name(columns[n].name)} <=> {where_literal(columns[n], v)}"
                        for n, v in values.items()) or "TRUE"
    return f"SELECT {same} FROM {table} WHERE {where} LIMIT 1 FOR UPDATE"


def identical_rows_count(change: dict[str, Any], image: str, columns: Mapping[str, SqlColumn]) -> str:
    """A query counting (and locking) the rows identical to the change's ``image``, NULL-safe."""
    values = _values(change, image, columns)
    same = " AND ".join(f"{quote_name(columns[n].name)} <=> {where_literal(columns[n], v)}" for n, v in values.items())
    return f"SELECT COUNT(*) FROM {quote_table(change['db'], change['table'])} WHERE {same or 'TRUE'} FOR UPDATE"
