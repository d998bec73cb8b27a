"""The MySQL flavour, end to end, without a MySQL server (none can run here).

A multi-file MySQL-flavour store is generated (``tests/binlog_factory.py``): GTID events of two
server UUIDs, tagged GTIDs (MySQL 8.3+), PREVIOUS_GTIDS heads, rotations, and transactions whose
events are copied from a real MySQL 8.0 binlog (QUERY, TABLE_MAP, WRITE/UPDATE/DELETE_ROWS v2,
XID), re-positioned with their CRCs recomputed. Then:

* ``binhub binlog import`` seeds a store with it and ``binhub serve`` serves it;
* PyPI ``mysql-replication`` (an independent client) reads it as a COM_BINLOG_DUMP_GTID replica:
  every event it yields is checked against the generated files (type, end position, GTID, table),
  and the transactions of the requested GTID set are skipped;
* binhub's own client requests a set with tagged GTIDs: the tagged transactions in it are skipped;
* a GTID set missing what the first file's PREVIOUS_GTIDS says was purged gets error 1236;
* a second ``binhub relay`` from that ``binhub serve`` stores every file byte for byte (binhub →
  binhub: how the relay's MySQL path is proven).

The imported store's state has its upstream identity removed before serving: the server must then
take flavour and version from the first file's FDE (else MySQL clients are told "MariaDB").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
import uuid as uuid_mod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from binhub.binlog.constants import EventType
from binhub.binlog.decode import decode_event
from binhub.binlog.events import GtidEvent
from binhub.binlog.file import BinlogFileReader
from binhub.binlog.gtid import MysqlGtid, MysqlGtidSet
from binhub.errors import EndOfDump, UpstreamError
from binhub.net.client import UpstreamConnection
from binhub.sandbox.binhub_process import BinhubProcess, binhub_command
from binhub.sandbox.process import free_port
from tests.binlog_factory import MYSQL_VERSION, BinlogFileBuilder
from tests.integration.relayutil import start_serve

BINHUB = binhub_command()
USER, PASSWORD = "repl_mysql", "mysql-flavour-pw"
UUID_A = uuid_mod.UUID("3e11fa47-71ca-11e1-9e33-c80aa9429562")
UUID_B = uuid_mod.UUID("8a94f357-aab4-11df-86ab-c80aa9429562")
TAG = "tg"
NON_BLOCK = 0x01
REAL_FILE = "rust-us__mysql-cdc-rs/8.0/02_query_bigger/binlog.000733"  # MySQL 8.0.31, CRC32
_ROW_TYPES = {int(EventType.WRITE_ROWS_V2), int(EventType.UPDATE_ROWS_V2), int(EventType.DELETE_ROWS_V2)}


@dataclass
class Txn:
    file: str
    gtid: str  # "uuid:gno" or "uuid:tag:gno"
    events: list[tuple[int, int]] = field(default_factory=list)  # (type code, end offset) after the GTID event
    tables: list[str] = field(default_factory=list)  # tables of its TABLE_MAP events


@dataclass
class MysqlStore:
    files: list[Path]
    txns: list[Txn]
    purged: MysqlGtidSet  # the first file's PREVIOUS_GTIDS


def _real_groups(path: Path) -> list[list[tuple[int, int, int, int, bytes]]]:
    """The real file's transactions without their GTID event: (type, timestamp, server_id, flags, body) each."""
    groups: list[list[tuple[int, int, int, int, bytes]]] = []
    with open(path, "rb") as f:
        reader = BinlogFileReader(f, path.name, verify_checksums=True)
        for ev in reader:
            t = ev.header.type_code
            if t in (EventType.GTID, EventType.ANONYMOUS_GTID):
                groups.append([])
            elif groups and t not in (EventType.ROTATE, EventType.FORMAT_DESCRIPTION, EventType.PREVIOUS_GTIDS):
                body = bytes(ev.data[19:len(ev.data) - 4])  # header and CRC are rebuilt at the new position
                groups[-1].append((t, ev.header.timestamp, ev.header.server_id, ev.header.flags, body))
    assert len(groups) >= 8 and any(any(e[0] in _ROW_TYPES for e in g) for g in groups)
    return groups


def _table_name(body: bytes) -> str:
    # TABLE_MAP post-header: table_id (6) + flags (2); then schema (len, name, NUL), table (len, name, NUL).
    pos = 8
    pos += 1 + body[pos] + 1
    return body[pos + 1:pos + 1 + body[pos]].decode()


