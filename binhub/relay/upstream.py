"""What the relay learns from the upstream before dumping, and where a dump must start.

Everything here is a question to the server in SQL (SHOW BINARY LOGS, SHOW BINLOG EVENTS, ...):
the relay always dumps whole files, so a GTID start only has to find the file that holds it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Protocol

from binhub.binlog.gtid import MariadbGtidList, MysqlGtidSet
from binhub.errors import BinhubError, StartPositionError, UpstreamError
from binhub.store.state import UpstreamIdentity
from binhub.wire.errors import ErrorCode

LOG = logging.getLogger("binhub.relay")

#: The upstream's global variables that describe its binlog and its data, recorded with the store
#: so that binhub's server answers them as the upstream does: what replicas, CDC tools (Debezium,
#: Maxwell, Canal, mysql-replication) and monitors probe before they trust the events.
RECORDED_VARIABLES = (
    "version", "version_comment", "server_id", "server_uuid", "log_bin", "log_bin_basename", "log_bin_index",
    "binlog_format", "binlog_row_image", "binlog_row_metadata", "binlog_row_value_options",
    "binlog_rows_query_log_events", "binlog_annotate_row_events", "binlog_checksum",
    "binlog_transaction_compression", "binlog_encryption", "encrypt_binlog", "max_binlog_size",
    "binlog_expire_logs_seconds", "expire_logs_days", "log_slave_updates", "log_replica_updates",
    "gtid_mode", "enforce_gtid_consistency", "gtid_domain_id", "gtid_strict_mode", "gtid_ignore_duplicates",
    "character_set_server", "collation_server", "lower_case_table_names", "time_zone", "system_time_zone",
    "explicit_defaults_for_timestamp", "sql_mode", "default_storage_engine",
)


class SqlConnection(Protocol):
    async def query(self, sql: str) -> object: ...


@dataclass(frozen=True, slots=True)
class BinlogFile:
    name: str
    size: int


@dataclass(frozen=True, slots=True)
class UpstreamInfo:
    """A snapshot of the upstream taken on connect."""

    flavour: str  # "mariadb" | "mysql"
    version: str
    server_id: int
    server_uuid: str
    gtid_domain_id: int | None
    binlog_format: str
    checksum: str  # "CRC32" | "NONE"
    files: list[BinlogFile]
    current_file: str
    current_position: int
    gtid_position: str  # gtid_binlog_pos (MariaDB) or gtid_executed (MySQL)
    gtid_purged: str  # MySQL only
    encrypted: bool = False  # MariaDB encrypt_binlog: events arrive decrypted, so files are not byte-identical
    variables: dict[str, str] = field(default_factory=dict)  # RECORDED_VARIABLES the upstream has

    @property
    def base_name(self) -> str:
        name = self.files[0].name if self.files else self.current_file
        return name.rsplit(".", 1)[0]

    def identity(self) -> UpstreamIdentity:
        return UpstreamIdentity(flavour=self.flavour, server_id=self.server_id, base_name=self.base_name,
                                server_uuid=self.server_uuid, gtid_domain_id=self.gtid_domain_id,
                                version=self.version)


def _rows(result: object) -> list[tuple[str | None, ...]]:
    return list(result.rows)  # type: ignore[attr-defined]


async def _scalar(conn: SqlConnection, sql: str) -> str | None:
    rows = _rows(await conn.query(sql))
    return rows[0][0] if rows and rows[0] else None


async def probe(conn: SqlConnection, *, is_mariadb: bool, user: str) -> UpstreamInfo:
    """Read what the relay needs; translate missing privileges and disabled binlogs into clear errors."""
    flavour = "mariadb" if is_mariadb else "mysql"
    row = _rows(await conn.query("SELECT @@version, @@server_id, @@log_bin, @@binlog_format, "
                                 "@@global.binlog_checksum"))[0]
    version, server_id, log_bin, binlog_format, checksum = row
    if str(log_bin) in ("0", "OFF"):
        raise BinhubError("binary logging is disabled on the upstream (log_bin is OFF), so there is nothing to relay",
                          hint="restart the upstream with --log-bin (and --server-id)")
    uuid, domain, gtid_pos, purged, encrypted = "", None, "", "", False
    if is_mariadb:
        domain_s, gtid_pos_s = _rows(await conn.query("SELECT @@gtid_domain_id, @@gtid_binlog_pos"))[0]
        domain, gtid_pos = int(domain_s or 0), gtid_pos_s or ""
        try:
            encrypted = str(await _scalar(conn, "SELECT @@global.encrypt_binlog")) in ("1", "ON")
        except UpstreamError as exc:  # servers without the variable (and binhub when chaining) do not encrypt
            if exc.code != ErrorCode.UNKNOWN_SYSTEM_VARIABLE:
                raise
    else:
        uuid = await _scalar(conn, "SELECT @@server_uuid") or ""
        try:
            executed, purged_s = _rows(await conn.query("SELECT @@global.gtid_executed, @@global.gtid_purged"))[0]
            gtid_pos, purged = (executed or "").replace("\n", ""), (purged_s or "").replace("\n", "")
        except UpstreamError as exc:
            if exc.code != ErrorCode.UNKNOWN_SYSTEM_VARIABLE:
                raise
    files = await list_binlogs(conn, flavour=flavour, user=user)
    current_file, current_pos = await master_status(conn, flavour=flavour, user=user)
    return UpstreamInfo(flavour, str(version), int(server_id or 0), uuid, domain, str(binlog_format or ""),
                        str(checksum or "NONE").upper(), files, current_file, current_pos, gtid_pos, purged,
                        encrypted, await global_variables(conn))


async def global_variables(conn: SqlConnection) -> dict[str, str]:
    """The upstream's RECORDED_VARIABLES, as ``SHOW GLOBAL VARIABLES`` prints them (a flavour lacks some)."""
    names = ", ".join(f"'{n}'" for n in RECORDED_VARIABLES)
    rows = _rows(await conn.query(f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({names})"))
    return {str(r[0]).lower(): "" if r[1] is None else str(r[1]) for r in rows}


def _privilege_error(exc: UpstreamError, user: str, flavour: str, what: str) -> BinhubError:
    privilege = "BINLOG MONITOR" if flavour == "mariadb" else "REPLICATION CLIENT"
    return BinhubError(f"the upstream user {user!r} lacks the {privilege} privilege needed to {what} "
                       f"(server said: {exc.server_message})",
                       hint=f"GRANT {privilege}, REPLICATION SLAVE ON *.* TO {user!r}")


async def list_binlogs(conn: SqlConnection, *, flavour: str, user: str) -> list[BinlogFile]:
    try:
        rows = _rows(await conn.query("SHOW BINARY LOGS"))
    except UpstreamError as exc:
        if exc.code == ErrorCode.SPECIFIC_ACCESS_DENIED_ERROR:
            raise _privilege_error(exc, user, flavour, "list the binary logs") from exc
        if exc.code == ErrorCode.NO_BINARY_LOGGING:
            raise BinhubError("binary logging is disabled on the upstream, so there is nothing to relay",
                              hint="restart the upstream with --log-bin") from exc
        raise
    return [BinlogFile(str(r[0]), int(r[1] or 0)) for r in rows]


async def master_status(conn: SqlConnection, *, flavour: str, user: str) -> tuple[str, int]:
    """The upstream's current write position (SHOW BINARY LOG STATUS on MySQL ≥ 8.2)."""
    statements = ["SHOW MASTER STATUS"] if flavour == "mariadb" else ["SHOW BINARY LOG STATUS", "SHOW MASTER STATUS"]
    last: UpstreamError | None = None
    for sql in statements:
        try:
            rows = _rows(await conn.query(sql))
        except UpstreamError as exc:
            if exc.code == ErrorCode.SPECIFIC_ACCESS_DENIED_ERROR:
                raise _privilege_error(exc, user, flavour, "read the binlog position") from exc
            last = exc
            continue
        if not rows:
            raise BinhubError("the upstream reports no binlog position (SHOW MASTER STATUS is empty)",
                              hint="is binary logging enabled on it?")
        return str(rows[0][0]), int(rows[0][1] or 0)
    assert last is not None
    raise last


_LIST_RE = re.compile(r"\[(.*)\]")


async def file_header_gtids(conn: SqlConnection, name: str, flavour: str) -> str:
    """The GTID state in front of ``name``: its GTID_LIST (MariaDB) or PREVIOUS_GTIDS (MySQL)."""
    rows = _rows(await conn.query(f"SHOW BINLOG EVENTS IN '{name}' LIMIT 4"))
    for row in rows:
        event_type, info = str(row[2]), str(row[5] or "")
        if flavour == "mariadb" and event_type == "Gtid_list":
            match = _LIST_RE.search(info)
            return match.group(1) if match else ""
        if flavour == "mysql" and event_type == "Previous_gtids":
            return info.replace("\n", "")
    return ""


async def locate_gtid_start(conn: SqlConnection, info: UpstreamInfo, requested: str) -> str:
    """The newest upstream file whose GTID header is covered by ``requested``: the start lies in it or later.

    Raises StartPositionError naming the missing GTIDs when the upstream purged part of what follows
    ``requested``.
    """
    if not info.files:
        raise StartPositionError("the upstream has no binary logs")
    if info.flavour == "mariadb":
        want = MariadbGtidList.parse(requested)
        oldest = MariadbGtidList.parse(await file_header_gtids(conn, info.files[0].name, "mariadb"))
        missing = [g for g in oldest.gtids if g.seq_no > _seq_in(want, g.domain_id)]
        if missing:
            gaps = ", ".join(f"domain {g.domain_id} after seq {_seq_in(want, g.domain_id)} up to {g}" for g in missing)
            raise StartPositionError(
                f"the upstream has purged binlogs holding transactions the start {requested!r} needs ({gaps}); "
                f"its oldest file {info.files[0].name} starts after {oldest}",
                hint="start from a newer GTID, --from-now, or restore the missing binlogs from an archive")
        for f in reversed(info.files):
            header = MariadbGtidList.parse(await file_header_gtids(conn, f.name, "mariadb"))
            if all(g.seq_no <= _seq_in(want, g.domain_id) for g in header.gtids):
                return f.name
        return info.files[0].name
    want_set = MysqlGtidSet.parse(requested)
    purged = MysqlGtidSet.parse(info.gtid_purged) if info.gtid_purged else MysqlGtidSet.parse("")
    missing_set = purged - want_set
    if not missing_set.is_empty():
        raise StartPositionError(
            f"the upstream has purged binlogs holding GTIDs the start {requested!r} needs: {missing_set}",
            hint="start from a GTID set that includes them, --from-now, or restore the binlogs from an archive")
    for f in reversed(info.files):
        header_set = MysqlGtidSet.parse(await file_header_gtids(conn, f.name, "mysql"))
        if header_set.issubset(want_set):
            return f.name
    return info.files[0].name


def _seq_in(position: MariadbGtidList, domain: int) -> int:
    for g in position.gtids:
        if g.domain_id == domain:
            return g.seq_no
    return 0
