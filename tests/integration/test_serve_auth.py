"""binhub's server as independent clients see it: handshake, auth (both plugins, fast and full,
with and without TLS), failed logins, and the SQL a relay chaining from binhub sends.

Clients: PyMySQL, mysql-connector-python (pure and C extension), the ``mariadb`` CLI and binhub's
own UpstreamConnection. Servers listen on 127.0.0.1, port 0.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from prometheus_client import generate_latest

from binhub.net.client import UpstreamConnection
from binhub.relay.upstream import file_header_gtids, probe
from binhub.serve.users import UserDirectory, UsersFile, make_user
from binhub.store import BinlogStore, StoreReader
from binhub.store.catalog import identity_from_file
from binhub.wire import auth
from binhub.wire.constants import CACHING_SHA2_PASSWORD, Capability
from binhub.wire.handshake import AuthSwitchRequest, HandshakeResponse41, HandshakeV10
from binhub.wire.messages import ErrPacket
from tests.integration.relayutil import run_relay
from tests.integration.serveutil import (
    PASSWORD,
    USER,
    ServerThread,
    mariadb_store,
    packet,
    raw_connect,
    read_packet,
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[BinlogStore]:
    s = mariadb_store(tmp_path / "store")
    yield s
    s.close()


@pytest.fixture
def server(store: BinlogStore) -> Iterator[ServerThread]:
    # Greets with caching_sha2 as a MySQL 8 server does, so the clients below take that path.
    st = ServerThread(store, default_auth=CACHING_SHA2_PASSWORD)
    yield st
    st.stop()


@pytest.fixture
def plain_server(store: BinlogStore, tmp_path: Path) -> Iterator[ServerThread]:
    st = ServerThread(store, tls=False, key_dir=tmp_path / "keys-plain", default_auth=CACHING_SHA2_PASSWORD)
    yield st
    st.stop()


def pymysql_connect(port: int, *, tls: bool, password: str = PASSWORD, **kw: Any) -> pymysql.Connection[Any]:
    opts: dict[str, Any] = {"ssl": {"check_hostname": False, "verify_mode": ssl.CERT_NONE}} if tls else {
        "ssl_disabled": True}
    return pymysql.connect(host="127.0.0.1", port=port, user=USER, password=password, connect_timeout=10, **opts, **kw)


def scalar(conn: Any, sql: str) -> Any:
    cur = conn.cursor()
    cur.execute(sql)
    row = cur.fetchone()
    cur.close()
    return row[0]


def failures(server: ServerThread) -> float:
    value = server.run(lambda: server.server.metrics.login_failures._value.get())
    return float(value)


# ------------------------------------------------------------------------------ PyMySQL

@pytest.mark.parametrize("tls", [False, True], ids=["rsa", "tls"])
def test_pymysql_caching_sha2_full_then_fast(server: ServerThread, tls: bool) -> None:
    assert server.run(lambda: len(server.server.sha2_cache.entries)) == 0
    with pymysql_connect(server.port, tls=tls) as conn:  # full auth: RSA key exchange, or clear over TLS
        assert scalar(conn, "SELECT @@version").endswith("-binhub")
        assert scalar(conn, "SELECT CURRENT_USER()") == f"{USER}@%"
        if tls:
            assert scalar(conn, "SHOW STATUS LIKE 'ssl_cipher'") is not None
    assert server.run(lambda: len(server.server.sha2_cache.entries)) == 1
    with pymysql_connect(server.port, tls=tls) as conn:  # fast path from the cache
        assert scalar(conn, "SELECT 1") == 1


def test_pymysql_on_a_server_without_tls(plain_server: ServerThread) -> None:
    with pymysql_connect(plain_server.port, tls=False) as conn:
        assert scalar(conn, "SELECT @@have_ssl") == "DISABLED"


def test_pymysql_connect_with_database_and_autocommit(server: ServerThread) -> None:
    with pymysql_connect(server.port, tls=False, database="information_schema", autocommit=True) as conn:
        assert scalar(conn, "SELECT DATABASE()") == "information_schema"
        conn.autocommit(False)
        assert conn.get_autocommit() is False


def test_wrong_password_is_1045_and_counted(server: ServerThread) -> None:
    before = failures(server)
    for tls in (False, True):
        with pytest.raises(pymysql.err.OperationalError) as info:
            pymysql_connect(server.port, tls=tls, password="wrong")
        assert info.value.args[0] == 1045
        assert info.value.args[1] == f"Access denied for user '{USER}'@'127.0.0.1' (using password: YES)"
    with pytest.raises(pymysql.err.OperationalError) as info:
        pymysql.connect(host="127.0.0.1", port=server.port, user="nobody", password="x", ssl_disabled=True)
    assert info.value.args[0] == 1045
    assert failures(server) == before + 3
    assert b"binhub_serve_login_failures_total 3.0" in server.run(lambda: generate_latest(server.server.metrics.registry))


def test_empty_password_user(server: ServerThread) -> None:
    with pymysql.connect(host="127.0.0.1", port=server.port, user="empty", password="", ssl_disabled=True) as conn:
        assert scalar(conn, "SELECT 1") == 1


# ------------------------------------------------------------------------------ mysql-connector

@pytest.mark.parametrize("use_pure", [True, False], ids=["pure", "c-ext"])
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_mysql_connector_caching_sha2(server: ServerThread, use_pure: bool, tls: bool) -> None:
    mysql_connector = pytest.importorskip("mysql.connector")
    if not use_pure and not getattr(mysql_connector, "HAVE_CEXT", False):
        pytest.skip("mysql-connector's C extension is not installed")
    opts: dict[str, Any] = {"ssl_disabled": True} if not tls else {"ssl_verify_cert": False}
    if not tls and use_pure:
        # Without TLS the pure-Python connector cannot do caching_sha2 full auth (it has no RSA
        # exchange), exactly as against MySQL: fill the cache first with a TLS login.
        with pymysql_connect(server.port, tls=True):
            pass
    if not tls and not use_pure:
        opts["get_server_public_key"] = True  # libmysqlclient's RSA key request
    for _ in range(2):  # first login full (or fast), second fast
        conn = mysql_connector.connect(host="127.0.0.1", port=server.port, user=USER, password=PASSWORD,
                                       use_pure=use_pure, auth_plugin="caching_sha2_password", **opts)
        cur = conn.cursor()
        cur.execute("SELECT @@version_comment LIMIT 1")
        assert cur.fetchall() == [("binhub binlog server",)]
        cur.execute("SHOW VARIABLES LIKE 'server_id'")
        assert cur.fetchall() == [("server_id", "77")]
        conn.close()


def test_mysql_connector_native_password(server: ServerThread) -> None:
    mysql_connector = pytest.importorskip("mysql.connector")
    try:
        conn = mysql_connector.connect(host="127.0.0.1", port=server.port, user=USER, password=PASSWORD,
                                       use_pure=True, auth_plugin="mysql_native_password", ssl_disabled=True)
    except mysql_connector.errors.NotSupportedError as exc:  # pragma: no cover - connectors without it
        pytest.skip(f"this mysql-connector has no mysql_native_password: {exc}")
    cur = conn.cursor()
    cur.execute("SELECT 1")
    assert cur.fetchall() == [(1,)]
    conn.close()


# ------------------------------------------------------------------------------ mariadb CLI

@pytest.mark.skipif(shutil.which("mariadb") is None, reason="the mariadb client is not installed")
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
@pytest.mark.parametrize("plugin", ["", "mysql_native_password"], ids=["default-auth", "native-auth"])
def test_mariadb_cli(server: ServerThread, tls: bool, plugin: str) -> None:
    # native-auth is what MariaDB replica IO threads do: name mysql_native_password with no data and
    # expect an AuthSwitch to it.
    args = ["mariadb", "--no-defaults", "-h127.0.0.1", f"-P{server.port}", f"-u{USER}", f"-p{PASSWORD}",
            "--batch", "--skip-column-names", *([f"--default-auth={plugin}"] if plugin else [])]
    args += ["--ssl", "--skip-ssl-verify-server-cert"] if tls else ["--skip-ssl"]
    out = subprocess.run([*args, "-e", "SELECT @@version; SHOW VARIABLES LIKE 'gtid_domain_id'; SHOW MASTER STATUS"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "10.11.6-MariaDB-log-binhub"
    assert lines[1] == "gtid_domain_id\t0"
    bad = subprocess.run([a for a in args if not a.startswith("-p")] + ["-pwrong", "-e", "SELECT 1"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "1045" in bad.stderr


# ------------------------------------------------------------------------------ binhub's own client

@pytest.fixture
def imported_server(tmp_path: Path, shared_binlogs: Path) -> Iterator[ServerThread]:
    """A server over a store seeded with a real MariaDB 10.5 binlog file (``binhub binlog import``)."""
    source = shared_binlogs / "blackbeam__rust_mysql_common" / "mariadb-bin.000001"
    store = BinlogStore.open(tmp_path / "imported")
    store.set_identity(identity_from_file(source))
    store.import_file(source)
    st = ServerThread(store)
    yield st
    st.stop()
    store.close()


@pytest.mark.parametrize("tls", [False, True], ids=["rsa", "tls"])
def test_binhub_upstream_connection_caching_sha2(imported_server: ServerThread, tls: bool) -> None:
    server = imported_server
    ctx = None
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE

    async def session() -> tuple[str, list[Any]]:
        conn = await UpstreamConnection.connect("127.0.0.1", server.port, USER, PASSWORD, ssl=ctx)
        try:
            info = await probe(conn, is_mariadb=conn.is_mariadb, user=USER)
            return conn.server_version, [info.flavour, info.server_id, info.checksum, info.gtid_domain_id]
        finally:
            await conn.close()

    for _ in range(2):  # full, then fast
        version, facts = asyncio.run(session())
        assert version == "10.5.15-MariaDB-1:10.5.15+maria~focal-log-binhub"
        assert facts == ["mariadb", 77, "CRC32", 0]


# ------------------------------------------------------------------------------ raw protocol

def _greeting(port: int) -> tuple[Any, HandshakeV10]:
    s = raw_connect(port)
    _, payload = read_packet(s)
    return s, HandshakeV10.parse(payload)


def test_auth_switch_for_another_plugin(server: ServerThread) -> None:
    s, greeting = _greeting(server.port)
    caps = Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION | Capability.PLUGIN_AUTH | Capability.LONG_PASSWORD
    s.sendall(packet(HandshakeResponse41(caps, USER, b"\x01" * 32, auth_plugin="client_ed25519").build(), 1))
    seq, payload = read_packet(s)
    switch = AuthSwitchRequest.parse(payload)
    assert switch.plugin == "mysql_native_password" and seq == 2
    s.sendall(packet(auth.scramble_native_password(PASSWORD.encode(), switch.scramble), 3))
    seq, payload = read_packet(s)
    assert payload[0] == 0 and seq == 4
    s.close()


def test_nothing_is_served_before_auth(server: ServerThread) -> None:
    s, _ = _greeting(server.port)
    s.sendall(packet(b"\x03SELECT @@server_id", 1))  # a query instead of a HandshakeResponse41
    _, payload = read_packet(s)
    assert ErrPacket.parse(payload).code == 1043
    with pytest.raises(ConnectionError):
        read_packet(s)


def test_users_file_changes_apply_without_restart(store: BinlogStore, tmp_path: Path) -> None:
    users_path = tmp_path / "users.json"
    UsersFile(users_path).add(make_user("alice", "one"))
    assert users_path.stat().st_mode & 0o777 == 0o600
    assert "one" not in users_path.read_text()
    st = ServerThread(store, users=UserDirectory(users_path), key_dir=tmp_path / "k")
    try:
        pymysql.connect(host="127.0.0.1", port=st.port, user="alice", password="one", ssl_disabled=True).close()
        UsersFile(users_path).add(make_user("alice", "two"))
        with pytest.raises(pymysql.err.OperationalError):
            pymysql.connect(host="127.0.0.1", port=st.port, user="alice", password="one", ssl_disabled=True)
        pymysql.connect(host="127.0.0.1", port=st.port, user="alice", password="two", ssl_disabled=True).close()
    finally:
        st.stop()


# ------------------------------------------------------------------------------ 1000 failed logins

def test_a_thousand_failed_logins(server: ServerThread) -> None:
    async def bad_login(sem: asyncio.Semaphore) -> int:
        async with sem:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            try:
                head = await reader.readexactly(4)
                greeting = HandshakeV10.parse(await reader.readexactly(int.from_bytes(head[:3], "little")))
                caps = (Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION | Capability.PLUGIN_AUTH
                        | Capability.LONG_PASSWORD)
                resp = HandshakeResponse41(caps, USER, auth.scramble_native_password(b"nope", greeting.scramble),
                                           auth_plugin="mysql_native_password")
                writer.write(packet(resp.build(), 1))
                head = await reader.readexactly(4)
                return ErrPacket.parse(await reader.readexactly(int.from_bytes(head[:3], "little"))).code
            finally:
                writer.close()

    async def flood() -> list[int]:
        sem = asyncio.Semaphore(50)
        return await asyncio.wait_for(asyncio.gather(*(bad_login(sem) for _ in range(1000))), 120)

    before = failures(server)
    codes = asyncio.run(flood())
    assert codes == [1045] * 1000
    assert failures(server) == before + 1000
    with pymysql_connect(server.port, tls=False) as conn:
        assert scalar(conn, "SELECT @@server_id") == 77
        assert scalar(conn, "SHOW STATUS LIKE 'aborted_connects'") == "aborted_connects"


# ------------------------------------------------------------------------------ a relayed store

def test_serves_a_relayed_store_to_binhubs_relay_probes(primary_db: Any, tmp_path: Path) -> None:
    """A store relayed from a real MariaDB primary, served by binhub: the relay's own probes (what
    chaining binhub → binhub sends) read the same answers as from the primary."""
    with primary_db.conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))")
        cur.execute("INSERT INTO t VALUES (1, 'a'), (2, 'b')")
    data_dir = tmp_path / "relayed"
    done = run_relay(primary_db.dsn, data_dir, "--start-file", primary_db.start_file)
    assert done.returncode == 0, done.stderr
    store = StoreReader.open(data_dir)
    st = ServerThread(store, key_dir=tmp_path / "keys")
    try:
        async def chain_probe() -> tuple[Any, str, str]:
            conn = await UpstreamConnection.connect("127.0.0.1", st.port, USER, PASSWORD)
            try:
                info = await probe(conn, is_mariadb=conn.is_mariadb, user=USER)
                header = await file_header_gtids(conn, info.files[0].name, "mariadb")
                return info, header, conn.server_version
            finally:
                await conn.close()

        info, header, version = asyncio.run(chain_probe())
        primary_version = scalar(primary_db.conn, "SELECT @@version")
        assert version == primary_version + "-binhub"
        assert info.flavour == "mariadb" and info.server_id == 77
        assert [f.name for f in info.files][0] == primary_db.start_file
        assert info.current_file == info.files[-1].name
        assert info.current_position == info.files[-1].size
        with primary_db.conn.cursor() as cur:
            cur.execute(f"SHOW BINLOG EVENTS IN '{primary_db.start_file}' LIMIT 4")
            primary_rows = cur.fetchall()
        primary_list = next(r[5] for r in primary_rows if r[2] == "Gtid_list")
        assert f"[{header}]" == primary_list
        assert info.gtid_position == store.state.executed_gtids
    finally:
        st.stop()


# ------------------------------------------------------------------------------ the daemon

def test_daemon_with_a_serve_section(store: BinlogStore, tmp_path: Path) -> None:
    """``binhub run`` with only [serve]: the store is opened read-only and replicas can log in."""
    from binhub.ops.config import load_config
    from binhub.ops.daemon import Daemon

    users = tmp_path / "users.json"
    UsersFile(users).add(make_user(USER, PASSWORD))
    config = load_config(None, env={}, overrides={
        "store.data_dir": str(store.data_dir), "serve.listen": "127.0.0.1:0", "serve.users_file": str(users),
        "serve.server_id": 4242, "http.enabled": False})

    async def scenario() -> int:
        daemon = Daemon(config)
        task = asyncio.create_task(daemon.run())
        while "serve" not in daemon.services or daemon.state != "running":
            await asyncio.sleep(0.01)
        port = daemon.status()["serve"]["listen"].rsplit(":", 1)[1]
        conn = await UpstreamConnection.connect("127.0.0.1", int(port), USER, PASSWORD)
        result = await conn.query("SELECT @@server_id")
        await conn.close()
        daemon.request_stop()
        await task
        return int(result.rows[0][0] or 0)

    assert asyncio.run(scenario()) == 4242


def test_mariadb_store_greets_like_mariadbd(store: BinlogStore) -> None:
    """A MariaDB-flavour store greets with mysql_native_password, as mariadbd does, so stock
    MariaDB clients (mariadb-binlog, replicas) log in over a plain socket without RSA or TLS."""
    st = ServerThread(store, tls=False)
    try:
        with raw_connect(st.port) as sock:
            _, greeting = read_packet(sock)
        assert b"mysql_native_password\x00" in greeting and b"caching_sha2" not in greeting
        out = subprocess.run(["mariadb-binlog", "--read-from-remote-server", "--host=127.0.0.1", f"--port={st.port}",
                              f"--user={USER}", f"--password={PASSWORD}", "--skip-ssl", "--to-last-log",
                              "--stop-never-slave-server-id=0", "mariadb-bin.000001"],
                             capture_output=True, text=True, timeout=30)
        assert "Access denied" not in out.stderr and "authentication" not in out.stderr.lower(), out.stderr
    finally:
        st.stop()
