"""DDL statements → table changes: every form the schema history follows, through both parsers.

Where sqlglot parses a statement, the fallback parser must produce the same changes (each checks
the other); statements sqlglot cannot parse must come out of the fallback; statements neither
understands come back UNKNOWN with the tables they name.
"""

from __future__ import annotations

import pytest

from binhub.schema.changes import (
    AddColumn,
    AddPrimaryKey,
    AlterDatabase,
    AlterTable,
    ChangeColumn,
    ConvertCharset,
    CreateDatabase,
    CreateTable,
    CreateTableLike,
    DropColumn,
    DropDatabase,
    DropPrimaryKey,
    DropTables,
    ModifyColumn,
    Outcome,
    ParsedStatement,
    RenameColumn,
    RenameTable,
    RenameTables,
    SetColumnDefault,
    SetColumnVisibility,
    SetTableCharset,
    SetTableComment,
    TableName,
    TruncateTable,
)
from binhub.schema.coldef import ColumnPosition, ColumnSpec
from binhub.schema.ddl import parse_statement
from binhub.schema.fallback import parse_fallback
from binhub.schema.sqltext import resolve_executable_comments, tokenize

D = "d"


def T(name: str) -> TableName:  # noqa: N802 - reads like the SQL
    db, _, table = name.rpartition(".")
    return TableName(db or D, table)


def parse(sql: str, db: str = D, **kw: object) -> ParsedStatement:
    parsed = parse_statement(sql, db, **kw)  # type: ignore[arg-type]
    if parsed.parser == "sqlglot":
        # The fallback reads every table DDL too: the two parsers check each other.
        flavour = str(kw.get("flavour", "mariadb"))
        resolved = resolve_executable_comments(sql, kw.get("server_version"), flavour)  # type: ignore[arg-type]
        tokens = [t for t in tokenize(resolved) if not t.is_(";")]
        assert tuple(parse_fallback(tokens, db, flavour)) == parsed.changes, sql
    return parsed


def only(sql: str, **kw: object) -> object:
    parsed = parse(sql, **kw)
    assert parsed.outcome == Outcome.DDL, parsed
    assert len(parsed.changes) == 1, parsed.changes
    return parsed.changes[0]


