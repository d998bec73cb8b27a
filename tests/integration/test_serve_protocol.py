"""binhub's server answering as its upstream does, checked against the upstream's own answers.

A MariaDB primary is the oracle: the same statement, or the same independent client (PyPI
``mysql-replication``), goes to it and to binhub serving a store relayed from it, and the answers
must match: columns, values, error numbers and messages, decoded rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql
import pytest

from binhub.sandbox import Sandbox
from binhub.serve.session import default_dump_handler
from binhub.store import StoreReader
from binhub.store.state import StoreState, UpstreamSource
from tests.integration.conftest import MariadbFactory, PrimaryDb
from tests.integration.relayutil import run_relay, start_relay, stop_relay
from tests.integration.serveutil import PASSWORD, USER, ServerThread, mariadb_store
from tests.integration.workload import wait_until


@dataclass
class Relayed:
    """A primary with ``binlog_row_metadata=FULL``, a workload on it, and binhub serving its relayed store."""

    primary: Sandbox
    hub: ServerThread
    schema: str


@pytest.fixture(scope="module")
def relayed(mariadb_factory: MariadbFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relayed]:
    primary = mariadb_factory("full_metadata", server_id=41, extra_args=["--binlog-row-metadata=FULL"])
    schema = "cdc"
    conn = primary.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {schema}")
            cur.execute(f"CREATE TABLE {schema}.t (id INT PRIMARY KEY, s VARCHAR(32), b BLOB, d DECIMAL(8,2))")
            cur.execute(f"INSERT INTO {schema}.t VALUES (1, 'one', x'00ff10', 1.50), (2, 'two', NULL, NULL)")
            cur.execute(f"UPDATE {schema}.t SET s = 'deux', b = x'c3a9' WHERE id = 2")
            cur.execute(f"DELETE FROM {schema}.t WHERE id = 1")
    finally:
        conn.close()
    data_dir = tmp_path_factory.mktemp("relayed") / "store"
    done = run_relay(primary.dsn, data_dir)
    assert done.returncode == 0, done.stderr
    store = StoreReader.open(data_dir)
    hub = ServerThread(store, tls=False, dump_handler=default_dump_handler)
    try:
        yield Relayed(primary, hub, schema)
    finally:
        hub.stop()


def replication_rows(port: int, user: str, password: str, schema: str) -> list[tuple[str, str, list[Any]]]:
    """What PyPI mysql-replication decodes, in MariaDB mode by file/position from the first file."""
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

    stream = BinLogStreamReader(
        connection_settings={"host": "127.0.0.1", "port": port, "user": user, "passwd": password},
        server_id=4242, is_mariadb=True, blocking=False, only_schemas=[schema],
        only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent])
    try:
        return [(type(ev).__name__, ev.table, ev.rows) for ev in stream]
    finally:
        stream.close()


def test_mysql_replication_reads_the_same_rows_through_binhub(relayed: Relayed) -> None:
    """mysql-replication (MariaDB mode, no GTID: file name "\\0\\0\\0\\0") gets the primary's rows.

    It asks ``SHOW VARIABLES LIKE 'BINLOG_ROW_METADATA'`` before it trusts the TABLE_MAP metadata:
    binhub must answer the upstream's FULL, or every column is UNKNOWN_COLn and BLOBs are text.
    """
    primary = relayed.primary
    expected = replication_rows(primary.port, primary.repl_user, primary.repl_password, relayed.schema)
    got = replication_rows(relayed.hub.port, USER, PASSWORD, relayed.schema)
    assert [k for k, _, _ in expected] == ["WriteRowsEvent", "UpdateRowsEvent", "DeleteRowsEvent"]
    first = expected[0][2][0]["values"]
    assert set(first) == {"id", "s", "b", "d"} and first["b"] == b"\x00\xff\x10"
    assert got == expected


def test_the_relay_keeps_the_upstreams_variables_with_the_store(relayed: Relayed) -> None:
    """state.json holds what the primary says of its binlog, recorded when the relay connected."""
    store = relayed.hub.server.store
    recorded = StoreState.load(store.state_path).upstream_variables
    mine = relayed.primary.connect()
    try:
        _, rows = answer(mine, "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('binlog_row_metadata', "
                               "'log_bin_basename', 'gtid_strict_mode', 'server_id', 'version')")
    finally:
        mine.close()
    assert rows and {name: recorded.get(name) for name, _ in rows} == dict(rows)
    assert recorded["binlog_row_metadata"] == "FULL"


VARIABLES = ("binlog_format", "binlog_row_image", "binlog_row_metadata", "binlog_annotate_row_events",
             "gtid_domain_id", "gtid_strict_mode", "log_bin_basename", "binlog_checksum", "log_slave_updates",
             "max_binlog_size", "character_set_server", "collation_server", "lower_case_table_names")


@pytest.mark.parametrize("statement", [
    "SHOW GLOBAL VARIABLES WHERE Variable_name IN ({names})", "SHOW VARIABLES WHERE Variable_name IN ({names})",
    "SELECT {selects}", "SELECT {global_selects}",
])
def test_replication_variables_are_the_upstreams(relayed: Relayed, statement: str) -> None:
    """What CDC tools and replicas probe is what the upstream says (recorded by the relay on connect)."""
    sql = statement.format(names=", ".join(f"'{v}'" for v in VARIABLES),
                           selects=", ".join(f"@@{v}" for v in VARIABLES),
                           global_selects=", ".join(f"@@GLOBAL.{v.upper()}" for v in VARIABLES))
    mine = relayed.primary.connect()
    hub = hub_connect(relayed.hub.port)
    try:
        assert answer(hub, sql) == answer(mine, sql)
    finally:
        mine.close()
        hub.close()


@pytest.fixture
def empty_hub(tmp_path: Path) -> Iterator[ServerThread]:
    store = mariadb_store(tmp_path / "store")
    store.update_state(source=UpstreamSource(host="127.0.0.1", port=3306, user="repl"))  # a relay has connected
    server = ServerThread(store, tls=False)
    yield server
    server.stop()
    store.close()


def hub_connect(port: int) -> Any:
    return pymysql.connect(host="127.0.0.1", port=port, user=USER, password=PASSWORD, connect_timeout=10)


def answer(conn: Any, statement: str) -> tuple[list[str], list[tuple[Any, ...]]] | tuple[int, str]:
    """(column names, rows), or (error number, message)."""
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
            return [d[0] for d in cur.description or ()], [tuple(r) for r in cur.fetchall()]
    except pymysql.MySQLError as exc:
        return int(exc.args[0]), str(exc.args[1])


@pytest.mark.parametrize("statement", [
    "SHOW SLAVE STATUS FOR CHANNEL ''", "SHOW REPLICA STATUS FOR CHANNEL ''", "SHOW SLAVE '' STATUS",
    "SHOW SLAVE STATUS FOR CHANNEL 'eu_west'", "SHOW REPLICA STATUS FOR CHANNEL 'eu_west'",
    "SHOW SLAVE 'eu_west' STATUS", "SHOW REPLICA 'eu_west' STATUS", "SHOW REPLICA `eu_west` STATUS",
])
def test_show_slave_status_of_a_named_connection(primary: Sandbox, empty_hub: ServerThread, statement: str) -> None:
    """The default channel / unnamed connection is binhub's upstream; another name is unknown, as on mariadbd."""
    mine = primary.connect()
    hub = hub_connect(empty_hub.port)
    try:
        expected, got = answer(mine, statement), answer(hub, statement)
        default = answer(hub, "SHOW SLAVE STATUS")
    finally:
        mine.close()
        hub.close()
    if expected[0] == 1064:  # a syntax error on both sides: the texts differ, as parsers do
        assert got[0] == 1064, got
    elif isinstance(expected[0], int):
        assert got == expected  # (1617, "There is no master connection 'eu_west'")
    else:
        # The primary replicates from no one (no row); binhub shows its relay's row, same columns.
        assert isinstance(got[0], list) and got[0] == expected[0], got
        assert got == default and len(got[1]) == 1


