"""``--format debezium|canal|maxwell`` checked field by field against the documented examples of each
tool (``cdc-anchors.md`` §2), reproduced from real rows written to a real MariaDB: the same table,
the same statements, the same output apart from what differs by nature (times, positions, ids,
the database name). Positions and GTIDs are checked against binhub's own lines of the same store,
which test_stream.py checks against the primary."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
from pathlib import Path
from typing import Any

from tests.integration.conftest import PrimaryDb
from tests.integration.test_stream import lines_of, relay, stream


def streamed(primary_db: PrimaryDb, tmp_path: Path, output: str,
             *extra: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the format's lines, binhub's lines) of this test's database."""
    data_dir = tmp_path / "store"
    relay(primary_db, data_dir)
    include = ("--include", f"{primary_db.name}.*")
    stream(data_dir, tmp_path / output, "--format", output, *include, *extra)
    stream(data_dir, tmp_path / "binhub", *include)
    return lines_of(tmp_path / output), [c for c in lines_of(tmp_path / "binhub") if c["op"] != "ddl"]


def test_debezium_matches_the_connectors_documented_update(primary_db: PrimaryDb, tmp_path: Path) -> None:
    c = primary_db.conn.cursor()
    c.execute("CREATE TABLE customers (id INT PRIMARY KEY, first_name VARCHAR(255), last_name VARCHAR(255), "
              "email VARCHAR(255))")
    c.execute("INSERT INTO customers VALUES (1004, 'Anne', 'Kretchmar', 'annek@noanswer.org')")
    c.execute("UPDATE customers SET first_name='Anne Marie' WHERE id=1004")
    c.execute("DELETE FROM customers WHERE id=1004")
    c.execute("ALTER TABLE customers ADD middle_name varchar(255) AFTER first_name")
    c.execute("CREATE TABLE auto (id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY, price DECIMAL(10,2) NOT NULL "
              "DEFAULT 9.5 COMMENT 'in ''EUR''', at DATETIME(6) DEFAULT CURRENT_TIMESTAMP(6), kind ENUM('a','bc') "
              "DEFAULT 'bc', tags SET('x','yz'), b BLOB, doc JSON, g POINT, bits BIT(3) NOT NULL DEFAULT b'101', "
              "full_name VARCHAR(20) AS (CONCAT(kind, '!')) VIRTUAL) DEFAULT CHARSET=latin1 COMMENT 'priced'")
    c.execute("DROP TABLE auto")
    lines, binhub = streamed(primary_db, tmp_path, "debezium", "--transaction-metadata")
    rows = [x for x in lines if "op" in x]
    assert [x["op"] for x in rows] == ["c", "u", "d"]
    update = rows[1]
    # The documented example, value for value.
    assert update["before"] == {"id": 1004, "first_name": "Anne", "last_name": "Kretchmar",
                                "email": "annek@noanswer.org"}
    assert update["after"] == {"id": 1004, "first_name": "Anne Marie", "last_name": "Kretchmar",
                               "email": "annek@noanswer.org"}
    assert rows[0]["before"] is None and rows[2]["after"] is None and rows[2]["before"] == update["after"]
    source = update["source"]
    assert set(source) == {"version", "connector", "name", "ts_ms", "ts_us", "ts_ns", "snapshot", "db", "sequence",
                           "table", "server_id", "gtid", "file", "pos", "row", "thread", "query"}
    assert source["connector"] == "mysql" and source["name"] == "stream" and source["snapshot"] is False
    assert source["db"] == primary_db.name and source["table"] == "customers" and source["server_id"] == 1
    assert source["row"] == 0 and source["query"] is None
    assert (source["gtid"], source["file"], source["pos"]) == (binhub[1]["gtid"], binhub[1]["file"], binhub[1]["pos"])
    assert source["ts_ms"] * 1000 == source["ts_us"] and source["ts_us"] * 1000 == source["ts_ns"]
    assert dt.datetime.fromtimestamp(source["ts_ms"] / 1000, dt.UTC).isoformat()[:19] == binhub[1]["ts"][:19]
    assert update["ts_ms"] >= source["ts_ms"] and isinstance(update["ts_ns"], int)
    assert update["transaction"] == {"id": binhub[1]["gtid"], "total_order": 1, "data_collection_order": 1}
    # Transaction metadata: each transaction framed by BEGIN and END, the END counting its changes.
    frames = [x for x in lines if "status" in x]
    assert [x["status"] for x in frames] == ["BEGIN", "END"] * 3
    begin, end = frames[2], frames[3]
    assert begin == {"status": "BEGIN", "id": binhub[1]["gtid"], "ts_ms": source["ts_ms"], "event_count": None,
                     "data_collections": None}
    assert end == begin | {"status": "END", "event_count": 1,
                           "data_collections": [{"data_collection": f"{primary_db.name}.customers", "event_count": 1}]}
    assert lines.index(begin) < lines.index(update) < lines.index(end)
    # DDL as the schema-change event, with the table as the connector's tableChanges describe it.
    ddl = next(x for x in lines if "ddl" in x and x["ddl"].startswith("CREATE TABLE customers"))
    assert ddl["databaseName"] == primary_db.name and ddl["schemaName"] is None
    db = primary_db.name

    def column(name: str, jdbc: int, type_name: str, position: int, **kw: Any) -> dict[str, Any]:
        return {"name": name, "jdbcType": jdbc, "nativeType": None, "typeName": type_name, "typeExpression": type_name,
                "charsetName": None, "length": None, "scale": None, "position": position, "optional": True,
                "defaultValueExpression": None, "hasDefaultValue": kw.get("defaultValueExpression") is not None,
                "autoIncremented": False, "generated": False, "comment": None, "enumValues": None} | kw

    def varchar(name: str, position: int) -> dict[str, Any]:
        return column(name, 12, "VARCHAR", position, charsetName="utf8mb4", length=255)

    customers = [column("id", 4, "INT", 1, optional=False), varchar("first_name", 2), varchar("last_name", 3),
                 varchar("email", 4)]
    assert ddl["tableChanges"] == [{"type": "CREATE", "id": f'"{db}"."customers"', "table": {
        "defaultCharsetName": "utf8mb4", "primaryKeyColumnNames": ["id"], "columns": customers, "comment": None,
        "attributes": []}}]
    # The documented ALTER, field by field: the table after it, middle_name in its place.
    alter = next(x for x in lines if "ddl" in x and x["ddl"].startswith("ALTER TABLE customers"))
    assert alter["tableChanges"][0]["type"] == "ALTER"
    assert alter["tableChanges"][0]["table"]["columns"] == [
        customers[0], customers[1], varchar("middle_name", 3), *(c | {"position": c["position"] + 1}
                                                                 for c in customers[2:])]
    auto = next(x for x in lines if "ddl" in x and x["ddl"].startswith("CREATE TABLE auto"))["tableChanges"][0]
    assert auto["table"]["defaultCharsetName"] == "latin1" and auto["table"]["comment"] == "priced"
    # Defaults as the connector's DDL parser gives them: literals unquoted, CURRENT_TIMESTAMP as the epoch.
    assert auto["table"]["columns"] == [
        column("id", 4, "INT UNSIGNED", 1, optional=False, autoIncremented=True, generated=True),
        column("price", 3, "DECIMAL", 2, optional=False, length=10, scale=2,
               defaultValueExpression="9.50", comment="in 'EUR'"),
        column("at", 93, "DATETIME", 3, length=6, defaultValueExpression="1970-01-01 00:00:00"),
        column("kind", 1, "ENUM", 4, charsetName="latin1", length=2, enumValues=["a", "bc"],
               defaultValueExpression="bc"),
        column("tags", 1, "SET", 5, charsetName="latin1", length=4, enumValues=["x", "yz"]),
        column("b", 2004, "BLOB", 6), column("doc", 1111, "JSON", 7) if "JSON" in str(auto) else
        column("doc", 12, "LONGTEXT", 7, charsetName="utf8mb4"),  # MariaDB's JSON is LONGTEXT
        column("g", 1111, "POINT", 8),
        column("bits", -7, "BIT", 9, optional=False, length=3, defaultValueExpression="101"),
        column("full_name", 12, "VARCHAR", 10, charsetName="latin1", length=20, generated=True)]
    drop = next(x for x in lines if "ddl" in x and x["ddl"].startswith("DROP TABLE"))["tableChanges"]
    assert [(t["type"], t["id"], len(t["table"]["columns"])) for t in drop] == [("DROP", f'"{db}"."auto"', 10)]


