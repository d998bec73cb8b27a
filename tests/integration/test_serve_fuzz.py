"""Bad input at binhub's server port: malformed packets, truncated handshakes, oversized lengths,
unknown commands, and a fuzz run of more than 10 000 random and mutated packets against a
``binhub serve`` subprocess (127.0.0.1 only, bounded in time), after which the server still answers
a real client and its memory (RSS) stayed flat.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from binhub.sandbox.binhub_process import BinhubProcess
from binhub.wire import auth
from binhub.wire.commands import ComBinlogDump, ComBinlogDumpGtid, ComQuery, ComRegisterSlave
from binhub.wire.constants import Capability
from binhub.wire.handshake import HandshakeResponse41, HandshakeV10
from binhub.wire.messages import ErrPacket
from tests.integration.relayutil import start_serve
from tests.integration.serveutil import (
    PASSWORD,
    USER,
    ServerThread,
    mariadb_store,
    packet,
    raw_connect,
    read_packet,
)
from tests.integration.workload import wait_until
from tests.unit.test_serve_sql import CLIENTS, MARIADB_1011_REPLICA, MYSQL_80_REPLICA

CAPS = Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION | Capability.PLUGIN_AUTH | Capability.LONG_PASSWORD
FUZZ_PACKETS = 10_000
FUZZ_DEADLINE = 120.0  # seconds; the run normally takes a fraction of this
RSS_GROWTH_LIMIT = 24 * 1024 * 1024


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    store = mariadb_store(tmp_path / "store")
    st = ServerThread(store, tls=False, key_dir=tmp_path / "keys")
    yield st
    st.stop()
    store.close()


def login(port: int) -> object:
    s = raw_connect(port)
    _, payload = read_packet(s)
    greeting = HandshakeV10.parse(payload)
    resp = HandshakeResponse41(CAPS, USER, auth.scramble_native_password(PASSWORD.encode(), greeting.scramble),
                               auth_plugin="mysql_native_password")
    s.sendall(packet(resp.build(), 1))
    _, ok = read_packet(s)
    assert ok[0] == 0, ok
    return s


def command(s: object, payload: bytes) -> bytes:
    s.sendall(packet(payload, 0))  # type: ignore[attr-defined]
    return read_packet(s)[1]  # type: ignore[arg-type]


def still_serves(port: int) -> None:
    with pymysql.connect(host="127.0.0.1", port=port, user=USER, password=PASSWORD, ssl_disabled=True,
                         connect_timeout=10) as conn:
        cur = conn.cursor()
        cur.execute("SELECT @@server_id")
        assert cur.fetchone()[0] in (77, 1001)


# ------------------------------------------------------------------------------ deterministic cases

def test_unknown_and_malformed_commands_keep_the_connection(server: ServerThread) -> None:
    s = login(server.port)
    for payload, code in [(b"\x1b\x00\x00", 1047), (b"\x99junk", 1047), (b"\x04table", 1047),
                          (b"\x15\x01", 1835), (ComRegisterSlave(5).build()[:8], 1835),
                          (b"\x12\x04", 1835), (b"", 1047),
                          # COM_BINLOG_DUMP_GTID is MySQL's: a MariaDB-flavour server does not know it.
                          (b"\x1e\x00", 1047), (ComBinlogDumpGtid(5).build(), 1047)]:
        reply = command(s, payload)
        assert ErrPacket.parse(reply).code == code, payload
        assert command(s, b"\x0e")[0] == 0  # COM_PING still answered
    reply = command(s, ComQuery("SELEKT 1").build())
    err = ErrPacket.parse(reply)
    assert err.code == 1064 and "SELEKT 1" in err.message
    assert command(s, ComRegisterSlave(5, "h", port=3306).build())[0] == 0
    s.close()  # type: ignore[attr-defined]
    still_serves(server.port)


def test_stub_dump_and_register_slave(server: ServerThread) -> None:
    s = login(server.port)
    assert command(s, ComRegisterSlave(9, "replica-a", port=3310).build())[0] == 0
    assert server.run(lambda: [(r.server_id, r.host, r.port) for r in server.server.replicas()]) == [
        (9, "replica-a", 3310)]
    # A second registration with the same server_id ends the first (zombie) session.
    s2 = login(server.port)
    assert command(s2, ComRegisterSlave(9, "replica-a", port=3310).build())[0] == 0
    with pytest.raises((ConnectionError, OSError)):
        command(s, b"\x0e")
    reply = command(s2, ComBinlogDump(4, 9, "mariadb-bin.000001").build())
    assert ErrPacket.parse(reply).code == 1236  # the test's stand-in dump
    s2.close()  # type: ignore[attr-defined]


def test_truncated_handshakes_and_oversized_lengths(server: ServerThread) -> None:
    cases = [
        b"",  # connect and leave
        b"\x05\x00\x00",  # half a header
        packet(HandshakeResponse41(CAPS, USER, b"x" * 20).build()[:20], 1),  # truncated payload in a whole packet
        packet(HandshakeResponse41(CAPS, USER, b"x" * 20).build(), 1)[:30],  # a packet cut mid-way
        b"\xff\xff\xff\x01" + b"A" * 100,  # 16 MiB announced before login
        struct.pack("<I", 0x10000 | (1 << 24)) + b"B" * 10,  # above the pre-auth bound
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello without SSLRequest
    ]
    for raw in cases:
        s = raw_connect(server.port)
        read_packet(s)
        if raw:
            s.sendall(raw)
        s.settimeout(1)
        try:
            _, reply = read_packet(s)
            assert reply[0] == 0xFF  # an error, never an OK
        except (ConnectionError, TimeoutError, OSError):
            pass
        s.close()
    still_serves(server.port)


def test_packet_above_max_allowed_packet_after_login(server: ServerThread) -> None:
    s = login(server.port)
    fragment = struct.pack("<I", 0xFFFFFF) + b"\x03" + b"x" * (0xFFFFFF - 1)
    for seq in range(4):  # 4 full fragments: just under 64 MiB, still allowed
        s.sendall(fragment[:3] + bytes([seq]) + fragment[4:])  # type: ignore[attr-defined]
    s.sendall(packet(b"z" * 10, 4))  # type: ignore[attr-defined]  # and over the limit
    s.settimeout(10)  # type: ignore[attr-defined]
    _, reply = read_packet(s)  # type: ignore[arg-type]
    assert ErrPacket.parse(reply).code == 1153
    with pytest.raises((ConnectionError, OSError)):
        read_packet(s)  # type: ignore[arg-type]
    s.close()  # type: ignore[attr-defined]
    still_serves(server.port)


# ------------------------------------------------------------------------------ the fuzz run

def _rss(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", text)
    assert match
    return int(match.group(1)) * 1024


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[BinhubProcess]:
    store = mariadb_store(tmp_path / "store")
    store.close()
    proc = start_serve(tmp_path / "store", tmp_path / "serve.log", user=USER, password=PASSWORD, server_id=77,
                       extra=("--no-tls", "--log-level", "warning"))
    yield proc
    proc.stop()


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(4)
        if op == 0 and b:
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            del b[rng.randrange(len(b)):]
        elif op == 2:
            pos = rng.randrange(len(b) + 1)
            b[pos:pos] = os.urandom(rng.randint(1, 16))
        elif b:
            pos = rng.randrange(len(b))
            b[pos] = rng.choice((0x00, 0xFF, 0xFE, 0xFB, 0xFC, 0xFD))
    return bytes(b)


class Fuzzer:
    def __init__(self, port: int, seed: int) -> None:
        self.port = port
        self.rng = random.Random(seed)
        self.sent = 0
        self.statements = [*MYSQL_80_REPLICA, *MARIADB_1011_REPLICA, *CLIENTS]

    async def _greeting(self, reader: asyncio.StreamReader) -> HandshakeV10:
        head = await reader.readexactly(4)
        return HandshakeV10.parse(await reader.readexactly(int.from_bytes(head[:3], "little")))

    async def pre_auth(self) -> None:
        """Garbage where the HandshakeResponse41 belongs."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            greeting = await self._greeting(reader)
            rng = self.rng
            good = HandshakeResponse41(CAPS | Capability.CONNECT_ATTRS | Capability.CONNECT_WITH_DB, USER,
                                       auth.scramble_native_password(PASSWORD.encode(), greeting.scramble),
                                       database="db", attrs={"_client_name": "fuzz"},
                                       auth_plugin=rng.choice(["mysql_native_password", "caching_sha2_password",
                                                               "x"])).build()
            choice = rng.randrange(4)
            if choice == 0:
                data = os.urandom(rng.randint(1, 300))
            elif choice == 1:
                data = packet(os.urandom(rng.randint(0, 200)), rng.randrange(256))
            elif choice == 2:
                data = packet(_mutate(rng, good), 1)
            else:
                data = struct.pack("<I", rng.randrange(1 << 24) | 1 << 24) + os.urandom(rng.randint(0, 50))
            writer.write(data)
            self.sent += 1
            await self._drain_replies(reader)
        finally:
            writer.close()

    async def post_auth(self, count: int) -> None:
        """Log in, then send ``count`` random or mutated command packets on one connection."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            greeting = await self._greeting(reader)
            resp = HandshakeResponse41(CAPS, USER, auth.scramble_native_password(PASSWORD.encode(), greeting.scramble),
                                       auth_plugin="mysql_native_password")
            writer.write(packet(resp.build(), 1))
            head = await reader.readexactly(4)
            await reader.readexactly(int.from_bytes(head[:3], "little"))
            rng = self.rng
            for _ in range(count):
                kind = rng.randrange(5)
                if kind == 0:
                    payload = bytes([rng.randrange(256)]) + os.urandom(rng.randint(0, 64))
                elif kind == 1:
                    payload = ComQuery(_mutate(rng, rng.choice(self.statements).encode()).decode("utf-8", "replace")).build()
                elif kind == 2:
                    payload = ComQuery(rng.choice(self.statements)).build()
                elif kind == 3:
                    payload = _mutate(rng, ComRegisterSlave(rng.randrange(1, 1 << 32), "h" * rng.randrange(40),
                                                            port=rng.randrange(65536)).build())
                else:
                    payload = bytes([rng.choice([0x02, 0x03, 0x0E, 0x1F, 0x11, 0x16, 0x17, 0x1B, 0xFE])]) \
                        + os.urandom(rng.randint(0, 32))
                if payload[:1] in (b"\x01", b"\x12", b"\x1e"):
                    payload = b"\x0e"  # QUIT and real dumps would end the connection early
                writer.write(packet(payload, 0))
                self.sent += 1
                if not await self._drain_replies(reader, once=True):
                    return
        finally:
            writer.close()

    async def _drain_replies(self, reader: asyncio.StreamReader, once: bool = False) -> bool:
        """Read what the server answers (bounded); False once it closed the connection."""
        try:
            while True:
                data = await asyncio.wait_for(reader.read(65536), 0.05 if not once else 0.5)
                if not data:
                    return False
                if once and len(data) >= 4:
                    # Result sets arrive in several reads; a short pause catches the rest.
                    while await asyncio.wait_for(reader.read(65536), 0.01):
                        pass
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            return True

    async def run(self, total: int, deadline: float) -> None:
        sem = asyncio.Semaphore(16)

        async def one() -> None:
            async with sem:
                if time.monotonic() > deadline or self.sent >= total:
                    return
                try:
                    if self.rng.random() < 0.3:
                        await self.pre_auth()
                    else:
                        await self.post_auth(self.rng.randint(20, 80))
                except (ConnectionError, asyncio.IncompleteReadError, OSError):
                    pass

        while self.sent < total and time.monotonic() < deadline:
            await asyncio.gather(*(one() for _ in range(32)))


def test_fuzz_ten_thousand_packets(serve_process: BinhubProcess) -> None:
    proc, port = serve_process, serve_process.port
    pid = proc.pid
    assert pid is not None and port is not None
    fuzzer = Fuzzer(port, seed=20240611)
    deadline = time.monotonic() + FUZZ_DEADLINE
    asyncio.run(fuzzer.run(1500, deadline))  # warm-up: imports, caches, allocator arenas
    rss_before, fds_before = _rss(pid), _open_fds(pid)
    asyncio.run(fuzzer.run(FUZZ_PACKETS + 1500, deadline))
    assert fuzzer.sent >= FUZZ_PACKETS + 1500, f"only {fuzzer.sent} packets within {FUZZ_DEADLINE}s"
    assert proc.poll() is None, "binhub serve died"
    still_serves(port)
    # Every fuzzed session has ended (its socket is closed) before memory is compared.
    wait_until(lambda: _open_fds(pid) <= fds_before, timeout=30,
               message="binhub serve kept sessions of the fuzz open (more descriptors than before it)")
    growth = _rss(pid) - rss_before
    assert growth < RSS_GROWTH_LIMIT, f"RSS grew by {growth / 1e6:.1f} MB over {fuzzer.sent} packets"
