"""``BinlogServer``: binhub as a primary that real replicas (and other binhubs) replicate from.

It listens (127.0.0.1 by default), runs one :class:`~binhub.serve.session.Session` task per
connection and keeps what sessions share: the store, binhub's identity towards replicas (its
server_id, a server_uuid generated once and kept), the users, the caching_sha2 fast-path cache, the
key material, the registry of replicas and the metrics. A session that crashes ends its own
connection only.

The server reads the store through a :class:`~binhub.store.reader.StoreReader`, which answers the
same whether the relay runs in this process (``binhub run``: the writer's own view, whose publishes
wake the dumps directly) or in another one (``binhub serve``: a view that follows the files), and
whether the store exists yet: a server started before its relay listens, answers as a server with
no binlog yet, and lets replicas wait for the relay. Only PURGE BINARY LOGS needs the writer itself
(``writer``); without it in this process, the purge is refused.

Shutdown (``stop``) is staged: stop accepting, cancel the sessions (each dump releases its reader
lease on the way out), give them ``STOP_GRACE`` seconds, then abort whatever is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl
import time
from pathlib import Path
from typing import Any

from binhub.errors import BinhubError, ConfigError, FileInUse, StorageError
from binhub.net.server import ServerConnection, ServerProtocol
from binhub.serve.binlogs import checksum_name
from binhub.serve.config import REPLICA_AHEAD_WAIT
from binhub.serve.keys import (
    RsaKeys,
    load_or_create_rsa_keys,
    load_or_create_server_uuid,
    self_signed_pair,
    server_ssl_context,
)
from binhub.serve.login import FULL_AUTH_CONCURRENCY, Sha2Cache
from binhub.serve.metrics import ServeMetrics
from binhub.serve.queries import ProcessEntry, ReplicaEntry
from binhub.serve.session import PRE_AUTH_MAX_PAYLOAD, DumpHandler, Session, default_dump_handler
from binhub.serve.users import UserDirectory
from binhub.serve.variables import MAX_ALLOWED_PACKET, ServerFacts
from binhub.store import BinlogStore, StoreReader
from binhub.store.catalog import identity_from_file
from binhub.store.retention import PurgeRules
from binhub.store.state import UpstreamIdentity
from binhub.wire.constants import CACHING_SHA2_PASSWORD, NATIVE_PASSWORD
from binhub.wire.errors import ErrorCode, MysqlError

__all__ = ["DEFAULT_MAX_CONNECTIONS", "BinlogServer"]

log = logging.getLogger("binhub.serve")

DEFAULT_MAX_CONNECTIONS = 4096
STOP_GRACE = 5.0
DEFAULT_VERSION = "8.0.40"
#: The greeting while no upstream is known (an empty store: the server started before its relay).
#: Replicas choose their dump by the version they are greeted with: a MariaDB replica asks by GTID
#: only of a server whose version is 10 or more (else it switches to file/position for good), and
#: a MySQL replica refuses a version starting with "1". MariaDB's own answer to that is the
#: "5.5.5-" prefix (``RPL_VERSION_HACK``), which MariaDB clients strip and MySQL ones read as
#: 5.5.5 (a version without GTIDs: an auto-position MySQL replica should connect once the relay
#: has). A replica greeted with the wrong flavour is sent away to reconnect once the relay has
#: named the upstream (``DumpSession._check_greeting``).
UNKNOWN_UPSTREAM_VERSION = "5.5.5-10.11.0-MariaDB"
VERSION_SUFFIX = "-binhub"


class BinlogServer:
    """The listener, the sessions and what they share. ``start()``/``stop()``; ``wait()`` for the daemon."""

    def __init__(self, store: StoreReader, *, users: UserDirectory, server_id: int, host: str = "127.0.0.1",
                 port: int = 3307, key_dir: Path | None = None, tls: bool = True, tls_cert: Path | None = None,
                 tls_key: Path | None = None, metrics: ServeMetrics | None = None,
                 dump_handler: DumpHandler | None = None, semi_sync: bool = True,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS, default_auth: str | None = None,
                 replica_ahead_wait: float = REPLICA_AHEAD_WAIT, writer: BinlogStore | None = None) -> None:
        self.store = store
        self.writer = writer  # the store's writer, when the relay runs in this process (PURGE needs it)
        self.default_auth = default_auth  # None: as the upstream's flavour does (see greeting_plugin)
        self.replica_ahead_wait = replica_ahead_wait  # see DumpSession._plan
        self.users = users
        self.server_id = server_id
        self.host = host
        self.port = port
        self.key_dir = key_dir if key_dir is not None else store.data_dir / "serve"
        self._tls_wanted = tls
        self._tls_files = (tls_cert, tls_key)
        self.metrics = metrics if metrics is not None else ServeMetrics()
        self.dump_handler: DumpHandler = dump_handler or default_dump_handler
        self.semi_sync = semi_sync
        self.max_connections = max_connections
        self.sha2_cache = Sha2Cache()
        self.failed_logins = 0
        self.connections_total = 0
        self.server_uuid = ""
        self._rsa_keys: RsaKeys | None = None
        self.tls_context: ssl.SSLContext | None = None
        self.full_auth_limiter = asyncio.Semaphore(FULL_AUTH_CONCURRENCY)
        self.sessions: dict[int, Session] = {}
        self._ids = itertools.count(1)
        self._listener: asyncio.Server | None = None
        self._stopped = asyncio.Event()
        self._started_at = time.time()
        self._checksum: tuple[str, str] = ("", "CRC32")  # (newest file, its checksum)
        self._file_identity: tuple[str, UpstreamIdentity] | None = None  # (first file, what its FDE says)

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Load or create the keys and identity, then listen."""
        await asyncio.to_thread(self._prepare)
        loop = asyncio.get_running_loop()
        try:
            self._listener = await loop.create_server(
                lambda: ServerProtocol(PRE_AUTH_MAX_PAYLOAD, self._on_connect), self.host, self.port, reuse_address=True)
        except OSError as exc:
            raise ConfigError("serve.listen", f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}",
                              hint="pick a free port with --listen HOST:PORT") from exc
        sock = self._listener.sockets[0].getsockname()
        self.port = int(sock[1])
        self._started_at = time.time()
        log.info("binlog server listening on %s:%d (server_id %d, version %s, tls %s)", self.host, self.port,
                 self.server_id, self.version_string, "on" if self.tls_context else "off")

    def _prepare(self) -> None:
        try:
            self.key_dir.mkdir(parents=True, exist_ok=True)
            self.server_uuid = load_or_create_server_uuid(self.key_dir)
            self._rsa_keys = load_or_create_rsa_keys(self.key_dir)
        except OSError as exc:
            raise StorageError(f"cannot keep the server's keys in {self.key_dir}: {exc.strerror or exc}") from exc
        cert, key = self._tls_files
        if cert is not None and key is not None:
            self.tls_context = server_ssl_context(cert, key)
        elif self._tls_wanted:
            self.tls_context = server_ssl_context(*self_signed_pair(self.key_dir))

    @property
    def rsa_keys(self) -> RsaKeys:
        if self._rsa_keys is None:
            raise RuntimeError("BinlogServer.start() was not called")
        return self._rsa_keys

    async def stop(self) -> None:
        """Stop accepting, end every session (dumps release their leases), return within STOP_GRACE."""
        if self._listener is not None:
            self._listener.close()
        tasks = [s.task for s in self.sessions.values() if s.task is not None and not s.task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=STOP_GRACE)
            for session in list(self.sessions.values()):
                session.conn.abort()
            if pending:
                log.warning("%d session(s) did not end within %.0fs", len(pending), STOP_GRACE)
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._listener.wait_closed(), 1.0)
            self._listener = None
        self._stopped.set()

    async def wait(self) -> None:
        await self._stopped.wait()

    # -- connections --------------------------------------------------------------------------
    def _on_connect(self, conn: ServerConnection) -> None:
        self.metrics.connections.inc()
        self.connections_total += 1
        if len(self.sessions) >= self.max_connections:
            self.metrics.connections_refused.inc()
            conn.write_packets([MysqlError(ErrorCode.CON_COUNT_ERROR, "Too many connections").packet()])
            conn.close()
            return
        session = Session(self, conn, next(self._ids) & 0xFFFFFFFF)
        self.sessions[session.state.connection_id] = session
        self.metrics.connections_active.inc()
        session.task = asyncio.get_running_loop().create_task(self._run_session(session),
                                                              name=f"binhub-session-{session.state.connection_id}")

    async def _run_session(self, session: Session) -> None:
        try:
            await session.run()
        except asyncio.CancelledError:
            pass
        except Exception:  # Session.run catches everything; this is the last line of defence
            log.exception("session %d crashed", session.state.connection_id)
        finally:
            session.conn.close()
            self.sessions.pop(session.state.connection_id, None)
            self.metrics.connections_active.dec()
            self.metrics.replicas.set(sum(1 for s in self.sessions.values() if s.state.replica_server_id))

    # -- the replica registry -----------------------------------------------------------------
    def register(self, session: Session) -> None:
        """Record ``session`` as a replica; end any older session with its server_id or UUID (a zombie)."""
        st = session.state
        for other in list(self.sessions.values()):
            if other is session or other.state.replica_server_id is None:
                continue
            same_id = st.replica_server_id is not None and other.state.replica_server_id == st.replica_server_id
            same_uuid = bool(st.replica_uuid) and other.state.replica_uuid == st.replica_uuid
            if same_id or same_uuid:
                log.info("ending the older session %d of replica server_id %s (%s): it reconnected as session %d",
                         other.state.connection_id, other.state.replica_server_id,
                         "same server_id" if same_id else "same UUID", st.connection_id)
                self.metrics.zombies_killed.inc()
                other.state.replica_server_id = None
                other.state.reported = False
                self._end(other)
        self.metrics.replicas.set(sum(1 for s in self.sessions.values() if s.state.replica_server_id))

    def _end(self, session: Session) -> None:
        session.conn.abort()
        if session.task is not None and session.task is not asyncio.current_task():
            session.task.cancel()

    def replicas(self) -> list[ReplicaEntry]:
        """Registered replicas (COM_REGISTER_SLAVE), for SHOW SLAVE HOSTS / SHOW REPLICAS."""
        return [ReplicaEntry(s.state.replica_server_id or 0, s.state.replica_host, s.state.replica_port,
                             self.server_id, s.state.replica_uuid, s.state.connection_id)
                for s in sorted(self.sessions.values(), key=lambda s: s.state.connection_id)
                if s.state.reported and s.state.replica_server_id]

    def processes(self) -> list[ProcessEntry]:
        now = time.monotonic()
        return [ProcessEntry(s.state.connection_id, s.state.user, s.state.peer, s.state.database, s.state.command,
                             int(now - s.state.since)) for s in sorted(self.sessions.values(),
                                                                       key=lambda s: s.state.connection_id)]

    def kill(self, connection_id: int, *, by_user: str, admin: bool) -> None:
        session = self.sessions.get(connection_id)
        if session is None:
            raise MysqlError(ErrorCode.NO_SUCH_THREAD, f"Unknown thread id: {connection_id}")
        if not admin and session.state.user != by_user:
            raise MysqlError(ErrorCode.KILL_DENIED_ERROR, f"You are not owner of thread {connection_id}")
        self._end(session)

    # -- what sessions ask --------------------------------------------------------------------
    def identity(self) -> UpstreamIdentity | None:
        """The upstream binhub stands in for: the recorded one, else what the first stored file's FDE says.

        A store seeded by ``binhub binlog import`` (or written before identities were recorded)
        may have none; announcing the default flavour and version then would make MySQL clients
        treat MariaDB files as MySQL ones (or the reverse), so the file itself decides.
        """
        up = self.store.state.upstream
        if up is not None and up.flavour:
            return up
        files = self.store.files
        if not files:
            return None
        if self._file_identity is None or self._file_identity[0] != files[0]:
            try:
                ident = identity_from_file(self.store.file_path(files[0]))
            except (BinhubError, OSError) as exc:
                log.debug("cannot read the identity of %s: %s", files[0], exc)
                return None
            self._file_identity = (files[0], ident)
        return self._file_identity[1]

    @property
    def flavour(self) -> str:
        up = self.identity()
        return up.flavour if up is not None else "mariadb"  # see UNKNOWN_UPSTREAM_VERSION

    @property
    def version_string(self) -> str:
        up = self.identity()
        if up is None:
            return UNKNOWN_UPSTREAM_VERSION + VERSION_SUFFIX
        version = up.version or DEFAULT_VERSION
        if up is not None and up.flavour == "mariadb" and "mariadb" not in version.lower():
            version += "-MariaDB"  # clients tell the flavours apart by this word
        return version + VERSION_SUFFIX

    def checksum(self) -> str:
        files = self.store.durable_files()
        newest = files[-1][0] if files else ""
        if self._checksum[0] != newest:
            self._checksum = (newest, checksum_name(self.store))
        return self._checksum[1]

    @property
    def greeting_plugin(self) -> str:
        """The auth plugin the greeting names, as the upstream would: mysql_native_password for MariaDB
        and MySQL 5.7 (their clients, e.g. stock mariadb-binlog, then log in without TLS or RSA),
        caching_sha2_password for MySQL 8+. Clients naming the other plugin are served too."""
        if self.default_auth:
            return self.default_auth
        up = self.identity()
        if up is not None and up.flavour == "mysql" and up.version[:1].isdigit() and int(up.version.split(".")[0]) >= 8:
            return CACHING_SHA2_PASSWORD
        return NATIVE_PASSWORD

    def facts(self) -> ServerFacts:
        up = self.identity()
        flavour = self.flavour
        gtids = self.store.gtid_snapshot()  # @@gtid_binlog_pos & co., at the durable position
        if flavour == "mariadb":
            executed, binlog_state = str(gtids.binlog_pos), gtids.binlog_state
        else:
            executed, binlog_state = str(gtids.mysql or "").replace("\n", ""), ""
        domain = up.gtid_domain_id if up is not None and up.gtid_domain_id is not None else 0
        return ServerFacts(
            flavour=flavour, version=self.version_string, server_id=self.server_id, server_uuid=self.server_uuid,
            port=self.port, checksum=self.checksum(), gtid_executed=executed, gtid_binlog_state=binlog_state,
            gtid_purged=self.store.state.purged_gtids.replace("\n", ""), gtid_domain_id=domain,
            tls=self.tls_context is not None, semi_sync=self.semi_sync, started_at=self._started_at,
            connections=len(self.sessions), connections_total=self.connections_total,
            failed_logins=self.failed_logins, upstream_variables=self.store.state.upstream_variables,
            semi_sync_clients=sum(1 for s in self.sessions.values()
                                  if s.state.user_vars.get("rpl_semi_sync_slave") == "1"
                                  or s.state.user_vars.get("rpl_semi_sync_replica") == "1"),
        )

    def purge(self, to: str | None, before: float | None) -> list[str]:
        """PURGE BINARY LOGS: refused (naming the reader) if a reader holds a file it would remove."""
        writer = self.writer
        if writer is None:
            raise MysqlError(ErrorCode.UNKNOWN_ERROR,
                             "this binhub serves the store read-only (its writer runs in another process), so it "
                           "cannot purge; use `binhub binlog purge` or the [store.retention] settings")
        if to is not None and to not in writer.files:
            raise MysqlError(ErrorCode.UNKNOWN_TARGET_BINLOG, f"Target log {to!r} not found in binlog index")
        try:
            removed, _ = writer.purge(PurgeRules(to=to, before=before), all_or_nothing=True)
        except FileInUse as exc:
            raise MysqlError(ErrorCode.LOG_IN_USE, f"A purgeable log is in use, will not purge: {exc}") from None
        return removed

    def status(self) -> dict[str, Any]:
        return {
            "listen": f"{self.host}:{self.port}",
            "server_id": self.server_id,
            "server_uuid": self.server_uuid,
            "version": self.version_string,
            "tls": self.tls_context is not None,
            "connections": len(self.sessions),
            "failed_logins": self.failed_logins,
            "replicas": [{"server_id": r.server_id, "host": r.host, "port": r.port, "uuid": r.uuid}
                         for r in self.replicas()],
            # Per connection: how it travels (the compressed protocol and TLS are the client's choice).
            "sessions": [{"id": s.state.connection_id, "user": s.state.user, "peer": s.state.peer,
                          "command": s.state.command, "replica_server_id": s.state.replica_server_id,
                          "tls": s.conn.tls, "compression": str(s.state.compression) if s.state.compression else None}
                         for s in sorted(self.sessions.values(), key=lambda s: s.state.connection_id)],
            "max_allowed_packet": MAX_ALLOWED_PACKET,
        }
