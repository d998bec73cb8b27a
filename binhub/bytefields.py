"""The bounds-checked little-endian cursor both codecs read with (binlog events, protocol packets).

:class:`ByteCursor` holds the reads the two formats share: fixed-width integers, skipping, the rest,
and MySQL's length-encoded integer (``net_field_length_ll``: < 0xfb in one byte, else 0xfc+2,
0xfd+3, 0xfe+8 bytes). Each codec subclasses it with its own error (InvalidEvent for an event body,
MalformedPacket for a packet) and its own extra fields. A leaf module: it imports nothing of binhub
but the errors.
"""

from __future__ import annotations

import struct

from binhub.errors import BinhubError

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class ByteCursor:
    """Sequential reads over ``data[pos:end]``; reading past ``end`` raises the subclass's error."""

    __slots__ = ("data", "pos", "end")

    def __init__(self, data: bytes | bytearray | memoryview, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    # -- what a subclass says when the bytes run out or an encoding is impossible ------------------
    def _truncated(self, n: int, start: int, what: str) -> BinhubError:
        raise NotImplementedError

    def _invalid(self, message: str) -> BinhubError:
        raise NotImplementedError

    def _need(self, n: int, what: str = "") -> int:
        start = self.pos
        if n < 0 or start + n > self.end:
            raise self._truncated(n, start, what)
        self.pos = start + n
        return start

    def skip(self, n: int) -> None:
        self._need(n, f"{n} skipped bytes")

    def rest(self) -> bytes:
        start, self.pos = self.pos, self.end
        return bytes(self.data[start:self.end])

    def u8(self) -> int:
        return self.data[self._need(1, "u8")]

    def u16(self) -> int:
        return int(_U16.unpack_from(self.data, self._need(2, "u16"))[0])

    def u24(self) -> int:
        start = self._need(3, "u24")
        return int.from_bytes(self.data[start:start + 3], "little")

    def u32(self) -> int:
        return int(_U32.unpack_from(self.data, self._need(4, "u32"))[0])

    def u64(self) -> int:
        return int(_U64.unpack_from(self.data, self._need(8, "u64"))[0])

    def lenenc_int(self) -> int:
        first = self.u8()
        if first < 0xFB:
            return first
        if first == 0xFC:
            return self.u16()
        if first == 0xFD:
            return self.u24()
        if first == 0xFE:
            return self.u64()
        raise self._invalid(f"invalid length-encoded integer prefix 0x{first:02x} at offset {self.pos - 1}")


def lenenc_int(n: int) -> bytes:
    """Encode ``n`` as a length-encoded integer (1, 3, 4 or 9 bytes)."""
    if n < 0:
        raise ValueError(f"length-encoded integer must be >= 0, got {n}")
    if n < 0xFB:
        return bytes((n,))
    if n < 1 << 16:
        return b"\xfc" + _U16.pack(n)
    if n < 1 << 24:
        return b"\xfd" + n.to_bytes(3, "little")
    if n < 1 << 64:
        return b"\xfe" + _U64.pack(n)
    raise ValueError(f"length-encoded integer too large: {n}")
