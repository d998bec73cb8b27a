"""Every real binlog file of ../shared/testdata/binlogs, decoded and checked against PROVENANCE.md
and the companion dumps that came with them."""

from __future__ import annotations

import re
import shutil
import uuid
from collections import Counter
from pathlib import Path

import pytest

from binhub.binlog.checksum import event_crc, verify_checksum
from binhub.binlog.constants import ChecksumAlg
from binhub.binlog.decode import decode_event, payload_events
from binhub.binlog.events import (
    AnnotateRowsEvent,
    BinlogCheckpointEvent,
    Event,
    FormatDescriptionEvent,
    GtidEvent,
    MariadbGtidEvent,
    MariadbGtidListEvent,
    PreviousGtidsEvent,
    QueryEvent,
    RotateEvent,
    RowsEvent,
    TableMapEvent,
    TransactionPayloadEvent,
    UnknownEvent,
    UserVarEvent,
    XidEvent,
)
from binhub.binlog.file import BinlogFileReader, RawEvent, read_events
from binhub.binlog.gtid import MariadbGtid, MysqlGtid, MysqlGtidSet
from binhub.binlog.transaction import TransactionTracker
from binhub.errors import ChecksumMismatch, InvalidEvent, TruncatedEvent

# file -> (server version, checksum, event type counts) as listed in PROVENANCE.md.
EXPECTED: dict[str, tuple[str, ChecksumAlg, dict[str, int]]] = {
    "blackbeam__rust_mysql_common/json.binlog.000001": ("8.0.22", ChecksumAlg.CRC32, {
        "FORMAT_DESCRIPTION": 1, "PREVIOUS_GTIDS": 1, "ANONYMOUS_GTID": 8, "QUERY": 8, "TABLE_MAP": 6,
        "WRITE_ROWS_V2": 4, "XID": 6, "UPDATE_ROWS_V2": 1, "PARTIAL_UPDATE_ROWS": 1}),
    "blackbeam__rust_mysql_common/binlog_transaction_with_GTID_TAG.000001": ("9.6.0", ChecksumAlg.CRC32, {
        "FORMAT_DESCRIPTION": 1, "PREVIOUS_GTIDS": 1, "GTID_TAGGED": 1, "QUERY": 1, "TABLE_MAP": 1,
        "WRITE_ROWS_V2": 1, "XID": 1, "ROTATE": 1}),
    "blackbeam__rust_mysql_common/mysql-enum-string-set.000001": ("8.0.28", ChecksumAlg.CRC32, {
        "FORMAT_DESCRIPTION": 1, "PREVIOUS_GTIDS": 1, "GTID": 5, "QUERY": 5, "TABLE_MAP": 3, "WRITE_ROWS_V2": 1,
        "XID": 3, "UPDATE_ROWS_V2": 1, "DELETE_ROWS_V2": 1}),
    "blackbeam__rust_mysql_common/minimal_row_metadata.000001": ("8.0.40", ChecksumAlg.CRC32, {
        "FORMAT_DESCRIPTION": 1, "PREVIOUS_GTIDS": 1, "ANONYMOUS_GTID": 1, "QUERY": 1, "TABLE_MAP": 1,
        "WRITE_ROWS_V2": 1, "XID": 1, "ROTATE": 1}),
    "blackbeam__rust_mysql_common/mariadb-bin.000001": ("10.5.15-MariaDB-1:10.5.15+maria~focal-log",
                                                        ChecksumAlg.CRC32, {
        "FORMAT_DESCRIPTION": 1, "MARIA_GTID_LIST": 1, "MARIA_BINLOG_CHECKPOINT": 1, "MARIA_GTID": 2,
        "MARIA_ANNOTATE_ROWS": 2, "TABLE_MAP": 2, "WRITE_ROWS_V1": 2, "XID": 2}),
    "osheroff__mysql-binlog-connector-java/mysql-bin.compressed": ("8.0.28", ChecksumAlg.CRC32, {
        "FORMAT_DESCRIPTION": 1, "PREVIOUS_GTIDS": 1, "ANONYMOUS_GTID": 1, "TRANSACTION_PAYLOAD": 1, "ROTATE": 1}),
    "osheroff__mysql-binlog-connector-java/mysql-bin.checksum-crc32": ("5.7.21-log", ChecksumAlg.CRC32, {
        "FORMAT_DESCRIPTION": 1, "PREVIOUS_GTIDS": 1, "ANONYMOUS_GTID": 60, "QUERY": 60, "TABLE_MAP": 60,
        "WRITE_ROWS_V2": 34, "XID": 60, "UPDATE_ROWS_V2": 20, "DELETE_ROWS_V2": 6, "ROTATE": 1}),
    "osheroff__mysql-binlog-connector-java/mysql-bin.checksum-none": ("5.7.20-log", ChecksumAlg.OFF, {
        "FORMAT_DESCRIPTION": 1, "PREVIOUS_GTIDS": 1, "ANONYMOUS_GTID": 40, "QUERY": 40, "TABLE_MAP": 36,
        "WRITE_ROWS_V2": 34, "XID": 36, "UPDATE_ROWS_V2": 2, "STOP": 1}),
    "osheroff__mysql-binlog-connector-java/mysql-bin.aurora-padding": ("5.7.12-log", ChecksumAlg.CRC32, {
        "FORMAT_DESCRIPTION": 1, "PREVIOUS_GTIDS": 1, "ANONYMOUS_GTID": 1, "UNKNOWN_100": 1, "QUERY": 1}),
    "zendesk__maxwell/binlog.000004": ("8.0.29", ChecksumAlg.CRC32, {
        "FORMAT_DESCRIPTION": 1, "PREVIOUS_GTIDS": 1, "GTID": 21, "QUERY": 21, "TABLE_MAP": 5, "WRITE_ROWS_V2": 3,
        "XID": 5, "UPDATE_ROWS_V2": 2}),
    "rust-us__mysql-cdc-rs/8.0/02_query_bigger/binlog.000733": ("8.0.31", ChecksumAlg.CRC32, {
        "FORMAT_DESCRIPTION": 1, "PREVIOUS_GTIDS": 1, "ANONYMOUS_GTID": 11, "QUERY": 11, "TABLE_MAP": 6,
        "WRITE_ROWS_V2": 3, "XID": 6, "UPDATE_ROWS_V2": 1, "DELETE_ROWS_V2": 2}),
    "rust-us__mysql-cdc-rs/5.7/17_18_load/log.bin": ("5.7.30-log", ChecksumAlg.CRC32, {
        "FORMAT_DESCRIPTION": 1, "PREVIOUS_GTIDS": 1, "GTID": 1, "QUERY": 1, "BEGIN_LOAD_QUERY": 1,
        "EXECUTE_LOAD_QUERY": 1, "XID": 1, "ROTATE": 1}),
    "rust-us__mysql-cdc-rs/5.7/14_user_var/log.bin": ("5.7.30-log", ChecksumAlg.CRC32, {
        "FORMAT_DESCRIPTION": 1, "PREVIOUS_GTIDS": 1, "GTID": 3, "QUERY": 4, "INTVAR": 1, "USER_VAR": 3, "XID": 1,
        "ROTATE": 1}),
    "flike__kingbus/mysql_bin.000011": ("5.7.23-log", ChecksumAlg.CRC32, {
        "FORMAT_DESCRIPTION": 1, "PREVIOUS_GTIDS": 1, "GTID": 11, "QUERY": 11, "TABLE_MAP": 40, "WRITE_ROWS_V2": 20,
        "UPDATE_ROWS_V2": 10, "DELETE_ROWS_V2": 10, "XID": 10, "ROTATE": 1}),
    "flike__kingbus/flikedev1-c8pyy-relay-bin.000284": ("5.7.23-log", ChecksumAlg.CRC32, {
        "FORMAT_DESCRIPTION": 2, "PREVIOUS_GTIDS": 1, "ROTATE": 3, "GTID": 11, "QUERY": 11, "TABLE_MAP": 40,
        "WRITE_ROWS_V2": 20, "UPDATE_ROWS_V2": 10, "DELETE_ROWS_V2": 10, "XID": 10}),
}

