"""Constants, the common header, checksums, and the codec's own rules (no asyncio)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import binhub.binlog
from binhub.binlog.checksum import event_crc, recompute_crc, set_in_use_flag, verify_checksum, with_crc
from binhub.binlog.constants import (
    BINLOG_MAGIC,
    CHECKSUM_SIZE,
    FDE_FLAGS_OFFSET,
    HEADER_SIZE,
    ChecksumAlg,
    EventFlag,
    EventType,
    event_type_name,
)
from binhub.binlog.decode import decode_event
from binhub.binlog.events import FormatDescriptionEvent, QueryEvent, UnknownEvent
from binhub.binlog.file import read_events
from binhub.binlog.header import HEADER_STRUCT, EventHeader
from binhub.errors import ChecksumMismatch, InvalidEvent, TruncatedEvent


def test_constants() -> None:
    assert (BINLOG_MAGIC, HEADER_SIZE, CHECKSUM_SIZE, FDE_FLAGS_OFFSET) == (b"\xfebin", 19, 4, 17)
    assert [t.value for t in EventType if t < 160] == list(range(43))
    assert [t.value for t in EventType if t >= 160] == list(range(160, 172))
    assert (EventType.GTID_TAGGED, EventType.HEARTBEAT_V2, EventType.TRANSACTION_PAYLOAD) == (42, 41, 40)
    assert (EventType.PARTIAL_UPDATE_ROWS, EventType.XA_PREPARE, EventType.MARIA_QUERY_COMPRESSED) == (39, 38, 165)
    assert event_type_name(162) == "MARIA_GTID" and event_type_name(100) == "UNKNOWN_100"
    assert (int(EventFlag.SKIP_REPLICATION), int(ChecksumAlg.UNDEFINED)) == (0x8000, 255)


def test_header_round_trip_and_errors() -> None:
    raw = HEADER_STRUCT.pack(1700000000, 2, 7, 60, 1000, 0x08)
    h = EventHeader.unpack(b"xx" + raw, 2)
    assert (h.type_name, h.server_id, h.event_size, h.log_pos, h.flags) == ("QUERY", 7, 60, 1000, 8)
    assert h.pack() == raw and not h.is_artificial
    with pytest.raises(TruncatedEvent):
        EventHeader.unpack(raw[:18])
    with pytest.raises(InvalidEvent, match="smaller than the header"):
        EventHeader.unpack(HEADER_STRUCT.pack(0, 2, 1, 18, 0, 0))


def _first_fde(shared_binlogs: Path) -> bytes:
    return next(read_events(shared_binlogs / "zendesk__maxwell/binlog.000004")).data


def test_fde_crc_ignores_in_use_flag(shared_binlogs: Path) -> None:
    # maxwell's binlog.000004 was copied while the server still wrote it: its FDE has the flag set,
    # and its stored CRC only verifies with the bit masked.
    in_use = _first_fde(shared_binlogs)
    assert in_use[FDE_FLAGS_OFFSET] & EventFlag.BINLOG_IN_USE
    verify_checksum(in_use)
    closed = set_in_use_flag(in_use, False)
    assert closed[FDE_FLAGS_OFFSET] & EventFlag.BINLOG_IN_USE == 0 and closed[-4:] == in_use[-4:]
    verify_checksum(closed)
    assert set_in_use_flag(closed, True) == in_use
    assert event_crc(in_use[:-4]) == event_crc(closed[:-4])
    with pytest.raises(InvalidEvent):
        set_in_use_flag(with_crc(HEADER_STRUCT.pack(0, 2, 1, 23, 0, 0)), True)


def test_crc_helpers() -> None:
    body = HEADER_STRUCT.pack(0, 16, 1, 31, 0, 0) + (42).to_bytes(8, "little")
    event = with_crc(body)
    verify_checksum(event)
    broken = event[:-5] + b"\xff" + event[-4:]
    with pytest.raises(ChecksumMismatch) as info:
        verify_checksum(broken, file="f.000001", offset=1234)
    assert "f.000001 at offset 1234" in str(info.value) and f"0x{event_crc(body):08x}" in str(info.value)
    fixed = recompute_crc(broken)
    assert fixed[:-4] == broken[:-4] and fixed[-4:] != event[-4:]
    verify_checksum(fixed)


def test_decode_errors() -> None:
    body = HEADER_STRUCT.pack(0, 2, 1, 40, 0, 0) + b"\x00" * 10
    with pytest.raises(TruncatedEvent):
        decode_event(with_crc(body))  # declares 40 bytes, has 33
    bad_query = with_crc(HEADER_STRUCT.pack(0, 2, 1, 19 + 13 + 4, 0, 0) + bytes(4) + bytes(4) + b"\x09" + bytes(4))
    with pytest.raises(InvalidEvent, match="QUERY body ends"):
        decode_event(bad_query)
    unknown = with_crc(HEADER_STRUCT.pack(0, 77, 1, 26, 0, 0) + b"abc")
    ev = decode_event(unknown)
    assert isinstance(ev, UnknownEvent) and ev.raw == unknown


def test_fde_without_checksum_alg() -> None:
    # A 5.0 FDE: no algorithm byte, no CRC (control_events.cpp: version < checksum_version_product).
    post_header_lens = bytes([56, 13, 0, 8, 0, 18, 0, 4, 4, 4, 4, 18, 0, 0, 0, 0, 4, 26] + [0] * 9)
    body = (4).to_bytes(2, "little") + b"5.0.96-log".ljust(50, b"\0") + bytes(4) + b"\x13" + post_header_lens
    raw = HEADER_STRUCT.pack(0, 15, 1, 19 + len(body), 0, 0) + body
    fde = decode_event(raw)
    assert isinstance(fde, FormatDescriptionEvent)
    assert (fde.checksum_alg, fde.checksum_size, fde.version_tuple) == (ChecksumAlg.UNDEFINED, 0, (5, 0, 96))
    assert len(fde.post_header_lens) == 27 and fde.post_header_len(EventType.QUERY) == 13
    q = HEADER_STRUCT.pack(0, 2, 1, 19 + 13 + 1 + 5, 0, 0) + bytes(13) + b"\0" + b"BEGIN"
    ev = decode_event(q, fde)
    assert isinstance(ev, QueryEvent) and ev.query_text == "BEGIN"


def test_codec_does_not_import_asyncio_or_sockets() -> None:
    package = Path(binhub.binlog.__file__).parent
    for module in package.glob("*.py"):
        tree = ast.parse(module.read_text())
        names = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)
                 for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])}
        assert not names & {"asyncio", "socket", "selectors"}, module.name


def test_public_api() -> None:
    assert len(set(binhub.binlog.__all__)) == len(binhub.binlog.__all__)
    for name in binhub.binlog.__all__:
        assert hasattr(binhub.binlog, name)
