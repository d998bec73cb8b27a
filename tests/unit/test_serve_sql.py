"""binhub's SQL front end: the parser, and whole statement sequences that replicas and tools send.

The corpus holds what real clients send before dumping (reference doc binlog-server-anchors.md,
sections 2.1-2.3): MySQL 5.7, 8.0.26+ and 8.4 replica IO threads, MariaDB 10.11 replicas, PyMySQL,
mysql-replication, mysql-connector, the mariadb CLI, orchestrator, Maxwell, gh-ost and binhub's own
relay. Every statement must be answered (OK or rows) without an error, except where the client
expects one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import cast

import pytest

from binhub.serve import sql
from binhub.serve.queries import OkReply, QueryHandler, RowsReply, SqlError
from binhub.serve.server import BinlogServer
from binhub.serve.session import SessionState
from binhub.serve.users import UserDirectory, make_user
from binhub.store import BinlogStore, StoreReader
from binhub.store.catalog import identity_from_file
from binhub.store.state import UpstreamIdentity, UpstreamSource
from binhub.wire.constants import ColumnType

MARIADB_FILE = "blackbeam__rust_mysql_common/mariadb-bin.000001"
MYSQL_FILE = "zendesk__maxwell/binlog.000004"
UUID = "7fa7d0c4-3c2b-11ef-9c4b-0242ac120002"


def _server(store: BinlogStore | StoreReader) -> BinlogServer:
    """A server over the writer's own store (as in ``binhub run``) or a reader of another process's."""
    writer = store if isinstance(store, BinlogStore) else None
    reader = writer.reader if writer is not None else store
    server = BinlogServer(reader, writer=writer, users=UserDirectory(users=[make_user("repl", "pw", admin=True)]),
                          server_id=77, port=3307)
    server.server_uuid = "11111111-2222-3333-4444-555555555555"
    return server


def _handler(server: BinlogServer) -> QueryHandler:
    return QueryHandler(server, SessionState(user="repl", connection_id=5, client_host="127.0.0.1", admin=True))


@pytest.fixture
def empty_store(tmp_path: Path) -> Iterator[BinlogStore]:
    store = BinlogStore.open(tmp_path / "store")
    store.set_identity(UpstreamIdentity(flavour="mariadb", server_id=1, base_name="mariadb-bin", gtid_domain_id=0,
                                        version="10.11.6-MariaDB-log"))
    yield store
    store.close()


def _imported(tmp_path: Path, source: Path) -> BinlogStore:
    store = BinlogStore.open(tmp_path / "store")
    store.set_identity(identity_from_file(source))
    store.import_file(source)
    return store


@pytest.fixture
def mariadb_store(tmp_path: Path, shared_binlogs: Path) -> Iterator[BinlogStore]:
    store = _imported(tmp_path, shared_binlogs / MARIADB_FILE)
    yield store
    store.close()


@pytest.fixture
def mysql_store(tmp_path: Path, shared_binlogs: Path) -> Iterator[BinlogStore]:
    store = _imported(tmp_path, shared_binlogs / MYSQL_FILE)
    yield store
    store.close()


def run(h: QueryHandler, statement: str) -> list[tuple[object, ...]]:
    reply = h.execute(statement)
    if isinstance(reply, OkReply):
        return []
    assert isinstance(reply, RowsReply)
    return [tuple(r) for r in reply.rows]


def columns(h: QueryHandler, statement: str) -> list[str]:
    reply = h.execute(statement)
    assert isinstance(reply, RowsReply)
    return [c.name for c in reply.columns]


# ------------------------------------------------------------------------------ parser

@pytest.mark.parametrize("text, scope", [
    ("SELECT @@GLOBAL.SERVER_ID", "global"), ("select @@global.server_id", "global"),
    ("SELECT @@server_id", ""), ("SELECT @@SESSION.server_id", "session"), ("SELECT @@local.server_id", "session"),
    ("  select   @@Global.Server_Id ;", "global"), ("/*!40101 SELECT @@global.server_id */", "global"),
    ("SELECT /* comment */ @@global.server_id -- trailing\n", "global"),
])
def test_system_variable_spellings_normalise(text: str, scope: str) -> None:
    stmt = sql.parse(text)
    assert isinstance(stmt, sql.SelectStmt)
    assert stmt.items[0].expr == sql.SysVar("server_id", scope)


def test_multi_assignment_set_with_both_operators() -> None:
    stmt = sql.parse("SET @master_binlog_checksum = @@global.binlog_checksum, @SOURCE_binlog_checksum := "
                     "@@GLOBAL.binlog_checksum")
    assert isinstance(stmt, sql.SetStmt)
    assert [a.target for a in stmt.assignments] == [sql.UserVar("master_binlog_checksum"),
                                                    sql.UserVar("source_binlog_checksum")]
    assert all(a.value == sql.SysVar("binlog_checksum", "global") for a in stmt.assignments)


def test_column_name_is_the_expression_as_written() -> None:
    stmt = sql.parse("SELECT @@GLOBAL.SERVER_ID, 1 + 1 AS two, @x `y`")
    assert isinstance(stmt, sql.SelectStmt)
    assert [i.name for i in stmt.items] == ["@@GLOBAL.SERVER_ID", "two", "y"]


def test_quoted_strings_and_user_variables() -> None:
    stmt = sql.parse("SET @'Slave_UUID' = 'it''s \\'x\\'', @`b` = \"q\"")
    assert isinstance(stmt, sql.SetStmt)
    assert stmt.assignments[0] == sql.Assignment(sql.UserVar("slave_uuid"), sql.Literal("it's 'x'"))
    assert stmt.assignments[1].target == sql.UserVar("b")


def test_show_binlog_events_clauses() -> None:
    assert sql.parse("SHOW BINLOG EVENTS IN 'm.000002' FROM 120 LIMIT 2, 3") == sql.ShowBinlogEvents("m.000002", 120, 2, 3)
    assert sql.parse("show binlog events") == sql.ShowBinlogEvents()


@pytest.mark.parametrize("text", ["FOO BAR", "SELECT", "SELECT (SELECT 1)", "SHOW FROBS", "SET", "SELECT 'x",
                                  "DELETE FROM t", "SELECT 1 SELECT 2", "SET @a = ", "\x00\xff", "((((" * 300])
def test_garbage_is_a_syntax_error_never_a_crash(text: str) -> None:
    with pytest.raises(sql.SqlSyntaxError):
        sql.parse(text)


# ------------------------------------------------------------------------------ corpus

MYSQL_80_REPLICA = [
    "SELECT UNIX_TIMESTAMP()",
    "SELECT @@GLOBAL.SERVER_ID",
    "SET @master_heartbeat_period = 30000000000, @source_heartbeat_period = 30000000000",
    "SET @master_binlog_checksum = @@global.binlog_checksum, @source_binlog_checksum = @@global.binlog_checksum",
    "SELECT @source_binlog_checksum",
    "SELECT @@GLOBAL.GTID_MODE",
    "SELECT @@GLOBAL.SERVER_UUID",
    f"SET @slave_uuid = '{UUID}', @replica_uuid = '{UUID}'",
    "SELECT @@global.rpl_semi_sync_source_enabled",
    "SELECT @@global.rpl_semi_sync_master_enabled",
    "SET @rpl_semi_sync_replica = 1, @rpl_semi_sync_slave = 1",
]
MYSQL_84_REPLICA = [s for s in MYSQL_80_REPLICA if "rpl_semi_sync_slave" not in s] + ["SET @rpl_semi_sync_replica = 1"]
MYSQL_57_REPLICA = [  # py-mysql-binlogserver's recorded trace of a 5.7 IO thread
    "SELECT UNIX_TIMESTAMP()",
    "SELECT @@GLOBAL.SERVER_ID",
    "SET @master_heartbeat_period= 30000001024",
    "SET @master_binlog_checksum= @@global.binlog_checksum",
    "SELECT @master_binlog_checksum",
    "SELECT @@GLOBAL.GTID_MODE",
    "SELECT @@GLOBAL.SERVER_UUID",
    f"SET @slave_uuid= '{UUID}'",
    "SHOW VARIABLES LIKE 'rpl_semi_sync_master_enabled'",
    "SET @rpl_semi_sync_slave= 1",
]
MARIADB_1011_REPLICA = [
    "SELECT UNIX_TIMESTAMP()",
    "SHOW VARIABLES LIKE 'SERVER_ID'",
    "SET @master_heartbeat_period= 30000000000",
    "SET @master_binlog_checksum= @@global.binlog_checksum",
    "SELECT @master_binlog_checksum",
    "SET skip_replication=1",
    "SET @mariadb_slave_capability=4",
    "SELECT @@GLOBAL.gtid_domain_id",
    "SET @slave_connect_state='0-1-100'",
    "SET @slave_gtid_strict_mode=1",
    "SET @slave_gtid_ignore_duplicates=0",
    "SET @slave_until_gtid='0-1-200'",
    "SHOW VARIABLES LIKE 'rpl_semi_sync_master_enabled'",
    "SET @rpl_semi_sync_slave= 1",
]
CLIENTS = [
    # PyMySQL connect (autocommit off) and typical probes
    "SET AUTOCOMMIT = 0", "SELECT VERSION()", "COMMIT", "SET NAMES utf8mb4",
    # mysql-replication (BinLogStreamReader)
    "SHOW GLOBAL VARIABLES LIKE 'BINLOG_CHECKSUM'", "SET @master_binlog_checksum= @@global.binlog_checksum",
    f"SET @slave_uuid = '{UUID}', @replica_uuid = '{UUID}'", "SET @master_heartbeat_period = 1000000000",
    "SET @mariadb_slave_capability=4", "SHOW BINARY LOG STATUS", "SHOW MASTER STATUS",
    "SHOW VARIABLES LIKE 'BINLOG_ROW_METADATA';", "SET @slave_connect_state = '0-1-1'",
    "SET @slave_gtid_strict_mode=1", "SET @slave_gtid_ignore_duplicates=0",
    "SELECT COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = 'd' AND TABLE_NAME = 't' "
    "ORDER BY ORDINAL_POSITION",
    # mysql-connector-python
    "SET NAMES 'utf8mb4' COLLATE 'utf8mb4_0900_ai_ci'", "SET @@session.autocommit = OFF",
    "SET @@session.time_zone = '+00:00'", "SELECT @@version_comment LIMIT 1",
    # mariadb / mysql CLI
    "select @@version_comment limit 1", "SELECT DATABASE(), USER() limit 1", "select USER()", "SHOW WARNINGS",
    "SHOW DATABASES", "USE information_schema",
    # orchestrator
    "select @@global.hostname, ifnull(@@global.report_host, ''), @@global.server_id, @@global.version, "
    "@@global.version_comment, @@global.read_only, @@global.binlog_format, @@global.log_bin, "
    "@@global.log_slave_updates",
    "show global status like 'Uptime'", "show slave status", "show slave hosts", "SHOW REPLICAS",
    "select @@global.gtid_mode, @@global.server_uuid, @@global.gtid_executed, @@global.gtid_purged, "
    "@@global.master_info_repository = 'TABLE', @@global.binlog_row_image",
    "show binary logs", "SHOW REPLICA STATUS",
    # Maxwell
    "SELECT @@server_id as server_id", "SHOW VARIABLES LIKE 'binlog_row_image'", "select version()",
    "SELECT @@gtid_mode", "SHOW VARIABLES LIKE 'binlog_format'",
    # gh-ost
    "select @@global.port", "select @@global.hostname, @@global.port", "select @@global.version",
    "show /* gh-ost */ grants for current_user()", "select @@global.log_bin, @@global.binlog_format",
    "select @@global.binlog_row_image", "select @@global.log_slave_updates", "select @@global.time_zone",
    "select connection_id()", "SHOW PROCESSLIST",
    # binhub's own relay (binhub.relay.upstream / relay), chaining binhub -> binhub
    "SELECT @@version, @@server_id, @@log_bin, @@binlog_format, @@global.binlog_checksum",
    "SELECT @@gtid_domain_id, @@gtid_binlog_pos", "SELECT @@server_uuid",
    "SELECT @@global.gtid_executed, @@global.gtid_purged", "SHOW BINARY LOGS",
    "SHOW VARIABLES WHERE Variable_name IN ('rpl_semi_sync_master_enabled', 'rpl_semi_sync_source_enabled')",
    "SET @rpl_semi_sync_slave = 1, @rpl_semi_sync_replica = 1",
]


@pytest.mark.parametrize("name, sequence", [
    ("mysql-5.7", MYSQL_57_REPLICA), ("mysql-8.0", MYSQL_80_REPLICA), ("mysql-8.4", MYSQL_84_REPLICA),
    ("mariadb-10.11", MARIADB_1011_REPLICA), ("clients", CLIENTS),
])
def test_corpus_is_answered(empty_store: BinlogStore, name: str, sequence: list[str]) -> None:
    h = _handler(_server(empty_store))
    for statement in sequence:
        try:
            h.execute(statement)
        except SqlError as exc:  # pragma: no cover - the message says which statement failed
            pytest.fail(f"{name}: {statement!r} failed with {exc.code}: {exc.message}")


def test_mysql_replica_gets_what_it_checks(empty_store: BinlogStore) -> None:
    h = _handler(_server(empty_store))
    assert run(h, "SELECT @@GLOBAL.SERVER_ID") == [(77,)]
    assert isinstance(run(h, "SELECT UNIX_TIMESTAMP()")[0][0], int)
    run(h, MYSQL_80_REPLICA[3])
    assert run(h, "SELECT @source_binlog_checksum") == [("CRC32",)]
    assert run(h, "SELECT @master_binlog_checksum") == [("CRC32",)]
    assert run(h, "SELECT @@GLOBAL.SERVER_UUID") == [("11111111-2222-3333-4444-555555555555",)]
    assert columns(h, "SELECT @@GLOBAL.SERVER_UUID") == ["@@GLOBAL.SERVER_UUID"]
    run(h, MYSQL_80_REPLICA[7])
    assert h.session.replica_uuid == UUID
    run(h, MYSQL_80_REPLICA[2])
    assert h.session.user_vars["master_heartbeat_period"] == "30000000000"
    assert h.session.user_vars["source_heartbeat_period"] == "30000000000"
    assert run(h, "SELECT @@global.rpl_semi_sync_source_enabled") == [(1,)]
    run(h, "SET @rpl_semi_sync_replica = 1, @rpl_semi_sync_slave = 1")
    assert h.session.user_vars["rpl_semi_sync_replica"] == "1"


def test_mariadb_replica_gets_two_column_show_variables(empty_store: BinlogStore) -> None:
    h = _handler(_server(empty_store))
    assert columns(h, "SHOW VARIABLES LIKE 'SERVER_ID'") == ["Variable_name", "Value"]
    assert run(h, "SHOW VARIABLES LIKE 'SERVER_ID'") == [("server_id", "77")]
    assert run(h, "SHOW VARIABLES LIKE 'rpl_semi_sync_master_enabled'") == [("rpl_semi_sync_master_enabled", "ON")]
    assert run(h, "SELECT @@GLOBAL.gtid_domain_id") == [(0,)]
    run(h, "SET @slave_connect_state='0-1-100,1-2-5'")
    assert h.session.user_vars["slave_connect_state"] == "0-1-100,1-2-5"
    run(h, "SET @slave_connect_state=''")
    assert h.session.user_vars["slave_connect_state"] == ""
    assert h.facts.version.startswith("10.11.6-MariaDB") and h.facts.version.endswith("-binhub")


def test_show_variables_like_and_where(empty_store: BinlogStore) -> None:
    h = _handler(_server(empty_store))
    names = [r[0] for r in run(h, "SHOW VARIABLES LIKE 'gtid\\_%'")]
    assert "gtid_binlog_pos" in names and "gtid_domain_id" in names and all(str(n).startswith("gtid_") for n in names)
    assert run(h, "SHOW GLOBAL VARIABLES WHERE Variable_name = 'log_bin'") == [("log_bin", "ON")]
    assert run(h, "SHOW VARIABLES LIKE 'server_i_'") == [("server_id", "77")]
    assert run(h, "SHOW VARIABLES LIKE 'no_such_thing'") == []
    run(h, "SET NAMES latin1")
    assert run(h, "SHOW SESSION VARIABLES LIKE 'character_set_client'") == [("character_set_client", "latin1")]
    assert run(h, "SHOW GLOBAL VARIABLES LIKE 'character_set_client'") == [("character_set_client", "utf8mb4")]


def test_select_expressions(empty_store: BinlogStore) -> None:
    h = _handler(_server(empty_store))
    assert run(h, "SELECT 1") == [(1,)]
    assert run(h, "SELECT 1 + 2 * 3, -4, 'a' = 'A', NULL IS NULL, 5 IN (1, 5), 'abc' LIKE 'a%'") == [
        (7, -4, 1, 1, 1, 1)]
    assert run(h, "SELECT IFNULL(@@global.report_host, 'none'), COALESCE(NULL, 2), CONCAT('a', 1)") == [
        ("none", 2, "a1")]
    assert run(h, "SELECT @nothing") == [(None,)]
    assert run(h, "SELECT 1 LIMIT 0") == []
    assert run(h, "SELECT DATABASE()") == [(None,)]
    run(h, "USE information_schema")
    assert run(h, "SELECT DATABASE()") == [("information_schema",)]
    assert run(h, "SELECT CURRENT_USER(), CURRENT_USER") == [("repl@%", "repl@%")]
    assert run(h, "SELECT @@log_bin, @@read_only") == [(1, 1)]


def test_errors_name_the_problem_and_keep_codes(empty_store: BinlogStore) -> None:
    h = _handler(_server(empty_store))
    for statement, code in [("SELECT @@global.no_such_var", 1193), ("FLUSH LOGS", 1064), ("SELECT foo", 1054),
                            ("SELECT nosuchfn(1)", 1305), ("SET GLOBAL server_id = 5", 1227),
                            ("SET @@session.no_such = 1", 1193), ("SELECT * FROM mydb.t", 1146),
                            ("SHOW BINLOG EVENTS IN 'nope.000001'", 1373), ("KILL 999", 1094),
                            ("SELECT IFNULL(1)", 1582)]:
        with pytest.raises(SqlError) as info:
            h.execute(statement)
        assert info.value.code == code, statement
    with pytest.raises(SqlError) as info:
        h.execute("FLUSH LOGS")
    assert "FLUSH LOGS" in info.value.message


def test_failed_set_changes_nothing(empty_store: BinlogStore) -> None:
    h = _handler(_server(empty_store))
    with pytest.raises(SqlError):
        h.execute("SET @a = 1, @@session.no_such = 2")
    assert "a" not in h.session.user_vars


def test_purge_on_a_read_only_store_says_what_to_use(mariadb_store: BinlogStore, tmp_path: Path) -> None:
    readonly = StoreReader.open(mariadb_store.data_dir)
    h = _handler(_server(readonly))
    with pytest.raises(SqlError) as info:
        h.execute("PURGE BINARY LOGS TO 'mariadb-bin.000001'")
    assert "binhub binlog purge" in info.value.message


def test_purge_needs_admin(empty_store: BinlogStore) -> None:
    h = QueryHandler(_server(empty_store), SessionState(user="repl", connection_id=5))
    with pytest.raises(SqlError) as info:
        h.execute("PURGE BINARY LOGS BEFORE '2020-01-01 00:00:00'")
    assert info.value.code == 1227


# ------------------------------------------------------------------------------ on real files

def test_mariadb_store_answers(mariadb_store: BinlogStore) -> None:
    h = _handler(_server(mariadb_store))
    assert run(h, "SHOW BINARY LOGS") == [("mariadb-bin.000001", 1074)]
    assert columns(h, "SHOW MASTER STATUS") == ["File", "Position", "Binlog_Do_DB", "Binlog_Ignore_DB"]
    assert run(h, "SHOW MASTER STATUS") == [("mariadb-bin.000001", 1074, "", "")]
    assert run(h, "SELECT @@gtid_binlog_pos") == [("0-1-2",)]
    assert run(h, "SELECT @@global.binlog_checksum") == [("CRC32",)]
    events = run(h, "SHOW BINLOG EVENTS IN 'mariadb-bin.000001' LIMIT 4")
    assert [e[2] for e in events][:2] == ["Format_desc", "Gtid_list"]
    assert events[0][1] == 4 and events[1][1] == events[0][4]
    # what binhub's relay parses when it chains from this binhub
    assert events[1][5].startswith("[") and events[1][5].endswith("]")
    assert run(h, "SELECT binlog_gtid_pos('mariadb-bin.000001', 4)") == [("",)]
    assert run(h, "SELECT binlog_gtid_pos('mariadb-bin.000001', 1074)") == [("0-1-2",)]
    offset_rows = run(h, f"SHOW BINLOG EVENTS IN 'mariadb-bin.000001' FROM {events[1][1]} LIMIT 1, 1")
    assert offset_rows == [events[2]]
    with pytest.raises(SqlError):
        h.execute("SHOW BINLOG EVENTS IN 'mariadb-bin.000001' FROM 5")


def test_mysql_store_answers(mysql_store: BinlogStore) -> None:
    h = _handler(_server(mysql_store))
    assert run(h, "SELECT @@GLOBAL.GTID_MODE") == [("ON",)]
    executed = run(h, "SELECT @@global.gtid_executed")[0][0]
    assert str(executed).startswith("83759871-1141-11ed-b12d-0242ac130003:")
    assert columns(h, "SHOW BINARY LOGS") == ["Log_name", "File_size", "Encrypted"]
    status = run(h, "SHOW MASTER STATUS")
    assert status[0][0] == "binlog.000004" and status[0][4] == executed
    events = run(h, "SHOW BINLOG EVENTS IN 'binlog.000004' LIMIT 4")
    assert [e[2] for e in events][:2] == ["Format_desc", "Previous_gtids"]
    assert run(h, "SELECT @@gtid_binlog_pos") == [("",)]


def test_only_durable_bytes_are_visible(mariadb_store: BinlogStore, tmp_path: Path) -> None:
    # An extra, not yet durable file: the writer began it but published nothing in it.
    mariadb_store.begin_file("mariadb-bin.000002")
    h = _handler(_server(mariadb_store))
    assert [r[0] for r in run(h, "SHOW BINARY LOGS")] == ["mariadb-bin.000001"]


# ------------------------------------------------------------------------------ SHOW SLAVE STATUS

# The servers' own column lists, as tools read them by name. MariaDB: a running 10.11.19 (with a
# master configured); MySQL: sql/rpl_replica.cc show_slave_status_metadata, and 8.0's SHOW SLAVE
# STATUS output for the old names.
MARIADB_1011_SLAVE_STATUS = [
    "Slave_IO_State", "Master_Host", "Master_User", "Master_Port", "Connect_Retry", "Master_Log_File",
    "Read_Master_Log_Pos", "Relay_Log_File", "Relay_Log_Pos", "Relay_Master_Log_File", "Slave_IO_Running",
    "Slave_SQL_Running", "Replicate_Do_DB", "Replicate_Ignore_DB", "Replicate_Do_Table", "Replicate_Ignore_Table",
    "Replicate_Wild_Do_Table", "Replicate_Wild_Ignore_Table", "Last_Errno", "Last_Error", "Skip_Counter",
    "Exec_Master_Log_Pos", "Relay_Log_Space", "Until_Condition", "Until_Log_File", "Until_Log_Pos",
    "Master_SSL_Allowed", "Master_SSL_CA_File", "Master_SSL_CA_Path", "Master_SSL_Cert", "Master_SSL_Cipher",
    "Master_SSL_Key", "Seconds_Behind_Master", "Master_SSL_Verify_Server_Cert", "Last_IO_Errno", "Last_IO_Error",
    "Last_SQL_Errno", "Last_SQL_Error", "Replicate_Ignore_Server_Ids", "Master_Server_Id", "Master_SSL_Crl",
    "Master_SSL_Crlpath", "Using_Gtid", "Gtid_IO_Pos", "Replicate_Do_Domain_Ids", "Replicate_Ignore_Domain_Ids",
    "Parallel_Mode", "SQL_Delay", "SQL_Remaining_Delay", "Slave_SQL_Running_State", "Slave_DDL_Groups",
    "Slave_Non_Transactional_Groups", "Slave_Transactional_Groups", "Replicate_Rewrite_DB",
]
MARIADB_1011_ALL_SLAVES_STATUS = ["Connection_name", "Slave_SQL_State", *MARIADB_1011_SLAVE_STATUS,
                                  "Retried_transactions", "Max_relay_log_size", "Executed_log_entries",
                                  "Slave_received_heartbeats", "Slave_heartbeat_period", "Gtid_Slave_Pos"]
MYSQL_80_REPLICA_STATUS = [
    "Replica_IO_State", "Source_Host", "Source_User", "Source_Port", "Connect_Retry", "Source_Log_File",
    "Read_Source_Log_Pos", "Relay_Log_File", "Relay_Log_Pos", "Relay_Source_Log_File", "Replica_IO_Running",
    "Replica_SQL_Running", "Replicate_Do_DB", "Replicate_Ignore_DB", "Replicate_Do_Table", "Replicate_Ignore_Table",
    "Replicate_Wild_Do_Table", "Replicate_Wild_Ignore_Table", "Last_Errno", "Last_Error", "Skip_Counter",
    "Exec_Source_Log_Pos", "Relay_Log_Space", "Until_Condition", "Until_Log_File", "Until_Log_Pos",
    "Source_SSL_Allowed", "Source_SSL_CA_File", "Source_SSL_CA_Path", "Source_SSL_Cert", "Source_SSL_Cipher",
    "Source_SSL_Key", "Seconds_Behind_Source", "Source_SSL_Verify_Server_Cert", "Last_IO_Errno", "Last_IO_Error",
    "Last_SQL_Errno", "Last_SQL_Error", "Replicate_Ignore_Server_Ids", "Source_Server_Id", "Source_UUID",
    "Source_Info_File", "SQL_Delay", "SQL_Remaining_Delay", "Replica_SQL_Running_State", "Source_Retry_Count",
    "Source_Bind", "Last_IO_Error_Timestamp", "Last_SQL_Error_Timestamp", "Source_SSL_Crl", "Source_SSL_Crlpath",
    "Retrieved_Gtid_Set", "Executed_Gtid_Set", "Auto_Position", "Replicate_Rewrite_DB", "Channel_Name",
    "Source_TLS_Version", "Source_public_key_path", "Get_Source_public_key", "Network_Namespace",
]
MYSQL_80_SLAVE_STATUS = [
    "Slave_IO_State", "Master_Host", "Master_User", "Master_Port", "Connect_Retry", "Master_Log_File",
    "Read_Master_Log_Pos", "Relay_Log_File", "Relay_Log_Pos", "Relay_Master_Log_File", "Slave_IO_Running",
    "Slave_SQL_Running", "Replicate_Do_DB", "Replicate_Ignore_DB", "Replicate_Do_Table", "Replicate_Ignore_Table",
    "Replicate_Wild_Do_Table", "Replicate_Wild_Ignore_Table", "Last_Errno", "Last_Error", "Skip_Counter",
    "Exec_Master_Log_Pos", "Relay_Log_Space", "Until_Condition", "Until_Log_File", "Until_Log_Pos",
    "Master_SSL_Allowed", "Master_SSL_CA_File", "Master_SSL_CA_Path", "Master_SSL_Cert", "Master_SSL_Cipher",
    "Master_SSL_Key", "Seconds_Behind_Master", "Master_SSL_Verify_Server_Cert", "Last_IO_Errno", "Last_IO_Error",
    "Last_SQL_Errno", "Last_SQL_Error", "Replicate_Ignore_Server_Ids", "Master_Server_Id", "Master_UUID",
    "Master_Info_File", "SQL_Delay", "SQL_Remaining_Delay", "Slave_SQL_Running_State", "Master_Retry_Count",
    "Master_Bind", "Last_IO_Error_Timestamp", "Last_SQL_Error_Timestamp", "Master_SSL_Crl", "Master_SSL_Crlpath",
    "Retrieved_Gtid_Set", "Executed_Gtid_Set", "Auto_Position", "Replicate_Rewrite_DB", "Channel_Name",
    "Master_TLS_Version", "Master_public_key_path", "Get_master_public_key", "Network_Namespace",
]

SOURCE = UpstreamSource("db1.example", 3310, "repl", ssl=True, connect_retry=30, heartbeat_period=1.0)


def status(h: QueryHandler, statement: str) -> dict[str, object]:
    reply = h.execute(statement)
    assert isinstance(reply, RowsReply) and len(reply.rows) == 1, reply
    return dict(zip([c.name for c in reply.columns], reply.rows[0], strict=True))


@pytest.mark.parametrize("statement, expected", [
    ("SHOW SLAVE STATUS", MARIADB_1011_SLAVE_STATUS), ("show replica status", MARIADB_1011_SLAVE_STATUS),
    ("SHOW ALL SLAVES STATUS", MARIADB_1011_ALL_SLAVES_STATUS),
    ("SHOW ALL REPLICAS STATUS", MARIADB_1011_ALL_SLAVES_STATUS),
])
def test_mariadb_slave_status_columns(mariadb_store: BinlogStore, statement: str, expected: list[str]) -> None:
    h = _handler(_server(mariadb_store))
    # An imported store: no relay ever connected, so binhub is no replica: the columns, no row.
    assert columns(h, statement) == expected and run(h, statement) == []
    mariadb_store.update_state(source=SOURCE)
    assert columns(h, statement) == expected and len(run(h, statement)) == 1


@pytest.mark.parametrize("statement, expected", [
    ("SHOW REPLICA STATUS", MYSQL_80_REPLICA_STATUS), ("SHOW SLAVE STATUS", MYSQL_80_SLAVE_STATUS),
])
def test_mysql_slave_status_columns(mysql_store: BinlogStore, statement: str, expected: list[str]) -> None:
    h = _handler(_server(mysql_store))
    assert columns(h, statement) == expected and run(h, statement) == []
    mysql_store.update_state(source=SOURCE)
    assert columns(h, statement) == expected and len(run(h, statement)) == 1


def test_mariadb_slave_status_shows_the_upstream_and_the_stored_position(mariadb_store: BinlogStore) -> None:
    mariadb_store.update_state(source=SOURCE)
    h = _handler(_server(mariadb_store))
    st = status(h, "SHOW SLAVE STATUS")
    file, position = run(h, "SHOW MASTER STATUS")[0][:2]
    assert (st["Master_Host"], st["Master_Port"], st["Master_User"]) == ("db1.example", 3310, "repl")
    assert st["Master_Log_File"] == st["Relay_Log_File"] == st["Relay_Master_Log_File"] == file
    assert st["Read_Master_Log_Pos"] == st["Relay_Log_Pos"] == st["Exec_Master_Log_Pos"] == position == 1074
    assert st["Relay_Log_Space"] == 1074
    # This store object is the writer (as in `binhub run`): the relay runs, and what it stores is "executed".
    assert (st["Slave_IO_Running"], st["Slave_SQL_Running"]) == ("Yes", "Yes")
    assert st["Slave_IO_State"] == "Waiting for master to send event"
    assert st["Slave_SQL_Running_State"] == "Slave has read all relay log; waiting for more updates"
    assert st["Seconds_Behind_Master"] == 0 and st["Last_IO_Errno"] == 0 and st["Last_IO_Error"] == ""
    assert st["Master_Server_Id"] == 1 and st["Master_SSL_Allowed"] == "Yes" and st["Connect_Retry"] == 30
    assert st["Using_Gtid"] == "No" and st["Gtid_IO_Pos"] == run(h, "SELECT @@gtid_binlog_pos")[0][0] == "0-1-2"
    full = status(h, "SHOW ALL SLAVES STATUS")
    assert full["Connection_name"] == "" and full["Gtid_Slave_Pos"] == "0-1-2"
    assert full["Slave_heartbeat_period"] == 1.0
    assert {k: v for k, v in full.items() if k in st} == st
    types = {c.name: c.type for c in cast(RowsReply, h.execute("SHOW SLAVE STATUS")).columns}
    assert (types["Master_Port"], types["Read_Master_Log_Pos"], types["Master_Host"]) == (
        ColumnType.LONG, ColumnType.LONGLONG, ColumnType.VAR_STRING)


def test_slave_io_running_follows_the_writer_lock(mariadb_store: BinlogStore) -> None:
    """``binhub serve`` beside a relay in another process: the relay's lock on the store says it runs."""
    mariadb_store.update_state(source=SOURCE)
    h = _handler(_server(StoreReader.open(mariadb_store.data_dir)))
    assert status(h, "SHOW SLAVE STATUS")["Slave_IO_Running"] == "Yes"
    mariadb_store.close()
    st = status(h, "SHOW SLAVE STATUS")
    assert (st["Slave_IO_Running"], st["Slave_IO_State"], st["Master_Host"]) == ("No", "", "db1.example")


