"""TLS on binhub's server connections, done here rather than by asyncio, so that writes use every core.

asyncio's TLS transport encrypts and sends in the event loop's one thread: fifty replicas over TLS
then share one core for AES and for every ``send``, while mariadbd runs a thread per replica. So a
server connection owns its TLS state, an :class:`ssl.SSLObject` over memory BIOs (the ``ssl``
module's sans-I/O form): the loop thread feeds it what arrives (the handshake, then the client's
packets), and :class:`binhub.net.offload.OffloadWriter` encrypts what is written in worker threads.

One lock per connection serialises every use of the SSLObject: OpenSSL objects are not
thread-safe, and a read can produce records to send (an alert, a key update), which must go out in
the order they were made, before anything encrypted after them.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Sequence

__all__ = ["ServerTls"]

Buffer = bytes | bytearray | memoryview


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

    def receive(self, data: Buffer) -> tuple[bytes, bool, bool]:
        """Feed bytes from the client: (plaintext, whether records to send were made, whether the
        client closed TLS).

        Records a read makes (an alert, a key update) stay in the outgoing BIO: the next
        :meth:`encrypt` returns them ahead of its own, in the order OpenSSL made them, whichever
        thread encrypts meanwhile.
        """
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
            return b"".join(chunks), self._outgoing.pending > 0, closed

    def encrypt(self, parts: Sequence[Buffer]) -> bytes:
        """TLS records carrying ``parts`` in order (the GIL is released while OpenSSL encrypts),
        after any records a read made since the last call.

        The records are copied once more, out of the memory BIO (``ssl`` offers no other way out of
        an SSLObject); callers encrypt a cache-sized chunk at a time so that copy stays cheap.
        """
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
