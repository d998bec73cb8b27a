"""The downstream's tables as the sink writes to them: columns by NAME, primary and unique keys.

Read from the downstream's ``information_schema`` (not from the upstream's schema): a downstream
table may order its columns differently or have extra ones, and the sink matches by name. Cached
per table, forgotten after every DDL the sink runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import pymysql  # type: ignore[import-untyped, unused-ignore]

from binhub.errors import ApplyError
from binhub.sinks.mysql.connection import Downstream
from binhub.sinks.mysql.sql import JSON_CONVERTED, SqlColumn, quote_table

__all__ = ["Catalog", "DownstreamTable"]


@dataclass(frozen=True, slots=True)
class DownstreamTable:
    db: str
    table: str
    columns: dict[str, SqlColumn]
    primary_key: tuple[str, ...]  # () without one
    unique_keys: tuple[tuple[str, ...], ...]  # every unique key, the primary key first
    # Columns whose binhub JSON form differs from binhub form (base64, geometry and undecoded
    # objects): only these are converted when a row is read back.
    converted: frozenset[str] = frozenset()
    # The scheduler's keys: the whole table's, and for each unique key its prefix and a getter of
    # its values from an image (one value for a key of one column, else a tuple), made once.
    whole_key: str = field(init=False, repr=False, compare=False)
    key_getters: tuple[tuple[str, Callable[[dict[str, Any]], Any], bool], ...] = field(
        init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "whole_key", f"{self.db}.{self.table}")
        object.__setattr__(self, "key_getters", tuple((f"{self.db}.{self.table}/{i}/", itemgetter(*key), len(key) == 1)
                                                      for i, key in enumerate(self.unique_keys)))

    @property
    def quoted(self) -> str:
        return quote_table(self.db, self.table)

    def column(self, name: str) -> SqlColumn:
        found = self.columns.get(name)
        if found is None:
            raise ApplyError(f"the downstream table {self.db}.{self.table} has no column {name!r}, which the "
                             f"upstream row carries", hint="add the column downstream (columns are matched by "
                             "name), or --exclude the table")
        return found


class Catalog:
    def __init__(self, downstream: Downstream, *, reconnect_for: float = 300.0) -> None:
        self.downstream = downstream
        self.reconnect_for = reconnect_for
        self._tables: dict[tuple[str, str], DownstreamTable] = {}

    def forget(self) -> None:
        self._tables.clear()

    def table(self, db: str, table: str) -> DownstreamTable:
        key = (db, table)
        found = self._tables.get(key)
        if found is None:
            try:
                found = self.downstream.retrying(lambda: self._read(db, table), self.reconnect_for)
            except pymysql.err.MySQLError as exc:
                raise ApplyError(f"cannot read the columns of {db}.{table} from the downstream: {exc}") from exc
            self._tables[key] = found
        return found

    def _read(self, db: str, table: str) -> DownstreamTable:
        rows = self.downstream.fetch(
            "SELECT COLUMN_NAME, COLUMN_TYPE, CHARACTER_SET_NAME FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION", (db, table))
        if not rows:
            raise ApplyError(f"the downstream has no table {db}.{table}",
                             hint="create it downstream (or let the stream's CREATE TABLE reach it), or "
                                  "--exclude it / --rename it to a table that exists")
        columns = {name: SqlColumn.of(name, column_type, charset) for name, column_type, charset in rows}
        keys: dict[str, list[str]] = {}
        for index, column in self.downstream.fetch(
                "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s "
                "AND TABLE_NAME = %s AND NON_UNIQUE = 0 ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, "
                "SEQ_IN_INDEX", (db, table)):
            keys.setdefault(index, []).append(column)
        primary = tuple(keys.get("PRIMARY", ()))
        converted = frozenset(n for n, c in columns.items() if c.kind in JSON_CONVERTED)
        return DownstreamTable(db, table, columns, primary, tuple(tuple(v) for v in keys.values()), converted)
