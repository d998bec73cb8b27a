"""SQL literals and statements of the MySQL sink, type by type (the real-server round trip of every
type is tests/integration/test_apply_sql.py)."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from binhub.binlog.column_values import JSON_NULL, Geometry, UndecodedText
from binhub.sinks.mysql.sql import (
    InsertMode,
    Kind,
    SqlColumn,
    SqlError,
    column_kind,
    delete_sql,
    from_json,
    insert_sql,
    literal,
    quote_name,
    quote_table,
    update_sql,
    where_literal,
)


def col(sql_type: str, charset: str | None = None, name: str = "c") -> SqlColumn:
    return SqlColumn.of(name, sql_type, charset)


@pytest.mark.parametrize(("sql_type", "charset", "kind"), [
    ("bigint(20) unsigned", None, Kind.INTEGER), ("tinyint(1)", None, Kind.INTEGER), ("int", None, Kind.INTEGER),
    ("decimal(65,30)", None, Kind.DECIMAL), ("float", None, Kind.FLOAT), ("double", None, Kind.DOUBLE),
    ("datetime(6)", None, Kind.TEMPORAL), ("time(3)", None, Kind.TEMPORAL), ("year(4)", None, Kind.YEAR),
    ("varchar(300)", "utf8mb4", Kind.TEXT), ("char(10)", "binary", Kind.BINARY), ("longblob", None, Kind.BINARY),
    ("blob /*M!100301 COMPRESSED*/", None, Kind.BINARY), ("varchar(20) /*M!100301 COMPRESSED*/", "utf8mb4", Kind.TEXT),
    ("bit(13)", None, Kind.BIT), ("enum('a','b')", "utf8mb4", Kind.ENUM), ("set('x','y')", "latin1", Kind.SET),
    ("json", None, Kind.JSON), ("point", None, Kind.GEOMETRY), ("geomcollection", None, Kind.GEOMETRY),
    ("vector(3)", None, Kind.VECTOR), ("longtext", "utf8mb4", Kind.TEXT),
])
def test_column_kinds(sql_type: str, charset: str | None, kind: Kind) -> None:
    assert column_kind(sql_type, charset) is kind


def test_unknown_type_is_named() -> None:
    with pytest.raises(SqlError, match="uuid4ish"):
        column_kind("uuid4ish")


@pytest.mark.parametrize(("sql_type", "value", "text"), [
    ("bigint", -9223372036854775808, "-9223372036854775808"),
    ("bigint unsigned", 18446744073709551615, "18446744073709551615"),
    ("decimal(10,3)", "-9999999.999", "-9999999.999"),
    ("decimal(5,0)", "0", "0"),
    ("double", 0.1, "0.1e0"),
    ("double", -1.7976931348623157e308, "-1.7976931348623157e+308"),
    ("double", -0.0, "-0.0e0"),
    ("float", 1.1, "1.1e0"),
    ("float", 3.40282e38, "3.40282e+38"),
    ("date", "0000-00-00", "'0000-00-00'"),
    ("time(6)", "-838:59:59.000000", "'-838:59:59.000000'"),
    ("datetime(2)", "9999-12-31 23:59:59.99", "'9999-12-31 23:59:59.99'"),
    ("timestamp(4)", "1970-01-01 00:00:01.0001", "'1970-01-01 00:00:01.0001'"),
    ("year", 0, "0"),
    ("year", 2155, "2155"),
    ("varchar(20)", "it's a \\ \n\r\x00\x1a", "_utf8mb4'it\\'s a \\\\ \\n\\r\\0\\Z'"),
    ("varchar(20)", "\U0001F600", "_utf8mb4'\U0001F600'"),
    ("varbinary(10)", b"\x00\xff'", "X'00ff27'"),
    ("blob", b"", "X''"),
    ("bit(64)", 0xFFFFFFFFFFFFFFFF, "18446744073709551615"),
    ("enum('a','b')", "b", "_utf8mb4'b'"),
    ("enum('a','b')", 2, "2"),
    ("set('x','y','z')", "x,z", "_utf8mb4'x,z'"),
    ("set('x','y','z')", 5, "5"),
    ("json", {"a": [1, 2.5, None, True]}, "CAST(_utf8mb4'{\"a\":[1,2.5,null,true]}' AS JSON)"),
    ("json", JSON_NULL, "CAST(_utf8mb4'null' AS JSON)"),
    ("json", "it's", "CAST(_utf8mb4'\"it\\'s\"' AS JSON)"),
    ("longtext", {"k": 1}, "_utf8mb4'{\"k\":1}'"),  # a MySQL JSON document into MariaDB's JSON (LONGTEXT)
    ("point", Geometry(4326, bytes.fromhex("0101000000000000000000f03f0000000000000040")),
     "X'e6100000" + "0101000000000000000000f03f0000000000000040'"),
    ("vector(2)", [1.5, -2.0], "X'" + struct.pack("<2f", 1.5, -2.0).hex() + "'"),
])
def test_literals(sql_type: str, value: Any, text: str) -> None:
    assert literal(col(sql_type, "utf8mb4"), value) == text


def test_null_for_every_kind() -> None:
    assert {literal(col(t), None) for t in ("int", "json", "blob", "point", "date")} == {"NULL"}


def test_undecoded_text_keeps_its_bytes() -> None:
    assert literal(col("varchar(5)", "gbk"), UndecodedText(b"\xff\xfe", "gbk")) == "_gbk X'fffe'"
    assert literal(col("varchar(5)", "latin1"), UndecodedText(b"\xff", None)) == "_latin1 X'ff'"


def test_float_compares_as_its_exact_double() -> None:
    c = col("float")
    assert literal(c, 1.1) == "1.1e0"
    assert where_literal(c, 1.1) == "1.100000023841858e0"
    assert where_literal(col("double"), 1.1) == "1.1e0"


@pytest.mark.parametrize(("sql_type", "value"), [
    ("double", float("nan")), ("double", float("inf")), ("int", "7"), ("int", True), ("decimal(3,1)", "1e5"),
    ("date", "2020-01-01'; DROP TABLE t; --"), ("blob", 7),
])
def test_bad_values_are_refused(sql_type: str, value: Any) -> None:
    with pytest.raises(SqlError, match="column c"):
        literal(col(sql_type), value)


def test_from_json_reverts_json_only_forms() -> None:
    assert from_json(col("blob"), "AP8=") == b"\x00\xff"
    assert from_json(col("geometry"), {"srid": 0, "wkb": "AQ=="}) == Geometry(0, b"\x01")
    assert from_json(col("varchar(3)", "gbk"), {"undecoded": "/w==", "charset": "gbk"}) == UndecodedText(b"\xff", "gbk")
    assert from_json(col("varchar(3)"), "AP8=") == "AP8="
    assert from_json(col("json"), {"a": 1}) == {"a": 1}
    assert from_json(col("blob"), None) is None
    with pytest.raises(SqlError, match="not a binary value"):
        from_json(col("blob"), "not base64!")


def test_identifiers() -> None:
    assert quote_name("we`ird") == "`we``ird`"
    assert quote_table("d", "t") == "`d`.`t`"


def test_statements() -> None:
    a, b = col("int", name="a"), col("varchar(5)", "utf8mb4", name="b")
    t = quote_table("d", "t")
    rows = [[1, "x"], [2, None]]
    assert insert_sql(t, [a, b], rows) == "INSERT INTO `d`.`t` (`a`, `b`) VALUES (1, _utf8mb4'x'), (2, NULL)"
    assert insert_sql(t, [a, b], rows, InsertMode.REPLACE).startswith("REPLACE INTO `d`.`t` (`a`, `b`) VALUES")
    assert insert_sql(t, [a], [[1]], InsertMode.IGNORE) == "INSERT IGNORE INTO `d`.`t` (`a`) VALUES (1)"
    assert insert_sql(t, [a, b], [[1, "x"]], InsertMode.UPSERT) == (
        "INSERT INTO `d`.`t` (`a`, `b`) VALUES (1, _utf8mb4'x') "
        "ON DUPLICATE KEY UPDATE `a` = VALUES(`a`), `b` = VALUES(`b`)")
    assert update_sql(t, [(b, "y")], [(a, 1)], whole_row=False) == \
        "UPDATE `d`.`t` SET `b` = _utf8mb4'y' WHERE `a` = 1"
    assert update_sql(t, [(b, "y")], [(a, 1), (b, None)], whole_row=True) == \
        "UPDATE `d`.`t` SET `b` = _utf8mb4'y' WHERE `a` <=> 1 AND `b` <=> NULL LIMIT 1"
    assert delete_sql(t, [(a, 1)], whole_row=False) == "DELETE FROM `d`.`t` WHERE `a` = 1"
    assert delete_sql(t, [(a, 1), (b, "x")], whole_row=True) == \
        "DELETE FROM `d`.`t` WHERE `a` <=> 1 AND `b` <=> _utf8mb4'x' LIMIT 1"
