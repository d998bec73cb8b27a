"""TLS on binhub's server connections, done here rather than by asyncio, so that writes use every core.

asyncio's TLS transport encrypts and sends in the event loop's one thread: fifty replicas over TLS
then share one core for AES and for every ``send``, while mariadbd runs a thread per replica. So a
server connection owns its TLS state (an :class:`ssl.SSLObject` over memory BIOs, the ``ssl``
module's sans-I/O form, :class:`ServerTls`) and:

* the loop thread feeds it what arrives (the handshake, then the client's packets);
* what the connection writes is encrypted *and sent* by a job in a small shared thread pool
  (:class:`TlsWriter`), one job at a time per connection so records stay in order. OpenSSL and the
  socket calls release the GIL, so the jobs of many connections run in parallel, and a loaded
  machine gives the pool's threads CPU time as it does mariadbd's; the buffers that many replicas
  share are encrypted straight from the shared bytes;
* a job sends what the socket takes at once (non-blocking); the rest queues in the connection's
  direct writer, which the loop flushes when the socket is writable, and the next job leaves its
  records behind it.

One lock per connection serialises every use of the SSLObject: OpenSSL objects are not
thread-safe, and a read can produce records to send (an alert, a key update), which must go out in
the order they were made, before anything encrypted after them.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import os
import ssl
import threading
from collections.abc import Callable
from typing import Protocol

__all__ = ["POOL_THREADS", "CiphertextSink", "ServerTls", "TlsWriter"]

Buffer = bytes | bytearray | memoryview

#: Threads encrypting and sending for every TLS connection of the process.
POOL_THREADS = max(4, 2 * (os.cpu_count() or 1))
#: ``drain`` returns once at most this much is queued or in flight, so the next span is queued
#: before the socket runs dry.
TLS_LOW_WATER = 512 * 1024

_pool: concurrent.futures.ThreadPoolExecutor | None = None


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = concurrent.futures.ThreadPoolExecutor(POOL_THREADS, thread_name_prefix="binhub-tls")
    return _pool


class ServerTls:
    """The TLS state of one server connection; every method may be called from any thread."""

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._obj = ctx.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._lock = threading.Lock()
        self.established = False

    def handshake(self, data: Buffer) -> bytes:
        """Feed handshake bytes from the client; returns what to send it. Sets ``established``."""
        with self._lock:
            if data:
                self._incoming.write(data)
            try:
                self._obj.do_handshake()
                self.established = True
            except ssl.SSLWantReadError:
                pass
            return self._outgoing.read()

    def receive(self, data: Buffer) -> tuple[bytes, bytes, bool]:
        """Feed bytes from the client: (plaintext, records to send, whether the client closed TLS)."""
        chunks: list[bytes] = []
        closed = False
        with self._lock:
            self._incoming.write(data)
            while True:
                try:
                    chunk = self._obj.read(256 * 1024)
                except ssl.SSLWantReadError:
                    break
                except ssl.SSLZeroReturnError:
                    closed = True
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks), self._outgoing.read(), closed

    def encrypt(self, parts: list[Buffer]) -> bytes:
        """TLS records carrying ``parts`` in order (the GIL is released while OpenSSL encrypts)."""
        with self._lock:
            for part in parts:
                if part:
                    self._obj.write(part)
            return self._outgoing.read()

    @property
    def cipher(self) -> str:
        c = self._obj.cipher()
        return c[0] if c else ""

    @property
    def version(self) -> str:
        return self._obj.version() or ""


class CiphertextSink(Protocol):
    """Where records the socket did not take wait (``binhub.net.server``'s direct writer)."""

    @property
    def fd(self) -> int: ...

    @property
    def pending_bytes(self) -> int: ...

    def write(self, data: bytes | memoryview) -> None: ...

    async def drain(self) -> None: ...

    def close_after_flush(self, then: Callable[[], None]) -> None: ...

    def close(self) -> None: ...


class TlsWriter:
    """Encrypts and sends one connection's writes in the pool, in order (see the module docstring)."""

    def __init__(self, tls: ServerTls, sink: CiphertextSink, on_error: Callable[[OSError], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._tls = tls
        self._sink = sink
        self._on_error = on_error
        self._plain: collections.deque[Buffer] = collections.deque()
        self._records: list[bytes] = []  # made by reads: they go out before anything encrypted after them
        self._queued = 0  # plaintext bytes queued or in the running job
        self._busy = False
        self._closed = False
        self._waiter: asyncio.Future[None] | None = None
        self._then_close: Callable[[], None] | None = None

    @property
    def pending_bytes(self) -> int:
        return self._queued + self._sink.pending_bytes

    def write(self, data: Buffer) -> None:
        """Queue ``data`` (kept referenced, not copied, until encrypted)."""
        if self._closed or not data:
            return
        self._plain.append(data)
        self._queued += len(data)
        self._kick()

    def write_parts(self, parts: list[bytes | memoryview]) -> None:
        for part in parts:
            self.write(part)

    def write_records(self, records: bytes) -> None:
        """Records the TLS layer made while reading (already encrypted)."""
        if records and not self._closed:
            self._records.append(records)
            self._kick()

    def _kick(self) -> None:
        if self._busy or self._closed or not (self._plain or self._records):
            return
        plain = list(self._plain)
        self._plain.clear()
        records, self._records = self._records, []
        self._busy = True
        # Send from the worker only when nothing waits in the sink, so records never overtake.
        send = self._sink.pending_bytes == 0
        fut = self._loop.run_in_executor(_executor(), self._job, records, plain, send)
        fut.add_done_callback(lambda f: self._done(f, sum(len(p) for p in plain)))

    def _job(self, records: list[bytes], plain: list[Buffer], send: bool) -> memoryview:
        """In the pool: encrypt, send what the socket takes; returns the rest."""
        data = self._tls.encrypt(plain)
        if records:
            data = b"".join([*records, data])
        view = memoryview(data)
        if not send or self._closed:
            return view
        sent = 0
        try:
            while sent < len(view):
                sent += os.write(self._sink.fd, view[sent:])
        except (BlockingIOError, InterruptedError):
            pass
        return view[sent:]

    def _done(self, fut: asyncio.Future[memoryview], nbytes: int) -> None:
        self._busy = False
        self._queued -= nbytes
        if self._closed:
            self._sink.close()  # deferred by close(): the job was writing to the sink's descriptor
            return
        try:
            rest = fut.result()
        except OSError as exc:
            self._fail(exc)
            return
        except (ssl.SSLError, ValueError) as exc:
            self._fail(OSError(f"TLS: {exc}"))
            return
        if rest:
            self._sink.write(rest)
        self._kick()
        if self._queued <= TLS_LOW_WATER:
            self._wake()
        if not self._busy and self._then_close is not None:
            then, self._then_close = self._then_close, None
            self._sink.close_after_flush(then) if self._sink.pending_bytes else then()

    def _fail(self, exc: OSError) -> None:
        self.close()
        self._on_error(exc)

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def drain(self) -> None:
        while self._queued > TLS_LOW_WATER and not self._closed:
            self._waiter = self._loop.create_future()
            await self._waiter
        await self._sink.drain()

    def close_after_flush(self, then: Callable[[], None]) -> None:
        if self._busy or self._plain or self._records:
            self._then_close = then
        elif self._sink.pending_bytes:
            self._sink.close_after_flush(then)
        else:
            then()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._plain.clear()
        self._records.clear()
        if not self._busy:
            self._sink.close()
        self._wake()
