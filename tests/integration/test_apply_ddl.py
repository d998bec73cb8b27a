"""The MySQL sink's DDL against real servers: DDL renamed by ``--rename`` (a table, a database),
CREATE … SELECT transactions (a CREATE TABLE and its rows in one GTID), and DDL under
``--include``/``--exclude``. The oracle is the primary's CHECKSUM TABLE of each table."""

from __future__ import annotations

import re
from pathlib import Path

import pymysql
import pytest

from binhub.sandbox import Sandbox
from binhub.sinks.mysql.connection import Downstream
from binhub.sinks.mysql.ddl import run_ddl
from binhub.sinks.mysql.dsn import parse_mysql_target
from tests.integration.applyutil import apply, assert_same_tables, checksums, query, relay, target
from tests.integration.conftest import PrimaryDb


def _drop(server: Sandbox, db: str) -> None:
    query(server, f"DROP DATABASE IF EXISTS `{db}`")


def test_ddl_of_a_renamed_table_is_renamed(primary_db: PrimaryDb, fresh_downstream: Sandbox, tmp_path: Path) -> None:
    db = primary_db.name
    c = primary_db.conn.cursor()
    c.execute("CREATE TABLE src (id INT PRIMARY KEY, a VARCHAR(10)) ENGINE=InnoDB")
    c.execute("INSERT INTO src VALUES (1, 'x'), (2, 'y')")
    c.execute("ALTER TABLE src ADD COLUMN b INT DEFAULT 7, ADD KEY ka (a)")
    c.execute("CREATE TABLE child (id INT PRIMARY KEY, src_id INT, FOREIGN KEY (src_id) REFERENCES src (id))")
    c.execute("INSERT INTO child VALUES (10, 1)")
    c.execute(f"CREATE TABLE `{db}`.copy LIKE `{db}`.`src`")
    c.execute("INSERT INTO copy SELECT * FROM src")
    c.execute("UPDATE src SET b = id * 100")
    c.execute("ALTER ONLINE TABLE src MODIFY a VARCHAR(20)")
    c.execute("TRUNCATE copy")
    c.execute("INSERT INTO copy VALUES (5, 'five', 5)")
    c.execute("RENAME TABLE copy TO copy2")
    c.execute("INSERT INTO src VALUES (3, 'z', 3)")
    c.execute("CREATE UNIQUE INDEX ub ON src (b)")
    c.execute(f"DROP INDEX ka ON `{db}`.src")
    relay(primary_db, tmp_path / "store")
    apply(tmp_path / "store", fresh_downstream, db, "--rename", f"{db}.src={db}.dst")

    theirs = checksums(primary_db.sandbox, db)
    ours = checksums(fresh_downstream, db)
    assert set(ours) == {"dst", "child", "copy2"}
    assert ours["dst"] == theirs["src"] and ours["child"] == theirs["child"] and ours["copy2"] == theirs["copy2"]
    parent = query(fresh_downstream, "SELECT REFERENCED_TABLE_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS "
                                     "WHERE CONSTRAINT_SCHEMA = %s AND TABLE_NAME = 'child'", (db,))
    assert parent == [("dst",)], "the foreign key names the renamed parent"
    assert query(fresh_downstream, f"SHOW CREATE TABLE `{db}`.dst")[0][1].count("varchar(20)") == 1
    indexes = {r[0] for r in query(fresh_downstream, "SELECT INDEX_NAME FROM information_schema.STATISTICS WHERE "
                                                     "TABLE_SCHEMA = %s AND TABLE_NAME = 'dst'", (db,))}
    assert indexes == {"PRIMARY", "ub"}, "CREATE/DROP INDEX reach the downstream, renamed"