# Completed transactions per file (each GTID group / BEGIN..COMMIT / standalone DDL counts once),
# and whether the file ends inside an open group.
TRANSACTIONS = {
    "blackbeam__rust_mysql_common/json.binlog.000001": (8, False),
    "blackbeam__rust_mysql_common/binlog_transaction_with_GTID_TAG.000001": (1, False),
    "blackbeam__rust_mysql_common/mysql-enum-string-set.000001": (5, False),
    "blackbeam__rust_mysql_common/minimal_row_metadata.000001": (1, False),
    "blackbeam__rust_mysql_common/mariadb-bin.000001": (2, False),
    "osheroff__mysql-binlog-connector-java/mysql-bin.compressed": (1, False),
    "osheroff__mysql-binlog-connector-java/mysql-bin.checksum-crc32": (60, False),
    "osheroff__mysql-binlog-connector-java/mysql-bin.checksum-none": (40, False),
    "osheroff__mysql-binlog-connector-java/mysql-bin.aurora-padding": (0, True),  # ends after BEGIN
    "zendesk__maxwell/binlog.000004": (21, False),
    "rust-us__mysql-cdc-rs/8.0/02_query_bigger/binlog.000733": (11, False),
    "rust-us__mysql-cdc-rs/5.7/17_18_load/log.bin": (1, False),
    "rust-us__mysql-cdc-rs/5.7/14_user_var/log.bin": (3, False),
    "flike__kingbus/mysql_bin.000011": (11, False),
    "flike__kingbus/flikedev1-c8pyy-relay-bin.000284": (11, False),
}
TRUNCATED = "blackbeam__rust_mysql_common/binlog_truncated_prev_gtid_event.000001"


