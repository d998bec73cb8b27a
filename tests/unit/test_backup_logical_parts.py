"""The pure parts of the logical backup: chunk files, keyset predicates, filters, deferred keys."""

from __future__ import annotations

from pathlib import Path

import zstandard

from binhub.backup.logical.catalog import TableEntry, TableFilter
from binhub.backup.logical.chunking import RangeJob, keyset_after
from binhub.backup.logical.literals import Layout
from binhub.backup.logical.loader import key_name, split_secondary_keys
from binhub.backup.logical.manifest import ColumnRecord
from binhub.backup.logical.writer import chunk_path, write_chunk
from binhub.innodb import crc32c


def test_chunk_file_is_the_lines_compressed_with_its_size_and_checksum(tmp_path: Path) -> None:
    record = write_chunk(tmp_path, chunk_path("d b", "t/1", 7), bytearray(b"1\tx\n2\t\\N\n3\ty\n"), 3, level=3)
    assert record.file == "data/d%20b/t%2F1.00007.tsv.zst" and record.rows == 3 and record.sql_bytes == 13
    data = (tmp_path / record.file).read_bytes()
    assert record.bytes == len(data) and record.crc32c == f"{crc32c(data):08x}"
    assert zstandard.ZstdDecompressor().decompress(data) == b"1\tx\n2\t\\N\n3\ty\n"


def test_keyset_predicate_continues_after_the_last_key() -> None:
    assert keyset_after(["a"], [b"'x'"]) == "(`a` > 'x')"
    assert keyset_after(["a", "b`c"], [b"'x'", b"3"]) == "(`a` > 'x') OR (`a` = 'x' AND `b``c` > 3)"


def test_filters_are_globs_on_db_table_and_never_take_system_schemas() -> None:
    f = TableFilter(include=("shop.*", "crm.customers"), exclude=("*.tmp_*",))
    assert f.wants("shop", "orders") and f.wants("crm", "customers")
    assert not f.wants("crm", "leads") and not f.wants("shop", "tmp_x") and not f.wants("mysql", "user")
    assert TableFilter().wants("any", "thing") and not TableFilter().wants("performance_schema", "x")


def test_secondary_keys_are_split_off_and_the_rest_stays_valid() -> None:
    create = ("CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  `a` int(11) DEFAULT NULL,\n  `b` text,\n"
              "  PRIMARY KEY (`id`),\n  UNIQUE KEY `ua` (`a`),\n  KEY `ab` (`a`,`b`(10)),\n"
              "  FULLTEXT KEY `ft` (`b`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")
    table, keys = split_secondary_keys(create)
    assert keys == ["UNIQUE KEY `ua` (`a`)", "KEY `ab` (`a`,`b`(10))"]
    assert table == ("CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  `a` int(11) DEFAULT NULL,\n  `b` text,\n"
                     "  PRIMARY KEY (`id`),\n  FULLTEXT KEY `ft` (`b`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")
    last_key = "CREATE TABLE `u` (\n  `id` int(11) NOT NULL,\n  KEY `k` (`id`)\n) ENGINE=InnoDB"
    assert split_secondary_keys(last_key) == ("CREATE TABLE `u` (\n  `id` int(11) NOT NULL\n) ENGINE=InnoDB",
                                              ["KEY `k` (`id`)"])


def test_generated_columns_are_never_read_and_enums_and_sets_travel_as_numbers() -> None:
    layout = Layout.of([ColumnRecord("id", "int", None, False), ColumnRecord("v", "int", None, True),
                        ColumnRecord("f", "float", None, False), ColumnRecord("e", "enum", "utf8mb4", False),
                        ColumnRecord("s`t", "set", "latin1", False), ColumnRecord("b", "blob", None, False)])
    assert layout.select() == "`id`,CAST(`f` AS DOUBLE),`e`+0,`s``t`+0,`b`"
    assert layout.load_data("`d`.`t`") == (
        b"LOAD DATA LOCAL INFILE 'chunk' INTO TABLE `d`.`t` CHARACTER SET binary FIELDS TERMINATED BY '\\t' "
        b"ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' (`id`,`f`,@v2,@v3,`b`) "
        b"SET `e` = CAST(@v2 AS UNSIGNED),`s``t` = CAST(@v3 AS UNSIGNED)")


def test_a_range_reads_between_its_ends() -> None:
    table = TableEntry("d", "t", "InnoDB", True, 10, [ColumnRecord("id", "int", None, False)], ["id"], True)
    assert RangeJob(table, None, 11).where() == "`id` < 11"
    assert RangeJob(table, 11, 21).where() == "`id` >= 11 AND `id` < 21"
    assert RangeJob(table).where() == ""


def test_key_names_are_read_back_from_their_definitions() -> None:
    assert key_name("KEY `k` (`a`)") == "k" and key_name("UNIQUE KEY `a``b` (`x`,`y`)") == "a`b"
