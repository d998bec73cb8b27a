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
connection goes through it too, so the order of bytes on the wire never changes. (Sending from the
offload threads below as well was measured: no clear gain on plain TCP, ~15% more CPU per GB.)

Compression (:mod:`binhub.wire.compression`, once the session turned it on after the login's
OK): received bytes are inflated before the packet parser sees them, and what is written goes out
as compressed packets, made in worker threads (:mod:`binhub.net.offload`). A shared buffer is
compressed once for every connection with the same codec and level: the bodies do not depend on
the connection, only the 7-byte headers do.

TLS (:mod:`binhub.net.tls`) is done by binhub, not by asyncio's TLS transport, so that encryption
and sending also run in those threads.
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

from binhub.errors import BinhubError, ConnectionFailed, ProtocolError
from binhub.net.offload import SHARED_PIECES, OffloadWriter
from binhub.net.tls import ServerTls
from binhub.net.wakeup import Wakeup
from binhub.wire.compression import (
    CompressedPacketReader,
    Compression,
    Piece,
    compress_pieces,
    frame_pieces,
    piece_count,
)
from binhub.wire.handshake import is_ssl_request
from binhub.wire.packet import PacketReader, Payload, frame_many

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
        self._readable = Wakeup()  # next_payload waits here for a payload
        self._writable = Wakeup()  # drain waits here for resume_writing
        self.lost = asyncio.get_running_loop().create_future()
        # The first client packet may be an SSLRequest, and a fast client sends its TLS ClientHello
        # right behind it, often in the same read: those bytes must reach the TLS layer, not the
        # packet parser. So the first packet is cut out by hand and what follows an SSLRequest is
        # kept aside (``tls_leftover``) with reading paused until start_tls takes it.
        self._first: bytes | None = b""
        self.tls_leftover = b""
        self._broken = False
        self.inflate: CompressedPacketReader | None = None  # set once the connection is compressed
        self.tls: ServerTls | None = None  # set by ServerConnection.start_tls
        #: Compresses and/or encrypts in worker threads (binhub.net.offload), once TLS or compression starts.
        self.writer: OffloadWriter | None = None
        self.tls_handshake: asyncio.Future[None] | None = None

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
        if self.tls is not None:
            data = self._decrypt(data)
            if not data:
                return
        try:
            if self.inflate is None:
                payloads = self.reader.feed(data)
            else:
                payloads = [p for piece in self.inflate.feed(data) for p in self.reader.feed(piece)]
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
        self._readable.wake()
        if self.queued_bytes > READ_HIGH_WATER and not self.read_paused and self.transport is not None:
            self.read_paused = True
            self.transport.pause_reading()

    def _decrypt(self, data: bytes) -> bytes:
        """TLS: the handshake until it completes, then the plaintext of what arrived."""
        tls = self.tls
        assert tls is not None
        try:
            if not tls.established:
                out = tls.handshake(data)
                if out and self.writer is not None:
                    self.writer.write_records(out)
                if not tls.established:
                    return b""
                if self.tls_handshake is not None and not self.tls_handshake.done():
                    self.tls_handshake.set_result(None)
                data = b""  # the client's first packet may have come with its Finished: read it too
            plain, made_records, closed = tls.receive(data)
        except ssl.SSLError as exc:
            self._broken = True
            self._fail(ConnectionFailed(f"TLS with {self.peer} failed: {exc}"))
            if self.tls_handshake is not None and not self.tls_handshake.done():
                self.tls_handshake.set_exception(ConnectionFailed(f"TLS handshake with {self.peer} failed: {exc}"))
            if self.transport is not None:
                self.transport.abort()
            return b""
        if made_records and self.writer is not None:
            self.writer.send_tls_records()
        if closed:
            self._fail(ConnectionFailed(f"connection from {self.peer} closed (TLS close_notify)"))
        return plain

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
        self._readable.wake()
        return b""

    def eof_received(self) -> bool | None:
        return None  # close the transport: a half-closed client has nothing more to say

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f": {exc}" if exc else ""
        self._fail(ConnectionFailed(f"connection from {self.peer} closed{reason}"))
        if not self.lost.done():
            self.lost.set_result(None)
        if self.tls_handshake is not None and not self.tls_handshake.done():
            self.tls_handshake.set_exception(ConnectionFailed(f"connection from {self.peer} closed during the "
                                                              "TLS handshake"))
        self._writable.wake()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._writable.wake()

    # -- helpers ---------------------------------------------------------------------------------
    def _fail(self, exc: BinhubError) -> None:
        if self.error is None:
            self.error = exc
        self._readable.wake()

    async def next_payload(self) -> tuple[bytes, int]:
        while not self.queue:
            if self.error is not None:
                raise self.error
            self._resume_reading()
            await self._readable.wait()
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
            await self._writable.wait()
        if self.error is not None and (self.transport is None or self.transport.is_closing()):
            raise self.error