def col(name: str, sql_type: str, **kw: object) -> ColumnSpec:
    base = sql_type.split("(")[0].split(" ")[0]
    return ColumnSpec(name, sql_type, base, **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------- CREATE TABLE

def test_create_table_with_every_attribute_the_history_keeps() -> None:
    change = only(
        "CREATE TABLE IF NOT EXISTS `d`.`t` (id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, "
        "name VARCHAR(20) CHARACTER SET latin1 COLLATE latin1_bin DEFAULT 'x' COMMENT 'a, b', "
        "e ENUM('a','b,c','it''s') NOT NULL, s SET('x','y'), g INT AS (id + 1) VIRTUAL, "
        "inv INT INVISIBLE, amount DECIMAL(10,3) UNSIGNED ZEROFILL, KEY k (name), UNIQUE KEY u (e)) "
        "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin")
    assert isinstance(change, CreateTable)
    name_default = change.columns[1].default
    assert name_default is not None and [(t.kind, t.text) for t in name_default] == [("string", "x")]
    assert change == CreateTable(T("t"), (
        col("id", "int unsigned", unsigned=True, nullable=False, primary_key=True, auto_increment=True),
        col("name", "varchar(20)", charset="latin1", collation="latin1_bin", default=name_default, comment="a, b"),
        col("e", "enum('a','b,c','it''s')", nullable=False, enum_values=("a", "b,c", "it's")),
        col("s", "set('x','y')", set_values=("x", "y")),
        col("g", "int", generated=True),
        col("inv", "int", invisible=True),
        col("amount", "decimal(10,3) unsigned zerofill", unsigned=True),
    ), (), "utf8mb4", "utf8mb4_bin", if_not_exists=True)


def test_create_table_level_primary_key_with_prefix_and_constraint_name() -> None:
    change = only("CREATE TABLE t2 (a int, b text, CONSTRAINT pk PRIMARY KEY (a, b(10)))")
    assert isinstance(change, CreateTable)
    assert change.primary_key == ("a", "b")
    assert [c.sql_type for c in change.columns] == ["int", "text"]


@pytest.mark.parametrize(("written", "canonical"), [
    ("int(11)", "int"), ("integer", "int"), ("int4", "int"), ("int8", "bigint"), ("int1", "tinyint"),
    ("int3", "mediumint"), ("middleint", "mediumint"), ("bool", "tinyint(1)"), ("boolean", "tinyint(1)"),
    ("tinyint(1)", "tinyint(1)"), ("tinyint(4)", "tinyint"), ("int(5) zerofill", "int(5) unsigned zerofill"),
    ("bigint unsigned", "bigint unsigned"), ("serial", "bigint unsigned"),
    ("decimal", "decimal(10,0)"), ("numeric(5)", "decimal(5,0)"), ("dec(4,1)", "decimal(4,1)"),
    ("fixed(3,1)", "decimal(3,1)"), ("float", "float"), ("float(7,2)", "float(7,2)"), ("float(30)", "double"),
    ("real", "double"), ("double precision", "double"), ("char", "char(1)"), ("character(3)", "char(3)"),
    ("char varying(4)", "varchar(4)"), ("binary", "binary(1)"), ("varbinary(7)", "varbinary(7)"),
    ("long varchar", "mediumtext"), ("long varbinary", "mediumblob"), ("long", "mediumtext"),
    ("text(300)", "text"), ("text(100)", "tinytext"), ("blob(70000)", "mediumblob"), ("time", "time"),
    ("time(3)", "time(3)"), ("datetime(6)", "datetime(6)"), ("timestamp(0)", "timestamp"), ("year(4)", "year"),
    ("bit", "bit(1)"), ("bit(5)", "bit(5)"), ("point", "point"), ("geometry", "geometry"),
    ("geomcollection", "geometrycollection"), ("inet6", "inet6"), ("uuid", "uuid"), ("vector(3)", "vector(3)"),
])
def test_column_types_are_spelled_as_the_server_stores_them(written: str, canonical: str) -> None:
    change = only(f"CREATE TABLE t (c {written}) DEFAULT CHARSET=latin1")
    assert isinstance(change, CreateTable)
    assert change.columns[0].resolved_type("latin1") == canonical


def test_national_types_take_utf8mb3_and_mariadb_json_is_longtext() -> None:
    change = only("CREATE TABLE t (a national varchar(4), b nchar(2), j json, k char(3) binary)")
    assert isinstance(change, CreateTable)
    a, b, j, k = change.columns
    assert (a.sql_type, a.charset) == ("varchar(4)", "utf8mb3")
    assert (b.sql_type, b.charset) == ("char(2)", "utf8mb3")
    assert (j.sql_type, j.charset, j.collation) == ("longtext", "utf8mb4", "utf8mb4_bin")
    assert k.binary_collation
    mysql = only("CREATE TABLE t (j json)", flavour="mysql")
    assert isinstance(mysql, CreateTable) and mysql.columns[0].sql_type == "json"


def test_spatial_columns_go_through_the_fallback() -> None:
    parsed = parse("CREATE TABLE g (id int primary key, p POINT NOT NULL SRID 4326, l linestring)")
    assert parsed.parser == "fallback"
    change = parsed.changes[0]
    assert isinstance(change, CreateTable)
    assert [(c.name, c.sql_type, c.nullable) for c in change.columns] == [
        ("id", "int", False), ("p", "point", False), ("l", "linestring", True)]


def test_create_table_like_and_temporary_and_or_replace() -> None:
    assert only("CREATE TABLE t3 LIKE other.t") == CreateTableLike(T("t3"), T("other.t"))
    assert only("CREATE TABLE IF NOT EXISTS t3 (LIKE t)") == CreateTableLike(T("t3"), T("t"), if_not_exists=True)
    tmp = only("CREATE TEMPORARY TABLE tmp (a int)")
    assert isinstance(tmp, CreateTable) and tmp.temporary
    rep = only("CREATE OR REPLACE TABLE r (a int)")
    assert isinstance(rep, CreateTable) and rep.or_replace


def test_create_table_with_partitions_keeps_its_columns() -> None:
    parsed = parse("CREATE TABLE p (id INT NOT NULL, d DATE, PRIMARY KEY (id, d)) ENGINE=InnoDB "
                   "PARTITION BY RANGE (YEAR(d)) (PARTITION p0 VALUES LESS THAN (2000), "
                   "PARTITION p1 VALUES LESS THAN MAXVALUE)")
    assert parsed.outcome == Outcome.DDL and parsed.parser == "fallback"
    change = parsed.changes[0]
    assert isinstance(change, CreateTable)
    assert [c.name for c in change.columns] == ["id", "d"] and change.primary_key == ("id", "d")


def test_backquoted_names_with_odd_characters() -> None:
    change = only("CREATE TABLE `we.ird``name` (`a b` int, `c,d` text, `é` int)", db="my-db")
    assert isinstance(change, CreateTable)
    assert change.name == TableName("my-db", "we.ird`name")
    assert [c.name for c in change.columns] == ["a b", "c,d", "é"]


def test_create_table_select_is_not_guessed() -> None:
    parsed = parse("CREATE TABLE t SELECT 1 AS a")
    assert parsed.outcome == Outcome.UNKNOWN
    assert parsed.tables == (T("t"),)


# ----------------------------------------------------------------------------------------- ALTER TABLE

def test_alter_with_several_clauses_keeps_their_order_and_positions() -> None:
    change = only("ALTER TABLE t ADD COLUMN x INT AFTER id, DROP COLUMN name, MODIFY e BIGINT FIRST, "
                  "CHANGE COLUMN s s2 VARCHAR(3) NOT NULL, RENAME COLUMN d TO d2, ADD PRIMARY KEY (id), "
                  "DROP PRIMARY KEY, ALTER COLUMN x SET INVISIBLE")
    assert change == AlterTable(T("t"), (
        AddColumn(col("x", "int", position=ColumnPosition(after="id"))),
        DropColumn("name"),
        ModifyColumn(col("e", "bigint", position=ColumnPosition(first=True))),
        ChangeColumn("s", col("s2", "varchar(3)", nullable=False)),
        RenameColumn("d", "d2"),
        AddPrimaryKey(("id",)),
        DropPrimaryKey(),
        SetColumnVisibility("x", True),
    ))


def test_alter_if_exists_forms_of_mariadb() -> None:
    change = only("ALTER TABLE t ADD COLUMN IF NOT EXISTS c int, DROP COLUMN IF EXISTS d")
    assert change == AlterTable(T("t"), (AddColumn(col("c", "int"), if_not_exists=True), DropColumn("d", True)))


def test_alter_add_column_list_goes_through_the_fallback() -> None:
    parsed = parse("ALTER TABLE t ADD (a INT, b VARCHAR(3) CHARACTER SET latin1)")
    assert parsed.parser == "fallback"
    assert parsed.changes == (AlterTable(T("t"), (
        AddColumn(col("a", "int")), AddColumn(col("b", "varchar(3)", charset="latin1")))),)


@pytest.mark.parametrize(("sql", "action"), [
    ("ALTER TABLE t CONVERT TO CHARACTER SET utf8mb4", ConvertCharset("utf8mb4")),
    ("ALTER TABLE t CONVERT TO CHARSET latin1 COLLATE latin1_bin", ConvertCharset("latin1", "latin1_bin")),
    ("ALTER TABLE t CONVERT TO CHARACTER SET DEFAULT", ConvertCharset(None)),
    ("ALTER TABLE t DEFAULT CHARSET = latin1", SetTableCharset("latin1")),
    ("ALTER TABLE t CHARACTER SET utf8mb4 COLLATE utf8mb4_bin", SetTableCharset("utf8mb4", "utf8mb4_bin")),
    ("ALTER TABLE t COLLATE latin1_bin", SetTableCharset(None, "latin1_bin")),
    ("ALTER TABLE t ENGINE=InnoDB DEFAULT CHARSET=utf8mb4", SetTableCharset("utf8mb4")),
    ("ALTER TABLE t ROW_FORMAT=DYNAMIC, COLLATE=latin1_bin", SetTableCharset(None, "latin1_bin")),
])
def test_alter_charset_clauses(sql: str, action: object) -> None:
    assert only(sql) == AlterTable(T("t"), (action,))  # type: ignore[arg-type]


@pytest.mark.parametrize("sql", [
    "ALTER TABLE t ENGINE=InnoDB",
    "ALTER TABLE t ADD INDEX (a), ALGORITHM=INPLACE, LOCK=NONE",
    "ALTER TABLE t ADD UNIQUE KEY u (a), DROP INDEX i, DROP FOREIGN KEY fk, ADD CONSTRAINT fk FOREIGN KEY (a) "
    "REFERENCES p (id) ON DELETE CASCADE",
    "ALTER TABLE t ADD PARTITION (PARTITION p1 VALUES LESS THAN (10))",
    "ALTER TABLE t DROP PARTITION p0",
    "ALTER TABLE t COALESCE PARTITION 2",
    "ALTER TABLE t REMOVE PARTITIONING",
    "ALTER TABLE t PARTITION BY HASH(id) PARTITIONS 4",
    "ALTER TABLE t RENAME INDEX a TO b",
    "ALTER TABLE t FORCE",
])
def test_alter_clauses_that_change_no_column(sql: str) -> None:
    assert only(sql) == AlterTable(T("t"), ())


def test_alter_column_defaults_and_the_table_comment_are_kept() -> None:
    change = only("ALTER TABLE t ALTER COLUMN a SET DEFAULT -5, ALTER b DROP DEFAULT, "
                  "ALTER COLUMN c SET DEFAULT (1+2), COMMENT = 'x, y', ROW_FORMAT=DYNAMIC")
    assert isinstance(change, AlterTable)
    a, b, c, comment = change.actions
    assert isinstance(a, SetColumnDefault) and [t.text for t in a.default or ()] == ["-", "5"]
    assert b == SetColumnDefault("b", None)
    assert isinstance(c, SetColumnDefault) and [t.text for t in c.default or ()] == ["(", "1", "+", "2", ")"]
    assert comment == SetTableComment("x, y")


def test_alter_rename_to_and_online_ignore_forms() -> None:
    assert only("ALTER TABLE t RENAME TO t9") == AlterTable(T("t"), (RenameTable(T("t9")),))
    assert only("ALTER TABLE t RENAME AS other.t9") == AlterTable(T("t"), (RenameTable(T("other.t9")),))
    parsed = parse("ALTER ONLINE IGNORE TABLE t ADD c int FIRST")
    assert parsed.parser == "fallback"
    assert parsed.changes == (AlterTable(T("t"), (AddColumn(col("c", "int", position=ColumnPosition(True))),)),)


def test_unreserved_words_name_columns_unless_they_start_a_clause() -> None:
    assert only("ALTER TABLE t ADD period INT, ADD system INT, DROP vector") == AlterTable(T("t"), (
        AddColumn(col("period", "int")), AddColumn(col("system", "int")), DropColumn("vector")))
    assert only("ALTER TABLE t ADD PERIOD FOR p (s, e), ADD SYSTEM VERSIONING, DROP SYSTEM VERSIONING") == \
        AlterTable(T("t"), ())
    change = only("CREATE TABLE t (period int, s date, e date, PERIOD FOR p (s, e))")
    assert isinstance(change, CreateTable) and [c.name for c in change.columns] == ["period", "s", "e"]


def test_mariadb_wait_before_the_clauses_is_not_mistaken_for_one() -> None:
    assert only("ALTER TABLE t WAIT 10 ADD c INT, DROP d") == AlterTable(T("t"), (AddColumn(col("c", "int")),
                                                                                  DropColumn("d")))
    assert only("ALTER TABLE t NOWAIT ADD c INT") == AlterTable(T("t"), (AddColumn(col("c", "int")),))


def test_drop_index_primary_drops_the_primary_key() -> None:
    assert only("DROP INDEX `PRIMARY` ON t") == AlterTable(T("t"), (DropPrimaryKey(),))
    assert parse("DROP INDEX i ON t").outcome == Outcome.IGNORED
    assert parse("CREATE UNIQUE INDEX i ON t (a)").outcome == Outcome.IGNORED


# ----------------------------------------------------------------------------- RENAME, DROP, TRUNCATE

def test_rename_table_swaps_of_gh_ost_and_pt_osc() -> None:
    parsed = parse("RENAME TABLE `t` TO `_t_old`, `_t_gho` TO `t`")
    assert parsed.parser == "fallback"
    assert parsed.changes == (RenameTables(((T("t"), T("_t_old")), (T("_t_gho"), T("t")))),)
    assert only("RENAME TABLE a.b TO c.d") == RenameTables(((T("a.b"), T("c.d")),))


def test_drop_tables_several_if_exists_temporary() -> None:
    assert only("DROP TABLE IF EXISTS a, `b`.`c` /* generated by server */") == DropTables(
        (T("a"), T("b.c")), if_exists=True)
    assert only("DROP TEMPORARY TABLE IF EXISTS a") == DropTables((T("a"),), True, True)
    assert only("DROP TABLE t1, t2 CASCADE") == DropTables((T("t1"), T("t2")))


def test_truncate() -> None:
    assert only("TRUNCATE TABLE x") == TruncateTable(T("x"))
    assert only("TRUNCATE o.x") == TruncateTable(T("o.x"))


# ----------------------------------------------------------------------------------------- databases

def test_create_drop_alter_database_and_schema() -> None:
    assert only("CREATE DATABASE IF NOT EXISTS foo DEFAULT CHARACTER SET utf8mb4") == CreateDatabase(
        "foo", "utf8mb4", None, if_not_exists=True)
    assert only("CREATE SCHEMA bar COLLATE latin1_bin") == CreateDatabase("bar", None, "latin1_bin")
    assert only("DROP SCHEMA foo") == DropDatabase("foo")
    assert only("DROP DATABASE IF EXISTS foo") == DropDatabase("foo", True)
    parsed = parse("ALTER DATABASE foo CHARACTER SET latin1")
    assert parsed.changes == (AlterDatabase("foo", "latin1"),)
    assert parse("ALTER DATABASE DEFAULT COLLATE utf8mb4_bin", db="cur").changes == (
        AlterDatabase("cur", None, "utf8mb4_bin"),)


# ------------------------------------------------------------------------- comments, default database

def test_executable_comments_run_where_the_primary_ran_them() -> None:
    assert only("/*!40101 ALTER TABLE t ADD c INT */") == AlterTable(T("t"), (AddColumn(col("c", "int")),))
    sql = "ALTER TABLE t /*!80023 ADD d INT */ /*!120000 , ADD e INT */"
    assert only(sql, server_version=(10, 11, 6)) == AlterTable(T("t"), (AddColumn(col("d", "int")),))
    mariadb_only = "CREATE TABLE t (a int /*M!100301 INVISIBLE*/)"
    maria = only(mariadb_only, flavour="mariadb")
    mysql = only(mariadb_only, flavour="mysql")
    assert isinstance(maria, CreateTable) and maria.columns[0].invisible
    assert isinstance(mysql, CreateTable) and not mysql.columns[0].invisible
    # Comments and comment-like text inside quotes stay text.
    change = only("CREATE TABLE t (a int COMMENT '/*!50000 DROP TABLE x */', -- a, b\n b int) /* c */")
    assert isinstance(change, CreateTable) and [c.name for c in change.columns] == ["a", "b"]


def test_unqualified_names_take_the_events_default_database() -> None:
    assert only("DROP TABLE t, other.u", db="shop") == DropTables((TableName("shop", "t"), TableName("other", "u")))
    parsed = parse_statement("DROP TABLE t", "")
    assert parsed.outcome == Outcome.UNKNOWN and "default database" in parsed.reason


# ------------------------------------------------------------------------------- statements ignored

@pytest.mark.parametrize("sql", [
    "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT a", "ROLLBACK TO SAVEPOINT a", "RELEASE SAVEPOINT a",
    "XA START 'x'", "XA END 'x'", "XA PREPARE 'x'", "XA COMMIT 'x'", "START TRANSACTION",
    "GRANT SELECT ON *.* TO u", "REVOKE ALL ON d.* FROM u", "CREATE USER u IDENTIFIED BY 'x'",
    "DROP USER u", "ALTER USER u IDENTIFIED BY 'y'", "RENAME USER a TO b", "SET PASSWORD FOR u = 'x'",
    "CREATE ROLE r", "FLUSH PRIVILEGES", "CREATE VIEW v AS SELECT 1",
    "/*!50001 CREATE ALGORITHM=UNDEFINED */ /*!50013 DEFINER=`root`@`localhost` SQL SECURITY DEFINER */ "
    "/*!50001 VIEW `v` AS select 1 AS `a` */",
    "CREATE OR REPLACE DEFINER=`root`@`%` VIEW v AS SELECT 1", "DROP VIEW IF EXISTS v",
    "CREATE DEFINER=`root`@`localhost` PROCEDURE p() BEGIN SELECT 1; END", "DROP PROCEDURE IF EXISTS p",
    "CREATE FUNCTION f() RETURNS INT RETURN 1", "CREATE DEFINER=CURRENT_USER TRIGGER tr BEFORE INSERT ON t "
    "FOR EACH ROW SET NEW.a = 1", "DROP TRIGGER tr", "CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO SELECT 1",
    "INSERT INTO t VALUES (1)", "UPDATE t SET a = 1", "DELETE FROM t", "REPLACE INTO t VALUES (1)",
    "ANALYZE TABLE t", "OPTIMIZE TABLE t", "CREATE INDEX i ON t (a)", "DROP INDEX i ON t",
    "# a comment only", "/* nothing */",
])
def test_statements_that_change_no_columns_are_ignored_by_name(sql: str) -> None:
    parsed = parse_statement(sql, D)
    assert parsed.outcome == Outcome.IGNORED, parsed
    assert parsed.reason


# ---------------------------------------------------------------------------------- not understood

def test_unparseable_ddl_names_its_tables() -> None:
    parsed = parse_statement("ALTER TABLE t FROBNICATE COLUMN a", D)
    assert parsed.outcome == Outcome.UNKNOWN
    assert parsed.tables == (T("t"),)
    assert "FROBNICATE" in parsed.reason
    parsed = parse_statement("RENAME TABLE a TO b, c", D)
    assert parsed.outcome == Outcome.UNKNOWN and T("a") in parsed.tables


def test_statement_of_an_unknown_kind_says_so() -> None:
    parsed = parse_statement("FROB THE WIDGETS", D)
    assert parsed.outcome == Outcome.UNKNOWN and parsed.tables == ()
    assert "FROB" in parsed.reason


def test_untokenizable_statement_is_unknown_not_an_exception() -> None:
    parsed = parse_statement("ALTER TABLE t ADD c ENUM('unterminated", D)
    assert parsed.outcome == Outcome.UNKNOWN


def test_sequences_are_reported_not_guessed() -> None:
    parsed = parse_statement("CREATE SEQUENCE s START WITH 1", D)
    assert parsed.outcome == Outcome.UNKNOWN and parsed.tables == (T("s"),)


def test_a_huge_statement_based_insert_is_ignored_without_tokenizing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Statement-based binlogs carry DML as text, megabytes at a time: the first word decides
    (tokenizing it all takes seconds)."""
    import binhub.schema.ddl

    def no_tokenizing(text: str) -> object:
        raise AssertionError("the statement was tokenized")

    monkeypatch.setattr(binhub.schema.ddl, "tokenize", no_tokenizing)
    big = "/* app */ INSERT INTO t VALUES " + ",".join(f"({i}, 'text; with -- odd /* bits {i}')" for i in range(30000))
    assert parse_statement(big, D).outcome == Outcome.IGNORED
    with pytest.raises(AssertionError, match="tokenized"):  # the patch bites where tokenizing is due
        parse_statement("ALTER TABLE t ADD COLUMN c INT", D)
