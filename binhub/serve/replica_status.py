"""SHOW SLAVE STATUS, SHOW REPLICA STATUS and SHOW ALL SLAVES STATUS: binhub as its upstream's replica.

binhub serves as a primary, but a relay fills its store as a replica of the upstream; operators
and tools (orchestrator, MaxScale's monitor, scripts) ask this to see where a binlog server stands,
and MaxScale's binlog router and kingbus answer it with their upstream connection too. The store
is binhub's relay log and its files are the upstream's byte for byte, so the upstream position and
the relay-log position are one (file, offset): the durable one.

The columns are the servers' own, in their order, because tools read them by name:

* MariaDB 10.11, ``show_master_info_get_fields`` (sql/slave.cc), checked against a running
  10.11.19: Replicate_Rewrite_DB is the last column there (later versions move it up);
* MySQL 8.0.22+, ``show_slave_status_metadata`` (sql/rpl_replica.cc): SHOW REPLICA STATUS uses
  the Source/Replica terms and SHOW SLAVE STATUS renames them back
  (``rename_fields_use_old_replica_source_terms``), as :data:`MYSQL_OLD_NAMES` does.

:func:`read_replica_status` reads the store; :func:`replica_status_rows` is pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from binhub.serve.variables import Value
from binhub.store import StoreReader
from binhub.store.state import UpstreamIdentity, UpstreamSource
from binhub.wire.constants import ColumnType

__all__ = ["MARIADB_ALL_COLUMNS", "MARIADB_COLUMNS", "MYSQL_COLUMNS", "MYSQL_OLD_NAMES", "ReplicaStatus",
           "column_type", "read_replica_status", "replica_status_rows"]

MYSQL_COLUMNS: tuple[str, ...] = (
    "Replica_IO_State", "Source_Host", "Source_User", "Source_Port", "Connect_Retry", "Source_Log_File",
    "Read_Source_Log_Pos", "Relay_Log_File", "Relay_Log_Pos", "Relay_Source_Log_File", "Replica_IO_Running",
    "Replica_SQL_Running", "Replicate_Do_DB", "Replicate_Ignore_DB", "Replicate_Do_Table",
    "Replicate_Ignore_Table", "Replicate_Wild_Do_Table", "Replicate_Wild_Ignore_Table", "Last_Errno",
    "Last_Error", "Skip_Counter", "Exec_Source_Log_Pos", "Relay_Log_Space", "Until_Condition", "Until_Log_File",
    "Until_Log_Pos", "Source_SSL_Allowed", "Source_SSL_CA_File", "Source_SSL_CA_Path", "Source_SSL_Cert",
    "Source_SSL_Cipher", "Source_SSL_Key", "Seconds_Behind_Source", "Source_SSL_Verify_Server_Cert",
    "Last_IO_Errno", "Last_IO_Error", "Last_SQL_Errno", "Last_SQL_Error", "Replicate_Ignore_Server_Ids",
    "Source_Server_Id", "Source_UUID", "Source_Info_File", "SQL_Delay", "SQL_Remaining_Delay",
    "Replica_SQL_Running_State", "Source_Retry_Count", "Source_Bind", "Last_IO_Error_Timestamp",
    "Last_SQL_Error_Timestamp", "Source_SSL_Crl", "Source_SSL_Crlpath", "Retrieved_Gtid_Set",
    "Executed_Gtid_Set", "Auto_Position", "Replicate_Rewrite_DB", "Channel_Name", "Source_TLS_Version",
    "Source_public_key_path", "Get_Source_public_key", "Network_Namespace",
)

#: MySQL 8.0's SHOW SLAVE STATUS: the same columns, the old terms.
MYSQL_OLD_NAMES: dict[str, str] = {
    "Replica_IO_State": "Slave_IO_State", "Source_Host": "Master_Host", "Source_User": "Master_User",
    "Source_Port": "Master_Port", "Source_Log_File": "Master_Log_File",
    "Read_Source_Log_Pos": "Read_Master_Log_Pos", "Relay_Source_Log_File": "Relay_Master_Log_File",
    "Replica_IO_Running": "Slave_IO_Running", "Replica_SQL_Running": "Slave_SQL_Running",
    "Exec_Source_Log_Pos": "Exec_Master_Log_Pos", "Source_SSL_Allowed": "Master_SSL_Allowed",
    "Source_SSL_CA_File": "Master_SSL_CA_File", "Source_SSL_CA_Path": "Master_SSL_CA_Path",
    "Source_SSL_Cert": "Master_SSL_Cert", "Source_SSL_Cipher": "Master_SSL_Cipher",
    "Source_SSL_Key": "Master_SSL_Key", "Seconds_Behind_Source": "Seconds_Behind_Master",
    "Source_SSL_Verify_Server_Cert": "Master_SSL_Verify_Server_Cert", "Source_Server_Id": "Master_Server_Id",
    "Source_UUID": "Master_UUID", "Source_Info_File": "Master_Info_File",
    "Replica_SQL_Running_State": "Slave_SQL_Running_State", "Source_Retry_Count": "Master_Retry_Count",
    "Source_Bind": "Master_Bind", "Source_SSL_Crl": "Master_SSL_Crl", "Source_SSL_Crlpath": "Master_SSL_Crlpath",
    "Source_TLS_Version": "Master_TLS_Version", "Source_public_key_path": "Master_public_key_path",
    "Get_Source_public_key": "Get_master_public_key",
}
_NEW_NAMES = {old: new for new, old in MYSQL_OLD_NAMES.items()}

MARIADB_COLUMNS: tuple[str, ...] = (
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
)

#: SHOW ALL SLAVES STATUS: one row per connection, named, with the SQL thread's state first.
MARIADB_ALL_COLUMNS: tuple[str, ...] = ("Connection_name", "Slave_SQL_State", *MARIADB_COLUMNS,
                                        "Retried_transactions", "Max_relay_log_size", "Executed_log_entries",
                                        "Slave_received_heartbeats", "Slave_heartbeat_period", "Gtid_Slave_Pos")

# Column types as the servers declare them (Item_return_int / Item_float); the rest are strings.
# Keyed by the MySQL 8.0.22+ name where both servers have the column.
_LONG = frozenset({"Source_Port", "Connect_Retry", "Last_Errno", "Skip_Counter", "Last_IO_Errno", "Last_SQL_Errno",
                   "Source_Server_Id", "SQL_Delay", "SQL_Remaining_Delay", "Auto_Position", "Get_Source_public_key",
                   "Retried_transactions", "Executed_log_entries", "Slave_received_heartbeats"})
_LONGLONG = frozenset({"Read_Source_Log_Pos", "Relay_Log_Pos", "Exec_Source_Log_Pos", "Relay_Log_Space",
                       "Until_Log_Pos", "Seconds_Behind_Source", "Source_Retry_Count", "Slave_DDL_Groups",
                       "Slave_Non_Transactional_Groups", "Slave_Transactional_Groups", "Max_relay_log_size"})

MAX_RELAY_LOG_SIZE = 1073741824  # what @@max_binlog_size answers; binhub's files are the upstream's


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    """What the answer is made of: binhub's upstream connection and what its store holds."""

    source: UpstreamSource
    upstream: UpstreamIdentity | None
    file: str  # the durable position: read from the upstream, stored, and (as a relay log) "applied"
    position: int
    relay_log_space: int  # bytes in the store's files
    io_running: bool  # a relay holds the store's writer lock
    gtid_position: str  # MariaDB: the GTID position at ``position``; MySQL: @@gtid_executed as binhub answers it
    info_file: str  # where the source is recorded: state.json in the data dir (no server path is shown)


