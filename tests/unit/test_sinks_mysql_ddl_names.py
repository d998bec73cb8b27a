"""The names a DDL statement holds, renamed in place (``--rename`` on the MySQL sink's DDL): every
place a statement names a table, the text around the names kept byte for byte, and statements
that cannot be renamed with certainty refused."""

from __future__ import annotations

import pytest

from binhub.sinks.mysql.ddl_names import UncertainDdl, ddl_names, rename_ddl
from binhub.sinks.mysql.options import Renames

RENAMES = Renames(["db.t=db2.t2", "old=new"])


@pytest.mark.parametrize(("sql", "default_db", "expected"), [
    ("ALTER TABLE t ADD COLUMN c INT", "db", "ALTER TABLE `db2`.`t2` ADD COLUMN c INT"),
    ("alter table `db`.`t` add c int", "x", "alter table `db2`.`t2` add c int"),
    ("ALTER TABLE u ADD FOREIGN KEY (c) REFERENCES t (id) ON DELETE CASCADE", "db",
     "ALTER TABLE u ADD FOREIGN KEY (c) REFERENCES `db2`.`t2` (id) ON DELETE CASCADE"),
    ("CREATE TABLE c (id INT PRIMARY KEY, p INT REFERENCES db.t(id)) ENGINE=InnoDB /* kept */", "x",
     "CREATE TABLE c (id INT PRIMARY KEY, p INT REFERENCES `db2`.`t2`(id)) ENGINE=InnoDB /* kept */"),
    ("CREATE TABLE t3 LIKE t", "db", "CREATE TABLE t3 LIKE `db2`.`t2`"),
    ("CREATE TABLE t3 (LIKE t)", "db", "CREATE TABLE t3 (LIKE `db2`.`t2`)"),
    ("CREATE TABLE IF NOT EXISTS t (id INT) DEFAULT CHARSET=utf8mb4", "db",
     "CREATE TABLE IF NOT EXISTS `db2`.`t2` (id INT) DEFAULT CHARSET=utf8mb4"),
    ("DROP TABLE IF EXISTS t, u, old.v", "db", "DROP TABLE IF EXISTS `db2`.`t2`, u, `new`.`v`"),
    ("TRUNCATE TABLE t", "db", "TRUNCATE TABLE `db2`.`t2`"),
    ("RENAME TABLE t TO u, old.a TO old.b", "db", "RENAME TABLE `db2`.`t2` TO u, `new`.`a` TO `new`.`b`"),
    ("CREATE UNIQUE INDEX i ON t (a)", "db", "CREATE UNIQUE INDEX i ON `db2`.`t2` (a)"),
    ("DROP INDEX i ON db.t", "x", "DROP INDEX i ON `db2`.`t2`"),
    ("ALTER TABLE t RENAME TO t9", "db", "ALTER TABLE `db2`.`t2` RENAME TO t9"),
    # MariaDB-only syntax sqlglot does not parse survives untouched
    ("ALTER ONLINE TABLE t WAIT 5 ADD x INT", "db", "ALTER ONLINE TABLE `db2`.`t2` WAIT 5 ADD x INT"),
    ("CREATE TABLE t (a INT, b INT AS (a + 1) PERSISTENT) WITH SYSTEM VERSIONING", "db",
     "CREATE TABLE `db2`.`t2` (a INT, b INT AS (a + 1) PERSISTENT) WITH SYSTEM VERSIONING"),
    ("ALTER TABLE t ADD COLUMN v VECTOR(3) NOT NULL, ADD VECTOR INDEX (v)", "db",
     "ALTER TABLE `db2`.`t2` ADD COLUMN v VECTOR(3) NOT NULL, ADD VECTOR INDEX (v)"),
    # databases
    ("CREATE DATABASE old CHARACTER SET utf8mb4", "", "CREATE DATABASE `new` CHARACTER SET utf8mb4"),
    ("DROP SCHEMA IF EXISTS `old`", "", "DROP SCHEMA IF EXISTS `new`"),
    ("ALTER DATABASE old CHARACTER SET utf8mb4", "", "ALTER DATABASE `new` CHARACTER SET utf8mb4"),
    # unqualified in a renamed default database: runs there as written
    ("ALTER TABLE v ADD x INT", "old", "ALTER TABLE v ADD x INT"),
    ("ALTER DATABASE CHARACTER SET utf8mb4", "old", "ALTER DATABASE CHARACTER SET utf8mb4"),
    # nothing renamed
    ("ALTER TABLE db.u ADD t INT", "x", "ALTER TABLE db.u ADD t INT"),
    ("ALTER TABLE t ADD x INT", "other", "ALTER TABLE t ADD x INT"),
    # no word spells a renamed name: left alone even where sqlglot cannot parse it
    ("ALTER TABLE u ADD PARTITION (PARTITION p1 VALUES LESS THAN (10))", "db",
     "ALTER TABLE u ADD PARTITION (PARTITION p1 VALUES LESS THAN (10))"),
])
def test_names_are_renamed_in_place(sql: str, default_db: str, expected: str) -> None:
    assert rename_ddl(sql, default_db, RENAMES) == expected


@pytest.mark.parametrize(("sql", "why"), [
    ("ALTER TABLE t DROP FOREIGN KEY t", "cannot tell"),
    ("CREATE TABLE t (a INT, CHECK (t.a > 0))", "qualified"),
    ("/*!40000 ALTER TABLE t DISABLE KEYS */", "executable comment"),
    ("CREATE TABLE u (a INT) SELECT a FROM t", "cannot tell"),
    ("ALTER TABLE t ADD PARTITION (PARTITION p1 VALUES LESS THAN (10))", "cannot parse"),
    ("RENAME TABLE t TO u WAIT", "RENAME TABLE"),
    ("ALTER TABLE t ADD x INT; ALTER TABLE t ADD y INT", "exactly one"),
])
def test_what_cannot_be_renamed_with_certainty_is_refused(sql: str, why: str) -> None:
    with pytest.raises(UncertainDdl, match=why):
        rename_ddl(sql, "db", RENAMES)


def test_names_found_for_filters() -> None:
    assert [(r.db, r.table) for r in ddl_names("DROP TABLE a, b.c", "db")] == [("db", "a"), ("b", "c")]
    assert [(r.db, r.table) for r in ddl_names("RENAME TABLE a TO x.b", "db")] == [("db", "a"), ("x", "b")]
    assert [(r.db, r.table) for r in ddl_names("CREATE TABLE a LIKE s.b", "db")] == [("db", "a"), ("s", "b")]
    assert [(r.db, r.table) for r in ddl_names("/*!40101 CREATE TABLE a (x INT) */", "db")] == [("db", "a")]
    assert [(r.db, r.table) for r in ddl_names("CREATE DATABASE d", "")] == [("d", None)]
