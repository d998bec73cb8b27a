"""The SQL binhub's server understands: a tokenizer and a small parser into typed statements.

Replicas and tools send a handful of statement shapes in endless spellings (``@@GLOBAL.SERVER_ID``,
``@@server_id``, ``SET @a=1, @b := 2``, ``/*!40101 SET NAMES utf8 */``, trailing ``;``, any case),
so statements are tokenized and parsed into the dataclasses below and answered from those, never
matched as strings (exact matching is what breaks ripple and kingbus with MySQL 8.0.26+).

Names are normalised: keywords and system variables lower-case, user variables lower-case without
``@`` (MySQL compares both case-insensitively). Every expression keeps its source text, because a
result-set column is named after the expression as written (``SELECT @@GLOBAL.SERVER_ID`` returns a
column called ``@@GLOBAL.SERVER_ID``).

:func:`parse` raises :class:`SqlSyntaxError` with the statement's start for anything outside this
grammar; the session turns that into ERR 1064 and carries on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "Assignment", "Binary", "Call", "Column", "Expr", "InList", "IsNull", "KillStmt", "Like", "Literal",
    "PurgeStmt", "SelectItem", "SelectStmt", "SetStmt", "ShowBinlogEvents", "ShowSimple", "ShowVariables",
    "SqlSyntaxError", "Statement", "SysVar", "TxnStmt", "Unary", "UseStmt", "UserVar", "parse", "tokenize",
]

MAX_SQL_LENGTH = 1 << 20  # a replica's statements are tiny; this bounds parser work on garbage


class SqlSyntaxError(ValueError):
    """A statement binhub cannot parse; ``statement`` is its start, for the error message."""

    def __init__(self, message: str, statement: str) -> None:
        super().__init__(message)
        self.statement = statement


# ------------------------------------------------------------------------------ tokens

@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # word, qident, string, number, sysvar, uservar, op, end
    value: str
    start: int
    end: int
    scope: str = ""  # sysvar only: "global" | "session" | ""


_TOKEN_RE = re.compile(r"""
    (?P<ws>\s+)
  | (?P<comment>/\*(?![!+]).*?\*/|/\*\+.*?\*/|(?:--[ \t]|--$|\#)[^\n]*)
  | (?P<exec_open>/\*M?!\d*)
  | (?P<exec_close>\*/)
  | (?P<sysvar>@@(?:(?P<scope>global|session|local)\.)?(?P<sysname>`[^`]+`|[A-Za-z0-9_$.]+))
  | (?P<uservar>@(?:(?P<uq>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*"|`[^`]*`)|(?P<uname>[A-Za-z0-9_$.]+)))
  | (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![A-Za-z_]))
  | (?P<qident>`(?:[^`]|``)*`)
  | (?P<word>[A-Za-z_$0-9][A-Za-z0-9_$]*)
  | (?P<op>:=|<=>|<>|!=|<=|>=|\|\||&&|[=<>(),.*+\-/;%!~])
""", re.VERBOSE | re.DOTALL | re.IGNORECASE)

_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a", "%": "\\%", "_": "\\_"}


def _unquote(text: str) -> str:
    q = text[0]
    body = text[1:-1]
    if q == "`":
        return body.replace("``", "`")
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
        elif c == q and i + 1 < len(body) and body[i + 1] == q:
            out.append(q)
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def tokenize(sql: str) -> list[Token]:
    """Split ``sql`` into tokens; comments vanish, the content of ``/*! … */`` is kept."""
    tokens: list[Token] = []
    pos = 0
    in_exec = 0
    n = len(sql)
    while pos < n:
        m = _TOKEN_RE.match(sql, pos)
        if m is None:
            raise SqlSyntaxError(f"unexpected character {sql[pos]!r} at offset {pos}", sql)
        kind = m.lastgroup or ""
        start, pos = m.start(), m.end()
        if kind in ("ws", "comment"):
            continue
        if kind == "exec_open":
            in_exec += 1
            continue
        if kind == "exec_close":
            if not in_exec:
                raise SqlSyntaxError(f"unexpected '*/' at offset {start}", sql)
            in_exec -= 1
            continue
        if kind == "sysvar":
            name = m.group("sysname")
            name = _unquote(name) if name.startswith("`") else name
            scope = (m.group("scope") or "").lower()
            tokens.append(Token("sysvar", name.lower(), start, pos, "session" if scope == "local" else scope))
        elif kind == "uservar":
            quoted = m.group("uq")
            name = _unquote(quoted) if quoted else m.group("uname")
            tokens.append(Token("uservar", name.lower(), start, pos))
        elif kind in ("string", "qident"):
            tokens.append(Token(kind, _unquote(m.group()), start, pos))
        elif kind == "number" or kind == "op":
            tokens.append(Token(kind, m.group(), start, pos))
        else:
            group = m.group()
            # "1abc" is an identifier in MySQL, "123" a number: the regex tries numbers first.
            tokens.append(Token("word", group, start, pos))
    tokens.append(Token("end", "", n, n))
    return tokens


