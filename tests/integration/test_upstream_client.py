"""UpstreamConnection against a real mariadbd: connect, auth, TLS, queries, binlog dump.

The server is a sandbox of its own from the shared ``mariadb_factory`` (so, like every server of
these tests, a missing mariadbd fails under CI=true): the tests give it a TLS certificate, an
ed25519 user and users with other grants, which the shared primary must not get.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import ssl
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pymysql  # type: ignore[import-untyped]
import pytest

from binhub.errors import AuthenticationFailed, ConnectionFailed, EndOfDump, UpstreamError
from binhub.net.client import UpstreamConnection
from binhub.sandbox import Sandbox
from binhub.sandbox.process import free_port
from binhub.wire.constants import BinlogDumpFlag
from tests.integration.conftest import MariadbFactory

REPL_USER, REPL_PASSWORD = "repl_client", "repl-pw"  # not the sandbox's own "repl"
ROTATE_EVENT, FORMAT_DESCRIPTION_EVENT = 4, 15
LOG_EVENT_BINLOG_IN_USE_F, LOG_EVENT_ARTIFICIAL_F = 0x1, 0x20


@dataclass(frozen=True)
class Server:
    """The sandbox these tests connect to, and the certificate its TLS uses."""

    sandbox: Sandbox
    cert: Path

    @property
    def port(self) -> int:
        return self.sandbox.port

    @property
    def socket(self) -> str:
        return str(self.sandbox.socket)

    @property
    def binlog_dir(self) -> Path:
        return self.sandbox.binlog_dir

    def admin(self) -> pymysql.connections.Connection:
        """root over TCP, autocommit, 64 MiB packets."""
        return self.sandbox.connect()


def _write_cert(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "binhub-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "server-cert.pem", directory / "server-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="module")
def mariadb(mariadb_factory: MariadbFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    cert, key = _write_cert(tmp_path_factory.mktemp("upstream-tls"))
    # No fsync per commit: the throughput test commits 100 000 single-row transactions, and nothing
    # here needs the server's own durability.
    sandbox = mariadb_factory("upstream", server_id=1, extra_args=[f"--ssl-cert={cert}", f"--ssl-key={key}",
                                                                    "--innodb-flush-log-at-trx-commit=0"])
    sandbox.execute(
        f"CREATE USER '{REPL_USER}'@'%' IDENTIFIED BY '{REPL_PASSWORD}'",
        f"GRANT REPLICATION SLAVE, BINLOG MONITOR, SELECT, INSERT, CREATE ON *.* TO '{REPL_USER}'@'%'",
        "INSTALL SONAME 'auth_ed25519'",
        "CREATE USER 'edu'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('secret')",
        "CREATE DATABASE binhub_test",
    )
    yield Server(sandbox, cert)
    sandbox.kill()  # nothing else uses it: free its memory for the rest of the session


async def _connect(server: Server, **kw: object) -> UpstreamConnection:
    return await UpstreamConnection.connect("127.0.0.1", server.port, REPL_USER, REPL_PASSWORD, **kw)  # type: ignore[arg-type]


async def test_connect_and_query(mariadb: Server) -> None:
    conn = await _connect(mariadb, attrs={"program_name": "binhub-test"})
    try:
        assert conn.is_mariadb
        assert conn.server_version.startswith("10.")
        assert conn.connection_id > 0
        rs = await conn.query("SELECT 1 AS one, NULL AS nothing, 'héllo' AS s")
        assert rs.columns == ["one", "nothing", "s"]
        assert rs.rows == [("1", None, "héllo")]
        rs = await conn.query("SHOW VARIABLES LIKE 'server_id'")
        assert rs.rows == [("server_id", "1")]
        empty = await conn.query("SELECT 1 FROM DUAL WHERE 1 = 0")
        assert empty.rows == []
        ok = await conn.execute("SET @x = 5")
        assert ok is not None
        with pytest.raises(UpstreamError) as err:
            await conn.query("SELECT * FROM no_such_table")
        assert err.value.code == 1046 or err.value.code == 1146
        # The connection survives an error.
        assert (await conn.query("SELECT @x")).rows == [("5",)]
    finally:
        await conn.close()


async def test_unix_socket_and_database(mariadb: Server) -> None:
    conn = await UpstreamConnection.connect(mariadb.socket, 0, "root", "", database="binhub_test")
    try:
        assert (await conn.query("SELECT DATABASE()")).rows == [("binhub_test",)]
    finally:
        await conn.close()


async def test_large_result_value(mariadb: Server) -> None:
    conn = await _connect(mariadb)
    try:
        rs = await conn.query("SELECT REPEAT('x', 20 * 1024 * 1024) AS big")
        value = rs.rows[0][0]
        assert value is not None and len(value) == 20 * 1024 * 1024
    finally:
        await conn.close()


async def test_wrong_password(mariadb: Server) -> None:
    with pytest.raises(AuthenticationFailed) as err:
        await UpstreamConnection.connect("127.0.0.1", mariadb.port, REPL_USER, "wrong")
    assert err.value.code == 1045
    assert f"'{REPL_USER}'@" in err.value.server_message


async def test_unreachable_port() -> None:
    port = free_port()
    with pytest.raises(ConnectionFailed) as err:
        await UpstreamConnection.connect("127.0.0.1", port, "u", "p", connect_timeout=5)
    assert f"cannot connect to upstream 127.0.0.1:{port}" in str(err.value)
    assert err.value.retryable


async def test_unsupported_plugin(mariadb: Server) -> None:
    with pytest.raises(AuthenticationFailed) as err:
        await UpstreamConnection.connect("127.0.0.1", mariadb.port, "edu", "secret")
    assert "client_ed25519" in str(err.value)
    assert "not support" in str(err.value)


async def test_tls(mariadb: Server) -> None:
    ctx = ssl.create_default_context(cafile=str(mariadb.cert))
    conn = await _connect(mariadb, ssl=ctx)
    try:
        assert conn.tls
        rs = await conn.query("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        assert rs.rows[0][1]
        big = await conn.query("SELECT LENGTH(REPEAT('y', 17 * 1024 * 1024))")
        assert big.rows == [(str(17 * 1024 * 1024),)]
    finally:
        await conn.close()


async def test_tls_bad_ca(mariadb: Server, tmp_path: Path) -> None:
    ctx = ssl.create_default_context()  # system CAs do not know our self-signed cert
    with pytest.raises(ConnectionFailed, match="TLS"):
        await _connect(mariadb, ssl=ctx)


def _header(event: bytes | memoryview) -> tuple[int, int, int, int]:
    """(type, size, log_pos, flags) of a binlog event."""
    _ts, type_code, _sid, size, log_pos, flags = struct.unpack_from("<IBIIIH", event, 0)
    return type_code, size, log_pos, flags


async def _dump_file(server: Server, file: str) -> list[bytes]:
    """Events of ``file`` via COM_BINLOG_DUMP (NON_BLOCK), preamble included, up to its end."""
    conn = await _connect(server)
    events: list[bytes] = []
    try:
        await conn.execute("SET @master_binlog_checksum = @@global.binlog_checksum")
        await conn.execute("SET @mariadb_slave_capability = 4")
        await conn.register_replica(1001, host="test", port=3306)
        # MariaDB only sends ANNOTATE_ROWS events (which are in the file) when asked to.
        await conn.start_binlog_dump(file, 4, 1001, BinlogDumpFlag.NON_BLOCK | BinlogDumpFlag.SEND_ANNOTATE_ROWS)
        with pytest.raises(EndOfDump):
            while True:
                for ev in await conn.read_events():
                    events.append(bytes(ev))
        # A server ends the connection after a dump (COM_BINLOG_DUMP acts as a fake COM_QUIT).
        with pytest.raises(ConnectionFailed):
            await conn.query("SELECT 2")
    finally:
        await conn.close()
    return events


def _file_events(events: list[bytes]) -> list[bytes]:
    """The events of the first file: drop the artificial preamble, stop after the file's real ROTATE."""
    t, _, _, flags = _header(events[0])
    assert t == ROTATE_EVENT and flags & LOG_EVENT_ARTIFICIAL_F
    out = []
    for ev in events[1:]:
        out.append(ev)
        t, _, _, flags = _header(ev)
        if t == ROTATE_EVENT and not flags & LOG_EVENT_ARTIFICIAL_F:
            break
    return out