# ------------------------------------------------------------------------------ GTID variables, live

GTID_QUERIES = [
    "SELECT @@gtid_binlog_pos, @@gtid_current_pos, @@gtid_binlog_state",
    "SELECT @@GLOBAL.gtid_binlog_pos, @@global.gtid_current_pos, @@global.gtid_binlog_state",
    "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('gtid_binlog_pos', 'gtid_current_pos', 'gtid_binlog_state')",
]


def test_gtid_variables_follow_the_store_live(primary_db: PrimaryDb, tmp_path: Path) -> None:
    """After a burst of transactions, binhub (read-only beside a running relay, as ``binhub serve``)
    answers the GTID variables and BINLOG_GTID_POS() as the primary does, as soon as it has stored
    them: not the executed set the state file held at its last write."""
    data_dir = tmp_path / "store"
    relay = start_relay(primary_db.dsn, data_dir, "--start-file", primary_db.start_file, log=tmp_path / "relay.log")
    hub: ServerThread | None = None
    try:
        wait_until(lambda: (data_dir / "state.json").exists() and (data_dir / "durable").exists(), timeout=30,
                   message="the relay stored nothing")
        hub = ServerThread(StoreReader.open(data_dir), tls=False)
        with primary_db.conn.cursor() as cur:
            cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))")
            for i in range(235):  # autocommit: a transaction each
                cur.execute("INSERT INTO t VALUES (%s, 'x')", (i,))
        file, position, gtid_pos = primary_db.position()
        port = hub.port
        conn = hub_connect(port)
        try:
            wait_until(lambda: answer(conn, "SHOW MASTER STATUS")[1][:1] == [(file, position, "", "")], timeout=60,
                       message="binhub's store did not reach the primary's position")
            # At once: the relay, idle now, may not write its state file for a long while.
            got = {q: answer(conn, q) for q in GTID_QUERIES}
        finally:
            conn.close()
        mine = primary_db.connect()
        try:
            expected = {q: answer(mine, q) for q in GTID_QUERIES}
            stored = [name for name, _ in answer(mine, "SHOW BINARY LOGS")[1]]
            stored = stored[stored.index(primary_db.start_file):]
            positions = [(name, int(row[1])) for name in stored for row in answer(mine, f"SHOW BINLOG EVENTS IN '{name}'")[1]]
            positions += [(stored[-1], position), (stored[0], 0), (stored[0], positions[1][1] + 1),
                          (stored[0], 10 ** 9), ("nosuch-bin.000001", 4)]
            expected_pos = [answer(mine, f"SELECT BINLOG_GTID_POS('{f}', {p})")[1] for f, p in positions]
        finally:
            mine.close()
        assert got == expected
        assert expected[GTID_QUERIES[0]][1][0][0] == gtid_pos and gtid_pos.endswith(
            f"-{int(primary_db.start_gtid.rsplit('-', 1)[1]) + 237}")
        conn = hub_connect(port)
        try:
            got_pos = [answer(conn, f"SELECT BINLOG_GTID_POS('{f}', {p})")[1] for f, p in positions]
        finally:
            conn.close()
        assert got_pos == expected_pos
    finally:
        if hub is not None:
            hub.stop()
        stop_relay(relay)
