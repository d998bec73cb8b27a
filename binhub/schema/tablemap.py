"""The schema history meets a TABLE_MAP: check that they describe the same table, then merge.

A TABLE_MAP always carries each column's binlog type; with ``binlog_row_metadata=FULL`` it also
carries names, signedness, charsets, ENUM/SET labels, the primary key and visibility, and those
win over the history (they were written with the row). The row decoder expresses what a
TABLE_MAP says as a :class:`TableSchema` and names the optional-metadata fields present by their
TLV codes (:class:`OptionalMetadata`, MySQL ``Table_map_event::Optional_metadata_field_type``).

:func:`check_table_map` refuses a history whose shape disagrees with the event (column count, or a
column whose binlog type cannot be the history's SQL type): decoding with it would silently shift
or misread values, the failure CDC users report most ("column size is not match").
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from enum import IntEnum

from binhub.binlog.columns import ColumnInfo, TableSchema
from binhub.errors import SchemaMismatch

__all__ = ["OptionalMetadata", "check_table_map", "merge_table_map"]


class OptionalMetadata(IntEnum):
    SIGNEDNESS = 1
    DEFAULT_CHARSET = 2
    COLUMN_CHARSET = 3
    COLUMN_NAME = 4
    SET_STR_VALUE = 5
    ENUM_STR_VALUE = 6
    GEOMETRY_TYPE = 7
    SIMPLE_PRIMARY_KEY = 8
    PRIMARY_KEY_WITH_PREFIX = 9
    ENUM_AND_SET_DEFAULT_CHARSET = 10
    ENUM_AND_SET_COLUMN_CHARSET = 11
    COLUMN_VISIBILITY = 12


# MySQL field types (enum_field_types) as a TABLE_MAP writes them.
_TYPE_NAMES = {
    0: "decimal", 1: "tiny", 2: "short", 3: "long", 4: "float", 5: "double", 6: "null", 7: "timestamp",
    8: "longlong", 9: "int24", 10: "date", 11: "time", 12: "datetime", 13: "year", 14: "newdate", 15: "varchar",
    16: "bit", 17: "timestamp2", 18: "datetime2", 19: "time2", 242: "vector", 245: "json", 246: "newdecimal",
    247: "enum", 248: "set", 249: "tiny_blob", 250: "medium_blob", 251: "long_blob", 252: "blob",
    253: "var_string", 254: "string", 255: "geometry",
}
_STRING, _BLOB = {253, 254, 15}, {249, 250, 251, 252}
# SQL type (base name) -> binlog types a TABLE_MAP may give it.
_EXPECTED: dict[str, set[int]] = {
    "tinyint": {1}, "smallint": {2}, "mediumint": {9}, "int": {3}, "bigint": {8}, "float": {4}, "double": {5},
    "decimal": {0, 246}, "date": {10, 14}, "time": {11, 19}, "datetime": {12, 18}, "timestamp": {7, 17},
    "year": {13}, "bit": {16}, "json": {245, 252}, "vector": {242, 15, 254},
    "char": _STRING, "varchar": _STRING, "binary": _STRING, "varbinary": _STRING, "enum": _STRING | {247},
    "set": _STRING | {248}, "inet4": _STRING, "inet6": _STRING, "uuid": _STRING,
    "tinytext": _BLOB, "text": _BLOB, "mediumtext": _BLOB, "longtext": _BLOB,
    "tinyblob": _BLOB, "blob": _BLOB, "mediumblob": _BLOB, "longblob": _BLOB,
}
_SPATIAL = {"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
            "geometrycollection"}


def _base(sql_type: str | None) -> str:
    return (sql_type or "").split("(")[0].split(" ")[0]


def _history_shape(schema: TableSchema) -> str:
    return ", ".join(f"{c.name or '?'} {c.sql_type or '?'}" for c in schema.columns)


def _table_map_shape(column_types: bytes) -> str:
    return ", ".join(_TYPE_NAMES.get(t, f"type {t}") for t in column_types)


def check_table_map(history: TableSchema, column_types: bytes, where: str = "") -> None:
    """Raise :class:`SchemaMismatch` if a TABLE_MAP's columns (their binlog types) cannot be the
    history's; ``where`` (file:pos and GTID) goes into the message."""
    at = f" at {where}" if where else ""
    both = (f"the TABLE_MAP has {len(column_types)} columns ({_table_map_shape(column_types)}); the schema "
            f"history has {len(history.columns)} ({_history_shape(history)})")
    hint = ("a DDL the history missed or misread changed the table: check `binhub schema show` for problems "
            "near this position; binlog_row_metadata=FULL on the primary makes the TABLE_MAP self-describing")
    if len(column_types) != len(history.columns):
        raise SchemaMismatch(f"{history.db}.{history.table}{at}: column count differs: {both}", hint=hint)
    for i, (code, column) in enumerate(zip(column_types, history.columns, strict=True), 1):
        base = _base(column.sql_type)
        expected = {255} if base in _SPATIAL else _EXPECTED.get(base)
        if expected is not None and code not in expected:
            raise SchemaMismatch(
                f"{history.db}.{history.table}{at}: column {i} ({column.name}) is {column.sql_type} in the schema "
                f"history but {_TYPE_NAMES.get(code, f'type {code}')} in the TABLE_MAP: {both}", hint=hint)