def _clear_in_use(file_bytes: bytes) -> bytes:
    """The file as a dump sends it: the FDE at offset 4 with LOG_EVENT_BINLOG_IN_USE_F cleared."""
    b = bytearray(file_bytes)
    flags = struct.unpack_from("<H", b, 4 + 17)[0]
    struct.pack_into("<H", b, 4 + 17, flags & ~LOG_EVENT_BINLOG_IN_USE_F)
    return bytes(b)


async def test_binlog_dump_matches_file(mariadb: Server) -> None:
    with mariadb.admin() as conn, conn.cursor() as cur:
        cur.execute("SHOW BINARY LOGS")
        first = cur.fetchall()[0][0]
        cur.execute("CREATE TABLE IF NOT EXISTS binhub_test.small (id INT PRIMARY KEY, v VARCHAR(100))")
        for i in range(50):
            cur.execute("REPLACE INTO binhub_test.small VALUES (%s, %s)", (i, "v" * i))
    # Snapshot what the stream will cover: everything up to the current end of the active file.
    events = await _dump_file(mariadb, first)
    t, _, _, _ = _header(events[1])
    assert t == FORMAT_DESCRIPTION_EVENT
    file_events = _file_events(events)
    stream = b"".join(file_events)
    on_disk = (mariadb.binlog_dir / first).read_bytes()
    assert on_disk[:4] == b"\xfebin"
    # The FDE in the stream never carries the in-use flag (the file on disk does while it is active).
    assert not _header(file_events[0])[3] & LOG_EVENT_BINLOG_IN_USE_F
    expected = _clear_in_use(on_disk)[4:4 + len(stream)]
    assert stream == expected
    # Contiguity: every event's log_pos is where the next one starts.
    pos = 4
    for ev in file_events:
        _, size, log_pos, _ = _header(ev)
        assert size == len(ev)
        pos += size
        assert log_pos == pos


