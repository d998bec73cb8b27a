"""The compressed protocol: ``CLIENT_COMPRESS`` (zlib) and ``CLIENT_ZSTD_COMPRESSION_ALGORITHM`` (zstd).

When client and server agree on it in the handshake, everything after the OK that ends the
authentication travels in *compressed packets* wrapped around the ordinary packet stream
(MySQL ``sql-common/net_serv.cc`` ``compress_packet``/``net_read_compressed_packet``, MariaDB
``sql/net_serv.cc`` ``net_real_write``/``my_real_read``)::

    3-byte length of the body | 1-byte sequence id | 3-byte uncompressed length | body

The body is the zlib (or zstd) compression of a piece of the packet stream; a piece shorter than
``MIN_COMPRESS_LENGTH`` bytes, or one that would not shrink, goes as it is, with uncompressed
length 0. Pieces are at most 0xFFFFFF bytes (both lengths are 3 bytes), and their boundaries have
nothing to do with the packets inside: one compressed packet may carry many packets or part of
one. The compressed packets' sequence ids are a counter of their own; the inner packets keep
theirs, which a compressed-protocol reader does not check (the servers themselves resynchronise
them at every flush).

zstd (MySQL 8.0.18+) differs only in the codec and in the level, which the client sends as one
byte at the end of its HandshakeResponse41; a zlib connection uses the server's level.

Sans-I/O: :func:`compress_pieces` makes the bodies of a stretch of the stream (the costly part, and
independent of sequence ids, so one stretch shared by many replicas is compressed once),
:func:`frame_pieces` puts headers on them, :class:`CompressedPacketReader` turns received bytes
back into the packet stream.
"""

from __future__ import annotations

import enum
import struct
import threading
import zlib
from dataclasses import dataclass

import zstandard

from binhub.errors import MalformedPacket
from binhub.wire.constants import MAX_PACKET_PAYLOAD, Capability

__all__ = [
    "COMPRESSED_HEADER_SIZE", "MIN_COMPRESS_LENGTH", "Algorithm", "CompressedPacketReader", "Compression",
    "Piece", "compress_pieces", "frame_pieces", "negotiated", "piece_count",
]

#: Pieces shorter than this are sent uncompressed (``MIN_COMPRESS_LENGTH`` in both servers).
MIN_COMPRESS_LENGTH = 50
COMPRESSED_HEADER_SIZE = 7
#: Largest piece: both lengths of the header are 3 bytes.
MAX_PIECE = MAX_PACKET_PAYLOAD
#: zstd levels MySQL accepts; its default is 3. zlib's default (MySQL's and MariaDB's) is 6.
ZSTD_LEVELS = range(1, 23)
DEFAULT_LEVELS = {"zlib": 6, "zstd": 3}

_HEADER = struct.Struct("<I")  # 3-byte length + 1-byte sequence id, as in an ordinary packet
Buffer = bytes | bytearray | memoryview


class Algorithm(enum.Enum):
    ZLIB = "zlib"
    ZSTD = "zstd"

    @property
    def capability(self) -> Capability:
        return Capability.COMPRESS if self is Algorithm.ZLIB else Capability.ZSTD_COMPRESSION_ALGORITHM


# zstd (de)compressor objects are not thread-safe and cost more to make than to use on a small
# piece: one of each per thread and level.
_local = threading.local()


def _zstd_compressor(level: int) -> zstandard.ZstdCompressor:
    cache: dict[int, zstandard.ZstdCompressor] = _local.__dict__.setdefault("c", {})
    c = cache.get(level)
    if c is None:
        c = cache[level] = zstandard.ZstdCompressor(level=level)
    return c


def _zstd_decompressor() -> zstandard.ZstdDecompressor:
    d: zstandard.ZstdDecompressor | None = getattr(_local, "d", None)
    if d is None:
        d = _local.d = zstandard.ZstdDecompressor()
    return d


@dataclass(frozen=True)
class Compression:
    """What a connection agreed on: the codec and the level this side compresses with."""

    algorithm: Algorithm
    level: int

    @classmethod
    def default(cls, algorithm: Algorithm) -> Compression:
        return cls(algorithm, DEFAULT_LEVELS[algorithm.value])

    def __str__(self) -> str:
        return f"{self.algorithm.value} level {self.level}"

    def compress(self, data: Buffer) -> bytes:
        if self.algorithm is Algorithm.ZLIB:
            return zlib.compress(data, self.level)
        return _zstd_compressor(self.level).compress(data)

    def decompress(self, data: Buffer, size: int) -> bytes:
        """Inflate ``data`` to exactly ``size`` bytes; :class:`MalformedPacket` if it does not."""
        try:
            if self.algorithm is Algorithm.ZLIB:
                out = zlib.decompress(data, bufsize=size)
            else:
                out = _zstd_decompressor().decompress(data, max_output_size=size)
        except (zlib.error, zstandard.ZstdError) as exc:
            raise MalformedPacket(f"a compressed packet does not inflate ({self.algorithm.value}): {exc}") from None
        if len(out) != size:
            raise MalformedPacket(f"a compressed packet inflates to {len(out)} bytes, its header says {size}")
        return out


