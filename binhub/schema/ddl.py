"""A QUERY event's statement → what it does to tables: sqlglot's MySQL parser, then the fallback.

:func:`parse_statement` first resolves executable comments and classifies the statement by its
leading keywords, so that everything that cannot change a table's columns (transaction control,
statement-based DML, accounts and privileges, views, routines, triggers, events, index DDL) is
recognised and ignored by name, never by a parser's accident. Table and database DDL goes to
sqlglot; what sqlglot cannot parse (it falls back to an opaque ``Command`` or raises), or parses
into a shape this module does not translate, goes to :mod:`binhub.schema.fallback`. Column
definitions are read by :mod:`binhub.schema.coldef` in both paths. A statement neither path
understands comes back as ``Outcome.UNKNOWN`` with the tables it names.
"""

from __future__ import annotations

import logging
import re
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
    Outcome,
    ParsedStatement,
    RenameColumn,
    RenameTable,
    SetColumnVisibility,
    SetTableCharset,
    TableName,
    TruncateTable,
)
from binhub.schema.coldef import ColumnSpec, DdlSyntaxError, parse_column_def
from binhub.schema.fallback import parse_fallback, table_names_in
from binhub.schema.sqltext import Token, resolve_executable_comments, tokenize

__all__ = ["parse_statement"]

# sqlglot logs a warning for every statement it hands back as a Command; the fallback handles those.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

_TRANSACTION = frozenset({"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "XA", "START"})
_DML = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE", "LOAD", "CALL", "DO", "SELECT", "WITH", "HANDLER",
                  "VALUES", "TABLE"})
_ADMIN = frozenset({"GRANT", "REVOKE", "FLUSH", "SET", "INSTALL", "UNINSTALL", "LOCK", "UNLOCK", "CHANGE",
                    "RESET", "PURGE", "KILL", "SHUTDOWN", "ANALYZE", "OPTIMIZE", "CHECK", "REPAIR", "CHECKSUM",
                    "USE", "SHOW", "HELP", "BINLOG", "PREPARE", "EXECUTE", "DEALLOCATE", "SIGNAL", "RESIGNAL",
                    "BACKUP", "CACHE", "DESCRIBE", "DESC", "EXPLAIN"})
_FIRST_WORD_REASONS = {
    **{w: "transaction control" for w in _TRANSACTION},
    **{w: "a statement-based data change (no column changes)" for w in _DML},
    **{w: f"{w} changes no table's columns" for w in _ADMIN},
}
# CREATE/ALTER/DROP/RENAME of these objects changes no table's columns.
_NON_TABLE_OBJECTS = {
    "USER": "an account", "ROLE": "a role", "VIEW": "a view", "PROCEDURE": "a stored procedure",
    "FUNCTION": "a stored function", "TRIGGER": "a trigger", "EVENT": "an event", "SERVER": "a server",
    "TABLESPACE": "a tablespace", "LOGFILE": "a logfile group", "RESOURCE": "a resource group",
    "PACKAGE": "a package", "SPATIAL": "a spatial reference system", "UNDO": "an undo tablespace",
    "INDEX": "an index (no column changes)",
}
# Words between CREATE/ALTER/DROP and the object type that say nothing about the object.
_MODIFIERS = frozenset({"OR", "REPLACE", "TEMPORARY", "ONLINE", "OFFLINE", "IGNORE", "UNIQUE", "FULLTEXT",
                        "AGGREGATE", "NONATOMIC"})
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"[A-Za-z_]+")


class _NotTranslated(Exception):
    """sqlglot produced a tree this module does not translate: try the fallback."""