def test_every_binlog_file_is_covered(shared_binlogs: Path) -> None:
    on_disk = {p.relative_to(shared_binlogs).as_posix() for p in shared_binlogs.rglob("*")
               if p.is_file() and p.read_bytes()[:4] == b"\xfebin"}
    assert on_disk == set(EXPECTED) | {TRUNCATED}


def _decode_file(path: Path) -> tuple[list[RawEvent], list[Event], BinlogFileReader]:
    with path.open("rb") as f:
        reader = BinlogFileReader(f, path.name)
        raws = list(reader)
    events: list[Event] = []
    fde: FormatDescriptionEvent | None = None
    for raw in raws:
        ev = decode_event(raw.data, fde)
        if isinstance(ev, FormatDescriptionEvent):
            fde = ev
        events.append(ev)
    return raws, events, reader


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_decode_every_event(shared_binlogs: Path, name: str) -> None:
    version, alg, counts = EXPECTED[name]
    path = shared_binlogs / name
    raws, events, reader = _decode_file(path)
    assert Counter(r.header.type_name for r in raws) == counts
    assert reader.position == path.stat().st_size  # walks cleanly to the end, no trailing bytes
    assert reader.fde is not None
    assert (reader.fde.server_version, reader.fde.checksum_alg) == (version, alg)
    assert reader.fde.flavour == ("mariadb" if "MariaDB" in version else "mysql")
    for raw, ev in zip(raws, events, strict=True):
        assert ev.raw == raw.data and ev.header == raw.header
        assert raw.offset + raw.header.event_size == raw.end
        if alg == ChecksumAlg.CRC32:
            verify_checksum(raw.data)  # every CRC, the FDE's included
            assert event_crc(raw.data[:-4]) == int.from_bytes(raw.data[-4:], "little")
    # Every type the codec models decodes to its own class; only Aurora's 100 stays unknown.
    unknown = {ev.header.type_name for ev in events if isinstance(ev, UnknownEvent)}
    assert unknown == ({"UNKNOWN_100"} if "aurora" in name else set())


@pytest.mark.parametrize("name", sorted(TRANSACTIONS))
def test_transaction_boundaries(shared_binlogs: Path, name: str) -> None:
    expected, open_at_end = TRANSACTIONS[name]
    tracker = TransactionTracker()
    boundaries = []
    with (shared_binlogs / name).open("rb") as f:
        reader = BinlogFileReader(f)
        for raw in reader:
            assert reader.fde is not None
            if tracker.feed(raw.data, reader.fde.checksum_size):
                boundaries.append(raw.end)
    assert tracker.transactions == expected
    assert tracker.in_transaction is open_at_end
    if not open_at_end:
        assert boundaries[-1] == (shared_binlogs / name).stat().st_size


def test_checksum_crc32_file_cut_points(shared_binlogs: Path) -> None:
    """Each of the 60 transactions ends at an XID; cut points are exactly the XIDs plus control events."""
    tracker = TransactionTracker()
    cuts = []
    for raw in read_events(shared_binlogs / "osheroff__mysql-binlog-connector-java/mysql-bin.checksum-crc32"):
        if tracker.feed(raw.data):
            cuts.append(raw.header.type_name)
    assert Counter(cuts) == {"XID": 60, "FORMAT_DESCRIPTION": 1, "PREVIOUS_GTIDS": 1, "ROTATE": 1}


