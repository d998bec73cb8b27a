"""The catalog at one moment: databases with their default charsets, tables with their columns.

:meth:`Catalog.apply` follows one change the way the server does: charsets resolve at CREATE
time (column ← table default ← database default ← server default), ``ALTER TABLE`` clauses
apply in order (so ``AFTER`` names see earlier clauses' columns), ``RENAME TABLE`` pairs apply one
by one (so gh-ost/pt-osc swaps land right), dropping a database drops its tables. A change that
cannot apply (an ``ALTER`` of a table the catalog lacks, a column that is not there) leaves the
table *unknown* and returns a problem; it never guesses.

Names: databases and tables are case-sensitive (``lower_case_table_names=0``, the Linux default);
columns are not, as in the server.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from binhub.binlog.charsets import (
    charset_of_collation_name,
    default_collation,
    max_bytes_per_char,
    normalize_charset,
    normalize_collation,
)
from binhub.binlog.columns import ColumnInfo, TableSchema
from binhub.schema.changes import (
    AddColumn,
    AddPrimaryKey,
    AlterAction,
    AlterDatabase,
    AlterTable,
    Change,
    ChangeColumn,
    ConvertCharset,
    CreateDatabase,
    CreateTable,
    CreateTableLike,
    DropColumn,
    DropDatabase,
    DropPrimaryKey,
    DropTables,
    ModifyColumn,
    RenameColumn,
    RenameTable,
    RenameTables,
    SetColumnDefault,
    SetColumnVisibility,
    SetTableCharset,
    SetTableComment,
    TableName,
    TruncateTable,
)
from binhub.schema.coldef import BINARY_TYPES, TEXT_TYPES, ColumnSpec, sized_lob
from binhub.schema.defaults import column_default, implicit_default

__all__ = ["Catalog", "Charset", "StatementContext", "TableDef"]


@dataclass(frozen=True, slots=True)
class Charset:
    """A default character set and its collation (either may be unknown)."""

    charset: str | None = None
    collation: str | None = None


@dataclass(frozen=True, slots=True)
class StatementContext:
    """The session a statement ran in, from its QUERY event."""

    flavour: str = "mariadb"
    server: Charset = Charset()  # character_set_server / collation_server at that moment
    utf8mb4_default: str | None = None  # MySQL 8's default utf8mb4 collation, when the event says


@dataclass(frozen=True, slots=True)
class TableDef:
    name: TableName
    columns: tuple[ColumnInfo, ...] = ()
    primary_key: tuple[str, ...] = ()
    default: Charset = Charset()
    known: bool = True
    comment: str | None = None

    def schema(self) -> TableSchema:
        return TableSchema(self.name.db, self.name.table, self.columns, self.primary_key, self.known)


class ApplyError(Exception):
    """A change that does not fit the catalog; the message says why."""


@dataclass
class Catalog:
    server: Charset = field(default_factory=Charset)
    databases: dict[str, Charset] = field(default_factory=dict)
    tables: dict[TableName, TableDef] = field(default_factory=dict)

    def copy(self) -> Catalog:
        return Catalog(self.server, dict(self.databases), dict(self.tables))

    def table(self, name: TableName) -> TableDef | None:
        return self.tables.get(name)

    def mark_unknown(self, names: Iterable[TableName]) -> None:
        for name in names:
            self.tables[name] = TableDef(name, known=False)

    # ------------------------------------------------------------------------------------ applying

    def apply(self, change: Change, ctx: StatementContext) -> list[str]:
        """Follow one change; returns problems (empty when it applied cleanly)."""
        try:
            return self._apply(change, ctx)
        except ApplyError as exc:
            touched = _tables_of(change)
            self.mark_unknown(touched)
            names = ", ".join(str(t) for t in touched) or "no table"
            return [f"{exc}; {names} now unknown"]

    def _apply(self, change: Change, ctx: StatementContext) -> list[str]:
        if isinstance(change, CreateTable):
            return self._create(change, ctx)
        if isinstance(change, CreateTableLike):
            if change.temporary:
                return []
            if change.if_not_exists and change.name in self.tables:
                return []
            source = self.tables.get(change.source)
            if source is None or not source.known:
                self.mark_unknown([change.name])
                return [f"{change.name} is created LIKE {change.source}, which the history does not know; "
                        f"{change.name} is unknown"]
            self.tables[change.name] = replace(source, name=change.name)
            return []
        if isinstance(change, AlterTable):
            return self._alter(change, ctx)
        if isinstance(change, RenameTables):
            problems = []
            for old, new in change.pairs:
                problems += self._rename(old, new)
            return problems
        if isinstance(change, DropTables):
            if not change.temporary:
                for name in change.names:
                    self.tables.pop(name, None)
            return []
        if isinstance(change, TruncateTable):
            return []
        if isinstance(change, CreateDatabase):
            if change.if_not_exists and change.name in self.databases:
                return []
            if change.or_replace:
                self._drop_database(change.name)
            self.databases[change.name] = self.resolve_charset(change.charset, change.collation, ctx.server, ctx)
            return []
        if isinstance(change, AlterDatabase):
            current = self.databases.get(change.name, self.server)
            self.databases[change.name] = self.resolve_charset(change.charset, change.collation, current, ctx)
            return []
        if isinstance(change, DropDatabase):
            self._drop_database(change.name)
            return []
        raise AssertionError(f"unhandled change {change!r}")

    def _drop_database(self, name: str) -> None:
        self.databases.pop(name, None)
        for t in [t for t in self.tables if t.db == name]:
            del self.tables[t]

    def resolve_charset(self, charset: str | None, collation: str | None, inherited: Charset,
                 ctx: StatementContext) -> Charset:
        """The charset and collation a level gets from what it names, else from the level above."""
        if collation:
            collation = normalize_collation(collation)
            return Charset(normalize_charset(charset) if charset else charset_of_collation_name(collation), collation)
        if charset:
            if charset.upper() == "DEFAULT":
                return inherited
            charset = normalize_charset(charset)
            return Charset(charset, default_collation(charset, ctx.flavour, ctx.utf8mb4_default))
        return inherited

    def database_default(self, db: str, ctx: StatementContext) -> Charset:
        if db in self.databases:
            return self.databases[db]
        return ctx.server if ctx.server.charset else self.server

    def _create(self, change: CreateTable, ctx: StatementContext) -> list[str]:
        if change.temporary:
            return []  # session-local: a ROW-format binlog never holds their rows
        if change.if_not_exists and change.name in self.tables:
            return []
        default = self.resolve_charset(change.charset, change.collation, self.database_default(change.name.db, ctx), ctx)
        columns = [self.column_info(spec, default, ctx) for spec in change.columns]
        pk = change.primary_key or tuple(s.name for s in change.columns if s.primary_key)
        table = TableDef(change.name, tuple(columns), (), default, comment=change.comment or None)
        self.tables[change.name] = _with_primary_key(table, pk)
        return []

    def column_info(self, spec: ColumnSpec, table_default: Charset, ctx: StatementContext) -> ColumnInfo:
        charset = collation = None
        if spec.base in BINARY_TYPES:
            charset = "binary"
        elif spec.base in TEXT_TYPES:
            if spec.collation:
                collation = spec.collation
                charset = spec.charset or charset_of_collation_name(collation)
            elif spec.charset:
                charset = spec.charset
                collation = _bin(charset) if spec.binary_collation else default_collation(
                    charset, ctx.flavour, ctx.utf8mb4_default)
            else:
                charset = table_default.charset
                collation = _bin(charset) if spec.binary_collation and charset else table_default.collation
        sql_type = spec.resolved_type(charset)
        nullable = spec.nullable and not spec.primary_key
        return ColumnInfo(
            name=spec.name, unsigned=spec.unsigned, charset=charset, collation=collation,
            enum_values=spec.enum_values, set_values=spec.set_values, sql_type=sql_type,
            nullable=nullable, visible=not spec.invisible,
            auto_increment=spec.auto_increment, generated=spec.generated,
            default=column_default(spec.default, sql_type) if spec.default is not None else implicit_default(nullable),
            comment=spec.comment,
        )

    def _alter(self, change: AlterTable, ctx: StatementContext) -> list[str]:
        table = self.tables.get(change.name)
        renames = [a for a in change.actions if isinstance(a, RenameTable)]
        if table is None or not table.known:
            dest = renames[-1].new if renames else change.name
            self.tables.pop(change.name, None)
            self.mark_unknown([dest])
            if table is not None and all(isinstance(a, RenameTable) for a in change.actions):
                return []  # an unknown table renamed: still unknown, nothing new to report
            state = "unknown" if table is not None else "not in the history"
            return [f"ALTER TABLE {change.name}: the table is {state}, so its columns after this statement "
                    f"are unknown; {dest} is unknown"]
        work = _Work(table, self, ctx)
        for action in change.actions:
            work.apply(action)
        result = work.result()
        if renames:
            self.tables.pop(change.name, None)
            result = replace(result, name=renames[-1].new)
        self.tables[result.name] = result
        return []

    def _rename(self, old: TableName, new: TableName) -> list[str]:
        table = self.tables.pop(old, None)
        if table is None:
            self.mark_unknown([new])
            return [f"RENAME TABLE {old} TO {new}: {old} is not in the history; {new} is unknown"]
        self.tables[new] = replace(table, name=new)
        return []

    # ---------------------------------------------------------------------------------- persistence

    def to_json(self) -> dict[str, Any]:
        return {
            "server": dataclasses.asdict(self.server),
            "databases": {name: dataclasses.asdict(cs) for name, cs in sorted(self.databases.items())},
            "tables": [_table_json(t) for _, t in sorted(self.tables.items())],
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Catalog:
        tables = {}
        for t in doc.get("tables", []):
            name = TableName(t["db"], t["table"])
            columns = tuple(_column_from_json(c) for c in t["columns"])
            tables[name] = TableDef(name, columns, tuple(t["primary_key"]), Charset(**t["default"]), t["known"],
                                    t.get("comment"))
        return cls(Charset(**doc.get("server", {})),
                   {name: Charset(**cs) for name, cs in doc.get("databases", {}).items()}, tables)


def _bin(charset: str | None) -> str | None:
    return None if charset is None else ("binary" if charset == "binary" else f"{charset}_bin")


def _tables_of(change: Change) -> list[TableName]:
    if isinstance(change, CreateTable | CreateTableLike | TruncateTable):
        return [change.name]
    if isinstance(change, AlterTable):
        return [change.name] + [a.new for a in change.actions if isinstance(a, RenameTable)]
    if isinstance(change, RenameTables):
        return [new for _, new in change.pairs]
    if isinstance(change, DropTables):
        return list(change.names)
    return []


def _with_primary_key(table: TableDef, pk: tuple[str, ...]) -> TableDef:
    """The table with ``pk`` as its primary key: its columns become NOT NULL, names as defined."""
    by_name = {c.name.casefold(): c for c in table.columns if c.name is not None}
    missing = [p for p in pk if p.casefold() not in by_name]
    if missing:
        raise ApplyError(f"{table.name}: the primary key names {', '.join(missing)}, which the table lacks")
    keyed = {p.casefold() for p in pk}
    # A key column is NOT NULL: the NULL it defaulted to as a nullable column goes with it.
    columns = tuple(replace(c, nullable=False, default=None if c.default == "NULL" else c.default)
                    if c.name is not None and c.name.casefold() in keyed else c
                    for c in table.columns)
    return replace(table, columns=columns, primary_key=tuple(by_name[p.casefold()].name or p for p in pk))


class _Work:
    """An ALTER TABLE in progress: clauses apply in order to a mutable column list."""

    def __init__(self, table: TableDef, catalog: Catalog, ctx: StatementContext) -> None:
        self.name = table.name
        self.columns = list(table.columns)
        self.pk = list(table.primary_key)
        self.default = table.default
        self.comment = table.comment
        self.catalog = catalog
        self.ctx = ctx

    def index(self, name: str) -> int | None:
        key = name.casefold()
        for i, c in enumerate(self.columns):
            if c.name is not None and c.name.casefold() == key:
                return i
        return None

    def need(self, name: str) -> int:
        i = self.index(name)
        if i is None:
            raise ApplyError(f"ALTER TABLE {self.name}: there is no column {name}")
        return i

    def place(self, column: ColumnInfo, spec: ColumnSpec, old_index: int | None) -> None:
        pos = spec.position
        if pos is None:
            if old_index is None:
                self.columns.append(column)
            else:
                self.columns.insert(old_index, column)
        elif pos.first:
            self.columns.insert(0, column)
        else:
            after = self.need(pos.after or "")
            self.columns.insert(after + 1, column)

    def rename_in_key(self, old: str, new: str) -> None:
        self.pk = [new if p.casefold() == old.casefold() else p for p in self.pk]

    def apply(self, action: AlterAction) -> None:
        if isinstance(action, AddColumn):
            if self.index(action.column.name) is not None:
                if action.if_not_exists:
                    return
                raise ApplyError(f"ALTER TABLE {self.name}: column {action.column.name} already exists")
            self.place(self.catalog.column_info(action.column, self.default, self.ctx), action.column, None)
            if action.column.primary_key:
                self.pk = [action.column.name]
        elif isinstance(action, DropColumn):
            i = self.index(action.name)
            if i is None:
                if action.if_exists:
                    return
                raise ApplyError(f"ALTER TABLE {self.name}: there is no column {action.name} to drop")
            del self.columns[i]
            self.pk = [p for p in self.pk if p.casefold() != action.name.casefold()]
        elif isinstance(action, ModifyColumn | ChangeColumn):
            old = action.old_name if isinstance(action, ChangeColumn) else action.column.name
            i = self.index(old)
            if i is None:
                if action.if_exists:
                    return
                raise ApplyError(f"ALTER TABLE {self.name}: there is no column {old} to change")
            del self.columns[i]
            self.place(self.catalog.column_info(action.column, self.default, self.ctx), action.column, i)
            self.rename_in_key(old, action.column.name)
            if action.column.primary_key:
                self.pk = [action.column.name]
        elif isinstance(action, RenameColumn):
            i = self.need(action.old_name)
            self.columns[i] = replace(self.columns[i], name=action.new_name)
            self.rename_in_key(action.old_name, action.new_name)
        elif isinstance(action, SetColumnVisibility):
            i = self.need(action.name)
            self.columns[i] = replace(self.columns[i], visible=not action.invisible)
        elif isinstance(action, SetColumnDefault):
            i = self.need(action.name)
            column = self.columns[i]
            default = (column_default(action.default, column.sql_type or "") if action.default is not None
                       else implicit_default(column.nullable))
            self.columns[i] = replace(column, default=default)
        elif isinstance(action, SetTableComment):
            self.comment = action.comment or None
        elif isinstance(action, AddPrimaryKey):
            self.pk = list(action.columns)
        elif isinstance(action, DropPrimaryKey):
            self.pk = []
        elif isinstance(action, ConvertCharset):
            self.convert(action)
        elif isinstance(action, SetTableCharset):
            self.default = self.catalog.resolve_charset(action.charset, action.collation, self._db_default(), self.ctx)
        elif isinstance(action, RenameTable):
            pass  # the catalog moves the result

    def _db_default(self) -> Charset:
        return self.catalog.database_default(self.name.db, self.ctx)

    def convert(self, action: ConvertCharset) -> None:
        new = self.catalog.resolve_charset(action.charset, action.collation, self._db_default(), self.ctx)
        self.default = new
        for i, c in enumerate(self.columns):
            base = (c.sql_type or "").split("(")[0].split(" ")[0]
            if base not in TEXT_TYPES or c.charset == "binary":
                continue
            sql_type = c.sql_type
            if base.endswith("text") and c.charset and new.charset:
                # The server keeps a TEXT column's length in characters: a wider charset may need a
                # bigger TEXT type (latin1 TEXT -> utf8mb4 MEDIUMTEXT).
                old_bytes = {"tinytext": 255, "text": 65535, "mediumtext": 16777215}.get(base)
                old_per, new_per = max_bytes_per_char(c.charset), max_bytes_per_char(new.charset)
                if old_bytes and old_per and new_per and new_per > old_per:
                    sql_type = sized_lob("text", old_bytes // old_per * new_per)
            self.columns[i] = replace(c, charset=new.charset, collation=new.collation, sql_type=sql_type)

    def result(self) -> TableDef:
        table = TableDef(self.name, tuple(self.columns), (), self.default, comment=self.comment)
        return _with_primary_key(table, tuple(self.pk))


def _table_json(t: TableDef) -> dict[str, Any]:
    doc = {"db": t.name.db, "table": t.name.table, "known": t.known, "primary_key": list(t.primary_key),
           "default": dataclasses.asdict(t.default), "columns": [_column_json(c) for c in t.columns]}
    if t.comment is not None:  # optional: histories written before binhub kept comments lack it
        doc["comment"] = t.comment
    return doc


def _column_json(c: ColumnInfo) -> dict[str, Any]:
    doc = dataclasses.asdict(c)
    for key in ("enum_values", "set_values"):
        if doc[key] is not None:
            doc[key] = list(doc[key])
    return {k: v for k, v in doc.items() if v is not None and v is not False or k in ("unsigned", "nullable", "visible")}


def _column_from_json(doc: dict[str, Any]) -> ColumnInfo:
    doc = dict(doc)
    for key in ("enum_values", "set_values"):
        if key in doc:
            doc[key] = tuple(doc[key])
    return ColumnInfo(**doc)
