"""Running binhub's BinlogServer in a background thread, so blocking clients (PyMySQL,
mysql-connector, the mariadb CLI) can talk to it from the test thread."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from binhub.net.server import ServerConnection
from binhub.serve.server import BinlogServer
from binhub.serve.session import DumpCommand, SessionState
from binhub.serve.users import UserDirectory, make_user
from binhub.store import BinlogStore, StoreReader
from binhub.store.state import UpstreamIdentity
from binhub.wire.messages import ErrPacket

T = TypeVar("T")

USER, PASSWORD = "repl", "s3cret-pw"


async def stub_dump(conn: ServerConnection, state: SessionState, command: DumpCommand, server: BinlogServer) -> None:
    """Stands in for binhub.serve.dump until it exists: answers every dump with error 1236."""
    conn.write_packets([ErrPacket(1236, "HY000", "stub dump").build()])
    await conn.drain()


class ServerThread:
    """A BinlogServer on 127.0.0.1, port 0, in its own event loop thread."""

    def __init__(self, store: BinlogStore | StoreReader, *, users: UserDirectory | None = None, tls: bool = True,
                 key_dir: Path | None = None, **kwargs: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="binhub-test-server", daemon=True)
        self.thread.start()
        users = users or UserDirectory(users=[make_user(USER, PASSWORD), make_user("empty", "")])
        self.server = self.call(self._make(store, users, tls, key_dir, kwargs))
        self.port = self.server.port

    async def _make(self, store: BinlogStore | StoreReader, users: UserDirectory, tls: bool, key_dir: Path | None,
                    kwargs: dict[str, Any]) -> BinlogServer:
        writer = store if isinstance(store, BinlogStore) else None
        reader = writer.reader if writer is not None else store
        server = BinlogServer(reader, writer=writer, users=users, server_id=77, port=0, tls=tls, key_dir=key_dir,
                              dump_handler=kwargs.pop("dump_handler", stub_dump), **kwargs)
        await server.start()
        return server

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def run(self, fn: Any) -> Any:
        """Run a plain function on the server's loop thread (to read its state safely)."""
        async def call() -> Any:
            return fn()
        return self.call(call())

    def stop(self) -> None:
        self.call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def mariadb_store(path: Path) -> BinlogStore:
    store = BinlogStore.open(path)
    store.set_identity(UpstreamIdentity(flavour="mariadb", server_id=1, base_name="mariadb-bin", gtid_domain_id=0,
                                        version="10.11.6-MariaDB-log"))
    return store


def raw_connect(port: int, timeout: float = 5.0) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return s


def read_packet(s: socket.socket) -> tuple[int, bytes]:
    """(sequence id, payload) of one packet; raises ConnectionError at EOF."""
    head = _read_exact(s, 4)
    length = head[0] | head[1] << 8 | head[2] << 16
    return head[3], _read_exact(s, length)


def _read_exact(s: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return out


def packet(payload: bytes, seq: int) -> bytes:
    return struct.pack("<I", len(payload) | (seq << 24)) + payload
