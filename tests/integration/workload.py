"""Binlog traffic for the integration tests, and a bounded polling helper.

Every function takes an open PyMySQL connection in autocommit mode (what ``Sandbox.connect()`` and
the ``primary_db`` fixture give) and a database name; table names are always qualified, so the
connection's current database does not matter. Data is deterministic for a given ``seed``, so two
runs (or a source and its replica) can be compared with :func:`table_checksums` or :func:`snapshot`.

    run_workload(conn, db)            everything below, in one call; returns a WorkloadSummary
    create_tables(conn, db, n)        wide tables covering the common column types
    insert_rows / update_rows / delete_rows / run_ddl
    create_many_tables(conn, db, n)   n small tables, one row each (many TABLE_MAP ids)
    large_transaction(conn, db)       one transaction holding a row event > 16 MiB
    table_checksums / snapshot / binlog_position / wait_until
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

# Above 16 MiB - 1, the largest MySQL protocol packet: such an event reaches a replica as several
# packets, and a relay that does not join them breaks.
LARGE_EVENT_BYTES = 17 * 1024 * 1024

WIDE_TABLE_DDL = """
CREATE TABLE {table} (
  id INT UNSIGNED NOT NULL PRIMARY KEY,
  tiny TINYINT NULL, small SMALLINT UNSIGNED NULL, medium MEDIUMINT NULL, big BIGINT UNSIGNED NULL,
  dec_v DECIMAL(20,6) NULL, flt FLOAT NULL, dbl DOUBLE NULL, bits BIT(12) NULL,
  vc VARCHAR(255) CHARACTER SET utf8mb4 NULL, ch CHAR(8) NULL, txt TEXT NULL,
  vbin VARBINARY(64) NULL, blb BLOB NULL,
  dtm DATETIME(6) NULL, ts TIMESTAMP(3) NULL DEFAULT NULL, dte DATE NULL, tm TIME(2) NULL, yr YEAR NULL,
  en ENUM('a','b','c') NULL, st SET('x','y','z') NULL, js JSON NULL
) ENGINE=InnoDB
"""
WIDE_COLUMNS = ("id", "tiny", "small", "medium", "big", "dec_v", "flt", "dbl", "bits", "vc", "ch", "txt",
                "vbin", "blb", "dtm", "ts", "dte", "tm", "yr", "en", "st", "js")
_WORDS = ("alpha", "βeta", "gamma", "délta", "中文", "emoji 😀", "", "O'Reilly", "back\\slash", "tab\tnl\n")


def q(*names: str) -> str:
    """Quote identifiers: ``q("db", "t")`` -> ```db`.`t```."""
    return ".".join("`" + n.replace("`", "``") + "`" for n in names)


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.05,
               message: str = "") -> T:
    """Poll ``predicate`` until it returns something truthy and return that; fail after ``timeout``.

    Exceptions from the predicate propagate: a broken check should fail loudly, not time out.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout:g}s"
                                 + (f": {message}" if message else f" ({predicate!r}, last value {value!r})"))
        time.sleep(interval)


@dataclass
class WorkloadSummary:
    """What :func:`run_workload` did. GTIDs are ``@@gtid_binlog_pos`` before and after."""

    database: str
    tables: list[str] = field(default_factory=list)
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    ddl: int = 0  # DDL statements executed (CREATE/ALTER/RENAME/DROP), not binlog events
    large_event_bytes: int = 0
    start_gtid: str = ""
    end_gtid: str = ""
    start_file: str = ""
    start_pos: int = 0
    end_file: str = ""
    end_pos: int = 0

    @property
    def transactions(self) -> int:
        """Transactions binlogged meanwhile on a single-domain server (any other writer counts too)."""
        return _gtid_seq(self.end_gtid) - _gtid_seq(self.start_gtid)


def _gtid_seq(gtid_pos: str) -> int:
    # "0-1-42" (or "" on a fresh server); a multi-domain position is not meaningful here.
    if not gtid_pos:
        return 0
    parts = gtid_pos.split(",")
    if len(parts) != 1:
        raise ValueError(f"transactions count needs a single-domain GTID position, got {gtid_pos!r}")
    return int(parts[0].rsplit("-", 1)[1])


def binlog_position(conn: Any) -> tuple[str, int, str]:
    """(current binlog file, position, ``@@gtid_binlog_pos``) of the server behind ``conn``."""
    with conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        row = cur.fetchone()
        cur.execute("SELECT @@gtid_binlog_pos")
        gtid = cur.fetchone()[0]
    if row is None:
        raise AssertionError("the binary log is off on this server")
    return str(row[0]), int(row[1]), str(gtid or "")


