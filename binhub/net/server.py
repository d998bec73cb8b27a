"""The asyncio adapter for the downstream side: the only class that touches a replica's socket.

Everything protocol-shaped lives in :mod:`binhub.wire` and :mod:`binhub.serve`; this module moves
bytes. An :class:`asyncio.Protocol` feeds :class:`~binhub.wire.packet.PacketReader` from
``data_received`` and queues complete payloads; :meth:`ServerConnection.read_packet` takes them off
the queue one at a time.

Sequence ids: the MySQL protocol numbers the packets of one exchange, both directions sharing one
counter. Reading never changes the counter used for writing, because during a dump the replica's
semi-sync acks (each its own exchange, sequence id 0) arrive while the dump's events keep counting;
the session sets the write counter explicitly (:meth:`ServerConnection.reply_to_last`,
:meth:`ServerConnection.reset_sequence`). Incoming sequence ids are therefore not checked either:
clients restart at 0 for every command, and a wrong id is harmless to a server.

Backpressure, both ways:

* reading pauses while more than ``READ_HIGH_WATER`` bytes of unread payloads are queued, so a
  client cannot make binhub buffer without bound;
* :meth:`ServerConnection.drain` waits while the transport's write buffer is above its high-water
  mark (``pause_writing``/``resume_writing``), so one slow replica stalls only its own dump.

Zero-copy fan-out: the dump frames each chunk of the store once and hands the same immutable
``bytes`` to every replica reading it (:meth:`ServerConnection.write_shared`). asyncio's transport
would copy that MiB into each connection's buffer whenever the socket cannot take it at once,
which at fifty replicas costs more than the sends themselves; so on a plain TCP connection these
writes go through a :class:`_DirectWriter` that keeps a reference to the shared buffer and
``write(2)``s from it when the socket is writable. Once it has started, every later write of the
connection goes through it too, so the order of bytes on the wire never changes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import logging
import os
import socket
import ssl
from collections.abc import Callable

from binhub.errors import BinhubError, ConnectionFailed, MalformedPacket, ProtocolError
from binhub.wire.handshake import is_ssl_request
from binhub.wire.packet import PacketReader, frame_many

__all__ = ["READ_HIGH_WATER", "ServerConnection", "ServerProtocol"]

log = logging.getLogger("binhub.net.server")

READ_HIGH_WATER = 4 * 1024 * 1024
#: Transport write-buffer marks: a dump writes MiB-sized batches, so a few MiB in flight keeps the
#: socket busy without letting a stalled replica pin much memory.
WRITE_HIGH_WATER = 8 * 1024 * 1024
WRITE_LOW_WATER = 2 * 1024 * 1024
#: Direct writes: ``drain`` returns once at most this much is queued (the kernel's socket buffer,
#: a few MiB on loopback, holds more), so the next chunk is queued before the socket runs dry.
DIRECT_LOW_WATER = 512 * 1024
JOIN_LIMIT = 64 * 1024  # direct writes: parts below this are joined, larger ones written in place


class ServerProtocol(asyncio.Protocol):
    """Socket side: bytes → payload queue, pause/resume, one reader waiter, one drain waiter."""

    def __init__(self, max_payload: int, on_connect: Callable[[ServerConnection], None] | None = None) -> None:
        self._on_connect = on_connect
        self.reader = PacketReader(max_payload=max_payload, check_seq=False)
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        # (payload, sequence id that follows it): the id the server answers with.
        self.queue: collections.deque[tuple[bytes, int]] = collections.deque()
        self.queued_bytes = 0
        self.read_paused = False
        self.write_paused = False
        self.error: BinhubError | None = None
        self._read_waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self.lost = asyncio.get_running_loop().create_future()
        # The first client packet may be an SSLRequest, and a fast client sends its TLS ClientHello
        # right behind it, often in the same read: those bytes must reach the TLS layer, not the
        # packet parser. So the first packet is cut out by hand and what follows an SSLRequest is
        # kept aside (``tls_leftover``) with reading paused until start_tls takes it.
        self._first: bytes | None = b""
        self.tls_leftover = b""
        self._broken = False

    # -- asyncio callbacks -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER, low=WRITE_LOW_WATER)
        _enable_keepalive(transport.get_extra_info("socket"))
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.peer = f"{peer[0]}:{peer[1]}"
        elif peer:
            self.peer = str(peer)
        if self._on_connect is not None:
            self._on_connect(ServerConnection(self))

    def data_received(self, data: bytes) -> None:
        if self._first is not None:
            data = self._take_first(data)
            if not data:
                return
        if self._broken:
            return
        try:
            payloads = self.reader.feed(data)
        except ProtocolError as exc:
            # An oversized length or garbage framing: nothing after it can be trusted. Reading
            # stops; the session gets the error from read_packet, answers with an ERR and closes.
            self._broken = True
            self._fail(exc)
            if self.transport is not None:
                self.transport.pause_reading()
            return
        if not payloads:
            return
        seq = self.reader.seq
        for p in payloads:
            # bytes(), not the zero-copy view: a session keeps few small payloads, and a view
            # would pin the whole received chunk.
            b = bytes(p)
            self.queue.append((b, seq))
            self.queued_bytes += len(b)
        self._wake_reader()
        if self.queued_bytes > READ_HIGH_WATER and not self.read_paused and self.transport is not None:
            self.read_paused = True
            self.transport.pause_reading()

    def _take_first(self, data: bytes) -> bytes:
        """Cut the first packet out of the stream; return the bytes the packet parser should see."""
        assert self._first is not None
        buf = self._first + data
        if len(buf) < 4:
            self._first = buf
            return b""
        length = int.from_bytes(buf[:3], "little")
        if length > self.reader.max_payload:
            self._first = None
            return buf  # the packet parser refuses it with the usual error
        if len(buf) < 4 + length:
            self._first = buf
            return b""
        self._first = None
        payload = buf[4:4 + length]
        if not is_ssl_request(payload):
            return buf
        self.reader.seq = (buf[3] + 1) & 0xFF
        self.queue.append((payload, self.reader.seq))
        self.tls_leftover = buf[4 + length:]
        if self.transport is not None:
            self.read_paused = True
            self.transport.pause_reading()
        self._wake_reader()
        return b""

    def eof_received(self) -> bool | None:
        return None  # close the transport: a half-closed client has nothing more to say

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f": {exc}" if exc else ""
        self._fail(ConnectionFailed(f"connection from {self.peer} closed{reason}"))
        if not self.lost.done():
            self.lost.set_result(None)
        self._wake_drain()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_drain()

    # -- helpers ---------------------------------------------------------------------------------
    def _fail(self, exc: BinhubError) -> None:
        if self.error is None:
            self.error = exc
        self._wake_reader()

    def _wake_reader(self) -> None:
        waiter = self._read_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_drain(self) -> None:
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next_payload(self) -> tuple[bytes, int]:
        while not self.queue:
            if self.error is not None:
                raise self.error
            self._resume_reading()
            self._read_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._read_waiter
            finally:
                self._read_waiter = None
        item = self.queue.popleft()
        self.queued_bytes -= len(item[0])
        if self.queued_bytes < READ_HIGH_WATER // 2:
            self._resume_reading()
        return item

    def _resume_reading(self) -> None:
        if self._broken:
            return
        if self.read_paused and self.transport is not None and not self.transport.is_closing():
            self.read_paused = False
            self.transport.resume_reading()

    async def drain(self) -> None:
        while self.write_paused:
            if self.error is not None:
                raise self.error
            self._drain_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._drain_waiter
            finally:
                self._drain_waiter = None
        if self.error is not None and (self.transport is None or self.transport.is_closing()):
            raise self.error


class ServerConnection:
    """One downstream client connection, as the session and the dump see it."""

    def __init__(self, protocol: ServerProtocol) -> None:
        self._protocol = protocol
        self.peer = protocol.peer
        #: Sequence id of the next packet written.
        self.sequence = 0
        #: Sequence id that follows the last packet read (what a reply to it must carry).
        self.last_read_next = 0
        self._direct: _DirectWriter | None = None
        protocol.lost.add_done_callback(lambda _: self._close_direct())

    @property
    def closed(self) -> bool:
        t = self._protocol.transport
        return t is None or t.is_closing()

    @property
    def tls(self) -> bool:
        t = self._protocol.transport
        return t is not None and t.get_extra_info("sslcontext") is not None

    @property
    def tls_cipher(self) -> tuple[str, str] | None:
        """(cipher, protocol version) of the TLS session, e.g. ("TLS_AES_256_GCM_SHA384", "TLSv1.3")."""
        t = self._protocol.transport
        info = t.get_extra_info("cipher") if t is not None else None
        return (str(info[0]), str(info[1])) if info else None

    def set_max_payload(self, limit: int) -> None:
        """Bound one reassembled payload (small before authentication, ``max_allowed_packet`` after)."""
        self._protocol.reader.max_payload = limit

    async def read_packet(self) -> bytes:
        """One reassembled payload; :class:`ConnectionFailed` once the client is gone.

        A framing error (e.g. a length above the bound) closes the connection and raises the
        :class:`~binhub.errors.ProtocolError` here.
        """
        payload, nxt = await self._protocol.next_payload()
        self.last_read_next = nxt
        return payload

    def reply_to_last(self) -> None:
        """Write the next packets as replies to the last one read (its sequence id + 1)."""
        self.sequence = self.last_read_next

    def reset_sequence(self) -> None:
        self.sequence = 0

    def write_packets(self, payloads: list[bytes]) -> None:
        """Frame ``payloads`` with the running sequence id (splitting ≥ 0xFFFFFF) and send them."""
        transport = self._protocol.transport
        if transport is None or transport.is_closing():
            raise self._protocol.error or ConnectionFailed(f"connection from {self.peer} is closed")
        chunks, self.sequence = frame_many(payloads, self.sequence)
        if self._direct is not None:
            self._direct.write_parts(chunks)
        else:
            transport.writelines(chunks)

    def write_shared(self, data: bytes, packets: int) -> None:
        """Send ``data``, ``packets`` packets the caller framed from ``self.sequence`` on.

        ``data`` may be shared with other connections and must not change: it is sent without a
        copy (see the module docstring), and kept referenced until the socket has taken it.
        """
        transport = self._protocol.transport
        if transport is None or transport.is_closing():
            raise self._protocol.error or ConnectionFailed(f"connection from {self.peer} is closed")
        self.sequence = (self.sequence + packets) & 0xFF
        if self._direct is None:
            self._direct = _DirectWriter.take_over(transport, self._on_direct_error)
        if self._direct is not None:
            self._direct.write(data)
        else:
            transport.write(data)

    def _on_direct_error(self, exc: OSError) -> None:
        self._protocol._fail(ConnectionFailed(f"connection from {self.peer} failed: {exc}"))
        t = self._protocol.transport
        if t is not None:
            t.abort()

    def _close_direct(self) -> None:
        if self._direct is not None:
            self._direct.close()

    async def drain(self) -> None:
        """Wait until the transport's buffer is below its low-water mark (backpressure)."""
        if self._direct is not None:
            await self._direct.drain()  # a failed writer aborts the transport: the line below raises
        await self._protocol.drain()

    async def start_tls(self, ctx: ssl.SSLContext) -> None:
        """Upgrade to TLS as the server side (after the client's SSLRequest)."""
        protocol = self._protocol
        transport = protocol.transport
        if transport is None or transport.is_closing():
            raise protocol.error or ConnectionFailed(f"connection from {self.peer} is closed")
        loop = asyncio.get_running_loop()
        leftover, protocol.tls_leftover = protocol.tls_leftover, b""
        protocol.read_paused = False
        new: asyncio.BaseTransport | None
        try:
            if leftover:
                new = await _start_tls_with_data(loop, transport, protocol, ctx, leftover)
            else:
                new = await loop.start_tls(transport, protocol, ctx, server_side=True, ssl_handshake_timeout=10.0)
        except (OSError, ssl.SSLError, ConnectionError, MalformedPacket) as exc:
            transport.abort()
            raise ConnectionFailed(f"TLS handshake with {self.peer} failed: {exc}") from exc
        if new is None:
            raise ConnectionFailed(f"TLS handshake with {self.peer} failed: the connection closed")
        assert isinstance(new, asyncio.Transport)
        new.set_write_buffer_limits(high=WRITE_HIGH_WATER, low=WRITE_LOW_WATER)
        protocol.transport = new

    def close(self) -> None:
        """Close after what was written is flushed; safe to call twice."""
        t = self._protocol.transport
        if t is None or t.is_closing():
            return
        if self._direct is not None and self._direct.pending_bytes:
            self._direct.close_after_flush(t.close)
        else:
            self._close_direct()
            t.close()

    def abort(self) -> None:
        """Drop the connection now, without flushing (a zombie dump, a hostile client)."""
        self._close_direct()
        t = self._protocol.transport
        if t is not None:
            t.abort()

    async def wait_closed(self, timeout: float = 2.0) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(self._protocol.lost), timeout)
        except TimeoutError:
            self.abort()


