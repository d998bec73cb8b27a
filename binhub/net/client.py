"""The asyncio adapter for the upstream side: the only class that touches the upstream socket.

Everything protocol-shaped lives in :mod:`binhub.wire`; this module moves bytes. An
:class:`asyncio.Protocol` feeds :class:`~binhub.wire.packet.PacketReader` from ``data_received``
and queues complete payloads; coroutines take them off the queue. :meth:`UpstreamConnection.read_events`
takes *every* queued event at once, which is what lets the relay run at disk speed: one await per
batch, not per event. Events are ``memoryview`` slices of the received chunks, or (with the C
framing loop of :mod:`binhub._speedups`) small ones are ``bytes`` copies, which are cheaper to
make and join than views.

Backpressure: when more than ``HIGH_WATER`` bytes of complete packets wait in the queue, reading
from the socket pauses until the consumer drains it below ``LOW_WATER``.

Compression (``compress=True``, :mod:`binhub.wire.compression`): once the handshake agreed on it,
received bytes are inflated before anything else sees them, and commands go out compressed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import ssl as ssl_module
import struct
from collections.abc import Sequence

from binhub._speedups import frame_dump
from binhub.errors import (
    BinhubError,
    ConnectionFailed,
    EndOfDump,
    MalformedPacket,
    ProtocolError,
    UnexpectedPacket,
    UpstreamError,
)
from binhub.net.wakeup import Wakeup
from binhub.wire.client import ClientHandshake, raise_for_err
from binhub.wire.commands import (
    ComBinlogDump,
    ComBinlogDumpGtid,
    ComQuery,
    ComQuit,
    ComRegisterSlave,
    SemisyncAck,
)
from binhub.wire.compression import (
    Algorithm,
    CompressedPacketReader,
    Compression,
    compress_pieces,
    frame_pieces,
)
from binhub.wire.constants import (
    MAX_PACKET_PAYLOAD,
    SEMISYNC_MAGIC,
    SEMISYNC_NEED_ACK,
    BinlogDumpFlag,
    Capability,
)
from binhub.wire.messages import (
    EOF_HEADER,
    ERR_HEADER,
    OK_HEADER,
    OkPacket,
    ResultSet,
    ResultSetParser,
)
from binhub.wire.packet import PacketReader, Payload, frame, frame_many

_unpack_header = struct.Struct("<I").unpack_from  # 3-byte length + 1-byte sequence id in one call

log = logging.getLogger("binhub.net.upstream")

HIGH_WATER = 64 * 1024 * 1024
LOW_WATER = 16 * 1024 * 1024
# Bytes asked of the socket per read during a dump (asyncio's own default is 256 KiB). A dump streams
# hundreds of MB; every read is a wakeup, a framing pass and a batch for the relay's pump, whose
# Python costs the same for 100 KB as for 1 MB. The kernel returns what it holds, so this only
# matters when the reader falls behind, and then lets it catch up with fewer, larger batches.
DUMP_READ_SIZE = 1024 * 1024


class _UpstreamProtocol(asyncio.Protocol):
    """Socket side: bytes → payload queue, with pause/resume and a single waiter.

    During a binlog dump (``dumping``) complete events go to ``events`` instead, already stripped
    of the OK byte (and semi-sync header): :meth:`_feed_dump` frames them straight out of each
    received chunk, so ``read_events`` has no per-event work left. Anything unusual (a packet of
    16 MiB or more, an ERR/EOF, a bad sequence id) goes through ``reader`` and ``queue`` as before.
    """

    def __init__(self, where: str) -> None:
        self.where = where
        self.reader = PacketReader()
        self.transport: asyncio.Transport | None = None
        self.queue: collections.deque[Payload] = collections.deque()
        self.dumping = False
        self.semisync = False
        self.events: list[Payload] = []  # dump mode: events ready for read_events, in order
        self.ack = False  # dump mode: an event in ``events`` asked for a semi-sync ack
        self._tail = bytearray()  # dump mode: the start of a packet the last chunk did not complete
        self.queued_bytes = 0
        self.received_total = 0  # every byte ever received: proof of life while a huge event trickles in
        self.inflate: CompressedPacketReader | None = None  # set once the connection is compressed
        self.paused = False
        self.error: BinhubError | None = None
        self.closed = asyncio.get_running_loop().create_future()
        self._data = Wakeup()  # wait_for_data waits here

    # -- asyncio callbacks -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.received_total += len(data)
        if self.inflate is None:
            self._receive(data)
            return
        try:
            pieces = self.inflate.feed(data)
        except ProtocolError as exc:
            self._fail(exc)
            if self.transport is not None:
                self.transport.close()
            return
        for piece in pieces:
            self._receive(piece)

    def start_compression(self, compression: Compression) -> None:
        """Everything received from now on is compressed packets (the handshake's OK was the last plain one)."""
        self.inflate = CompressedPacketReader(compression)
        # Servers renumber the packets inside at every flush (MariaDB's net_flush): only the
        # compressed packets' own ids count, and those are not checked either.
        self.reader.check_seq = False

    def _receive(self, data: bytes) -> None:
        """The packet stream (inflated if compressed): packets or, in a dump, events."""
        reader = self.reader
        received = len(data)
        before = reader.buffered + len(self._tail)
        try:
            if self.dumping and not self.queue and not reader.buffered:
                self._feed_dump(data)  # the relay's hot path: no per-event work left for read_events
            else:
                if self._tail:
                    data = bytes(self._tail) + data
                    self._tail = bytearray()
                self._add_payloads(reader.feed(data))
                if self.dumping and not self.queue:
                    # An ordinary packet cut off by this chunk's end (after a 16 MiB+ event) is completed
                    # by the fast path: without this every later chunk would stay on the reader's path.
                    self._tail = reader.take_partial(self._dump_limit())
        except ProtocolError as exc:
            self._fail(exc)
            if self.transport is not None:
                self.transport.close()
            return
        if self.queue or self.events:
            self._data.wake()
        # Count only bytes of complete packets: a partial 40 MiB event must never pause reading.
        self.queued_bytes += received + before - reader.buffered - len(self._tail)
        if self.queued_bytes > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def _feed_dump(self, data: bytes) -> None:
        """Frame dump packets out of ``data`` (the reader holds no partial packet and ``queue`` is empty)."""
        view = memoryview(data)
        pos, end = 0, len(view)
        tail = self._tail
        if tail:
            # Complete the packet the previous chunk ended in, in a buffer of its own (handed over, never reused).
            if len(tail) < 4:
                pos = min(4 - len(tail), end)
                tail += view[:pos]
                if len(tail) < 4:
                    return
            length = _unpack_header(tail, 0)[0] & MAX_PACKET_PAYLOAD
            if length >= MAX_PACKET_PAYLOAD:
                self._tail = bytearray()
                self._add_payloads(self.reader.feed(bytes(tail) + bytes(view[pos:])))  # 16 MiB+: the reader joins it
                return
            take = min(4 + length - len(tail), end - pos)
            tail += view[pos:pos + take]
            pos += take
            if len(tail) < 4 + length:
                return
            self._tail = bytearray()
            self._frame_dump(memoryview(tail), 0)
        if pos < end:
            if self.queue or self.reader.buffered:
                self._add_payloads(self.reader.feed(view[pos:]))  # keep the order behind what was queued
            else:
                self._frame_dump(view, pos)

    def _frame_dump(self, view: memoryview, pos: int) -> None:
        """Complete small OK packets from ``pos`` on become events; the loop is ``binhub._speedups.frame_dump``."""
        reader = self.reader
        limit = self._dump_limit()
        pos, reader.seq, ack = frame_dump(view, pos, reader.seq, reader.check_seq, limit, self.semisync, self.events)
        if ack:
            self.ack = True
        end = len(view)
        if pos < end:
            if end - pos < 4:
                self._tail = bytearray(view[pos:])  # not even a whole header yet
                return
            length = _unpack_header(view, pos)[0] & MAX_PACKET_PAYLOAD
            if pos + 4 + length > end and length < limit:
                self._tail = bytearray(view[pos:])  # completed by the next chunk
            else:
                # 16 MiB+, ERR/EOF, empty or a bad sequence id: the reader and the slow path deal with it
                self._add_payloads(reader.feed(view[pos:]))

    def _dump_limit(self) -> int:
        """Payloads from this size on are left to the reader (16 MiB+ ones span several packets)."""
        return min(MAX_PACKET_PAYLOAD, self.reader.max_payload + 1)

    def _add_payloads(self, payloads: list[Payload]) -> None:
        """Payloads from the reader: in dump mode OK packets become events until anything else is queued."""
        if not self.dumping:
            self.queue.extend(payloads)
            return
        queue = self.queue
        for p in payloads:
            if not queue and p and p[0] == OK_HEADER:
                view = p if isinstance(p, memoryview) else memoryview(p)
                if self.semisync and len(view) > 2 and view[1] == SEMISYNC_MAGIC:
                    if view[2] & SEMISYNC_NEED_ACK:
                        self.ack = True
                    self.events.append(view[3:])
                else:
                    self.events.append(view[1:])
            else:
                queue.append(p)  # ERR/EOF (or what follows one): read_events raises it after the events

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f": {exc}" if exc else " by the server"
        self._fail(ConnectionFailed(f"lost connection to upstream {self.where}{reason}",
                                    hint="binhub reconnects and resumes; check the upstream's error log if it repeats"))
        if not self.closed.done():
            self.closed.set_result(None)

    def _fail(self, exc: BinhubError) -> None:
        if self.error is None:
            self.error = exc
        self._data.wake()

    # -- consumer side -------------------------------------------------------------------------
    async def wait_for_data(self) -> None:
        """Return once the queue (or, in a dump, the events) is non-empty; raise the connection's error if it died first."""
        while not self.queue and not self.events:
            if self.error is not None:
                raise self.error
            # An empty queue must never stay paused, whatever the byte count says.
            self._resume()
            await self._data.wait()

    def take_one(self) -> Payload:
        p = self.queue.popleft()
        self.queued_bytes = max(0, self.queued_bytes - len(p) - 4)
        if self.paused and self.queued_bytes < LOW_WATER:
            self._resume()
        return p

    def take_events(self) -> tuple[list[Payload], bool]:
        """Dump mode: every framed event, and whether one of them asked for a semi-sync ack."""
        out, ack = self.events, self.ack
        self.events, self.ack = [], False
        if not self.queue:
            self.queued_bytes = 0
        self._resume()
        return out, ack

    def take_all(self) -> list[Payload]:
        out = list(self.queue)
        self.queue.clear()
        self.queued_bytes = 0
        self._resume()
        return out

    def _resume(self) -> None:
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()


class UpstreamConnection:
    """One client connection to a MySQL/MariaDB server, as a replica (or a plain SQL client)."""

    server_version: str
    connection_id: int
    is_mariadb: bool
    capabilities: Capability
    semisync: bool
    last_ack_requested: bool

    def __init__(self, protocol: _UpstreamProtocol, handshake: ClientHandshake) -> None:
        greeting = handshake.greeting
        assert greeting is not None
        self._protocol = protocol
        self._where = protocol.where
        self.server_version = greeting.display_version
        self.connection_id = greeting.connection_id
        self.is_mariadb = greeting.is_mariadb
        self.capabilities = handshake.capabilities
        self.tls = handshake.tls_active
        #: The compressed protocol in use, or None.
        self.compression = handshake.compression
        self.semisync = False
        self.last_ack_requested = False
        self._dumping = False

    # -- connect -------------------------------------------------------------------------------
    @classmethod
    async def connect(cls, host: str, port: int, user: str, password: str, *, database: str | None = None,
                      ssl: ssl_module.SSLContext | None = None, ssl_optional: bool = False,
                      connect_timeout: float = 10.0, compress: bool | Algorithm = False,
                      attrs: dict[str, str] | None = None) -> UpstreamConnection:
        """Connect (TCP, or a unix socket if ``host`` starts with "/"), upgrade to TLS if ``ssl``, authenticate.

        ``compress``: use the compressed protocol, zstd where the server offers it, else zlib (or
        the given :class:`~binhub.wire.compression.Algorithm` only); the connection goes on
        uncompressed if the server has none of it (see ``compression``).
        """
        where = host if host.startswith("/") else f"{host}:{port}"
        loop = asyncio.get_running_loop()
        protocol: _UpstreamProtocol | None = None
        try:
            async with asyncio.timeout(connect_timeout):
                if host.startswith("/"):
                    _, protocol = await loop.create_unix_connection(lambda: _UpstreamProtocol(where), host)
                else:
                    _, protocol = await loop.create_connection(lambda: _UpstreamProtocol(where), host, port)
                handshake = ClientHandshake(user, password, database, ssl_wanted=ssl is not None,
                                            ssl_optional=ssl_optional, attrs=attrs, compress=compress)
                await cls._run_handshake(protocol, handshake, ssl, host)
        except TimeoutError as exc:
            cls._abort(protocol)
            raise ConnectionFailed(f"cannot connect to upstream {where}: timed out after {connect_timeout:g}s",
                                   hint="check that the server is up and reachable, or raise connect_timeout") from exc
        except ssl_module.SSLError as exc:
            cls._abort(protocol)
            raise ConnectionFailed(f"cannot connect to upstream {where}: TLS handshake failed: {exc}",
                                   hint="check the CA/certificate settings for the upstream") from exc
        except OSError as exc:
            cls._abort(protocol)
            reason = exc.strerror or str(exc)
            raise ConnectionFailed(f"cannot connect to upstream {where}: {reason}",
                                   hint="check that the server runs and listens there and that no firewall "
                                        "blocks the port") from exc
        except BaseException:
            cls._abort(protocol)
            raise
        conn = cls(protocol, handshake)
        log.debug("connected to upstream %s: %s (connection id %d, tls=%s)", where, conn.server_version,
                  conn.connection_id, conn.tls)
        return conn

    @staticmethod
    async def _run_handshake(protocol: _UpstreamProtocol, handshake: ClientHandshake,
                             ssl: ssl_module.SSLContext | None, host: str) -> None:
        while True:
            await protocol.wait_for_data()
            step = handshake.receive(protocol.take_one())
            _send_payloads(protocol, step.send)
            if step.start_tls:
                assert ssl is not None and protocol.transport is not None
                server_hostname = host if ssl.check_hostname and not host.startswith("/") else None
                loop = asyncio.get_running_loop()
                new_transport = await loop.start_tls(protocol.transport, protocol, ssl,
                                                     server_hostname=server_hostname)
                if new_transport is None:
                    raise ConnectionFailed("TLS upgrade failed: the connection closed during the TLS handshake")
                assert isinstance(new_transport, asyncio.Transport)
                protocol.transport = new_transport
                step = handshake.tls_started()
                _send_payloads(protocol, step.send)
            if step.done:
                if handshake.compression is not None:
                    protocol.start_compression(handshake.compression)
                return

    @staticmethod
    def _abort(protocol: _UpstreamProtocol | None) -> None:
        if protocol is not None and protocol.transport is not None:
            protocol.transport.abort()

    # -- plain commands ------------------------------------------------------------------------
    def _command(self, payload: bytes) -> None:
        if self._dumping:
            raise UnexpectedPacket("cannot send a command while a binlog dump is running on this connection")
        if self._protocol.error is not None:
            raise self._protocol.error
        self._protocol.reader.reset(0)
        _send_payloads(self._protocol, (payload,))

    async def _read_packet(self) -> Payload:
        await self._protocol.wait_for_data()
        return self._protocol.take_one()

    async def query(self, sql: str) -> ResultSet:
        """Run ``sql`` and return its (text) result set; an ERR raises :class:`UpstreamError`."""
        self._command(ComQuery(sql).build())
        parser = ResultSetParser(self.capabilities)
        while not parser.feed(await self._read_packet()):
            pass
        if parser.error is not None:
            e = parser.error
            raise UpstreamError(e.code, e.sqlstate, e.message)
        return parser.result

    async def execute(self, sql: str) -> OkPacket:
        """Run a statement that returns no rows (SET, CREATE, INSERT ...) and return its OK packet."""
        result = await self.query(sql)
        # A statement that unexpectedly returns rows is not an error for the caller's purposes.
        return OkPacket(status=result.status)

    async def _expect_ok(self) -> OkPacket:
        payload = await self._read_packet()
        if payload and payload[0] == ERR_HEADER:
            raise_for_err(payload)
        if not payload or payload[0] != OK_HEADER:
            raise UnexpectedPacket(f"expected OK from upstream {self._where}, got {bytes(payload[:1])!r}")
        return OkPacket.parse(payload, self.capabilities)

    async def register_replica(self, server_id: int, *, host: str = "", port: int = 0, user: str = "",
                               password: str = "") -> None:
        """COM_REGISTER_SLAVE: makes this connection show in SHOW SLAVE HOSTS / SHOW REPLICAS."""
        self._command(ComRegisterSlave(server_id, host, user, password, port).build())
        await self._expect_ok()

    # -- binlog dump ---------------------------------------------------------------------------
    async def start_binlog_dump(self, file: str, position: int, server_id: int, flags: int = 0) -> None:
        """COM_BINLOG_DUMP from (file, position); then call :meth:`read_events`."""
        self._command(ComBinlogDump(position, server_id, file, BinlogDumpFlag(flags)).build())
        self._start_dump()

    async def start_binlog_dump_gtid(self, gtid_data: bytes, server_id: int, flags: int = 0, file: str = "",
                                     position: int = 4) -> None:
        """COM_BINLOG_DUMP_GTID (MySQL) with an encoded GTID set; then call :meth:`read_events`."""
        dump_flags = BinlogDumpFlag(flags) | BinlogDumpFlag.THROUGH_GTID
        self._command(ComBinlogDumpGtid(server_id, gtid_data, file, position, dump_flags).build())
        self._start_dump()

    def _start_dump(self) -> None:
        self._dumping = True
        self._protocol.dumping = True  # from now on the protocol frames events itself
        self._protocol.semisync = self.semisync
        transport = self._protocol.transport
        if isinstance(getattr(transport, "max_size", None), int):  # a plain socket's (TLS reads in its own layer)
            transport.max_size = DUMP_READ_SIZE  # type: ignore[union-attr]

    async def read_events(self) -> list[memoryview | bytes]:
        """Wait for at least one dump packet; return every complete event already received.

        Events come without the 0x00 status byte and without the semi-sync header. An ERR packet
        raises :class:`UpstreamError`, the end of the dump :class:`EndOfDump`; both only after
        the events before them were returned by an earlier call.
        """
        proto = self._protocol
        await proto.wait_for_data()
        if proto.events:
            # The hot path: the protocol already framed and stripped them; ERR/EOF wait in the queue.
            framed, self.last_ack_requested = proto.take_events()
            return framed
        batch = proto.take_all()
        events: list[memoryview | bytes] = []
        semisync = self.semisync
        ack = False
        for i, p in enumerate(batch):
            header = p[0] if p else -1
            if header == OK_HEADER:
                view = p if isinstance(p, memoryview) else memoryview(p)
                if semisync and len(view) > 2 and view[1] == SEMISYNC_MAGIC:
                    # Acking the batch's end covers an earlier flagged event too: the primary
                    # releases every commit at or before the acknowledged position.
                    if view[2] & SEMISYNC_NEED_ACK:
                        ack = True
                    events.append(view[3:])
                else:
                    events.append(view[1:])
                continue
            if events:
                # Hand over what came before the ERR/EOF first; it is raised on the next call.
                proto.queue.extendleft(reversed(batch[i:]))
                break
            self._dumping = proto.dumping = False
            self.last_ack_requested = False
            if header == ERR_HEADER:
                if len(batch) > 1:
                    proto.queue.extendleft(reversed(batch[1:]))
                raise_for_err(p)
            if header == EOF_HEADER and len(p) < MAX_PACKET_PAYLOAD:
                if len(batch) > 1:
                    proto.queue.extendleft(reversed(batch[1:]))
                raise EndOfDump(f"upstream {self._where} ended the binlog dump")
            raise MalformedPacket(f"unexpected packet 0x{header & 0xFF:02x} in the binlog dump stream")
        self.last_ack_requested = ack
        return events

    # -- semi-sync -----------------------------------------------------------------------------
    async def enable_semisync(self) -> bool:
        """Ask for semi-sync framing if the primary has it enabled; True if it is now on."""
        result = await self.query("SHOW VARIABLES WHERE Variable_name IN "
                                  "('rpl_semi_sync_master_enabled', 'rpl_semi_sync_source_enabled')")
        if not any((row[1] or "").upper() == "ON" for row in result.rows):
            return False
        # MariaDB and MySQL <= 8.0 read the first name, MySQL 8.4 the second; setting both is harmless.
        await self.execute("SET @rpl_semi_sync_slave = 1, @rpl_semi_sync_replica = 1")
        self.semisync = True
        # After each event that asks for an ack the primary restarts its packet counter (flush_net:
        # net_clear, then pkt_nr = 1), so the sequence ids of a semi-sync dump do not run on; the
        # length framing still delimits the packets.
        self._protocol.reader.check_seq = False
        return True

    @property
    def events_ready(self) -> bool:
        """Whether :meth:`read_events` would return (or raise) without waiting."""
        proto = self._protocol
        return bool(proto.events or proto.queue) or proto.error is not None

    @property
    def received_bytes(self) -> int:
        """Bytes received on this connection so far (complete packets or not)."""
        return self._protocol.received_total

    async def send_semisync_ack(self, file: str, position: int) -> None:
        """Acknowledge that everything up to (file, position) is durable here."""
        if not self.semisync:
            raise UnexpectedPacket("send_semisync_ack() on a connection without semi-sync")
        transport = self._protocol.transport
        if transport is None or transport.is_closing():
            raise self._protocol.error or ConnectionFailed(f"connection to upstream {self._where} is closed")
        # The ack is a packet of its own exchange (sequence id 0) that does not disturb the dump's
        # counter, which is why it bypasses the reader's shared sequence id.
        data, _ = frame(SemisyncAck(file, position).build(), 0)
        assert isinstance(data, bytes)
        transport.writelines(_compressed([data], self._protocol.inflate))

    # -- teardown ------------------------------------------------------------------------------
    async def close(self) -> None:
        """Say COM_QUIT (when idle) and close the socket; safe to call twice."""
        proto = self._protocol
        transport = proto.transport
        if transport is None or transport.is_closing():
            return
        if not self._dumping and proto.error is None:
            with contextlib.suppress(Exception):
                proto.reader.reset(0)
                _send_payloads(proto, (ComQuit().build(),))
        transport.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(proto.closed), 2.0)

    async def __aenter__(self) -> UpstreamConnection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _send_payloads(protocol: _UpstreamProtocol, payloads: Sequence[bytes]) -> None:
    transport = protocol.transport
    if transport is None or transport.is_closing():
        raise protocol.error or ConnectionFailed(f"connection to upstream {protocol.where} is closed")
    reader = protocol.reader
    parts, reader.seq = frame_many(payloads, reader.seq)
    transport.writelines(_compressed(parts, protocol.inflate))


def _compressed(parts: list[Payload], inflate: CompressedPacketReader | None) -> list[Payload]:
    """``parts`` as compressed packets if the connection is compressed.

    Every client write opens an exchange (a command, a semi-sync ack), and the client resets both
    counters for it (``net_clear``), so the compressed sequence ids start at 0.
    """
    if inflate is None:
        return parts
    return frame_pieces(compress_pieces(b"".join(parts), inflate.compression), 0)[0]
