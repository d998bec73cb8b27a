"""How a relay session begins: checking the upstream's identity, choosing where the dump starts,
and the session variables a dump needs.

The relay always dumps whole files: with an empty store it starts at the file that holds what the
user asked for (a GTID only locates that file), otherwise where the store ends. The request is
recorded in the store's state for later readers.
"""

from __future__ import annotations

import ssl as ssl_mod
import uuid

from binhub.errors import BinhubError, StartPositionError
from binhub.net.client import UpstreamConnection
from binhub.relay.config import RelayConfig
from binhub.relay.upstream import UpstreamInfo, locate_gtid_start
from binhub.store.state import RequestedStart, UpstreamSource
from binhub.store.store import BinlogStore

MARIA_SLAVE_CAPABILITY_MINE = 4  # GTID-aware replica: the primary sends MariaDB's own event types


def ssl_context(config: RelayConfig) -> ssl_mod.SSLContext | None:
    mode = config.ssl_mode
    if mode == "disabled":
        return None
    ctx = ssl_mod.create_default_context(cafile=str(config.ssl_ca) if config.ssl_ca else None)
    if mode in ("preferred", "required"):
        ctx.check_hostname = False
        ctx.verify_mode = ssl_mod.CERT_NONE
    return ctx

def check_identity(store: BinlogStore, info: UpstreamInfo) -> None:
    live = info.identity()
    stored = store.state.upstream
    if stored is None:
        if store.files:
            return
        store.set_identity(live)
    else:
        stored.check(live, store.data_dir)
        completed = stored.completed_from(live)
        if completed != stored:
            store.set_identity(completed)

def record_source(store: BinlogStore, config: RelayConfig, *, tls: bool) -> None:
    """Remember where the relay connects (SHOW SLAVE STATUS on binhub shows it); written only on change."""
    src = config.source
    source = UpstreamSource(host=src.host, port=src.port, user=src.user, ssl=tls,
                            ssl_verify_server_cert=config.ssl_mode == "verify_ca",
                            connect_retry=max(1, round(config.reconnect_max_backoff)),
                            heartbeat_period=config.heartbeat_period)
    if store.state.source != source:
        store.update_state(source=source)

async def start_position(config: RelayConfig, store: BinlogStore, conn: UpstreamConnection,
                         info: UpstreamInfo) -> tuple[str, int]:
    """Where this dump starts: where the store ends, or (empty store) what the user asked for."""
    cfg = config
    store = store
    requested = requested_start(config)
    if store.current_file is not None:
        recorded = store.state.requested_start
        if requested is not None and recorded is not None and conflicts(requested, recorded):
            raise BinhubError(
                f"the store {store.data_dir} already holds binlogs from {recorded.file or recorded.gtid}; "
                f"a different start ({requested.gtid or requested.file or requested.kind}) cannot be applied",
                hint="drop the start option to resume where the store ends, or use a new --data-dir")
        if store.current_finished:
            # After STOP no event names the next file: the upstream restarted, and a server always
            # numbers its next file one higher (same base name, same or more digits).
            return store.next_file or following_file(store.current_file), 4
        return store.current_file, store.position
    if not info.files:
        raise BinhubError("the upstream lists no binary logs", hint="is binary logging enabled on it?")
    names = [f.name for f in info.files]
    if cfg.start_gtid:
        file = await locate_gtid_start(conn, info, cfg.start_gtid)
        start = RequestedStart("gtid", gtid=cfg.start_gtid, file=file, position=4)
    elif cfg.start_file:
        if cfg.start_file not in names:
            raise StartPositionError(
                f"the upstream has no binlog file {cfg.start_file!r} (it has {names[0]} … {names[-1]})",
                hint="pick a file listed by SHOW BINARY LOGS")
        file = cfg.start_file
        start = RequestedStart("file", file=file, position=cfg.start_pos or 4)
    elif cfg.from_now:
        file = info.current_file
        start = RequestedStart("now", gtid=info.gtid_position, file=file, position=info.current_position)
    else:
        file = names[0]
        start = RequestedStart("oldest", file=file, position=4)
    store.update_state(requested_start=start)
    return file, 4

def requested_start(config: RelayConfig) -> RequestedStart | None:
    cfg = config
    if cfg.start_gtid:
        return RequestedStart("gtid", gtid=cfg.start_gtid)
    if cfg.start_file:
        return RequestedStart("file", file=cfg.start_file, position=cfg.start_pos or 4)
    if cfg.from_now:
        return RequestedStart("now")
    return None

async def prepare_dump(config: RelayConfig, store: BinlogStore, conn: UpstreamConnection,
                       info: UpstreamInfo) -> None:
    period_ns = int(config.heartbeat_period * 1e9)
    if info.flavour == "mariadb":
        await conn.execute(f"SET @master_heartbeat_period = {period_ns}")
        await conn.execute("SET @master_binlog_checksum = @@global.binlog_checksum")
        await conn.execute(f"SET @mariadb_slave_capability = {MARIA_SLAVE_CAPABILITY_MINE}")
    else:
        await conn.execute(f"SET @master_heartbeat_period = {period_ns}, @source_heartbeat_period = {period_ns}")
        await conn.execute("SET @master_binlog_checksum = @@global.binlog_checksum, "
                           "@source_binlog_checksum = @@global.binlog_checksum")
        replica_uuid = store.state.replica_uuid or str(uuid.uuid4())
        if not store.state.replica_uuid:
            store.update_state(replica_uuid=replica_uuid)
        await conn.execute(f"SET @slave_uuid = '{replica_uuid}', @replica_uuid = '{replica_uuid}'")



def following_file(name: str) -> str:
    base, ext = name.rsplit(".", 1)
    return f"{base}.{int(ext) + 1:0{len(ext)}d}"


def conflicts(requested: RequestedStart, recorded: RequestedStart) -> bool:
    if requested.kind != recorded.kind:
        return True
    if requested.kind == "gtid":
        return requested.gtid != recorded.gtid
    if requested.kind == "file":
        return requested.file != recorded.file
    return False
