"""The tables and databases a DDL statement names, found with sqlglot's MySQL parser, and the
statement with them renamed (``--rename db.t=db2.t2``, ``--rename db=db2``).

The rename is surgical: only the spans of the names change (``t`` → ```db2`.`t2```), everything
else stays byte for byte, so syntax sqlglot could not regenerate (MariaDB's table options, a
column's exact type spelling) reaches the downstream as the primary ran it. Names are taken only
from the places where a statement names a table: the table an ALTER/CREATE/DROP/TRUNCATE acts on,
``LIKE``, ``REFERENCES``, ``RENAME TO``, an index's ``ON``; a database's CREATE/DROP/ALTER.

A statement is rewritten only when the result is certain; otherwise :class:`UncertainDdl` says
why (the sink then stops, naming the statement, for it to be run by hand):

* a name to rename elsewhere than those places (a qualified column ``t.a`` in a CHECK, a SELECT,
  a constraint named like a renamed table, a three-part name);
* an executable comment (``/*!50100 …*/``): names inside it are invisible to the tokenizer;
* a statement sqlglot cannot parse, except ``RENAME TABLE`` and ``ALTER DATABASE``, read token
  by token here, and MariaDB-only words that hold no names (``ALTER ONLINE``, ``WAIT n``,
  ``NOWAIT``, ``WITH SYSTEM VERSIONING``, ``PERSISTENT``), blanked out with spaces (offsets unchanged) before
  parsing.

Every rewrite is checked: the rewritten text parsed again must give the tree of the original with
the names replaced.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from binhub.schema.sqltext import Token, TokenCursor, resolve_executable_comments, tokenize
from binhub.sinks.mysql.options import Renames
from binhub.sinks.mysql.sql import quote_name, quote_table

__all__ = ["NameRef", "UncertainDdl", "ddl_names", "rename_ddl"]

# sqlglot logs a warning for every statement it hands back as a Command: those are refused or read here.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

_EXECUTABLE_COMMENT = re.compile(r"/\*M?!")
_DATABASE_OPTIONS = frozenset({"DEFAULT", "CHARACTER", "CHARSET", "COLLATE", "COMMENT", "UPGRADE", "READ",
                               "ENCRYPTION"})


class UncertainDdl(ValueError):
    """The statement's names cannot be found (or renamed) with certainty; the message says why."""


@dataclass(frozen=True, slots=True)
class NameRef:
    """A table (``table`` set) or database (``table`` None) the statement names, resolved against
    its default database; ``start``/``end`` (exclusive) span the name with its qualifier as written."""

    db: str
    table: str | None
    start: int
    end: int
    qualified: bool
    node: exp.Table | None = None  # the parsed name (None when read from tokens)


def ddl_names(sql: str, default_db: str) -> list[NameRef]:
    """Every table and database ``sql`` names, in the places a DDL names them (module docstring);
    executable comments are read as the primary ran them (the spans are then of that text)."""
    refs, _ = _read(resolve_executable_comments(sql), default_db, None)
    return refs


def rename_ddl(sql: str, default_db: str, renames: Renames) -> str:
    """``sql`` with the names ``renames`` maps elsewhere replaced; unchanged when it names none.
    An unqualified table keeps its name when the database rename alone covers it (the statement
    runs with the renamed default database)."""
    if not renames or not _may_name(sql, renames):
        return sql
    if _EXECUTABLE_COMMENT.search(sql):
        raise UncertainDdl("it holds an executable comment (/*!…*/), whose names binhub does not rewrite")
    refs, tree = _read(sql, default_db, renames)
    out = sql
    for ref in sorted(refs, key=lambda r: r.start, reverse=True):
        new = _renamed(ref, default_db, renames)
        if new is None:
            continue
        text = quote_name(new[0]) if ref.table is None else quote_table(*new)
        out = out[:ref.start] + text + out[ref.end:]
        if ref.node is not None:
            _rename_node(ref.node, new, ref.table is None)
    if out != sql and tree is not None:
        again, _ = _parse(_blank(out))
        if again.sql(dialect="mysql") != tree.sql(dialect="mysql"):
            raise UncertainDdl("the renamed statement does not parse back into the original with new names")
    return out


# -- which names move ----------------------------------------------------------------------------

def _renamed(ref: NameRef, default_db: str, renames: Renames) -> tuple[str, str] | None:
    """(db, table) — or (db, "") for a database — the name becomes; None if it stays as written."""
    if ref.table is None:
        new_db = renames.database(ref.db)
        return (new_db, "") if new_db != ref.db else None
    new = renames(ref.db, ref.table)
    unchanged = (ref.db, ref.table) if ref.qualified else (renames.database(default_db), ref.table)
    return new if new != unchanged else None


