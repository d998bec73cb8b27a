"""Writes that cost CPU (TLS, the compressed protocol) done in worker threads, in order per connection.

The event loop is one thread; mariadbd runs a thread per replica. Encrypting and compressing fifty
replicas' streams in the loop leaves binhub one core (and, on a loaded machine, one thread's share
of the CPU). So a connection that encrypts or compresses sends through an :class:`OffloadWriter`:

* what the connection writes is queued (shared spans by reference, not copied);
* a job in a small shared thread pool compresses it (:mod:`binhub.wire.compression`; a span
  shared by many replicas once, :class:`SharedPieces`), encrypts it (:class:`~binhub.net.tls.ServerTls`)
  and sends what the socket takes at once, non-blocking. zlib, zstd, OpenSSL and ``write`` release
  the GIL, so the jobs of many connections run in parallel;
* one job at a time per connection, so bytes and TLS records stay in order; what the socket did
  not take queues in the connection's direct writer (the *sink*), which the loop flushes when the
  socket is writable. No job starts while the sink holds bytes: the sink calls back once empty.
* TLS encrypts only what the socket takes, ``TLS_CHUNK`` at a time: the plaintext (a shared span is
  referenced, not copied) waits in the queue until the socket has room, and the ciphertext one
  connection holds is at most a chunk. Encrypting a whole span ahead (a 17 MiB event) made every
  slow replica hold its own ciphertext of it, and OpenSSL's memory BIO keeps its largest size: 30
  TLS replicas grew the server to 1.7 GB. The writer's queue counts as pending for ``drain``, so
  the dump stops framing for a replica that does not keep up.

Compressed packets' sequence ids are assigned by the loop when it queues a write (how many pieces
a write makes depends only on its length), so a restart of the count lands where the stream is.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import os
import ssl
import threading
from collections.abc import Callable
from typing import NamedTuple, Protocol

from binhub.net.tls import ServerTls
from binhub.net.wakeup import Wakeup
from binhub.wire.compression import Compression, Piece, compress_pieces, frame_pieces

__all__ = ["POOL_THREADS", "CiphertextSink", "OffloadWriter", "SharedPieces", "SHARED_PIECES"]

Buffer = bytes | bytearray | memoryview

#: Threads compressing, encrypting and sending for every connection of the process.
POOL_THREADS = max(8, 2 * (os.cpu_count() or 1))
#: Buffers one ``writev`` takes (Linux's IOV_MAX).
IOV_MAX = 1024
#: ``drain`` returns once at most this much is queued or in flight, so the next span is queued
#: before the socket runs dry.
OFFLOAD_LOW_WATER = 512 * 1024
#: Plaintext encrypted per SSL_write (16 TLS records): small enough to stay in the CPU's cache and
#: to bound what a connection holds encrypted, large enough for few calls.
TLS_CHUNK = 256 * 1024

_pool: concurrent.futures.ThreadPoolExecutor | None = None


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = concurrent.futures.ThreadPoolExecutor(POOL_THREADS, thread_name_prefix="binhub-write")
    return _pool


class SharedPieces:
    """Compressed bodies of shared buffers, made once per buffer and compression (LRU, bounded).

    Thread-safe: jobs of replicas at the same span ask at the same time, and the first one
    compresses while the others wait for it. An entry keeps its buffer referenced, so the ``id`` it
    is keyed on cannot be reused meanwhile.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._entries: collections.OrderedDict[tuple[int, Compression], tuple[bytes, list[Piece], int]] = \
            collections.OrderedDict()
        self._making: dict[tuple[int, Compression], threading.Event] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, data: bytes, compression: Compression) -> list[Piece]:
        key = (id(data), compression)
        while True:
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None and entry[0] is data:
                    self._entries.move_to_end(key)
                    return entry[1]
                making = self._making.get(key)
                if making is None:
                    self._making[key] = done = threading.Event()
                    break
            making.wait()
        try:
            pieces = compress_pieces(data, compression)
            with self._lock:
                old = self._entries.pop(key, None)
                if old is not None:
                    self._bytes -= old[2]
                cost = len(data) + sum(len(body) for _, body in pieces)
                self._entries[key] = (data, pieces, cost)
                self._bytes += cost
                while self._bytes > self.limit and len(self._entries) > 1:
                    _, (_, _, dropped) = self._entries.popitem(last=False)
                    self._bytes -= dropped
            return pieces
        finally:
            with self._lock:
                del self._making[key]
            done.set()


