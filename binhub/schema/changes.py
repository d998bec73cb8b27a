"""What a DDL statement does to the catalog: one frozen dataclass per kind of change.

The parsers (:mod:`binhub.schema.ddl`) turn a statement into a :class:`ParsedStatement`: its
changes, or why it changes no table (``ignored``), or why it could not be understood (``unknown``,
with the tables it names, so the history can mark exactly those unknown).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from binhub.schema.coldef import ColumnSpec
from binhub.schema.sqltext import Token

__all__ = [
    "AddColumn", "AddPrimaryKey", "AlterAction", "AlterDatabase", "AlterTable", "Change", "ChangeColumn",
    "ConvertCharset", "CreateDatabase", "CreateTable", "CreateTableLike", "DropColumn", "DropDatabase",
    "DropPrimaryKey", "DropTables", "ModifyColumn", "Outcome", "ParsedStatement", "RenameColumn",
    "RenameTable", "RenameTables", "SetColumnDefault", "SetColumnVisibility", "SetTableCharset", "SetTableComment",
    "TableName", "TruncateTable",
]


@dataclass(frozen=True, slots=True, order=True)
class TableName:
    db: str
    table: str

    def __str__(self) -> str:
        return f"{self.db}.{self.table}"


# ---------------------------------------------------------------------------------------- ALTER TABLE

@dataclass(frozen=True, slots=True)
class AddColumn:
    column: ColumnSpec
    if_not_exists: bool = False


@dataclass(frozen=True, slots=True)
class DropColumn:
    name: str
    if_exists: bool = False


@dataclass(frozen=True, slots=True)
class ModifyColumn:
    column: ColumnSpec  # same name; the position, if any, is on the spec
    if_exists: bool = False


@dataclass(frozen=True, slots=True)
class ChangeColumn:
    old_name: str
    column: ColumnSpec
    if_exists: bool = False


@dataclass(frozen=True, slots=True)
class RenameColumn:
    old_name: str
    new_name: str


@dataclass(frozen=True, slots=True)
class SetColumnVisibility:
    name: str
    invisible: bool


@dataclass(frozen=True, slots=True)
class SetColumnDefault:
    """ALTER COLUMN c SET DEFAULT v (the value's tokens) / DROP DEFAULT (None)."""

    name: str
    default: tuple[Token, ...] | None


@dataclass(frozen=True, slots=True)
class SetTableComment:
    comment: str


@dataclass(frozen=True, slots=True)
class AddPrimaryKey:
    columns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DropPrimaryKey:
    pass


@dataclass(frozen=True, slots=True)
class ConvertCharset:
    """CONVERT TO CHARACTER SET: every character column and the table default change."""

    charset: str | None  # None: DEFAULT (the database's)
    collation: str | None = None


@dataclass(frozen=True, slots=True)
class SetTableCharset:
    """[DEFAULT] CHARACTER SET / COLLATE as a table option: only columns added later use it."""

    charset: str | None
    collation: str | None = None


@dataclass(frozen=True, slots=True)
class RenameTable:
    """ALTER TABLE ... RENAME [TO|AS] new."""

    new: TableName


AlterAction = (AddColumn | DropColumn | ModifyColumn | ChangeColumn | RenameColumn | SetColumnVisibility
               | SetColumnDefault | AddPrimaryKey | DropPrimaryKey | ConvertCharset | SetTableCharset
               | SetTableComment | RenameTable)


# ------------------------------------------------------------------------------------------ statements

@dataclass(frozen=True, slots=True)
class CreateTable:
    name: TableName
    columns: tuple[ColumnSpec, ...]
    primary_key: tuple[str, ...] = ()  # from a table-level PRIMARY KEY (inline ones are on the specs)
    charset: str | None = None
    collation: str | None = None
    if_not_exists: bool = False
    or_replace: bool = False
    temporary: bool = False
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class CreateTableLike:
    name: TableName
    source: TableName
    if_not_exists: bool = False
    or_replace: bool = False
    temporary: bool = False


@dataclass(frozen=True, slots=True)
class AlterTable:
    name: TableName
    actions: tuple[AlterAction, ...]


@dataclass(frozen=True, slots=True)
class RenameTables:
    """RENAME TABLE a TO b, c TO d: applied pair by pair, so swaps work."""

    pairs: tuple[tuple[TableName, TableName], ...]


@dataclass(frozen=True, slots=True)
class DropTables:
    names: tuple[TableName, ...]
    if_exists: bool = False
    temporary: bool = False


@dataclass(frozen=True, slots=True)
class TruncateTable:
    name: TableName


@dataclass(frozen=True, slots=True)
class CreateDatabase:
    name: str
    charset: str | None = None
    collation: str | None = None
    if_not_exists: bool = False
    or_replace: bool = False


@dataclass(frozen=True, slots=True)
class AlterDatabase:
    name: str
    charset: str | None = None
    collation: str | None = None


@dataclass(frozen=True, slots=True)
class DropDatabase:
    name: str
    if_exists: bool = False


Change = (CreateTable | CreateTableLike | AlterTable | RenameTables | DropTables | TruncateTable
          | CreateDatabase | AlterDatabase | DropDatabase)


class Outcome(Enum):
    DDL = "ddl"  # changes follow
    IGNORED = "ignored"  # understood, and it changes no table's columns
    UNKNOWN = "unknown"  # not understood: the named tables' columns are unknown from here on


@dataclass(frozen=True, slots=True)
class ParsedStatement:
    outcome: Outcome
    changes: tuple[Change, ...] = ()
    reason: str = ""  # why ignored, or why not understood
    tables: tuple[TableName, ...] = ()  # for UNKNOWN: the tables the statement names (may be empty)
    parser: str = ""  # "sqlglot" | "fallback" | "" (classified without parsing)