def wide_row(row_id: int, seed: int = 0) -> tuple[Any, ...]:
    """A deterministic row for a wide table, with NULLs, extremes, non-ASCII text and binary."""
    r = random.Random(seed * 1_000_003 + row_id)

    def maybe(value: Any) -> Any:
        return None if r.random() < 0.1 else value

    return (
        row_id,
        maybe(r.randint(-128, 127)),
        maybe(r.randint(0, 65535)),
        maybe(r.randint(-8388608, 8388607)),
        maybe(r.choice([0, 1, 2**63, 2**64 - 1, r.randint(0, 2**64 - 1)])),
        maybe(decimal.Decimal(r.randint(-10**19, 10**19)) / 1_000_000),
        maybe(r.choice([0.0, -1.5, 3.25, 1e10])),
        maybe(r.uniform(-1e300, 1e300)),
        maybe(r.randint(0, 4095)),
        maybe(" ".join(r.choice(_WORDS) for _ in range(r.randint(0, 8)))),
        maybe("".join(r.choice("abcdef") for _ in range(r.randint(0, 8)))),
        maybe(r.choice(_WORDS) * r.randint(0, 200)),
        maybe(r.randbytes(r.randint(0, 64))),
        maybe(r.randbytes(r.randint(0, 3000))),
        maybe(dt.datetime(2000, 1, 1) + dt.timedelta(seconds=r.randint(0, 10**9), microseconds=r.randint(0, 999999))),
        maybe(dt.datetime(2001, 1, 1) + dt.timedelta(seconds=r.randint(0, 10**9), microseconds=r.randint(0, 999) * 1000)),
        maybe(dt.date(1970, 1, 1) + dt.timedelta(days=r.randint(0, 40000))),
        maybe(dt.timedelta(hours=r.randint(-838, 838), microseconds=r.randint(0, 99) * 10000)),
        maybe(r.randint(1901, 2155)),
        maybe(r.choice(["a", "b", "c"])),
        maybe(r.choice(["", "x", "x,y", "x,y,z", "z"])),
        maybe(json.dumps({"k": row_id, "s": r.choice(["v", "é", "中"]), "a": [1, 2.5, None, True]})),
    )


def create_tables(conn: Any, database: str, count: int = 3, prefix: str = "wide") -> list[str]:
    """Create ``count`` wide tables ``<prefix>1..`` in ``database`` (created if missing)."""
    names = [f"{prefix}{i}" for i in range(1, count + 1)]
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {q(database)}")
        for name in names:
            cur.execute(WIDE_TABLE_DDL.format(table=q(database, name)))
    return names


def insert_rows(conn: Any, database: str, table: str, count: int, *, start_id: int = 1, batch: int = 50,
                seed: int = 0) -> int:
    """Insert rows ``start_id..start_id+count-1`` into a wide table, ``batch`` rows per transaction."""
    sql = (f"INSERT INTO {q(database, table)} ({', '.join(q(c) for c in WIDE_COLUMNS)}) "
           f"VALUES ({', '.join(['%s'] * len(WIDE_COLUMNS))})")
    done = 0
    with conn.cursor() as cur:
        while done < count:
            n = min(batch, count - done)
            # executemany folds the rows into one multi-row INSERT: one transaction, one or more
            # WRITE_ROWS events.
            cur.executemany(sql, [wide_row(start_id + done + i, seed) for i in range(n)])
            done += n
    return done


def update_rows(conn: Any, database: str, table: str, *, every: int = 3) -> int:
    """Update every ``every``-th row (by id): UPDATE_ROWS events with before and after images."""
    with conn.cursor() as cur:
        return int(cur.execute(
            f"UPDATE {q(database, table)} SET vc = CONCAT(COALESCE(vc, ''), ' upd'), "
            f"big = IF(big IS NULL, 7, big DIV 2), tm = NULL, st = 'y' WHERE MOD(id, %s) = 0", (every,)))


def delete_rows(conn: Any, database: str, table: str, *, every: int = 5) -> int:
    """Delete every ``every``-th row (by id)."""
    with conn.cursor() as cur:
        return int(cur.execute(f"DELETE FROM {q(database, table)} WHERE MOD(id, %s) = 1", (every,)))


def run_ddl(conn: Any, database: str, table: str) -> int:
    """Schema changes a stream's schema history must follow; returns the number of statements.

    Adds a column in the middle, writes rows with the new layout, drops a column, renames the table
    and back, and creates and drops an extra table.
    """
    t = q(database, table)
    statements = [
        f"ALTER TABLE {t} ADD COLUMN added INT NOT NULL DEFAULT 7 AFTER tiny",
        f"UPDATE {t} SET added = id WHERE MOD(id, 7) = 0",
        f"ALTER TABLE {t} ADD INDEX idx_vc (vc(20)), MODIFY COLUMN ch VARCHAR(16) NULL",
        f"ALTER TABLE {t} DROP COLUMN flt",
        f"RENAME TABLE {t} TO {q(database, table + '_renamed')}",
        f"RENAME TABLE {q(database, table + '_renamed')} TO {t}",
        f"CREATE TABLE {q(database, table + '_tmp')} (id INT PRIMARY KEY, v VARCHAR(10))",
        f"INSERT INTO {q(database, table + '_tmp')} VALUES (1, 'x'), (2, NULL)",
        f"DROP TABLE {q(database, table + '_tmp')}",
    ]
    with conn.cursor() as cur:
        for sql in statements:
            cur.execute(sql)
    return sum(1 for s in statements if not s.startswith(("UPDATE", "INSERT")))