#: One per process: every replica at the same span with the same codec shares its bodies.
SHARED_PIECES = SharedPieces(64 << 20)


class CiphertextSink(Protocol):
    """Where bytes the socket did not take wait (``binhub.net.server``'s direct writer)."""

    @property
    def fd(self) -> int: ...

    @property
    def pending_bytes(self) -> int: ...

    def write(self, data: bytes | memoryview) -> None: ...

    def on_empty(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (in the loop) whenever the sink has written out everything it held."""

    async def drain(self) -> None: ...

    def close_after_flush(self, then: Callable[[], None]) -> None: ...

    def close(self) -> None: ...


class _Write(NamedTuple):
    data: Buffer
    compression: Compression | None  # None: bytes of the packet stream as they are
    seq: int  # the first compressed packet's sequence id
    shared: bool  # shared with other connections: its compressed pieces are too


class OffloadWriter:
    """Compresses, encrypts and sends one connection's writes in the pool, in order (module docstring)."""

    def __init__(self, sink: CiphertextSink, on_error: Callable[[OSError], None], *,
                 tls: ServerTls | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._tls = tls
        self._sink = sink
        self._on_error = on_error
        self._queue: collections.deque[_Write] = collections.deque()
        #: TLS: packet-stream bytes ready to encrypt, left by a job the socket stopped taking.
        self._plain: list[memoryview] = []
        self._records: list[bytes] = []  # the TLS handshake's: out before anything encrypted
        self._tls_records = False  # a TLS read left records in the BIO: the next encrypt sends them
        self._queued = 0  # bytes queued or in the running job
        self._busy = False
        self._closed = False
        self._drained = Wakeup()
        self._then_close: Callable[[], None] | None = None
        sink.on_empty(self._kick)

    @property
    def pending_bytes(self) -> int:
        return self._queued + self._sink.pending_bytes

    def write(self, data: Buffer, compression: Compression | None = None, seq: int = 0, *,
              shared: bool = False) -> None:
        """Queue ``data`` (kept referenced, not copied, until the job has used it)."""
        if self._closed or not data:
            return
        self._queue.append(_Write(data, compression, seq, shared))
        self._queued += len(data)
        self._kick()

    def write_parts(self, parts: list[bytes | memoryview]) -> None:
        for part in parts:
            self.write(part)

    def write_records(self, records: bytes) -> None:
        """TLS records of the handshake (already encrypted)."""
        if records and not self._closed:
            self._records.append(records)
            self._kick()

    def send_tls_records(self) -> None:
        """A TLS read made records (they wait in the TLS object: see ServerTls.receive)."""
        if not self._closed:
            self._tls_records = True
            self._kick()

    @property
    def _idle(self) -> bool:
        return not (self._busy or self._queue or self._plain or self._records or self._tls_records)

    def _kick(self) -> None:
        # Not while the sink holds bytes: a job sends straight to the socket, and must not overtake
        # them; the sink calls this again once it is empty.
        if self._idle or self._busy or self._closed or self._sink.pending_bytes:
            return
        plain, self._plain = self._plain, []
        writes = list(self._queue)
        self._queue.clear()
        records, self._records = self._records, []
        self._tls_records = False  # the job's first encrypt takes them out of the BIO
        self._busy = True
        taken = sum(map(len, plain)) + sum(len(w.data) for w in writes)
        fut = self._loop.run_in_executor(_executor(), self._job, records, plain, writes)
        fut.add_done_callback(lambda f: self._done(f, taken))

    def _job(self, records: list[bytes], plain: list[memoryview],
             writes: list[_Write]) -> tuple[list[memoryview], list[memoryview]]:
        """In the pool: compress, encrypt, send what the socket takes.

        Returns the bytes made but not sent (for the sink) and, under TLS, the plaintext not yet
        encrypted (back to the queue's head).
        """
        parts: list[Buffer] = list(plain)
        for w in writes:
            if w.compression is None:
                parts.append(w.data)
                continue
            # A shared span is the dump's ``bytes`` itself (bytes() of bytes is no copy): its id keys the cache.
            pieces = SHARED_PIECES.get(bytes(w.data), w.compression) if w.shared else \
                compress_pieces(w.data, w.compression)
            parts += frame_pieces(pieces, w.seq)[0]
        if self._tls is None:
            return self._send([memoryview(p) for p in parts if p]), []
        queue = collections.deque(memoryview(p) for p in parts if p)
        out = self._send([memoryview(r) for r in records if r])
        # Each encrypt also returns the records TLS reads made since the last one, in OpenSSL's
        # order; so at least one runs, even with nothing to write.
        while not out and not self._closed:
            records_out = self._tls.encrypt(_take(queue, TLS_CHUNK))
            out = self._send([memoryview(records_out)] if records_out else [])
            if not queue:
                break
        return out, list(queue)

    def _send(self, views: list[memoryview]) -> list[memoryview]:
        """writev ``views`` until the socket is full; returns the rest."""
        if self._closed:
            return views
        try:
            while views:
                # writev: the shared spans go out from the shared bytes, never joined (zero copy).
                sent = os.writev(self._sink.fd, views[:IOV_MAX])
                while views and sent >= len(views[0]):
                    sent -= len(views.pop(0))
                if sent:
                    views[0] = views[0][sent:]
        except (BlockingIOError, InterruptedError):
            pass
        return views

    def _done(self, fut: asyncio.Future[tuple[list[memoryview], list[memoryview]]], taken: int) -> None:
        if self._closed:
            self._busy = False
            fut.exception()  # a failed send to a client that is gone is no news
            self._sink.close()  # deferred by close(): the job was writing to the sink's descriptor
            return
        try:
            rest, plain = fut.result()
        except (OSError, ssl.SSLError, ValueError) as exc:
            self._busy = False
            self._fail(exc if isinstance(exc, OSError) and not isinstance(exc, ssl.SSLError)
                       else OSError(f"TLS: {exc}"))
            return
        self._plain = plain
        self._queued -= taken - sum(map(len, plain))
        for part in rest:  # still busy: the sink emptying between two parts must not start a job
            self._sink.write(part)
        self._busy = False
        self._kick()
        if self._queued <= OFFLOAD_LOW_WATER:
            self._drained.wake()
        if self._idle and self._then_close is not None:
            then, self._then_close = self._then_close, None
            self._sink.close_after_flush(then) if self._sink.pending_bytes else then()

    def _fail(self, exc: OSError) -> None:
        self.close()
        self._on_error(exc)

    async def drain(self) -> None:
        while self._queued > OFFLOAD_LOW_WATER and not self._closed:
            await self._drained.wait()
        await self._sink.drain()

    def close_after_flush(self, then: Callable[[], None]) -> None:
        if not self._idle:
            self._then_close = then
        elif self._sink.pending_bytes:
            self._sink.close_after_flush(then)
        else:
            then()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.clear()
        self._plain.clear()
        self._records.clear()
        if not self._busy:
            self._sink.close()
        self._drained.wake()


def _take(queue: collections.deque[memoryview], limit: int) -> list[memoryview]:
    """Up to ``limit`` bytes off the head of ``queue`` (splitting a view where the limit falls)."""
    out: list[memoryview] = []
    room = limit
    while queue and room:
        head = queue[0]
        if len(head) <= room:
            out.append(queue.popleft())
            room -= len(head)
        else:
            out.append(head[:room])
            queue[0] = head[room:]
            room = 0
    return out
