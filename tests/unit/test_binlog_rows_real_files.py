"""Row decoding of every real binlog file in ../shared/testdata/binlogs, checked against
``mariadb-binlog -v`` (run here where it is installed), the ``mysqlbinlog -vv`` dumps that came with
the files, and values the files' SQL scripts put there."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest

from binhub.binlog.column_values import UndecodedText
from binhub.binlog.file import row_changes
from binhub.binlog.json_binary import JsonDiff
from binhub.binlog.json_form import dumps_change
from binhub.binlog.row_decoder import PartialJson
from binhub.errors import TruncatedEvent
from tests.rowcheck import decoded_rows, parse_verbose, printed_rows, run_mariadb_binlog
from tests.unit.test_binlog_real_files import EXPECTED, TRUNCATED

# Files mariadb-binlog -v reads to the end (PROVENANCE.md); it cannot read MySQL 8's JSON, payload
# or tagged-GTID events.
MARIADB_BINLOG_READS = [
    "blackbeam__rust_mysql_common/mysql-enum-string-set.000001",
    "blackbeam__rust_mysql_common/minimal_row_metadata.000001",
    "blackbeam__rust_mysql_common/mariadb-bin.000001",
    "osheroff__mysql-binlog-connector-java/mysql-bin.checksum-crc32",
    "osheroff__mysql-binlog-connector-java/mysql-bin.checksum-none",
    "zendesk__maxwell/binlog.000004",
    "rust-us__mysql-cdc-rs/8.0/02_query_bigger/binlog.000733",
    "flike__kingbus/mysql_bin.000011",
    "flike__kingbus/flikedev1-c8pyy-relay-bin.000284",
]
ROW_COUNTS = {
    "blackbeam__rust_mysql_common/json.binlog.000001": 18,
    "blackbeam__rust_mysql_common/binlog_transaction_with_GTID_TAG.000001": 1,
    "blackbeam__rust_mysql_common/mysql-enum-string-set.000001": 3,
    "blackbeam__rust_mysql_common/minimal_row_metadata.000001": 1,
    "blackbeam__rust_mysql_common/mariadb-bin.000001": 2,
    "osheroff__mysql-binlog-connector-java/mysql-bin.compressed": 1,
    "osheroff__mysql-binlog-connector-java/mysql-bin.checksum-crc32": 63,
    "osheroff__mysql-binlog-connector-java/mysql-bin.checksum-none": 36,
    "osheroff__mysql-binlog-connector-java/mysql-bin.aurora-padding": 0,
    "zendesk__maxwell/binlog.000004": 28,
    "rust-us__mysql-cdc-rs/8.0/02_query_bigger/binlog.000733": 14,
    "rust-us__mysql-cdc-rs/5.7/17_18_load/log.bin": 0,
    "rust-us__mysql-cdc-rs/5.7/14_user_var/log.bin": 0,
    "flike__kingbus/mysql_bin.000011": 40,
    "flike__kingbus/flikedev1-c8pyy-relay-bin.000284": 40,
}


def test_row_counts_cover_every_file() -> None:
    assert set(ROW_COUNTS) == set(EXPECTED)


@pytest.mark.parametrize("rel", sorted(ROW_COUNTS))
def test_every_file_decodes_its_rows(shared_binlogs: Path, rel: str) -> None:
    changes = list(row_changes(shared_binlogs / rel))
    assert len(changes) == ROW_COUNTS[rel]
    for change in changes:
        assert change.op in ("insert", "update", "delete")
        assert (change.before is None) == (change.op == "insert")
        assert (change.after is None) == (change.op == "delete")


def test_truncated_file_names_file_and_offset(shared_binlogs: Path) -> None:
    with pytest.raises(TruncatedEvent) as info:
        list(row_changes(shared_binlogs / TRUNCATED))
    assert info.value.offset == 120 and info.value.file == Path(TRUNCATED).name


@pytest.mark.skipif(shutil.which("mariadb-binlog") is None, reason="mariadb-binlog is not installed")
@pytest.mark.parametrize("rel", MARIADB_BINLOG_READS)
def test_rows_equal_mariadb_binlog(shared_binlogs: Path, rel: str) -> None:
    path = shared_binlogs / rel
    theirs = printed_rows(parse_verbose(run_mariadb_binlog(path)))
    ours = decoded_rows(path)
    assert len(ours) == ROW_COUNTS[rel] == len(theirs)
    for i, (a, b) in enumerate(zip(theirs, ours, strict=True)):
        assert a == b, f"row change {i + 1} of {rel}"


@pytest.mark.parametrize(("rel", "dump"), [("flike__kingbus/mysql_bin.000011", "flike__kingbus/11.txt"),
                                           ("flike__kingbus/flikedev1-c8pyy-relay-bin.000284",
                                            "flike__kingbus/284.txt")])
def test_rows_equal_companion_mysqlbinlog_dump(shared_binlogs: Path, rel: str, dump: str) -> None:
    theirs = printed_rows(parse_verbose((shared_binlogs / dump).read_bytes()))
    assert len(theirs) == 40
    assert theirs == decoded_rows(shared_binlogs / rel)


def test_full_metadata_names_enum_and_set_labels(shared_binlogs: Path) -> None:
    ins, upd, dele = row_changes(shared_binlogs / "blackbeam__rust_mysql_common/mysql-enum-string-set.000001")
    assert ins.after is not None and upd.after is not None
    assert list(ins.after) == ["f1", "f2", "f3", "f4", "f5"]
    assert (ins.after["f3"], ins.after["f4"], ins.after["f5"]) == ("var1", "one,three", "0123456789")
    assert (upd.after["f1"], upd.after["f3"], upd.after["f4"]) == ("field1", "variant2", "two,four")
    assert upd.gtid == "93e95066-a2f4-11ec-9b69-9657f0ae95e2:4"
    # FULL metadata without a primary key: the whole row is the key.
    assert dele.primary_key == () and dele.pk() == dele.before


def test_mariadb_full_metadata_primary_key(shared_binlogs: Path) -> None:
    first, second = row_changes(shared_binlogs / "blackbeam__rust_mysql_common/mariadb-bin.000001")
    assert first.pk() == {"id": 62} and first.gtid == "0-1-1"
    assert second.after == {"id": 63, "topic": "foo", "event_type": "JSON", "event": b'{"foo":1}',
                            "created": "2022-04-20 22:19:55"}


def test_json_documents_and_partial_updates(shared_binlogs: Path) -> None:
    changes = list(row_changes(shared_binlogs / "blackbeam__rust_mysql_common/json.binlog.000001"))
    assert changes[0].after == {"@1": 1, "@2": {"age": 24, "data": "xxxxxxxxxx", "name": "Joe"}, "@3": "Joe",
                                "@4": 24}
    update = changes[6]
    assert update.before is not None and update.after is not None
    assert update.before["@2"]["age"] == 24 and update.after["@2"]["age"] == 25
    # PARTIAL_UPDATE_ROWS with a MINIMAL before image: the diff is all there is, and it is flagged.
    partial = changes[12]
    assert partial.before == {"@1": 1} and not partial.complete
    diff = partial.after["@2"] if partial.after else None
    assert isinstance(diff, PartialJson)
    assert [(d.operation, d.path, d.value) for d in diff.diffs] == [(JsonDiff.REPLACE, "$.age", 26)]


def test_minimal_row_metadata_image(shared_binlogs: Path) -> None:
    (change,) = row_changes(shared_binlogs / "blackbeam__rust_mysql_common/minimal_row_metadata.000001")
    assert change.after == {"@1": 1, "@3": "a", "@5": 3230202323}
    assert not change.complete and not change.names_known


def test_transaction_payload_rows(shared_binlogs: Path) -> None:
    (change,) = row_changes(shared_binlogs / "osheroff__mysql-binlog-connector-java/mysql-bin.compressed")
    assert (change.op, change.db, change.table) == ("update", "demo", "movies")
    assert change.before is not None and change.before["@2"] == "Once Upon a Time in the West"
    assert change.pos == 236  # the TRANSACTION_PAYLOAD's position: where a reader resumes


def test_without_metadata_text_is_marked_not_guessed(shared_binlogs: Path) -> None:
    change = next(iter(row_changes(shared_binlogs / "flike__kingbus/mysql_bin.000011")))
    assert change.after == {"@1": 10, "@2": UndecodedText(b"hello1", None), "@3": 101}
    assert change.primary_key is None and change.pk() is None


def _json_lines(path: Path, monkeypatch: pytest.MonkeyPatch, *, compiled: bool) -> list[object]:
    from binhub.binlog import row_json
    from binhub.binlog.file import row_json_lines

    if not compiled:
        monkeypatch.setattr(row_json, "rows_json", None)
    try:
        return [orjson.loads(line) for chunk in row_json_lines(path) for line in chunk.splitlines()]
    finally:
        monkeypatch.undo()


@pytest.mark.parametrize("rel", sorted(ROW_COUNTS))
def test_json_lines_c_and_pure_agree(shared_binlogs: Path, rel: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from binhub.binlog import row_json

    if row_json.rows_json is None:
        pytest.skip("the C extension binhub._speedups._rows is not built")
    fast = _json_lines(shared_binlogs / rel, monkeypatch, compiled=True)
    pure = _json_lines(shared_binlogs / rel, monkeypatch, compiled=False)
    assert len(fast) == len(pure) == ROW_COUNTS[rel]
    assert fast == pure
    assert pure == [orjson.loads(dumps_change(c)) for c in row_changes(shared_binlogs / rel)]


def test_included_tables_only(shared_binlogs: Path) -> None:
    from binhub.binlog.changes import RowChangeDecoder
    from binhub.binlog.file import _walk

    path = shared_binlogs / "osheroff__mysql-binlog-connector-java/mysql-bin.checksum-crc32"
    every = list(row_changes(path))
    wanted = every[0].table
    kept = list(_walk(path, RowChangeDecoder(path.name, include=lambda db, table: table == wanted), 4, True))
    assert kept == [c for c in every if c.table == wanted] and 0 < len(kept) < len(every)
