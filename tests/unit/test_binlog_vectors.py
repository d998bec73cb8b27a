"""Hand-made byte vectors (tests/data/binlog/) built from the vendors' own format definitions."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from binhub.binlog.checksum import verify_checksum, with_crc
from binhub.binlog.decode import decode_event, payload_events
from binhub.binlog.events import (
    GtidEvent,
    HeartbeatEvent,
    MariadbGtidEvent,
    MariadbGtidFlag,
    MariadbGtidListEvent,
    QueryEvent,
    RotateEvent,
    TransactionPayloadEvent,
    XaPrepareEvent,
    XidEvent,
)
from binhub.binlog.gtid import MariadbGtid, MysqlGtid, MysqlGtidSet

VECTORS = Path(__file__).resolve().parents[1] / "data" / "binlog"
UUID_A = uuid.UUID("3e11fa47-71ca-11e1-9e33-c80aa9429562")


def load_hex(name: str) -> bytes:
    text = (VECTORS / name).read_text()
    return bytes.fromhex("".join(line.split("#", 1)[0] for line in text.splitlines()))


def load_event(name: str) -> bytes:
    raw = with_crc(load_hex(name))
    assert int.from_bytes(raw[9:13], "little") == len(raw), f"{name}: event_size in the header is wrong"
    verify_checksum(raw)
    return raw


def test_tagged_gtid_set_encoding_matches_mysql_layout() -> None:
    data = load_hex("mysql/gtid_set_tagged.gtidset.hex")
    text = ("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7:alpha:1-3:beta:10-20:30,"
            "4ab46c2c-8a1f-11ee-b3e1-0242ac120002:1-100")
    decoded = MysqlGtidSet.decode(data)
    assert str(decoded) == text
    assert decoded.intervals(UUID_A, "beta") == ((10, 21), (30, 31))
    assert MysqlGtid(UUID_A, 30, "beta") in decoded
    assert MysqlGtid(UUID_A, 6) not in decoded
    assert MysqlGtidSet.parse(text).encode() == data  # our encoder writes the same bytes


def test_untagged_gtid_set_encoding_matches_mysql_layout() -> None:
    data = load_hex("mysql/gtid_set_untagged.gtidset.hex")
    text = "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7,4ab46c2c-8a1f-11ee-b3e1-0242ac120002:1-100"
    assert str(MysqlGtidSet.decode(data)) == text
    assert MysqlGtidSet.parse(text).encode() == data
    # Forcing the tagged format on an untagged set: the 8.3+ header and an empty tag per sid.
    forced = MysqlGtidSet.parse(text).encode(tagged=True)
    assert forced[:8] == bytes.fromhex("0102000000000001")
    assert MysqlGtidSet.decode(forced) == MysqlGtidSet.parse(text)


def test_gtid_event_with_all_optional_fields() -> None:
    ev = decode_event(load_event("mysql/gtid_full.event.hex"))
    assert isinstance(ev, GtidEvent) and not ev.anonymous
    assert ev.gtid == MysqlGtid(UUID_A, 42)
    assert (ev.last_committed, ev.sequence_number) == (7, 8)
    assert ev.immediate_commit_timestamp == 1700000000123456
    assert ev.original_commit_timestamp == 1699999999000000
    assert ev.transaction_length == 1000
    assert (ev.immediate_server_version, ev.original_server_version) == (80400, 80036)
    assert ev.commit_group_ticket == 5


def test_gtid_tagged_event_serialization_format() -> None:
    ev = decode_event(load_event("mysql/gtid_tagged_full.event.hex"))
    assert isinstance(ev, GtidEvent)
    assert ev.gtid == MysqlGtid(UUID_A, 42, "blue")
    assert str(ev.gtid) == "3e11fa47-71ca-11e1-9e33-c80aa9429562:blue:42"
    assert ev.flags == 1
    assert (ev.last_committed, ev.sequence_number) == (7, 8)
    assert (ev.immediate_commit_timestamp, ev.original_commit_timestamp) == (1700000000123456, 1699999999000000)
    assert ev.transaction_length == 1000
    assert (ev.immediate_server_version, ev.original_server_version) == (90600, 80400)
    assert ev.commit_group_ticket == 5


def test_xa_prepare() -> None:
    ev = decode_event(load_event("mysql/xa_prepare.event.hex"))
    assert isinstance(ev, XaPrepareEvent)
    assert (ev.one_phase, ev.format_id, ev.gtrid, ev.bqual) == (False, 1, b"abc", b"de")


def test_heartbeats() -> None:
    v2 = decode_event(load_event("mysql/heartbeat_v2.event.hex"))
    assert isinstance(v2, HeartbeatEvent)
    assert (v2.log_ident, v2.log_pos) == ("binlog.000042", 123456789)
    assert v2.header.is_artificial
    v1 = decode_event(load_event("mysql/heartbeat_v1.event.hex"))
    assert isinstance(v1, HeartbeatEvent)
    assert (v1.log_ident, v1.log_pos) == ("mysql-bin.000003", 1234)


def test_rotate_beyond_4gib() -> None:
    ev = decode_event(load_event("mysql/rotate_large.event.hex"))
    assert isinstance(ev, RotateEvent)
    assert (ev.position, ev.next_file) == (0x1_0000_0004, "binlog.1000000")


def test_uncompressed_transaction_payload() -> None:
    raw = load_event("mysql/payload_none.event.hex")
    ev = decode_event(raw)
    assert isinstance(ev, TransactionPayloadEvent)
    assert (ev.compression_type, ev.payload_size) == (TransactionPayloadEvent.NONE, 65)
    inner = list(payload_events(ev))
    assert isinstance(inner[0], QueryEvent) and inner[0].query == b"BEGIN"
    assert isinstance(inner[1], XidEvent) and inner[1].xid == 77


def test_mariadb_gtid_group_commit() -> None:
    ev = decode_event(load_event("mariadb/gtid_group_commit.event.hex"))
    assert isinstance(ev, MariadbGtidEvent)
    assert ev.gtid == MariadbGtid(2, 7, 100)
    assert ev.commit_id == 0x1234
    assert ev.flags2 == MariadbGtidFlag.FL_GROUP_COMMIT_ID | MariadbGtidFlag.FL_TRANSACTIONAL | \
        MariadbGtidFlag.FL_ALLOW_PARALLEL
    assert not ev.standalone


def test_mariadb_gtid_xa() -> None:
    ev = decode_event(load_event("mariadb/gtid_xa_prepare.event.hex"))
    assert isinstance(ev, MariadbGtidEvent)
    assert ev.gtid == MariadbGtid(2, 7, 101)
    assert (ev.xa_format_id, ev.xa_gtrid, ev.xa_bqual, ev.commit_id) == (1, b"abc", b"", None)


def test_mariadb_gtid_standalone_padding() -> None:
    ev = decode_event(load_event("mariadb/gtid_standalone_ddl.event.hex"))
    assert isinstance(ev, MariadbGtidEvent)
    assert ev.standalone and ev.flags2 & MariadbGtidFlag.FL_DDL
    assert (ev.gtid, ev.flags_extra) == (MariadbGtid(0, 7, 5), 0)


def test_mariadb_gtid_list() -> None:
    ev = decode_event(load_event("mariadb/gtid_list.event.hex"))
    assert isinstance(ev, MariadbGtidListEvent)
    assert ev.gtids == (MariadbGtid(0, 1, 10), MariadbGtid(1, 2, 5))


@pytest.mark.parametrize("name", sorted(p.relative_to(VECTORS).as_posix() for p in VECTORS.rglob("*.event.hex")))
def test_every_vector_keeps_its_bytes(name: str) -> None:
    raw = load_event(name)
    ev = decode_event(raw, verify=True)
    assert ev.raw == raw
    assert ev.header.pack() == raw[:19]
