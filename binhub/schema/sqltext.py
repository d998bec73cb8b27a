"""SQL text as the DDL parsers see it: executable comments resolved, then a flat list of tokens.

Statements in a binlog are what the client sent, so they may wrap clauses in executable comments:
``/*!50001 CREATE VIEW ...*/`` (run by servers at or above version 5.0.1) and MariaDB's
``/*M!100100 ...*/`` (run by MariaDB only). The server ran the body, so the parser must see it;
:func:`resolve_executable_comments` keeps the body where the primary would have run it and drops
the comment otherwise. Tokens come from sqlglot's MySQL tokenizer (it knows backquotes with doubled
backquotes, both string quotes, comments), in a small shape both parsers (sqlglot's AST and the
fallback) share.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

__all__ = ["DdlSyntaxError", "Token", "TokenCursor", "resolve_executable_comments", "split_top_level", "tokenize"]

_EXEC_COMMENT = re.compile(r"/\*(M?)!(\d{5,6})?")
_WORD = re.compile(r"[A-Za-z_]+")


@dataclass(frozen=True, slots=True)
class Token:
    """One token. ``kind``: word (keyword or bare name), ident (backquoted), string, bits (``b'101'``),
    hex (``x'41'``, ``0x41``), number, punct."""

    kind: str
    text: str  # identifiers and strings unquoted and unescaped
    start: int  # offsets into the (comment-resolved) statement
    end: int

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind in ("word", "punct") else ""

    def is_(self, *words: str) -> bool:
        """A bare word (or punctuation) equal to one of ``words`` (case-insensitive)."""
        return self.kind in ("word", "punct") and self.text.upper() in words

    @property
    def is_name(self) -> bool:
        return self.kind in ("word", "ident")


@cache
def _sqlglot_tokenizer() -> tuple[Any, type[Exception], dict[Any, str], frozenset[Any]]:
    """sqlglot's MySQL tokenizer class, its error, and the token kinds seen here, imported on the
    first statement tokenized: sqlglot takes 0.1-0.4 s to import, which a stream, a relay or a
    serve that meets no DDL need not pay."""
    from sqlglot.dialects.mysql import MySQL
    from sqlglot.errors import TokenError
    from sqlglot.tokenizer_core import TokenType

    class Tokenizer(MySQL.Tokenizer):
        # sqlglot reads the rest of a RENAME/REPLACE/EXECUTE statement as one opaque string; the
        # fallback parser needs its words.
        COMMANDS = set[TokenType]()

    kinds = {
        TokenType.IDENTIFIER: "ident",
        TokenType.STRING: "string",
        TokenType.NATIONAL_STRING: "string",
        TokenType.HEX_STRING: "hex",
        TokenType.BIT_STRING: "bits",
        TokenType.BYTE_STRING: "string",
        TokenType.RAW_STRING: "string",
        TokenType.NUMBER: "number",
    }
    punct = frozenset({TokenType.L_PAREN, TokenType.R_PAREN, TokenType.COMMA, TokenType.DOT, TokenType.EQ,
                       TokenType.SEMICOLON})
    return Tokenizer, TokenError, kinds, punct


def tokenize(sql: str) -> list[Token]:
    """The statement's tokens (comments dropped). Raises ValueError on text the tokenizer rejects
    (an unterminated quote, for instance)."""
    tokenizer, token_error, kinds, punct = _sqlglot_tokenizer()
    try:
        raw = tokenizer().tokenize(sql)
    except token_error as exc:
        raise ValueError(str(exc)) from exc
    out = []
    for t in raw:
        kind = kinds.get(t.token_type)
        if kind is None:
            kind = "punct" if t.token_type in punct else "word"
        if kind == "word" and any(ch.isspace() for ch in t.text):
            # sqlglot reads some keyword pairs (PRIMARY KEY, ORDER BY, ...) as one token: the
            # parsers here look at words one by one.
            for m in _WORD.finditer(sql, t.start, t.end + 1):
                out.append(Token("word", m.group(), m.start(), m.end()))
            continue
        out.append(Token(kind, t.text, t.start, t.end + 1))
    return out


def resolve_executable_comments(sql: str, server_version: tuple[int, int, int] | None = None,
                                flavour: str | None = None) -> str:
    """``sql`` with each executable comment replaced by its body (where the primary ran it) or by a
    space (where it did not). Quoted text is left alone; an unterminated comment is kept as is for
    the tokenizer to reject. Without ``server_version`` every versioned body counts as run."""
    if "/*" not in sql:
        return sql
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"`":
            j = _skip_quoted(sql, i)
            out.append(sql[i:j])
            i = j
            continue
        if c == "/" and sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            m = _EXEC_COMMENT.match(sql, i)
            if end < 0 or m is None:
                j = n if end < 0 else end + 2
                out.append(sql[i:j])
                i = j
                continue
            mariadb_only, version = m.group(1), m.group(2)
            runs = not (mariadb_only and flavour not in (None, "mariadb"))
            if runs and version and server_version is not None:
                runs = _version_number(server_version) >= int(version)
            # The body may itself hold quoted text with "*/" in it: find the real end.
            body_end = _comment_end(sql, m.end())
            out.append(" " + sql[m.end():body_end] + " " if runs else " ")
            i = body_end + 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _version_number(v: tuple[int, int, int]) -> int:
    return v[0] * 10000 + v[1] * 100 + v[2]


def _skip_quoted(sql: str, i: int) -> int:
    """Index just past the quoted text starting at ``sql[i]`` (doubled quotes and, except in
    backquotes, backslash escapes stay inside)."""
    q = sql[i]
    j = i + 1
    n = len(sql)
    while j < n:
        c = sql[j]
        if c == "\\" and q != "`":
            j += 2
            continue
        if c == q:
            if j + 1 < n and sql[j + 1] == q:
                j += 2
                continue
            return j + 1
        j += 1
    return n


def _comment_end(sql: str, i: int) -> int:
    n = len(sql)
    while i < n:
        if sql[i] in "'\"`":
            i = _skip_quoted(sql, i)
            continue
        if sql.startswith("*/", i):
            return i
        i += 1
    return n


class DdlSyntaxError(ValueError):
    """A statement the parsers could not read; the message says where."""


def split_top_level(tokens: Sequence[Token], sep: str = ",") -> list[list[Token]]:
    """Split at ``sep`` outside parentheses."""
    parts: list[list[Token]] = [[]]
    depth = 0
    for t in tokens:
        if t.kind == "punct":
            if t.text == "(":
                depth += 1
            elif t.text == ")":
                depth -= 1
            elif t.text == sep and depth == 0:
                parts.append([])
                continue
        parts[-1].append(t)
    return [p for p in parts if p]


class TokenCursor:
    """A read position in a token list, with the small steps a recursive-descent reader takes."""

    def __init__(self, tokens: Sequence[Token]) -> None:
        self.toks = list(tokens)
        self.i = 0

    def peek(self, k: int = 0) -> Token | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def at(self, *words: str) -> bool:
        t = self.peek()
        return t is not None and t.is_(*words)

    def at_seq(self, *words: str) -> bool:
        return all((t := self.peek(k)) is not None and t.is_(w) for k, w in enumerate(words))

    def accept(self, *words: str) -> bool:
        if self.at(*words):
            self.i += 1
            return True
        return False

    def accept_seq(self, *words: str) -> bool:
        if self.at_seq(*words):
            self.i += len(words)
            return True
        return False

    def expect(self, *words: str) -> None:
        if not self.accept(*words):
            found = self.peek()
            raise DdlSyntaxError(f"expected {' or '.join(words)}, found {found.text if found else 'the end'!r}")

    def take(self) -> Token:
        t = self.peek()
        if t is None:
            raise DdlSyntaxError("the statement ends too early")
        self.i += 1
        return t

    def name(self) -> str:
        t = self.take()
        if not t.is_name:
            raise DdlSyntaxError(f"expected a name, found {t.text!r}")
        return t.text

    def group(self) -> list[Token]:
        """The tokens inside the parenthesised group at the cursor (consumed with its parentheses)."""
        self.expect("(")
        depth, start = 1, self.i
        while True:
            t = self.take()
            if t.kind == "punct" and t.text == "(":
                depth += 1
            elif t.kind == "punct" and t.text == ")":
                depth -= 1
                if depth == 0:
                    return self.toks[start:self.i - 1]

    def rest(self) -> list[Token]:
        out = self.toks[self.i:]
        self.i = len(self.toks)
        return out

    def done(self) -> bool:
        while self.accept(";"):
            pass
        return self.peek() is None
