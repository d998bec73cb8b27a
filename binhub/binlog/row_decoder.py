"""Row-image decoders compiled per table layout.

A row image is a NULL bitmap over the columns present in the image, then each non-NULL value in
its column's binary form. Instead of looping over the columns and dispatching on the type for
every value, binhub generates one straight-line Python function per (TABLE_MAP layout, column
descriptions, columns-present bitmap), with the type dispatch, sizes, charsets and labels folded
in at generation time and ``struct`` formats precompiled; the function is cached, so a table costs
one compilation however many events it has.

The generated function is ``decode(b, p, pb) -> (row, p)``: ``b`` the rows buffer, ``p`` where the
image starts, ``pb`` the partial-JSON bitmap of a PARTIAL_UPDATE_ROWS after image (0 otherwise).
``row`` is a dict from column name (``@N`` where unknown) to the value in binhub form
(:mod:`binhub.binlog.column_values`). Running off the buffer raises IndexError/struct.error or
leaves ``p`` past the end; the caller turns either into a TruncatedEvent with file and offset.

The per-type snippets live in ``_SNIPPETS``, the registry keyed by type code.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from binhub.binlog import column_values as cv
from binhub.binlog.charsets import _LATIN1_TABLE, codec_name
from binhub.binlog.coltypes import ColumnType
from binhub.binlog.columns import ColumnInfo
from binhub.binlog.json_binary import parse_json_binary, parse_json_diffs
from binhub.errors import UnsupportedValue

__all__ = ["ColumnSpec", "ImageDecoder", "PartialJson", "ValueDecoder", "build_image_decoder", "build_value_decoder"]

ImageDecoder = Callable[[bytes, int, int], tuple[dict[str, Any], int]]


class PartialJson:
    """A JSON column of a PARTIAL_UPDATE_ROWS after image that carries diffs, not the document."""

    __slots__ = ("diffs",)

    def __init__(self, diffs: list[Any]) -> None:
        self.diffs = diffs


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """Everything the generator needs about one column."""

    index: int
    name: str
    type: int
    meta: int
    info: ColumnInfo

    def describe(self) -> str:
        try:
            kind = ColumnType(self.type).name
        except ValueError:
            kind = f"type {self.type}"
        return f"column {self.name} ({kind}, meta {self.meta})"


_NAMESPACE: dict[str, Any] = {
    "U16": struct.Struct("<H").unpack_from, "I16": struct.Struct("<h").unpack_from,
    "U32": struct.Struct("<I").unpack_from, "I32": struct.Struct("<i").unpack_from,
    "U64": struct.Struct("<Q").unpack_from, "I64": struct.Struct("<q").unpack_from,
    "F32": struct.Struct("<f").unpack_from, "F64": struct.Struct("<d").unpack_from,
    "float32": cv.float32, "newdecimal": cv.newdecimal, "time2": cv.time2, "datetime2": cv.datetime2,
    "timestamp2": cv.timestamp2, "old_timestamp": cv.old_timestamp, "date3": cv.date3,
    "old_time": cv.old_time, "old_datetime": cv.old_datetime, "vector": cv.vector, "Geometry": cv.Geometry,
    "UndecodedText": cv.UndecodedText, "parse_json_binary": parse_json_binary,
    "parse_json_diffs": parse_json_diffs, "PartialJson": PartialJson, "L1": _LATIN1_TABLE,
    "from_bytes": int.from_bytes, "mariadb_column_uncompress": cv.mariadb_column_uncompress,
}

Snippet = Callable[[ColumnSpec, str, "_Context"], list[str]]
_SNIPPETS: dict[int, Snippet] = {}


class _Context:
    """Per-decoder state the snippets share: constants they hoist into the namespace."""

    def __init__(self) -> None:
        self.constants: dict[str, Any] = {}
        self.json_index = 0  # position of the next JSON column in the partial-JSON bitmap

    def constant(self, value: Any) -> str:
        name = f"K{len(self.constants)}"
        self.constants[name] = value
        return name


def _snippet(*types: int) -> Callable[[Snippet], Snippet]:
    def register(fn: Snippet) -> Snippet:
        for t in types:
            _SNIPPETS[t] = fn
        return fn
    return register


def _length_prefix(width: int) -> str:
    """Expression reading a little-endian length of ``width`` bytes at p."""
    if width == 1:
        return "b[p]"
    if width == 2:
        return "U16(b, p)[0]"
    if width == 4:
        return "U32(b, p)[0]"
    return f"from_bytes(b[p:p + {width}], 'little')"


def _bytes_with_length(width: int, v: str) -> list[str]:
    return [f"n = {_length_prefix(width)}", f"p += {width}", f"{v} = b[p:p + n]", "p += n"]


def _text(spec: ColumnSpec, v: str, ctx: _Context) -> list[str]:
    """Turn the bytes in ``v`` into text per the column's charset (or keep them: binary, unknown)."""
    info = spec.info
    if info.sql_type is not None and info.sql_type.lower().startswith("vector"):
        return [f"{v} = vector({v})"]  # MariaDB 11.7 VECTOR: a VARBINARY of float32s
    charset = info.charset
    if charset == "binary":
        return []
    if charset is None:
        return [f"{v} = UndecodedText({v}, None)"]
    if charset == "latin1":
        return [f"{v} = {v}.decode('latin-1').translate(L1)"]
    codec = codec_name(charset)
    if codec is None:
        raise UnsupportedValue(f"{spec.describe()} uses the {charset} charset, which binhub cannot decode",
                               hint="convert the column to utf8mb4, or report the charset as missing")
    cs = ctx.constant(charset)
    return ["try:", f"    {v} = {v}.decode({codec!r})", "except UnicodeDecodeError:",
            f"    {v} = UndecodedText({v}, {cs})"]


