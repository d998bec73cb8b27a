"""The upstream protocol's dump fast path frames events straight out of received chunks.

Whatever way the byte stream is cut into chunks, the events that come out must be exactly the
ones that went in, in order, with ERR/EOF left in the queue behind them; packets of 16 MiB and
more (joined by the PacketReader) and semi-sync headers included. Every test runs over both
implementations of the framing loop (binhub._speedups: the C extension, where built, and pure).
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from binhub._speedups import IMPLEMENTATIONS
from binhub.errors import MalformedPacket
from binhub.net import client as client_module
from binhub.net.client import _UpstreamProtocol
from binhub.wire.constants import MAX_PACKET_PAYLOAD, SEMISYNC_MAGIC
from binhub.wire.packet import frame_many


@pytest.fixture(autouse=True, params=sorted(IMPLEMENTATIONS))
def framing_impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(client_module, "frame_dump", IMPLEMENTATIONS[request.param].frame_dump)
    return str(request.param)


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.paused = False
        self.closed = False

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def _stream(payloads: list[bytes], seq: int = 1) -> bytes:
    return b"".join(frame_many(payloads, seq)[0])


def _protocol(semisync: bool = False) -> tuple[_UpstreamProtocol, _Transport]:
    proto = _UpstreamProtocol("test")
    transport = _Transport()
    proto.connection_made(transport)
    proto.reader.seq = 1  # the dump's first packet follows the command (sequence id 0)
    proto.dumping = True
    proto.semisync = semisync
    return proto, transport


def _chunks(data: bytes, sizes: Any) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        n = next(sizes)
        out.append(data[pos:pos + n])
        pos += n
    return out


def _events(rng: random.Random) -> list[bytes]:
    events = [rng.randbytes(rng.choice((19, 27, 40, 300, 8000, 70000))) for _ in range(300)]
    # Around the 16 MiB split: the OK byte makes the payload one longer than the event.
    events[50] = rng.randbytes(MAX_PACKET_PAYLOAD - 2)  # payload 0xFFFFFE: one packet
    events[120] = rng.randbytes(MAX_PACKET_PAYLOAD - 1)  # payload 0xFFFFFF: two packets, the last empty
    events[200] = rng.randbytes(17 * 1024 * 1024)  # two packets
    return events


def _sizes(kind: str, rng: random.Random) -> Any:
    while True:
        if kind == "random":
            yield rng.randint(1, 100_000)
        elif kind == "tiny":
            yield rng.randint(1, 9)
        else:
            yield int(kind)


@pytest.mark.parametrize("chunking", ["random", "tiny", "4", "5", "65536", "262144"])
async def test_events_survive_any_chunking(chunking: str) -> None:
    rng = random.Random(chunking)
    events = _events(rng)
    if chunking in ("tiny", "4", "5"):
        events = [e for e in events if len(e) < 100_000]  # 16 MiB in chunks of a few bytes takes too long
    eof = b"\xfe\x00\x00\x02\x00"
    stream = _stream([b"\x00" + e for e in events] + [eof])
    proto, _ = _protocol()
    got: list[bytes] = []
    for chunk in _chunks(stream, _sizes(chunking, rng)):
        proto.data_received(chunk)
        if rng.random() < 0.3:
            got += [bytes(e) for e in proto.take_events()[0]]
    got += [bytes(e) for e in proto.take_events()[0]]
    assert proto.error is None
    assert len(got) == len(events) and got == events
    assert list(proto.take_all()) == [eof]  # what ends the dump is left for read_events to raise


async def test_semisync_headers_are_stripped_and_acks_noted() -> None:
    rng = random.Random(7)
    events = [rng.randbytes(rng.randint(19, 5000)) for _ in range(200)]
    events[100] = rng.randbytes(17 * 1024 * 1024)
    need_ack = {10, 100, 199}
    payloads = [b"\x00" + bytes((SEMISYNC_MAGIC, 1 if i in need_ack else 0)) + e for i, e in enumerate(events)]
    proto, _ = _protocol(semisync=True)
    got: list[bytes] = []
    acks = 0
    for chunk in _chunks(_stream(payloads), _sizes("random", rng)):
        proto.data_received(chunk)
        batch, ack = proto.take_events()
        got += [bytes(e) for e in batch]
        acks += ack
    assert got == events
    assert 1 <= acks <= len(need_ack)


async def test_error_packet_after_events_waits_in_the_queue() -> None:
    err = b"\xff\x34\x12#HY000boom"
    stream = _stream([b"\x00" + b"e" * 30, b"\x00" + b"f" * 40, err, b"\x00" + b"late" * 10])
    proto, _ = _protocol()
    proto.data_received(stream)
    events, _ = proto.take_events()
    assert [bytes(e) for e in events] == [b"e" * 30, b"f" * 40]
    assert [bytes(p) for p in proto.take_all()] == [err, b"\x00" + b"late" * 10]


async def test_bad_sequence_id_fails_the_connection() -> None:
    good = _stream([b"\x00" + b"a" * 25])
    bad = _stream([b"\x00" + b"b" * 25], seq=9)
    proto, transport = _protocol()
    proto.data_received(good + bad)
    assert isinstance(proto.error, MalformedPacket)
    assert transport.closed
    assert [bytes(e) for e in proto.take_events()[0]] == [b"a" * 25]


async def test_backpressure_counts_only_complete_packets() -> None:
    proto, transport = _protocol()
    big = _stream([b"\x00" + b"x" * 1000] * 80_000)  # ~80 MB of complete packets
    proto.data_received(big[:-10])  # the last packet is incomplete
    assert transport.paused
    events, _ = proto.take_events()
    assert len(events) == 80_000 - 1 and not transport.paused
    proto.data_received(big[-10:])
    assert [bytes(e) for e in proto.take_events()[0]] == [b"x" * 1000]
    assert proto.queued_bytes == 0