def read_replica_status(store: StoreReader, *, mariadb: bool, gtid_executed: str) -> ReplicaStatus | None:
    """The store's view, or None when no relay ever connected (then binhub is no replica).

    ``gtid_executed`` is what binhub answers for @@gtid_executed (MySQL). For MariaDB the GTID
    position is the store's binlog state at the durable offset, the row's position.
    """
    source = store.state.source
    if source is None:
        return None
    gtid_position = str(store.mariadb_state()) if mariadb else gtid_executed
    files = store.durable_files()
    durable = store.durable_position
    if durable is not None:
        file, position = durable.file, durable.position
    else:
        file, position = (files[-1][0], files[-1][1]) if files else ("", 4)
    return ReplicaStatus(source=source, upstream=store.state.upstream, file=file, position=position,
                         relay_log_space=sum(size for _, size in files), io_running=store.has_writer(),
                         gtid_position=gtid_position, info_file=store.state_path.name)


def column_type(name: str) -> ColumnType:
    """The type a server declares for this SHOW ... STATUS column."""
    key = _NEW_NAMES.get(name, name)
    if key in _LONG:
        return ColumnType.LONG
    if key in _LONGLONG:
        return ColumnType.LONGLONG
    if key == "Slave_heartbeat_period":
        return ColumnType.DOUBLE
    return ColumnType.VAR_STRING


def replica_status_rows(status: ReplicaStatus | None, *, mariadb: bool, spelling: str,
                        ) -> tuple[tuple[str, ...], list[tuple[Value, ...]]]:
    """Column names and rows (none or one) for ``spelling``: "slave status", "replica status" or
    "all slaves status", as a server of the store's flavour answers it."""
    if mariadb:
        # MariaDB names both spellings' columns Slave_*/Master_*; only SHOW ALL adds columns.
        names = MARIADB_ALL_COLUMNS if spelling == "all slaves status" else MARIADB_COLUMNS
    elif spelling == "replica status":
        names = MYSQL_COLUMNS
    else:
        names = tuple(MYSQL_OLD_NAMES.get(n, n) for n in MYSQL_COLUMNS)
    if status is None:
        return names, []  # a server that is no replica: the columns, no row
    values = _values(status, mariadb=mariadb)
    return names, [tuple(values[_NEW_NAMES.get(n, n)] for n in names)]