class _DirectWriter:
    """Queue of buffers written to a plain TCP socket without copying them (see the module docstring).

    It writes through a ``dup`` of the transport's socket, registered with the loop on its own, so
    asyncio's transport (which keeps reading the socket) is left untouched. The transport must have
    nothing buffered when this starts; from then on every write of the connection comes here.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, on_error: Callable[[OSError], None]) -> None:
        self._loop = loop
        self._fd = os.dup(fd)
        os.set_blocking(self._fd, False)
        self._on_error = on_error
        self._queue: collections.deque[memoryview] = collections.deque()
        self.pending_bytes = 0
        self._watching = False
        self._closed = False
        self._waiter: asyncio.Future[None] | None = None
        self._then_close: Callable[[], None] | None = None

    @classmethod
    def take_over(cls, transport: asyncio.Transport,
                  on_error: Callable[[OSError], None]) -> _DirectWriter | None:
        """A writer for ``transport``'s socket, or None where this does not apply (TLS, data buffered)."""
        if transport.get_extra_info("sslcontext") is not None or transport.get_write_buffer_size():
            return None
        sock = transport.get_extra_info("socket")
        if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX):
            return None
        try:
            return cls(asyncio.get_running_loop(), sock.fileno(), on_error)
        except OSError:
            return None

    def write(self, data: bytes | memoryview) -> None:
        if self._closed or not data:
            return
        self._queue.append(memoryview(data))
        self.pending_bytes += len(data)
        if not self._watching:
            self._flush()

    def write_parts(self, parts: list[bytes | memoryview]) -> None:
        """Write ``parts`` in order: small ones joined (one write each), large ones as they are."""
        small: list[bytes | memoryview] = []
        for part in parts:
            if len(part) < JOIN_LIMIT:
                small.append(part)
                continue
            if small:
                self.write(b"".join(small))
                small = []
            self.write(part)
        if small:
            self.write(b"".join(small))

    def _flush(self) -> None:
        queue = self._queue
        try:
            while queue:
                head = queue[0]
                n = os.write(self._fd, head)
                self.pending_bytes -= n
                if n == len(head):
                    queue.popleft()
                else:
                    queue[0] = head[n:]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            self._fail(exc)
            return
        if queue and not self._watching:
            self._loop.add_writer(self._fd, self._flush)
            self._watching = True
        elif not queue:
            if self._watching:
                self._loop.remove_writer(self._fd)
                self._watching = False
            if self._then_close is not None:
                then, self._then_close = self._then_close, None
                self.close()
                then()
        if self.pending_bytes <= DIRECT_LOW_WATER:
            self._wake()

    def _fail(self, exc: OSError) -> None:
        if exc.errno not in (errno.EPIPE, errno.ECONNRESET):
            log.info("write to a replica failed: %s", exc)
        self.close()
        self._on_error(exc)

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def drain(self) -> None:
        while self.pending_bytes > DIRECT_LOW_WATER and not self._closed:
            self._waiter = self._loop.create_future()
            await self._waiter

    def close_after_flush(self, then: Callable[[], None]) -> None:
        self._then_close = then

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.clear()
        self.pending_bytes = 0
        if self._watching:
            self._loop.remove_writer(self._fd)
            self._watching = False
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._wake()


