"""Packet framing: split/join at 0xFFFFFF, sequence ids, bounds."""

from __future__ import annotations

import os
import random
import struct

import pytest

from binhub.errors import MalformedPacket
from binhub.wire.constants import MAX_PACKET_PAYLOAD
from binhub.wire.packet import PacketReader, frame, frame_many


def _wire(data: list[bytes] | bytes) -> bytes:
    return b"".join(data) if isinstance(data, list) else data


def _headers(wire: bytes) -> list[tuple[int, int]]:
    """(length, seq) of every packet in ``wire``."""
    out, pos = [], 0
    while pos < len(wire):
        v = struct.unpack_from("<I", wire, pos)[0]
        out.append((v & 0xFFFFFF, v >> 24))
        pos += 4 + (v & 0xFFFFFF)
    return out


def test_frame_small() -> None:
    data, nxt = frame(b"\x03SELECT 1", 0)
    assert data == b"\x09\x00\x00\x00\x03SELECT 1"
    assert nxt == 1


def test_frame_empty_payload() -> None:
    assert frame(b"", 7) == (b"\x00\x00\x00\x07", 8)


def test_frame_seq_wraps() -> None:
    data, nxt = frame(b"x", 255)
    assert data[3] == 255 and nxt == 0


@pytest.mark.parametrize("size, expected", [
    (MAX_PACKET_PAYLOAD - 1, [MAX_PACKET_PAYLOAD - 1]),
    (MAX_PACKET_PAYLOAD, [MAX_PACKET_PAYLOAD, 0]),
    (MAX_PACKET_PAYLOAD + 1, [MAX_PACKET_PAYLOAD, 1]),
    (2 * MAX_PACKET_PAYLOAD, [MAX_PACKET_PAYLOAD, MAX_PACKET_PAYLOAD, 0]),
])
def test_frame_split_boundaries(size: int, expected: list[int]) -> None:
    payload = b"a" * size
    data, nxt = frame(payload, 254)
    wire = _wire(data)
    heads = _headers(wire)
    assert [n for n, _ in heads] == expected
    assert [s for _, s in heads] == [(254 + i) & 0xFF for i in range(len(expected))]
    assert nxt == (254 + len(expected)) & 0xFF
    reader = PacketReader()
    reader.seq = 254
    assert [bytes(p) for p in reader.feed(wire)] == [payload]
    assert reader.seq == nxt


def test_reader_many_packets_one_chunk_zero_copy() -> None:
    wire, seq = b"", 0
    payloads = [os.urandom(n) for n in (0, 1, 100, 5000, 3)]
    for p in payloads:
        data, seq = frame(p, seq)
        wire += _wire(data)
    reader = PacketReader()
    out = reader.feed(wire)
    assert [bytes(p) for p in out] == payloads
    assert all(isinstance(p, memoryview) for p in out)
    assert reader.buffered == 0


def test_reader_byte_by_byte() -> None:
    wire, seq = b"", 0
    payloads = [b"hello", b"", b"world" * 30]
    for p in payloads:
        data, seq = frame(p, seq)
        wire += _wire(data)
    reader = PacketReader()
    out = []
    for i in range(len(wire)):
        out += reader.feed(wire[i:i + 1])
    assert [bytes(p) for p in out] == payloads


def test_reader_40_mib_random_chunks() -> None:
    rnd = random.Random(7)
    big = rnd.randbytes(40 * 1024 * 1024)
    payloads = [b"small-before", big, b"x" * MAX_PACKET_PAYLOAD, b"small-after"]
    wire, seq = bytearray(), 3
    for p in payloads:
        data, seq = frame(p, seq)
        wire += _wire(data)
    reader = PacketReader()
    reader.seq = 3
    out = []
    pos = 0
    view = memoryview(bytes(wire))
    while pos < len(view):
        n = rnd.choice((1, 3, 4, 5, 1000, 65536, 256 * 1024, 3 * 1024 * 1024))
        out += reader.feed(view[pos:pos + n])
        pos += n
    assert len(out) == 4
    assert bytes(out[0]) == payloads[0] and bytes(out[3]) == payloads[3]
    assert out[1] == big
    assert len(out[2]) == MAX_PACKET_PAYLOAD
    assert reader.seq == seq and reader.buffered == 0


def test_reader_bytearray_input_is_copied() -> None:
    buf = bytearray(_wire(frame(b"abc", 0)[0]))
    reader = PacketReader()
    out = reader.feed(buf)
    buf[4:7] = b"zzz"
    assert bytes(out[0]) == b"abc"


def test_reader_rejects_out_of_order() -> None:
    reader = PacketReader()
    with pytest.raises(MalformedPacket, match="out of order"):
        reader.feed(_wire(frame(b"x", 5)[0]))


def test_reader_seq_check_can_be_disabled() -> None:
    reader = PacketReader(check_seq=False)
    assert [bytes(p) for p in reader.feed(_wire(frame(b"x", 5)[0]))] == [b"x"]


def test_reader_max_payload_single_packet() -> None:
    reader = PacketReader(max_payload=100)
    with pytest.raises(MalformedPacket, match="exceeds the limit"):
        reader.feed(_wire(frame(b"x" * 101, 0)[0]))


def test_reader_max_payload_refused_before_buffering() -> None:
    reader = PacketReader(max_payload=1000)
    header = struct.pack("<I", 5000)  # claims 5000 bytes, seq 0
    with pytest.raises(MalformedPacket):
        reader.feed(header + b"x" * 10)


def test_reader_max_payload_split_payload() -> None:
    reader = PacketReader(max_payload=MAX_PACKET_PAYLOAD + 10)
    data, _ = frame(b"y" * (MAX_PACKET_PAYLOAD + 11), 0)
    with pytest.raises(MalformedPacket):
        reader.feed(_wire(data))


def test_reader_partial_header_kept() -> None:
    reader = PacketReader()
    wire = _wire(frame(b"abcdef", 0)[0])
    assert reader.feed(wire[:2]) == []
    assert reader.buffered == 2
    assert [bytes(p) for p in reader.feed(wire[2:])] == [b"abcdef"]


def test_frame_many_is_frame_after_frame() -> None:
    payloads = [b"a", b"", b"z" * (MAX_PACKET_PAYLOAD + 3), b"tail"]
    parts, nxt = frame_many(payloads, 250)
    expected, seq = b"", 250
    for p in payloads:
        data, seq = frame(p, seq)
        expected += _wire(data)
    assert b"".join(parts) == expected and nxt == seq == (250 + 5) & 0xFF