def test_mariadb_gtid_io_pos_is_taken_at_the_stored_position(mariadb_store: BinlogStore) -> None:
    mariadb_store.update_state(source=SOURCE)
    # A serve-only process cannot rely on state.json, which the relay writes at most once a second:
    # here it is behind, and both the GTID variables and Gtid_IO_Pos still match Read_Master_Log_Pos.
    stale = json.loads(mariadb_store.state_path.read_bytes())
    stale.update(executed_gtids="", last_position=4)
    mariadb_store.state_path.write_text(json.dumps(stale))
    h = _handler(_server(StoreReader.open(mariadb_store.data_dir)))
    assert run(h, "SELECT @@gtid_binlog_pos") == [("0-1-2",)]
    st = status(h, "SHOW SLAVE STATUS")
    assert (st["Read_Master_Log_Pos"], st["Gtid_IO_Pos"]) == (1074, "0-1-2")


def test_mysql_replica_status_shows_gtid_sets_and_the_source_uuid(mysql_store: BinlogStore) -> None:
    mysql_store.set_identity(replace(cast(UpstreamIdentity, mysql_store.state.upstream), server_uuid=UUID))
    mysql_store.update_state(source=SOURCE)
    h = _handler(_server(mysql_store))
    executed = run(h, "SELECT @@global.gtid_executed")[0][0]
    new, old = status(h, "SHOW REPLICA STATUS"), status(h, "SHOW SLAVE STATUS")
    assert list(new.values()) == list(old.values())  # one answer, two vocabularies
    assert (new["Source_Host"], new["Source_Port"], new["Source_UUID"]) == ("db1.example", 3310, UUID)
    assert [new["Source_Log_File"], new["Read_Source_Log_Pos"]] == list(run(h, "SHOW MASTER STATUS")[0][:2])
    assert new["Retrieved_Gtid_Set"] == new["Executed_Gtid_Set"] == executed != ""
    assert (new["Replica_IO_Running"], new["Replica_SQL_Running"], new["Auto_Position"]) == ("Yes", "Yes", 0)
    assert new["Replica_IO_State"] == "Waiting for source to send event" and new["Seconds_Behind_Source"] == 0
    assert old["Master_UUID"] == UUID and old["Slave_IO_Running"] == "Yes"
