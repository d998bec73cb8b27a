"""Primitive field codecs: fixed-width and length-encoded integers and strings.

:class:`Reader` is a cursor over a ``memoryview``: fields are sliced, never copied until a caller
asks for ``bytes``. Every read checks bounds and raises :class:`~binhub.errors.MalformedPacket`, so
a truncated packet can never turn into an ``IndexError`` deep in a parser.
"""

from __future__ import annotations

import struct

from binhub.bytefields import ByteCursor
from binhub.bytefields import lenenc_int as lenenc_int  # re-exported: the packet encoders use it
from binhub.errors import BinhubError, MalformedPacket

Buffer = bytes | bytearray | memoryview

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")

#: First byte of a length-encoded integer meaning SQL NULL in a text row.
LENENC_NULL = 0xFB


class Reader(ByteCursor):
    """A bounds-checked cursor over one packet payload (``data`` is always a memoryview)."""

    __slots__ = ()

    def __init__(self, data: Buffer, pos: int = 0) -> None:
        super().__init__(data if isinstance(data, memoryview) else memoryview(data), pos)

    def _truncated(self, n: int, start: int, what: str) -> BinhubError:
        return MalformedPacket(f"packet truncated reading {what}: need {n} bytes at offset {start}, "
                               f"have {self.end - start}")

    def _invalid(self, message: str) -> BinhubError:
        return MalformedPacket(message)

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def at_end(self) -> bool:
        return self.pos >= self.end

    def peek_u8(self) -> int:
        if self.pos >= self.end:
            raise MalformedPacket(f"packet truncated at offset {self.pos}")
        return self.data[self.pos]

    def fixed(self, n: int) -> bytes:
        at = self._need(n, f"{n}-byte field")
        return bytes(self.data[at:at + n])

    def view(self, n: int) -> memoryview:
        """``n`` bytes as a zero-copy view (for large blobs such as event bodies)."""
        at = self._need(n, f"{n}-byte field")
        return memoryview(self.data)[at:at + n]  # data is a memoryview already: this wraps, not copies

    def nul_str(self) -> bytes:
        """A NUL-terminated string (the NUL is consumed, not returned)."""
        buf = self.data
        # Searching through a bytes copy of the tail is C speed; tails here are short header fields.
        idx = bytes(buf[self.pos:]).find(0)
        if idx < 0:
            raise MalformedPacket(f"missing NUL terminator after offset {self.pos}")
        out = bytes(buf[self.pos:self.pos + idx])
        self.pos += idx + 1
        return out

    def nul_str_or_rest(self) -> bytes:
        """NUL-terminated string, tolerating a missing NUL at the very end (servers differ here)."""
        tail = bytes(self.data[self.pos:])
        idx = tail.find(0)
        if idx < 0:
            self.pos = self.end
            return tail
        self.pos += idx + 1
        return tail[:idx]

    def lenenc_bytes(self) -> bytes:
        return self.fixed(self.lenenc_int())

    def lenenc_bytes_or_null(self) -> bytes | None:
        if self.peek_u8() == LENENC_NULL:
            self.pos += 1
            return None
        return self.lenenc_bytes()

    def u8_len_bytes(self) -> bytes:
        return self.fixed(self.u8())


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
