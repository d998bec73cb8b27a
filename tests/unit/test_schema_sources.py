"""Where the history's knowledge comes from besides DDL text: QUERY status variables, real binlog
files, information_schema rows, and TABLE_MAP metadata (merge and shape check)."""

from __future__ import annotations

import struct
from collections import Counter
from pathlib import Path

import pytest

from binhub.binlog.columns import ColumnInfo, TableSchema
from binhub.binlog.file import BinlogFileReader
from binhub.binlog.query_status import StatusVar, decode_query_status
from binhub.errors import SchemaMismatch
from binhub.schema.catalog import Charset
from binhub.schema.changes import Outcome, TableName
from binhub.schema.ddl import parse_statement
from binhub.schema.fallback import parse_fallback
from binhub.schema.scan import QueryScanner
from binhub.schema.seed import catalog_from_information_schema
from binhub.schema.sqltext import resolve_executable_comments, tokenize
from binhub.schema.tablemap import OptionalMetadata, check_table_map, merge_table_map

# ------------------------------------------------------------------------------- status variables


def test_status_variables_give_the_session_charsets() -> None:
    raw = (bytes([StatusVar.FLAGS2]) + struct.pack("<I", 0)
           + bytes([StatusVar.SQL_MODE]) + struct.pack("<Q", 0x4000)
           + bytes([StatusVar.CATALOG_NZ]) + b"\x03std"
           + bytes([StatusVar.CHARSET]) + struct.pack("<HHH", 33, 33, 8)
           + bytes([StatusVar.TIME_ZONE]) + b"\x06+00:00"
           + bytes([StatusVar.UPDATED_DB_NAMES]) + b"\x02db1\x00db2\x00"
           + bytes([StatusVar.INVOKER]) + b"\x04root\x09localhost"
           + bytes([StatusVar.DEFAULT_COLLATION_FOR_UTF8MB4]) + struct.pack("<H", 255)
           + bytes([StatusVar.XID]) + struct.pack("<Q", 9))
    status = decode_query_status(raw)
    assert (status.character_set_client, status.collation_connection, status.collation_server) == (33, 33, 8)
    assert status.sql_mode == 0x4000 and status.default_collation_for_utf8mb4 == 255
    assert status.updated_db_names == ("db1", "db2") and status.complete


def test_an_unknown_status_variable_stops_the_walk_and_says_so() -> None:
    raw = bytes([StatusVar.CHARSET]) + struct.pack("<HHH", 45, 45, 45) + b"\x7f\x01\x02"
    status = decode_query_status(raw)
    assert status.collation_server == 45 and not status.complete
    truncated = decode_query_status(bytes([StatusVar.CHARSET]) + b"\x01\x00")
    assert truncated.collation_server is None and not truncated.complete


# ------------------------------------------------------------------------------------ real files

def test_every_statement_of_the_real_binlog_files_is_understood(shared_binlogs: Path) -> None:
    """The QUERY events of MySQL 5.7–8.x and MariaDB files from public projects: each is DDL or
    explicitly ignored; where sqlglot parsed, the fallback agrees; collation_server is read."""
    outcomes: Counter[str] = Counter()
    collations: set[int] = set()
    for path in sorted(p for p in shared_binlogs.rglob("*") if p.is_file()):
        with open(path, "rb") as f:
            if f.read(4) != b"\xfebin":
                continue
            f.seek(0)
            scanner = QueryScanner(path.name)
            try:
                for event in BinlogFileReader(f, path.name, verify_checksums=False):
                    rec = scanner.feed(event)
                    if rec is None:
                        continue
                    parsed = parse_statement(rec.sql, rec.db, flavour=rec.flavour, server_version=rec.server_version)
                    assert parsed.outcome != Outcome.UNKNOWN, (path.name, rec.pos, rec.sql, parsed.reason)
                    outcomes[parsed.outcome.name] += 1
                    if rec.status.collation_server is not None:
                        collations.add(rec.status.collation_server)
                    if parsed.parser == "sqlglot":
                        text = resolve_executable_comments(rec.sql, rec.server_version, rec.flavour)
                        assert tuple(parse_fallback(tokenize(text), rec.db, rec.flavour)) == parsed.changes
            except Exception as exc:
                if "ends inside" not in str(exc):  # the deliberately truncated sample files
                    raise
    assert outcomes["DDL"] >= 25 and outcomes["IGNORED"] >= 100, outcomes
    assert collations & {8, 33, 45, 255}, collations


# ------------------------------------------------------------------------------ information_schema

