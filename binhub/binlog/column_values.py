"""Decoding one column value from a row image into its binhub form.

The binhub form is what every sink starts from (``binhub.binlog.json_form`` turns it into JSON):

* integers, YEAR, BIT: ``int``; FLOAT/DOUBLE: ``float`` (FLOAT shortest as a float32 prints);
* DECIMAL: ``str`` with the column's scale (``"12.300"``);
* DATE ``"YYYY-MM-DD"``, DATETIME ``"YYYY-MM-DD HH:MM:SS[.ffffff]"`` (fsp digits), TIMESTAMP the
  same in UTC, TIME ``"[-]HH[H]:MM:SS[.ffffff]"``; zero dates as MySQL prints them (``0000-00-00``);
* text: ``str``; binary strings and BLOBs: ``bytes``; text whose charset is unknown or whose bytes
  are not valid in it: :class:`UndecodedText` (never a guessed decoding);
* ENUM: its label (the 1-based index as ``int`` when the labels are unknown; 0 is ``""``);
  SET: ``"a,c"`` (the bitmap as ``int`` when the labels are unknown);
* JSON: the value itself (``JSON_NULL`` for a JSON ``null``, so it differs from SQL NULL);
* GEOMETRY: :class:`Geometry`; VECTOR: ``list[float]``.

Layouts follow MySQL ``mysys/my_time.cc`` (``my_time_packed_from_binary``,
``TIME_from_longlong_{time,datetime}_packed``), ``strings/decimal.cc`` (``bin2decimal``) and
``log_event_print_value`` in both servers' ``log_event*.cc``.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

__all__ = [
    "JSON_NULL", "Geometry", "JsonNull", "UndecodedText", "datetime2", "date3", "decimal_size", "float32",
    "newdecimal", "old_datetime", "old_time", "time2", "timestamp2", "vector",
]


@dataclass(frozen=True, slots=True)
class Geometry:
    srid: int
    wkb: bytes


@dataclass(frozen=True, slots=True)
class UndecodedText:
    """Text binhub could not decode: ``charset`` None means the column's charset is unknown (no
    TABLE_MAP metadata and no schema); otherwise the bytes are not valid in it."""

    data: bytes
    charset: str | None


class JsonNull:
    """The JSON literal ``null`` inside a JSON column (SQL NULL is ``None``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "JSON_NULL"


JSON_NULL: Final = JsonNull()

_F32 = struct.Struct("<f")
_F32_PACK = _F32.pack
_BE_U32 = struct.Struct(">I")


def float32(raw: float) -> float:
    """A FLOAT column's value as the shortest decimal that reads back as the same float32, the
    digits MySQL shows (``1.1``, not ``1.100000023841858``)."""
    if raw != raw or raw in (float("inf"), float("-inf")):
        return raw
    packed = _F32_PACK(raw)
    for digits in range(6, 10):
        text = f"{raw:.{digits}g}"
        shortened = float(text)
        if _F32_PACK(shortened) == packed:
            return shortened
    return raw


def vector(data: bytes) -> list[float]:
    """A VECTOR value: little-endian float32s."""
    count = len(data) // 4
    return [float32(x) for x in struct.unpack_from(f"<{count}f", data)]


# ---- DECIMAL -------------------------------------------------------------------------------------

_DIG2BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)