async def test_big_row_event_intact(mariadb: Server) -> None:
    blob = os.urandom(20 * 1024 * 1024)
    with mariadb.admin() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS binhub_test.big (id INT PRIMARY KEY, b LONGBLOB)")
        cur.execute("INSERT INTO binhub_test.big VALUES (1, %s)", (blob,))
        cur.execute("FLUSH BINARY LOGS")
        cur.execute("SHOW BINARY LOGS")
        logs = [row[0] for row in cur.fetchall()]
    closed = logs[-2]  # the file that holds the big row, now complete
    events = await _dump_file(mariadb, closed)
    file_events = _file_events(events)
    stream = b"".join(file_events)
    on_disk = (mariadb.binlog_dir / closed).read_bytes()
    assert stream == on_disk[4:]
    # The ANNOTATE_ROWS event (the statement, with the blob as hex) is big too; the rows event
    # carries the raw bytes.
    rows = [ev for ev in file_events if _header(ev)[0] in (23, 30) and len(ev) > 20 * 1024 * 1024]
    assert len(rows) == 1 and blob in rows[0]


async def test_semisync_not_enabled(mariadb: Server) -> None:
    conn = await _connect(mariadb)
    try:
        assert await conn.enable_semisync() is False
        assert conn.semisync is False
    finally:
        await conn.close()


async def test_dump_error_is_upstream_error(mariadb: Server) -> None:
    conn = await _connect(mariadb)
    try:
        await conn.execute("SET @master_binlog_checksum = @@global.binlog_checksum")
        await conn.start_binlog_dump("mysql-bin.999999", 4, 1002, BinlogDumpFlag.NON_BLOCK)
        with pytest.raises(UpstreamError) as err:
            await conn.read_events()
        assert err.value.code == 1236
    finally:
        await conn.close()


async def test_connection_closed_during_dump(mariadb: Server) -> None:
    conn = await _connect(mariadb)
    try:
        await conn.execute("SET @master_binlog_checksum = @@global.binlog_checksum")
        await conn.register_replica(1003)
        await conn.start_binlog_dump("", 4, 1003)  # blocking dump from the current position
        with mariadb.admin() as admin, admin.cursor() as cur:
            cur.execute(f"KILL {conn.connection_id}")
        with pytest.raises(ConnectionFailed):
            for _ in range(100):
                await asyncio.wait_for(conn.read_events(), 10)
    finally:
        await conn.close()