def parse_statement(sql: str, default_db: str = "", *, flavour: str = "mariadb",
                    server_version: tuple[int, int, int] | None = None) -> ParsedStatement:
    """Classify and parse one statement. ``default_db`` is the QUERY event's database (for
    unqualified names); ``flavour`` and ``server_version`` decide executable comments and the
    spelling of MariaDB-only types."""
    text = resolve_executable_comments(sql, server_version, flavour)
    # Most QUERY events are BEGIN/COMMIT or statement-based DML, some of them megabytes long: the
    # first words say they change no columns, without tokenizing the rest.
    first = _first_word(text)
    if first in _FIRST_WORD_REASONS:
        return ParsedStatement(Outcome.IGNORED, reason=_FIRST_WORD_REASONS[first])
    try:
        tokens = tokenize(text)
    except ValueError as exc:
        return ParsedStatement(Outcome.UNKNOWN, reason=f"the statement cannot be tokenized: {exc}")
    while tokens and tokens[-1].is_(";"):
        tokens.pop()
    if not tokens:
        return ParsedStatement(Outcome.IGNORED, reason="empty statement (comments only)")
    ignored = _ignored_reason(tokens)
    if ignored is not None:
        return ParsedStatement(Outcome.IGNORED, reason=ignored)
    verb = tokens[0].upper
    if verb not in ("CREATE", "ALTER", "DROP", "RENAME", "TRUNCATE"):
        return ParsedStatement(Outcome.UNKNOWN, reason=f"{tokens[0].text} is not a statement binhub knows",
                               tables=table_names_in(tokens, default_db))
    if _object_word(tokens) == "SEQUENCE":
        return ParsedStatement(Outcome.UNKNOWN, reason="sequences are tables whose columns binhub does not track",
                               tables=table_names_in(tokens, default_db))
    try:
        return ParsedStatement(Outcome.DDL, tuple(_with_sqlglot(text, tokens, default_db, flavour)),
                               parser="sqlglot")
    except (_NotTranslated, SqlglotError, DdlSyntaxError, ValueError):
        pass
    try:
        return ParsedStatement(Outcome.DDL, tuple(parse_fallback(tokens, default_db, flavour)), parser="fallback")
    except DdlSyntaxError as exc:
        return ParsedStatement(Outcome.UNKNOWN, reason=str(exc), tables=table_names_in(tokens, default_db))


def _first_word(text: str) -> str:
    """The statement's first keyword (upper case), past comments; '' if it starts otherwise."""
    i = 0
    while True:
        m = _SPACE.match(text, i)
        i = m.end() if m else i
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                return ""
            i = end + 2
        elif text.startswith(("#", "-- "), i) or text.startswith("--", i) and text[i + 2:i + 3] in ("", "\n", "\t"):
            end = text.find("\n", i)
            if end < 0:
                return ""
            i = end + 1
        else:
            m = _WORD.match(text, i)
            return m.group().upper() if m else ""


def _object_word(tokens: Sequence[Token]) -> str:
    """The object type of a CREATE/ALTER/DROP/RENAME: TABLE, DATABASE, VIEW, ... ('' if none)."""
    i = 1
    while i < len(tokens):
        t = tokens[i]
        if t.kind == "word" and t.upper in _MODIFIERS:
            i += 1
        elif t.is_("DEFINER"):
            # DEFINER = user@host | CURRENT_USER[()]: skip up to the next bare keyword after it.
            i += 2
            while i < len(tokens) and (tokens[i].kind != "word" or tokens[i].text.startswith("@")
                                       or tokens[i].upper in ("CURRENT_USER", "CURRENT_ROLE")):
                i += 1
            while i < len(tokens) and tokens[i].kind == "punct":
                i += 1
        elif t.is_("ALGORITHM"):
            i += 3  # ALGORITHM = x
        elif t.is_("SQL") and i + 2 < len(tokens):
            i += 3  # SQL SECURITY x
        else:
            return t.upper if t.kind == "word" else ""
    return ""


def _ignored_reason(tokens: Sequence[Token]) -> str | None:
    head = tokens[0].upper
    if head in _FIRST_WORD_REASONS:
        return _FIRST_WORD_REASONS[head]
    if head in ("CREATE", "ALTER", "DROP", "RENAME"):
        obj = _object_word(tokens)
        if obj in _NON_TABLE_OBJECTS:
            if obj == "INDEX" and head == "DROP" and _drops_primary_index(tokens):
                return None
            return f"{head} of {_NON_TABLE_OBJECTS[obj]}"
    return None


def _drops_primary_index(tokens: Sequence[Token]) -> bool:
    """DROP INDEX `PRIMARY` ON t drops the primary key."""
    return any(t.text.upper() == "PRIMARY" and t.kind in ("ident", "word") for t in tokens[2:4])


# ---------------------------------------------------------------------------------------- sqlglot path

def _with_sqlglot(text: str, tokens: Sequence[Token], default_db: str, flavour: str) -> list[Change]:
    trees = sqlglot.parse(text, read="mysql")
    trees = [t for t in trees if t is not None]
    if len(trees) != 1:
        raise _NotTranslated("not exactly one statement")
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
    raise _NotTranslated(type(tree).__name__)


