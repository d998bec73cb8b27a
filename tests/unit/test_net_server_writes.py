"""The server connection's zero-copy writes (``write_shared``), on real loopback sockets.

A dump hands the same framed span to many connections; on plain TCP it is written from that
buffer without a copy, through a dup of the socket. What must hold: bytes arrive in the order they
were written whichever way (shared spans, packets, a split 17 MiB packet), ``drain`` is the
backpressure, ``close`` flushes what is queued first, and a replica that vanishes fails the writer
instead of hanging it.
"""

from __future__ import annotations

import asyncio
import os
import random
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from binhub.errors import ConnectionFailed
from binhub.net.offload import TLS_CHUNK
from binhub.net.server import DIRECT_LOW_WATER, ServerConnection, ServerProtocol
from binhub.serve.keys import self_signed_pair, server_ssl_context
from binhub.wire.compression import Algorithm, CompressedPacketReader, Compression
from binhub.wire.constants import Capability
from binhub.wire.handshake import SSLRequest, is_ssl_request
from binhub.wire.packet import frame_many


@dataclass
class Pair:
    conn: ServerConnection
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    loop = asyncio.get_running_loop()
    accepted: asyncio.Queue[ServerConnection] = asyncio.Queue()
    server = await loop.create_server(lambda: ServerProtocol(1 << 20, accepted.put_nowait), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = await asyncio.wait_for(accepted.get(), 5)
    try:
        yield Pair(conn, reader, writer)
    finally:
        conn.abort()
        writer.close()
        server.close()
        await server.wait_closed()


def _framed(payloads: list[bytes], seq: int) -> bytes:
    return b"".join(frame_many(payloads, seq)[0])


async def test_order_is_kept_across_shared_spans_and_packets(pair: Pair) -> None:
    rng = random.Random(1)
    conn = pair.conn
    conn.sequence = 1
    expected = []
    big = rng.randbytes(17 * 1024 * 1024)  # split into two packets by the connection
    for i in range(12):
        payloads = [b"\x00" + rng.randbytes(rng.randint(1, 300_000)) for _ in range(rng.randint(1, 8))]
        span = _framed(payloads, conn.sequence)
        expected.append(span)
        conn.write_shared(span, len(payloads))
        if i % 3 == 1:
            tail = [b"\x00" + big] if i == 4 else [b"\x00" + rng.randbytes(50)]
            expected.append(_framed(tail, conn.sequence))
            conn.write_packets(tail)
    want = b"".join(expected)
    got = bytearray()

    async def slow_reader() -> None:
        while len(got) < len(want):
            got.extend(await pair.reader.read(rng.randint(1, 1 << 20)))
            if rng.random() < 0.1:
                await asyncio.sleep(0.001)

    await asyncio.wait_for(asyncio.gather(slow_reader(), conn.drain()), 30)
    assert bytes(got) == want


async def test_drain_waits_for_a_replica_that_does_not_read(pair: Pair) -> None:
    conn = pair.conn
    span = os.urandom(32 * 1024 * 1024)  # more than the socket buffers of both ends hold
    conn.write_shared(span, 1)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(conn.drain(), 0.3)
    got = 0
    drained = asyncio.ensure_future(conn.drain())
    while got < len(span):
        got += len(await asyncio.wait_for(pair.reader.read(1 << 20), 5))
    await asyncio.wait_for(drained, 5)
    assert got == len(span)


async def test_close_flushes_what_is_queued(pair: Pair) -> None:
    conn = pair.conn
    span = os.urandom(24 * 1024 * 1024)
    conn.write_shared(span, 1)
    conn.write_packets([b"\xfe\x00\x00\x02\x00"])  # EOF behind the span
    conn.close()
    data = await asyncio.wait_for(pair.reader.read(), 30)  # until the server closes
    assert data == span + _framed([b"\xfe\x00\x00\x02\x00"], 1)


async def test_a_vanished_replica_fails_the_writer(pair: Pair) -> None:
    conn = pair.conn
    pair.writer.transport.abort()  # RST: the replica is gone
    span = os.urandom(4 * 1024 * 1024)
    with pytest.raises(ConnectionFailed):
        for _ in range(100):
            conn.write_shared(span, 1)
            await asyncio.wait_for(conn.drain(), 5)
    assert conn.closed


async def test_small_tail_does_not_block_drain(pair: Pair) -> None:
    conn = pair.conn
    conn.write_shared(os.urandom(DIRECT_LOW_WATER // 2), 1)
    await asyncio.wait_for(conn.drain(), 1)  # below the low-water mark: no wait for the reader


@pytest.mark.parametrize("algorithm", [Algorithm.ZLIB, Algorithm.ZSTD], ids=lambda a: a.value)
async def test_compressed_writes_keep_order_and_sequence_ids(pair: Pair, algorithm: Algorithm) -> None:
    """Compression in the offload threads: what arrives inflates to exactly what was written, in
    order, and the compressed packets count from where the connection set its sequence."""
    rng = random.Random(2)
    conn = pair.conn
    conn.write_packets([b"\x00ok"])  # the login's OK: plain, before compression starts
    conn.start_compression(Compression.default(algorithm))
    conn.sequence = 1
    expected = []
    shared = [_framed([b"\x00" + bytes([i]) * rng.randint(1, 400_000)], 1) for i in range(6)]
    for i in range(24):
        span = shared[i % len(shared)]  # the same buffers again: their compressed pieces are shared
        expected.append(span)
        conn.write_shared(span, 1)
        if i % 4 == 3:
            tail = [b"\x00" + rng.randbytes(rng.randint(1, 100))]
            expected.append(_framed(tail, conn.sequence))
            conn.write_packets(tail)
            conn.sequence = 1  # as after a semi-sync ack request: the compressed count restarts too
    await asyncio.wait_for(conn.drain(), 30)
    assert (await pair.reader.readexactly(7)) == _framed([b"\x00ok"], 0)
    inflate = CompressedPacketReader(Compression.default(algorithm))
    got = bytearray()
    seqs = []
    want = b"".join(expected)
    while len(got) < len(want):
        header = await asyncio.wait_for(pair.reader.readexactly(7), 10)
        seqs.append(header[3])
        body = await pair.reader.readexactly(int.from_bytes(header[:3], "little"))
        got += b"".join(inflate.feed(header + body))
    assert bytes(got) == want
    assert seqs[:6] == [1, 2, 3, 4, 5, 1]  # four spans, the tail, then the count restarted


# -- TLS ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_contexts(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    cert, key = self_signed_pair(tmp_path_factory.mktemp("tls"))
    client = ssl.create_default_context()
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    return server_ssl_context(cert, key), client


async def _tls_pairs(count: int, contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> tuple[list[Pair], asyncio.Server]:
    """``count`` connections upgraded to TLS as a MySQL client does it (SSLRequest, then the handshake)."""
    server_ctx, client_ctx = contexts
    loop = asyncio.get_running_loop()
    accepted: asyncio.Queue[ServerConnection] = asyncio.Queue()
    server = await loop.create_server(lambda: ServerProtocol(1 << 20, accepted.put_nowait), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    request = _framed([SSLRequest(Capability.SSL | Capability.PROTOCOL_41).build()], 1)
    pairs = []
    for _ in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        conn = await asyncio.wait_for(accepted.get(), 5)
        writer.write(request)
        assert is_ssl_request(await asyncio.wait_for(conn.read_packet(), 5))
        await asyncio.wait_for(asyncio.gather(conn.start_tls(server_ctx), writer.start_tls(client_ctx)), 10)
        pairs.append(Pair(conn, reader, writer))
    return pairs, server


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def test_tls_keeps_order_for_a_slow_reader(tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    (pair,), server = await _tls_pairs(1, tls_contexts)
    try:
        rng = random.Random(2)
        conn = pair.conn
        expected = []
        for i in range(6):
            span = rng.randbytes(17 * 1024 * 1024 if i == 2 else rng.randint(1, 1_500_000))
            expected.append(span)
            conn.write_shared(span, 1)
            expected.append(_framed([b"\x00" + bytes([i])], conn.sequence))
            conn.write_packets([b"\x00" + bytes([i])])
        want = b"".join(expected)
        got = bytearray()
        while len(got) < len(want):
            got.extend(await asyncio.wait_for(pair.reader.read(rng.randint(1, 1 << 18)), 10))
            if rng.random() < 0.05:
                await asyncio.sleep(0.002)
        await asyncio.wait_for(conn.drain(), 5)
        assert bytes(got) == want
    finally:
        for p in [pair]:
            p.conn.abort()
            p.writer.close()
        server.close()


async def test_tls_replicas_that_do_not_read_hold_a_chunk_not_the_span(
        tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    # Thirty TLS replicas behind on a 17 MiB event grew the server by 1.7 GB when every one of them
    # held the whole event encrypted. Now the span stays shared and a replica's connection holds at
    # most a chunk of ciphertext beyond what the kernel took.
    pairs, server = await _tls_pairs(6, tls_contexts)
    try:
        span = os.urandom(17 * 1024 * 1024)
        before = _rss()
        for pair in pairs:
            pair.conn.write_shared(span, 1)
        for pair in pairs:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(pair.conn.drain(), 0.5)  # nobody reads: the dump waits
        grown = _rss() - before
        for pair in pairs:
            writer = pair.conn._protocol.writer
            assert writer is not None
            assert writer.pending_bytes - writer._queued <= TLS_CHUNK + 16 * 1024  # ciphertext held
        assert grown < 48 * 1024 * 1024, f"the server grew by {grown >> 20} MiB for 6 stalled TLS replicas"
        got = bytearray()  # and the stalled replica still gets every byte once it reads
        while len(got) < len(span):
            got.extend(await asyncio.wait_for(pairs[0].reader.read(1 << 20), 10))
        assert bytes(got) == span
    finally:
        for pair in pairs:
            pair.conn.abort()
            pair.writer.close()
        server.close()