def decimal_size(precision: int, scale: int) -> int:
    """Bytes of a packed DECIMAL(precision, scale) (``decimal_bin_size``)."""
    intg = precision - scale
    return (intg // 9) * 4 + _DIG2BYTES[intg % 9] + (scale // 9) * 4 + _DIG2BYTES[scale % 9]


def newdecimal(data: bytes, pos: int, precision: int, scale: int) -> str:
    """``bin2decimal``: big-endian groups of 9 digits, the leading partial group first, the sign in
    the top bit (set for non-negative), negative numbers stored inverted. Printed like
    ``decimal2string`` with the scale's digits."""
    size = decimal_size(precision, scale)
    raw = bytearray(data[pos:pos + size])
    if len(raw) < size:
        raise IndexError("DECIMAL value runs past the row")
    negative = not raw[0] & 0x80
    raw[0] ^= 0x80
    if negative:
        for i in range(size):
            raw[i] ^= 0xFF
    intg = precision - scale
    p = 0
    int_digits: list[str] = []
    lead = _DIG2BYTES[intg % 9]
    if lead:
        int_digits.append(str(int.from_bytes(raw[p:p + lead], "big")))
        p += lead
    for _ in range(intg // 9):
        int_digits.append(f"{int.from_bytes(raw[p:p + 4], 'big'):09d}")
        p += 4
    frac_digits: list[str] = []
    for _ in range(scale // 9):
        frac_digits.append(f"{int.from_bytes(raw[p:p + 4], 'big'):09d}")
        p += 4
    tail = scale % 9
    if tail:
        frac_digits.append(f"{int.from_bytes(raw[p:p + _DIG2BYTES[tail]], 'big'):0{tail}d}")
    integer = "".join(int_digits).lstrip("0") or "0"
    text = integer + ("." + "".join(frac_digits) if scale else "")
    return "-" + text if negative else text


# ---- temporal ------------------------------------------------------------------------------------

def _frac(data: bytes, pos: int, fsp: int) -> tuple[int, int]:
    """(fraction in microseconds as stored, bytes) of the fractional part after a TIME2/DATETIME2/
    TIMESTAMP2 integer part."""
    if fsp <= 0:
        return 0, 0
    if fsp <= 2:
        return data[pos] * 10000, 1
    if fsp <= 4:
        return int.from_bytes(data[pos:pos + 2], "big") * 100, 2
    return int.from_bytes(data[pos:pos + 3], "big"), 3


def _fraction_text(usec: int, fsp: int) -> str:
    return f".{usec:06d}"[:fsp + 1] if fsp > 0 else ""


def time2(data: bytes, pos: int, fsp: int) -> str:
    """TIME(fsp) in the 5.6 format (``my_time_packed_from_binary`` + ``TIME_from_longlong_time_packed``):
    3 bytes big-endian integer part offset by 0x800000, then a fraction whose sign follows it."""
    if fsp >= 5:
        packed = int.from_bytes(data[pos:pos + 6], "big") - 0x800000000000
    else:
        intpart = int.from_bytes(data[pos:pos + 3], "big") - 0x800000
        if fsp == 0:
            packed = intpart << 24
        else:
            if fsp <= 2:
                frac, width = data[pos + 3], 0x100
                scale = 10000
            else:
                frac, width = int.from_bytes(data[pos + 3:pos + 5], "big"), 0x10000
                scale = 100
            if intpart < 0 and frac:
                intpart += 1
                frac -= width
            packed = (intpart << 24) + frac * scale
    sign = ""
    if packed < 0:
        sign, packed = "-", -packed
    hms = packed >> 24
    usec = packed % (1 << 24)
    hour = (hms >> 12) % (1 << 10)
    minute = (hms >> 6) % (1 << 6)
    second = hms % (1 << 6)
    return f"{sign}{hour:02d}:{minute:02d}:{second:02d}{_fraction_text(usec, fsp)}"


def time2_size(fsp: int) -> int:
    return 3 + (fsp + 1) // 2


def datetime2(data: bytes, pos: int, fsp: int) -> str:
    """DATETIME(fsp) in the 5.6 format: 5 bytes big-endian (offset 0x8000000000) holding
    year*13+month (17 bits up), day (5), hour (5), minute (6), second (6); then the fraction."""
    intpart = int.from_bytes(data[pos:pos + 5], "big") - 0x8000000000
    usec, _ = _frac(data, pos + 5, fsp)
    if intpart < 0:  # no valid DATETIME is negative; print what the bits say, like the server
        intpart = -intpart
    ymd = intpart >> 17
    ym = ymd >> 5
    hms = intpart % (1 << 17)
    return (f"{ym // 13:04d}-{ym % 13:02d}-{ymd % 32:02d} "
            f"{hms >> 12:02d}:{(hms >> 6) % 64:02d}:{hms % 64:02d}{_fraction_text(usec, fsp)}")


def timestamp2(data: bytes, pos: int, fsp: int) -> str:
    """TIMESTAMP(fsp) in the 5.6 format: big-endian seconds since the epoch, then the fraction;
    printed in UTC. 0 is the zero timestamp ``0000-00-00 00:00:00``."""
    seconds = _BE_U32.unpack_from(data, pos)[0]
    usec, _ = _frac(data, pos + 4, fsp)
    if seconds == 0 and usec == 0:
        return "0000-00-00 00:00:00" + _fraction_text(0, fsp)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S") + _fraction_text(usec, fsp)


def old_timestamp(seconds: int) -> str:
    """TIMESTAMP before 5.6: little-endian seconds (the row decoder unpacks them)."""
    if seconds == 0:
        return "0000-00-00 00:00:00"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


def date3(value: int) -> str:
    """DATE: 3 bytes little-endian, day in bits 0-4, month 5-8, year from bit 9."""
    return f"{value >> 9:04d}-{(value >> 5) & 15:02d}-{value & 31:02d}"


def old_time(value: int) -> str:
    """TIME before 5.6: signed 3-byte HHMMSS."""
    sign = "-" if value < 0 else ""
    value = abs(value)
    return f"{sign}{value // 10000:02d}:{value // 100 % 100:02d}:{value % 100:02d}"


def old_datetime(value: int) -> str:
    """DATETIME before 5.6: 8 bytes little-endian YYYYMMDDhhmmss."""
    d, t = divmod(value, 1000000)
    return f"{d // 10000:04d}-{d // 100 % 100:02d}-{d % 100:02d} {t // 10000:02d}:{t // 100 % 100:02d}:{t % 100:02d}"


def mariadb_column_uncompress(data: bytes) -> bytes:
    """The value of a MariaDB ``COMPRESSED`` column (``Field_longstr::uncompress``, field_comp.cc):
    empty stays empty; a first byte 0 means the bytes after it, stored as they are; 0x8N means zlib,
    with N & 7 bytes of big-endian original length and N & 8 set for a raw deflate stream."""
    if not data:
        return data
    head = data[0]
    if head == 0:
        return data[1:]
    if head >> 4 != 8:
        raise ValueError(f"compressed column uses unknown method {head >> 4}")
    lenlen = head & 0x07
    size = int.from_bytes(data[1:1 + lenlen], "big")
    out = zlib.decompress(data[1 + lenlen:], -zlib.MAX_WBITS if head & 0x08 else zlib.MAX_WBITS)
    if len(out) != size:
        raise ValueError(f"compressed column inflated to {len(out)} bytes, its header says {size}")
    return out


def old_decimal(data: bytes) -> str:
    """The pre-5.0.3 DECIMAL: the number as ASCII, right-aligned with leading spaces."""
    return data.decode("ascii").strip()