def build_mysql_store(directory: Path, real: Path) -> MysqlStore:
    """Three files: 8 transactions each (A and B interleaved), tagged ones in the last file."""
    groups = _real_groups(real)
    directory.mkdir(parents=True, exist_ok=True)
    purged = MysqlGtidSet.parse(f"{UUID_A}:1-10")
    executed = purged
    gno = {UUID_A: 10, UUID_B: 0}
    tagged = 0
    txns: list[Txn] = []
    files: list[Path] = []
    n = 0
    for k in range(3):
        name = f"mysql-bin.{k + 1:06d}"
        b = BinlogFileBuilder(name, "mysql", server_id=1)
        b.previous_gtids(executed)
        plan: list[str] = ["A" if i % 3 != 2 else "B" for i in range(8)]
        if k == 2:
            for at in (6, 4, 2):
                plan.insert(at, "T")
        for who in plan:
            group = groups[n % len(groups)]
            n += 1
            if who == "T":
                tagged += 1
                txn = Txn(name, f"{UUID_A}:{TAG}:{tagged}")
                b.mysql_gtid(UUID_A, tagged, TAG)
            else:
                u = UUID_A if who == "A" else UUID_B
                gno[u] += 1
                txn = Txn(name, f"{u}:{gno[u]}")
                b.mysql_gtid(u, gno[u])
            for t, ts, sid, flags, body in group:
                b.add(t, body, server_id=sid, ts=ts, flags=flags)
                txn.events.append((t, b.position))
                if t == EventType.TABLE_MAP:
                    txn.tables.append(_table_name(body))
            executed = executed | MysqlGtidSet.parse(txn.gtid)
            txns.append(txn)
        if k < 2:
            b.rotate(f"mysql-bin.{k + 2:06d}")
        files.append(b.save(directory))
    return MysqlStore(files, txns, purged)


# --------------------------------------------------------------------------- fixtures

@dataclass
class Served:
    store: MysqlStore
    data_dir: Path
    port: int
    process: BinhubProcess