def negotiated(capabilities: int, zstd_level: int | None) -> Compression | None:
    """The compression both sides agreed on (``capabilities`` already ANDed), or None.

    zlib wins when both flags are set, as in libmysqlclient (``CLIENT_COMPRESS ? ZLIB : ZSTD``).
    """
    if capabilities & Capability.COMPRESS:
        return Compression.default(Algorithm.ZLIB)
    if capabilities & Capability.ZSTD_COMPRESSION_ALGORITHM:
        level = DEFAULT_LEVELS["zstd"] if zstd_level is None else zstd_level
        if level not in ZSTD_LEVELS:
            raise MalformedPacket(f"zstd compression level {level} is not between 1 and 22")
        return Compression(Algorithm.ZSTD, level)
    return None


#: One compressed packet without its 4-byte header: (uncompressed length or 0, body).
Piece = tuple[int, bytes | memoryview]


def compress_pieces(data: Buffer, compression: Compression, *, piece: int = MAX_PIECE) -> list[Piece]:
    """Cut ``data`` (a stretch of the packet stream) into pieces and compress each one that shrinks.

    Pieces that go uncompressed are zero-copy slices of ``data``.
    """
    view = memoryview(data)
    out: list[Piece] = []
    for pos in range(0, len(view), piece):
        chunk = view[pos:pos + piece]
        n = len(chunk)
        if n >= MIN_COMPRESS_LENGTH:
            packed = compression.compress(chunk)
            if len(packed) < n:
                out.append((n, packed))
                continue
        out.append((0, chunk))
    return out


def piece_count(nbytes: int) -> int:
    """How many compressed packets :func:`compress_pieces` makes of ``nbytes`` (it depends on nothing else)."""
    return -(-nbytes // MAX_PIECE)


def frame_pieces(pieces: list[Piece], seq: int) -> tuple[list[bytes | memoryview], int]:
    """Headers on ``pieces`` from compressed sequence id ``seq``: (parts to write in order, next id)."""
    parts: list[bytes | memoryview] = []
    for size, body in pieces:
        parts.append(_HEADER.pack(len(body) | (seq << 24)) + size.to_bytes(3, "little"))
        parts.append(body)
        seq = (seq + 1) & 0xFF
    return parts, seq


class CompressedPacketReader:
    """Received bytes → the packet stream inside the compressed packets.

    ``max_piece`` bounds what one compressed packet may claim before it is buffered (a hostile
    length is refused, not allocated). ``seq`` is the sequence id that follows the last compressed
    packet read: what the next compressed packet sent in reply carries.
    """

    __slots__ = ("compression", "seq", "_buf", "max_piece")

    def __init__(self, compression: Compression, *, seq: int = 0, max_piece: int = MAX_PIECE) -> None:
        self.compression = compression
        self.seq = seq
        self.max_piece = max_piece
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: Buffer) -> list[bytes]:
        """Consume ``data``; return the contents of every compressed packet it completed, in order."""
        buf = self._buf
        buf += data
        out: list[bytes] = []
        pos, end = 0, len(buf)
        view = memoryview(buf)
        try:
            while end - pos >= COMPRESSED_HEADER_SIZE:
                header = _HEADER.unpack_from(view, pos)[0]
                length = header & MAX_PACKET_PAYLOAD
                size = int.from_bytes(view[pos + 4:pos + 7], "little")
                if length > self.max_piece or size > self.max_piece:
                    raise MalformedPacket(f"compressed packet of {max(length, size)} bytes exceeds the limit of "
                                          f"{self.max_piece} bytes")
                stop = pos + COMPRESSED_HEADER_SIZE + length
                if stop > end:
                    break
                with view[pos + COMPRESSED_HEADER_SIZE:stop] as body:  # released before the buffer shrinks
                    out.append(self.compression.decompress(body, size) if size else bytes(body))
                self.seq = ((header >> 24) + 1) & 0xFF
                pos = stop
        finally:
            view.release()
        if pos:
            del buf[:pos]
        return out