def test_tagged_gtid_file(shared_binlogs: Path) -> None:
    _, events, _ = _decode_file(shared_binlogs / "blackbeam__rust_mysql_common/binlog_transaction_with_GTID_TAG.000001")
    sid = uuid.UUID("55778904-0299-11f1-b1b8-4ef0c4956feb")
    prev = next(ev for ev in events if isinstance(ev, PreviousGtidsEvent))
    assert list(prev.gtid_set.items()) == [((sid, ""), ((1, 14),)), ((sid, "mytag"), ((1, 3),))]
    assert str(prev.gtid_set) == "55778904-0299-11f1-b1b8-4ef0c4956feb:1-13:mytag:1-2"
    assert prev.gtid_set.encode() == prev.raw[19:-4]  # re-encodes byte for byte
    gtid = next(ev for ev in events if isinstance(ev, GtidEvent))
    assert (gtid.tag, gtid.gno, gtid.gtid) == ("mytag", 3, MysqlGtid(sid, 3, "mytag"))
    assert gtid.transaction_length == 296  # the GTID..XID span: 245 -> 541
    assert gtid.immediate_server_version == 90600
    assert gtid.gtid is not None and gtid.gtid not in prev.gtid_set
    assert prev.gtid_set.add(gtid.gtid).intervals(sid, "mytag") == ((1, 4),)


def test_gtid_events_and_previous_gtids(shared_binlogs: Path) -> None:
    _, events, _ = _decode_file(shared_binlogs / "zendesk__maxwell/binlog.000004")
    prev = next(ev for ev in events if isinstance(ev, PreviousGtidsEvent))
    assert prev.gtid_set == MysqlGtidSet.parse("83759871-1141-11ed-b12d-0242ac130003:1-5")
    gtids = [ev for ev in events if isinstance(ev, GtidEvent)]
    assert [g.gno for g in gtids] == list(range(6, 27))
    assert all(g.immediate_server_version == 80029 for g in gtids)
    # transaction_length is the byte span from this GTID to the next one.
    offsets = [len(b"\xfebin")]
    for ev in events:
        offsets.append(offsets[-1] + ev.header.event_size)
    starts = [offsets[i] for i, ev in enumerate(events) if isinstance(ev, GtidEvent)] + [offsets[-1]]
    assert [g.transaction_length for g in gtids] == [b - a for a, b in zip(starts, starts[1:], strict=False)]


def test_compressed_transaction_payload(shared_binlogs: Path) -> None:
    _, events, reader = _decode_file(shared_binlogs / "osheroff__mysql-binlog-connector-java/mysql-bin.compressed")
    payload = next(ev for ev in events if isinstance(ev, TransactionPayloadEvent))
    assert payload.header.server_id == 223344
    assert payload.compression_type == TransactionPayloadEvent.ZSTD
    inner = list(payload_events(payload, reader.fde))
    assert [ev.header.type_name for ev in inner] == ["QUERY", "TABLE_MAP", "UPDATE_ROWS_V2", "XID"]
    assert sum(len(raw) for raw in payload.events()) == payload.uncompressed_size
    assert isinstance(inner[0], QueryEvent) and inner[0].query == b"BEGIN"
    assert isinstance(inner[1], TableMapEvent) and isinstance(inner[2], RowsEvent)
    assert inner[2].table_id == inner[1].table_id


def test_relay_log_with_two_fdes(shared_binlogs: Path) -> None:
    raws, events, reader = _decode_file(shared_binlogs / "flike__kingbus/flikedev1-c8pyy-relay-bin.000284")
    fdes = [(r.offset, ev) for r, ev in zip(raws, events, strict=True) if isinstance(ev, FormatDescriptionEvent)]
    assert [off for off, _ in fdes] == [4, 241]
    assert reader.fde is fdes[-1][1] or reader.fde == fdes[-1][1]
    rotates = [ev for ev in events if isinstance(ev, RotateEvent)]
    assert [(r.next_file, r.position) for r in rotates] == [
        ("mysql_bin.000011", 4), ("mysql_bin.000011", 194), ("flikedev1-c8pyy-relay-bin.000285", 4)]
    # The master's events keep the master's log_pos; the relay log's own events do not.
    gtids = [ev for ev in events if isinstance(ev, GtidEvent)]
    assert gtids[0].header.log_pos == 259 and gtids[0].gno == 11790


