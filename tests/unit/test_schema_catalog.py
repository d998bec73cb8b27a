"""The catalog follows changes as the server does: charset inheritance, clause order, renames, unknowns."""

from __future__ import annotations

from binhub.schema.catalog import Catalog, Charset, StatementContext
from binhub.schema.changes import Outcome, TableName
from binhub.schema.ddl import parse_statement

LATIN1 = Charset("latin1", "latin1_swedish_ci")


class Db:
    """A catalog driven by SQL text, as the history drives it."""

    def __init__(self, server: Charset = LATIN1, flavour: str = "mariadb") -> None:
        self.catalog = Catalog(server=server)
        self.ctx = StatementContext(flavour, server)
        self.problems: list[str] = []

    def run(self, *statements: str, db: str = "d") -> None:
        for sql in statements:
            parsed = parse_statement(sql, db, flavour=self.ctx.flavour)
            assert parsed.outcome == Outcome.DDL, parsed
            for change in parsed.changes:
                self.problems += self.catalog.apply(change, self.ctx)

    def cols(self, name: str) -> list[str]:
        db, table = name.split(".")
        t = self.catalog.table(TableName(db, table))
        assert t is not None, f"{name} missing"
        assert t.known, f"{name} unknown"
        return [" ".join(x for x in (c.name, c.sql_type, c.charset, c.collation) if x) for c in t.columns]

    def pk(self, name: str) -> tuple[str, ...]:
        db, table = name.split(".")
        t = self.catalog.table(TableName(db, table))
        assert t is not None
        return t.primary_key


def test_charset_inheritance_column_table_database_server() -> None:
    db = Db()
    db.run("CREATE DATABASE d CHARACTER SET utf8mb4", "CREATE DATABASE plain")
    db.run("CREATE TABLE t (a varchar(3), b varchar(3) CHARACTER SET latin1, c varchar(3) COLLATE utf8mb4_bin, "
           "d char(2) BINARY, e enum('x'), f varbinary(4), g int)")
    db.run("CREATE TABLE u (a text) DEFAULT CHARSET=gbk")
    db.run("CREATE TABLE v (a text)", db="plain")
    assert db.cols("d.t") == [
        "a varchar(3) utf8mb4 utf8mb4_general_ci", "b varchar(3) latin1 latin1_swedish_ci",
        "c varchar(3) utf8mb4 utf8mb4_bin", "d char(2) utf8mb4 utf8mb4_bin", "e enum('x') utf8mb4 utf8mb4_general_ci",
        "f varbinary(4) binary", "g int"]
    assert db.cols("d.u") == ["a text gbk gbk_chinese_ci"]
    assert db.cols("plain.v") == ["a text latin1 latin1_swedish_ci"]  # the server's default


def test_mysql8_utf8mb4_default_collation() -> None:
    db = Db(Charset("utf8mb4", "utf8mb4_0900_ai_ci"), flavour="mysql")
    db.run("CREATE TABLE t (a varchar(2) CHARACTER SET utf8mb4, j json)")
    assert db.cols("d.t") == ["a varchar(2) utf8mb4 utf8mb4_0900_ai_ci", "j json"]


def test_text_length_resolves_in_the_columns_charset() -> None:
    db = Db()
    db.run("CREATE TABLE t (a text(100) CHARACTER SET utf8mb4, b text(100) CHARACTER SET latin1, c blob(300))")
    assert [c.split()[1] for c in db.cols("d.t")] == ["text", "tinytext", "blob"]


def test_alter_clauses_apply_in_order_with_first_and_after() -> None:
    db = Db()
    db.run("CREATE TABLE t (id int primary key, a int, b int, c int)")
    db.run("ALTER TABLE t ADD COLUMN x INT FIRST, DROP COLUMN a, CHANGE b bb BIGINT AFTER x, "
           "MODIFY c SMALLINT FIRST, ADD y INT AFTER bb, RENAME COLUMN id TO ident")
    assert db.cols("d.t") == ["c smallint", "x int", "bb bigint", "y int", "ident int"]
    assert db.pk("d.t") == ("ident",)


def test_column_names_are_case_insensitive_tables_are_not() -> None:
    db = Db()
    db.run("CREATE TABLE t (Name int)", "CREATE TABLE T (x int)")
    db.run("ALTER TABLE t DROP COLUMN NAME, ADD z int")
    assert db.cols("d.t") == ["z int"]
    assert db.cols("d.T") == ["x int"]


def test_primary_key_add_drop_and_dropping_a_key_column() -> None:
    db = Db()
    db.run("CREATE TABLE t (a int, b int, c int, PRIMARY KEY (a, b))")
    t = db.catalog.table(TableName("d", "t"))
    assert t is not None and [c.nullable for c in t.columns] == [False, False, True]
    db.run("ALTER TABLE t DROP COLUMN b")
    assert db.pk("d.t") == ("a",)
    db.run("ALTER TABLE t DROP PRIMARY KEY, ADD PRIMARY KEY (c)")
    assert db.pk("d.t") == ("c",)
    db.run("DROP INDEX `PRIMARY` ON t")
    assert db.pk("d.t") == ()


