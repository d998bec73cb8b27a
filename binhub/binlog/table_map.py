"""TABLE_MAP events made useful: per-column type, metadata and nullability, plus the optional
metadata a primary writes with ``binlog_row_metadata`` MINIMAL or FULL.

Optional metadata (``Table_map_event::Optional_metadata_field_type`` in MySQL's
``rows_event.h``; MariaDB 10.5+ writes the same fields) is a list of TLVs: a type byte, a
length-encoded length, the value. Bitmaps in it are most-significant-bit first. Per-column lists
(charsets, enum/set labels, geometry types) cover only the columns of their kind, in order.

``TableMap.columns(schema)`` merges what the event says with a :class:`TableSchema` from the
schema history: the event's optional metadata wins where present (it was written with the row).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from binhub.binlog.buffer import ByteReader
from binhub.binlog.charsets import charset_of_collation, text_decoder
from binhub.binlog.coltypes import (
    ColumnType,
    is_character_type,
    is_numeric_type,
    read_column_metadata,
    real_string_type,
)
from binhub.binlog.columns import ColumnInfo, TableSchema
from binhub.binlog.events import TableMapEvent
from binhub.errors import InvalidEvent, UnsupportedValue

__all__ = ["OptionalMetadata", "TableMap", "parse_table_map"]

SIGNEDNESS, DEFAULT_CHARSET, COLUMN_CHARSET, COLUMN_NAME, SET_STR_VALUE, ENUM_STR_VALUE = 1, 2, 3, 4, 5, 6
GEOMETRY_TYPE, SIMPLE_PRIMARY_KEY, PRIMARY_KEY_WITH_PREFIX, ENUM_AND_SET_DEFAULT_CHARSET = 7, 8, 9, 10
ENUM_AND_SET_COLUMN_CHARSET, COLUMN_VISIBILITY, VECTOR_DIMENSIONALITY = 11, 12, 13


@dataclass(frozen=True, slots=True)
class OptionalMetadata:
    """The optional metadata fields of one TABLE_MAP, None where the event lacks the field."""

    unsigned: tuple[bool, ...] | None = None          # per numeric column
    charsets: tuple[int, ...] | None = None           # collation per character column
    enum_set_charsets: tuple[int, ...] | None = None  # collation per ENUM/SET column
    names: tuple[str, ...] | None = None
    # ENUM/SET labels as written: in the column's charset (decoded by ``TableMap.columns``).
    set_values: tuple[tuple[bytes, ...], ...] | None = None
    enum_values: tuple[tuple[bytes, ...], ...] | None = None
    geometry_types: tuple[int, ...] | None = None
    primary_key: tuple[tuple[int, int], ...] | None = None  # (column index, prefix length or 0)
    visibility: tuple[bool, ...] | None = None
    vector_dimensions: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class TableMap:
    table_id: int
    db: str
    table: str
    types: tuple[int, ...]        # real types: STRING columns that are ENUM/SET say so
    metas: tuple[int, ...]        # log_event_print_value's meta, for the real type
    nullable: tuple[bool, ...]
    optional: OptionalMetadata
    mariadb: bool
    # The event bytes that fix the layout (everything after table id and flags): decoders are
    # compiled once per distinct value of this and cached.
    signature: bytes = field(repr=False, default=b"")

    @property
    def column_count(self) -> int:
        return len(self.types)

    @property
    def qualified_name(self) -> str:
        return f"{self.db}.{self.table}"

    def shape(self) -> str:
        """The layout as ``N columns (INT, VARCHAR, ...)``, for messages."""
        names = []
        for code in self.types:
            try:
                names.append(ColumnType(code).name)
            except ValueError:
                names.append(str(code))
        return f"{len(self.types)} columns ({', '.join(names)})"

    def columns(self, schema: TableSchema | None = None) -> tuple[ColumnInfo, ...]:
        """Column descriptions: the event's optional metadata, completed by ``schema`` where it lacks a field.

        The caller checks that ``schema`` has as many columns as the event (see rows.RowDecoder)."""
        opt = self.optional
        from_schema = schema.columns if schema is not None else None
        unsigned = _spread(opt.unsigned, [is_numeric_type(t) for t in self.types])
        character = [is_character_type(t, mariadb=self.mariadb) for t in self.types]
        enum_or_set = [t in (ColumnType.ENUM, ColumnType.SET) for t in self.types]
        collations = _spread(opt.charsets, character)
        es_collations = _spread(opt.enum_set_charsets, enum_or_set)
        enums = _spread(opt.enum_values, [t == ColumnType.ENUM for t in self.types])
        sets = _spread(opt.set_values, [t == ColumnType.SET for t in self.types])
        out: list[ColumnInfo] = []
        for i in range(len(self.types)):
            base = from_schema[i] if from_schema is not None else None
            collation = collations[i] if collations[i] is not None else es_collations[i]
            charset = charset_of_collation(collation, mariadb=self.mariadb) if collation is not None else None
            enum_labels = _labels(enums[i], charset)
            set_labels = _labels(sets[i], charset)
            out.append(ColumnInfo(
                name=opt.names[i] if opt.names is not None else (base.name if base else None),
                unsigned=unsigned[i] if unsigned[i] is not None else (base.unsigned if base else False),
                charset=charset if charset is not None else (base.charset if base else None),
                collation_id=collation if collation is not None else (base.collation_id if base else None),
                enum_values=enum_labels if enum_labels is not None else (base.enum_values if base else None),
                set_values=set_labels if set_labels is not None else (base.set_values if base else None),
                sql_type=base.sql_type if base else None,
                nullable=self.nullable[i],
                visible=opt.visibility[i] if opt.visibility is not None else (base.visible if base else True),
            ))
        return tuple(out)

    def primary_key(self, schema: TableSchema | None = None) -> tuple[int, ...] | None:
        """Column indexes of the primary key; () when the table has none; None when unknown."""
        if self.optional.primary_key is not None:
            return tuple(i for i, _ in self.optional.primary_key)
        if schema is not None:
            names = schema.column_names()
            try:
                return tuple(names.index(n) for n in schema.primary_key)
            except ValueError:
                return None
        if self.optional.names is not None:
            return ()  # FULL metadata always writes the key when there is one
        return None


def _labels(raw: tuple[bytes, ...] | None, charset: str | None) -> tuple[str, ...] | None:
    """ENUM/SET labels decoded in their column's charset (UTF-8 where the event does not say)."""
    if raw is None:
        return None
    try:
        decode = text_decoder(charset) if charset not in (None, "binary") else None
    except UnsupportedValue:
        decode = None
    if decode is None:
        return tuple(x.decode("utf-8", "replace") for x in raw)
    return tuple(decode(x) for x in raw)


