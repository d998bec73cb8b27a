"""The pure parts of the logical backup: chunk files, keyset predicates, filters, deferred keys."""

from __future__ import annotations

from pathlib import Path

import zstandard

from binhub.backup.logical.catalog import TableFilter
from binhub.backup.logical.chunking import keyset_after
from binhub.backup.logical.literals import RowReader
from binhub.backup.logical.loader import split_secondary_keys
from binhub.backup.logical.manifest import ColumnRecord
from binhub.backup.logical.writer import SESSION_HEADER, STATEMENT_END, ChunkWriter, chunk_path
from binhub.innodb import crc32c


def test_chunk_file_is_statements_of_bounded_size_with_the_session_first(tmp_path: Path) -> None:
    writer = ChunkWriter(tmp_path, chunk_path("d b", "t/1", 7), b"INSERT INTO `t` VALUES\n", statement_bytes=100,
                         level=3)
    rows = [b"(%d,'%s')" % (i, b"x" * (i % 30)) for i in range(50)] + [b"(99,'" + b"y" * 300 + b"')"]
    for row in rows:
        writer.add(row)
    record = writer.close()
    assert record.file == "data/d%20b/t%2F1.00007.sql.zst" and record.rows == 51
    data = (tmp_path / record.file).read_bytes()
    assert record.bytes == len(data) and record.crc32c == f"{crc32c(data):08x}"
    sql = zstandard.ZstdDecompressor().decompress(data)
    assert sql.startswith(SESSION_HEADER) and sql.endswith(STATEMENT_END)
    statements = [s for s in sql[len(SESSION_HEADER):].split(STATEMENT_END) if s]
    assert len(statements) > 10
    assert max(len(s) + 2 for s in statements) == record.max_statement > 300  # the long row: a statement alone
    assert all(len(s) + 2 <= 100 for s in statements if b"y" * 300 not in s)
    assert [r for s in statements for r in s.split(b"\n", 1)[1].split(b",\n")] == rows
    assert record.sql_bytes == len(sql) - len(SESSION_HEADER)


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


def test_generated_columns_are_never_read_and_the_key_literals_follow_the_row() -> None:
    columns = [ColumnRecord("id", "int", None, False), ColumnRecord("v", "int", None, True),
               ColumnRecord("name", "varchar", "latin1", False)]
    whole = RowReader.for_table("d.t", columns, ["name", "id"], whole_row=True)
    assert "`v`" not in whole.select and whole.select.count("CONCAT('('") == 1
    assert whole.key((b"(1,_latin1 X'41')", b"_latin1 X'41'", b"1")) == [b"_latin1 X'41'", b"1"]
    by_column = RowReader.for_table("d.t", columns, ["name", "id"], whole_row=False)
    assert by_column.literal((b"1", b"_latin1 X'41'")) == b"(1,_latin1 X'41')"
    assert by_column.key((b"1", b"_latin1 X'41'")) == [b"_latin1 X'41'", b"1"]
