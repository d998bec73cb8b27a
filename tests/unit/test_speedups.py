"""The compiled relay loops (binhub/_speedups/_relay.c) against their pure twin, on real binlogs.

Every test runs over both implementations (the C one only where it was built): the same events
framed out of the same dump stream however it is chunked, the same type bytes, marks and CRC
verdict for every batch, corrupted CRCs included.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest

from binhub import _speedups
from binhub._speedups import IMPLEMENTATIONS, pure
from binhub.binlog.constants import EventType
from binhub.net import client as client_module
from binhub.net.client import _UpstreamProtocol
from binhub.relay.ingest import _SLOW_TYPE_TABLE
from binhub.wire.constants import MAX_PACKET_PAYLOAD, SEMISYNC_MAGIC
from binhub.wire.packet import PacketReader, frame_many

from ..conftest import TEST_DATA

MARIADB_FILES = sorted((TEST_DATA / "binlog" / "mariadb-10.11").glob("mysql-bin.*"))
IMPL_NAMES = sorted(IMPLEMENTATIONS)


@pytest.fixture(params=IMPL_NAMES)
def impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    """One implementation, also patched into the protocol (which imported it by name)."""
    mod = IMPLEMENTATIONS[request.param]
    monkeypatch.setattr(client_module, "frame_dump", mod.frame_dump)
    return mod


def _split(data: bytes) -> list[bytes]:
    """The events of a binlog file (its length field at offset 9); [] for a cut-off file."""
    events, pos = [], 4
    while pos + 19 <= len(data):
        size = int.from_bytes(data[pos + 9:pos + 13], "little")
        if size < 19 or pos + size > len(data):
            return []
        events.append(data[pos:pos + size])
        pos += size
    return events if pos == len(data) else []


def _real_files(shared: Path | None) -> list[list[bytes]]:
    paths = list(MARIADB_FILES)
    if shared is not None:
        paths += sorted(p for p in shared.rglob("*") if p.is_file() and p.read_bytes()[:4] == b"\xfebin")
    out = [_split(p.read_bytes()) for p in paths]
    return [evs for evs in out if evs]


@pytest.fixture(scope="module")
def real_events(request: pytest.FixtureRequest) -> list[list[bytes]]:
    try:
        shared: Path | None = request.getfixturevalue("shared_binlogs")
    except pytest.skip.Exception:
        shared = None
    files = _real_files(shared)
    assert len(files) >= 2
    return files


def _stream(payloads: list[bytes], seq: int = 1) -> bytes:
    return b"".join(frame_many(payloads, seq)[0])


def _feed(stream: bytes, rng: random.Random, *, semisync: bool = False) -> tuple[list[bytes], int, Any]:
    proto = _UpstreamProtocol("test")
    proto.reader.seq = 1
    proto.dumping = True
    proto.semisync = semisync
    got: list[bytes] = []
    acks = pos = 0
    while pos < len(stream):
        n = rng.choice((1, 3, 4, 5, 7, 19, 100, 4096, 65536, rng.randint(1, 300_000)))
        proto.data_received(stream[pos:pos + n])
        pos += n
        if rng.random() < 0.5:
            batch, ack = proto.take_events()
            got += [bytes(e) for e in batch]
            acks += ack
    batch, ack = proto.take_events()
    return got + [bytes(e) for e in batch], acks + ack, proto


def test_both_implementations_are_there_when_built() -> None:
    assert "pure" in IMPLEMENTATIONS
    assert _speedups.NAME in IMPLEMENTATIONS


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler here")
@pytest.mark.skipif(os.environ.get("BINHUB_NO_SPEEDUPS", "") not in ("", "0"), reason="pure path forced")
def test_the_extension_is_built_where_a_compiler_exists() -> None:
    # optional=True would otherwise let a broken build pass silently and the relay run 30% slower.
    assert "c" in IMPLEMENTATIONS, "binhub/_speedups/_relay.c did not build: pip install -e . -v shows why"


@pytest.mark.parametrize("seed", range(4))
async def test_real_files_framed_through_random_chunks(impl: Any, real_events: list[list[bytes]], seed: int) -> None:
    rng = random.Random(seed)
    events = [ev for evs in real_events for ev in evs]
    events.insert(rng.randrange(len(events)), rng.randbytes(MAX_PACKET_PAYLOAD + 10))  # split packets in between
    eof = b"\xfe\x00\x00\x02\x00"
    got, _, proto = _feed(_stream([b"\x00" + e for e in events] + [eof]), rng)
    assert proto.error is None
    assert got == events
    assert [bytes(p) for p in proto.take_all()] == [eof]


async def test_the_fast_path_resumes_after_a_16_mib_event(impl: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """An event of 16 MiB or more goes through the PacketReader; the small events after it must go back
    to the framing loop, not stay on the reader's per-event Python path for the rest of the dump."""
    rng = random.Random(7)
    small = [rng.randbytes(rng.randint(19, 9000)) for _ in range(400)]
    events = [small[0], rng.randbytes(MAX_PACKET_PAYLOAD + 1000), *small]
    stream = _stream([b"\x00" + e for e in events])
    proto = _UpstreamProtocol("test")
    proto.reader.seq = 1
    proto.dumping = True
    fed: list[int] = []
    reader_feed = PacketReader.feed
    monkeypatch.setattr(PacketReader, "feed", lambda self, data: fed.append(len(data)) or reader_feed(self, data))
    chunk = 65536
    for pos in range(0, len(stream), chunk):
        proto.data_received(stream[pos:pos + chunk])
    got, _ = proto.take_events()
    assert [bytes(e) for e in got] == events
    big_chunks = (MAX_PACKET_PAYLOAD + 1005) // chunk + 2
    assert len(fed) <= big_chunks, f"{len(fed)} chunks went to the reader, the big event spans {big_chunks}"