def test_debezium_value_encodings(primary_db: PrimaryDb, tmp_path: Path) -> None:
    c = primary_db.conn.cursor()
    c.execute("CREATE TABLE v (id INT PRIMARY KEY, d DECIMAL(10,3), day DATE, t TIME(6), dt3 DATETIME(3), "
              "dt6 DATETIME(6), ts TIMESTAMP(2) NULL, b1 BIT(1), b10 BIT(10), bin VARBINARY(8), "
              "big BIGINT UNSIGNED, j JSON, s SET('a','b','c'), e ENUM('x','y'), y YEAR)")
    c.execute("SET time_zone = '+00:00'")
    c.execute("INSERT INTO v VALUES (1, -12.300, '2024-02-29', '-838:59:59.000001', '2024-02-29 10:00:00.250', "
              "'1969-12-31 23:59:59.999999', '2024-02-29 10:00:00.25', b'1', b'1000000001', x'00ff', "
              "18446744073709551615, '{\"a\": [1, 2.5]}', 'a,c', 'y', 2024)")
    lines, _ = streamed(primary_db, tmp_path, "debezium")
    after = next(x for x in lines if x.get("op") == "c")["after"]
    unscaled = int.from_bytes(base64.b64decode(after["d"]), "big", signed=True)
    assert decimal.Decimal(unscaled).scaleb(-3) == decimal.Decimal("-12.300")
    assert after["day"] == (dt.date(2024, 2, 29) - dt.date(1970, 1, 1)).days
    assert after["t"] == -(838 * 3600 + 59 * 60 + 59) * 1_000_000 - 1
    assert after["dt3"] == int(dt.datetime(2024, 2, 29, 10, 0, 0, 250000, dt.UTC).timestamp() * 1000)
    assert after["dt6"] == -1  # one microsecond before the epoch
    assert after["ts"] == "2024-02-29T10:00:00.25Z"
    assert after["b1"] is True and base64.b64decode(after["b10"]) == (0b1000000001).to_bytes(2, "little")
    assert base64.b64decode(after["bin"]) == b"\x00\xff"
    assert after["big"] == -1  # bigint.unsigned.handling.mode=long: a Java long
    assert json.loads(after["j"]) == {"a": [1, 2.5]}
    assert (after["s"], after["e"], after["y"]) == ("a,c", "y", 2024)


