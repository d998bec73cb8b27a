"""Rows events straight to binhub JSON lines: the fast path of ``binlog show --rows --format json``.

:class:`RowJsonDecoder` follows the same events as :class:`~binhub.binlog.changes.RowChangeDecoder`
but turns each rows event into the bytes of its JSON lines at once. With the C extension
(``binhub._speedups._rows``) the values go from the row image to JSON text without Python objects
in between, from a plan compiled once per table layout; the pure path builds RowChange objects
and serialises them (:func:`~binhub.binlog.json_form.dumps_change`). Both give the same JSON
values (the tests parse and compare them). Columns the C code does not decode (binary JSON,
VECTOR, charsets other than utf8/latin1/binary, unknown charsets) are handed to a generated
Python decoder per column; events C cannot take (partial JSON updates) and any event it finds
malformed go the pure way, which names the file, offset and row of a problem.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import orjson

from binhub.binlog.changes import EventWalker
from binhub.binlog.coltypes import ColumnType
from binhub.binlog.constants import ROWS_EVENT_TYPES, EventType
from binhub.binlog.events import RowsEvent
from binhub.binlog.json_form import dumps_change, format_commit_time, json_default
from binhub.binlog.row_decoder import ColumnSpec, build_value_decoder
from binhub.binlog.rows import TableDecoder, row_operation
from binhub.binlog.table_map import TableMap

__all__ = ["RowJsonDecoder", "json_plan", "rows_json"]

RowsJson = Callable[[bytes, int, tuple[Any, ...], bytes, bytes, tuple[int, ...] | None, bytes, bytes,
                     list[bytes] | None], bytes]
rows_json: RowsJson | None = None
if os.environ.get("BINHUB_NO_SPEEDUPS", "") in ("", "0"):
    try:
        from binhub._speedups._rows import rows_json
    except ImportError:  # not built: the pure path does the same work
        rows_json = None

# Column kinds of _rows.c (same order as its enum).
(K_NULL, K_INT8, K_UINT8, K_INT16, K_UINT16, K_INT24, K_UINT24, K_INT32, K_UINT32, K_INT64, K_UINT64, K_FLOAT,
 K_DOUBLE, K_DECIMAL, K_DATE, K_TIME2, K_DATETIME2, K_TIMESTAMP2, K_YEAR, K_UTF8, K_LATIN1, K_BINARY,
 K_BINARY_PAD, K_ENUM, K_SET, K_BIT, K_GEOMETRY, K_FALLBACK) = range(28)

_INTS = {ColumnType.TINY: K_INT8, ColumnType.SHORT: K_INT16, ColumnType.INT24: K_INT24, ColumnType.LONG: K_INT32,
         ColumnType.LONGLONG: K_INT64}
_TEMPORAL = {ColumnType.TIME2: K_TIME2, ColumnType.DATETIME2: K_DATETIME2, ColumnType.TIMESTAMP2: K_TIMESTAMP2}
_STRINGS = {ColumnType.VARCHAR, ColumnType.VAR_STRING, ColumnType.STRING, ColumnType.BLOB, ColumnType.TINY_BLOB,
            ColumnType.MEDIUM_BLOB, ColumnType.LONG_BLOB}
_UTF8 = {"utf8mb4", "utf8mb3", "utf8"}
_OPS = {"insert": 0, "update": 1, "delete": 2}
_PARTIAL_UPDATE_ROWS = int(EventType.PARTIAL_UPDATE_ROWS)  # an int: compared for every rows event
_OP_OF = {int(code): row_operation(code) for code in ROWS_EVENT_TYPES}  # row_operation, in one lookup


def _fallback(spec: ColumnSpec, label: str) -> tuple[int, int, Any]:
    decode = build_value_decoder(spec, label)

    def value_json(rows: bytes, pos: int) -> tuple[bytes, int]:
        value, end = decode(rows, pos)
        return orjson.dumps(value, default=json_default, option=orjson.OPT_PASSTHROUGH_DATACLASS), end
    return K_FALLBACK, 0, value_json


def _column(spec: ColumnSpec, label: str) -> tuple[int, int, Any]:
    """(kind, meta, extra) of one column for _rows.c."""
    t, info = spec.type, spec.info
    if t in _INTS:
        return _INTS[ColumnType(t)] + int(info.unsigned), 0, None
    if t in _TEMPORAL and spec.meta <= 6:
        return _TEMPORAL[ColumnType(t)], spec.meta, None
    simple = {ColumnType.FLOAT: K_FLOAT, ColumnType.DOUBLE: K_DOUBLE, ColumnType.DATE: K_DATE,
              ColumnType.NEWDATE: K_DATE, ColumnType.YEAR: K_YEAR, ColumnType.NULL: K_NULL}
    if t in simple:
        return simple[ColumnType(t)], 0, None
    if t == ColumnType.NEWDECIMAL and 0 < spec.meta >> 8 <= 65 and spec.meta & 0xFF <= min(30, spec.meta >> 8):
        return K_DECIMAL, spec.meta, None
    if t in _STRINGS and not (info.sql_type or "").lower().startswith("vector"):
        blob = t not in (ColumnType.VARCHAR, ColumnType.VAR_STRING, ColumnType.STRING)
        width = spec.meta if blob else (1 if spec.meta < 256 else 2)
        if blob and not 1 <= width <= 4:
            return _fallback(spec, label)
        if info.charset in _UTF8:
            return K_UTF8, width, orjson.dumps(info.charset)
        if info.charset == "latin1":
            return K_LATIN1, width, None
        if info.charset == "binary":
            if t == ColumnType.STRING:
                return K_BINARY_PAD, width, spec.meta
            return K_BINARY, width, None
    if t == ColumnType.ENUM and spec.meta & 0xFF in (1, 2):
        labels = info.enum_values
        return K_ENUM, spec.meta & 0xFF, None if labels is None else tuple(orjson.dumps(x) for x in ("", *labels))
    if t == ColumnType.SET and 1 <= spec.meta & 0xFF <= 8:
        labels = info.set_values
        return K_SET, spec.meta & 0xFF, None if labels is None else tuple(orjson.dumps(x)[1:-1] for x in labels)
    if t == ColumnType.BIT:
        nbytes = ((spec.meta >> 8) * 8 + (spec.meta & 0xFF) + 7) // 8
        if nbytes <= 8:
            return K_BIT, nbytes, None
    if t == ColumnType.GEOMETRY and 1 <= spec.meta <= 4:
        return K_GEOMETRY, spec.meta, None
    return _fallback(spec, label)


def json_plan(decoder: TableDecoder) -> tuple[Any, ...]:
    """The _rows.c plan of a table layout: (kind, meta, b'"name":', extra) per column, made once."""
    if decoder.json_plan is None:
        label = decoder.table_map.qualified_name
        decoder.json_plan = tuple(_plan_entry(spec, label) for spec in decoder.specs)
    return decoder.json_plan


def _plan_entry(spec: ColumnSpec, label: str) -> tuple[int, int, bytes, Any]:
    kind, meta, extra = _column(spec, label)
    return kind, meta, orjson.dumps(spec.name) + b":", extra


class RowJsonDecoder(EventWalker[bytes]):
    """Turns raw events (fed in order) into binhub JSON lines, one ``bytes`` per rows event.

    With ``keys`` a list, each line's ``"pk"`` JSON text is appended to it as well (what a keyed
    sink such as Kafka uses as the message key), in line order."""

    def __init__(self, file: str, *, keys: list[bytes] | None = None, **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self._file_json = orjson.dumps(file)
        self._gtid_of_json: str | None = None
        self._gtid_json = b"null"
        # The line's tail up to "pos" and its "ts" text, made again only when the GTID (the
        # transaction) or the commit time changes: not for each of its rows events.
        self._tail_head = b',"gtid":null,"file":%s,"pos":' % self._file_json
        self._ts_of = -1
        self._ts_json = b""
        self.keys = keys
        self.table_map: TableMap | None = None  # the table of the last rows event

    def _rows(self, event: RowsEvent, offset: int) -> tuple[bytes]:
        decoder = self._table_for(event, offset)
        self.table_map = decoder.table_map
        code = event.header.type_code
        if rows_json is None or code == _PARTIAL_UPDATE_ROWS:
            return (self._pure(decoder, event, offset),)
        op = _OP_OF.get(code) or row_operation(code)
        before_bits, after_bits, rows = decoder.split(event, file=self.file, offset=offset)
        head = decoder.json_heads.get(op)
        if head is None:
            table_map = decoder.table_map
            head = b'{"op":"%s","db":%s,"table":%s,' % (op.encode(), orjson.dumps(table_map.db),
                                                         orjson.dumps(table_map.table))
            decoder.json_heads[op] = head
        complete = decoder.has_every_column(before_bits) and decoder.has_every_column(after_bits)
        gtid = self.gtid
        if gtid is not self._gtid_of_json:  # a new transaction's: its rows events share the text
            self._gtid_of_json, self._gtid_json = gtid, orjson.dumps(gtid)
            self._tail_head = b',"gtid":%s,"file":%s,"pos":' % (self._gtid_json, self._file_json)
        commit_us = self.commit_us(event)
        if commit_us != self._ts_of:
            self._ts_of, self._ts_json = commit_us, format_commit_time(commit_us).encode()
        tail = b'%s%d,"ts":"%s"%s%s}\n' % (
            self._tail_head, offset, self._ts_json,
            b"" if decoder.names_known else b',"positional":true', b"" if complete else b',"partial":true')
        keys = self.keys
        known = len(keys) if keys is not None else 0
        try:
            return (rows_json(rows, _OPS[op], decoder.json_plan or json_plan(decoder), before_bits, after_bits,
                              decoder.primary_key_indexes, head, tail, keys),)
        except ValueError:  # malformed: the pure path names file, offset and row
            if keys is not None:
                del keys[known:]
            return (self._pure(decoder, event, offset),)

    def _pure(self, decoder: TableDecoder, event: RowsEvent, offset: int) -> bytes:
        changes = list(self.row_changes(decoder, event, offset))
        if self.keys is not None:
            self.keys.extend(orjson.dumps(change.pk(), default=json_default) for change in changes)
        return b"".join(dumps_change(change) + b"\n" for change in changes)
