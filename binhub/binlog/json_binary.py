"""MySQL's binary JSON (``sql-common/json_binary.cc``) and the JSON diffs of PARTIAL_UPDATE_ROWS
events (``sql/json_diff.cc``), decoded into Python values.

A document is a type byte and a value. Objects and arrays come in a small form (2-byte counts,
sizes and offsets) and a large one (4-byte); their entries hold small scalars inline and point
(relative to the start of the container) at everything else. Strings carry a variable-length
length, 7 bits a byte. Opaque values carry a MySQL column type and its bytes: DECIMAL, DATE,
TIME, DATETIME and TIMESTAMP are turned into what MySQL prints for them; any other opaque type
becomes MySQL's own text form ``"base64:typeNN:..."``.

MariaDB has no binary JSON: its JSON columns are LONGTEXT and arrive as text.
"""

from __future__ import annotations

import base64
import decimal
import re
import struct
from typing import Any

from binhub.binlog.column_values import JSON_NULL, decimal_size, newdecimal
from binhub.errors import InvalidEvent

__all__ = ["JsonDiff", "apply_json_diffs", "parse_json_binary", "parse_json_diffs"]

_SMALL_OBJECT, _LARGE_OBJECT, _SMALL_ARRAY, _LARGE_ARRAY = 0, 1, 2, 3
_LITERAL, _INT16, _UINT16, _INT32, _UINT32, _INT64, _UINT64, _DOUBLE, _STRING = 4, 5, 6, 7, 8, 9, 10, 11, 12
_OPAQUE = 15

_I16, _U16 = struct.Struct("<h"), struct.Struct("<H")
_I32, _U32 = struct.Struct("<i"), struct.Struct("<I")
_I64, _U64 = struct.Struct("<q"), struct.Struct("<Q")
_F64 = struct.Struct("<d")


class _Corrupt(Exception):
    pass


def parse_json_binary(data: bytes) -> Any:
    """The value of a binary JSON document (an empty document is JSON ``null``, as the server reads it)."""
    if not data:
        return JSON_NULL
    try:
        return _value(data[0], data, 1, len(data))
    except (_Corrupt, IndexError, struct.error) as exc:
        raise InvalidEvent(f"binary JSON value is corrupt ({exc or 'runs past its end'}): {data[:32].hex()}...") from None


def _value(kind: int, data: bytes, pos: int, end: int) -> Any:
    if kind in (_SMALL_OBJECT, _LARGE_OBJECT):
        return _container(data, pos, end, kind == _LARGE_OBJECT, is_object=True)
    if kind in (_SMALL_ARRAY, _LARGE_ARRAY):
        return _container(data, pos, end, kind == _LARGE_ARRAY, is_object=False)
    if kind == _LITERAL:
        return _literal(data[pos])
    if kind == _INT16:
        return _I16.unpack_from(data, pos)[0]
    if kind == _UINT16:
        return _U16.unpack_from(data, pos)[0]
    if kind == _INT32:
        return _I32.unpack_from(data, pos)[0]
    if kind == _UINT32:
        return _U32.unpack_from(data, pos)[0]
    if kind == _INT64:
        return _I64.unpack_from(data, pos)[0]
    if kind == _UINT64:
        return _U64.unpack_from(data, pos)[0]
    if kind == _DOUBLE:
        return _F64.unpack_from(data, pos)[0]
    if kind == _STRING:
        length, pos = _varlen(data, pos)
        if pos + length > end:
            raise _Corrupt("string runs past the document")
        return data[pos:pos + length].decode("utf-8")
    if kind == _OPAQUE:
        field_type = data[pos]
        length, pos = _varlen(data, pos + 1)
        if pos + length > end:
            raise _Corrupt("opaque value runs past the document")
        return _opaque(field_type, data[pos:pos + length])
    raise _Corrupt(f"unknown JSON value type {kind}")


