"""Column defaults and comments in the schema history: spelled as MariaDB prints them, from DDL
and from information_schema, across ALTERs, and a history written before binhub kept them loads."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from binhub.binlog.query_status import QueryStatus
from binhub.schema.catalog import Catalog, Charset, StatementContext
from binhub.schema.changes import TableName
from binhub.schema.ddl import parse_statement
from binhub.schema.defaults import default_from_information_schema
from binhub.schema.history import SchemaHistory
from binhub.schema.scan import Position, QueryRecord

DATA = Path(__file__).parent.parent / "data" / "schema_history_v1"
CTX = StatementContext("mariadb", Charset("utf8mb4", "utf8mb4_general_ci"))
T = TableName("d", "t")


def catalog_after(*statements: str) -> Catalog:
    catalog = Catalog(server=CTX.server)
    for sql in statements:
        parsed = parse_statement(sql, "d")
        assert parsed.changes, (sql, parsed.reason)
        for change in parsed.changes:
            assert catalog.apply(change, CTX) == [], sql
    return catalog


def defaults(catalog: Catalog, table: TableName = T) -> dict[str, str | None]:
    t = catalog.table(table)
    assert t is not None
    return {c.name or "": c.default for c in t.columns}


# What MariaDB 10.11's information_schema.COLUMNS.COLUMN_DEFAULT said for each of these definitions
# (the integration test asks a live server the same question).
@pytest.mark.parametrize(("definition", "expected"), [
    ("int", "NULL"),
    ("int NOT NULL", None),
    ("int NOT NULL PRIMARY KEY", None),
    ("varchar(10) DEFAULT 'x''y'", "'x''y'"),
    ("varchar(10) DEFAULT _utf8mb4'a' 'b'", "'ab'"),
    ("varchar(9) DEFAULT 'NULL'", "'NULL'"),
    ("varchar(5) DEFAULT NULL", "NULL"),
    ("decimal(5,2) DEFAULT 1.5", "1.50"),
    ("int DEFAULT '7'", "7"),
    ("int DEFAULT -5", "-5"),
    ("double DEFAULT -0.5e1", "-5"),
    ("float DEFAULT 1.50", "1.5"),
    ("bit(3) DEFAULT b'101'", "b'101'"),
    ("tinyint(1) DEFAULT TRUE", "1"),
    ("date DEFAULT '2020-1-2'", "'2020-01-02'"),
    ("datetime(2) DEFAULT '2020-01-02 03:04:05.1'", "'2020-01-02 03:04:05.10'"),
    ("datetime DEFAULT CURRENT_TIMESTAMP", "current_timestamp()"),
    ("timestamp(3) DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)", "current_timestamp(3)"),
    ("varchar(20) DEFAULT now()", "current_timestamp()"),
    ("int DEFAULT (1+2)", "(1 + 2)"),
    ("enum('a','b') DEFAULT 'b'", "'b'"),
    ("json DEFAULT '{}'", "'{}'"),
    ("int AS (1) VIRTUAL", "NULL"),
    ("date DEFAULT CURDATE()", "curdate()"),
    ("varchar(40) DEFAULT uuid()", "uuid()"),
    ("varchar(20) DEFAULT CONCAT('a', 'b')", "concat('a','b')"),
    ("varchar(20) DEFAULT (concat('x', 'y'))", "concat('x','y')"),
    ("int DEFAULT (abs(-3) + 1)", "(abs(-3) + 1)"),
    ("int DEFAULT (1+2*3)", "(1 + 2 * 3)"),
    ("datetime(6) DEFAULT NOW(6)", "current_timestamp(6)"),
    ("varchar(9) DEFAULT 0x41", "'A'"),
    ("int DEFAULT 0x10", "16"),
    ("varchar(5) DEFAULT 5", "'5'"),
    ("time(2) DEFAULT '1:2:3.5'", "'01:02:03.50'"),
    ("year DEFAULT 99", "1999"),
    ("bigint unsigned DEFAULT 18446744073709551615", "18446744073709551615"),
    ("decimal(4,1) DEFAULT -1.25", "-1.3"),
])
def test_a_column_default_is_spelled_as_the_server_prints_it(definition: str, expected: str | None) -> None:
    catalog = catalog_after(f"CREATE TABLE t (c {definition})")
    assert defaults(catalog)["c"] == expected


def test_defaults_and_comments_follow_alter_table() -> None:
    catalog = catalog_after(
        "CREATE TABLE t (id int, a int DEFAULT 3 COMMENT 'the a', b int NOT NULL DEFAULT 4, c int, "
        "PRIMARY KEY (id)) COMMENT='first'",
        "ALTER TABLE t ALTER COLUMN a DROP DEFAULT, ALTER COLUMN b DROP DEFAULT, ALTER c SET DEFAULT '9'",
        "ALTER TABLE t MODIFY a bigint DEFAULT 10, CHANGE c c2 varchar(3) DEFAULT 9 COMMENT 'now text'",
        "ALTER TABLE t COMMENT 'second'")
    table = catalog.table(T)
    assert table is not None and table.comment == "second"
    assert defaults(catalog) == {"id": None, "a": "10", "b": None, "c2": "'9'"}
    assert {c.name: c.comment for c in table.columns} == {"id": None, "a": None, "b": None, "c2": "now text"}
    # Renaming and copying a table keep them; COMMENT '' clears the table's.
    catalog = catalog_after("CREATE TABLE t (a int DEFAULT 1 COMMENT 'x') COMMENT 'keep'",
                            "CREATE TABLE t2 LIKE t", "ALTER TABLE t COMMENT ''")
    copy = catalog.table(TableName("d", "t2"))
    assert copy is not None and copy.comment == "keep" and copy.columns[0].comment == "x"
    assert catalog.table(T).comment is None  # type: ignore[union-attr]


@pytest.mark.parametrize(("value", "extra", "nullable", "sql_type", "expected"), [
    # MySQL (and MariaDB before 10.2.7) print literals bare and mark expressions in EXTRA.
    (None, "", True, "int", "NULL"),
    (None, "", False, "int", None),
    ("abc", "", True, "varchar(5)", "'abc'"),
    ("7", "", True, "int", "7"),
    ("1.50", "", True, "decimal(5,2)", "1.50"),
    ("CURRENT_TIMESTAMP", "DEFAULT_GENERATED", True, "datetime", "current_timestamp()"),
    ("CURRENT_TIMESTAMP(3)", "DEFAULT_GENERATED on update CURRENT_TIMESTAMP(3)", True, "timestamp(3)",
     "current_timestamp(3)"),
    ("(1 + 2)", "DEFAULT_GENERATED", True, "int", "(1 + 2)"),
    ("b'101'", "", True, "bit(3)", "b'101'"),
    ("2020-01-02 00:00:00", "", True, "datetime", "'2020-01-02 00:00:00'"),
])
def test_defaults_read_from_a_bare_information_schema(value: str | None, extra: str, nullable: bool, sql_type: str,
                                                      expected: str | None) -> None:
    assert default_from_information_schema(value, extra, nullable, sql_type, quoted=False) == expected


def test_mariadb_information_schema_defaults_are_already_in_the_history_spelling() -> None:
    for value in ("NULL", "'NULL'", "'x''y'", "current_timestamp()", None):
        assert default_from_information_schema(value, "", True, "varchar(9)", quoted=True) == value


def test_a_history_written_before_defaults_were_kept_loads_and_gains_them_from_its_ddl(tmp_path: Path) -> None:
    """The fixture was written by the previous version (its log, a format-1 snapshot, progress)."""
    directory = tmp_path / "schema"
    shutil.copytree(DATA, directory)
    old_snapshots = sorted(p.name for p in directory.glob("snapshot.*.json"))
    assert old_snapshots
    history = SchemaHistory.open(directory)
    assert history.scanned == Position.of("mysql-bin.000001", 600)
    # The old snapshot lacks defaults: dropped, so answers come from the log's DDL text.
    assert sorted(p.name for p in directory.glob("snapshot.*.json")) == []
    table = history.catalog_at(Position.of("mysql-bin.000001", 450))[0].table(T)
    assert table is not None and table.comment == "old table"
    assert {c.name: c.default for c in table.columns} == {
        "id": None, "a": "'x'", "n": "2.00", "b": "current_timestamp()"}
    assert table.columns[1].comment == "the a"
    head = history.catalog_at()[0]
    assert defaults(head)["a"] is None  # MODIFY without DEFAULT dropped it
    # The old seed has no defaults (None), and says nothing wrong.
    seeded = head.table(TableName("d", "seeded"))
    assert seeded is not None and [c.default for c in seeded.columns] == [None, None]
    # The history keeps working: new records, a new snapshot, read back by a fresh open.
    history.record_query(QueryRecord("mysql-bin.000001", 700, 800, "0-1-700", "d",
                                     "ALTER TABLE t ALTER COLUMN n SET DEFAULT 3", QueryStatus(collation_server=45),
                                     "mariadb", (10, 11, 6)))
    history.flush(Position.of("mysql-bin.000001", 800))
    history.snapshot()
    again = SchemaHistory.open(directory)
    assert defaults(again.catalog_at()[0])["n"] == "3.00"
    assert list(directory.glob("snapshot.*.json"))
