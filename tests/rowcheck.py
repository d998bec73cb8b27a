"""An independent oracle for decoded rows: the ``### @N=value`` lines that ``mysqlbinlog -v`` /
``mariadb-binlog -v`` print, and a formatter that writes binhub's decoded values the way those
tools print them (``log_event_print_value``), so the two can be compared column by column.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from binhub.binlog.changes import RowChangeDecoder
from binhub.binlog.charsets import codec_name
from binhub.binlog.coltypes import ColumnType
from binhub.binlog.column_values import Geometry, UndecodedText
from binhub.binlog.file import BinlogFileReader
from binhub.binlog.row_decoder import ColumnSpec
from binhub.binlog.rows import TableDecoder

_VERBS = {b"INSERT INTO": "insert", b"UPDATE": "update", b"DELETE FROM": "delete"}
_HEAD = re.compile(rb"^### (INSERT INTO|UPDATE|DELETE FROM) `((?:[^`]|``)*)`\.`((?:[^`]|``)*)`")
_VALUE = re.compile(rb"^###   @(\d+)=(.*)$")
_COMMENT = re.compile(rb" /\* [^\n]* \*/$")


@dataclass
class PrintedRow:
    op: str
    db: str
    table: str
    before: dict[int, bytes] = field(default_factory=dict)
    after: dict[int, bytes] = field(default_factory=dict)


def unquote(printed: bytes) -> bytes:
    """The bytes my_b_write_quoted printed: control bytes came out as \\xNN, the rest as they are."""
    body = printed[1:-1]
    return re.sub(rb"\\x([0-9a-f]{2})", lambda m: bytes.fromhex(m[1].decode()), body)


def parse_verbose(output: bytes) -> list[PrintedRow]:
    rows: list[PrintedRow] = []
    target: dict[int, bytes] | None = None
    for line in output.split(b"\n"):
        m = _HEAD.match(line)
        if m:
            rows.append(PrintedRow(_VERBS[m[1]], m[2].decode(), m[3].decode()))
            target = None
            continue
        if line == b"### WHERE":
            target = rows[-1].before
        elif line.startswith(b"### SET"):
            target = rows[-1].after
        else:
            v = _VALUE.match(line)
            if v and target is not None:
                target[int(v[1])] = _COMMENT.sub(b"", v[2].rstrip(b"\r")).rstrip(b" ")
    return rows


def run_mariadb_binlog(path: Path) -> bytes:
    return subprocess.run(["mariadb-binlog", "--base64-output=decode-rows", "-v", str(path)],
                          capture_output=True, check=True, timeout=120).stdout


def _quoted(data: bytes) -> bytes:
    out = bytearray(b"'")
    for byte in data:
        out += bytes((byte,)) if byte > 0x1F else b"\\x%02x" % byte
    return bytes(out + b"'")


def _text_bytes(value: Any, spec: ColumnSpec) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, UndecodedText):
        return value.data
    charset = spec.info.charset or "utf8mb4"
    if charset == "latin1":
        from binhub.binlog.charsets import _LATIN1_TABLE
        reverse = {v: k for k, v in _LATIN1_TABLE.items()}
        return bytes(reverse.get(ord(c), ord(c)) for c in value)
    return str(value).encode(codec_name(charset) or "utf-8")


def printed_form(value: Any, spec: ColumnSpec) -> bytes:
    """``value`` (binhub form) as log_event_print_value prints it for this column."""
    if value is None:
        return b"NULL"
    t = spec.type
    bits = {ColumnType.TINY: 8, ColumnType.SHORT: 16, ColumnType.INT24: 24, ColumnType.LONG: 32,
            ColumnType.LONGLONG: 64}.get(t)
    if bits is not None:
        signed = value - (1 << bits) if value >= 1 << (bits - 1) else value
        return (b"%d (%d)" % (signed, signed + (1 << bits))) if signed < 0 else b"%d" % signed
    if t == ColumnType.FLOAT:
        return b"%g" % value
    if t == ColumnType.DOUBLE:
        return b"%.20g" % value
    if t == ColumnType.NEWDECIMAL:
        return value.encode()
    if t == ColumnType.BIT:
        nbits = (spec.meta >> 8) * 8 + (spec.meta & 0xFF)
        return b"b'" + format(value, f"0{nbits}b").encode() + b"'"
    if t == ColumnType.YEAR:
        return b"%04d" % (value if value else 1900)
    if t in (ColumnType.DATE, ColumnType.NEWDATE):
        return b"'" + value.replace("-", ":").encode() + b"'"
    if t in (ColumnType.DATETIME, ColumnType.DATETIME2, ColumnType.TIME, ColumnType.TIME2):
        return b"'" + value.encode() + b"'"
    if t in (ColumnType.TIMESTAMP, ColumnType.TIMESTAMP2):
        whole, _, frac = value.partition(".")
        seconds = 0 if whole.startswith("0000") else int(
            datetime.strptime(whole, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp())
        return b"%d" % seconds + (b"." + frac.encode() if frac else b"")
    if t == ColumnType.ENUM:
        labels = spec.info.enum_values
        index = value if isinstance(value, int) else (0 if value == "" else list(labels or ()).index(value) + 1)
        return b"%d" % index
    if t == ColumnType.SET:
        labels = spec.info.set_values
        mask = value if isinstance(value, int) else sum(
            1 << list(labels or ()).index(x) for x in value.split(",") if x)
        return b"b'" + format(mask, f"0{(spec.meta & 0xFF) * 8}b").encode() + b"'"
    if t == ColumnType.GEOMETRY:
        assert isinstance(value, Geometry)
        return _quoted(value.srid.to_bytes(4, "little") + value.wkb)
    if t in (ColumnType.VARCHAR_COMPRESSED, ColumnType.BLOB_COMPRESSED):
        return b"COMPRESSED:" + _text_bytes(value, spec)  # compare_compressed() inflates theirs
    if t == ColumnType.STRING and isinstance(value, bytes):
        return _quoted(value.rstrip(b"\0"))  # the binlog holds BINARY(n) without its zero padding
    if isinstance(value, list):  # MariaDB VECTOR: a VARBINARY of float32s
        import struct
        return _quoted(struct.pack(f"<{len(value)}f", *value))
    return _quoted(_text_bytes(value, spec))


def decoded_rows(path: Path, schemas: Any = None) -> list[tuple[str, str, str, dict[int, bytes], dict[int, bytes]]]:
    """binhub's rows of a file, each value formatted as mysqlbinlog prints it, keyed by 1-based column."""
    out = []
    with path.open("rb") as f:
        reader = BinlogFileReader(f, path.name)
        decoder = RowChangeDecoder(path.name, schemas=schemas)
        for event in reader:
            for change in decoder.feed(event.data, event.offset, reader.fde):
                table: TableDecoder = next(d for d in decoder._tables.values()
                                           if (d.table_map.db, d.table_map.table) == (change.db, change.table))
                images = []
                for image in (change.before, change.after):
                    formatted: dict[int, bytes] = {}
                    for name, value in (image or {}).items():
                        spec = table.specs[table.names.index(name)]
                        formatted[spec.index + 1] = printed_form(value, spec)
                    images.append(formatted)
                out.append((change.op, change.db, change.table, images[0], images[1]))
    return out


def printed_rows(rows: list[PrintedRow]) -> list[tuple[str, str, str, dict[int, bytes], dict[int, bytes]]]:
    return [(r.op, r.db, r.table, r.before, r.after) for r in rows]


def inflate_compressed(theirs: dict[int, bytes], ours: dict[int, bytes]) -> dict[int, bytes]:
    """``theirs`` with the MariaDB COMPRESSED columns (which mariadb-binlog prints as stored, i.e.
    compressed) inflated into the form printed_form gives binhub's values."""
    from binhub.binlog.column_values import mariadb_column_uncompress

    out = dict(theirs)
    for index, value in ours.items():
        if value.startswith(b"COMPRESSED:") and out.get(index, b"NULL") != b"NULL":
            out[index] = b"COMPRESSED:" + mariadb_column_uncompress(unquote(out[index]))
    return out