def create_many_tables(conn: Any, database: str, count: int = 50, prefix: str = "small") -> list[str]:
    """``count`` small tables with one row each: many distinct table ids in one binlog."""
    names = [f"{prefix}{i:04d}" for i in range(count)]
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {q(database)}")
        for i, name in enumerate(names):
            cur.execute(f"CREATE TABLE {q(database, name)} (id INT PRIMARY KEY, n BIGINT, s VARCHAR(32))")
            cur.execute(f"INSERT INTO {q(database, name)} VALUES (%s, %s, %s)", (i, i * i, f"row {i}"))
    return names


def large_transaction(conn: Any, database: str, *, blob_bytes: int = LARGE_EVENT_BYTES, small_rows: int = 100,
                      seed: int = 0, table: str = "big") -> int:
    """One transaction: ``small_rows`` small rows, then one row whose WRITE_ROWS event exceeds 16 MiB.

    The server and PyMySQL must allow packets of ``blob_bytes`` and more (the sandbox sets 64M on
    both sides). Returns ``blob_bytes``.
    """
    t = q(database, table)
    payload = random.Random(seed).randbytes(blob_bytes)
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE IF NOT EXISTS {t} (id INT PRIMARY KEY, note VARCHAR(32), payload LONGBLOB)")
        cur.execute("BEGIN")
        try:
            cur.executemany(f"INSERT INTO {t} (id, note) VALUES (%s, %s)",
                            [(i, f"small {i}") for i in range(1, small_rows + 1)])
            cur.execute(f"INSERT INTO {t} VALUES (%s, %s, %s)", (0, "large", payload))
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
    return blob_bytes


def run_workload(conn: Any, database: str, *, tables: int = 3, rows: int = 200, many_tables: int = 20,
                 ddl: bool = True, large: bool = True, seed: int = 0) -> WorkloadSummary:
    """A mixed workload: wide tables with inserts, updates, deletes, DDL, many small tables, and (with
    ``large``) one transaction holding an event > 16 MiB. Deterministic for a given ``seed``."""
    start_file, start_pos, start_gtid = binlog_position(conn)
    summary = WorkloadSummary(database=database, start_gtid=start_gtid, start_file=start_file, start_pos=start_pos)
    summary.tables = create_tables(conn, database, tables)
    summary.ddl += tables + 1  # + CREATE DATABASE IF NOT EXISTS
    for table in summary.tables:
        summary.inserted += insert_rows(conn, database, table, rows, seed=seed)
        summary.updated += update_rows(conn, database, table)
        summary.deleted += delete_rows(conn, database, table)
    if ddl and summary.tables:
        summary.ddl += run_ddl(conn, database, summary.tables[0])
        # Rows written after the ALTERs use the new table layout.
        summary.inserted += insert_rows_after_ddl(conn, database, summary.tables[0], rows // 4, start_id=rows + 1)
    if many_tables:
        summary.tables += create_many_tables(conn, database, many_tables)
        summary.ddl += many_tables + 1
        summary.inserted += many_tables
    if large:
        small_rows = 100
        summary.large_event_bytes = large_transaction(conn, database, seed=seed, small_rows=small_rows)
        summary.tables.append("big")
        summary.ddl += 1
        summary.inserted += small_rows + 1
    summary.end_file, summary.end_pos, summary.end_gtid = binlog_position(conn)
    return summary


def insert_rows_after_ddl(conn: Any, database: str, table: str, count: int, *, start_id: int) -> int:
    """Insert into a wide table after :func:`run_ddl` changed it (``added`` column, no ``flt``)."""
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {q(database, table)} (id, tiny, added, vc, ch, dtm) VALUES (%s, %s, %s, %s, %s, %s)",
            [(i, i % 100, -i, f"after ddl {i}", "x" * (i % 16), dt.datetime(2024, 2, 29, 12, 0, 0, i))
             for i in range(start_id, start_id + count)])
    return count


def table_checksums(conn: Any, database: str) -> dict[str, int | None]:
    """``CHECKSUM TABLE`` of every base table in ``database``: equal data gives equal sums."""
    with conn.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                    "AND table_type = 'BASE TABLE' ORDER BY table_name", (database,))
        names = [str(r[0]) for r in cur.fetchall()]
        sums: dict[str, int | None] = {}
        for name in names:
            cur.execute(f"CHECKSUM TABLE {q(database, name)} EXTENDED")
            row = cur.fetchone()
            sums[name] = None if row[1] is None else int(row[1])
    return sums


def snapshot(conn: Any, database: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every base table in ``database``, ordered by the first column (tests' primary key)."""
    with conn.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                    "AND table_type = 'BASE TABLE' ORDER BY table_name", (database,))
        names = [str(r[0]) for r in cur.fetchall()]
        rows: dict[str, list[tuple[Any, ...]]] = {}
        for name in names:
            cur.execute(f"SELECT * FROM {q(database, name)} ORDER BY 1")
            rows[name] = [tuple(r) for r in cur.fetchall()]
    return rows
