"""Answering parsed statements: SET, SELECT, SHOW, PURGE, KILL, USE, as a primary would.

:class:`QueryHandler` turns a :mod:`binhub.serve.sql` statement into a reply (:class:`OkReply` or
:class:`RowsReply`) or raises :class:`~binhub.wire.errors.MysqlError` (code, message) for the session to
send as an ERR packet; the connection always survives. It reads the server through the small
:class:`ServerView` protocol, so the unit tests answer whole replica conversations with a fake.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from binhub.serve import sql
from binhub.serve.binlogs import binlog_event_rows, gtid_position_at
from binhub.serve.replica_status import column_type, read_replica_status, replica_status_rows
from binhub.serve.variables import (
    ServerFacts,
    Value,
    compression_status,
    global_variables,
    like_to_regex,
    session_defaults,
    show_value,
    status_variables,
)
from binhub.wire.constants import Charset, ColumnType
from binhub.wire.errors import ErrorCode, MysqlError
from binhub.wire.messages import ColumnDefinition

if TYPE_CHECKING:
    from binhub.serve.session import SessionState
    from binhub.store import StoreReader

__all__ = ["OkReply", "QueryHandler", "ReplicaEntry", "RowsReply", "ServerView", "parse_datetime"]

#: Schemas whose tables binhub "has" (empty): tools query them on connect and must not fail.
_SYSTEM_SCHEMAS = ("information_schema.", "performance_schema.", "mysql.", "sys.")


@dataclass(frozen=True, slots=True)
class OkReply:
    info: str = ""


@dataclass(frozen=True, slots=True)
class RowsReply:
    columns: list[ColumnDefinition]
    rows: list[tuple[Value, ...]] = field(default_factory=list)


Reply = OkReply | RowsReply


@dataclass(frozen=True, slots=True)
class ReplicaEntry:
    """One row of SHOW SLAVE HOSTS / SHOW REPLICAS."""

    server_id: int
    host: str
    port: int
    master_id: int
    uuid: str
    connection_id: int


@dataclass(frozen=True, slots=True)
class ProcessEntry:
    connection_id: int
    user: str
    host: str
    database: str | None
    command: str
    seconds: int


class ServerView(Protocol):
    """What the SQL front end needs of the server."""

    @property
    def store(self) -> StoreReader: ...

    def facts(self) -> ServerFacts: ...

    def replicas(self) -> list[ReplicaEntry]: ...

    def processes(self) -> list[ProcessEntry]: ...

    def purge(self, to: str | None, before: float | None) -> list[str]: ...

    def kill(self, connection_id: int, *, by_user: str, admin: bool) -> None: ...


def _string_column(name: str) -> ColumnDefinition:
    return ColumnDefinition(name)


def _typed_column(name: str, kind: ColumnType) -> ColumnDefinition:
    if kind in (ColumnType.LONG, ColumnType.LONGLONG):
        return ColumnDefinition(name, kind, Charset.BINARY, 21, flags=0x80, decimals=0)
    if kind == ColumnType.DOUBLE:
        return ColumnDefinition(name, kind, Charset.BINARY, 22, flags=0x80, decimals=31)
    return ColumnDefinition(name)


def _column_for(name: str, values: Sequence[Value]) -> ColumnDefinition:
    sample = next((v for v in values if v is not None), None)
    if isinstance(sample, bool | int):
        return _typed_column(name, ColumnType.LONGLONG)
    if isinstance(sample, float):
        return _typed_column(name, ColumnType.DOUBLE)
    return ColumnDefinition(name)


def _rows(names: Sequence[str], rows: list[tuple[Value, ...]]) -> RowsReply:
    cols = [_column_for(n, [r[i] for r in rows]) for i, n in enumerate(names)]
    return RowsReply(cols, rows)


def text_value(value: Value) -> str | None:
    """A value as the text protocol sends it (booleans as 1/0, NULL as None)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _number(value: Value) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool | int | float):
        return float(value)
    try:
        return float(value.strip() or "0")
    except ValueError:
        return 0.0


def _truthy(value: Value) -> bool:
    n = _number(value)
    return bool(n)


def parse_datetime(text: str) -> float:
    """'YYYY-MM-DD[ HH:MM:SS[.ffffff]]' in local time → unix time (PURGE ... BEFORE)."""
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(text.strip(), fmt).timestamp()
        except ValueError:
            continue
    raise MysqlError(ErrorCode.WRONG_VALUE, f"Incorrect DATETIME value: '{text}'")


