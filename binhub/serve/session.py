"""One client connection to binhub's server: greeting → auth → command phase → (dump).

The session is an explicit state machine, one enum and one dispatch loop (asyncpg's
``coreproto`` shape)::

    GREETING ──▶ AUTH ──▶ COMMAND ⟲ (COM_QUERY, COM_PING, COM_INIT_DB, COM_REGISTER_SLAVE)
                   │          │
                   ▼          ▼ COM_BINLOG_DUMP / COM_BINLOG_DUMP_GTID
                 CLOSED ◀── DUMP (binhub.serve.dump.serve_dump; the connection ends with the dump)

Nothing is served before AUTH succeeds. In the command phase an error (bad SQL, an unknown
command, a malformed packet for a known command) becomes an ERR packet and the session carries on;
only a broken connection, COM_QUIT or the end of a dump ends it. An unexpected exception is logged
with its traceback and answered with ER_UNKNOWN_ERROR, as STYLE.md asks.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from binhub.errors import BinhubError, ConnectionFailed, ProtocolError
from binhub.net.server import ServerConnection
from binhub.serve.dump import DumpContext, serve_dump
from binhub.serve.login import LoginFailed, authenticate
from binhub.serve.queries import OkReply, QueryHandler, RowsReply, SqlError, text_value
from binhub.serve.variables import MAX_ALLOWED_PACKET, Value
from binhub.wire.commands import ComBinlogDump, ComBinlogDumpGtid, ComInitDb, ComQuery, ComRegisterSlave
from binhub.wire.constants import Capability, Charset, Command, ServerStatus
from binhub.wire.handshake import HandshakeV10
from binhub.wire.messages import ErrPacket, OkPacket, build_text_result_set

if TYPE_CHECKING:
    from binhub.serve.server import BinlogServer

__all__ = ["DumpHandler", "Phase", "Session", "SessionState", "default_dump_handler", "server_capabilities"]

log = logging.getLogger("binhub.serve")
access = logging.getLogger("binhub.access")

#: Bound on one client packet before authentication: a HandshakeResponse41 is a few hundred bytes.
PRE_AUTH_MAX_PAYLOAD = 64 * 1024
#: Greeting to OK must finish within this (a silent or slow-drip client is dropped).
LOGIN_TIMEOUT = 10.0
#: ``wait_timeout``: an idle command-phase connection is closed after this.
IDLE_TIMEOUT = 28800.0

ER_UNKNOWN_COM_ERROR = 1047
ER_UNKNOWN_ERROR = 1105
ER_NET_PACKET_TOO_LARGE = 1153


class Phase(enum.Enum):
    GREETING = "greeting"
    AUTH = "auth"
    COMMAND = "command"
    DUMP = "dump"
    CLOSED = "closed"


@dataclass
class SessionState:
    """What a session knows about its client; the dump reads it (``user_vars`` above all).

    ``user_vars`` holds user variables by lower-case name without '@' (``master_binlog_checksum``,
    ``master_heartbeat_period``, ``slave_connect_state``, ``rpl_semi_sync_slave``, ...), as text.
    """

    user: str = ""
    user_vars: dict[str, str] = field(default_factory=dict)
    replica_server_id: int | None = None
    replica_host: str = ""
    replica_port: int = 0
    connection_id: int = 0
    client_host: str = ""
    peer: str = ""
    database: str | None = None
    admin: bool = False
    autocommit: bool = True
    sys_vars: dict[str, Value] = field(default_factory=dict)
    capabilities: int = 0
    reported: bool = False  # sent COM_REGISTER_SLAVE: listed by SHOW SLAVE HOSTS
    greeted_version: str = ""  # the server version the greeting announced (replicas choose their dump by it)
    command: str = "Connect"  # for SHOW PROCESSLIST
    since: float = field(default_factory=time.monotonic)

    @property
    def replica_uuid(self) -> str:
        """The UUID a MySQL replica announced with ``SET @slave_uuid``/``@replica_uuid`` ("" if none)."""
        return self.user_vars.get("replica_uuid") or self.user_vars.get("slave_uuid") or ""

    @property
    def status(self) -> ServerStatus:
        return ServerStatus.AUTOCOMMIT if self.autocommit else ServerStatus(0)


DumpCommand = ComBinlogDump | ComBinlogDumpGtid
DumpHandler = Callable[[ServerConnection, SessionState, DumpCommand, "BinlogServer"], Awaitable[None]]


async def default_dump_handler(conn: ServerConnection, state: SessionState, command: DumpCommand,
                               server: BinlogServer) -> None:
    """Hand the connection to :func:`binhub.serve.dump.serve_dump`."""
    await serve_dump(DumpContext(conn=conn, state=state, command=command, server=server))


def server_capabilities(tls: bool) -> Capability:
    caps = (Capability.LONG_PASSWORD | Capability.FOUND_ROWS | Capability.LONG_FLAG | Capability.CONNECT_WITH_DB
            | Capability.NO_SCHEMA | Capability.IGNORE_SPACE | Capability.PROTOCOL_41 | Capability.INTERACTIVE
            | Capability.IGNORE_SIGPIPE | Capability.TRANSACTIONS | Capability.SECURE_CONNECTION
            | Capability.MULTI_RESULTS | Capability.PS_MULTI_RESULTS | Capability.PLUGIN_AUTH
            | Capability.CONNECT_ATTRS | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA
            | Capability.CAN_HANDLE_EXPIRED_PASSWORDS | Capability.DEPRECATE_EOF)
    return caps | Capability.SSL if tls else caps


def make_scramble() -> bytes:
    # MySQL's generate_user_salt: 7-bit bytes, never NUL (clients read it as a C string) or '$'.
    out = bytearray(os.urandom(20))
    for i, b in enumerate(out):
        b &= 0x7F
        out[i] = b + 1 if b in (0, 0x24) else b
    return bytes(out)


class Session:
    """Runs one connection from greeting to close; :meth:`run` never raises."""

    def __init__(self, server: BinlogServer, conn: ServerConnection, connection_id: int) -> None:
        self.server = server
        self.conn = conn
        host = conn.peer.rsplit(":", 1)[0] if ":" in conn.peer else conn.peer
        self.state = SessionState(connection_id=connection_id, client_host=host, peer=conn.peer)
        self.phase = Phase.GREETING
        self.capabilities = Capability(0)
        self._scramble = make_scramble()
        self._queries: QueryHandler | None = None
        self.task: asyncio.Task[None] | None = None

    # -- the dispatch loop --------------------------------------------------------------------
    async def run(self) -> None:
        try:
            while True:
                match self.phase:
                    case Phase.GREETING:
                        self.phase = self._send_greeting()
                    case Phase.AUTH:
                        self.phase = await self._process__auth()
                    case Phase.COMMAND:
                        self.phase = await self._process__command()
                    case Phase.DUMP | Phase.CLOSED:
                        return
        except asyncio.CancelledError:
            raise
        except (ConnectionFailed, ProtocolError) as exc:
            log.debug("connection %d from %s ended: %s", self.state.connection_id, self.conn.peer, exc)
        except Exception:
            log.exception("session %d from %s failed", self.state.connection_id, self.conn.peer)
        finally:
            self.phase = Phase.CLOSED
            self.conn.close()

    # -- GREETING -----------------------------------------------------------------------------
    def _send_greeting(self) -> Phase:
        server = self.server
        self.state.greeted_version = server.version_string
        greeting = HandshakeV10(
            server_version=self.state.greeted_version,
            connection_id=self.state.connection_id,
            scramble=self._scramble,
            capabilities=server_capabilities(server.tls_context is not None),
            charset=Charset.UTF8MB4_GENERAL_CI if server.flavour == "mariadb" else Charset.UTF8MB4_0900_AI_CI,
            status=ServerStatus.AUTOCOMMIT,
            auth_plugin=server.greeting_plugin,
        )
        self.conn.set_max_payload(PRE_AUTH_MAX_PAYLOAD)
        self.conn.reset_sequence()
        self.conn.write_packets([greeting.build()])
        return Phase.AUTH

    # -- AUTH ---------------------------------------------------------------------------------
    async def _process__auth(self) -> Phase:
        server = self.server
        try:
            async with asyncio.timeout(LOGIN_TIMEOUT):
                result = await authenticate(
                    self.conn, self._scramble, users=server.users, cache=server.sha2_cache,
                    rsa_keys=server.rsa_keys, tls=server.tls_context, client_host=self.state.client_host,
                    limiter=server.full_auth_limiter)
        except LoginFailed as exc:
            if exc.counted:
                server.metrics.login_failures.inc()
                server.failed_logins += 1
            access.info("login failed from %s: %s", self.conn.peer, exc.message,
                        extra={"connection_id": self.state.connection_id})
            self._send_error(exc.code, exc.sqlstate, exc.message)
            return Phase.CLOSED
        except TimeoutError:
            access.info("login from %s timed out", self.conn.peer)
            return Phase.CLOSED
        response = result.response
        self.capabilities = Capability(int(response.capabilities) & int(server_capabilities(server.tls_context is not None)))
        st = self.state
        st.user = result.user.name
        st.admin = result.user.admin
        st.database = response.database or None
        st.capabilities = int(self.capabilities)
        st.command = "Sleep"
        self.conn.set_max_payload(MAX_ALLOWED_PACKET)
        self._queries = QueryHandler(server, st)
        self._send_ok()
        server.metrics.logins.inc()
        access.info("%s logged in from %s (%s%s)", st.user, self.conn.peer, result.plugin,
                    ", tls" if self.conn.tls else "", extra={"connection_id": st.connection_id})
        return Phase.COMMAND

    # -- COMMAND ------------------------------------------------------------------------------
    async def _process__command(self) -> Phase:
        try:
            async with asyncio.timeout(IDLE_TIMEOUT):
                payload = await self.conn.read_packet()
        except TimeoutError:
            access.info("closing idle connection %d from %s", self.state.connection_id, self.conn.peer)
            return Phase.CLOSED
        except ProtocolError as exc:
            # Framing is lost (e.g. a packet above max_allowed_packet): say why, then close.
            self._send_error(ER_NET_PACKET_TOO_LARGE, "08S01", str(exc), reply=True)
            return Phase.CLOSED
        self.conn.reply_to_last()
        if not payload:
            self._send_error(ER_UNKNOWN_COM_ERROR, "08S01", "Unknown command: empty packet")
            return Phase.COMMAND
        code = payload[0]
        self.server.metrics.commands.inc()
        try:
            match code:
                case Command.QUIT:
                    return Phase.CLOSED
                case Command.PING:
                    self._send_ok()
                case Command.QUERY:
                    self.handle_com_query(ComQuery.parse(payload))
                case Command.INIT_DB:
                    self.state.database = ComInitDb.parse(payload).database
                    self._send_ok()
                case Command.REGISTER_SLAVE:
                    self.handle_com_register_slave(ComRegisterSlave.parse(payload))
                case Command.BINLOG_DUMP:
                    return await self.handle_com_binlog_dump(ComBinlogDump.parse(payload))
                case Command.BINLOG_DUMP_GTID:
                    return await self.handle_com_binlog_dump(ComBinlogDumpGtid.parse(payload))
                case Command.RESET_CONNECTION:
                    self.state.user_vars.clear()
                    self.state.sys_vars.clear()
                    self._send_ok()
                case _:
                    name = Command(code).name if code in Command._value2member_map_ else f"0x{code:02x}"
                    self._send_error(ER_UNKNOWN_COM_ERROR, "08S01", f"Unknown command {name}: binhub does not "
                                     "support it")
        except ProtocolError as exc:
            self._send_error(ER_UNKNOWN_COM_ERROR, "08S01", f"Malformed command packet: {exc}")
        except (ConnectionFailed, asyncio.CancelledError):
            raise
        except SqlError as exc:
            self._send_error(exc.code, exc.sqlstate, exc.message)
        except BinhubError as exc:
            self._send_error(ER_UNKNOWN_ERROR, "HY000", str(exc))
        except Exception as exc:
            log.exception("command 0x%02x on connection %d failed", code, self.state.connection_id)
            self._send_error(ER_UNKNOWN_ERROR, "HY000", f"binhub internal error: {exc.__class__.__name__}: {exc}")
        return Phase.COMMAND

    def handle_com_query(self, query: ComQuery) -> None:
        assert self._queries is not None
        self.state.command = "Query"
        try:
            reply = self._queries.execute(query.sql)
        finally:
            self.state.command = "Sleep"
        if isinstance(reply, OkReply):
            self._send_ok(info=reply.info)
            return
        assert isinstance(reply, RowsReply)
        rows = [tuple(text_value(v) for v in row) for row in reply.rows]
        self.conn.write_packets(build_text_result_set(reply.columns, rows, int(self.capabilities),
                                                      status=self.state.status))

    def handle_com_register_slave(self, cmd: ComRegisterSlave) -> None:
        st = self.state
        if cmd.server_id == 0:
            raise SqlError(ER_UNKNOWN_ERROR, "HY000", "COM_REGISTER_SLAVE with server_id 0 is not allowed")
        if cmd.server_id == self.server.server_id:
            # A replica with the primary's own id would skip every event as its own.
            raise SqlError(ER_UNKNOWN_ERROR, "HY000", f"the replica's server_id {cmd.server_id} equals binhub's own "
                           "server_id; give the replica another one")
        st.replica_server_id = cmd.server_id
        st.replica_host = cmd.host or st.client_host
        st.replica_port = cmd.port
        st.reported = True
        self.server.register(self)
        self._send_ok()

    async def handle_com_binlog_dump(self, cmd: DumpCommand) -> Phase:
        st = self.state
        if st.replica_server_id != cmd.server_id and cmd.server_id:
            st.replica_server_id = cmd.server_id
        if cmd.server_id:
            # A second dump from the same server_id or UUID is the same replica reconnecting: the
            # older session is a zombie and ends (MySQL's kill_zombie_dump_threads).
            self.server.register(self)
        st.command = "Binlog Dump GTID" if isinstance(cmd, ComBinlogDumpGtid) else "Binlog Dump"
        self.phase = Phase.DUMP
        self.server.metrics.dumps.inc()
        access.info("dump for server_id %s from %s (%s)", cmd.server_id, self.conn.peer, type(cmd).__name__,
                    extra={"connection_id": st.connection_id, "replica_id": cmd.server_id})
        await self.server.dump_handler(self.conn, st, cmd, self.server)
        return Phase.CLOSED

    # -- replies ------------------------------------------------------------------------------
    def _send_ok(self, *, info: str = "", reply: bool = False) -> None:
        if reply:
            self.conn.reply_to_last()
        caps = int(self.capabilities) or int(Capability.PROTOCOL_41)
        self.conn.write_packets([OkPacket(status=self.state.status, info=info).build(caps)])

    def _send_error(self, code: int, sqlstate: str, message: str, *, reply: bool = False) -> None:
        if self.conn.closed:
            return
        if reply:
            self.conn.reply_to_last()
        self.conn.write_packets([ErrPacket(code, sqlstate, message[:500]).build(Capability.PROTOCOL_41)])