def _literal(byte: int) -> Any:
    if byte == 0:
        return JSON_NULL
    if byte == 1:
        return True
    if byte == 2:
        return False
    raise _Corrupt(f"unknown JSON literal {byte}")


def _varlen(data: bytes, pos: int) -> tuple[int, int]:
    length = shift = 0
    for _ in range(5):
        byte = data[pos]
        pos += 1
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return length, pos
        shift += 7
    raise _Corrupt("string length has more than 5 bytes")


def _container(data: bytes, start: int, end: int, large: bool, *, is_object: bool) -> Any:
    word = _U32 if large else _U16
    w = word.size
    count = word.unpack_from(data, start)[0]
    size = word.unpack_from(data, start + w)[0]
    if start + size > end:
        raise _Corrupt("container larger than the document")
    limit = start + size
    pos = start + 2 * w
    keys: list[str] = []
    if is_object:
        for _ in range(count):
            key_offset = word.unpack_from(data, pos)[0]
            key_length = _U16.unpack_from(data, pos + w)[0]
            pos += w + 2
            if start + key_offset + key_length > limit:
                raise _Corrupt("object key outside its object")
            keys.append(data[start + key_offset:start + key_offset + key_length].decode("utf-8"))
    values: list[Any] = []
    for _ in range(count):
        kind = data[pos]
        if kind == _LITERAL:
            values.append(_literal(data[pos + 1]))
        elif kind == _INT16:
            values.append(_I16.unpack_from(data, pos + 1)[0])
        elif kind == _UINT16:
            values.append(_U16.unpack_from(data, pos + 1)[0])
        elif large and kind == _INT32:
            values.append(_I32.unpack_from(data, pos + 1)[0])
        elif large and kind == _UINT32:
            values.append(_U32.unpack_from(data, pos + 1)[0])
        else:
            offset = word.unpack_from(data, pos + 1)[0]
            if start + offset >= limit:
                raise _Corrupt("value offset outside its container")
            values.append(_value(kind, data, start + offset, limit))
        pos += 1 + w
    if is_object:
        return dict(zip(keys, values, strict=True))
    return values


# Column types inside opaque values (enum_field_types).
_OPAQUE_NEWDECIMAL, _OPAQUE_DATE, _OPAQUE_TIME, _OPAQUE_DATETIME, _OPAQUE_TIMESTAMP = 246, 10, 11, 12, 7


def _opaque(field_type: int, payload: bytes) -> Any:
    if field_type == _OPAQUE_NEWDECIMAL and len(payload) >= 2:
        precision, scale = payload[0], payload[1]
        if len(payload) - 2 < decimal_size(precision, scale):
            raise _Corrupt("opaque DECIMAL shorter than its precision")
        return decimal.Decimal(newdecimal(payload, 2, precision, scale))
    if field_type in (_OPAQUE_DATE, _OPAQUE_TIME, _OPAQUE_DATETIME, _OPAQUE_TIMESTAMP) and len(payload) >= 8:
        packed = _I64.unpack_from(payload, 0)[0]
        return _packed_temporal(field_type, packed)
    return f"base64:type{field_type}:{base64.b64encode(payload).decode('ascii')}"


def _packed_temporal(field_type: int, packed: int) -> str:
    """A packed longlong (``TIME_to_longlong_*_packed``) as MySQL prints it inside JSON (6 digits)."""
    sign = ""
    if packed < 0:
        sign, packed = "-", -packed
    usec = packed % (1 << 24)
    intpart = packed >> 24
    if field_type == _OPAQUE_TIME:
        hour, minute, second = (intpart >> 12) % (1 << 10), (intpart >> 6) % 64, intpart % 64
        return f"{sign}{hour:02d}:{minute:02d}:{second:02d}.{usec:06d}"
    ymd, hms = intpart >> 17, intpart % (1 << 17)
    ym = ymd >> 5
    date = f"{ym // 13:04d}-{ym % 13:02d}-{ymd % 32:02d}"
    if field_type == _OPAQUE_DATE:
        return date
    return f"{date} {hms >> 12:02d}:{(hms >> 6) % 64:02d}:{hms % 64:02d}.{usec:06d}"