class QueryHandler:
    """Executes statements for one session against one server."""

    def __init__(self, server: ServerView, session: SessionState) -> None:
        self.server = server
        self.session = session
        self._facts: ServerFacts | None = None
        self._functions: dict[str, Callable[[list[Value]], Value]] = {
            "unix_timestamp": lambda a: int(time.time()) if not a else _unix(a[0]),
            "version": lambda a: self.facts.version,
            "database": lambda a: self.session.database,
            "schema": lambda a: self.session.database,
            "user": lambda a: f"{self.session.user}@{self.session.client_host}",
            "session_user": lambda a: f"{self.session.user}@{self.session.client_host}",
            "system_user": lambda a: f"{self.session.user}@{self.session.client_host}",
            "current_user": lambda a: f"{self.session.user}@%",
            "connection_id": lambda a: self.session.connection_id,
            "now": lambda a: _now(), "current_timestamp": lambda a: _now(), "sysdate": lambda a: _now(),
            "localtimestamp": lambda a: _now(),
            "utc_timestamp": lambda a: dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "ifnull": _ifnull,
            "coalesce": lambda a: next((v for v in a if v is not None), None),
            "concat": lambda a: None if any(v is None for v in a) else "".join(text_value(v) or "" for v in a),
            "lower": lambda a: _case(a, "lower"),
            "upper": lambda a: _case(a, "upper"),
            "if": _if,
            "last_insert_id": lambda a: 0, "found_rows": lambda a: 0, "row_count": lambda a: -1,
            "binlog_gtid_pos": self._binlog_gtid_pos,
        }

    @property
    def facts(self) -> ServerFacts:
        if self._facts is None:  # one snapshot per statement: consistent and cheap
            self._facts = self.server.facts()
        return self._facts

    # -- entry point --------------------------------------------------------------------------
    def execute(self, text: str) -> Reply:
        self._facts = None
        try:
            stmt = sql.parse(text)
        except sql.SqlSyntaxError as exc:
            raise MysqlError(ErrorCode.PARSE_ERROR, f"You have an error in your SQL syntax: {exc} "
                           f"(binhub answers replication and monitoring statements only; "
                           f"statement: {exc.statement.strip()[:80]!r})") from None
        return self._dispatch(stmt)

    def _dispatch(self, stmt: sql.Statement) -> Reply:
        match stmt:
            case sql.SetStmt():
                return self.handle_set(stmt)
            case sql.SelectStmt():
                return self.handle_select(stmt)
            case sql.ShowVariables():
                return self.handle_show_variables(stmt)
            case sql.ShowBinlogEvents():
                rows = binlog_event_rows(self.server.store, stmt.file, stmt.position, stmt.offset, stmt.limit)
                return _rows(["Log_name", "Pos", "Event_type", "Server_id", "End_log_pos", "Info"],
                             [tuple(r) for r in rows])
            case sql.ShowSimple():
                return self.handle_show(stmt)
            case sql.PurgeStmt():
                return self.handle_purge(stmt)
            case sql.KillStmt():
                if not stmt.query_only:
                    self.server.kill(stmt.connection_id, by_user=self.session.user, admin=self.session.admin)
                return OkReply()
            case sql.UseStmt():
                self.session.database = stmt.database
                return OkReply()
            case sql.TxnStmt():
                return OkReply()
        raise MysqlError(ErrorCode.PARSE_ERROR, "unsupported statement")  # pragma: no cover

    # -- SET ----------------------------------------------------------------------------------
    def handle_set(self, stmt: sql.SetStmt) -> Reply:
        # Evaluate every value first: a failing assignment leaves the session unchanged.
        planned: list[tuple[sql.SysVar | sql.UserVar, Value]] = []
        for a in stmt.assignments:
            value = self.eval(a.value, set_value=True)
            if isinstance(a.target, sql.SysVar):
                self._check_settable(a.target)
            planned.append((a.target, value))
        for target, value in planned:
            if isinstance(target, sql.UserVar):
                text = text_value(value)
                if text is None:
                    self.session.user_vars.pop(target.name, None)
                else:
                    self.session.user_vars[target.name] = text
            else:
                self._set_system(target.name, value)
        return OkReply()

    def _check_settable(self, var: sql.SysVar) -> None:
        if var.name in ("names", "character_set_client"):
            return
        known = var.name in global_variables(self.facts) or var.name in session_defaults(self.facts, 0)
        if not known:
            raise MysqlError(ErrorCode.UNKNOWN_SYSTEM_VARIABLE, f"Unknown system variable '{var.name}'")
        if var.scope in ("global", "persist", "persist_only"):
            raise MysqlError(ErrorCode.SPECIFIC_ACCESS_DENIED_ERROR, f"Access denied; binhub's global variables are read-only (SET GLOBAL {var.name}): "
                           "change binhub's configuration instead")

    def _set_system(self, name: str, value: Value) -> None:
        s = self.session
        if name == "names":
            for var in ("character_set_client", "character_set_connection", "character_set_results"):
                s.sys_vars[var] = text_value(value)
            return
        if isinstance(value, str) and value.upper() == "DEFAULT":
            s.sys_vars.pop(name, None)
            if name == "autocommit":
                s.autocommit = True
            return
        if name == "autocommit":
            s.autocommit = _on(value)
            s.sys_vars[name] = s.autocommit
            return
        s.sys_vars[name] = value

    # -- SELECT -------------------------------------------------------------------------------
    def handle_select(self, stmt: sql.SelectStmt) -> Reply:
        names = [item.name for item in stmt.items]
        if stmt.table is not None:
            if stmt.table.startswith(_SYSTEM_SCHEMAS):
                return RowsReply([_string_column(n) for n in names])  # binhub has no tables
            raise MysqlError(ErrorCode.NO_SUCH_TABLE, f"Table '{stmt.table}' doesn't exist (binhub has no tables)")
        if any(item.expr is None for item in stmt.items):
            raise MysqlError(ErrorCode.NO_TABLES_USED, "No tables used")
        if stmt.limit == 0 or (stmt.where is not None and not _truthy(self.eval(stmt.where))):
            return RowsReply([_string_column(n) for n in names])
        row = tuple(self.eval(item.expr) for item in stmt.items if item.expr is not None)
        return _rows(names, [row])

    # -- expressions --------------------------------------------------------------------------
    def eval(self, e: sql.Expr, columns: dict[str, Value] | None = None, *, set_value: bool = False) -> Value:
        match e:
            case sql.Literal():
                return e.value
            case sql.SysVar():
                return self.system_variable(e.name, e.scope)
            case sql.UserVar():
                return self.session.user_vars.get(e.name)
            case sql.Column():
                if columns is not None and e.name.lower() in columns:
                    return columns[e.name.lower()]
                if set_value:
                    return e.name  # SET x = ON / OFF / DEFAULT / utf8mb4: identifiers are values
                raise MysqlError(ErrorCode.BAD_FIELD_ERROR, f"Unknown column '{e.name}' in 'field list'")
            case sql.Call():
                fn = self._functions.get(e.name)
                if fn is None:
                    raise MysqlError(ErrorCode.SP_DOES_NOT_EXIST, f"FUNCTION {e.name.upper()} does not exist in binhub")
                return fn([self.eval(a, columns) for a in e.args])
            case sql.Unary():
                v = self.eval(e.operand, columns, set_value=set_value)
                if e.op == "not":
                    return None if v is None else int(not _truthy(v))
                n = _number(v)
                if n is None:
                    return None
                out = -n if e.op == "-" else n
                return int(out) if out.is_integer() and not isinstance(v, float) else out
            case sql.Binary():
                return self._binary(e, columns)
            case sql.InList():
                v = self.eval(e.expr, columns)
                if v is None:
                    return None
                hit = any(_compare(v, self.eval(i, columns)) == 0 for i in e.items)
                return int(hit != e.negated)
            case sql.IsNull():
                return int((self.eval(e.expr, columns) is None) != e.negated)
            case sql.Like():
                v, p = self.eval(e.expr, columns), self.eval(e.pattern, columns)
                if v is None or p is None:
                    return None
                return int((like_to_regex(str(text_value(p))).fullmatch(str(text_value(v))) is not None) != e.negated)
        raise MysqlError(ErrorCode.UNKNOWN_ERROR, "unsupported expression")  # pragma: no cover

    def _binary(self, e: sql.Binary, columns: dict[str, Value] | None) -> Value:
        left = self.eval(e.left, columns)
        if e.op == "and":
            if left is not None and not _truthy(left):
                return 0
            right = self.eval(e.right, columns)
            return None if left is None or right is None else int(_truthy(right))
        if e.op == "or":
            if left is not None and _truthy(left):
                return 1
            right = self.eval(e.right, columns)
            return None if left is None or right is None else int(_truthy(right))
        right = self.eval(e.right, columns)
        if e.op == "<=>":
            return int(left is None and right is None or (left is not None and right is not None
                                                           and _compare(left, right) == 0))
        if left is None or right is None:
            return None
        if e.op in ("+", "-", "*", "/", "%"):
            a, b = _number(left) or 0.0, _number(right) or 0.0
            if e.op in ("/", "%") and b == 0:
                return None
            r = {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else 0.0, "%": a % b if b else 0.0}[e.op]
            return int(r) if e.op != "/" and r.is_integer() else r
        c = _compare(left, right)
        return int({"=": c == 0, "<>": c != 0, "<": c < 0, ">": c > 0, "<=": c <= 0, ">=": c >= 0}[e.op])

    def system_variable(self, name: str, scope: str) -> Value:
        s = self.session
        if scope != "global" and name in s.sys_vars:
            return s.sys_vars[name]
        g = global_variables(self.facts)
        if name in g:
            return g[name]
        if scope != "global":
            d = session_defaults(self.facts, s.connection_id)
            if name in d:
                return d[name]
        raise MysqlError(ErrorCode.UNKNOWN_SYSTEM_VARIABLE, f"Unknown system variable '{name}'")

    def _binlog_gtid_pos(self, args: list[Value]) -> Value:
        _arity(args, 2, "binlog_gtid_pos")
        if args[0] is None or args[1] is None:
            return None
        pos = _number(args[1])
        return gtid_position_at(self.server.store, str(text_value(args[0])), int(pos or 0))

    # -- SHOW ---------------------------------------------------------------------------------
    def handle_show_variables(self, stmt: sql.ShowVariables) -> Reply:
        if stmt.status:
            values = status_variables(self.facts)
            if stmt.scope != "global":  # the TLS session is the connection's (global: empty, as mysqld)
                values.update(compression_status(self.session.compression))
                values.update(ssl_cipher=self.session.tls_cipher, ssl_version=self.session.tls_version)
        else:
            values = dict(global_variables(self.facts))
            if stmt.scope != "global":
                values.update(session_defaults(self.facts, self.session.connection_id))
                values.update(self.session.sys_vars)
        pattern = like_to_regex(stmt.like) if stmt.like is not None else None
        rows: list[tuple[Value, ...]] = []
        for name in sorted(values):
            shown = show_value(values[name])
            if pattern is not None and not pattern.fullmatch(name):
                continue
            if stmt.where is not None and not _truthy(
                    self.eval(stmt.where, {"variable_name": name, "value": shown})):
                continue
            # Status variables are shown capitalised (Uptime, Ssl_cipher), system variables not.
            rows.append((name[:1].upper() + name[1:] if stmt.status else name, shown))
        return RowsReply([_string_column("Variable_name"), _string_column("Value")], rows)

    def handle_show(self, stmt: sql.ShowSimple) -> Reply:
        f = self.facts
        mysql = not f.is_mariadb
        what = stmt.what
        if what == "binary logs":
            files = self.server.store.durable_files()
            if mysql:
                return _rows(["Log_name", "File_size", "Encrypted"], [(n, s, "No") for n, s in files])
            return _rows(["Log_name", "File_size"], [(n, s) for n, s in files])
        if what == "master status":
            files = self.server.store.durable_files()
            cols = ["File", "Position", "Binlog_Do_DB", "Binlog_Ignore_DB"] + (["Executed_Gtid_Set"] if mysql else [])
            if not files:
                return RowsReply([_string_column(c) for c in cols])
            name, size = files[-1]
            row: tuple[Value, ...] = (name, size, "", "") + ((f.gtid_executed,) if mysql else ())
            return _rows(cols, [row])
        if what in ("slave hosts", "replicas"):
            reps = self.server.replicas()
            if what == "replicas":
                return _rows(["Server_Id", "Host", "Port", "Source_Id", "Replica_UUID"],
                             [(r.server_id, r.host, r.port, r.master_id, r.uuid) for r in reps])
            if mysql:
                return _rows(["Server_id", "Host", "Port", "Master_id", "Slave_UUID"],
                             [(r.server_id, r.host, r.port, r.master_id, r.uuid) for r in reps])
            return _rows(["Server_id", "Host", "Port", "Master_id"],
                         [(r.server_id, r.host, r.port, r.master_id) for r in reps])
        if what in ("slave status", "replica status", "all slaves status"):
            # binhub's own upstream connection (its relay), as MaxScale's binlog router answers it:
            # it is the default channel (MySQL) / the unnamed connection (MariaDB), the only one.
            if stmt.channel:
                if mysql:
                    raise MysqlError(ErrorCode.REPLICA_CHANNEL_DOES_NOT_EXIST,
                                     f"Replication channel '{stmt.channel}' does not exist.")
                raise MysqlError(ErrorCode.WARN_NO_MASTER_INFO, f"There is no master connection '{stmt.channel}'")
            status = read_replica_status(self.server.store, mariadb=not mysql, gtid_executed=f.gtid_executed)
            names, rows = replica_status_rows(status, mariadb=not mysql, spelling=what)
            return RowsReply([_typed_column(n, column_type(n)) for n in names], rows)
        if what in ("warnings", "errors"):
            return RowsReply([_string_column(c) for c in ("Level", "Code", "Message")])
        if what == "databases":
            return _rows(["Database"], [("information_schema",)])
        if what == "grants":
            privileges = "REPLICATION SLAVE, REPLICATION CLIENT" + (", BINLOG ADMIN" if self.session.admin else "")
            return _rows([f"Grants for {self.session.user}@%"],
                         [(f"GRANT {privileges} ON *.* TO `{self.session.user}`@`%`",)])
        if what == "processlist":
            return _rows(["Id", "User", "Host", "db", "Command", "Time", "State", "Info"],
                         [(p.connection_id, p.user, p.host, p.database, p.command, p.seconds, "", None)
                          for p in self.server.processes()])
        columns = {"engines": ("Engine", "Support", "Comment", "Transactions", "XA", "Savepoints"),
                   "collation": ("Collation", "Charset", "Id", "Default", "Compiled", "Sortlen"),
                   "character set": ("Charset", "Description", "Default collation", "Maxlen"),
                   "plugins": ("Name", "Status", "Type", "Library", "License"),
                   "tables": ("Tables_in_information_schema",)}[what]
        return RowsReply([_string_column(c) for c in columns])

    # -- PURGE --------------------------------------------------------------------------------
    def handle_purge(self, stmt: sql.PurgeStmt) -> Reply:
        if not self.session.admin:
            raise MysqlError(ErrorCode.SPECIFIC_ACCESS_DENIED_ERROR, "Access denied; you need the admin flag (binhub user add --admin) for PURGE BINARY LOGS")
        before = None
        if stmt.before is not None:
            value = self.eval(stmt.before)
            before = parse_datetime(str(text_value(value))) if not isinstance(value, int | float) else float(value)
        removed = self.server.purge(stmt.to, before)
        return OkReply(f"purged {len(removed)} file(s)" if removed else "")