async def test_semisync_real_files(impl: Any, real_events: list[list[bytes]]) -> None:
    rng = random.Random(5)
    events = real_events[0]
    flags = [rng.random() < 0.2 for _ in events]
    payloads = [b"\x00" + bytes((SEMISYNC_MAGIC, int(f))) + e for e, f in zip(events, flags, strict=True)]
    got, acks, proto = _feed(_stream(payloads), rng, semisync=True)
    assert proto.error is None and got == events
    assert (acks > 0) == any(flags)


def test_frame_dump_stops_where_python_must_take_over(impl: Any) -> None:
    ok = _stream([b"\x00" + b"a" * 30, b"\x00" + b"b" * 20])
    err = _stream([b"\xff\x01\x00#HY000x"], seq=3)
    for data, want_pos, want_seq in [
        (ok, len(ok), 3),  # all taken
        (ok + err, len(ok), 3),  # stops at the ERR
        (ok[:-1], 35, 2),  # the second packet is partial
        (ok + _stream([b"\x00b"], seq=9), len(ok), 3),  # bad sequence id
        (ok + b"\x00\x00\x00\x03", len(ok), 3),  # an empty packet
    ]:
        events: list[Any] = []
        pos, seq, ack = impl.frame_dump(memoryview(data), 0, 1, True, MAX_PACKET_PAYLOAD, False, events)
        assert (pos, seq, ack) == (want_pos, want_seq, False)
        assert [bytes(e) for e in events] == [b"a" * 30, b"b" * 20][:len(events)]
    events = []
    big = b"\x00" * 40_000  # above the copy limit: a zero-copy slice in C, the same bytes either way
    pos, seq, _ = impl.frame_dump(memoryview(_stream([b"\x00" + big])), 0, 1, True, 30_000, False, events)
    assert (pos, seq, events) == (0, 1, [])  # at the limit: left to the reader
    pos, seq, _ = impl.frame_dump(memoryview(_stream([b"\x00" + big])), 0, 1, True, 50_000, False, events)
    assert (pos, seq) == (40_005, 2) and [bytes(e) for e in events] == [big]


def test_scan_batch_matches_pure_on_real_files(impl: Any, real_events: list[list[bytes]]) -> None:
    rng = random.Random(11)
    for events in real_events:
        batch: list[Any] = [memoryview(e) if rng.random() < 0.5 else e for e in events]
        for check in (True, False):
            assert impl.scan_batch(batch, _SLOW_TYPE_TABLE, check) == pure.scan_batch(batch, _SLOW_TYPE_TABLE, check)
        types, marks, _ = impl.scan_batch(batch, _SLOW_TYPE_TABLE, True)
        assert types == bytes(e[4] for e in events)
        slow = {EventType.FORMAT_DESCRIPTION, EventType.ROTATE, EventType.STOP, EventType.HEARTBEAT,
                EventType.HEARTBEAT_V2}
        assert marks == bytes(int(e[4] in slow or bool(e[17] & 0x20)) for e in events)


def _with_crc(body: bytes) -> bytes:
    return body + zlib.crc32(body).to_bytes(4, "little")


