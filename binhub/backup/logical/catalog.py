"""What a logical backup takes from the server's dictionary: databases, tables and their columns and
keys, views, routines, triggers, events, users — each as the DDL the server itself prints (SHOW CREATE).
"""

from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass

from binhub.backup.logical.config import SYSTEM_SCHEMAS
from binhub.backup.logical.literals import in_list, quote_name, quote_text
from binhub.backup.logical.manifest import (
    SEQUENCE,
    TABLE,
    VERSIONED,
    ColumnRecord,
    DatabaseRecord,
    SchemaObject,
    TableRecord,
    UserRecord,
)
from binhub.backup.session import ServerSession
from binhub.errors import BackupError, UpstreamError
from binhub.wire.errors import ErrorCode

log = logging.getLogger("binhub.backup.logical")

# Accounts every server makes for itself at install: the target has its own.
SYSTEM_ACCOUNTS = frozenset({("root", "localhost"), ("mariadb.sys", "localhost"), ("mysql", "localhost"),
                             ("PUBLIC", "")})
INTEGER_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "integer", "bigint"})
# TABLE_TYPE -> what the backup takes: a base table's rows, a sequence's state, a versioned table's history too.
KINDS = {"BASE TABLE": TABLE, "SEQUENCE": SEQUENCE, "SYSTEM VERSIONED": VERSIONED}
# A system-versioned table declared without its period columns has them hidden under these names.
IMPLICIT_PERIOD = ("row_start", "row_end")