def _compare(a: Value, b: Value) -> int:
    if isinstance(a, bool | int | float) or isinstance(b, bool | int | float):
        x, y = _number(a), _number(b)
        assert x is not None and y is not None
        return (x > y) - (x < y)
    sa, sb = str(a).lower(), str(b).lower()
    return (sa > sb) - (sa < sb)


def _on(value: Value) -> bool:
    if isinstance(value, str):
        return value.strip().upper() in ("ON", "1", "TRUE", "YES")
    return _truthy(value)


def _arity(args: list[Value], n: int, name: str) -> list[Value]:
    if len(args) != n:
        raise MysqlError(ErrorCode.WRONG_PARAMCOUNT_TO_NATIVE_FCT, f"Incorrect parameter count in the call to native function '{name.upper()}'")
    return args


def _ifnull(a: list[Value]) -> Value:
    _arity(a, 2, "ifnull")
    return a[0] if a[0] is not None else a[1]


def _if(a: list[Value]) -> Value:
    _arity(a, 3, "if")
    return a[1] if _truthy(a[0]) else a[2]


def _case(a: list[Value], how: str) -> Value:
    _arity(a, 1, how)
    text = text_value(a[0])
    if text is None:
        return None
    return text.lower() if how == "lower" else text.upper()


def _unix(value: Value) -> Value:
    if value is None:
        return None
    if isinstance(value, int | float):
        return value
    return int(parse_datetime(str(value)))


def _now() -> str:
    return dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