def test_information_schema_rows_become_a_catalog() -> None:
    columns = [
        ("id", 1, "int(10) unsigned", "NO", None, None, "auto_increment"),
        ("name", 2, "varchar(20)", "YES", "utf8mb4", "utf8mb4_bin", ""),
        ("kind", 3, "enum('a','b''c')", "NO", "latin1", "latin1_swedish_ci", ""),
        ("blob", 4, "varbinary(4)", "YES", None, None, ""),
        ("hidden", 5, "tinyint(1)", "YES", None, None, "INVISIBLE"),
        ("odd`name", 6, "json", "YES", None, None, ""),
        ("twice", 7, "int(11)", "YES", None, None, "STORED GENERATED"),
        ("at", 8, "timestamp", "YES", None, None, "DEFAULT_GENERATED"),
    ]
    catalog = catalog_from_information_schema(
        server=Charset("utf8mb4", "utf8mb4_general_ci"),
        schemata=[{"SCHEMA_NAME": "shop", "DEFAULT_CHARACTER_SET_NAME": "utf8",
                   "DEFAULT_COLLATION_NAME": "utf8_general_ci"},
                  {"SCHEMA_NAME": "mysql", "DEFAULT_CHARACTER_SET_NAME": "utf8mb4",
                   "DEFAULT_COLLATION_NAME": "utf8mb4_general_ci"}],
        tables=[{"TABLE_SCHEMA": "shop", "TABLE_NAME": "t", "TABLE_TYPE": "BASE TABLE",
                 "TABLE_COLLATION": "latin1_swedish_ci"},
                {"TABLE_SCHEMA": "shop", "TABLE_NAME": "v", "TABLE_TYPE": "VIEW", "TABLE_COLLATION": None}],
        columns=[{"TABLE_SCHEMA": "shop", "TABLE_NAME": "t", "COLUMN_NAME": n, "ORDINAL_POSITION": o,
                  "COLUMN_TYPE": ty, "IS_NULLABLE": nl, "CHARACTER_SET_NAME": cs, "COLLATION_NAME": co,
                  "EXTRA": ex} for n, o, ty, nl, cs, co, ex in reversed(columns)],
        primary_keys=[{"TABLE_SCHEMA": "shop", "TABLE_NAME": "t", "COLUMN_NAME": "kind", "SEQ_IN_INDEX": 2},
                      {"TABLE_SCHEMA": "shop", "TABLE_NAME": "t", "COLUMN_NAME": "id", "SEQ_IN_INDEX": 1}],
    )
    assert catalog.databases == {"shop": Charset("utf8mb3", "utf8mb3_general_ci")}
    assert list(catalog.tables) == [TableName("shop", "t")]
    t = catalog.tables[TableName("shop", "t")]
    assert t.primary_key == ("id", "kind") and t.default == Charset("latin1", "latin1_swedish_ci")
    assert [(c.name, c.sql_type, c.charset, c.collation, c.nullable, c.visible) for c in t.columns] == [
        ("id", "int unsigned", None, None, False, True),
        ("name", "varchar(20)", "utf8mb4", "utf8mb4_bin", True, True),
        ("kind", "enum('a','b''c')", "latin1", "latin1_swedish_ci", False, True),
        ("blob", "varbinary(4)", "binary", None, True, True),
        ("hidden", "tinyint(1)", None, None, True, False),
        ("odd`name", "json", None, None, True, True),
        ("twice", "int", None, None, True, True),
        ("at", "timestamp", None, None, True, True),
    ]
    assert t.columns[2].enum_values == ("a", "b'c") and t.columns[0].unsigned
    # AUTO_INCREMENT and generated columns (MySQL's DEFAULT_GENERATED is a default expression, not one).
    assert [(c.auto_increment, c.generated) for c in t.columns[::6]] == [(True, False), (False, True)]
    assert not t.columns[7].generated and not t.columns[1].auto_increment


# --------------------------------------------------------------------------------------- TABLE_MAP

HISTORY = TableSchema("d", "t", (
    ColumnInfo("id", unsigned=True, sql_type="int unsigned", nullable=False),
    ColumnInfo("name", charset="latin1", collation="latin1_bin", sql_type="varchar(10)"),
    ColumnInfo("e", charset="latin1", sql_type="enum('a','b')", enum_values=("a", "b")),
), ("id",))
LONG, VARCHAR, STRING, LONGLONG = 3, 15, 254, 8


def test_a_table_map_that_disagrees_is_refused_with_both_shapes_named() -> None:
    check_table_map(HISTORY, bytes([LONG, VARCHAR, STRING]))
    with pytest.raises(SchemaMismatch) as info:
        check_table_map(HISTORY, bytes([LONG, VARCHAR]), "mysql-bin.000003:1234 (GTID 0-1-9)")
    message = str(info.value)
    assert "column count differs" in message and "mysql-bin.000003:1234" in message
    assert "the TABLE_MAP has 2 columns (long, varchar)" in message
    assert "the schema history has 3 (id int unsigned, name varchar(10), e enum('a','b'))" in message
    with pytest.raises(SchemaMismatch, match=r"column 1 \(id\) is int unsigned in the schema history but longlong"):
        check_table_map(HISTORY, bytes([LONGLONG, VARCHAR, STRING]))