@dataclass(frozen=True, slots=True)
class TableFilter:
    """``--include``/``--exclude`` globs on ``db.table``; system schemas are never taken."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def wants(self, db: str, name: str) -> bool:
        if db.lower() in SYSTEM_SCHEMAS:
            return False
        qualified = f"{db}.{name}"
        return ((not self.include or any(fnmatch.fnmatchcase(qualified, p) for p in self.include))
                and not any(fnmatch.fnmatchcase(qualified, p) for p in self.exclude))

    def wants_database(self, db: str) -> bool:
        """A database with no table of its own is taken unless the filters leave it out as ``db.*`` would."""
        return db.lower() not in SYSTEM_SCHEMAS and self.wants(db, "*")


@dataclass(frozen=True, slots=True)
class TableEntry:
    """A table as listed before the consistent point: enough to plan its chunks."""

    db: str
    name: str
    engine: str
    transactional: bool
    estimated_rows: int
    columns: list[ColumnRecord]
    key: list[str]  # primary key, else the narrowest NOT NULL unique key; empty: none
    key_is_integer: bool
    kind: str = TABLE  # TABLE, SEQUENCE or VERSIONED

    @property
    def source(self) -> str:
        """What the SELECT reads from: a system-versioned table with its history (FOR SYSTEM_TIME ALL)."""
        name = quote_name(self.db, self.name)
        return f"{name} FOR SYSTEM_TIME ALL" if self.kind == VERSIONED else name


def list_tables(session: ServerSession, filters: TableFilter) -> list[TableEntry]:
    """Every base table, sequence and system-versioned table the filters take, with columns and chunking key.

    A system-versioned table is read with its history and its period columns (``row_start``/``row_end``,
    hidden or declared), which the restore writes back with ``system_versioning_insert_history``;
    its key gets the period's end appended (the server's own key for the history rows). One versioned
    by transaction ids (BIGINT period columns) is refused by name: no server takes those back.
    """
    transactional = {str(e).lower() for (e,) in session.query(
        "SELECT ENGINE FROM information_schema.ENGINES WHERE TRANSACTIONS = 'YES'")}
    rows = session.query(
        "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, IFNULL(ENGINE, ''), IFNULL(TABLE_ROWS, 0) "
        "FROM information_schema.TABLES WHERE TABLE_TYPE <> 'VIEW' AND TABLE_SCHEMA NOT IN "
        + in_list(SYSTEM_SCHEMAS) + " ORDER BY TABLE_SCHEMA, TABLE_NAME")
    wanted = [(str(db), str(name), str(kind), str(engine), int(est))
              for db, name, kind, engine, est in rows if filters.wants(str(db), str(name))]
    for db, name, kind, *_ in wanted:
        if kind not in KINDS:
            raise BackupError(f"{db}.{name} is a {kind.lower()}: the logical backup does not take those yet",
                              hint=f"leave it out with --exclude '{db}.{name}'")
    if not wanted:
        return []
    schemas = in_list({db for db, *_ in wanted})
    columns: dict[tuple[str, str], list[ColumnRecord]] = {}
    periods: dict[tuple[str, str], dict[str, ColumnRecord]] = {}
    for db, table, name, data_type, charset, generated, expression in session.query(
            "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, DATA_TYPE, CHARACTER_SET_NAME, IS_GENERATED, "
            f"IFNULL(GENERATION_EXPRESSION, '') FROM information_schema.COLUMNS WHERE TABLE_SCHEMA IN {schemas} "
            "ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION"):
        period = str(expression) in ("ROW START", "ROW END")
        column = ColumnRecord(str(name), str(data_type), None if charset is None else str(charset),
                              str(generated) == "ALWAYS" and not period)  # the period is loaded, not computed
        columns.setdefault((str(db), str(table)), []).append(column)
        if period:
            periods.setdefault((str(db), str(table)), {})[str(expression)] = column
    indexes: dict[tuple[str, str], dict[str, list[tuple[str, bool]]]] = {}
    for db, table, index, column, nullable in session.query(
            "SELECT TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, COLUMN_NAME, NULLABLE FROM information_schema.STATISTICS "
            f"WHERE TABLE_SCHEMA IN {schemas} AND NON_UNIQUE = 0 AND SUB_PART IS NULL "
            "ORDER BY TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX"):
        indexes.setdefault((str(db), str(table)), {}).setdefault(str(index), []).append(
            (str(column), str(nullable) == "YES"))
    out = []
    for db, name, table_type, engine, estimate in wanted:
        kind = KINDS[table_type]
        cols = columns.get((db, name), [])
        generated = {c.name for c in cols if c.generated}
        key = _chunk_key({index: columns for index, columns in indexes.get((db, name), {}).items()
                          if not generated & {c for c, _ in columns}})  # a key is read back as the rows' literals
        types = {c.name: c.data_type.lower() for c in cols}
        key_is_integer = len(key) == 1 and types.get(key[0]) in INTEGER_TYPES
        if kind == VERSIONED:
            declared = periods.get((db, name))
            if declared is None:  # hidden: WITH SYSTEM VERSIONING without a PERIOD FOR SYSTEM_TIME
                cols = [*cols, *(ColumnRecord(c, "timestamp", None, False) for c in IMPLICIT_PERIOD)]
                end = IMPLICIT_PERIOD[1]
            elif declared["ROW END"].data_type.lower() != "timestamp":
                raise BackupError(f"{db}.{name} is versioned by transaction ids (its period columns are "
                                  f"{declared['ROW END'].data_type.upper()}): its history cannot be loaded into a server",
                                  hint=f"leave it out with --exclude '{db}.{name}'")
            else:
                end = declared["ROW END"].name
            key = [*key, end] if key else []  # a key value recurs in the history, once per row_end
        out.append(TableEntry(db, name, engine, engine.lower() in transactional, estimate, cols, key,
                              key_is_integer, kind))
    return out


def _chunk_key(unique: dict[str, list[tuple[str, bool]]]) -> list[str]:
    """The primary key; else the unique key with the fewest columns, none of them nullable."""
    if "PRIMARY" in unique:
        return [c for c, _ in unique["PRIMARY"]]
    candidates = [cols for cols in unique.values() if not any(nullable for _, nullable in cols)]
    return [c for c, _ in min(candidates, key=len)] if candidates else []


def show_create_table(session: ServerSession, db: str, name: str, kind: str = TABLE) -> str:
    what = "SEQUENCE" if kind == SEQUENCE else "TABLE"
    return str(session.query(f"SHOW CREATE {what} {quote_name(db, name)}")[0][1])


def table_record(session: ServerSession, entry: TableEntry) -> TableRecord:
    return TableRecord(entry.db, entry.name, entry.engine, show_create_table(session, entry.db, entry.name, entry.kind),
                       entry.columns, entry.transactional, kind=entry.kind)


def read_sequence(session: ServerSession, record: TableRecord) -> None:
    """A sequence's state as mariadb-dump takes it: the next value not handed out to any session's
    cache (what the server itself starts from after a restart), and the cycle count, which
    mariadb-dump leaves out. Read under the consistency lock: a sequence is outside transactions."""
    next_value, rounds = session.query(f"SELECT next_not_cached_value, cycle_count FROM "
                                       f"{quote_name(record.db, record.name)}")[0]
    record.sequence_next, record.sequence_round = int(next_value), int(rounds)


def databases(session: ServerSession, filters: TableFilter, tables: list[TableEntry]) -> list[DatabaseRecord]:
    with_tables = {t.db for t in tables}
    names = [str(db) for (db,) in session.query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY 1")]
    return [DatabaseRecord(db, str(session.query(f"SHOW CREATE DATABASE {quote_name(db)}")[0][1]))
            for db in names if db in with_tables or (not filters.include and filters.wants_database(db))]


def schema_objects(session: ServerSession, filters: TableFilter, dbs: list[str]) -> list[SchemaObject]:
    """Views, routines, triggers and events of the databases taken, in an order that can be created:
    views (retried on restore until their dependencies exist), routines, triggers (by ACTION_ORDER), events."""
    out: list[SchemaObject] = []
    where = in_list(dbs)
    for db, name in session.query(f"SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.VIEWS "
                                  f"WHERE TABLE_SCHEMA IN {where} ORDER BY 1, 2"):
        if filters.wants(str(db), str(name)):
            _, create, charset, collation = session.query(f"SHOW CREATE VIEW {quote_name(str(db), str(name))}")[0]
            out.append(SchemaObject("VIEW", str(db), str(name), str(create), "", str(charset), str(collation)))
    for db, name, kind in session.query("SELECT ROUTINE_SCHEMA, ROUTINE_NAME, ROUTINE_TYPE FROM "
                                        f"information_schema.ROUTINES WHERE ROUTINE_SCHEMA IN {where} "
                                        "ORDER BY 3 DESC, 1, 2"):
        row = session.query(f"SHOW CREATE {kind} {quote_name(str(db), str(name))}")[0]
        # (name, sql_mode, create, character_set_client, collation_connection, database collation)
        out.append(SchemaObject(str(kind), str(db), str(name), str(row[2]), str(row[1]), str(row[3]), str(row[4])))
    for db, name, table in session.query(
            "SELECT TRIGGER_SCHEMA, TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS "
            f"WHERE TRIGGER_SCHEMA IN {where} ORDER BY 1, 3, EVENT_MANIPULATION, ACTION_TIMING, ACTION_ORDER"):
        if filters.wants(str(db), str(table)):
            row = session.query(f"SHOW CREATE TRIGGER {quote_name(str(db), str(name))}")[0]
            out.append(SchemaObject("TRIGGER", str(db), str(name), str(row[2]), str(row[1]), str(row[3]),
                                    str(row[4]), table=str(table)))
    for db, name in session.query(f"SELECT EVENT_SCHEMA, EVENT_NAME FROM information_schema.EVENTS "
                                  f"WHERE EVENT_SCHEMA IN {where} ORDER BY 1, 2"):
        row = session.query(f"SHOW CREATE EVENT {quote_name(str(db), str(name))}")[0]
        # (event, sql_mode, time_zone, create, character_set_client, collation_connection, database collation)
        out.append(SchemaObject("EVENT", str(db), str(name), str(row[3]), str(row[1]), str(row[4]), str(row[5]),
                                time_zone=str(row[2])))
    return out


def users(session: ServerSession) -> list[UserRecord]:
    """Every account and role but the server's own, with SHOW CREATE USER and SHOW GRANTS."""
    out = []
    for user, host, is_role in session.query("SELECT User, Host, IFNULL(is_role, 'N') FROM mysql.user ORDER BY 3 DESC, 1, 2"):
        user, host, role = str(user), str(host), str(is_role) == "Y"
        if (user, host) in SYSTEM_ACCOUNTS:
            continue
        account = quote_name(user) if role else f"{quote_text(user)}@{quote_text(host)}"
        try:
            create = f"CREATE ROLE {quote_name(user)}" if role else \
                str(session.query(f"SHOW CREATE USER {account}")[0][0])
        except UpstreamError as exc:
            if exc.code != ErrorCode.NONEXISTING_GRANT:
                raise
            # A row of mysql.user the server did not load (a host name under skip-name-resolve): no one
            # can log in as it, and SHOW CREATE USER does not know it.
            log.warning("account %s is in mysql.user but not loaded by the server; not taken", account)
            continue
        grants = [str(g) for (g,) in session.query(f"SHOW GRANTS FOR {account}")]
        out.append(UserRecord(user, host, create, grants, role))
    return out