def test_canal_matches_the_documented_flat_message(primary_db: PrimaryDb, tmp_path: Path) -> None:
    c = primary_db.conn.cursor()
    c.execute("CREATE TABLE user (id BIGINT(20) PRIMARY KEY, name VARCHAR(255))")
    c.execute("INSERT INTO user VALUES (1, 'a')")
    c.execute("UPDATE user SET name = 'b' WHERE id = 1")
    lines, binhub = streamed(primary_db, tmp_path, "canal")
    rows = [x for x in lines if not x["isDdl"]]
    assert [x["type"] for x in rows] == ["INSERT", "UPDATE"]
    update = rows[1]
    assert list(update) == ["id", "database", "table", "pkNames", "isDdl", "type", "es", "ts", "sql", "sqlType",
                            "mysqlType", "data", "old", "gtid"]
    expected = {"database": primary_db.name, "table": "user", "pkNames": ["id"], "isDdl": False, "type": "UPDATE",
                "sql": "", "sqlType": {"id": -5, "name": 12}, "mysqlType": {"id": "bigint(20)", "name": "varchar(255)"},
                "data": [{"id": "1", "name": "b"}], "old": [{"name": "a"}], "gtid": binhub[1]["gtid"]}
    assert {k: update[k] for k in expected} == expected
    assert rows[0]["old"] is None and rows[0]["data"] == [{"id": "1", "name": "a"}]
    assert update["es"] // 1000 == int(dt.datetime.fromisoformat(binhub[1]["ts"]).timestamp())
    assert update["ts"] >= update["es"] and update["id"] != rows[0]["id"]
    ddl = [x for x in lines if x["isDdl"]]
    assert [(x["type"], x["table"]) for x in ddl] == [("QUERY", ""), ("CREATE", "user")]  # CREATE DATABASE first
    assert ddl[1]["data"] is None and ddl[1]["sql"].startswith("CREATE TABLE user")