def test_ddl_of_a_renamed_database_is_renamed(primary_db: PrimaryDb, fresh_downstream: Sandbox,
                                              tmp_path: Path) -> None:
    db, renamed = primary_db.name, primary_db.name + "_r"
    _drop(fresh_downstream, renamed)
    try:
        c = primary_db.conn.cursor()
        c.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)")  # unqualified: runs in the renamed database
        c.execute(f"CREATE TABLE `{db}`.u (id INT PRIMARY KEY, t_id INT REFERENCES `{db}`.t (id))")
        c.execute("INSERT INTO t VALUES (1, 1), (2, 2)")
        c.execute(f"INSERT INTO `{db}`.u VALUES (1, 2)")
        c.execute(f"ALTER TABLE `{db}`.t ADD COLUMN w VARCHAR(5) DEFAULT 'w'")
        c.execute(f"ALTER DATABASE `{db}` CHARACTER SET utf8mb4")
        c.execute("UPDATE t SET v = v + 10")
        relay(primary_db, tmp_path / "store")
        apply(tmp_path / "store", fresh_downstream, db, "--rename", f"{db}={renamed}")
        assert checksums(fresh_downstream, db, renamed=renamed) == checksums(primary_db.sandbox, db)
        assert not query(fresh_downstream, "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (db,))
    finally:
        _drop(fresh_downstream, renamed)


def test_a_ddl_that_cannot_be_renamed_with_certainty_stops_naming_it(
        primary_db: PrimaryDb, fresh_downstream: Sandbox, tmp_path: Path) -> None:
    db = primary_db.name
    c = primary_db.conn.cursor()
    c.execute("CREATE TABLE src (id INT PRIMARY KEY)")
    c.execute("INSERT INTO src VALUES (1)")
    c.execute("/*!40101 ALTER TABLE src ADD COLUMN c INT DEFAULT 3 */")  # names hidden in an executable comment
    relay(primary_db, tmp_path / "store")
    proc = apply(tmp_path / "store", fresh_downstream, db, "--rename", f"{db}.src={db}.dst", check=False)
    assert proc.returncode != 0
    assert "cannot rename it with certainty" in proc.stderr and "ALTER TABLE src ADD COLUMN c" in proc.stderr
    gtid = re.search(r"--skip-gtid ([0-9-]+)", proc.stderr)
    assert gtid, proc.stderr
    query(fresh_downstream, f"ALTER TABLE `{db}`.dst ADD COLUMN c INT DEFAULT 3")  # by hand, then skipped
    apply(tmp_path / "store", fresh_downstream, db, "--rename", f"{db}.src={db}.dst", "--skip-gtid", gtid.group(1))
    assert checksums(fresh_downstream, db)["dst"] == checksums(primary_db.sandbox, db)["src"]


def test_create_select_applies_the_table_then_its_rows(primary_db: PrimaryDb, fresh_downstream: Sandbox,
                                                       tmp_path: Path) -> None:
    """With row-based logging, CREATE TABLE … SELECT is one GTID holding a CREATE TABLE (the columns
    spelled out) and the rows as row events: the DDL first, then the rows, nothing lost."""
    c = primary_db.conn.cursor()
    c.execute("SELECT @@binlog_format")
    assert c.fetchone()[0] == "ROW"
    c.execute("CREATE TABLE src (id INT PRIMARY KEY, a VARCHAR(10), d DECIMAL(8,2))")
    c.execute("INSERT INTO src VALUES " + ",".join(f"({i}, 'v{i}', {i}.25)" for i in range(1, 301)))
    c.execute("CREATE TABLE copy (KEY (a)) SELECT id, a, d * 2 AS d2 FROM src WHERE id % 3 = 0")
    c.execute("CREATE TABLE IF NOT EXISTS copy SELECT 1 AS id")  # exists: a note, no rows
    c.execute("CREATE TABLE empty_copy SELECT * FROM src WHERE id < 0")
    c.execute("INSERT INTO copy VALUES (1000, 'after', 1)")
    relay(primary_db, tmp_path / "store")
    for workers in ("1", "4"):
        query(fresh_downstream, f"DROP DATABASE IF EXISTS `{primary_db.name}`")
        apply(tmp_path / "store", fresh_downstream, f"{primary_db.name}_{workers}", "--workers", workers)
        assert_same_tables(primary_db.sandbox, fresh_downstream, primary_db.name)
        assert query(fresh_downstream, f"SELECT COUNT(*) FROM `{primary_db.name}`.copy") == [(101,)]


def test_ddl_is_judged_by_every_table_it_names(primary_db: PrimaryDb, fresh_downstream: Sandbox,
                                               tmp_path: Path) -> None:
    """--exclude: a DDL of left-out tables only is not applied, one of kept tables is; one naming
    both (whichever comes first) stops naming it, never applied in part nor dropped silently."""
    db = primary_db.name
    c = primary_db.conn.cursor()
    c.execute("CREATE TABLE keep (id INT PRIMARY KEY, v INT)")
    c.execute("CREATE TABLE skip1 (id INT PRIMARY KEY)")
    c.execute("INSERT INTO keep VALUES (1, 1)")
    c.execute("INSERT INTO skip1 VALUES (1)")
    c.execute("ALTER TABLE skip1 ADD COLUMN x INT")
    c.execute("CREATE TABLE keep2 LIKE keep")
    c.execute("INSERT INTO keep2 VALUES (2, 2)")
    c.execute("DROP TABLE skip1, keep2")
    relay(primary_db, tmp_path / "store")
    exclude = ("--exclude", f"{db}.skip*")
    proc = apply(tmp_path / "store", fresh_downstream, db, *exclude, check=False)
    assert proc.returncode != 0 and "leave out" in proc.stderr and "DROP TABLE `skip1`,`keep2`" in proc.stderr, \
        proc.stderr
    gtid = re.search(r"--skip-gtid ([0-9-]+)", proc.stderr)
    assert gtid, proc.stderr
    assert sorted(checksums(fresh_downstream, db)) == ["keep", "keep2"]
    query(fresh_downstream, f"DROP TABLE `{db}`.keep2")  # its part, by hand
    apply(tmp_path / "store", fresh_downstream, db, *exclude, "--skip-gtid", gtid.group(1))
    assert checksums(fresh_downstream, db) == {"keep": checksums(primary_db.sandbox, db)["keep"]}


def test_create_select_after_a_crash_between_its_table_and_its_rows(
        primary_db: PrimaryDb, fresh_downstream: Sandbox, tmp_path: Path) -> None:
    """The state a kill -9 leaves after the CREATE TABLE of a CREATE … SELECT ran downstream and
    before its rows committed: the table exists, slot 0 holds the DDL as pending. The restart finds
    the table made and applies the rows."""
    db = primary_db.name
    c = primary_db.conn.cursor()
    c.execute("CREATE TABLE src (id INT PRIMARY KEY, a VARCHAR(10))")
    c.execute("INSERT INTO src VALUES " + ",".join(f"({i}, 'v{i}')" for i in range(1, 51)))
    relay(primary_db, tmp_path / "store")
    apply(tmp_path / "store", fresh_downstream, db)
    c.execute("CREATE TABLE copy SELECT * FROM src WHERE id > 10")
    c.execute("SELECT @@last_gtid")
    gtid = c.fetchone()[0]
    c.execute("SHOW CREATE TABLE copy")
    definition = c.fetchone()[1]
    relay(primary_db, tmp_path / "store")
    conn = fresh_downstream.connect(database=db)
    try:
        with conn.cursor() as cur:
            cur.execute(definition)
            cur.execute("UPDATE binhub.stream_checkpoint SET pending_ddl = %s WHERE stream = %s AND slot = 0", (gtid, db))
        conn.commit()
    finally:
        conn.close()
    apply(tmp_path / "store", fresh_downstream, db)
    assert_same_tables(primary_db.sandbox, fresh_downstream, db)
    assert query(fresh_downstream, f"SELECT COUNT(*) FROM `{db}`.copy") == [(40,)]


def test_collations_the_downstream_does_not_know_fall_to_its_defaults(fresh_downstream: Sandbox,
                                                                      primary_db: PrimaryDb) -> None:
    """A MySQL 8 primary's DDL ran with utf8mb4_0900_ai_ci, which MariaDB 10.11 does not know: the
    DDL runs with the downstream's default collations instead of failing at SET SESSION; an unknown
    sql_mode is left out the same way, and the statement's own errors still stop it."""
    downstream = Downstream(parse_mysql_target(target(fresh_downstream)))
    db = primary_db.name
    session = {"db": "", "sql_mode": "STRICT_TRANS_TABLES,NO_AUTO_CREATE_USER", "time_zone": None,
               "collation_connection": "utf8mb4_0900_ai_ci", "collation_server": "utf8mb4_0900_ai_ci"}
    try:
        run_ddl(downstream, f"CREATE DATABASE `{db}`", session, "")
        run_ddl(downstream, "CREATE TABLE t (a VARCHAR(5))", {**session, "db": db}, db)
        with pytest.raises(pymysql.err.MySQLError) as info:
            run_ddl(downstream, "CREATE TABLE t (a INT)", {**session, "db": db}, db)
        assert info.value.args[0] == 1050
        assert downstream.fetch("SELECT @@session.sql_mode")[0][0] == "NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION"
    finally:
        downstream.close()
    made = "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s"
    assert query(fresh_downstream, made, (db,)) == [("t",)]