def _may_name(sql: str, renames: Renames) -> bool:
    """Whether ``sql`` can name anything ``renames`` moves: a name none of its words spells (in
    any case, executable comments read) cannot be meant, and an unqualified table of a renamed
    default database needs no rewrite. Such a statement is left as it is, parsable or not."""
    words = {db.lower() for db in renames.databases} | {n.lower() for pair in renames.tables for n in pair}
    text = resolve_executable_comments(sql)
    if not any(w in text.lower() for w in words):
        return False
    try:
        tokens = tokenize(text)
    except ValueError:
        return True
    return any(t.is_name and t.text.lower() in words for t in tokens)


# -- reading the statement -------------------------------------------------------------------------

def _read(sql: str, default_db: str, renames: Renames | None) -> tuple[list[NameRef], exp.Expr | None]:
    blanked = _blank(sql)
    tree, command = _parse(blanked)
    if command:
        return _from_tokens(blanked, default_db), None
    refs = _from_tree(sql, tree, default_db)
    if renames is not None:
        placed = {id(r.node) for r in refs}
        for node in tree.find_all(exp.Table):
            if id(node) not in placed and _moves(node.args.get("db"), node.args.get("this"), default_db, renames):
                raise UncertainDdl(f"it names {node.sql(dialect='mysql')} where binhub cannot tell whether that is "
                                   "a table to rename")
        for column in tree.find_all(exp.Column):
            if column.args.get("table") is not None and _moves(column.args.get("db"), column.args["table"],
                                                                  default_db, renames):
                raise UncertainDdl(f"its column {column.sql(dialect='mysql')} is qualified with a renamed table")
    return refs, tree


def _moves(db: exp.Expression | None, name: exp.Expression | None, default_db: str, renames: Renames) -> bool:
    table = name.name if isinstance(name, exp.Identifier) else ""
    qualifier = db.name if isinstance(db, exp.Identifier) else ""
    if not table:
        return bool(qualifier) and renames.database(qualifier) != qualifier
    ref = NameRef(qualifier or default_db, table, 0, 0, bool(qualifier))
    return _renamed(ref, default_db, renames) is not None


def _parse(text: str) -> tuple[exp.Expr, bool]:
    """The statement's tree, and whether sqlglot gave up on it (a Command)."""
    try:
        trees = [t for t in sqlglot.parse(text, read="mysql") if t is not None]
    except SqlglotError as exc:
        raise UncertainDdl(f"sqlglot cannot parse it ({str(exc).splitlines()[0]})") from None
    if len(trees) != 1:
        raise UncertainDdl("it is not exactly one statement")
    return trees[0], isinstance(trees[0], exp.Command)


def _blank(sql: str) -> str:
    """``sql`` with MariaDB-only words that name nothing replaced by spaces (offsets unchanged)."""
    try:
        tokens = tokenize(sql)
    except ValueError as exc:
        raise UncertainDdl(f"it cannot be tokenized: {exc}") from None
    spans = []
    if len(tokens) > 2 and tokens[0].is_("ALTER") and tokens[1].is_("ONLINE", "IGNORE"):
        spans.append((tokens[1].start, tokens[1].end))
    for i, t in enumerate(tokens):
        if t.is_("NOWAIT"):
            spans.append((t.start, t.end))
        elif t.is_("WAIT") and i + 1 < len(tokens) and tokens[i + 1].kind == "number":
            spans.append((t.start, tokens[i + 1].end))
        elif t.is_("PERSISTENT") and i and tokens[i - 1].is_(")"):  # a generated column's STORED
            spans.append((t.start, t.end))
        elif t.is_("WITH", "WITHOUT") and i + 2 < len(tokens) and tokens[i + 1].is_("SYSTEM") \
                and tokens[i + 2].is_("VERSIONING"):
            spans.append((t.start, tokens[i + 2].end))
    for start, end in spans:
        sql = sql[:start] + " " * (end - start) + sql[end:]
    return sql


def _from_tree(sql: str, tree: exp.Expr, default_db: str) -> list[NameRef]:
    kind = str(tree.args.get("kind") or "").upper()
    if kind in ("DATABASE", "SCHEMA") and isinstance(tree, exp.Create | exp.Drop):
        nodes = [tree.this] if isinstance(tree, exp.Create) else list(tree.args.get("tables") or [])
        if len(nodes) != 1 or not isinstance(nodes[0], exp.Table):
            raise UncertainDdl("it names no single database")
        node = nodes[0]
        ident = node.args.get("db") if not node.name else node.this
        return [_span(sql, node, None, ident, ident.name if isinstance(ident, exp.Identifier) else "", None)]
    if not (isinstance(tree, exp.Alter | exp.Create | exp.Drop | exp.TruncateTable)
            and kind in ("TABLE", "INDEX", "")):
        raise UncertainDdl(f"binhub does not rename in a {tree.key.upper()} {kind} statement".replace("  ", " "))
    refs = []
    for node in tree.find_all(exp.Table):
        if _names_a_table(node, tree, kind):
            if node.args.get("catalog") is not None:
                raise UncertainDdl(f"it names a table in three parts: {node.sql(dialect='mysql')}")
            db_ident = node.args.get("db")
            db = db_ident.name if isinstance(db_ident, exp.Identifier) else ""
            refs.append(_span(sql, node, db_ident, node.this, db or default_db, node.name))
    return refs


