"""Bad input to the row decoder: each gets a clear error naming what and where, never a mis-decode."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from binhub.binlog.changes import RowChangeDecoder
from binhub.binlog.columns import ColumnInfo, TableSchema
from binhub.binlog.constants import EventType
from binhub.binlog.events import RowsEvent, TableMapEvent
from binhub.binlog.file import BinlogFileReader
from binhub.binlog.header import EventHeader
from binhub.binlog.rows import TableDecoder
from binhub.binlog.table_map import parse_table_map
from binhub.errors import InvalidEvent, SchemaMismatch, TruncatedEvent, UnsupportedValue

NO_CRC_FILE = "osheroff__mysql-binlog-connector-java/mysql-bin.checksum-none"


def _table_map(types: bytes, metadata: bytes, optional: bytes = b"") -> TableMapEvent:
    header = EventHeader(0, EventType.TABLE_MAP, 1, 0, 0, 0)
    return TableMapEvent(header, b"", 7, 1, "db", "t", len(types), types, metadata,
                         b"\xff" * ((len(types) + 7) // 8), optional)


def test_truncated_rows_event_names_file_and_offset(shared_binlogs: Path) -> None:
    with (shared_binlogs / NO_CRC_FILE).open("rb") as f:
        reader = BinlogFileReader(f, "mysql-bin.checksum-none")
        decoder = RowChangeDecoder("mysql-bin.checksum-none")
        for event in reader:
            if event.header.type_code == EventType.WRITE_ROWS_V2:
                # The same event, 3 bytes short, its header saying so (no CRC in this file to catch it).
                data = bytearray(event.data[:-3])
                struct.pack_into("<I", data, 9, len(data))
                with pytest.raises(TruncatedEvent) as info:
                    list(decoder.feed(bytes(data), event.offset, reader.fde))
                assert info.value.file == "mysql-bin.checksum-none" and info.value.offset == event.offset
                assert "ends inside row 1" in info.value.message
                return
            list(decoder.feed(event.data, event.offset, reader.fde))
    pytest.fail("no WRITE_ROWS_V2 in the file")


def test_rows_event_without_its_table_map(shared_binlogs: Path) -> None:
    with (shared_binlogs / NO_CRC_FILE).open("rb") as f:
        reader = BinlogFileReader(f, "x")
        decoder = RowChangeDecoder("x")
        for event in reader:
            if event.header.type_code == EventType.WRITE_ROWS_V2:
                with pytest.raises(InvalidEvent, match="without its TABLE_MAP"):
                    list(decoder.feed(event.data, event.offset, reader.fde))
                return


def test_unknown_column_type_code() -> None:
    with pytest.raises(InvalidEvent, match="column 2 has type code 200"):
        parse_table_map(_table_map(bytes([3, 200]), b""), mariadb=False)


def test_column_type_without_a_decoder() -> None:
    table_map = parse_table_map(_table_map(bytes([3, 20]), b""), mariadb=False)  # MYSQL_TYPE_TYPED_ARRAY
    with pytest.raises(UnsupportedValue, match=r"column @2 \(TYPED_ARRAY.*no decoder for column type 20"):
        TableDecoder(table_map)


def test_old_decimal_is_named() -> None:
    table_map = parse_table_map(_table_map(bytes([0]), b""), mariadb=False)
    with pytest.raises(UnsupportedValue, match="old-style DECIMAL"):
        TableDecoder(table_map)


def test_charset_without_a_decoder() -> None:
    # VARCHAR(10) whose COLUMN_CHARSET optional metadata says collation 10 (swe7_swedish_ci).
    table_map = parse_table_map(_table_map(bytes([15]), b"\x0a\x00", b"\x03\x01\x0a"), mariadb=False)
    assert table_map.columns()[0].charset == "swe7"
    with pytest.raises(UnsupportedValue, match="swe7 charset"):
        TableDecoder(table_map)


def test_schema_of_another_shape_names_both() -> None:
    table_map = parse_table_map(_table_map(bytes([3, 15]), b"\x28\x00"), mariadb=False)
    schema = TableSchema("db", "t", (ColumnInfo("id"), ColumnInfo("name"), ColumnInfo("added")), ("id",))
    with pytest.raises(SchemaMismatch) as info:
        TableDecoder(table_map, schema)
    assert "2 columns (LONG, VARCHAR)" in str(info.value) and "3 columns (id, name, added)" in str(info.value)


def test_optional_metadata_is_read() -> None:
    # SIGNEDNESS (1 numeric column: unsigned), COLUMN_NAME, SIMPLE_PRIMARY_KEY, ENUM_STR_VALUE.
    optional = (b"\x01\x01\x80" + b"\x04\x07\x02id\x03val" + b"\x08\x01\x00" + b"\x06\x05\x02\x01a\x01b")
    table_map = parse_table_map(_table_map(bytes([3, 254]), bytes([0xF7, 0x01]), optional), mariadb=False)
    columns = table_map.columns()
    assert [c.name for c in columns] == ["id", "val"] and columns[0].unsigned
    assert columns[1].enum_values == ("a", "b") and table_map.primary_key() == (0,)


def _rows_event(type_code: int, body: bytes, ncols: int) -> RowsEvent:
    header = EventHeader(0, type_code, 1, 0, 0, 0)
    return RowsEvent(header, b"", 7, 1, b"", ncols, body)


def test_vectors_mysql_type_and_mariadb_varbinary() -> None:
    floats = struct.pack("<3f", 1.5, -2.25, 0.1)
    # MySQL 9: VECTOR (242) with a 4-byte length; MariaDB 11.7: a VARBINARY the schema calls vector(3).
    mysql = TableDecoder(parse_table_map(_table_map(bytes([242]), b"\x04"), mariadb=False))
    row = b"\x01" + b"\x00" + struct.pack("<I", len(floats)) + floats
    (images,) = mysql.decode(_rows_event(EventType.WRITE_ROWS_V2, row, 1))
    assert images.after == {"@1": [1.5, -2.25, 0.1]}
    table_map = parse_table_map(_table_map(bytes([15]), b"\x0c\x00", b"\x03\x01\x3f"), mariadb=True)
    schema = TableSchema("db", "t", (ColumnInfo("v", charset="binary", sql_type="vector(3)"),))
    (images,) = TableDecoder(table_map, schema).decode(_rows_event(EventType.WRITE_ROWS_V1,
                                                                   b"\x01\x00" + bytes([12]) + floats, 1))
    assert images.after == {"v": [1.5, -2.25, 0.1]}


def test_compressed_column_that_does_not_inflate() -> None:
    table_map = parse_table_map(_table_map(bytes([140]), b"\x02", b"\x03\x01\x3f"), mariadb=True)
    body = b"\x01\x00" + struct.pack("<H", 4) + b"\x82\x00\x10\xff"  # zlib header, 16 bytes promised, junk
    with pytest.raises(InvalidEvent, match="db.t row 1: a value cannot be decoded"):
        TableDecoder(table_map).decode(_rows_event(EventType.WRITE_ROWS_V1, body, 1), file="f", offset=9)
