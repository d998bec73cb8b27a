"""The compressed protocol's framing (binhub.wire.compression) and its handshake fields."""

from __future__ import annotations

import os
import zlib

import pytest
import zstandard

from binhub.errors import MalformedPacket
from binhub.wire.client import ClientHandshake
from binhub.wire.compression import (
    Algorithm,
    CompressedPacketReader,
    Compression,
    compress_pieces,
    frame_pieces,
    negotiated,
)
from binhub.wire.constants import MAX_PACKET_PAYLOAD, Capability
from binhub.wire.handshake import HandshakeResponse41, HandshakeV10
from binhub.wire.packet import PacketReader, frame_many

ZLIB = Compression.default(Algorithm.ZLIB)
ZSTD = Compression.default(Algorithm.ZSTD)


def _wire(data: bytes, compression: Compression, seq: int = 0) -> bytes:
    parts, _ = frame_pieces(compress_pieces(data, compression), seq)
    return b"".join(parts)


def test_zlib_packet_is_what_libmysqlclient_reads() -> None:
    """Header by hand: 3-byte body length, sequence id, 3-byte uncompressed length, zlib stream."""
    data = b"\x05\x00\x00\x01" + b"hello" + b"x" * 100
    wire = _wire(data, ZLIB, seq=7)
    length, seq, size = int.from_bytes(wire[:3], "little"), wire[3], int.from_bytes(wire[4:7], "little")
    assert (seq, size, length) == (7, len(data), len(wire) - 7)
    assert zlib.decompress(wire[7:]) == data


def test_zstd_body_is_a_zstd_frame() -> None:
    data = b"abc" * 1000
    wire = _wire(data, ZSTD)
    assert zstandard.ZstdDecompressor().decompress(wire[7:]) == data


def test_short_or_incompressible_pieces_go_as_they_are() -> None:
    short = b"\x01\x00\x00\x00\x0e"  # a COM_PING packet: under MIN_COMPRESS_LENGTH
    assert _wire(short, ZLIB) == len(short).to_bytes(3, "little") + b"\x00" + b"\x00\x00\x00" + short
    noise = os.urandom(5000)
    wire = _wire(noise, ZLIB)
    assert wire[4:7] == b"\x00\x00\x00" and wire[7:] == noise


@pytest.mark.parametrize("compression", [ZLIB, ZSTD], ids=str)
def test_round_trip_through_the_reader_in_any_chunking(compression: Compression) -> None:
    payloads = [b"\x00" + bytes([i % 251]) * (i * 37 % 3000) for i in range(200)]
    stream = b"".join(frame_many(payloads, 3)[0])
    wire = _wire(stream, compression, seq=1) + _wire(b"\x07\x00\x00\x00" + b"tail-ok", compression, seq=2)
    for step in (1, 7, 1000, len(wire)):
        reader = CompressedPacketReader(compression)
        packets = PacketReader(check_seq=False)
        got = []
        for i in range(0, len(wire), step):
            for piece in reader.feed(wire[i:i + step]):
                got += [bytes(p) for p in packets.feed(piece)]
        assert got == payloads + [b"tail-ok"]
        assert reader.seq == 3 and reader.buffered == 0


def test_a_stream_over_16_mib_is_cut_into_pieces() -> None:
    data = bytes(range(256)) * ((MAX_PACKET_PAYLOAD + 1000) // 256 + 1)
    pieces = compress_pieces(data, ZLIB)
    assert [size for size, _ in pieces] == [MAX_PACKET_PAYLOAD, len(data) - MAX_PACKET_PAYLOAD]
    reader = CompressedPacketReader(ZLIB)
    assert b"".join(reader.feed(b"".join(frame_pieces(pieces, 0)[0]))) == data


def test_bad_compressed_packets_are_refused() -> None:
    good = _wire(b"y" * 500, ZLIB)
    lying = good[:4] + (501).to_bytes(3, "little") + good[7:]  # claims one byte more than it inflates to
    with pytest.raises(MalformedPacket, match="inflates to 500 bytes"):
        CompressedPacketReader(ZLIB).feed(lying)
    with pytest.raises(MalformedPacket, match="does not inflate"):
        CompressedPacketReader(ZLIB).feed(good[:7] + b"\xff" * (len(good) - 7))
    with pytest.raises(MalformedPacket, match="exceeds the limit"):
        CompressedPacketReader(ZLIB, max_piece=1000).feed(b"\xff\xff\x00\x00" + (10).to_bytes(3, "little"))


def test_negotiation_prefers_zlib_as_libmysqlclient_and_checks_the_zstd_level() -> None:
    both = Capability.COMPRESS | Capability.ZSTD_COMPRESSION_ALGORITHM
    assert negotiated(both, 5) == ZLIB
    assert negotiated(Capability.ZSTD_COMPRESSION_ALGORITHM, 9) == Compression(Algorithm.ZSTD, 9)
    assert negotiated(Capability.ZSTD_COMPRESSION_ALGORITHM, None) == ZSTD
    assert negotiated(Capability.PROTOCOL_41, None) is None
    with pytest.raises(MalformedPacket, match="level 40"):
        negotiated(Capability.ZSTD_COMPRESSION_ALGORITHM, 40)


def test_zstd_level_is_the_last_byte_of_the_handshake_response() -> None:
    caps = Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION | Capability.ZSTD_COMPRESSION_ALGORITHM
    resp = HandshakeResponse41(caps, "u", b"x" * 20, attrs={"a": "b"}, zstd_level=11)
    raw = resp.build()
    assert raw[-1] == 11
    assert HandshakeResponse41.parse(raw).zstd_level == 11
    plain = HandshakeResponse41(Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION, "u", b"x" * 20)
    assert HandshakeResponse41.parse(plain.build()).zstd_level is None


@pytest.mark.parametrize(("offered", "expected"), [
    (Capability.COMPRESS | Capability.ZSTD_COMPRESSION_ALGORITHM, ZSTD),
    (Capability.COMPRESS, ZLIB),  # MariaDB: zlib only
    (Capability(0), None),  # a server without it: on uncompressed
])
def test_client_asks_for_zstd_where_offered(offered: Capability, expected: Compression | None) -> None:
    caps = Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION | Capability.PLUGIN_AUTH | offered
    greeting = HandshakeV10("8.0.36", 1, b"s" * 20, caps)
    hs = ClientHandshake("u", "pw", compress=True)
    step = hs.receive(greeting.build())
    assert hs.compression == expected
    response = HandshakeResponse41.parse(step.send[0])
    assert negotiated(response.capabilities & caps, response.zstd_level) == expected