def _names_a_table(node: exp.Table, tree: exp.Expr, kind: str) -> bool:
    """Whether ``node`` stands where the statement names a table (not an index, a constraint, a
    table of a query)."""
    parent, key = node.parent, node.arg_key
    if parent is tree:
        return (key == "this" and kind == "TABLE" and isinstance(tree, exp.Alter | exp.Create)) \
            or (key == "tables" and kind == "TABLE" and isinstance(tree, exp.Drop)) \
            or (key == "expressions" and isinstance(tree, exp.TruncateTable))
    if isinstance(parent, exp.Schema) and key == "this":
        return isinstance(parent.parent, exp.Reference) or (parent.parent is tree and kind == "TABLE")
    if isinstance(parent, exp.LikeProperty | exp.AlterRename):
        return True
    if isinstance(parent, exp.Index) and key == "table":
        return parent.parent is tree and kind == "INDEX"
    if isinstance(parent, exp.OnProperty):
        return parent.parent is tree and kind == "INDEX" and isinstance(tree, exp.Drop)
    return False


def _span(sql: str, node: exp.Table | None, db_ident: exp.Expression | None, ident: exp.Expression | None,
          db: str, table: str | None) -> NameRef:
    """The name's span in ``sql``, checked against the text (sqlglot's offsets are inclusive)."""
    parts = [p for p in (db_ident, ident) if p is not None]
    for part in parts:
        if not isinstance(part, exp.Identifier) or "start" not in part.meta:
            raise UncertainDdl(f"binhub cannot place the name {part.sql(dialect='mysql')} in the statement")
        written = sql[part.meta["start"]:part.meta["end"] + 1]
        if written not in (part.name, quote_name(part.name)):
            raise UncertainDdl(f"the name {part.name!r} is not where the parser says it is")
    start, end = parts[0].meta["start"], parts[-1].meta["end"] + 1
    return NameRef(db, table, start, end, db_ident is not None, node)


def _rename_node(node: exp.Table, new: tuple[str, str], database: bool) -> None:
    """The parsed name as the rewrite writes it (for the check that the rewrite parses back)."""
    if database:
        node.set("db" if not node.name else "this", exp.to_identifier(new[0], quoted=True))
        return
    node.set("db", exp.to_identifier(new[0], quoted=True))
    node.set("this", exp.to_identifier(new[1], quoted=True))


# -- statements sqlglot does not parse: RENAME TABLE, ALTER DATABASE ------------------------------------

def _from_tokens(sql: str, default_db: str) -> list[NameRef]:
    try:
        tokens = tokenize(sql)
    except ValueError as exc:
        raise UncertainDdl(f"it cannot be tokenized: {exc}") from None
    while tokens and tokens[-1].is_(";"):
        tokens.pop()
    cur = TokenCursor(tokens)
    if cur.accept_seq("RENAME", "TABLE") or cur.accept_seq("RENAME", "TABLES"):
        cur.accept_seq("IF", "EXISTS")
        refs = []
        while True:
            refs.append(_token_name(cur, default_db))
            if not cur.accept("TO"):
                raise UncertainDdl("RENAME TABLE without TO")
            refs.append(_token_name(cur, default_db))
            if not cur.accept(","):
                break
        if not cur.done():
            raise UncertainDdl(f"RENAME TABLE followed by {cur.peek().text!r}")  # type: ignore[union-attr]
        return refs
    if cur.accept("ALTER") and cur.accept("DATABASE", "SCHEMA"):
        t = cur.peek()
        if t is None or (t.kind == "word" and t.upper in _DATABASE_OPTIONS):
            return []  # the default database's: the statement runs with the renamed one
        if not t.is_name:
            raise UncertainDdl(f"ALTER DATABASE followed by {t.text!r}")
        return [NameRef(t.text, None, t.start, t.end, True)]
    raise UncertainDdl("sqlglot cannot parse it")


def _token_name(cur: TokenCursor, default_db: str) -> NameRef:
    first = cur.take()
    if not _is_name(first):
        raise UncertainDdl(f"expected a table name, found {first.text!r}")
    if not cur.accept("."):
        return NameRef(default_db, first.text, first.start, first.end, False)
    second = cur.take()
    if not _is_name(second):
        raise UncertainDdl(f"expected a table name after {first.text}., found {second.text!r}")
    return NameRef(first.text, second.text, first.start, second.end, True)


def _is_name(t: Token) -> bool:
    return t.kind == "ident" or (t.kind == "word" and not t.is_("TO", ",", ";"))