def merge_table_map(history: TableSchema | None, table_map: TableSchema, present: Collection[int],
                    column_types: bytes | None = None, where: str = "") -> TableSchema:
    """The columns to decode a row with: the TABLE_MAP's metadata where it carries a field (``present``:
    :class:`OptionalMetadata` codes), the history's elsewhere. Without a (known) history, the
    TABLE_MAP alone: known only if it names every column."""
    present = {int(p) for p in present}
    names = OptionalMetadata.COLUMN_NAME in present
    if history is None or not history.known:
        known = names and all(c.name is not None for c in table_map.columns)
        return replace(table_map, known=known)
    if column_types is not None:
        check_table_map(history, column_types, where)
    elif len(table_map.columns) != len(history.columns):
        raise SchemaMismatch(
            f"{history.db}.{history.table}{' at ' + where if where else ''}: the TABLE_MAP has "
            f"{len(table_map.columns)} columns, the schema history {len(history.columns)} ({_history_shape(history)})")
    charsets = bool(present & {OptionalMetadata.DEFAULT_CHARSET, OptionalMetadata.COLUMN_CHARSET,
                               OptionalMetadata.ENUM_AND_SET_DEFAULT_CHARSET,
                               OptionalMetadata.ENUM_AND_SET_COLUMN_CHARSET})
    columns = tuple(_merge_column(h, t, present, names, charsets)
                    for h, t in zip(history.columns, table_map.columns, strict=True))
    pk = history.primary_key
    if present & {OptionalMetadata.SIMPLE_PRIMARY_KEY, OptionalMetadata.PRIMARY_KEY_WITH_PREFIX}:
        pk = table_map.primary_key
    return TableSchema(history.db, history.table, columns, pk, True)


def _merge_column(h: ColumnInfo, t: ColumnInfo, present: set[int], names: bool, charsets: bool) -> ColumnInfo:
    out = h
    if names and t.name is not None:
        out = replace(out, name=t.name)
    if OptionalMetadata.SIGNEDNESS in present and _base(h.sql_type) in _NUMERIC:
        out = replace(out, unsigned=t.unsigned)
    if charsets and t.charset is not None:
        same = t.charset == h.charset
        out = replace(out, charset=t.charset, collation_id=t.collation_id, collation=h.collation if same else None)
    if OptionalMetadata.ENUM_STR_VALUE in present and t.enum_values is not None:
        out = replace(out, enum_values=t.enum_values)
    if OptionalMetadata.SET_STR_VALUE in present and t.set_values is not None:
        out = replace(out, set_values=t.set_values)
    if OptionalMetadata.COLUMN_VISIBILITY in present:
        out = replace(out, visible=t.visible)
    return out


_NUMERIC = {"tinyint", "smallint", "mediumint", "int", "bigint", "float", "double", "decimal"}
