"""The system and status variables binhub answers, as a primary of the upstream's flavour would.

Values are built from :class:`ServerFacts` (what the server knows about itself and its store) each
time they are read, so ``@@gtid_binlog_pos`` and ``@@global.gtid_executed`` follow the store.
Booleans are Python ``bool``: ``SELECT @@log_bin`` shows them as 1/0 and ``SHOW VARIABLES`` as
ON/OFF, which is what both servers do and what replicas and tools expect.

Replicas read (reference doc, section 2): server_id, server_uuid, binlog_checksum, gtid_mode,
gtid_domain_id, gtid_binlog_pos, rpl_semi_sync_*_enabled; client libraries and tools read the rest
(max_allowed_packet, version_comment, character sets, time zones, read_only, hostname, ...).
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from binhub.wire.compression import Compression

__all__ = ["ServerFacts", "Value", "compression_status", "global_variables", "like_to_regex", "session_defaults",
           "show_value",
           "status_variables"]

Value = str | int | float | bool | None

#: The largest packet binhub reads from a client (and reports as ``max_allowed_packet``).
MAX_ALLOWED_PACKET = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ServerFacts:
    """What the variables are made of; :class:`~binhub.serve.server.BinlogServer` fills it."""

    flavour: str  # "mariadb" | "mysql"
    version: str  # upstream version + "-binhub"
    server_id: int
    server_uuid: str
    port: int
    checksum: str  # "CRC32" | "NONE"
    gtid_executed: str  # MySQL set, or MariaDB binlog position (@@gtid_binlog_pos), at the durable position
    gtid_binlog_state: str  # MariaDB: the last GTID of each (domain, server)
    gtid_purged: str
    gtid_domain_id: int
    tls: bool
    semi_sync: bool
    started_at: float
    connections: int = 0
    connections_total: int = 0
    failed_logins: int = 0
    semi_sync_clients: int = 0
    hostname: str = ""
    #: The upstream's replication-relevant variables, recorded by the relay (``StoreState``).
    upstream_variables: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_mariadb(self) -> bool:
        return self.flavour == "mariadb"


_HOSTNAME = socket.gethostname()

#: Variables that are binhub's own whatever its upstream says: its identity towards replicas (a
#: replica checks the primary's server_id against its own), what the stored files are (log_bin,
#: their checksum) and the live GTID positions of the store.
BINHUB_OWN = frozenset((
    "server_id", "server_uuid", "version", "version_comment", "log_bin", "binlog_checksum",
    "gtid_executed", "gtid_purged", "gtid_binlog_pos", "gtid_current_pos", "gtid_binlog_state", "gtid_slave_pos",
))


def _as_catalogued(text: str, like: Value) -> Value:
    """A recorded variable's text, typed as binhub's catalogue types that variable (ON → True, "5" → 5)."""
    if isinstance(like, bool) and text.upper() in ("ON", "OFF"):
        return text.upper() == "ON"
    if isinstance(like, int | type(None)) and not isinstance(like, bool) and text.lstrip("-").isdigit():
        return int(text)
    return text


def global_variables(f: ServerFacts) -> dict[str, Value]:
    """Every global variable binhub knows, lower-case names."""
    mysql_gtid = not f.is_mariadb and bool(f.gtid_executed or f.gtid_purged)
    collation = "utf8mb4_general_ci" if f.is_mariadb else "utf8mb4_0900_ai_ci"
    v: dict[str, Value] = {
        # identity
        "server_id": f.server_id,
        "server_uuid": f.server_uuid,
        "version": f.version,
        "version_comment": "binhub binlog server",
        "version_compile_os": "Linux",
        "version_compile_machine": "x86_64",
        "hostname": f.hostname or _HOSTNAME,
        "port": f.port,
        "report_host": None,
        "report_port": f.port,
        "protocol_version": 10,
        "license": "Apache-2.0",
        # binary log
        "log_bin": True,
        "sql_log_bin": True,
        "log_bin_basename": "binlog",
        "binlog_format": "ROW",
        "binlog_checksum": f.checksum,
        "master_verify_checksum": False,
        "source_verify_checksum": False,
        "binlog_row_image": "FULL",
        "binlog_row_metadata": "NO_LOG" if f.is_mariadb else "MINIMAL",
        "binlog_annotate_row_events": True,
        "max_binlog_size": 1073741824,
        "sync_binlog": 1,
        "expire_logs_days": 0,
        "binlog_expire_logs_seconds": 0,
        "log_slave_updates": True,
        "log_replica_updates": True,
        "read_only": True,
        "super_read_only": False,
        # GTIDs, both flavours (a variable of the other flavour still answers, empty)
        "gtid_mode": "ON" if mysql_gtid else "OFF",
        "enforce_gtid_consistency": "ON" if mysql_gtid else "OFF",
        "gtid_executed": "" if f.is_mariadb else f.gtid_executed,
        "gtid_purged": "" if f.is_mariadb else f.gtid_purged,
        "gtid_domain_id": f.gtid_domain_id,
        "gtid_binlog_pos": f.gtid_executed if f.is_mariadb else "",
        "gtid_current_pos": f.gtid_executed if f.is_mariadb else "",
        "gtid_binlog_state": f.gtid_binlog_state,
        "gtid_slave_pos": "",
        "gtid_strict_mode": False,
        "gtid_ignore_duplicates": False,
        # semi-sync: binhub can act as a semi-sync source towards replicas that ask
        "rpl_semi_sync_master_enabled": f.semi_sync,
        "rpl_semi_sync_source_enabled": f.semi_sync,
        "rpl_semi_sync_master_timeout": 10000,
        "rpl_semi_sync_source_timeout": 10000,
        "rpl_semi_sync_slave_enabled": False,
        "rpl_semi_sync_replica_enabled": False,
        "master_info_repository": "TABLE",
        "relay_log_info_repository": "TABLE",
        "relay_log": "",
        "slave_net_timeout": 60,
        "replica_net_timeout": 60,
        # connection and client defaults
        "max_allowed_packet": MAX_ALLOWED_PACKET,
        "slave_max_allowed_packet": 1073741824,
        "net_buffer_length": 16384,
        "max_connections": 4096,
        "wait_timeout": 28800,
        "interactive_timeout": 28800,
        "net_read_timeout": 30,
        "net_write_timeout": 60,
        "connect_timeout": 10,
        "character_set_server": "utf8mb4",
        "character_set_database": "utf8mb4",
        "character_set_client": "utf8mb4",
        "character_set_connection": "utf8mb4",
        "character_set_results": "utf8mb4",
        "character_set_system": "utf8mb3" if not f.is_mariadb else "utf8mb3",
        "character_set_filesystem": "binary",
        "collation_server": collation,
        "collation_database": collation,
        "collation_connection": collation,
        "default_authentication_plugin": "caching_sha2_password",
        "init_connect": "",
        "lower_case_table_names": 0,
        "sql_mode": "" if f.is_mariadb else "ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION",
        "time_zone": "SYSTEM",
        "system_time_zone": time.tzname[0] or "UTC",
        "autocommit": True,
        "auto_increment_increment": 1,
        "auto_increment_offset": 1,
        "transaction_isolation": "REPEATABLE-READ",
        "tx_isolation": "REPEATABLE-READ",
        "transaction_read_only": False,
        "tx_read_only": False,
        "query_cache_type": "OFF",
        "query_cache_size": 0,
        "performance_schema": False,
        "explicit_defaults_for_timestamp": True,
        "have_ssl": "YES" if f.tls else "DISABLED",
        "have_openssl": "YES" if f.tls else "DISABLED",
        "require_secure_transport": False,
        "skip_networking": False,
        "skip_name_resolve": True,
        "sql_select_limit": 18446744073709551615,
        "max_execution_time": 0,
        "innodb_read_only": True,
    }
    # As the upstream answers them (binlog_row_metadata, binlog_row_image, log_bin_basename, ...).
    for name, text in f.upstream_variables.items():
        if name not in BINHUB_OWN:
            v[name] = _as_catalogued(text, v.get(name))
    return v


def session_defaults(f: ServerFacts, connection_id: int) -> dict[str, Value]:
    """Variables that only exist per session (the global catalogue covers the rest)."""
    return {
        "pseudo_thread_id": connection_id,
        "skip_replication": False,
        "gtid_seq_no": 0,
        "gtid_next": "AUTOMATIC",
        "warning_count": 0,
        "error_count": 0,
        "last_insert_id": 0,
        "identity": 0,
        "insert_id": 0,
        "timestamp": int(time.time()),
        "sql_auto_is_null": False,
        "profiling": False,
    }


def status_variables(f: ServerFacts) -> dict[str, Value]:
    """``SHOW STATUS``: what monitoring tools poll."""
    return {
        "uptime": int(time.time() - f.started_at),
        "threads_connected": f.connections,
        "threads_running": 1,
        "connections": f.connections_total,
        "aborted_connects": f.failed_logins,
        "rpl_semi_sync_master_status": f.semi_sync,
        "rpl_semi_sync_source_status": f.semi_sync,
        "rpl_semi_sync_master_clients": f.semi_sync_clients,
        "rpl_semi_sync_source_clients": f.semi_sync_clients,
        "ssl_cipher": "",
        "ssl_version": "",
    }


def compression_status(compression: Compression | None) -> dict[str, Value]:
    """The session's ``Compression`` status variables (MySQL 8.0.18+ adds the algorithm and level)."""
    return {
        "compression": compression is not None,
        "compression_algorithm": compression.algorithm.value if compression else "",
        "compression_level": compression.level if compression else 0,
    }


def show_value(value: Value) -> str | None:
    """A value as ``SHOW VARIABLES`` prints it (booleans ON/OFF, NULL as empty)."""
    if isinstance(value, bool):
        return "ON" if value else "OFF"
    if value is None:
        return ""
    return str(value)




def like_to_regex(pattern: str) -> re.Pattern[str]:
    """SQL LIKE (``%``, ``_``, ``\\`` escapes), case-insensitive as MySQL's default collations compare."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)
