"""A Kafka broker without transactions, for the Kafka sink's ``transactions = "auto"`` fallback: a
proxy in front of Tansu (which is told to advertise the proxy's address, so every connection passes
through it) that answers each InitProducerId request carrying a ``transactional.id`` itself, with
TRANSACTIONAL_ID_AUTHORIZATION_FAILED (53) — what a Kafka broker whose ACLs deny the principal
transactional ids answers, and what Redpanda answers with ``enable_transactions: false``. The
idempotent producer's InitProducerId (no transactional.id) and everything else pass through.

Responses keep their order on each connection (Kafka clients pipeline requests): each request is a
slot, answered either by the broker's next response or by the proxy's refusal.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import threading

INIT_PRODUCER_ID = 22
TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53


def _uvarint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def _transactional_id(request: bytes) -> bytes | None:
    """The transactional_id of an InitProducerId request (v0-v5; v2+ are flexible)."""
    version = struct.unpack_from(">h", request, 2)[0]
    (client_id_len,) = struct.unpack_from(">h", request, 8)
    at = 10 + max(client_id_len, 0)
    if version >= 2:
        tags, at = _uvarint(request, at)  # the request header's tagged fields
        for _ in range(tags):
            _, at = _uvarint(request, at)
            size, at = _uvarint(request, at)
            at += size
        length, at = _uvarint(request, at)
        return None if length == 0 else request[at:at + length - 1]
    (length,) = struct.unpack_from(">h", request, at)
    return None if length < 0 else request[at + 2:at + 2 + length]


def _refusal(request: bytes) -> bytes:
    version, correlation = struct.unpack_from(">hi", request, 2)
    header = struct.pack(">i", correlation) + (b"\x00" if version >= 2 else b"")
    body = struct.pack(">ihqh", 0, TRANSACTIONAL_ID_AUTHORIZATION_FAILED, -1, -1) + (b"\x00" if version >= 2 else b"")
    return header + body


async def _frame(reader: asyncio.StreamReader) -> bytes:
    (size,) = struct.unpack(">i", await reader.readexactly(4))
    return await reader.readexactly(size)


class NoTransactionsProxy:
    """Runs in a thread of its own: ``start(broker_port)``, clients connect to ``port``."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.refused = 0  # InitProducerId requests answered with the refusal
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._broker_port = 0

    def start(self, broker_port: int) -> None:
        self._broker_port = broker_port
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._client, "127.0.0.1", self.port), self._loop).result(10)

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()
        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _client(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        broker_r, broker_w = await asyncio.open_connection("127.0.0.1", self._broker_port)
        slots: asyncio.Queue[bytes | None] = asyncio.Queue()  # None: the broker answers this one

        async def requests() -> None:
            while True:
                request = await _frame(client_r)
                api_key = struct.unpack_from(">h", request)[0]
                if api_key == INIT_PRODUCER_ID and _transactional_id(request) is not None:
                    self.refused += 1
                    await slots.put(_refusal(request))
                    continue
                await slots.put(None)
                broker_w.write(struct.pack(">i", len(request)) + request)
                await broker_w.drain()

        async def responses() -> None:
            while True:
                local = await slots.get()
                response = local if local is not None else await _frame(broker_r)
                client_w.write(struct.pack(">i", len(response)) + response)
                await client_w.drain()

        tasks = [asyncio.create_task(requests()), asyncio.create_task(responses())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task  # a closed connection ends its task with an error: that is the end
            for writer in (client_w, broker_w):
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