async def _measure_dump(server: Server, start_file: str) -> tuple[int, int, float]:
    """(bytes, events, seconds) of a NON_BLOCK dump from ``start_file`` to the end of the binlog."""
    conn = await _connect(server)
    try:
        await conn.execute("SET @master_binlog_checksum = @@global.binlog_checksum")
        await conn.execute("SET @mariadb_slave_capability = 4")
        await conn.register_replica(1004)
        await conn.start_binlog_dump(start_file, 4, 1004, BinlogDumpFlag.NON_BLOCK)
        total = n_events = 0
        t0 = time.perf_counter()
        with pytest.raises(EndOfDump):
            while True:
                events = await conn.read_events()
                n_events += len(events)
                for ev in events:
                    total += len(ev)
        return total, n_events, time.perf_counter() - t0
    finally:
        await conn.close()


def _new_binlog(cur: pymysql.cursors.Cursor) -> str:
    cur.execute("FLUSH BINARY LOGS")
    cur.execute("SHOW BINARY LOGS")
    return str(cur.fetchall()[-1][0])


async def test_read_events_throughput(mariadb: Server) -> None:
    """read_events must keep up with a relay writing at disk speed (target: >= 200 MB/s on loopback)."""
    with mariadb.admin() as conn, conn.cursor() as cur:
        cur.execute("USE binhub_test")  # the SEQUENCE engine tables live in the current database
        cur.execute("CREATE TABLE IF NOT EXISTS bulk (id INT PRIMARY KEY, v VARCHAR(1000))")
        cur.execute("CREATE TABLE IF NOT EXISTS tiny (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(100))")
        big_file = _new_binlog(cur)
        # ~200 MB of ~8 KB row events.
        for chunk in range(20):
            cur.execute("INSERT INTO bulk SELECT seq, REPEAT(CHAR(65 + seq % 26), 1000) "
                        f"FROM seq_{chunk * 10000 + 1}_to_{(chunk + 1) * 10000}")
        small_file = _new_binlog(cur)
        # Small events: one TABLE_MAP + one WRITE_ROWS (+ ANNOTATE) per statement, ~100 bytes each.
        cur.execute("BEGIN NOT ATOMIC FOR i IN 1..100000 DO INSERT INTO tiny (v) VALUES (REPEAT('t', 60)); "
                    "END FOR; END")
    total, n_events, elapsed = await _measure_dump(mariadb, big_file)
    rate = total / elapsed / 1e6
    print(f"\nread_events, large events: {total / 1e6:.0f} MB, {n_events} events, {elapsed:.2f}s = {rate:.0f} MB/s")
    assert total > 150e6
    assert rate > 50  # loose floor for busy CI machines; the figure printed above is the measurement
    total, n_events, elapsed = await _measure_dump(mariadb, small_file)
    print(f"read_events, small events: {total / 1e6:.0f} MB, {n_events} events, {elapsed:.2f}s = "
          f"{total / elapsed / 1e6:.0f} MB/s, {n_events / elapsed / 1e3:.0f}k events/s")


# --- a tiny in-test server: caching_sha2 full auth over RSA, semi-sync framing -----------------