def _values(s: ReplicaStatus, *, mariadb: bool) -> dict[str, Value]:
    """Every column's value, keyed by its MySQL 8.0.22+ name (MariaDB's own names for its own columns)."""
    src, up = s.source, s.upstream
    io_state = "" if not s.io_running else (
        "Waiting for master to send event" if mariadb else "Waiting for source to send event")
    return {
        "Replica_IO_State": io_state, "Source_Host": src.host, "Source_User": src.user, "Source_Port": src.port,
        "Connect_Retry": src.connect_retry,
        "Source_Log_File": s.file, "Read_Source_Log_Pos": s.position,
        # The store is binhub's relay log and holds the upstream's files as they are: same name, same offset.
        "Relay_Log_File": s.file, "Relay_Log_Pos": s.position, "Relay_Source_Log_File": s.file,
        "Replica_IO_Running": "Yes" if s.io_running else "No",
        # binhub applies nothing; its "SQL thread" is the store: an event is executed once it is durable,
        # so it runs exactly when the relay does and never lags it (Exec = Read position, 0 s behind);
        # monitors (MaxScale, proxies, MHA) would read IO=Yes with SQL=No as broken replication.
        "Replica_SQL_Running": "Yes" if s.io_running else "No",
        "Replicate_Do_DB": "", "Replicate_Ignore_DB": "", "Replicate_Do_Table": "", "Replicate_Ignore_Table": "",
        "Replicate_Wild_Do_Table": "", "Replicate_Wild_Ignore_Table": "",
        "Last_Errno": 0, "Last_Error": "", "Skip_Counter": 0,
        "Exec_Source_Log_Pos": s.position, "Relay_Log_Space": s.relay_log_space,
        "Until_Condition": "None", "Until_Log_File": "", "Until_Log_Pos": 0,
        "Source_SSL_Allowed": "Yes" if src.ssl else "No", "Source_SSL_CA_File": "", "Source_SSL_CA_Path": "",
        "Source_SSL_Cert": "", "Source_SSL_Cipher": "", "Source_SSL_Key": "",
        "Seconds_Behind_Source": 0 if s.io_running else None,  # NULL without a running "SQL thread", as servers do
        "Source_SSL_Verify_Server_Cert": "Yes" if src.ssl_verify_server_cert else "No",
        "Last_IO_Errno": 0, "Last_IO_Error": "", "Last_SQL_Errno": 0, "Last_SQL_Error": "",
        "Replicate_Ignore_Server_Ids": "",
        "Source_Server_Id": up.server_id if up is not None else 0,
        "Source_UUID": up.server_uuid if up is not None else "",
        "Source_Info_File": s.info_file, "SQL_Delay": 0, "SQL_Remaining_Delay": None,
        "Replica_SQL_Running_State": "" if not s.io_running else (
            "Slave has read all relay log; waiting for more updates" if mariadb
            else "Replica has read all relay log; waiting for more updates"),
        "Source_Retry_Count": 0,  # the relay reconnects forever (MySQL's 0 = no limit)
        "Source_Bind": "", "Last_IO_Error_Timestamp": "", "Last_SQL_Error_Timestamp": "",
        "Source_SSL_Crl": "", "Source_SSL_Crlpath": "",
        # What binhub holds is what its @@gtid_executed answers (MySQL: the same in both columns).
        "Retrieved_Gtid_Set": s.gtid_position, "Executed_Gtid_Set": s.gtid_position,
        # The relay dumps whole files by name and offset; GTIDs only locate the first file.
        "Auto_Position": 0, "Using_Gtid": "No",
        "Replicate_Rewrite_DB": "", "Channel_Name": "", "Source_TLS_Version": "", "Source_public_key_path": "",
        "Get_Source_public_key": 0, "Network_Namespace": "",
        # MariaDB's own columns
        "Gtid_IO_Pos": s.gtid_position, "Replicate_Do_Domain_Ids": "", "Replicate_Ignore_Domain_Ids": "",
        "Parallel_Mode": "none", "Slave_DDL_Groups": 0, "Slave_Non_Transactional_Groups": 0,
        "Slave_Transactional_Groups": 0,
        "Connection_name": "", "Slave_SQL_State": "", "Retried_transactions": 0,
        "Max_relay_log_size": MAX_RELAY_LOG_SIZE, "Executed_log_entries": 0, "Slave_received_heartbeats": 0,
        "Slave_heartbeat_period": src.heartbeat_period, "Gtid_Slave_Pos": s.gtid_position,
    }
