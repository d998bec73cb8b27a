"""Primitive field codecs: fixed-width and length-encoded integers and strings.

:class:`Reader` is a cursor over a ``memoryview``: fields are sliced, never copied until a caller
asks for ``bytes``. Every read checks bounds and raises :class:`~binhub.errors.MalformedPacket`, so
a truncated packet can never turn into an ``IndexError`` deep in a parser.
"""

from __future__ import annotations

import struct

from binhub.errors import MalformedPacket

Buffer = bytes | bytearray | memoryview

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")

#: First byte of a length-encoded integer meaning SQL NULL in a text row.
LENENC_NULL = 0xFB


class Reader:
    """A bounds-checked cursor over one packet payload."""

    __slots__ = ("_buf", "pos", "_end")

    def __init__(self, data: Buffer, pos: int = 0) -> None:
        self._buf = data if isinstance(data, memoryview) else memoryview(data)
        self.pos = pos
        self._end = len(self._buf)

    @property
    def remaining(self) -> int:
        return self._end - self.pos

    def at_end(self) -> bool:
        return self.pos >= self._end

    def _need(self, n: int, what: str) -> int:
        start = self.pos
        if n < 0 or start + n > self._end:
            raise MalformedPacket(f"packet truncated reading {what}: need {n} bytes at offset {start}, "
                                  f"have {self._end - start}")
        self.pos = start + n
        return start

    def peek_u8(self) -> int:
        if self.pos >= self._end:
            raise MalformedPacket(f"packet truncated at offset {self.pos}")
        return self._buf[self.pos]

    def u8(self) -> int:
        return self._buf[self._need(1, "u8")]

    def u16(self) -> int:
        return int(_U16.unpack_from(self._buf, self._need(2, "u16"))[0])

    def u24(self) -> int:
        at = self._need(3, "u24")
        b = self._buf
        return b[at] | (b[at + 1] << 8) | (b[at + 2] << 16)

    def u32(self) -> int:
        return int(_U32.unpack_from(self._buf, self._need(4, "u32"))[0])

    def u64(self) -> int:
        return int(_U64.unpack_from(self._buf, self._need(8, "u64"))[0])

    def fixed(self, n: int) -> bytes:
        at = self._need(n, f"{n}-byte field")
        return bytes(self._buf[at:at + n])

    def view(self, n: int) -> memoryview:
        """``n`` bytes as a zero-copy view (for large blobs such as event bodies)."""
        at = self._need(n, f"{n}-byte field")
        return self._buf[at:at + n]

    def skip(self, n: int) -> None:
        self._need(n, f"{n} skipped bytes")

    def rest(self) -> bytes:
        at, self.pos = self.pos, self._end
        return bytes(self._buf[at:])

    def nul_str(self) -> bytes:
        """A NUL-terminated string (the NUL is consumed, not returned)."""
        buf = self._buf
        # Searching through a bytes copy of the tail is C speed; tails here are short header fields.
        idx = bytes(buf[self.pos:]).find(0)
        if idx < 0:
            raise MalformedPacket(f"missing NUL terminator after offset {self.pos}")
        out = bytes(buf[self.pos:self.pos + idx])
        self.pos += idx + 1
        return out

    def nul_str_or_rest(self) -> bytes:
        """NUL-terminated string, tolerating a missing NUL at the very end (servers differ here)."""
        tail = bytes(self._buf[self.pos:])
        idx = tail.find(0)
        if idx < 0:
            self.pos = self._end
            return tail
        self.pos += idx + 1
        return tail[:idx]

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
        raise MalformedPacket(f"invalid length-encoded integer prefix 0x{first:02x} at offset {self.pos - 1}")

    def lenenc_bytes(self) -> bytes:
        return self.fixed(self.lenenc_int())

    def lenenc_bytes_or_null(self) -> bytes | None:
        if self.peek_u8() == LENENC_NULL:
            self.pos += 1
            return None
        return self.lenenc_bytes()

    def u8_len_bytes(self) -> bytes:
        return self.fixed(self.u8())


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


def lenenc_bytes(data: bytes) -> bytes:
    return lenenc_int(len(data)) + data


def u8_len_bytes(data: bytes, what: str = "string") -> bytes:
    if len(data) > 0xFF:
        raise ValueError(f"{what} longer than 255 bytes")
    return bytes((len(data),)) + data


def u16(n: int) -> bytes:
    return _U16.pack(n)


def u32(n: int) -> bytes:
    return _U32.pack(n)


def u64(n: int) -> bytes:
    return _U64.pack(n)