def test_full_metadata_wins_field_by_field() -> None:
    from_map = TableSchema("d", "t", (
        ColumnInfo("id", unsigned=False),
        ColumnInfo("renamed", charset="utf8mb4", collation_id=46),
        ColumnInfo("e", enum_values=("x", "y"), visible=False),
    ), ("renamed",))
    merged = merge_table_map(HISTORY, from_map, [OptionalMetadata.COLUMN_NAME, OptionalMetadata.SIGNEDNESS,
                                                 OptionalMetadata.COLUMN_CHARSET, OptionalMetadata.ENUM_STR_VALUE,
                                                 OptionalMetadata.SIMPLE_PRIMARY_KEY],
                             bytes([LONG, VARCHAR, STRING]))
    id_, name, e = merged.columns
    assert (id_.name, id_.unsigned, id_.sql_type) == ("id", False, "int unsigned")
    assert (name.name, name.charset, name.collation_id, name.collation) == ("renamed", "utf8mb4", 46, None)
    assert e.enum_values == ("x", "y") and e.visible  # visibility not in the event: the history's
    assert merged.primary_key == ("renamed",) and merged.known


def test_minimal_metadata_keeps_the_historys_names() -> None:
    from_map = TableSchema("d", "t", (ColumnInfo(None, unsigned=False), ColumnInfo(None), ColumnInfo(None)))
    merged = merge_table_map(HISTORY, from_map, [OptionalMetadata.SIGNEDNESS])
    assert merged.column_names() == ("id", "name", "e") and merged.primary_key == ("id",)
    with pytest.raises(SchemaMismatch, match="2 columns"):
        merge_table_map(HISTORY, TableSchema("d", "t", (ColumnInfo(None), ColumnInfo(None))), [])


def test_without_a_history_only_full_names_make_a_table_known() -> None:
    unnamed = TableSchema("d", "t", (ColumnInfo(None), ColumnInfo(None)))
    merged = merge_table_map(None, unnamed, [])
    assert not merged.known and merged.column_names() == ("@1", "@2")
    unknown = TableSchema("d", "t", (), known=False)
    named = TableSchema("d", "t", (ColumnInfo("a"), ColumnInfo("b")))
    assert merge_table_map(unknown, named, [OptionalMetadata.COLUMN_NAME]).known


# ------------------------------------------------------------------------------------- the scanner

def _query_body(sql: bytes, schema: str, status: bytes) -> bytes:
    return struct.pack("<IIBHH", 7, 0, len(schema), 0, len(status)) + status + schema.encode() + b"\0" + sql


@pytest.mark.parametrize("flavour", ["mariadb", "mysql"])
def test_the_scanner_gives_each_query_its_gtid_database_and_client_charset(tmp_path: Path, flavour: str) -> None:
    import uuid

    from binhub.binlog.constants import EventType
    from binhub.binlog.file import read_events
    from tests.binlog_factory import BinlogFileBuilder

    b = BinlogFileBuilder("mysql-bin.000007", flavour)
    server = uuid.UUID("3e11fa47-71ca-11e1-9e33-c80aa9429562")
    if flavour == "mariadb":
        b.maria_gtid(0, 42, standalone=True)
    else:
        b.mysql_gtid(server, 42)
    latin1 = bytes([StatusVar.CHARSET]) + struct.pack("<HHH", 8, 8, 45)  # client latin1, server utf8mb4
    ddl_at = b.add(EventType.QUERY, _query_body("CREATE TABLE café (ß INT)".encode("latin1"), "shop", latin1))
    b.query("BEGIN")
    path = b.save(tmp_path)
    scanner = QueryScanner(path.name)
    records = [r for r in (scanner.feed(e) for e in read_events(path)) if r is not None]
    first = records[0]
    assert (first.pos, first.db, first.sql) == (ddl_at, "shop", "CREATE TABLE café (ß INT)")
    assert first.gtid == ("0-1-42" if flavour == "mariadb" else f"{server}:42")
    assert first.status.collation_server == 45 and first.flavour == flavour
    assert first.end == records[1].pos and str(first.position) == f"mysql-bin.000007:{ddl_at}"
    parsed = parse_statement(first.sql, first.db)
    assert parsed.changes and parsed.changes[0].name == TableName("shop", "café")  # type: ignore[union-attr]
