"""SQL rendering against a real MariaDB: the row changes of a table with every column type, decoded
from the primary's binlog, rendered by ``binhub.sinks.mysql.sql`` and executed on a copy of the
table, leave the copy equal to the original (``CHECKSUM TABLE`` and every value as PyMySQL reads it).
Both ways a sink meets values: the row decoder's binhub form, and binhub JSON lines read back."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from binhub.binlog.file import row_changes, row_json_lines
from binhub.sandbox import Sandbox
from binhub.sinks.mysql.sql import (
    SESSION_SETTINGS,
    SqlColumn,
    delete_sql,
    from_json,
    insert_sql,
    quote_table,
    update_sql,
)
from tests.integration.test_rows_decode import TABLE_DDL, run_workload, schema_from_information_schema

SOURCE = "applysql_src"


@pytest.fixture(scope="module")
def source(primary: Sandbox) -> Iterator[tuple[Sandbox, str]]:
    binlog_file = run_workload(primary, SOURCE)
    yield primary, binlog_file
    conn = primary.connect()
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {SOURCE}")
    conn.close()


def downstream_columns(cur: Any, db: str, table: str) -> dict[str, SqlColumn]:
    cur.execute("SELECT COLUMN_NAME, COLUMN_TYPE, CHARACTER_SET_NAME FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s", (db, table))
    return {name: SqlColumn.of(name, column_type, charset) for name, column_type, charset in cur.fetchall()}


def change_sql(change: dict[str, Any], table: str, columns: dict[str, SqlColumn], key: tuple[str, ...]) -> str:
    """The statement of one change (images as binhub form), keyed by ``key``."""
    def pairs(image: dict[str, Any], names: Any) -> list[tuple[SqlColumn, Any]]:
        return [(columns[n], image[n]) for n in names]
    if change["op"] == "insert":
        after = change["after"]
        return insert_sql(table, [columns[n] for n in after], [list(after.values())])
    before = change["before"]
    if change["op"] == "update":
        return update_sql(table, pairs(change["after"], change["after"]), pairs(before, key), whole_row=False)
    return delete_sql(table, pairs(before, key), whole_row=False)


def _replica_of(sb: Sandbox, name: str) -> Any:
    conn = sb.connect()
    cur = conn.cursor()
    cur.execute(f"DROP DATABASE IF EXISTS {name}")
    cur.execute(f"CREATE DATABASE {name}")
    cur.execute(f"USE {name}")
    cur.execute(TABLE_DDL)
    cur.execute(SESSION_SETTINGS)
    return conn


def _table_state(sb: Sandbox, db: str) -> tuple[Any, list[Any]]:
    conn = sb.connect(database=db)
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION time_zone = '+00:00'")
            cur.execute("CHECKSUM TABLE every_type")
            checksum = cur.fetchone()[1]
            cur.execute("SELECT *, ST_AsBinary(g), ST_SRID(g), ST_AsBinary(pt), ST_SRID(pt) FROM every_type ORDER BY id")
            return checksum, list(cur.fetchall())
    finally:
        conn.close()


_copies = itertools.count(1)


@pytest.mark.parametrize("form", ["python", "json"])
def test_rendered_changes_rebuild_every_type(source: tuple[Sandbox, str], form: str) -> None:
    sb, binlog_file = source
    schema = schema_from_information_schema(sb, SOURCE, "every_type")
    schemas = lambda db, table: schema if (db, table) == (SOURCE, "every_type") else None  # noqa: E731
    path = sb.datadir / binlog_file
    if form == "python":
        changes = [{"op": c.op, "before": c.before, "after": c.after} for c in row_changes(path, schemas=schemas)]
    else:
        changes = [orjson.loads(line) for chunk in row_json_lines(path, schemas=schemas)
                   for line in chunk.splitlines()]
    assert len(changes) == 12
    copy = f"applysql_copy{next(_copies)}"
    conn = _replica_of(sb, copy)
    try:
        with conn.cursor() as cur:
            columns = downstream_columns(cur, copy, "every_type")
            if form == "json":
                for change in changes:
                    for image in ("before", "after"):
                        if change[image] is not None:
                            change[image] = {n: from_json(columns[n], v) for n, v in change[image].items()}
            for change in changes:
                cur.execute(change_sql(change, quote_table(copy, "every_type"), columns, ("id",)))
                assert cur.rowcount == 1, change
        assert _table_state(sb, copy) == _table_state(sb, SOURCE)
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE {copy}")
        conn.close()