def test_scan_batch_catches_every_corrupted_crc(impl: Any, real_events: list[list[bytes]]) -> None:
    rng = random.Random(3)
    # Only events that carry a valid CRC (files without checksums, and FDEs, whose CRC skips a flag bit, do not).
    good = [e for evs in real_events for e in evs if zlib.crc32(e) == pure.CRC32_RESIDUE]
    # Every length around the C code's switch from the table to the folding loop, and large ones.
    good += [_with_crc(rng.randbytes(n)) for n in (*range(100, 180), 1000, 5000, 8187, 70_001)]
    assert len(good) > 100
    assert impl.scan_batch(good, _SLOW_TYPE_TABLE, True)[2] is True
    for _ in range(400):
        i = rng.randrange(len(good))
        bad = bytearray(good[i])
        bad[rng.randrange(len(bad))] ^= 1 << rng.randrange(8)
        batch = [*good[:i], bytes(bad) if rng.random() < 0.5 else memoryview(bad), *good[i + 1:]]
        assert impl.scan_batch(batch, _SLOW_TYPE_TABLE, True)[2] is False


def test_scan_batch_short_event_raises_like_indexing(impl: Any) -> None:
    with pytest.raises(IndexError):
        impl.scan_batch([b"\x00" * 19, b"\x00" * 10], _SLOW_TYPE_TABLE, None)


def test_crc32_is_zlibs(impl: Any) -> None:
    rng = random.Random(1)
    data = rng.randbytes(70_000)
    for start in range(17):
        for n in (0, 1, 7, 8, 9, 15, 16, 63, 64, 65, 127, 128, 129, 143, 144, 1000, 4095, 65_000):
            chunk = memoryview(data)[start:start + n]
            assert impl.crc32(chunk) == zlib.crc32(chunk)
    assert impl.crc32(bytearray(data)) == zlib.crc32(data)


@pytest.mark.skipif("c" not in IMPLEMENTATIONS, reason="the C extension is not built")
@pytest.mark.parametrize("allow_avx512", [True, False])
def test_every_crc32_method_of_this_cpu_is_zlibs(allow_avx512: bool) -> None:
    """The C CRC picks its method at import (AVX-512 folding, 128-bit folding, table): each one the CPU
    has is checked, in an interpreter of its own, on every length and alignment around its thresholds."""
    script = (
        "import random, zlib; from binhub._speedups import _relay\n"
        "data = random.Random(5).randbytes(40_000)\n"
        "for start in range(0, 33, 3):\n"
        "    for n in [*range(0, 1100, 5), 4095, 8192, 33_333]:\n"
        "        view = memoryview(data)[start:start + n]\n"
        "        assert _relay.crc32(view) == zlib.crc32(view), (start, n)\n"
        "print(_relay.CRC32_METHOD)\n")
    env = {k: v for k, v in os.environ.items() if k != "BINHUB_NO_AVX512"}
    if not allow_avx512:
        env["BINHUB_NO_AVX512"] = "1"
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() in ({"vpclmulqdq-avx512", "pclmulqdq", "slicing-by-8"} if allow_avx512
                                  else {"pclmulqdq", "slicing-by-8"})


def _ingest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, impl: Any) -> Any:
    """The relay's hot path over a fresh store, with ``impl``'s scan_batch."""
    from binhub.relay import ingest as ingest_module
    from binhub.relay.metrics import RelayMetrics
    from binhub.store.store import BinlogStore

    monkeypatch.setattr(ingest_module, "scan_batch", impl.scan_batch)
    monkeypatch.setattr(ingest_module, "crc32", impl.crc32)
    store = BinlogStore.open(tmp_path / "store")
    return ingest_module.Ingest(store, RelayMetrics())


def _store_in_batches(ingest: Any, name: str, events: list[bytes], rng: random.Random) -> None:
    ingest.store.begin_file(name)
    pos = 0
    while pos < len(events):
        n = rng.randint(1, 40)
        batch: list[Any] = [memoryview(e) for e in events[pos:pos + n]]
        done = 0
        while done < len(batch):
            done, _ = ingest.store_batch(batch, done)
        ingest.store.flush()
        pos += n


@pytest.mark.parametrize("path", MARIADB_FILES, ids=lambda p: p.name)
def test_relay_stores_real_files_identically(impl: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             path: Path) -> None:
    data = path.read_bytes()
    events = _split(data)
    ingest = _ingest(tmp_path, monkeypatch, impl)
    _store_in_batches(ingest, path.name, events, random.Random(path.name))
    ingest.store.close_file()
    stored = (ingest.store.binlog_dir / path.name).read_bytes()
    # The FDE's in-use flag (byte 4 + 17 + 4) depends on how the file was closed; everything else is the same.
    assert len(stored) == len(data) and stored[:25] == data[:25] and stored[26:] == data[26:]
    assert ingest.events == len(events) and ingest.transactions > 0


