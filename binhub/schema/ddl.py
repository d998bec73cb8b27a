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

import re
from collections.abc import Sequence

from binhub.schema.changes import (
    Outcome,
    ParsedStatement,
)
from binhub.schema.coldef import DdlSyntaxError
from binhub.schema.fallback import parse_fallback, table_names_in
from binhub.schema.sqltext import Token, resolve_executable_comments, tokenize

__all__ = ["parse_statement"]

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
    from binhub.schema import ddl_sqlglot  # here: sqlglot is loaded by the first table DDL, not at start-up
    try:
        return ParsedStatement(Outcome.DDL, tuple(ddl_sqlglot.with_sqlglot(text, tokens, default_db, flavour)),
                               parser="sqlglot")
    except (ddl_sqlglot.NotTranslated, DdlSyntaxError, ValueError):
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