# ------------------------------------------------------------------------------ expressions

@dataclass(frozen=True, slots=True)
class Literal:
    value: str | int | float | None


@dataclass(frozen=True, slots=True)
class SysVar:
    name: str  # lower-case
    scope: str = ""  # "global" | "session" | "" (plain @@name)


@dataclass(frozen=True, slots=True)
class UserVar:
    name: str  # lower-case, without '@'


@dataclass(frozen=True, slots=True)
class Column:
    name: str  # as written (identifiers, ON/OFF/DEFAULT as SET values)


@dataclass(frozen=True, slots=True)
class Call:
    name: str  # lower-case
    args: tuple[Expr, ...] = ()


@dataclass(frozen=True, slots=True)
class Unary:
    op: str  # "-", "+", "not"
    operand: Expr


@dataclass(frozen=True, slots=True)
class Binary:
    op: str  # "=", "<>", "<", ">", "<=", ">=", "<=>", "and", "or", "+", "-", "*", "/"
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class InList:
    expr: Expr
    items: tuple[Expr, ...]
    negated: bool = False


@dataclass(frozen=True, slots=True)
class IsNull:
    expr: Expr
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Like:
    expr: Expr
    pattern: Expr
    negated: bool = False


Expr = Literal | SysVar | UserVar | Column | Call | Unary | Binary | InList | IsNull | Like


# ------------------------------------------------------------------------------ statements

@dataclass(frozen=True, slots=True)
class Assignment:
    target: SysVar | UserVar
    value: Expr


@dataclass(frozen=True, slots=True)
class SetStmt:
    assignments: tuple[Assignment, ...]


@dataclass(frozen=True, slots=True)
class SelectItem:
    expr: Expr | None  # None for "*"
    name: str  # the column name: the alias, or the expression as written


@dataclass(frozen=True, slots=True)
class SelectStmt:
    items: tuple[SelectItem, ...]
    table: str | None = None  # "db.table" lower-case when there is a FROM (other than DUAL)
    where: Expr | None = None
    limit: int | None = None


@dataclass(frozen=True, slots=True)
class ShowVariables:
    scope: str  # "global" | "session" | ""
    like: str | None = None
    where: Expr | None = None
    status: bool = False  # SHOW STATUS: same shape, other catalogue


@dataclass(frozen=True, slots=True)
class ShowSimple:
    """SHOW BINARY LOGS, MASTER STATUS, SLAVE HOSTS, ...: ``what`` is the normalised phrase."""

    what: str  # e.g. "binary logs", "master status", "slave hosts", "replicas", "slave status", "all slaves status"
    like: str | None = None
    #: SHOW SLAVE|REPLICA STATUS FOR CHANNEL 'x' (MySQL; MariaDB ≥ 10.7 too) or MariaDB's SHOW SLAVE 'x' STATUS:
    #: the channel / connection name ("" is the default one); None when not named.
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class ShowBinlogEvents:
    file: str | None = None
    position: int | None = None
    offset: int = 0
    limit: int | None = None


@dataclass(frozen=True, slots=True)
class PurgeStmt:
    to: str | None = None
    before: Expr | None = None


@dataclass(frozen=True, slots=True)
class KillStmt:
    connection_id: int
    query_only: bool = False


@dataclass(frozen=True, slots=True)
class UseStmt:
    database: str


@dataclass(frozen=True, slots=True)
class TxnStmt:
    kind: str  # "begin" | "commit" | "rollback"


Statement = SetStmt | SelectStmt | ShowVariables | ShowSimple | ShowBinlogEvents | PurgeStmt | KillStmt | UseStmt | TxnStmt

#: SHOW phrases answered; each maps its spellings to one normalised name.
_SHOW_PHRASES: dict[tuple[str, ...], str] = {
    ("binary", "logs"): "binary logs", ("master", "logs"): "binary logs",
    ("master", "status"): "master status", ("binary", "log", "status"): "master status",
    ("slave", "hosts"): "slave hosts", ("replicas",): "replicas",
    ("slave", "status"): "slave status", ("replica", "status"): "replica status",
    ("all", "slaves", "status"): "all slaves status", ("all", "replicas", "status"): "all slaves status",
    ("warnings",): "warnings", ("errors",): "errors", ("databases",): "databases", ("schemas",): "databases",
    ("grants",): "grants", ("processlist",): "processlist", ("full", "processlist"): "processlist",
    ("engines",): "engines", ("collation",): "collation", ("character", "set"): "character set",
    ("charset",): "character set", ("plugins",): "plugins", ("tables",): "tables",
}


