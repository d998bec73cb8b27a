"""Well-known text of a spatial value: MySQL's and MariaDB's ``ST_AsText`` from the WKB the binlog holds.

A GEOMETRY column's binlog value is a 4-byte SRID followed by OGC WKB (:class:`~binhub.binlog.column_values.Geometry`
keeps the two apart). :func:`wkt` reads the WKB — points, linestrings, polygons, their multi forms and
geometry collections, in either byte order — and writes the text the server prints for it:
``POINT(1 2)``, ``LINESTRING(0 0,1 1)``, ``POLYGON((0 0,1 0,1 1,0 0))``, ``MULTIPOINT(1 1,2 2)``,
``GEOMETRYCOLLECTION(POINT(1 2),…)``, ``GEOMETRYCOLLECTION EMPTY``; coordinates as the server formats a
double (the shortest text that reads back as the same number; :func:`format_coordinate`). The SRID is not part of
WKT (``ST_SRID`` gives it apart).
"""

from __future__ import annotations

import math
import struct
from decimal import Decimal

from binhub.errors import BinlogError

__all__ = ["format_coordinate", "wkt"]

_NAMES = {1: "POINT", 2: "LINESTRING", 3: "POLYGON", 4: "MULTIPOINT", 5: "MULTILINESTRING", 6: "MULTIPOLYGON",
          7: "GEOMETRYCOLLECTION"}
_MAX_F_PLACES = 15  # MAX_DECPT_FOR_F_FORMAT: DBL_DIG
_MAX_DEPTH = 32  # geometry collections nest; a corrupt value must not recurse without end


def format_coordinate(value: float) -> str:
    """A double as the server's WKT writes it (``my_gcvt``): its shortest round-tripping digits, in
    positional notation while the decimal point is within 15 places of them (or the digits reach
    it), else as ``1.2345e-20``/``1e15``."""
    if not math.isfinite(value):
        return repr(value)
    sign, digit_tuple, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple))
    if digits == "0":
        return "-0" if sign else "0"
    minus = "-" if sign else ""
    point = len(digits) + exponent  # where the decimal point falls: 0.DIGITS × 10^point
    if -_MAX_F_PLACES < point <= _MAX_F_PLACES or point < len(digits) and point > 0:
        if point <= 0:
            return f"{minus}0.{'0' * -point}{digits}"
        if point >= len(digits):
            return minus + digits + "0" * (point - len(digits))
        return f"{minus}{digits[:point]}.{digits[point:]}"
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{minus}{mantissa}e{point - 1}"


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def _take(self, fmt: str) -> tuple[float | int, ...]:
        size = struct.calcsize(fmt)
        if self.at + size > len(self.data):
            raise BinlogError(f"a spatial value ends inside its WKB ({len(self.data)} bytes, {self.at + size} needed)")
        values = struct.unpack_from(fmt, self.data, self.at)
        self.at += size
        return values

    def geometry(self, depth: int = 0) -> tuple[int, str]:
        """(the WKB type, its WKT body after the type name)."""
        if depth > _MAX_DEPTH:
            raise BinlogError(f"a spatial value nests geometry collections deeper than {_MAX_DEPTH}")
        (order,) = self._take("B")
        if order not in (0, 1):
            raise BinlogError(f"a spatial value's WKB byte order is {order}, not 0 or 1")
        e = "<" if order == 1 else ">"
        (kind,) = self._take(e + "I")
        if kind == 1:
            return 1, f"({self._point(e)})"
        if kind == 2:
            return 2, f"({self._points(e)})"
        if kind == 3:
            return 3, f"({self._rings(e)})"
        if kind in (4, 5, 6, 7):
            (count,) = self._take(e + "I")
            parts = [self.geometry(depth + 1) for _ in range(int(count))]
            if kind == 7:
                return 7, "(" + ",".join(_NAMES[k] + body for k, body in parts) + ")" if parts else " EMPTY"
            if any(k != kind - 3 for k, _ in parts):
                raise BinlogError(f"a spatial {_NAMES[int(kind)]} holds a part of another type")
            return int(kind), "(" + ",".join(body[1:-1] if kind == 4 else body for _, body in parts) + ")"
        raise BinlogError(f"a spatial value has the WKB type {kind}, which is not an OGC geometry binhub knows")

    def _point(self, e: str) -> str:
        x, y = self._take(e + "dd")
        return f"{format_coordinate(float(x))} {format_coordinate(float(y))}"

    def _points(self, e: str) -> str:
        (count,) = self._take(e + "I")
        return ",".join(self._point(e) for _ in range(int(count)))

    def _rings(self, e: str) -> str:
        (count,) = self._take(e + "I")
        return ",".join(f"({self._points(e)})" for _ in range(int(count)))


def wkt(wkb: bytes) -> str:
    """The WKT of an OGC WKB value (without the binlog's SRID prefix)."""
    reader = _Reader(wkb)
    kind, body = reader.geometry()
    if reader.at != len(wkb):
        raise BinlogError(f"a spatial value has {len(wkb) - reader.at} bytes after its WKB")
    return _NAMES[kind] + body