def test_checksum_none_file_has_no_crcs(shared_binlogs: Path) -> None:
    raws, events, reader = _decode_file(shared_binlogs / "osheroff__mysql-binlog-connector-java/mysql-bin.checksum-none")
    assert reader.fde is not None and reader.fde.checksum_size == 0
    queries = [ev for ev in events if isinstance(ev, QueryEvent)]
    assert queries[0].query_text.startswith("BEGIN") or queries[0].schema
    # Without the FDE (assuming CRC32) the last 4 bytes of an XID would be eaten: it would not decode.
    xid_raw = next(r.data for r in raws if r.header.type_name == "XID")
    assert isinstance(decode_event(xid_raw, reader.fde), XidEvent)
    with pytest.raises(InvalidEvent):
        decode_event(xid_raw)
    assert isinstance(events[-1], Event) and events[-1].header.type_name == "STOP"


def test_aurora_unknown_event_passes_through(shared_binlogs: Path) -> None:
    raws, events, _ = _decode_file(shared_binlogs / "osheroff__mysql-binlog-connector-java/mysql-bin.aurora-padding")
    unknown = events[3]
    assert isinstance(unknown, UnknownEvent)
    assert (raws[3].offset, raws[3].end, unknown.type_code) == (281, 1209, 100)
    assert unknown.raw == raws[3].data
    assert isinstance(events[4], QueryEvent) and events[4].query == b"BEGIN"


def test_mariadb_events(shared_binlogs: Path) -> None:
    _, events, _ = _decode_file(shared_binlogs / "blackbeam__rust_mysql_common/mariadb-bin.000001")
    gtid_list = next(ev for ev in events if isinstance(ev, MariadbGtidListEvent))
    assert gtid_list.gtids == ()
    checkpoint = next(ev for ev in events if isinstance(ev, BinlogCheckpointEvent))
    assert checkpoint.file == "mariadb-bin.000001"
    gtids = [ev.gtid for ev in events if isinstance(ev, MariadbGtidEvent)]
    assert gtids == [MariadbGtid(0, 1, 1), MariadbGtid(0, 1, 2)]
    annotations = [ev.query_text for ev in events if isinstance(ev, AnnotateRowsEvent)]
    assert len(annotations) == 2 and all(a.upper().startswith("INSERT") for a in annotations)
    rows = [ev for ev in events if isinstance(ev, RowsEvent)]
    assert all(r.extra_data == b"" and r.column_count for r in rows)


def test_user_var_and_intvar(shared_binlogs: Path) -> None:
    _, events, _ = _decode_file(shared_binlogs / "rust-us__mysql-cdc-rs/5.7/14_user_var/log.bin")
    user_vars = [ev for ev in events if isinstance(ev, UserVarEvent)]
    assert len(user_vars) == 3 and all(uv.name for uv in user_vars)
    sql = (shared_binlogs / "rust-us__mysql-cdc-rs/5.7/14_user_var/sql.sql").read_text().lower()
    assert all(f"@{uv.name.lower()}" in sql for uv in user_vars)


def test_truncated_file_reports_where_and_why(shared_binlogs: Path) -> None:
    path = shared_binlogs / TRUNCATED
    seen = []
    with path.open("rb") as f, pytest.raises(TruncatedEvent) as info:
        reader = BinlogFileReader(f, path.name)
        for raw in reader:
            seen.append(raw.header.type_name)
    assert seen == ["FORMAT_DESCRIPTION"]
    err = info.value
    assert (err.file, err.offset) == (path.name, 120)
    assert reader.position == 120
    assert "ends inside an event header" in str(err) and "9 of 19 bytes" in str(err)
    assert "offset 120" in str(err)


def test_file_cut_inside_an_event_body(shared_binlogs: Path, tmp_path: Path) -> None:
    src = (shared_binlogs / "zendesk__maxwell/binlog.000004").read_bytes()
    cut = tmp_path / "binlog.000004"
    size = int.from_bytes(src[197 + 9:197 + 13], "little")
    cut.write_bytes(src[:227])  # 30 bytes into the GTID event at 197
    with pytest.raises(TruncatedEvent) as info:
        list(read_events(cut))
    assert info.value.offset == 197
    assert f"inside a GTID event: it declares {size} bytes but only 30 are present" in str(info.value)