class _FakePrimary:
    """Speaks just enough server-side protocol (built from binhub.wire) for one scripted session."""

    def __init__(self, password: bytes, events: list[tuple[bytes, bool]]) -> None:
        from binhub.wire.auth import generate_rsa_key_pair

        self.password = password
        self.events = events
        self.private, self.public = generate_rsa_key_pair()
        self.acks: list[tuple[str, int]] = []
        self.dump_flags = -1
        self.done = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from binhub.wire import auth
        from binhub.wire.commands import ComBinlogDump, SemisyncAck, add_semisync_header
        from binhub.wire.constants import Capability
        from binhub.wire.handshake import AuthMoreData, HandshakeResponse41, HandshakeV10
        from binhub.wire.messages import EofPacket, OkPacket, build_text_result_set
        from binhub.wire.packet import PacketReader, frame

        packets = PacketReader(check_seq=False)
        queue: list[bytes] = []

        async def recv() -> tuple[bytes, int]:
            while not queue:
                data = await reader.read(65536)
                assert data, "client closed"
                queue.extend(bytes(p) for p in packets.feed(data))
            return queue.pop(0), packets.seq

        def send(payload: bytes, seq: int) -> int:
            data, nxt = frame(payload, seq)
            writer.write(data if isinstance(data, bytes) else b"".join(data))
            return nxt

        scramble = bytes(range(100, 120))
        caps = Capability(0xDFFFF7FF) & ~Capability.SSL
        seq = send(HandshakeV10("8.0.36-fake", 5, scramble, caps, 255,
                                auth_plugin="caching_sha2_password").build(), 0)
        payload, seq = await recv()
        resp = HandshakeResponse41.parse(payload)
        assert resp.user == "repl"
        # Pretend the fast-auth cache is cold: demand full authentication.
        seq = send(AuthMoreData(bytes((auth.SHA2_PERFORM_FULL_AUTH,))).build(), seq)
        payload, seq = await recv()
        assert payload == b"\x02"
        seq = send(AuthMoreData(self.public).build(), seq)
        payload, seq = await recv()
        ok_caps = resp.capabilities
        if auth.rsa_decrypt_password(self.private, payload, scramble) != self.password:
            from binhub.wire.messages import ErrPacket
            send(ErrPacket(1045, "28000", "Access denied for user 'repl'@'localhost'").build(ok_caps), seq)
            await writer.drain()
            writer.close()
            return
        send(OkPacket().build(ok_caps), seq)
        while True:
            payload, _ = await recv()
            if payload[0] == 0x03:  # COM_QUERY
                sql = payload[1:].decode()
                if sql.startswith("SHOW VARIABLES"):
                    seq = 1
                    for p in build_text_result_set(["Variable_name", "Value"],
                                                   [("rpl_semi_sync_master_enabled", "ON")], ok_caps):
                        seq = send(p, seq)
                else:
                    send(OkPacket().build(ok_caps), 1)
            elif payload[0] == 0x12:  # COM_BINLOG_DUMP
                self.dump_flags = ComBinlogDump.parse(payload).flags
                seq = 1
                for event, need_ack in self.events:
                    seq = send(b"\x00" + add_semisync_header(event, need_ack), seq)
                await writer.drain()
                payload, _ = await recv()  # the ack, sent as its own exchange
                ack = SemisyncAck.parse(payload)
                self.acks.append((ack.filename, ack.position))
                send(EofPacket().build(ok_caps) if not ok_caps & Capability.DEPRECATE_EOF
                     else OkPacket().build(ok_caps, header=0xFE), seq)
                await writer.drain()
                self.done.set()
                writer.close()
                return
            await writer.drain()


async def test_fake_primary_caching_sha2_rsa_and_semisync() -> None:
    big = os.urandom(17 * 1024 * 1024)  # crosses the 16 MiB packet split with the semi-sync prefix
    events = [(b"E1" * 10, False), (big, False), (b"E3-commit", True)]
    fake = _FakePrimary(b"s3cret", events)
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        conn = await UpstreamConnection.connect("127.0.0.1", port, "repl", "s3cret")
        assert conn.server_version == "8.0.36-fake" and not conn.is_mariadb
        assert await conn.enable_semisync() is True and conn.semisync
        await conn.start_binlog_dump("binlog.000001", 4, 99, BinlogDumpFlag.NON_BLOCK)
        got: list[bytes] = []
        while len(got) < 3:
            got += [bytes(e) for e in await conn.read_events()]
        assert got == [e for e, _ in events]
        assert conn.last_ack_requested
        await conn.send_semisync_ack("binlog.000001", 12345)
        with pytest.raises(EndOfDump):
            await conn.read_events()
        await asyncio.wait_for(fake.done.wait(), 5)
        assert fake.acks == [("binlog.000001", 12345)]
        assert fake.dump_flags == BinlogDumpFlag.NON_BLOCK
        await conn.close()
        with pytest.raises(AuthenticationFailed) as err:
            await UpstreamConnection.connect("127.0.0.1", port, "repl", "wrong")
        assert err.value.code == 1045
    finally:
        server.close()
        await server.wait_closed()


def test_the_mysql_sinks_connections_use_tls_where_the_server_offers_it(mariadb: Server) -> None:
    # They share one TLS context (PyMySQL would make one per connection, 17 ms of CPU each), and
    # still speak TLS to a server that offers it, as PyMySQL does unasked.
    from binhub.sinks.mysql.connection import Downstream
    from binhub.sinks.mysql.dsn import MysqlTarget

    connections = [Downstream(MysqlTarget("127.0.0.1", mariadb.port, REPL_USER, REPL_PASSWORD)) for _ in range(2)]
    try:
        for downstream in connections:
            downstream.connect()
            assert downstream.fetch("SHOW SESSION STATUS LIKE 'Ssl_cipher'")[0][1]
    finally:
        for downstream in connections:
            downstream.close()
