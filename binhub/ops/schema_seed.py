"""Reading a seed for the schema history from the upstream's information_schema (PyMySQL).

information_schema is not transactional, so the upstream's binlog position is read before and
after the catalog queries; a DDL logged in between would make the two disagree about the moment
described, and the read is retried. The seed is recorded at the position read first (no DDL
happened up to the second, so the catalog describes both).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pymysql  # type: ignore[import-untyped, unused-ignore]
import pymysql.cursors  # type: ignore[import-untyped, unused-ignore]

from binhub.errors import ConnectionFailed, IdentityMismatch, SchemaError, UpstreamError
from binhub.ops.schema_sync import open_history, update_history
from binhub.relay.config import SourceDSN, parse_source_dsn
from binhub.schema import (
    Catalog,
    Charset,
    Position,
    SchemaHistory,
    catalog_from_information_schema,
    parse_statement,
)
from binhub.schema.changes import Outcome
from binhub.schema.seed import SYSTEM_SCHEMAS
from binhub.store import StoreReader

__all__ = ["Seed", "fetch_seed", "seed_history", "stream_seeder"]

ATTEMPTS = 5
_SKIP = ", ".join(f"'{s}'" for s in sorted(SYSTEM_SCHEMAS))
_QUERIES = {
    "schemata": "SELECT SCHEMA_NAME AS SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME AS DEFAULT_CHARACTER_SET_NAME, "
                "DEFAULT_COLLATION_NAME AS DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA",
    "tables": "SELECT TABLE_SCHEMA AS TABLE_SCHEMA, TABLE_NAME AS TABLE_NAME, TABLE_TYPE AS TABLE_TYPE, "
              "TABLE_COLLATION AS TABLE_COLLATION, TABLE_COMMENT AS TABLE_COMMENT FROM information_schema.TABLES "
              f"WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN ({_SKIP})",
    "columns": "SELECT TABLE_SCHEMA AS TABLE_SCHEMA, TABLE_NAME AS TABLE_NAME, COLUMN_NAME AS COLUMN_NAME, "
               "ORDINAL_POSITION AS ORDINAL_POSITION, COLUMN_TYPE AS COLUMN_TYPE, IS_NULLABLE AS IS_NULLABLE, "
               "CHARACTER_SET_NAME AS CHARACTER_SET_NAME, COLLATION_NAME AS COLLATION_NAME, EXTRA AS EXTRA, "
               "COLUMN_DEFAULT AS COLUMN_DEFAULT, COLUMN_COMMENT AS COLUMN_COMMENT "
               f"FROM information_schema.COLUMNS WHERE TABLE_SCHEMA NOT IN ({_SKIP})",
    "primary_keys": "SELECT TABLE_SCHEMA AS TABLE_SCHEMA, TABLE_NAME AS TABLE_NAME, COLUMN_NAME AS COLUMN_NAME, "
                    "SEQ_IN_INDEX AS SEQ_IN_INDEX FROM information_schema.STATISTICS "
                    f"WHERE INDEX_NAME = 'PRIMARY' AND TABLE_SCHEMA NOT IN ({_SKIP})",
}


@dataclass(frozen=True, slots=True)
class Seed:
    position: Position  # the upstream's binlog position the catalog describes
    gtid: str  # its GTID position there (informative)
    catalog: Catalog
    flavour: str
    server_id: int


def fetch_seed(dsn: SourceDSN, *, connect_timeout: float = 10.0) -> Seed:
    """Read the upstream's catalog at a known binlog position (needs SELECT on the tables it lists)."""
    try:
        conn = pymysql.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                               charset="utf8mb4", connect_timeout=int(connect_timeout),
                               cursorclass=pymysql.cursors.DictCursor)
    except pymysql.err.OperationalError as exc:
        raise ConnectionFailed(f"cannot connect to {dsn} to read information_schema: {exc.args[-1]}") from exc
    try:
        return _read(conn)
    except pymysql.err.MySQLError as exc:
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
        raise UpstreamError(code, "HY000", str(exc.args[-1] if exc.args else exc),
                            hint="the seed needs SELECT on information_schema and REPLICATION CLIENT "
                                 "(BINLOG MONITOR on MariaDB) for the binlog position") from exc
    finally:
        conn.close()


