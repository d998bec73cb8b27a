"""The pure parts of the logical backup: chunk files, keyset predicates, filters, deferred keys."""

from __future__ import annotations

from pathlib import Path

import zstandard

from binhub.backup.logical.catalog import TableEntry, TableFilter
from binhub.backup.logical.chunking import GROUP_BYTES, MAX_GROUP_ROWS, RangeJob, group_width, keyset_after
from binhub.backup.logical.literals import RowReader
from binhub.backup.logical.loader import key_name, split_secondary_keys
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


def _entry(rows: int, average_row_bytes: int) -> TableEntry:
    return TableEntry("d", "t", "InnoDB", True, rows, [ColumnRecord("id", "int", None, False)], ["id"], True,
                      average_row_bytes=average_row_bytes)


def test_a_range_splits_into_groups_that_cover_it_exactly_with_its_open_ends_kept() -> None:
    table = _entry(1000, 10)
    assert RangeJob(table, None, None).groups() == [RangeJob(table, None, None)]  # not grouped
    groups = RangeJob(table, None, 35, first=1, stop=35, group_width=10).groups()
    assert [(g.low, g.high) for g in groups] == [(None, 11), (11, 21), (21, 31), (31, 35)]
    assert groups[0].where() == "`id` < 11" and groups[1].where() == "`id` >= 11 AND `id` < 21"
    groups = RangeJob(table, 35, None, first=35, stop=41, group_width=10).groups()
    assert [(g.low, g.high) for g in groups] == [(35, None)]  # one group: as open as the job


def test_a_group_spans_about_group_bytes_of_sql_by_the_table_estimates() -> None:
    # 1000 rows over 1000 key values, ~400 bytes of literal a row: GROUP_BYTES / 400 rows a group.
    assert group_width(_entry(1000, 200), 1000) == GROUP_BYTES // 400
    # Half the key values are holes: twice as many key values for the same rows.
    assert group_width(_entry(500, 200), 1000) == 2 * (GROUP_BYTES // 400)
    assert group_width(_entry(1000, 1), 1000) == MAX_GROUP_ROWS  # narrow rows: a bounded result
    assert group_width(_entry(1000, 10**9), 1000) == 1  # rows wider than a group: a row a group
    assert group_width(_entry(0, 0), 10) >= 1  # no statistics yet: still a valid width


def test_a_writer_takes_rows_already_joined_by_the_server(tmp_path: Path) -> None:
    writer = ChunkWriter(tmp_path, chunk_path("d", "t", 1), b"INSERT INTO `t` VALUES\n", statement_bytes=2**20,
                         level=1)
    writer.add(b"(1),\n(2),\n(3)", 3)
    writer.add(b"(4)")
    record = writer.close()
    sql = zstandard.ZstdDecompressor().decompress((tmp_path / record.file).read_bytes())
    assert record.rows == 4 and sql == SESSION_HEADER + b"INSERT INTO `t` VALUES\n(1),\n(2),\n(3),\n(4);\n"


def test_key_names_are_read_back_from_their_definitions() -> None:
    assert key_name("KEY `k` (`a`)") == "k" and key_name("UNIQUE KEY `a``b` (`x`,`y`)") == "a`b"