async def _start_tls_with_data(loop: asyncio.AbstractEventLoop, transport: asyncio.Transport,
                               protocol: asyncio.Protocol, ctx: ssl.SSLContext, data: bytes) -> asyncio.Transport:
    """``loop.start_tls(server_side=True)`` for a client whose first TLS bytes were already read.

    asyncio offers no way to hand bytes already received to the TLS layer, so this follows
    ``BaseEventLoop.start_tls`` step by step and feeds ``data`` to the SSL protocol before reading
    resumes.
    """
    from asyncio import sslproto

    waiter: asyncio.Future[None] = loop.create_future()
    ssl_protocol = sslproto.SSLProtocol(loop, protocol, ctx, waiter, server_side=True, call_connection_made=False,
                                        ssl_handshake_timeout=10)
    if not hasattr(ssl_protocol, "get_buffer"):  # pragma: no cover - Python < 3.11's SSLProtocol
        raise MalformedPacket("TLS data arrived with the SSLRequest and this Python cannot replay it")
    transport.pause_reading()
    transport.set_protocol(ssl_protocol)
    ssl_protocol.connection_made(transport)
    view = memoryview(data)
    while view:
        buf = ssl_protocol.get_buffer(len(view))
        n = min(len(buf), len(view))
        buf[:n] = view[:n]
        ssl_protocol.buffer_updated(n)
        view = view[n:]
    transport.resume_reading()
    try:
        await waiter
    except BaseException:
        transport.close()
        raise
    app = ssl_protocol._app_transport  # what loop.start_tls returns too
    assert isinstance(app, asyncio.Transport)
    return app


# A replica that vanishes without a FIN/RST (host down, network partition) would keep its dump
# and its reader lease until the kernel's 2-hour default: probe idle connections after 60 s and
# give up after 3 missed probes 10 s apart.
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 60, 10, 3


def _enable_keepalive(sock: socket.socket | None) -> None:
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", KEEPALIVE_IDLE), ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
                        ("TCP_KEEPCNT", KEEPALIVE_COUNT)):
        if hasattr(socket, name):  # Linux names; other systems keep their defaults
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