# ------------------------------------------------------------------------------ parser

class _Parser:
    def __init__(self, sql: str) -> None:
        self.sql = sql
        self.toks = tokenize(sql)
        self.i = 0

    # -- token helpers
    @property
    def tok(self) -> Token:
        return self.toks[self.i]

    def error(self, why: str | None = None) -> SqlSyntaxError:
        t = self.tok
        near = self.sql[t.start:t.start + 40] if t.kind != "end" else "the end of the statement"
        return SqlSyntaxError(why or f"unexpected {near!r}", self.sql)

    def is_kw(self, *words: str) -> bool:
        t = self.tok
        return t.kind == "word" and t.value.lower() in words

    def accept_kw(self, *words: str) -> str | None:
        if self.is_kw(*words):
            word = self.tok.value.lower()
            self.i += 1
            return word
        return None

    def expect_kw(self, word: str) -> None:
        if not self.accept_kw(word):
            raise self.error(f"expected {word.upper()} near {self.sql[self.tok.start:self.tok.start + 40]!r}")

    def accept_op(self, *ops: str) -> str | None:
        t = self.tok
        if t.kind == "op" and t.value in ops:
            self.i += 1
            return t.value
        return None

    def expect_op(self, op: str) -> None:
        if not self.accept_op(op):
            raise self.error(f"expected {op!r} near {self.sql[self.tok.start:self.tok.start + 40]!r}")

    def string(self) -> str:
        t = self.tok
        if t.kind in ("string", "qident", "word", "number"):
            self.i += 1
            return t.value
        raise self.error("expected a name or a quoted string")

    def integer(self) -> int:
        t = self.tok
        if t.kind != "number" or not t.value.isdigit():
            raise self.error("expected an integer")
        self.i += 1
        return int(t.value)

    # -- statements
    def statement(self) -> Statement:
        word = self.accept_kw("set", "select", "show", "purge", "kill", "use", "begin", "commit", "rollback",
                              "start")
        if word is None:
            raise self.error(f"unknown statement {self.sql.strip()[:60]!r}")
        stmt: Statement
        if word == "set":
            stmt = self.set_stmt()
        elif word == "select":
            stmt = self.select_stmt()
        elif word == "show":
            stmt = self.show_stmt()
        elif word == "purge":
            stmt = self.purge_stmt()
        elif word == "kill":
            query_only = self.accept_kw("query") is not None
            self.accept_kw("connection")
            stmt = KillStmt(self.integer(), query_only)
        elif word == "use":
            stmt = UseStmt(self.string())
        elif word == "start":
            self.expect_kw("transaction")
            self._skip_rest()
            stmt = TxnStmt("begin")
        else:
            self.accept_kw("work")
            self._skip_rest()
            stmt = TxnStmt("begin" if word == "begin" else word)
        while self.accept_op(";"):
            pass
        if self.tok.kind != "end":
            raise self.error()
        return stmt

    def _skip_rest(self) -> None:
        while self.tok.kind != "end" and not (self.tok.kind == "op" and self.tok.value == ";"):
            self.i += 1

    def set_stmt(self) -> SetStmt:
        if self.accept_kw("transaction") or (self.is_kw("session", "global") and
                                             self.toks[self.i + 1].value.lower() == "transaction"):
            self._skip_rest()  # isolation levels mean nothing to a binlog server
            return SetStmt(())
        out: list[Assignment] = []
        scope = ""
        while True:
            scope = self.accept_kw("global", "session", "local", "persist", "persist_only") or scope
            scope = "session" if scope == "local" else scope
            if self.accept_kw("names"):
                charset = self.string()
                out.append(Assignment(SysVar("names", "session"), Literal(charset)))
                if self.accept_kw("collate"):
                    out.append(Assignment(SysVar("collation_connection", "session"), Literal(self.string())))
            elif self.is_kw("character", "charset"):
                if self.accept_kw("character"):
                    self.expect_kw("set")
                else:
                    self.i += 1
                out.append(Assignment(SysVar("character_set_client", "session"), Literal(self.string())))
            else:
                target = self.set_target(scope)
                if not self.accept_op("=", ":="):
                    raise self.error("expected '=' in SET")
                out.append(Assignment(target, self.expr()))
            if not self.accept_op(","):
                return SetStmt(tuple(out))

    def set_target(self, scope: str) -> SysVar | UserVar:
        t = self.tok
        if t.kind == "uservar":
            self.i += 1
            return UserVar(t.value)
        if t.kind == "sysvar":
            self.i += 1
            return SysVar(t.value, t.scope or "session")
        if t.kind in ("word", "qident"):
            self.i += 1
            name = t.value.lower()
            while self.accept_op("."):  # SET GLOBAL plugin.var (rare) keeps the dotted name
                name += "." + self.string().lower()
            return SysVar(name, scope if scope in ("global", "persist", "persist_only") else "session")
        raise self.error("expected a variable to SET")

    def select_stmt(self) -> SelectStmt:
        while self.accept_kw("sql_no_cache", "sql_cache", "sql_calc_found_rows", "high_priority", "distinct",
                             "straight_join"):
            pass
        items: list[SelectItem] = []
        while True:
            start = self.tok.start
            if self.accept_op("*"):
                items.append(SelectItem(None, "*"))
            else:
                expr = self.expr()
                text = self.sql[start:self.toks[self.i - 1].end].strip()
                alias = None
                explicit = self.accept_kw("as") is not None
                if explicit or self.tok.kind in ("string", "qident") or (self.tok.kind == "word" and not self.is_kw(
                        "from", "limit", "where", "order", "group", "having", "into", "for", "lock", "union")):
                    alias = self.string()
                items.append(SelectItem(expr, alias if alias is not None else text))
            if not self.accept_op(","):
                break
        table = None
        where = None
        limit = None
        if self.accept_kw("from"):
            table = self.string().lower()
            while self.accept_op("."):
                table += "." + self.string().lower()
            if table == "dual":
                table = None
            else:
                self.accept_kw("as")
                if self.tok.kind in ("word", "qident") and not self.is_kw("where", "limit", "order", "group"):
                    self.i += 1  # a table alias
        if self.accept_kw("where"):
            where = self.expr()
        if self.accept_kw("order"):
            self.expect_kw("by")
            self._skip_until("limit")
        if self.accept_kw("limit"):
            limit = self.integer()
            if self.accept_op(","):
                limit = self.integer()  # LIMIT offset, n: at most one row anyway without FROM
        return SelectStmt(tuple(items), table, where, limit)

    def _skip_until(self, word: str) -> None:
        while self.tok.kind != "end" and not self.is_kw(word) and not (self.tok.kind == "op" and self.tok.value == ";"):
            self.i += 1

    def show_stmt(self) -> Statement:
        scope = self.accept_kw("global", "session", "local") or ""
        scope = "session" if scope == "local" else scope
        if self.accept_kw("variables", "status"):
            is_status = self.toks[self.i - 1].value.lower() == "status"
            like, where = self.like_or_where()
            return ShowVariables(scope, like, where, is_status)
        if self.accept_kw("binlog"):
            self.expect_kw("events")
            return self.binlog_events()
        words: list[str] = []
        channel: str | None = None
        while self.tok.kind == "word" and not self.is_kw("like", "where", "for") and len(words) < 4:
            words.append(self.tok.value.lower())
            self.i += 1
            if words in (["slave"], ["replica"]) and self.tok.kind == "string":
                channel = self.string()  # MariaDB's SHOW SLAVE 'connection_name' STATUS
        what = _SHOW_PHRASES.get(tuple(words))
        if what is None:
            raise SqlSyntaxError(f"binhub does not support SHOW {' '.join(words).upper()}", self.sql)
        if channel is not None and what not in ("slave status", "replica status"):
            raise self.error(f"a connection name only goes with SHOW {words[0].upper()} STATUS")
        if what == "grants" and self.accept_kw("for"):
            self._skip_rest()
        if what in ("slave status", "replica status") and channel is None and self.accept_kw("for"):
            self.expect_kw("channel")
            channel = self.string()
        like, _ = self.like_or_where()
        return ShowSimple(what, like, channel)

    def like_or_where(self) -> tuple[str | None, Expr | None]:
        if self.accept_kw("like"):
            t = self.tok
            if t.kind != "string":
                raise self.error("LIKE needs a quoted pattern")
            self.i += 1
            return t.value, None
        if self.accept_kw("where"):
            return None, self.expr()
        return None, None

    def binlog_events(self) -> ShowBinlogEvents:
        file = position = limit = None
        offset = 0
        if self.accept_kw("in"):
            file = self.string()
        if self.accept_kw("from"):
            position = self.integer()
        if self.accept_kw("limit"):
            limit = self.integer()
            if self.accept_op(","):
                offset, limit = limit, self.integer()
        return ShowBinlogEvents(file, position, offset, limit)

    def purge_stmt(self) -> PurgeStmt:
        if not self.accept_kw("binary", "master"):
            raise self.error("expected PURGE BINARY LOGS")
        self.expect_kw("logs")
        if self.accept_kw("to"):
            return PurgeStmt(to=self.string())
        self.expect_kw("before")
        return PurgeStmt(before=self.expr())

    # -- expressions (precedence climbing: or < and < not < comparison < additive < multiplicative)
    def expr(self) -> Expr:
        left = self.and_expr()
        while self.accept_kw("or", "xor") or self.accept_op("||"):
            left = Binary("or", left, self.and_expr())
        return left

    def and_expr(self) -> Expr:
        left = self.not_expr()
        while self.accept_kw("and") or self.accept_op("&&"):
            left = Binary("and", left, self.not_expr())
        return left

    def not_expr(self) -> Expr:
        if self.accept_kw("not") or self.accept_op("!"):
            return Unary("not", self.not_expr())
        return self.comparison()

    def comparison(self) -> Expr:
        left = self.additive()
        while True:
            op = self.accept_op("=", "<>", "!=", "<", ">", "<=", ">=", "<=>")
            if op:
                left = Binary("<>" if op == "!=" else op, left, self.additive())
                continue
            if self.accept_kw("is"):
                negated = self.accept_kw("not") is not None
                self.expect_kw("null")
                left = IsNull(left, negated)
                continue
            negated = False
            save = self.i
            if self.accept_kw("not"):
                negated = True
            if self.accept_kw("in"):
                self.expect_op("(")
                items = [self.expr()]
                while self.accept_op(","):
                    items.append(self.expr())
                self.expect_op(")")
                left = InList(left, tuple(items), negated)
                continue
            if self.accept_kw("like"):
                left = Like(left, self.additive(), negated)
                continue
            self.i = save
            return left

    def additive(self) -> Expr:
        left = self.multiplicative()
        while op := self.accept_op("+", "-"):
            left = Binary(op, left, self.multiplicative())
        return left

    def multiplicative(self) -> Expr:
        left = self.unary()
        while op := self.accept_op("*", "/", "%"):
            left = Binary(op, left, self.unary())
        return left

    def unary(self) -> Expr:
        if op := self.accept_op("-", "+"):
            return Unary(op, self.unary())
        return self.primary()

    def primary(self) -> Expr:
        t = self.tok
        if t.kind == "string":
            self.i += 1
            value = t.value
            while self.tok.kind == "string":  # 'a' 'b' is 'ab' in SQL
                value += self.tok.value
                self.i += 1
            return Literal(value)
        if t.kind == "number":
            self.i += 1
            if re.fullmatch(r"\d+", t.value):
                return Literal(int(t.value))
            return Literal(float(t.value))
        if t.kind == "sysvar":
            self.i += 1
            return SysVar(t.value, t.scope)
        if t.kind == "uservar":
            self.i += 1
            return UserVar(t.value)
        if self.accept_op("("):
            if self.is_kw("select"):
                raise self.error("binhub does not support subqueries")
            inner = self.expr()
            self.expect_op(")")
            return inner
        if t.kind == "word" and t.value.startswith("_") and self.toks[self.i + 1].kind == "string":
            self.i += 1  # a charset introducer (_utf8mb4'x')
            return self.primary()
        if t.kind in ("word", "qident"):
            self.i += 1
            lowered = t.value.lower()
            if t.kind == "word" and lowered == "null":
                return Literal(None)
            if t.kind == "word" and lowered in ("true", "false"):
                return Literal(int(lowered == "true"))
            if self.accept_op("("):
                args: list[Expr] = []
                if not self.accept_op(")"):
                    args.append(Literal("*") if self.accept_op("*") else self.expr())
                    while self.accept_op(","):
                        args.append(self.expr())
                    self.expect_op(")")
                return Call(lowered, tuple(args))
            name = t.value
            while self.accept_op("."):
                name += "." + self.string()
            if t.kind == "word" and lowered in ("current_user", "current_timestamp", "localtimestamp",
                                                "current_date", "current_time", "utc_timestamp"):
                return Call(lowered)
            return Column(name)
        raise self.error()


def parse(sql: str) -> Statement:
    """Parse one statement (a trailing ``;`` is fine). Raises :class:`SqlSyntaxError`."""
    if len(sql) > MAX_SQL_LENGTH:
        raise SqlSyntaxError(f"statement of {len(sql)} characters is too long for binhub", sql[:60])
    try:
        return _Parser(sql).statement()
    except RecursionError:
        raise SqlSyntaxError("statement nests too deeply", sql[:60]) from None