# ---- partial updates -----------------------------------------------------------------------------

class JsonDiff:
    """One operation of a JSON diff vector: REPLACE (0), INSERT (1) or REMOVE (2) at a JSON path."""

    __slots__ = ("operation", "path", "value")
    REPLACE, INSERT, REMOVE = 0, 1, 2

    def __init__(self, operation: int, path: str, value: Any) -> None:
        self.operation = operation
        self.path = path
        self.value = value

    def __repr__(self) -> str:
        return f"JsonDiff({('REPLACE', 'INSERT', 'REMOVE')[self.operation]}, {self.path!r}, {self.value!r})"


def parse_json_diffs(data: bytes) -> list[JsonDiff]:
    """``Json_diff_vector::read_binary`` without its 4-byte length: operation byte, lenenc path
    length, path, then (unless REMOVE) lenenc value length and a binary JSON value."""
    from binhub.binlog.buffer import ByteReader

    r = ByteReader(data, what="JSON diff")
    diffs: list[JsonDiff] = []
    while r.remaining():
        operation = r.u8()
        if operation > JsonDiff.REMOVE:
            raise InvalidEvent(f"JSON diff has unknown operation {operation}")
        path = r.take(r.lenenc()).decode("utf-8")
        value = None if operation == JsonDiff.REMOVE else parse_json_binary(r.take(r.lenenc()))
        diffs.append(JsonDiff(operation, path, value))
    return diffs


_LEG = re.compile(r'\.(?:"((?:[^"\\]|\\.)*)"|([A-Za-z_$][\w$]*))|\[(last(?:\s*-\s*\d+)?|\d+)\]')


def _parse_path(path: str) -> list[str | int | tuple[str, int]]:
    if not path.startswith("$"):
        raise InvalidEvent(f"JSON diff path {path!r} does not start with $")
    legs: list[str | int | tuple[str, int]] = []
    pos = 1
    while pos < len(path):
        m = _LEG.match(path, pos)
        if m is None:
            raise InvalidEvent(f"JSON diff path {path!r} has a leg binhub cannot read at {pos}")
        if m[1] is not None:
            legs.append(re.sub(r"\\(.)", r"\1", m[1]))
        elif m[2] is not None:
            legs.append(m[2])
        elif m[3].startswith("last"):
            minus = re.sub(r"\D", "", m[3])
            legs.append(("last", int(minus) if minus else 0))
        else:
            legs.append(int(m[3]))
        pos = m.end()
    return legs


def _index(leg: str | int | tuple[str, int], array: list[Any]) -> int:
    if isinstance(leg, tuple):
        return len(array) - 1 - leg[1]
    assert isinstance(leg, int)
    return leg


def apply_json_diffs(document: Any, diffs: list[JsonDiff]) -> Any:
    """The document after the diffs, applied in order as ``apply_json_diffs`` does on the replica."""
    import copy

    doc = copy.deepcopy(document)
    for diff in diffs:
        legs = _parse_path(diff.path)
        if not legs:
            raise InvalidEvent("JSON diff replaces, inserts or removes the root, which a diff never does")
        parent = doc
        for leg in legs[:-1]:
            parent = parent[_index(leg, parent)] if isinstance(parent, list) else parent[leg]
        last = legs[-1]
        if isinstance(parent, list):
            i = _index(last, parent)
            if diff.operation == JsonDiff.REPLACE:
                parent[i] = diff.value
            elif diff.operation == JsonDiff.INSERT:
                parent.insert(min(i, len(parent)), diff.value)
            else:
                del parent[i]
        elif isinstance(parent, dict) and isinstance(last, str):
            if diff.operation == JsonDiff.REMOVE:
                parent.pop(last, None)
            else:
                parent[last] = diff.value
        else:
            raise InvalidEvent(f"JSON diff path {diff.path!r} does not fit the before image")
    return doc