class ServerConnection:
    """One downstream client connection, as the session and the dump see it."""

    def __init__(self, protocol: ServerProtocol) -> None:
        self._protocol = protocol
        self.peer = protocol.peer
        self._sequence = 0
        #: Sequence id that follows the last packet read (what a reply to it must carry).
        self.last_read_next = 0
        #: The compressed protocol in use (None: plain packets).
        self.compression: Compression | None = None
        self._compressed_sequence = 0
        self._direct: _DirectWriter | None = None
        protocol.lost.add_done_callback(lambda _: self._close_direct())

    @property
    def sequence(self) -> int:
        """Sequence id of the next packet written."""
        return self._sequence

    @sequence.setter
    def sequence(self, value: int) -> None:
        # A caller restarting the count starts a new exchange (the dump after its command, after a
        # semi-sync ack request): the compressed packets' counter restarts with it, where the
        # replica, which reset both when it wrote, expects it.
        self._sequence = self._compressed_sequence = value & 0xFF

    @property
    def closed(self) -> bool:
        t = self._protocol.transport
        return t is None or t.is_closing()

    @property
    def tls(self) -> bool:
        return self._protocol.tls is not None

    @property
    def tls_cipher(self) -> str:
        """The negotiated cipher suite ("" without TLS)."""
        return self._protocol.tls.cipher if self._protocol.tls is not None else ""

    @property
    def tls_version(self) -> str:
        """The TLS protocol version, e.g. ``TLSv1.3`` ("" without TLS)."""
        return self._protocol.tls.version if self._protocol.tls is not None else ""

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
        self._sequence = self.last_read_next
        inflate = self._protocol.inflate
        if inflate is not None:
            self._compressed_sequence = inflate.seq

    def reset_sequence(self) -> None:
        self.sequence = 0

    def start_compression(self, compression: Compression) -> None:
        """From now on both directions are compressed packets (call right after the login's OK).

        Compression runs in the offload writer's threads; a plain TCP connection gets one here
        (the OK just written is almost always on its way: where it is not, compression stays in the
        loop thread).
        """
        self.compression = compression
        self._compressed_sequence = self._sequence
        self._protocol.inflate = CompressedPacketReader(compression, seq=self._sequence)
        transport = self._protocol.transport
        if self._protocol.writer is None and self._direct is None and transport is not None:
            self._direct = _DirectWriter.take_over(transport, self._on_direct_error)
            if self._direct is not None:
                self._protocol.writer = OffloadWriter(self._direct, self._on_direct_error)

    def _next_compressed(self, nbytes: int) -> int:
        """The compressed sequence id of a write of ``nbytes``; advances the count past its pieces."""
        seq = self._compressed_sequence
        self._compressed_sequence = (seq + piece_count(nbytes)) & 0xFF
        return seq

    def write_packets(self, payloads: list[bytes]) -> None:
        """Frame ``payloads`` with the running sequence id (splitting ≥ 0xFFFFFF) and send them."""
        transport = self._protocol.transport
        if transport is None or transport.is_closing():
            raise self._protocol.error or ConnectionFailed(f"connection from {self.peer} is closed")
        chunks, self._sequence = frame_many(payloads, self._sequence)
        offload = self._protocol.writer
        if self.compression is not None:
            data = b"".join(chunks)
            if offload is not None:
                offload.write(data, self.compression, self._next_compressed(len(data)))
                return
            chunks = self._frame_compressed(compress_pieces(data, self.compression))
        writer = offload or self._direct
        if writer is not None:
            writer.write_parts(chunks)
        else:
            transport.writelines(chunks)

    def _frame_compressed(self, pieces: list[Piece]) -> list[Payload]:
        parts, self._compressed_sequence = frame_pieces(pieces, self._compressed_sequence)
        return parts

    def write_shared(self, data: bytes, packets: int) -> None:
        """Send ``data``, ``packets`` packets the caller framed from ``self.sequence`` on.

        ``data`` may be shared with other connections and must not change: it is sent without a
        copy (see the module docstring), and kept referenced until the socket has taken it.
        """
        transport = self._protocol.transport
        if transport is None or transport.is_closing():
            raise self._protocol.error or ConnectionFailed(f"connection from {self.peer} is closed")
        self._sequence = (self._sequence + packets) & 0xFF
        if self._direct is None:
            self._direct = _DirectWriter.take_over(transport, self._on_direct_error)
        writer = self._protocol.writer or self._direct
        if self.compression is not None and self._protocol.writer is not None:
            self._protocol.writer.write(data, self.compression, self._next_compressed(len(data)), shared=True)
        elif self.compression is not None:
            parts = self._frame_compressed(SHARED_PIECES.get(data, self.compression))
            if writer is not None:
                writer.write_parts(parts)
            else:
                transport.writelines(parts)
        elif writer is not None:
            writer.write(data)
        else:
            transport.write(data)

    def _on_direct_error(self, exc: OSError) -> None:
        self._protocol._fail(ConnectionFailed(f"connection from {self.peer} failed: {exc}"))
        t = self._protocol.transport
        if t is not None:
            t.abort()

    def _close_direct(self) -> None:
        if self._protocol.writer is not None:
            self._protocol.writer.close()  # closes the direct writer once no job uses it
        elif self._direct is not None:
            self._direct.close()

    async def drain(self) -> None:
        """Wait until the transport's buffer is below its low-water mark (backpressure)."""
        writer = self._protocol.writer or self._direct
        if writer is not None:
            await writer.drain()  # a failed writer aborts the transport: the line below raises
        await self._protocol.drain()

    async def start_tls(self, ctx: ssl.SSLContext, timeout: float = 10.0) -> None:
        """Upgrade to TLS as the server side (after the client's SSLRequest); see :mod:`binhub.net.tls`.

        From here on every write goes through the connection's :class:`~binhub.net.offload.OffloadWriter`
        and the direct writer under it: the transport only reads.
        """
        protocol = self._protocol
        transport = protocol.transport
        if transport is None or transport.is_closing():
            raise protocol.error or ConnectionFailed(f"connection from {self.peer} is closed")
        # The greeting, the transport's last write, was read by the client: nothing is buffered.
        direct = _DirectWriter.take_over(transport, self._on_direct_error)
        if direct is None:
            transport.abort()
            raise ConnectionFailed(f"TLS with {self.peer}: binhub cannot write to this socket directly")
        self._direct = direct
        protocol.tls = ServerTls(ctx)
        protocol.writer = OffloadWriter(direct, self._on_direct_error, tls=protocol.tls)
        protocol.tls_handshake = handshake = asyncio.get_running_loop().create_future()
        leftover, protocol.tls_leftover = protocol.tls_leftover, b""
        protocol.data_received(leftover)  # the ClientHello's first bytes, if they came with the SSLRequest
        protocol._resume_reading()
        try:
            async with asyncio.timeout(timeout):
                await handshake
        except TimeoutError:
            self.abort()
            raise ConnectionFailed(f"TLS handshake with {self.peer} timed out after {timeout:g}s") from None
        except ConnectionFailed:
            self.abort()
            raise

    def close(self) -> None:
        """Close after what was written is flushed; safe to call twice."""
        t = self._protocol.transport
        if t is None or t.is_closing():
            return
        writer = self._protocol.writer or self._direct
        if writer is not None and writer.pending_bytes:
            writer.close_after_flush(t.close)
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
        self._drained = Wakeup()
        self._then_close: Callable[[], None] | None = None
        self._on_empty: Callable[[], None] | None = None

    @property
    def fd(self) -> int:
        return self._fd

    def on_empty(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever everything queued has been written (the offload writer's cue)."""
        self._on_empty = callback

    @classmethod
    def take_over(cls, transport: asyncio.Transport,
                  on_error: Callable[[OSError], None]) -> _DirectWriter | None:
        """A writer for ``transport``'s socket, or None where this does not apply (data buffered).

        On a TLS connection it carries the records the TLS writer could not send at once.
        """
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
            elif self._on_empty is not None:
                self._on_empty()
        if self.pending_bytes <= DIRECT_LOW_WATER:
            self._drained.wake()

    def _fail(self, exc: OSError) -> None:
        if exc.errno not in (errno.EPIPE, errno.ECONNRESET):
            log.info("write to a replica failed: %s", exc)
        self.close()
        self._on_error(exc)

    async def drain(self) -> None:
        while self.pending_bytes > DIRECT_LOW_WATER and not self._closed:
            await self._drained.wait()

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
        self._drained.wake()


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