@_snippet(ColumnType.TINY)
def _tiny(spec: ColumnSpec, v: str, ctx: _Context) -> list[str]:
    if spec.info.unsigned:
        return [f"{v} = b[p]", "p += 1"]
    return [f"{v} = b[p]", f"if {v} > 127: {v} -= 256", "p += 1"]


_FIXED_INTS = {ColumnType.SHORT: ("I16", "U16", 2), ColumnType.LONG: ("I32", "U32", 4),
               ColumnType.LONGLONG: ("I64", "U64", 8)}


@_snippet(*_FIXED_INTS)
def _fixed_int(spec: ColumnSpec, v: str, ctx: _Context) -> list[str]:
    signed, unsigned, size = _FIXED_INTS[ColumnType(spec.type)]
    return [f"{v} = {unsigned if spec.info.unsigned else signed}(b, p)[0]", f"p += {size}"]


@_snippet(ColumnType.INT24)
def _int24(spec: ColumnSpec, v: str, ctx: _Context) -> list[str]:
    lines = [f"{v} = b[p] | b[p + 1] << 8 | b[p + 2] << 16", "p += 3"]
    if not spec.info.unsigned:
        lines.insert(1, f"if {v} & 0x800000: {v} -= 0x1000000")
    return lines


@_snippet(ColumnType.FLOAT)
def _float(spec: ColumnSpec, v: str, ctx: _Context) -> list[str]:
    return [f"{v} = float32(F32(b, p)[0])", "p += 4"]


@_snippet(ColumnType.DOUBLE)
def _double(spec: ColumnSpec, v: str, ctx: _Context) -> list[str]:
    return [f"{v} = F64(b, p)[0]", "p += 8"]


@_snippet(ColumnType.NULL)
def _null(spec: ColumnSpec, v: str, ctx: _Context) -> list[str]:
    return [f"{v} = None"]


@_snippet(ColumnType.NEWDECIMAL)
def _newdecimal(spec: ColumnSpec, v: str, ctx: _Context) -> list[str]:
    precision, scale = spec.meta >> 8, spec.meta & 0xFF
    if not 0 < precision <= 65 or scale > 30 or scale > precision:
        raise UnsupportedValue(f"{spec.describe()}: DECIMAL({precision},{scale}) is not a valid precision/scale")
    return [f"{v} = newdecimal(b, p, {precision}, {scale})", f"p += {cv.decimal_size(precision, scale)}"]


@_snippet(ColumnType.DECIMAL)
def _old_decimal(spec: ColumnSpec, v: str, ctx: _Context) -> list[str]:
    raise UnsupportedValue(f"{spec.describe()} is an old-style DECIMAL (MySQL 4.1 or earlier), whose length "
                           f"the binlog does not carry", hint="ALTER TABLE ... FORCE converts it to the current DECIMAL")


@_snippet(ColumnType.YEAR)
def _year(spec: ColumnSpec, v: str, ctx: _Context) -> list[str]:
    return [f"{v} = b[p]", f"if {v}: {v} += 1900", "p += 1"]


@_snippet(ColumnType.DATE, ColumnType.NEWDATE)
def _date(spec: ColumnSpec, v: str, ctx: _Context) -> list[str]:
    return [f"{v} = date3(b[p] | b[p + 1] << 8 | b[p + 2] << 16)", "p += 3"]


