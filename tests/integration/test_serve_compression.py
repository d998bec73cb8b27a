"""binhub serve with the compressed protocol, as independent clients see it.

mysql-connector-python (its pure-Python zlib framing) and the ``mariadb`` CLI (libmariadb) log in
with compression and read answers; binhub's own client dumps a real binlog over zstd and over
zlib and gets it byte for byte. The real MariaDB replica is in test_serve_replicas.py.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from binhub.errors import EndOfDump
from binhub.net.client import UpstreamConnection
from binhub.serve.session import default_dump_handler
from binhub.store import BinlogStore
from binhub.store.catalog import identity_from_file
from binhub.wire.compression import Algorithm
from tests.integration.serveutil import PASSWORD, USER, ServerThread

SOURCE = ("blackbeam__rust_mysql_common", "mariadb-bin.000001")


@pytest.fixture(params=[False, True], ids=["plain", "tls"])
def server(request: pytest.FixtureRequest, tmp_path: Path, shared_binlogs: Path) -> Iterator[tuple[ServerThread, Path]]:
    """binhub serve on an imported MariaDB file; TLS offered or not (compression then runs inside TLS)."""
    source = shared_binlogs.joinpath(*SOURCE)
    store = BinlogStore.open(tmp_path / "store")
    store.set_identity(identity_from_file(source))
    store.import_file(source)
    st = ServerThread(store, tls=request.param, key_dir=tmp_path / "keys", dump_handler=default_dump_handler)
    yield st, source
    st.stop()
    store.close()


def _client_tls(st: ServerThread) -> ssl.SSLContext | None:
    if not st.server.tls_context:
        return None
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def test_mysql_connector_with_compress(server: tuple[ServerThread, Path]) -> None:
    mysql_connector = pytest.importorskip("mysql.connector")
    st, _ = server
    tls: dict[str, Any] = {"ssl_verify_cert": False} if st.server.tls_context else {"ssl_disabled": True}
    conn = mysql_connector.connect(host="127.0.0.1", port=st.port, user=USER, password=PASSWORD, use_pure=True,
                                   compress=True, **tls)
    try:
        cur = conn.cursor()
        cur.execute("SHOW SESSION STATUS LIKE 'compression%'")
        assert dict(cur.fetchall()) == {"Compression": "ON", "Compression_algorithm": "zlib",
                                        "Compression_level": "6"}
        cur.execute("SHOW VARIABLES")  # a result set of many KiB: compressed pieces of many packets
        assert len(cur.fetchall()) > 50
    finally:
        conn.close()
    plain = mysql_connector.connect(host="127.0.0.1", port=st.port, user=USER, password=PASSWORD, use_pure=True,
                                    ssl_disabled=True)
    try:
        cur = plain.cursor()
        cur.execute("SHOW STATUS LIKE 'compression'")
        assert cur.fetchall() == [("Compression", "OFF")]
    finally:
        plain.close()


@pytest.mark.skipif(shutil.which("mariadb") is None, reason="the mariadb client is not installed")
def test_mariadb_cli_with_compress(server: tuple[ServerThread, Path]) -> None:
    st, _ = server
    out = subprocess.run(["mariadb", "--no-defaults", "-h127.0.0.1", f"-P{st.port}", f"-u{USER}", f"-p{PASSWORD}",
                          "--ssl" if st.server.tls_context else "--skip-ssl", "--skip-ssl-verify-server-cert",
                          "--compress", "--batch", "--skip-column-names",
                          "-e", "SHOW STATUS LIKE 'compression'; SHOW BINARY LOGS; SHOW VARIABLES"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "Compression\tON"
    assert lines[1].startswith("mariadb-bin.000001\t")


@pytest.mark.parametrize("algorithm", [Algorithm.ZSTD, Algorithm.ZLIB], ids=lambda a: a.value)
def test_binhub_client_dumps_over_compression(server: tuple[ServerThread, Path], algorithm: Algorithm) -> None:
    st, source = server

    async def dump() -> tuple[Any, list[bytes], int]:
        conn = await UpstreamConnection.connect("127.0.0.1", st.port, USER, PASSWORD, compress=algorithm,
                                                ssl=_client_tls(st))
        assert conn.tls == (st.server.tls_context is not None)
        try:
            for stmt in ("SET @master_binlog_checksum=@@global.binlog_checksum", "SET @mariadb_slave_capability=4"):
                await conn.execute(stmt)
            sessions = st.run(lambda: st.server.status()["sessions"])  # what `binhub status` shows per session
            assert [(x["compression"], x["tls"]) for x in sessions] == [(str(conn.compression), conn.tls)]
            await conn.start_binlog_dump(SOURCE[1], 4, 555, flags=3)  # NON_BLOCK (EOF at the end), ANNOTATE_ROWS
            events: list[bytes] = []
            with pytest.raises(EndOfDump):
                while True:
                    events += [bytes(e) for e in await conn.read_events()]
            return conn.compression, events, conn.received_bytes
        finally:
            await conn.close()

    compression, events, _ = asyncio.run(dump())
    assert compression is not None and compression.algorithm is algorithm
    # The artificial ROTATE, the FDE (as a primary sends it), then every later event of the file, untouched.
    data = source.read_bytes()
    fde_end = 4 + len(events[1])
    assert events[1][4] == 15 and b"".join(events[2:]) == data[fde_end:]