def test_relay_names_the_corrupted_event(impl: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from binhub.errors import ChecksumMismatch

    events = _split(MARIADB_FILES[0].read_bytes())
    i = len(events) // 2
    offset = 4 + sum(len(e) for e in events[:i])
    bad = bytearray(events[i])
    bad[len(bad) // 2] ^= 0x40
    events[i] = bytes(bad)
    messages = []
    for n, mod in enumerate((impl, pure)):
        ingest = _ingest(tmp_path / str(n), monkeypatch, mod)
        with pytest.raises(ChecksumMismatch) as caught:
            _store_in_batches(ingest, MARIADB_FILES[0].name, events, random.Random(1))
        messages.append(str(caught.value))
        # Nothing of the bad event's run of events was stored: the file ends before it.
        assert ingest.store.position <= offset
    # The same error either way. It names the file and where the run holding the bad event begins
    # (the relay checks a run's CRCs before it appends the run).
    assert messages[0] == messages[1]
    assert f"{MARIADB_FILES[0].name} at offset " in messages[0] and "bad CRC32" in messages[0]


# --------------------------------------------------------------------------- frame_events (the dump side)

def _span(events: list[bytes]) -> bytes:
    return b"".join(events)


@pytest.mark.parametrize("seq", [0, 1, 200])
def test_frame_events_equals_framing_each_event(impl: Any, real_events: list[list[bytes]], seq: int) -> None:
    """A span of a real file framed in one call is what framing its events one by one gives."""
    for events in real_events:
        body = events[1:]  # past the FDE: what the dump's shared spans hold
        framed, packets, count, consumed, nbytes = impl.frame_events(_span(body), seq, -1)
        assert framed == _stream([b"\x00" + e for e in body], seq)
        assert (packets, count, consumed, nbytes) == (len(body), len(body), len(_span(body)), len(_span(body)))


def test_frame_events_stops_at_a_cut_event_and_drops_a_type(impl: Any, real_events: list[list[bytes]]) -> None:
    events = max(real_events, key=len)[1:]
    data = _span(events)
    rng = random.Random(3)
    drop = int(EventType.MARIA_ANNOTATE_ROWS)
    for _ in range(50):
        cut = rng.randrange(len(data) + 1)
        framed, packets, count, consumed, nbytes = impl.frame_events(data[:cut], 7, drop)
        whole, pos = [], 0
        for e in events:
            if pos + len(e) > cut:
                break
            whole.append(e)
            pos += len(e)
        kept = [e for e in whole if e[4] != drop]
        assert consumed == pos, "stops before the first event the span does not hold whole"
        assert (packets, count, nbytes) == (len(kept), len(kept), sum(map(len, kept)))
        assert framed == _stream([b"\x00" + e for e in kept], 7)


@pytest.mark.parametrize("size", [MAX_PACKET_PAYLOAD - 2, MAX_PACKET_PAYLOAD - 1, MAX_PACKET_PAYLOAD,
                                  2 * MAX_PACKET_PAYLOAD - 1, 2 * MAX_PACKET_PAYLOAD + 5])
def test_frame_events_splits_payloads_of_0xffffff_bytes_or_more(impl: Any, size: int) -> None:
    """0x00 + event of 0xFFFFFF bytes or more: full packets, then a shorter one (empty if need be)."""
    events = [_event(100), _event(size), _event(60)]
    framed, packets, count, consumed, nbytes = impl.frame_events(_span(events), 250, -1)
    assert framed == _stream([b"\x00" + e for e in events], 250)
    assert packets == 2 + (size + 1) // MAX_PACKET_PAYLOAD + 1
    assert (count, consumed, nbytes) == (3, sum(map(len, events)), sum(map(len, events)))


def test_frame_events_refuses_a_corrupt_header(impl: Any) -> None:
    bad = bytearray(_event(40))
    bad[9:13] = (5).to_bytes(4, "little")
    with pytest.raises(ValueError, match="offset 40"):
        impl.frame_events(_event(40) + bytes(bad), 0, -1)


def _event(size: int) -> bytes:
    """A syntactically whole event of ``size`` bytes (type 0x10, XID), the rest random."""
    return bytes(4) + b"\x10" + bytes(4) + size.to_bytes(4, "little") + random.Random(size).randbytes(size - 13)