@pytest.fixture(scope="module")
def served(shared_binlogs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("mysql-flavour")
    gen = build_mysql_store(base / "files", shared_binlogs / REAL_FILE)
    data_dir = base / "store"
    done = subprocess.run([*BINHUB, "binlog", "import", "--data-dir", str(data_dir), *map(str, gen.files)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    # Forget the identity the import recorded: the server must read it from the first file's FDE.
    state_path = data_dir / "state.json"
    state = json.loads(state_path.read_text())
    assert state.get("upstream", {}).get("flavour") == "mysql", state
    state["upstream"] = None
    state_path.write_text(json.dumps(state))
    port = free_port()
    serve = start_serve(data_dir, base / "serve.log", user=USER, password=PASSWORD, server_id=7001, port=port)
    try:
        yield Served(gen, data_dir, port, serve)
    finally:
        serve.stop()


def _expected(store: MysqlStore, exclude: MysqlGtidSet) -> list[Txn]:
    return [t for t in store.txns if MysqlGtid.parse(t.gtid) not in exclude]


# --------------------------------------------------------------------------- tests

def test_server_announces_the_files_flavour(served: Served) -> None:
    async def go() -> str:
        conn = await UpstreamConnection.connect("127.0.0.1", served.port, USER, PASSWORD)
        try:
            rows = (await conn.query("SELECT @@version, @@version_comment")).rows
            assert not conn.is_mariadb
            assert conn.server_version == f"{MYSQL_VERSION}-binhub"
            return str(rows[0][0])
        finally:
            await conn.close()
    assert asyncio.run(asyncio.wait_for(go(), 30)) == f"{MYSQL_VERSION}-binhub"


def test_mysql_replication_reads_with_auto_position(served: Served) -> None:
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.event import GtidEvent as PyGtid
    from pymysqlreplication.event import QueryEvent, RotateEvent, XidEvent
    from pymysqlreplication.row_event import DeleteRowsEvent, TableMapEvent, UpdateRowsEvent, WriteRowsEvent

    exclude_text = f"{UUID_A}:1-12:14,{UUID_B}:2"
    exclude = MysqlGtidSet.parse(exclude_text)
    stream = BinLogStreamReader(
        connection_settings={"host": "127.0.0.1", "port": served.port, "user": USER, "passwd": PASSWORD},
        server_id=4711, auto_position=exclude_text, blocking=False)
    by_class = {int(EventType.QUERY): QueryEvent, int(EventType.TABLE_MAP): TableMapEvent,
                int(EventType.WRITE_ROWS_V2): WriteRowsEvent, int(EventType.UPDATE_ROWS_V2): UpdateRowsEvent,
                int(EventType.DELETE_ROWS_V2): DeleteRowsEvent, int(EventType.XID): XidEvent}
    want: list[tuple[type, int, str]] = []  # (class, log_pos, GTID or table)
    for txn in _expected(served.store, exclude):
        if f":{TAG}:" not in txn.gtid:  # mysql-replication knows no GTID_TAGGED: it drops that event
            want.append((PyGtid, 0, txn.gtid))
        tables = iter(txn.tables)
        for t, end in txn.events:
            want.append((by_class[t], end, next(tables) if t == EventType.TABLE_MAP else ""))
    got: list[tuple[type, int, str]] = []
    rotates: list[str] = []
    try:
        deadline = time.monotonic() + 60
        for ev in stream:
            assert time.monotonic() < deadline, "mysql-replication did not reach the end"
            if isinstance(ev, RotateEvent):
                rotates.append(ev.next_binlog)
                continue
            if isinstance(ev, PyGtid):
                got.append((PyGtid, 0, ev.gtid))
            elif isinstance(ev, TableMapEvent):
                got.append((TableMapEvent, ev.packet.log_pos, ev.table))
            elif type(ev) in by_class.values():
                if isinstance(ev, WriteRowsEvent | UpdateRowsEvent | DeleteRowsEvent):
                    assert ev.rows, ev  # the copied row images decode
                got.append((type(ev), ev.packet.log_pos, ""))
    finally:
        stream.close()
    assert len(want) > 60 and got == want
    # Skipped: exactly the requested set (A:13 and B:1 were sent, A:1-12, A:14 and B:2 not).
    sent = {g for cls, _, g in got if cls is PyGtid}
    assert f"{UUID_A}:13" in sent and f"{UUID_B}:1" in sent
    assert not sent & {f"{UUID_A}:12", f"{UUID_A}:14", f"{UUID_B}:2"}
    assert rotates[0] == "mysql-bin.000001" and "mysql-bin.000003" in rotates


async def _dump_gtid(port: int, exclude: MysqlGtidSet) -> list[tuple[str, bytes]]:
    """binhub's own client: a NON_BLOCK COM_BINLOG_DUMP_GTID; every event with the file it belongs to."""
    conn = await UpstreamConnection.connect("127.0.0.1", port, USER, PASSWORD)
    try:
        await conn.execute("SET @master_binlog_checksum = 'CRC32'")
        await conn.start_binlog_dump_gtid(exclude.encode(), 4712, flags=NON_BLOCK)
        out: list[tuple[str, bytes]] = []
        file = ""
        with contextlib.suppress(EndOfDump):
            while True:
                for ev in await conn.read_events():
                    data = bytes(ev)
                    if data[4] == EventType.ROTATE:
                        file = data[19 + 8:len(data) - 4].decode()
                    out.append((file, data))
        return out
    finally:
        await conn.close()


def test_own_client_skips_tagged_gtids(served: Served) -> None:
    exclude = MysqlGtidSet.parse(f"{UUID_A}:1-11:15,{UUID_A}:{TAG}:1-2,{UUID_B}:1-3")
    events = asyncio.run(asyncio.wait_for(_dump_gtid(served.port, exclude), 60))
    gtids: list[str] = []
    ends: list[tuple[str, int]] = []
    for file, data in events:
        kind = data[4]
        if kind in (EventType.GTID, EventType.GTID_TAGGED):
            ev = decode_event(data, None, checksum_size=4)
            assert isinstance(ev, GtidEvent) and ev.gtid is not None
            gtids.append(str(ev.gtid))
        elif kind not in (EventType.ROTATE, EventType.FORMAT_DESCRIPTION, EventType.PREVIOUS_GTIDS,
                          EventType.HEARTBEAT):
            ends.append((file, int.from_bytes(data[13:17], "little")))
    want = _expected(served.store, exclude)
    assert gtids == [t.gtid for t in want]
    assert f"{UUID_A}:{TAG}:3" in gtids and f"{UUID_A}:{TAG}:1" not in gtids
    assert ends == [(t.file, end) for t in want for _, end in t.events]


def test_purged_gtids_get_error_1236(served: Served) -> None:
    async def go() -> None:
        await _dump_gtid(served.port, MysqlGtidSet.parse(f"{UUID_A}:1-5"))
    with pytest.raises(UpstreamError) as info:
        asyncio.run(asyncio.wait_for(go(), 30))
    assert info.value.code == 1236
    assert "purged required binary logs" in info.value.message and f"{UUID_A}:6-10" in info.value.message


def test_binhub_relays_binhub_byte_identically(served: Served, tmp_path: Path) -> None:
    data_b = tmp_path / "b"
    done = subprocess.run([*BINHUB, "relay", "--source", f"mysql://{USER}:{PASSWORD}@127.0.0.1:{served.port}",
                           "--data-dir", str(data_b), "--start-file", "mysql-bin.000001", "--server-id", "7002",
                           "--until-caught-up"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    stored = sorted((data_b / "binlog").glob("mysql-bin.[0-9]*"))
    assert [p.name for p in stored] == [p.name for p in served.store.files]
    for mine, theirs in zip(stored, served.store.files, strict=True):
        a, b = mine.read_bytes(), theirs.read_bytes()
        if mine == stored[-1]:
            # The relay's open file carries the in-use flag (FDE flags, byte 21), as a primary's
            # active binlog does on disk; the served copy came with it cleared, as a dump sends it.
            assert a[21] == b[21] | 0x01
            a = a[:21] + b[21:22] + a[22:]
        assert a == b, mine.name
    state = json.loads((data_b / "state.json").read_text())
    assert state["upstream"]["flavour"] == "mysql", state