class _Ctx:
    def __init__(self, tokens: Sequence[Token], default_db: str, flavour: str) -> None:
        self.tokens = tokens
        self.by_start = {t.start: k for k, t in enumerate(tokens)}
        self.default_db = default_db
        self.flavour = flavour

    def table(self, node: exp.Expression) -> TableName:
        if not isinstance(node, exp.Table) or not node.name:
            raise _NotTranslated("not a table name")
        db = node.db or self.default_db
        if not db:
            raise DdlSyntaxError(f"table {node.name} is not qualified and the statement has no default database")
        if node.args.get("catalog"):
            raise _NotTranslated("three-part table name")
        return TableName(db, node.name)

    def column_tokens(self, coldef: exp.ColumnDef) -> list[Token]:
        """The tokens of a column definition: from its name to the next top-level ',' or ')'."""
        start = coldef.this.meta.get("start") if isinstance(coldef.this, exp.Identifier) else None
        if start is None or start not in self.by_start:
            raise _NotTranslated("column definition without a source position")
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
                raise _NotTranslated("database name")
            return CreateDatabase(name, charset, collation, bool(tree.args.get("exists")),
                                  bool(tree.args.get("replace")))
        if kind != "TABLE":
            raise _NotTranslated(f"CREATE {kind}")
        temporary = any(isinstance(p, exp.TemporaryProperty) for p in prop_list)
        exists, replace = bool(tree.args.get("exists")), bool(tree.args.get("replace"))
        like = [p for p in prop_list if isinstance(p, exp.LikeProperty)]
        if tree.args.get("expression") is not None:
            raise DdlSyntaxError("CREATE TABLE ... SELECT: the columns come from a query")
        if like:
            return CreateTableLike(self.table(tree.this), self.table(like[0].this), exists, replace, temporary)
        schema = tree.this
        if not isinstance(schema, exp.Schema):
            raise _NotTranslated("CREATE TABLE without a column list")
        like = [p for p in schema.expressions if isinstance(p, exp.LikeProperty)]  # CREATE TABLE t (LIKE s)
        if like:
            return CreateTableLike(self.table(schema.this), self.table(like[0].this), exists, replace, temporary)
        if not any(isinstance(item, exp.ColumnDef) for item in schema.expressions):
            raise _NotTranslated("CREATE TABLE without columns")
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
                           replace, temporary)

    def alter(self, tree: exp.Alter) -> Change:
        name = self.table(tree.this)
        actions: list[AlterAction] = []
        for action in tree.args.get("actions") or []:
            actions.extend(self.alter_action(action))
        charset, collation = _charset_props(tree.args.get("options") or [])
        if charset or collation:
            actions.append(SetTableCharset(charset, collation))
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
                raise _NotTranslated("DROP of something other than a column")
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
                raise _NotTranslated("ALTER COLUMN ... TYPE is not MySQL")
            return []  # SET/DROP DEFAULT
        raise _NotTranslated(type(action).__name__)

    def drop(self, tree: exp.Drop) -> Change:
        kind = str(tree.args.get("kind", "")).upper()
        tables = tree.args.get("tables") or []
        if kind in ("DATABASE", "SCHEMA"):
            if len(tables) != 1:
                raise _NotTranslated("DROP DATABASE of several")
            name = tables[0].db or tables[0].name
            return DropDatabase(name, bool(tree.args.get("exists")))
        if kind == "TABLE":
            return DropTables(tuple(self.table(t) for t in tables), bool(tree.args.get("exists")),
                              bool(tree.args.get("temporary")))
        if kind == "INDEX":
            on = tree.args.get("cluster")
            if tables and tables[0].name.upper() == "PRIMARY" and isinstance(on, exp.OnProperty):
                return AlterTable(self.table(on.this), (DropPrimaryKey(),))
        raise _NotTranslated(f"DROP {kind}")



def _key_names(pk: exp.Expression) -> tuple[str, ...]:
    out = []
    for part in pk.expressions:
        node = part.this if isinstance(part, exp.ColumnPrefix | exp.Ordered) else part
        if isinstance(node, exp.Identifier | exp.Column):
            out.append(node.name)
    return tuple(out)


def _charset_props(props: Sequence[exp.Expression]) -> tuple[str | None, str | None]:
    charset = collation = None
    for p in props:
        if isinstance(p, exp.CharacterSetProperty):
            charset = p.this.name
        elif isinstance(p, exp.CollateProperty):
            collation = p.this.name
    return charset, collation