def test_gh_ost_cut_over_and_pt_osc_swap() -> None:
    db = Db()
    db.run("CREATE TABLE t (id int primary key, a int)")
    db.run("CREATE TABLE _t_gho LIKE t", "ALTER TABLE _t_gho ADD COLUMN b varchar(5) AFTER id")
    db.run("RENAME TABLE t TO _t_del, _t_gho TO t")
    assert db.cols("d.t") == ["id int", "b varchar(5) latin1 latin1_swedish_ci", "a int"]
    assert db.cols("d._t_del") == ["id int", "a int"]
    db.run("DROP TABLE IF EXISTS _t_del")
    assert db.catalog.table(TableName("d", "_t_del")) is None
    # pt-osc: _t_new built, then an atomic swap through _t_old
    db.run("CREATE TABLE _t_new (id int primary key, b varchar(5), a int, c int)")
    db.run("RENAME TABLE t TO _t_old, _t_new TO t", "DROP TABLE _t_old")
    assert db.cols("d.t")[-1] == "c int"
    assert not db.problems


def test_convert_to_character_set_widens_text_and_changes_defaults() -> None:
    db = Db()
    db.run("CREATE TABLE t (a text, b varchar(4), c tinytext, d blob, e int, f enum('x')) DEFAULT CHARSET=latin1")
    db.run("ALTER TABLE t CONVERT TO CHARACTER SET utf8mb4")
    assert db.cols("d.t") == [
        "a mediumtext utf8mb4 utf8mb4_general_ci", "b varchar(4) utf8mb4 utf8mb4_general_ci",
        "c text utf8mb4 utf8mb4_general_ci", "d blob binary", "e int", "f enum('x') utf8mb4 utf8mb4_general_ci"]
    db.run("ALTER TABLE t ADD g varchar(1)")
    assert db.cols("d.t")[-1] == "g varchar(1) utf8mb4 utf8mb4_general_ci"


def test_default_charset_change_applies_only_to_later_columns() -> None:
    db = Db()
    db.run("CREATE TABLE t (a varchar(1)) DEFAULT CHARSET=latin1", "ALTER TABLE t DEFAULT CHARSET=utf8mb4",
           "ALTER TABLE t ADD b varchar(1)")
    assert db.cols("d.t") == ["a varchar(1) latin1 latin1_swedish_ci", "b varchar(1) utf8mb4 utf8mb4_general_ci"]


def test_alter_database_charset_applies_to_later_tables() -> None:
    db = Db()
    db.run("CREATE DATABASE d", "ALTER DATABASE d CHARACTER SET utf8mb3", "CREATE TABLE t (a char(1))")
    assert db.cols("d.t") == ["a char(1) utf8mb3 utf8mb3_general_ci"]


def test_drop_database_drops_its_tables_and_rename_moves_between_databases() -> None:
    db = Db()
    db.run("CREATE TABLE t (a int)", "CREATE TABLE keep (a int)")
    db.run("RENAME TABLE d.keep TO e.keep", "DROP DATABASE d")
    assert db.catalog.table(TableName("d", "t")) is None
    assert db.cols("e.keep") == ["a int"]


def test_if_not_exists_keeps_the_existing_table_and_temporary_tables_change_nothing() -> None:
    db = Db()
    db.run("CREATE TABLE t (a int)", "CREATE TABLE IF NOT EXISTS t (b int)")
    db.run("CREATE TEMPORARY TABLE t (x int)", "DROP TEMPORARY TABLE t", "TRUNCATE t")
    assert db.cols("d.t") == ["a int"]


def test_invisible_and_generated_columns_stay_in_the_row() -> None:
    db = Db()
    db.run("CREATE TABLE t (a int, b int AS (a * 2) VIRTUAL, c int INVISIBLE)")
    t = db.catalog.table(TableName("d", "t"))
    assert t is not None and [(c.name, c.visible) for c in t.columns] == [("a", True), ("b", True), ("c", False)]
    db.run("ALTER TABLE t ALTER COLUMN c SET VISIBLE")
    t = db.catalog.table(TableName("d", "t"))
    assert t is not None and t.columns[2].visible


def test_changes_that_do_not_fit_make_the_table_unknown_never_guessed() -> None:
    db = Db()
    db.run("CREATE TABLE t (a int)")
    db.run("ALTER TABLE t DROP COLUMN nope")
    t = db.catalog.table(TableName("d", "t"))
    assert t is not None and not t.known and t.columns == ()
    assert "no column nope" in db.problems[-1]
    assert t.schema().known is False
    db.run("ALTER TABLE missing ADD b int")
    m = db.catalog.table(TableName("d", "missing"))
    assert m is not None and not m.known and "not in the history" in db.problems[-1]
    db.run("CREATE TABLE c LIKE missing")
    c = db.catalog.table(TableName("d", "c"))
    assert c is not None and not c.known
    # A later CREATE defines a table again.
    db.run("DROP TABLE t", "CREATE TABLE t (z int)")
    assert db.cols("d.t") == ["z int"]


def test_renaming_an_unknown_table_keeps_it_unknown_under_the_new_name() -> None:
    db = Db()
    db.run("RENAME TABLE ghost TO t")
    t = db.catalog.table(TableName("d", "t"))
    assert t is not None and not t.known


def test_json_round_trip() -> None:
    db = Db()
    db.run("CREATE DATABASE d CHARACTER SET utf8mb4",
           "CREATE TABLE t (id int primary key, e enum('a','b'), s set('x'), v varchar(3) invisible)")
    db.catalog.mark_unknown([TableName("d", "u")])
    again = Catalog.from_json(db.catalog.to_json())
    assert again == db.catalog
