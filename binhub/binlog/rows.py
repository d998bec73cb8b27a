"""WRITE/UPDATE/DELETE_ROWS events (v1, v2, MariaDB's compressed ones, MySQL's PARTIAL_UPDATE_ROWS)
decoded into row images, with the table they belong to.

A rows event body (after table id, flags and, in v2, the extra data) is: the column count
(lenenc), the columns-present bitmap of the before image (or the only image), for updates a second
bitmap for the after image, then the rows. With ``binlog_row_image`` FULL every bit is set;
MINIMAL and NOBLOB leave columns out, and then the images hold only what the event carries.
MariaDB's compressed types zlib-compress the rows (not the count or bitmaps) with
``binlog_buf_compress``. A PARTIAL_UPDATE_ROWS after image starts with ``value_options``
(lenenc) and, when PARTIAL_JSON is set, a bitmap with one bit per JSON column of the table:
those columns carry diffs against the before image, which binhub applies.

:class:`TableDecoder` is built once per TABLE_MAP layout and column descriptions and cached; its
image decoders are compiled per columns-present bitmap (see :mod:`binhub.binlog.row_decoder`).
"""

from __future__ import annotations

import struct
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from binhub.binlog.buffer import ByteReader
from binhub.binlog.coltypes import ColumnType
from binhub.binlog.columns import TableSchema
from binhub.binlog.constants import EventType
from binhub.binlog.decode import mariadb_uncompress
from binhub.binlog.events import RowsEvent
from binhub.binlog.json_binary import apply_json_diffs
from binhub.binlog.row_decoder import ColumnSpec, ImageDecoder, PartialJson, build_image_decoder
from binhub.binlog.table_map import TableMap
from binhub.errors import BinlogError, InvalidEvent, SchemaMismatch, TruncatedEvent

__all__ = ["RowImages", "TableDecoder", "row_operation", "table_decoder"]

_INSERT = frozenset({EventType.PRE_GA_WRITE_ROWS, EventType.WRITE_ROWS_V1, EventType.WRITE_ROWS_V2,
                     EventType.MARIA_WRITE_ROWS_COMPRESSED_V1, EventType.MARIA_WRITE_ROWS_COMPRESSED})
_UPDATE = frozenset({EventType.PRE_GA_UPDATE_ROWS, EventType.UPDATE_ROWS_V1, EventType.UPDATE_ROWS_V2,
                     EventType.PARTIAL_UPDATE_ROWS, EventType.MARIA_UPDATE_ROWS_COMPRESSED_V1,
                     EventType.MARIA_UPDATE_ROWS_COMPRESSED})
_DELETE = frozenset({EventType.PRE_GA_DELETE_ROWS, EventType.DELETE_ROWS_V1, EventType.DELETE_ROWS_V2,
                     EventType.MARIA_DELETE_ROWS_COMPRESSED_V1, EventType.MARIA_DELETE_ROWS_COMPRESSED})
_COMPRESSED = frozenset({EventType.MARIA_WRITE_ROWS_COMPRESSED_V1, EventType.MARIA_UPDATE_ROWS_COMPRESSED_V1,
                         EventType.MARIA_DELETE_ROWS_COMPRESSED_V1, EventType.MARIA_WRITE_ROWS_COMPRESSED,
                         EventType.MARIA_UPDATE_ROWS_COMPRESSED, EventType.MARIA_DELETE_ROWS_COMPRESSED})
_PARTIAL_JSON_UPDATES = 1


def row_operation(type_code: int) -> str:
    """``insert``, ``update`` or ``delete`` for a rows event type."""
    if type_code in _INSERT:
        return "insert"
    if type_code in _UPDATE:
        return "update"
    if type_code in _DELETE:
        return "delete"
    raise InvalidEvent(f"event type {type_code} is not a rows event")


@dataclass(frozen=True, slots=True)
class RowImages:
    """One row change of an event: the images as dicts (None where the operation has none)."""

    before: dict[str, Any] | None
    after: dict[str, Any] | None


