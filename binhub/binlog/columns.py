"""What a row decoder needs to know about a table beyond its TABLE_MAP: the column descriptions.

A TABLE_MAP event carries each column's type and type metadata, but names, signedness, charsets and
ENUM/SET labels only when the primary writes optional metadata (MySQL ``binlog_row_metadata=FULL``;
MariaDB 10.5+ the same variable). Where the event lacks them, the schema history
(:mod:`binhub.schema`) supplies a :class:`TableSchema` for the table as it was at that position.
Both sources are expressed in these types, so the row decoder takes one shape whatever the origin.

Charsets are MySQL charset names (``utf8mb4``, ``utf8mb3``, ``latin1``, ``gbk``, ``binary``); the
decoder maps them to Python codecs.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ColumnInfo", "TableSchema"]


@dataclass(frozen=True, slots=True)
class ColumnInfo:
    """One column as the primary defined it (everything optional: a TABLE_MAP may carry none of it)."""

    name: str | None
    unsigned: bool = False
    # MySQL charset name for character columns (CHAR/VARCHAR/TEXT/ENUM/SET); "binary" for binary
    # strings; None where unknown or not a string column.
    charset: str | None = None
    collation_id: int | None = None
    enum_values: tuple[str, ...] | None = None
    set_values: tuple[str, ...] | None = None
    # The column's SQL type as SHOW CREATE TABLE writes it (``decimal(10,3) unsigned``), where known.
    sql_type: str | None = None
    nullable: bool = True
    visible: bool = True
    # The collation's name (``utf8mb4_bin``) where known: the schema history knows names, not ids.
    collation: str | None = None
    # What the DDL says and the TABLE_MAP never does (the schema history's; CDC formats describe them).
    auto_increment: bool = False
    generated: bool = False  # GENERATED ALWAYS AS (…)
    # The default as MariaDB prints it (``'x'``, ``NULL``, ``current_timestamp()``; None: none, or
    # not known), see binhub.schema.defaults; and the column's comment.
    default: str | None = None
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class TableSchema:
    """A table's columns in ordinal order and its primary key (column names, in key order)."""

    db: str
    table: str
    columns: tuple[ColumnInfo, ...]
    primary_key: tuple[str, ...] = ()
    # False when binhub could not follow a DDL that touched this table: rows decoded against it
    # get positional names (@1, @2, ...) and are flagged, never guessed.
    known: bool = True

    def column_names(self) -> tuple[str, ...]:
        """Every column's name, ``@N`` (1-based) where a name is unknown."""
        return tuple(c.name if c.name is not None else f"@{i}" for i, c in enumerate(self.columns, 1))
