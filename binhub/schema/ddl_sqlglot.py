"""The sqlglot path of :func:`binhub.schema.ddl.parse_statement`: sqlglot's MySQL AST → table changes.

A module of its own so that sqlglot (~0.1-0.4 s to import) is loaded only when a table or
database DDL must be parsed, not by every command that reads the schema history.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from binhub.schema.changes import (
    AddColumn,
    AddPrimaryKey,
    AlterAction,
    AlterTable,
    Change,
    ChangeColumn,
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
    SetColumnVisibility,
    SetTableCharset,
    SetTableComment,
    TableName,
    TruncateTable,
)
from binhub.schema.coldef import ColumnSpec, DdlSyntaxError, parse_column_def
from binhub.schema.sqltext import Token

__all__ = ["NotTranslated", "with_sqlglot"]

# sqlglot logs a warning for every statement it hands back as a Command; the fallback handles those.
logging.getLogger("sqlglot").setLevel(logging.ERROR)


class NotTranslated(Exception):
    """sqlglot cannot parse the statement, or produced a tree this module does not translate: try
    the fallback."""


def with_sqlglot(text: str, tokens: Sequence[Token], default_db: str, flavour: str) -> list[Change]:
    try:
        return _translate(text, tokens, default_db, flavour)
    except SqlglotError as exc:
        raise NotTranslated(str(exc)) from exc


def _translate(text: str, tokens: Sequence[Token], default_db: str, flavour: str) -> list[Change]:
    trees = sqlglot.parse(text, read="mysql")
    trees = [t for t in trees if t is not None]
    if len(trees) != 1:
        raise NotTranslated("not exactly one statement")
    tree = trees[0]
    ctx = _Ctx(tokens, default_db, flavour)
    if isinstance(tree, exp.Create):
        return [ctx.create(tree)]
    if isinstance(tree, exp.Alter) and str(tree.args.get("kind", "")).upper() == "TABLE":
        return [ctx.alter(tree)]
    if isinstance(tree, exp.Drop):
        return [ctx.drop(tree)]
    if isinstance(tree, exp.TruncateTable) and not tree.args.get("is_database"):
        return [TruncateTable(ctx.table(t)) for t in tree.expressions]
    raise NotTranslated(type(tree).__name__)


class _Ctx:
    def __init__(self, tokens: Sequence[Token], default_db: str, flavour: str) -> None:
        self.tokens = tokens
        self.by_start = {t.start: k for k, t in enumerate(tokens)}
        self.default_db = default_db
        self.flavour = flavour

    def table(self, node: exp.Expression) -> TableName:
        if not isinstance(node, exp.Table) or not node.name:
            raise NotTranslated("not a table name")
        db = node.db or self.default_db
        if not db:
            raise DdlSyntaxError(f"table {node.name} is not qualified and the statement has no default database")
        if node.args.get("catalog"):
            raise NotTranslated("three-part table name")
        return TableName(db, node.name)

    def column_tokens(self, coldef: exp.ColumnDef) -> list[Token]:
        """The tokens of a column definition: from its name to the next top-level ',' or ')'."""
        start = coldef.this.meta.get("start") if isinstance(coldef.this, exp.Identifier) else None
        if start is None or start not in self.by_start:
            raise NotTranslated("column definition without a source position")
        k = self.by_start[start]
        depth = 0
        out = []
        for t in self.tokens[k:]:
            if t.kind == "punct":
                if t.text == "(":
                    depth += 1
                elif t.text == ")":
                    if depth == 0:
                        break
                    depth -= 1
                elif t.text == "," and depth == 0:
                    break
            out.append(t)
        return out

    def column(self, coldef: exp.ColumnDef) -> ColumnSpec:
        return parse_column_def(self.column_tokens(coldef), self.flavour)

    def create(self, tree: exp.Create) -> Change:
        kind = str(tree.args.get("kind", "")).upper()
        props = tree.args.get("properties")
        prop_list = list(props.expressions) if props is not None else []
        charset, collation = _charset_props(prop_list)
        if kind in ("DATABASE", "SCHEMA"):
            name = tree.this.name if isinstance(tree.this, exp.Table) else ""
            if not name:
                raise NotTranslated("database name")
            return CreateDatabase(name, charset, collation, bool(tree.args.get("exists")),
                                  bool(tree.args.get("replace")))
        if kind != "TABLE":
            raise NotTranslated(f"CREATE {kind}")
        temporary = any(isinstance(p, exp.TemporaryProperty) for p in prop_list)
        exists, replace = bool(tree.args.get("exists")), bool(tree.args.get("replace"))
        like = [p for p in prop_list if isinstance(p, exp.LikeProperty)]
        if tree.args.get("expression") is not None:
            raise DdlSyntaxError("CREATE TABLE ... SELECT: the columns come from a query")
        if like:
            return CreateTableLike(self.table(tree.this), self.table(like[0].this), exists, replace, temporary)
        schema = tree.this
        if not isinstance(schema, exp.Schema):
            raise NotTranslated("CREATE TABLE without a column list")
        like = [p for p in schema.expressions if isinstance(p, exp.LikeProperty)]  # CREATE TABLE t (LIKE s)
        if like:
            return CreateTableLike(self.table(schema.this), self.table(like[0].this), exists, replace, temporary)
        if not any(isinstance(item, exp.ColumnDef) for item in schema.expressions):
            raise NotTranslated("CREATE TABLE without columns")
        columns = []
        primary_key: tuple[str, ...] = ()
        for item in schema.expressions:
            if isinstance(item, exp.ColumnDef):
                columns.append(self.column(item))
                continue
            pk = item if isinstance(item, exp.PrimaryKey) else item.find(exp.PrimaryKey)
            if pk is not None:
                primary_key = _key_names(pk)
        return CreateTable(self.table(schema.this), tuple(columns), primary_key, charset, collation, exists,
                           replace, temporary, _comment_prop(prop_list))

    def alter(self, tree: exp.Alter) -> Change:
        name = self.table(tree.this)
        actions: list[AlterAction] = []
        for action in tree.args.get("actions") or []:
            actions.extend(self.alter_action(action))
        options = tree.args.get("options") or []
        charset, collation = _charset_props(options)
        if charset or collation:
            actions.append(SetTableCharset(charset, collation))
        comment = _comment_prop(options)
        if comment is not None:
            actions.append(SetTableComment(comment))
        return AlterTable(name, tuple(actions))

    def alter_action(self, action: exp.Expression) -> list[AlterAction]:
        if isinstance(action, exp.ColumnDef):
            return [AddColumn(self.column(action), bool(action.args.get("exists")))]
        if isinstance(action, exp.ModifyColumn):
            spec = self.column(action.this)
            old = action.args.get("rename_from")
            if old is not None:
                return [ChangeColumn(old.name, spec)]
            return [ModifyColumn(spec)]
        if isinstance(action, exp.Drop):
            if str(action.args.get("kind", "")).upper() != "COLUMN":
                raise NotTranslated("DROP of something other than a column")
            return [DropColumn(t.name, bool(action.args.get("exists"))) for t in action.args.get("tables") or []]
        if isinstance(action, exp.DropPrimaryKey):
            return [DropPrimaryKey()]
        if isinstance(action, exp.RenameColumn):
            return [RenameColumn(action.this.name, action.args["to"].name)]
        if isinstance(action, exp.AlterRename):
            return [RenameTable(self.table(action.this))]
        if isinstance(action, exp.AddConstraint):
            pk = action.find(exp.PrimaryKey)
            return [AddPrimaryKey(_key_names(pk))] if pk is not None else []
        if isinstance(action, exp.AlterColumn):
            visible = str(action.args.get("visible") or "").upper()
            if visible in ("VISIBLE", "INVISIBLE"):
                return [SetColumnVisibility(action.this.name, visible == "INVISIBLE")]
            if action.args.get("dtype") is not None:
                raise NotTranslated("ALTER COLUMN ... TYPE is not MySQL")
            # SET/DROP DEFAULT: the fallback keeps the value's tokens, as a column definition's DEFAULT
            raise NotTranslated("ALTER COLUMN ... SET/DROP DEFAULT")
        raise NotTranslated(type(action).__name__)

    def drop(self, tree: exp.Drop) -> Change:
        kind = str(tree.args.get("kind", "")).upper()
        tables = tree.args.get("tables") or []
        if kind in ("DATABASE", "SCHEMA"):
            if len(tables) != 1:
                raise NotTranslated("DROP DATABASE of several")
            name = tables[0].db or tables[0].name
            return DropDatabase(name, bool(tree.args.get("exists")))
        if kind == "TABLE":
            return DropTables(tuple(self.table(t) for t in tables), bool(tree.args.get("exists")),
                              bool(tree.args.get("temporary")))
        if kind == "INDEX":
            on = tree.args.get("cluster")
            if tables and tables[0].name.upper() == "PRIMARY" and isinstance(on, exp.OnProperty):
                return AlterTable(self.table(on.this), (DropPrimaryKey(),))
        raise NotTranslated(f"DROP {kind}")



def _key_names(pk: exp.Expression) -> tuple[str, ...]:
    out = []
    for part in pk.expressions:
        node = part.this if isinstance(part, exp.ColumnPrefix | exp.Ordered) else part
        if isinstance(node, exp.Identifier | exp.Column):
            out.append(node.name)
    return tuple(out)


def _comment_prop(props: Sequence[exp.Expression]) -> str | None:
    for p in props:
        if isinstance(p, exp.SchemaCommentProperty) and isinstance(p.this, exp.Literal):
            return str(p.this.this)
    return None


def _charset_props(props: Sequence[exp.Expression]) -> tuple[str | None, str | None]:
    charset = collation = None
    for p in props:
        if isinstance(p, exp.CharacterSetProperty):
            charset = p.this.name
        elif isinstance(p, exp.CollateProperty):
            collation = p.this.name
    return charset, collation
