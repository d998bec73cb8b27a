"""A bounds-checked little-endian cursor over an event body, plus the two integer encodings binlog uses.

* ``lenenc`` — the client/server protocol's length-encoded integer (``net_field_length_ll`` /
  ``net_store_length`` in mysys ``pack.cc``): < 0xfb in one byte, else 0xfc+2, 0xfd+3, 0xfe+8 bytes.
* ``varlen`` — the MySQL 8.3+ serialization library's integer (``libs/mysql/serialization/
  variable_length_integers.h``): the number of trailing one bits of the first byte, plus one, is the
  byte count; the value follows in the remaining bits, little-endian. Signed values are zig-zag encoded.
  GTID_TAGGED events are written in this format.

Reading past the end raises InvalidEvent: the event's own size said the bytes would be there.
"""

from __future__ import annotations

from binhub.bytefields import ByteCursor
from binhub.errors import BinhubError, InvalidEvent


class ByteReader(ByteCursor):
    """Sequential reads over an event body. Used by the body decoders; not on the relay's hot path."""

    __slots__ = ("what",)

    def __init__(self, data: bytes | memoryview, pos: int = 0, end: int | None = None, what: str = "event") -> None:
        super().__init__(data, pos, end)
        self.what = what

    def _truncated(self, n: int, start: int, what: str) -> BinhubError:
        return InvalidEvent(f"{self.what} body ends after {self.end - start} bytes where {n} more were expected")

    def _invalid(self, message: str) -> BinhubError:
        return InvalidEvent(f"{self.what}: {message}")

    def remaining(self) -> int:
        return self.end - self.pos

    def take(self, n: int) -> bytes:
        start = self._need(n)
        return bytes(self.data[start:start + n])

    def u48(self) -> int:
        start = self._need(6)
        return int.from_bytes(self.data[start:start + 6], "little")

    def u56(self) -> int:
        start = self._need(7)
        return int.from_bytes(self.data[start:start + 7], "little")

    def uint(self, n: int) -> int:
        start = self._need(n)
        return int.from_bytes(self.data[start:start + n], "little")

    lenenc = ByteCursor.lenenc_int

    def varlen(self) -> int:
        """Unsigned integer of the serialization library (1..9 bytes)."""
        first = self.data[self._need(1)]
        n = _trailing_ones(first) + 1
        if n == 1:
            return first >> 1
        start = self._need(n - 1)
        rest = int.from_bytes(self.data[start:start + n - 1], "little")
        if n == 9:
            return rest
        return (first >> n) | (rest << (8 - n))

    def varlen_signed(self) -> int:
        raw = self.varlen()
        return -((raw >> 1) + 1) if raw & 1 else raw >> 1


def _trailing_ones(byte: int) -> int:
    count = 0
    while byte & 1:
        count += 1
        byte >>= 1
    return count


def pack_varlen(value: int) -> bytes:
    """Encode an unsigned integer like ``write_varlen_bytes_unsigned``."""
    if value < 0 or value >= 1 << 64:
        raise ValueError(f"varlen value out of range: {value}")
    bits = value.bit_length()
    n = ((bits * 575) >> 12) + 1  # the source's own length formula: 1 + ceil((bits-1)/7), 9 at 64 bits
    first = ((1 << (n - 1)) - 1) | ((value << n) & 0xFF)
    if n == 1:
        return bytes((first,))
    shift = 8 - n + ((n + 7) >> 4)
    return bytes((first,)) + (value >> shift).to_bytes(n - 1, "little")


def pack_varlen_signed(value: int) -> bytes:
    return pack_varlen((value << 1) if value >= 0 else (((-(value + 1)) << 1) | 1))
