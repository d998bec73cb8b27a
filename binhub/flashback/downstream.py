"""The database a flashback or a replay writes into: one PyMySQL connection, one transaction per
transaction of the range, in the session settings the rendered SQL needs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pymysql  # type: ignore[import-untyped, unused-ignore]

from binhub.errors import ConnectionFailed, FlashbackRefused
from binhub.sinks.mysql.sql import SqlColumn, quote_name

__all__ = ["SESSION_SQL", "Downstream", "DownstreamAddress", "RowChanged"]

# What every literal of binhub.sinks.mysql.sql assumes: UTC TIMESTAMPs, backslash escapes, and (as
# mysqldump does) zero dates and explicit zeros in AUTO_INCREMENT columns kept as they were.
SESSION_SQL = ("SET NAMES utf8mb4", "SET time_zone = '+00:00'", "SET sql_mode = 'NO_AUTO_VALUE_ON_ZERO'")


@dataclass(frozen=True, slots=True)
class DownstreamAddress:
    host: str
    port: int
    user: str
    password: str = field(default="", repr=False)

    def __str__(self) -> str:
        return f"mysql://{self.user}@{self.host}:{self.port}"


class RowChanged(FlashbackRefused):
    """A row no longer holds what the range left in it: undoing the range would lose a later change."""

    def __init__(self, message: str, *, db: str, table: str, key: Mapping[str, Any], hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.db, self.table, self.key = db, table, dict(key)


class Downstream:
    def __init__(self, address: DownstreamAddress) -> None:
        self.address = address
        try:
            self.conn = pymysql.connect(host=address.host, port=address.port, user=address.user,
                                        password=address.password, charset="utf8mb4", autocommit=True)
        except pymysql.MySQLError as exc:
            raise ConnectionFailed(f"cannot connect to {address}: {exc.args[-1] if exc.args else exc}") from None
        with self.conn.cursor() as cur:
            for sql in SESSION_SQL:
                cur.execute(sql)
        self._columns: dict[tuple[str, str], dict[str, SqlColumn]] = {}

    def columns(self, db: str, table: str, _file: str = "", _pos: int = 0) -> Mapping[str, SqlColumn]:
        """The table's columns as the downstream defines them (information_schema)."""
        found = self._columns.get((db, table))
        if found is None:
            with self.conn.cursor() as cur:
                cur.execute("SELECT COLUMN_NAME, COLUMN_TYPE, CHARACTER_SET_NAME FROM information_schema.COLUMNS "
                            "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION", (db, table))
                found = {name: SqlColumn.of(name, sql_type, charset) for name, sql_type, charset in cur.fetchall()}
            if not found:
                raise FlashbackRefused(f"{db}.{table} does not exist on {self.address}")
            self._columns[(db, table)] = found
        return found

    def forget_columns(self) -> None:
        """After DDL: read the tables' columns again."""
        self._columns.clear()

    def query_one(self, sql: str) -> tuple[Any, ...] | None:
        with self.conn.cursor() as cur:
            cur.execute(sql)
            row: tuple[Any, ...] | None = cur.fetchone()
            return row

    def use(self, db: str) -> None:
        """The default database of the DDL that follows."""
        with self.conn.cursor() as cur:
            cur.execute(f"USE {quote_name(db)}")

    def begin(self) -> None:
        self.conn.begin()

    def execute(self, statements: Iterable[str]) -> int:
        """Run statements in the open transaction; the number of rows they changed."""
        changed = 0
        with self.conn.cursor() as cur:
            for sql in statements:
                changed += cur.execute(sql)
        return changed

    def commit(self) -> None:
        self.conn.commit()

    def rollback(self) -> None:
        self.conn.rollback()

    def close(self) -> None:
        self.conn.close()