def _spread(values: tuple[object, ...] | None, selected: list[bool]) -> list:  # type: ignore[type-arg]
    """Per-column list from a per-kind list (None everywhere when absent or too short)."""
    out: list[object] = [None] * len(selected)
    if values is None:
        return out
    it = iter(values)
    for i, chosen in enumerate(selected):
        if chosen:
            out[i] = next(it, None)
    return out


def parse_table_map(event: TableMapEvent, *, mariadb: bool) -> TableMap:
    where = f"TABLE_MAP for {event.schema}.{event.table}"
    raw_types = event.column_types
    metas = read_column_metadata(raw_types, event.column_metadata, where=where)
    types: list[int] = []
    real_metas: list[int] = []
    for code, meta in zip(raw_types, metas, strict=True):
        real, length = real_string_type(code, meta)
        if real in (ColumnType.ENUM, ColumnType.SET):
            types.append(real)
            real_metas.append(length)
        elif code == ColumnType.STRING:
            types.append(code)
            real_metas.append(length)
        else:
            types.append(code)
            real_metas.append(meta)
    n = event.column_count
    nullable = tuple(bool(event.null_bitmap[i >> 3] >> (i & 7) & 1) for i in range(n))
    optional = _parse_optional(event.optional_metadata, types, mariadb=mariadb, where=where)
    if optional.names is not None and len(optional.names) != n:
        raise InvalidEvent(f"{where}: {len(optional.names)} column names for {n} columns")
    signature = b"%d\0%s\0%s\0" % (int(mariadb), event.schema.encode(), event.table.encode()) + bytes(raw_types) \
        + event.column_metadata + event.null_bitmap + event.optional_metadata
    return TableMap(event.table_id, event.schema, event.table, tuple(types), tuple(real_metas), nullable,
                    optional, mariadb, signature)