def schema_charset(cursor: Any, db: str) -> str:
    cursor.execute("SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (db,))
    return str(cursor.fetchone()[0])


def test_maxwell_matches_the_documented_insert(primary_db: PrimaryDb, tmp_path: Path) -> None:
    c = primary_db.conn.cursor()
    c.execute("CREATE TABLE e (id INT, m DECIMAL(10,4), c DATETIME(6), comment VARCHAR(255), PRIMARY KEY (id, c))")
    c.execute("INSERT INTO e VALUES (1, 4.2341, '2016-10-21 05:33:37.523000', 'I am a creature of light.')")
    c.execute("BEGIN")
    c.execute("UPDATE e SET m = 5 WHERE id = 1")
    c.execute("INSERT INTO e VALUES (2, 1, '2016-10-21 05:33:37', 'two')")
    c.execute("COMMIT")
    c.execute("ALTER TABLE e ADD tags SET('a','b') CHARACTER SET latin1 AFTER m, MODIFY comment VARCHAR(300), "
              "ADD at TIMESTAMP(3) NULL, ADD big BIGINT UNSIGNED, ADD blob_col BLOB")
    # The database's charset after each database DDL, as the server reports it (the oracle).
    charsets = [schema_charset(c, primary_db.name)]
    for clause in ("CHARACTER SET latin1", "COLLATE gbk_bin", "DEFAULT CHARSET = utf8mb4 COLLATE utf8mb4_bin"):
        c.execute(f"ALTER DATABASE `{primary_db.name}` {clause}")
        charsets.append(schema_charset(c, primary_db.name))
    assert charsets == ["utf8mb4", "latin1", "gbk", "utf8mb4"]
    lines, binhub = streamed(primary_db, tmp_path, "maxwell")
    rows = [x for x in lines if x["type"] in ("insert", "update", "delete")]
    insert = rows[0]
    assert list(insert) == ["database", "table", "type", "ts", "xid", "commit", "position", "server_id", "thread_id",
                            "primary_key", "primary_key_columns", "data"]
    expected = {"database": primary_db.name, "table": "e", "type": "insert", "commit": True,
                "position": f"{binhub[0]['file']}:{binhub[0]['pos']}", "server_id": 1,
                "primary_key": [1, "2016-10-21 05:33:37.523000"], "primary_key_columns": ["id", "c"],
                "data": {"id": 1, "m": 4.2341, "c": "2016-10-21 05:33:37.523000",
                         "comment": "I am a creature of light."}}
    assert {k: insert[k] for k in expected} == expected
    assert insert["ts"] == int(dt.datetime.fromisoformat(binhub[0]["ts"]).timestamp())
    assert isinstance(insert["xid"], int)
    assert insert["thread_id"] is None  # MariaDB's GTID event replaces BEGIN, which carries the thread id
    # A two-row transaction: one xid, commit only on its last row; old holds the changed columns only.
    update, second = rows[1], rows[2]
    assert update["type"] == "update" and update["old"] == {"m": 4.2341} and "commit" not in update
    assert second["commit"] is True and update["xid"] == second["xid"] != insert["xid"]
    ddl = [x for x in lines if x not in rows]
    assert [(x["type"], x["table"]) for x in ddl] == [("database-create", None), ("table-create", "e"),
                                                      ("table-alter", "e")] + [("database-alter", None)] * 3
    # Maxwell's ResolvedDatabaseCreate/Alter: the charset the statement gave, or the server's default.
    database_ddl = [x for x in ddl if x["type"].startswith("database-")]
    assert [x["charset"] for x in database_ddl] == charsets
    assert list(database_ddl[0]) == ["type", "database", "table", "charset", "sql", "position", "ts"]
    # The table definitions Maxwell's DDL events carry: def on a create, old and def on an alter.
    create, alter = ddl[1], ddl[2]
    assert list(create) == ["type", "database", "table", "def", "sql", "position", "ts"]
    assert list(alter) == ["type", "database", "table", "old", "def", "sql", "position", "ts"]
    columns = [{"type": "int", "name": "id", "signed": True},
               {"type": "decimal", "name": "m", "precision": 10, "scale": 4},
               {"type": "datetime", "name": "c", "column-length": 6},
               {"type": "varchar", "name": "comment", "charset": "utf8mb4"}]
    before = {"database": primary_db.name, "charset": "utf8mb4", "table": "e", "primary-key": ["id", "c"],
              "columns": columns}
    assert create["def"] == before and alter["old"] == before
    assert alter["def"] == before | {"columns": [
        *columns[:2], {"type": "set", "name": "tags", "charset": "latin1", "enum-values": ["a", "b"]}, *columns[2:],
        {"type": "timestamp", "name": "at", "column-length": 3}, {"type": "bigint", "name": "big", "signed": False},
        {"type": "blob", "name": "blob_col"}]}


def test_every_format_carries_every_change_of_the_full_workload(primary_db: PrimaryDb, tmp_path: Path) -> None:
    """The workload of test_stream.py (many types, no-key table, ADD/DROP COLUMN, RENAME TABLE):
    each format has one message per row change of binhub's, in the same order, with the same
    operation, table and column names."""
    from tests.integration.test_stream import write_workload

    write_workload(primary_db)
    data_dir = tmp_path / "store"
    relay(primary_db, data_dir)
    include = ("--include", f"{primary_db.name}.*")
    stream(data_dir, tmp_path / "binhub", *include)
    expected = [(c["op"], c["table"], sorted(c["after"] or c["before"])) for c in lines_of(tmp_path / "binhub")
                if c["op"] != "ddl"]
    assert len(expected) > 100
    ops = {"debezium": {"c": "insert", "u": "update", "d": "delete"},
           "canal": {"INSERT": "insert", "UPDATE": "update", "DELETE": "delete"}}
    for output in ("debezium", "canal", "maxwell"):
        stream(data_dir, tmp_path / output, "--format", output, *include)
        got = []
        for m in lines_of(tmp_path / output):
            if output == "debezium" and "op" in m:
                image = m["after"] or m["before"]
                got.append((ops["debezium"][m["op"]], m["source"]["table"], sorted(image)))
            elif output == "canal" and not m["isDdl"]:
                got.append((ops["canal"][m["type"]], m["table"], sorted(m["data"][0])))
            elif output == "maxwell" and m["type"] in ("insert", "update", "delete"):
                got.append((m["type"], m["table"], sorted(m["data"])))
        assert got == expected, output


def test_excluded_and_masked_columns_in_every_format(primary_db: PrimaryDb, tmp_path: Path) -> None:
    """The rules of --exclude-column/--mask-column hold in Debezium, Canal and Maxwell JSON as in
    binhub's: an excluded column is gone from every image (and the key), a masked one carries the
    very value binhub's format gives it (the same hash: masked values join across formats), whatever
    its type, with other columns encoded as the format encodes them."""
    c = primary_db.conn.cursor()
    c.execute("CREATE TABLE users (id INT, email VARCHAR(40), born DATE, salary DECIMAL(8,2), notes TEXT, "
              "pin BINARY(2), age INT, PRIMARY KEY (id, email))")
    c.execute("INSERT INTO users VALUES (1, 'a@x.org', '1990-01-02', 1234.50, 'vip', x'0102', 40), "
              "(2, 'b@x.org', NULL, NULL, NULL, NULL, 30)")
    c.execute("UPDATE users SET age = age + 1, born = '1990-01-03', salary = 99.99")
    c.execute("DELETE FROM users WHERE id = 2")
    data_dir = tmp_path / "store"
    relay(primary_db, data_dir)
    db = primary_db.name
    rules = ("--include", f"{db}.*", "--exclude-column", f"{db}.users.notes", "--mask-column", f"{db}.users.email",
             "--mask-column", f"{db}.users.born", "--mask-column", f"{db}.users.salary=redact",
             "--mask-column", f"{db}.users.pin=null")
    stream(data_dir, tmp_path / "binhub", *rules)
    binhub = [x for x in lines_of(tmp_path / "binhub") if x["op"] != "ddl"]
    masked = {"email", "born", "salary", "pin"}
    assert len(binhub) == 5 and binhub[0]["after"]["email"].startswith("sha256:")
    assert binhub[0]["after"]["born"].startswith("sha256:") and binhub[0]["after"]["salary"] == "[redacted]"

    def check(image: dict[str, Any] | None, expected: dict[str, Any] | None, age: Any) -> None:
        if expected is None:
            assert image is None
            return
        assert image is not None and set(image) == set(expected), "notes is excluded, the rest kept"
        assert {k: image[k] for k in masked} == {k: expected[k] for k in masked}
        assert image["age"] == age(expected["age"])

    for output in ("debezium", "canal", "maxwell"):
        stream(data_dir, tmp_path / output, "--format", output, *rules)
        lines = lines_of(tmp_path / output)
        if output == "debezium":
            rows = [x for x in lines if "op" in x]
            assert len(rows) == 5
            for row, want in zip(rows, binhub, strict=True):
                check(row["before"], want["before"], int)
                check(row["after"], want["after"], int)
        elif output == "canal":
            rows = [x for x in lines if not x["isDdl"]]
            assert len(rows) == 5
            for row, want in zip(rows, binhub, strict=True):
                check(row["data"][0], want["after"] or want["before"], str)
                assert row["pkNames"] == ["id", "email"] and row["sqlType"]["email"] == 12
                assert "notes" not in row["sqlType"] and "notes" not in row["mysqlType"]
                if row["type"] == "UPDATE":  # old: the changed columns' previous values, masked as well
                    before, after = want["before"], want["after"]
                    assert row["old"][0] == {k: str(v) if k == "age" else v for k, v in before.items()
                                             if v != after[k]}
        else:
            rows = [x for x in lines if x["type"] in ("insert", "update", "delete")]
            assert len(rows) == 5
            for row, want in zip(rows, binhub, strict=True):
                check(row["data"], want["after"] or want["before"], int)
                assert row["primary_key_columns"] == ["id", "email"]
                assert row["primary_key"] == [want["pk"]["id"], want["pk"]["email"]], "a masked key is masked"
