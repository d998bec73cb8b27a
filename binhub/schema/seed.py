"""A catalog from the upstream's ``information_schema`` rows: the seed for tables the store never saw created.

A pure function over the rows (dicts keyed by information_schema's own column names, as PyMySQL's
DictCursor returns them); the query that fetches them lives above the store
(:mod:`binhub.ops.schema_seed`). Column types are re-read with the DDL column parser, so a seeded
column and one created by a DDL in the store are spelled the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from binhub.binlog.charsets import charset_of_collation_name, normalize_charset, normalize_collation
from binhub.binlog.columns import ColumnInfo
from binhub.schema.catalog import Catalog, Charset, TableDef
from binhub.schema.changes import TableName
from binhub.schema.coldef import BINARY_TYPES, DdlSyntaxError, parse_column_def
from binhub.schema.defaults import default_from_information_schema
from binhub.schema.sqltext import Token, tokenize

__all__ = ["SYSTEM_SCHEMAS", "catalog_from_information_schema"]

SYSTEM_SCHEMAS = frozenset({"mysql", "information_schema", "performance_schema", "sys"})

Row = Mapping[str, Any]


def catalog_from_information_schema(
    *, server: Charset, schemata: Iterable[Row], tables: Iterable[Row], columns: Iterable[Row],
    primary_keys: Iterable[Row], quoted_defaults: bool = True,
) -> Catalog:
    """The catalog information_schema describes.

    ``schemata``: SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME.
    ``tables``: TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, TABLE_COLLATION, TABLE_COMMENT (only BASE TABLEs are kept).
    ``columns``: TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, COLUMN_TYPE, IS_NULLABLE,
    CHARACTER_SET_NAME, COLLATION_NAME, EXTRA, COLUMN_DEFAULT, COLUMN_COMMENT (the last two optional).
    ``quoted_defaults``: the server quotes literal defaults in COLUMN_DEFAULT (MariaDB 10.2.7 and later).
    ``primary_keys``: TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, SEQ_IN_INDEX of the PRIMARY index
    (from STATISTICS, or KEY_COLUMN_USAGE with ORDINAL_POSITION as the sequence).
    """
    catalog = Catalog(server=server)
    for row in schemata:
        db = str(row["SCHEMA_NAME"])
        if db.lower() in SYSTEM_SCHEMAS:
            continue
        catalog.databases[db] = Charset(_opt(row.get("DEFAULT_CHARACTER_SET_NAME"), normalize_charset),
                                          _opt(row.get("DEFAULT_COLLATION_NAME"), normalize_collation))
    defaults: dict[TableName, Charset] = {}
    comments: dict[TableName, str | None] = {}
    for row in tables:
        name = TableName(str(row["TABLE_SCHEMA"]), str(row["TABLE_NAME"]))
        if name.db.lower() in SYSTEM_SCHEMAS or str(row.get("TABLE_TYPE", "BASE TABLE")) != "BASE TABLE":
            continue
        collation = _opt(row.get("TABLE_COLLATION"), normalize_collation)
        defaults[name] = Charset(charset_of_collation_name(collation) if collation else None, collation)
        comments[name] = str(row.get("TABLE_COMMENT") or "") or None
    by_table: dict[TableName, list[tuple[int, ColumnInfo]]] = {name: [] for name in defaults}
    for row in columns:
        name = TableName(str(row["TABLE_SCHEMA"]), str(row["TABLE_NAME"]))
        if name in by_table:
            by_table[name].append((int(row["ORDINAL_POSITION"]), _column(name, row, quoted_defaults)))
    keys: dict[TableName, list[tuple[int, str]]] = {}
    for row in primary_keys:
        name = TableName(str(row["TABLE_SCHEMA"]), str(row["TABLE_NAME"]))
        seq = row.get("SEQ_IN_INDEX", row.get("ORDINAL_POSITION"))
        keys.setdefault(name, []).append((int(seq), str(row["COLUMN_NAME"])))
    for name, cols in by_table.items():
        pk = tuple(col for _, col in sorted(keys.get(name, [])))
        catalog.tables[name] = TableDef(name, tuple(c for _, c in sorted(cols, key=lambda p: p[0])), pk,
                                        defaults[name], comment=comments[name])
    return catalog


def _opt(value: Any, fn: Any) -> Any:
    return fn(str(value)) if value is not None else None


def _column(table: TableName, row: Row, quoted_defaults: bool) -> ColumnInfo:
    name = str(row["COLUMN_NAME"])
    column_type = str(row["COLUMN_TYPE"])
    try:
        # The name goes in as an already-quoted token: any name is valid, whatever it contains.
        tokens = [Token("ident", name, 0, 0), *tokenize(column_type)]
        spec = parse_column_def(tokens, flavour="mysql")  # COLUMN_TYPE says what is stored: no aliases
    except (DdlSyntaxError, ValueError) as exc:
        raise DdlSyntaxError(f"information_schema.COLUMNS gives {table}.{name} the type {column_type!r}, "
                             f"which binhub cannot read: {exc}") from exc
    extra = str(row.get("EXTRA") or "").upper()
    charset = _opt(row.get("CHARACTER_SET_NAME"), normalize_charset)
    collation = _opt(row.get("COLLATION_NAME"), normalize_collation)
    if spec.base in BINARY_TYPES:
        charset, collation = "binary", None
    nullable = str(row.get("IS_NULLABLE", "YES")) == "YES"
    default = None
    if "COLUMN_DEFAULT" in row:
        raw = row["COLUMN_DEFAULT"]
        default = default_from_information_schema(None if raw is None else str(raw), extra, nullable,
                                                  spec.sql_type, quoted_defaults)
    return ColumnInfo(
        name=name, unsigned=spec.unsigned, charset=charset, collation=collation, enum_values=spec.enum_values,
        set_values=spec.set_values, sql_type=spec.sql_type, nullable=nullable,
        visible="INVISIBLE" not in extra, auto_increment="AUTO_INCREMENT" in extra,
        # "VIRTUAL GENERATED", "STORED GENERATED" (not MySQL's DEFAULT_GENERATED, a default expression)
        generated=any(kind in extra for kind in ("VIRTUAL", "STORED", "PERSISTENT")),
        default=default, comment=str(row.get("COLUMN_COMMENT") or "") or None,
    )