class TableDecoder:
    """Decodes the rows events that follow one TABLE_MAP (plus the table's schema, if known)."""

    def __init__(self, table_map: TableMap, schema: TableSchema | None = None) -> None:
        if schema is not None and len(schema.columns) != table_map.column_count:
            raise SchemaMismatch(
                f"the TABLE_MAP of {table_map.qualified_name} has {table_map.shape()}, but the schema "
                f"history has {len(schema.columns)} columns ({', '.join(schema.column_names())}) for it: "
                f"binhub will not guess which values belong to which column",
                hint="the schema history missed a DDL; rebuild it, or seed it from the primary's "
                     "information_schema at this position")
        self.table_map = table_map
        self.schema = schema
        self.columns = table_map.columns(schema if schema is not None and schema.known else None)
        self.names = tuple(c.name if c.name is not None else f"@{i}" for i, c in enumerate(self.columns, 1))
        self.names_known = all(c.name is not None for c in self.columns)
        pk = table_map.primary_key(schema if schema is not None and schema.known else None)
        self.primary_key_indexes = pk
        self.primary_key: tuple[str, ...] | None = None if pk is None else tuple(self.names[i] for i in pk)
        self.specs = [ColumnSpec(i, self.names[i], t, m, self.columns[i])
                      for i, (t, m) in enumerate(zip(table_map.types, table_map.metas, strict=True))]
        self.json_columns = sum(1 for t in table_map.types if t == ColumnType.JSON)
        self._label = table_map.qualified_name
        self.json_plan: tuple[Any, ...] | None = None  # binhub.binlog.row_json's, built on first use
        self.json_heads: dict[str, bytes] = {}  # the same module's line starts, per operation
        self.format_plans: dict[str, Any] = {}  # a stream output format's per-layout plan, by format name
        self._complete: dict[bytes, bool] = {}
        self._images: dict[bytes, tuple[ImageDecoder, list[int]]] = {}
        self._all_present = b"\xff" * ((table_map.column_count + 7) // 8)
        # Compile the FULL-image decoder now, so a column binhub cannot decode fails at the TABLE_MAP.
        self._image(self._all_present)

    def _image(self, bitmap: bytes) -> tuple[ImageDecoder, list[int]]:
        found = self._images.get(bitmap)
        if found is None:
            n = self.table_map.column_count
            present = [i for i in range(n) if bitmap[i >> 3] >> (i & 7) & 1]
            found = (build_image_decoder(self.specs, present, self._label), present)
            self._images[bitmap] = found
        return found

    def decode(self, event: RowsEvent, *, file: str | None = None, offset: int | None = None) -> list[RowImages]:
        """Every row change of ``event`` (which must follow this decoder's TABLE_MAP)."""
        code = event.header.type_code
        op = row_operation(code)
        before_bits, after_bits, rows = self.split(event, file=file, offset=offset)
        first, _ = self._image(before_bits)
        second, _ = self._image(after_bits)
        partial = code == EventType.PARTIAL_UPDATE_ROWS
        out: list[RowImages] = []
        p = 0
        end = len(rows)
        try:
            while p < end:
                image, p = first(rows, p, 0)
                after = None
                if op == "update":
                    pb = 0
                    if partial:
                        pb, p = self._value_options(rows, p)
                    after, p = second(rows, p, pb)
                    if pb:
                        _apply_partial(after, image)
                if p > end:  # a slice ran past the end without an exception
                    raise IndexError
                if op == "update":
                    out.append(RowImages(image, after))
                elif op == "insert":
                    out.append(RowImages(None, image))
                else:
                    out.append(RowImages(image, None))
        except (IndexError, struct.error):
            raise TruncatedEvent(f"{event.header.type_name} for {self._label} ends inside row {len(out) + 1}: "
                                 f"the row image needs more bytes than the event holds",
                                 file=file, offset=offset,
                                 hint="the event is corrupt or was cut short; `binhub binlog verify` checks CRCs") from None
        except InvalidEvent as exc:
            raise InvalidEvent(f"{self._label} row {len(out) + 1}: {exc.message}", file=file, offset=offset) from None
        except (zlib.error, ValueError) as exc:  # a MariaDB COMPRESSED column that does not inflate
            raise InvalidEvent(f"{self._label} row {len(out) + 1}: a value cannot be decoded: {exc}",
                               file=file, offset=offset) from None
        return out

    def has_every_column(self, bitmap: bytes) -> bool:
        """Whether a columns-present bitmap names every column (a FULL image)."""
        found = self._complete.get(bitmap)
        if found is None:
            found = len(bitmap) * 8 >= self.table_map.column_count and all(
                bitmap[i >> 3] >> (i & 7) & 1 for i in range(self.table_map.column_count))
            self._complete[bitmap] = found
        return found

    def split(self, event: RowsEvent, *, file: str | None = None, offset: int | None = None,
              ) -> tuple[bytes, bytes, bytes]:
        """(before-image bitmap, after-image bitmap, rows) of an event; the rows uncompressed.
        Events with one image have the same bitmap twice."""
        code = event.header.type_code
        width = (self.table_map.column_count + 7) // 8
        body = event.body
        if event.column_count == self.table_map.column_count and code not in _COMPRESSED and len(body) >= 2 * width:
            # the common case, read in place
            if code in _UPDATE:
                return body[:width], body[width:2 * width], body[2 * width:]
            return body[:width], body[:width], body[width:]
        r = ByteReader(event.body, what=f"{event.header.type_name} for {self._label}")
        try:
            ncols = event.column_count if event.column_count is not None else r.lenenc()
            if ncols != self.table_map.column_count:
                raise InvalidEvent(f"{event.header.type_name} for {self._label} has {ncols} columns, its "
                                   f"TABLE_MAP {self.table_map.column_count}")
            width = (ncols + 7) // 8
            before_bits = r.take(width)
            after_bits = r.take(width) if event.header.type_code in _UPDATE else before_bits
            rows = r.rest()
            if event.header.type_code in _COMPRESSED:
                rows = mariadb_uncompress(rows)
        except BinlogError as exc:
            raise type(exc)(exc.message, file=file, offset=offset, hint=exc.hint) from None
        return before_bits, after_bits, rows

    def _value_options(self, rows: bytes, p: int) -> tuple[int, int]:
        r = ByteReader(rows, p, what="PARTIAL_UPDATE_ROWS value options")
        options = r.lenenc()
        pb = 0
        if options & _PARTIAL_JSON_UPDATES:
            nbytes = (self.json_columns + 7) // 8
            pb = int.from_bytes(r.take(nbytes), "little")
        return pb, r.pos


def _apply_partial(after: dict[str, Any], before: dict[str, Any]) -> None:
    """Replace the diffs of a partial after image by the documents they produce."""
    for name, value in after.items():
        if isinstance(value, PartialJson):
            document = before.get(name)
            if document is not None:
                after[name] = apply_json_diffs(document, value.diffs)
            # Without the document (a MINIMAL before image) the diffs are all there is: they stay,
            # and the change is flagged as incomplete.


_CACHE: OrderedDict[tuple[bytes, TableSchema | None], TableDecoder] = OrderedDict()
_CACHE_SIZE = 4096
# The same layout with the same TableSchema *object*: every TABLE_MAP of a table between two DDLs
# (the schema history hands out one object per table and history entry). Keyed by identity, so a
# small transaction does not hash a wide table's columns again; the entry holds the schema, which
# keeps its id from being reused while the entry lives.
_BY_IDENTITY: dict[tuple[bytes, int], tuple[TableSchema | None, TableDecoder]] = {}


def table_decoder(table_map: TableMap, schema: TableSchema | None = None) -> TableDecoder:
    """The decoder of a TABLE_MAP layout with these column descriptions, compiled once and cached."""
    quick = (table_map.signature, id(schema))
    seen = _BY_IDENTITY.get(quick)
    if seen is not None and seen[0] is schema:
        return seen[1]
    key = (table_map.signature, schema)
    found = _CACHE.get(key)
    if found is not None:
        _CACHE.move_to_end(key)
    else:
        found = TableDecoder(table_map, schema)
        _CACHE[key] = found
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    if len(_BY_IDENTITY) >= _CACHE_SIZE:
        _BY_IDENTITY.clear()
    _BY_IDENTITY[quick] = (schema, found)
    return found