@_snippet(ColumnType.TIME)
def _time(spec: ColumnSpec, v: str, ctx: _Context) -> list[str]:
    return [f"{v} = from_bytes(b[p:p + 3], 'little', signed=True)", f"{v} = old_time({v})", "p += 3"]


@_snippet(ColumnType.DATETIME)
def _datetime(spec: ColumnSpec, v: str, ctx: _Context) -> list[str]:
    return [f"{v} = old_datetime(U64(b, p)[0])", "p += 8"]


@_snippet(ColumnType.TIMESTAMP)
def _timestamp(spec: ColumnSpec, v: str, ctx: _Context) -> list[str]:
    return [f"{v} = old_timestamp(U32(b, p)[0])", "p += 4"]


def _fsp(spec: ColumnSpec) -> int:
    if spec.meta > 6:
        raise UnsupportedValue(f"{spec.describe()}: fractional seconds precision {spec.meta} is above 6")
    return spec.meta


# 5.6 temporal types: (decoder, bytes of the integer part); the fraction adds (fsp + 1) // 2.
_TEMPORAL2 = {ColumnType.TIME2: ("time2", 3), ColumnType.DATETIME2: ("datetime2", 5),
              ColumnType.TIMESTAMP2: ("timestamp2", 4)}


@_snippet(*_TEMPORAL2)
def _temporal2(spec: ColumnSpec, v: str, ctx: _Context) -> list[str]:
    function, int_bytes = _TEMPORAL2[ColumnType(spec.type)]
    fsp = _fsp(spec)
    return [f"{v} = {function}(b, p, {fsp})", f"p += {int_bytes + (fsp + 1) // 2}"]


@_snippet(ColumnType.VARCHAR, ColumnType.VAR_STRING, ColumnType.STRING)
def _varchar(spec: ColumnSpec, v: str, ctx: _Context) -> list[str]:
    lines = _bytes_with_length(1 if spec.meta < 256 else 2, v) + _text(spec, v, ctx)
    if spec.type == ColumnType.STRING and spec.info.charset == "binary":
        # BINARY(n) is stored padded with zero bytes, and the binlog drops the padding (as it
        # drops CHAR's trailing spaces): put it back, so the value is what SELECT returns.
        lines.append(f"{v} = {v}.ljust({spec.meta}, b'\\0')")
    return lines


@_snippet(ColumnType.BLOB, ColumnType.TINY_BLOB, ColumnType.MEDIUM_BLOB, ColumnType.LONG_BLOB)
def _blob(spec: ColumnSpec, v: str, ctx: _Context) -> list[str]:
    if not 1 <= spec.meta <= 4:
        raise UnsupportedValue(f"{spec.describe()}: a BLOB length of {spec.meta} bytes is not 1 to 4")
    return _bytes_with_length(spec.meta, v) + _text(spec, v, ctx)


@_snippet(ColumnType.JSON)
def _json(spec: ColumnSpec, v: str, ctx: _Context) -> list[str]:
    bit = 1 << ctx.json_index
    ctx.json_index += 1
    width = spec.meta if 1 <= spec.meta <= 4 else 4
    return _bytes_with_length(width, v) + [
        f"if pb & {bit}: {v} = PartialJson(parse_json_diffs({v}))",
        f"else: {v} = parse_json_binary({v})",
    ]


@_snippet(ColumnType.GEOMETRY)
def _geometry(spec: ColumnSpec, v: str, ctx: _Context) -> list[str]:
    width = spec.meta if 1 <= spec.meta <= 4 else 4
    return _bytes_with_length(width, v) + [f"{v} = Geometry(U32({v}, 0)[0], {v}[4:]) if len({v}) >= 4 "
                                           f"else Geometry(0, {v})"]


@_snippet(ColumnType.VECTOR)
def _vector(spec: ColumnSpec, v: str, ctx: _Context) -> list[str]:
    width = spec.meta if 1 <= spec.meta <= 4 else 4
    return _bytes_with_length(width, v) + [f"{v} = vector({v})"]


@_snippet(ColumnType.BIT)
def _bit(spec: ColumnSpec, v: str, ctx: _Context) -> list[str]:
    nbytes = ((spec.meta >> 8) * 8 + (spec.meta & 0xFF) + 7) // 8
    return [f"{v} = from_bytes(b[p:p + {nbytes}], 'big')", f"p += {nbytes}"]