def _msb_bits(data: bytes, count: int) -> tuple[bool, ...]:
    return tuple(bool(data[i >> 3] & (0x80 >> (i & 7))) for i in range(min(count, len(data) * 8)))


def _parse_optional(data: bytes, types: list[int], *, mariadb: bool, where: str) -> OptionalMetadata:
    if not data:
        return OptionalMetadata()
    fields: dict[str, object] = {}
    r = ByteReader(data, what=f"{where} optional metadata")
    numeric = sum(is_numeric_type(t) for t in types)
    character = sum(is_character_type(t, mariadb=mariadb) for t in types)
    enum_set_kinds = [t for t in types if t in (ColumnType.ENUM, ColumnType.SET)]
    while r.remaining():
        kind = r.u8()
        value = ByteReader(r.take(r.lenenc()), what=f"{where} optional metadata field {kind}")
        if kind == SIGNEDNESS:
            fields["unsigned"] = _msb_bits(value.rest(), numeric)
        elif kind in (DEFAULT_CHARSET, ENUM_AND_SET_DEFAULT_CHARSET):
            count = character if kind == DEFAULT_CHARSET else len(enum_set_kinds)
            collations = [value.lenenc()] * count
            while value.remaining():
                index, collation = value.lenenc(), value.lenenc()
                if index < count:
                    collations[index] = collation
            fields["charsets" if kind == DEFAULT_CHARSET else "enum_set_charsets"] = tuple(collations)
        elif kind in (COLUMN_CHARSET, ENUM_AND_SET_COLUMN_CHARSET):
            collations = []
            while value.remaining():
                collations.append(value.lenenc())
            fields["charsets" if kind == COLUMN_CHARSET else "enum_set_charsets"] = tuple(collations)
        elif kind == COLUMN_NAME:
            names = []
            while value.remaining():
                names.append(value.take(value.lenenc()).decode("utf-8", "replace"))
            fields["names"] = tuple(names)
        elif kind in (SET_STR_VALUE, ENUM_STR_VALUE):
            lists = []
            while value.remaining():
                lists.append(tuple(value.take(value.lenenc()) for _ in range(value.lenenc())))
            fields["set_values" if kind == SET_STR_VALUE else "enum_values"] = tuple(lists)
        elif kind == GEOMETRY_TYPE:
            geoms = []
            while value.remaining():
                geoms.append(value.lenenc())
            fields["geometry_types"] = tuple(geoms)
        elif kind == SIMPLE_PRIMARY_KEY:
            keys = []
            while value.remaining():
                keys.append((value.lenenc(), 0))
            fields["primary_key"] = tuple(keys)
        elif kind == PRIMARY_KEY_WITH_PREFIX:
            keys = []
            while value.remaining():
                keys.append((value.lenenc(), value.lenenc()))
            fields["primary_key"] = tuple(keys)
        elif kind == COLUMN_VISIBILITY:
            fields["visibility"] = _msb_bits(value.rest(), len(types))
        elif kind == VECTOR_DIMENSIONALITY:
            dims = []
            while value.remaining():
                dims.append(value.lenenc())
            fields["vector_dimensions"] = tuple(dims)
        # Unknown kinds are skipped: the TLV length bounds them, and newer servers add fields.
    return OptionalMetadata(**fields)  # type: ignore[arg-type]