def test_corrupted_byte_names_the_offset(shared_binlogs: Path, tmp_path: Path) -> None:
    copy = tmp_path / "mysql_bin.000011"
    shutil.copy(shared_binlogs / "flike__kingbus/mysql_bin.000011", copy)
    data = bytearray(copy.read_bytes())
    data[475 + 40] ^= 0x01  # a body byte of the GTID event at 475..540
    copy.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatch) as info:
        list(read_events(copy))
    assert info.value.offset == 475 and info.value.file == str(copy)
    assert f"{copy} at offset 475" in str(info.value) and "stored 0x" in str(info.value)
    # Without verification the reader walks on; decode itself does not check CRCs unless asked.
    assert len(list(read_events(copy, verify_checksums=False))) == 115


def test_events_spanning_read_chunks(shared_binlogs: Path, tmp_path: Path) -> None:
    """A 3 MiB file: events cross the reader's 1 MiB chunk boundaries and still come out whole."""
    raws = list(read_events(shared_binlogs / "osheroff__mysql-binlog-connector-java/mysql-bin.checksum-crc32"))
    body = b"".join(r.data for r in raws[1:-1])
    copies = 3 * (1 << 20) // len(body) + 1
    big = tmp_path / "big.000001"
    big.write_bytes(b"\xfebin" + raws[0].data + body * copies)
    out = list(read_events(big))
    assert len(out) == 1 + (len(raws) - 2) * copies
    assert out[-1].end == big.stat().st_size
    assert [r.data for r in out[1:len(raws) - 1]] == [r.data for r in raws[1:-1]]


def test_bad_magic(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-binlog"
    bad.write_bytes(b"hello world")
    with pytest.raises(InvalidEvent, match="not a binlog file"):
        list(read_events(bad))


def test_start_offset_uses_the_fde_at_4(shared_binlogs: Path) -> None:
    path = shared_binlogs / "osheroff__mysql-binlog-connector-java/mysql-bin.checksum-none"
    all_events = list(read_events(path))
    start = all_events[5].offset
    tail = list(read_events(path, start=start))
    assert [r.offset for r in tail] == [r.offset for r in all_events[5:]]


# ---- companion dumps


def test_kingbus_dump_positions_and_crcs(shared_binlogs: Path) -> None:
    """11.txt is mysqlbinlog's output for mysql_bin.000011: same end_log_pos and CRC32 per event."""
    dump = (shared_binlogs / "flike__kingbus/11.txt").read_text()
    listed = [(int(pos), int(crc, 16)) for pos, crc in re.findall(r"end_log_pos (\d+) CRC32 0x([0-9a-f]{8})", dump)]
    raws = list(read_events(shared_binlogs / "flike__kingbus/mysql_bin.000011"))
    assert listed == [(r.header.log_pos, int.from_bytes(r.data[-4:], "little")) for r in raws]
    assert [r.end for r in raws] == [pos for pos, _ in listed]


_SHOW_TYPES = {
    "Format_desc": "FORMAT_DESCRIPTION", "Previous_gtids": "PREVIOUS_GTIDS", "Anonymous_Gtid": "ANONYMOUS_GTID",
    "Query": "QUERY", "Table_map": "TABLE_MAP", "Write_rows": "WRITE_ROWS_V2", "Update_rows": "UPDATE_ROWS_V2",
    "Delete_rows": "DELETE_ROWS_V2", "Xid": "XID",
}


def test_rust_us_show_binlog_events(shared_binlogs: Path) -> None:
    """show.txt is SHOW BINLOG EVENTS for binlog.000733 (UTF-16 text): positions, types, server ids."""
    folder = shared_binlogs / "rust-us__mysql-cdc-rs/8.0/02_query_bigger"
    text = (folder / "show.txt").read_bytes().decode("utf-16")
    rows = re.findall(r"^\| binlog\.000733 \|\s*(\d+) \| (\w+)\s*\|\s*(\d+) \|\s*(\d+) \|", text, re.M)
    raws = list(read_events(folder / "binlog.000733"))
    assert [(int(p), _SHOW_TYPES[t], int(s), int(e)) for p, t, s, e in rows] == [
        (r.offset, r.header.type_name, r.header.server_id, r.header.log_pos) for r in raws]