@_snippet(ColumnType.ENUM)
def _enum(spec: ColumnSpec, v: str, ctx: _Context) -> list[str]:
    width = spec.meta & 0xFF
    if width not in (1, 2):
        raise UnsupportedValue(f"{spec.describe()}: an ENUM of {width} bytes is not 1 or 2")
    lines = [f"{v} = {'b[p]' if width == 1 else 'U16(b, p)[0]'}", f"p += {width}"]
    labels = spec.info.enum_values
    if labels is not None:
        table = ctx.constant(("",) + tuple(labels))
        lines.append(f"{v} = {table}[{v}] if {v} < {len(labels) + 1} else {v}")
    return lines


@_snippet(ColumnType.SET)
def _set(spec: ColumnSpec, v: str, ctx: _Context) -> list[str]:
    width = spec.meta & 0xFF
    if not 1 <= width <= 8:
        raise UnsupportedValue(f"{spec.describe()}: a SET of {width} bytes is not 1 to 8")
    lines = [f"{v} = from_bytes(b[p:p + {width}], 'little')", f"p += {width}"]
    labels = spec.info.set_values
    if labels is not None:
        table = ctx.constant(tuple(labels))
        lines.append(f"{v} = ','.join([x for i, x in enumerate({table}) if {v} >> i & 1])")
    return lines


@_snippet(ColumnType.VARCHAR_COMPRESSED, ColumnType.BLOB_COMPRESSED)
def _compressed(spec: ColumnSpec, v: str, ctx: _Context) -> list[str]:
    """MariaDB's COMPRESSED columns: a VARCHAR/BLOB whose stored bytes are zlib-compressed."""
    if spec.type == ColumnType.VARCHAR_COMPRESSED:
        width = 1 if spec.meta < 256 else 2
    else:
        width = spec.meta if 1 <= spec.meta <= 4 else 4
    return _bytes_with_length(width, v) + [f"{v} = mariadb_column_uncompress({v})"] + _text(spec, v, ctx)


def build_image_decoder(all_columns: list[ColumnSpec], present: list[int], label: str) -> ImageDecoder:
    """The decoder of an image whose columns-present bitmap selects ``present`` (column indexes)."""
    ctx = _Context()
    present_set = set(present)
    null_bytes = (len(present) + 7) // 8
    body: list[str] = [f"nb = from_bytes(b[p:p + {null_bytes}], 'little')" if null_bytes else "nb = 0",
                       f"p += {null_bytes}"]
    names: list[str] = []
    bit = 0
    for spec in all_columns:
        if spec.type == ColumnType.JSON and spec.index not in present_set:
            ctx.json_index += 1  # absent JSON columns still own a partial-JSON bit
            continue
        if spec.index not in present_set:
            continue
        snippet = _SNIPPETS.get(spec.type)
        if snippet is None:
            raise UnsupportedValue(f"{spec.describe()} in {label}: binhub has no decoder for column type "
                                   f"{spec.type}", hint="the file may come from a newer server; report the type")
        v = f"v{spec.index}"
        body.append(f"if nb & {1 << bit}:")
        body.append(f"    {v} = None")
        body.append("else:")
        body.extend("    " + line for line in snippet(spec, v, ctx))
        names.append(f"{spec.name!r}: {v}")
        bit += 1
    body.append("return {" + ", ".join(names) + "}, p")
    source = "def decode(b, p, pb):\n" + "".join(f"    {line}\n" for line in body)
    namespace = dict(_NAMESPACE)
    namespace.update(ctx.constants)
    exec(compile(source, f"<binhub row decoder for {label}>", "exec"), namespace)  # noqa: S102
    decoder: ImageDecoder = namespace["decode"]
    decoder.__doc__ = source  # what was generated, for debugging
    return decoder


ValueDecoder = Callable[[bytes, int], tuple[Any, int]]


def build_value_decoder(spec: ColumnSpec, label: str) -> ValueDecoder:
    """``decode(b, p) -> (value, p)`` for one non-NULL value of ``spec`` (the JSON fast path calls
    it for the columns it leaves to Python)."""
    snippet = _SNIPPETS.get(spec.type)
    if snippet is None:
        raise UnsupportedValue(f"{spec.describe()} in {label}: binhub has no decoder for column type {spec.type}")
    ctx = _Context()
    body = ["pb = 0", *snippet(spec, "v", ctx), "return v, p"]
    source = "def decode(b, p):\n" + "".join(f"    {line}\n" for line in body)
    namespace = dict(_NAMESPACE)
    namespace.update(ctx.constants)
    exec(compile(source, f"<binhub value decoder for {label}.{spec.name}>", "exec"), namespace)  # noqa: S102
    decoder: ValueDecoder = namespace["decode"]
    return decoder