def seed_history(store: StoreReader, history: SchemaHistory, dsn: SourceDSN) -> Seed:
    """Read the upstream's information_schema and record it in the store's history (made durable).
    An upstream that is not the one the store relays is refused: its tables are not these."""
    seed = fetch_seed(dsn)
    upstream = store.state.upstream
    if upstream is not None and upstream.server_id != seed.server_id:
        raise IdentityMismatch(
            f"{dsn} is server_id {seed.server_id}, but the store {store.data_dir} relays server_id "
            f"{upstream.server_id}: its information_schema does not describe this store's tables",
            hint="seed from the primary the store relays from")
    history.record_seed(seed.position, seed.catalog, seed.gtid)
    history.flush()
    return seed


def stream_seeder(store: StoreReader, dsn_text: str, *, key: str = "--seed-from") -> Callable[[], SchemaHistory]:
    """What a stream calls when it meets a table its history does not know: the history, brought
    up to date and seeded from the upstream now (the seed is its last ``seed`` entry)."""
    dsn = parse_source_dsn(dsn_text, key=key)

    def seed() -> SchemaHistory:
        with open_history(store.data_dir) as history:
            update_history(store, history)
            seed_history(store, history, dsn)
        return history
    return seed


def _read(conn: Any) -> Seed:
    with conn.cursor() as cur:
        cur.execute("SELECT VERSION() AS v, @@character_set_server AS cs, @@collation_server AS co, "
                    "@@server_id AS id")
        row = cur.fetchone()
        flavour = "mariadb" if "mariadb" in str(row["v"]).lower() else "mysql"
        server = Charset(str(row["cs"]), str(row["co"]))
        for _ in range(ATTEMPTS):
            before = _position(cur, flavour)
            rows = {}
            for key, sql in _QUERIES.items():
                cur.execute(sql)
                rows[key] = cur.fetchall()
            after = _position(cur, flavour)
            if _no_ddl_between(cur, before[0], after[0]):
                catalog = catalog_from_information_schema(
                    server=server, quoted_defaults=_quotes_defaults(str(row["v"])), **rows)
                return Seed(before[0], before[1], catalog, flavour, int(row["id"]))
    raise SchemaError(f"the upstream kept running DDL while information_schema was read ({ATTEMPTS} attempts)",
                      hint="seed again when schema changes are quiet")


def _quotes_defaults(version: str) -> bool:
    """Whether information_schema.COLUMNS quotes literal defaults: MariaDB since 10.2.7."""
    if "mariadb" not in version.lower():
        return False
    numbers = [int(n) for n in re.findall(r"\d+", version.split("-")[0])[:3]]
    return tuple(numbers) >= (10, 2, 7)


def _position(cur: Any, flavour: str) -> tuple[Position, str]:
    try:
        cur.execute("SHOW MASTER STATUS")
    except Exception:  # MySQL 8.4 removed it
        cur.execute("SHOW BINARY LOG STATUS")
    row = cur.fetchone()
    if not row:
        raise SchemaError("the upstream has no binary log (SHOW MASTER STATUS is empty)",
                          hint="the schema history follows a binlogging primary; enable log_bin")
    cur.execute("SELECT @@gtid_binlog_pos AS g" if flavour == "mariadb" else "SELECT @@gtid_executed AS g")
    gtid = cur.fetchone()["g"] or ""
    return Position.of(str(row["File"]), int(row["Position"])), str(gtid)


def _no_ddl_between(cur: Any, before: Position, after: Position) -> bool:
    """Whether the upstream logged no statement but transaction control between the two positions."""
    if before.file != after.file:
        return False  # rotated meanwhile: read again within one file
    if before.pos == after.pos:
        return True
    cur.execute(f"SHOW BINLOG EVENTS IN '{before.file}' FROM {before.pos}")
    for event in cur.fetchall():
        if int(event["Pos"]) >= after.pos:
            break
        if event["Event_type"] == "Query" and parse_statement(str(event["Info"]), "").outcome != Outcome.IGNORED:
            return False
    return True
