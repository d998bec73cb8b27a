"""The dump (binhub/serve/dump.py) against a fake connection: bytes on the wire for each start kind.

The store is filled with synthetic files (tests/binlog_factory.py) through ``import_file``, so
positions and CRCs are consistent and the GTID index is built as in production.
"""

from __future__ import annotations

import asyncio
import struct
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import binhub.store.maintenance as maintenance_mod
import binhub.store.store as store_mod
from binhub.binlog.constants import EventType
from binhub.binlog.decode import decode_event
from binhub.binlog.events import HeartbeatEvent, MariadbGtidListEvent, RotateEvent
from binhub.binlog.gtid import MariadbGtid, MariadbGtidList, MysqlGtidSet
from binhub.serve.dump import DumpContext, serve_dump
from binhub.serve.metrics import ServeMetrics
from binhub.serve.preamble import FDE_CREATED_OFFSET
from binhub.store import BinlogStore, StoreReader
from binhub.store.retention import live_leases
from binhub.wire.commands import ComBinlogDump, ComBinlogDumpGtid, SemisyncAck
from binhub.wire.constants import BinlogDumpFlag
from binhub.wire.messages import ErrPacket
from tests.binlog_factory import BinlogFileBuilder

U1 = uuid.UUID("3e11fa47-71ca-11e1-9e33-c80aa9429562")
CRC_VARS = {"master_binlog_checksum": "CRC32", "mariadb_slave_capability": "4"}


class FakeConnection:
    """Records (sequence id, payload) per packet; ``read_packet`` serves what the test pushes."""

    def __init__(self) -> None:
        self.sequence = 0
        self.sent: list[tuple[int, bytes]] = []
        self.incoming: asyncio.Queue[bytes] = asyncio.Queue()
        self.closed = False
        self.writes = 0

    async def read_packet(self) -> bytes:
        payload = await self.incoming.get()
        if not payload:
            self.closed = True
            raise ConnectionError("client gone")
        return payload

    def write_packets(self, payloads: list[bytes]) -> None:
        if self.closed:
            raise ConnectionError("closed")
        self.writes += 1
        for p in payloads:
            self.sent.append((self.sequence, p))
            self.sequence = (self.sequence + 1 + len(p) // 0xFFFFFF) & 0xFF

    async def drain(self) -> None:
        await asyncio.sleep(0)

    def reset_sequence(self) -> None:
        self.sequence = 0

    @property
    def payloads(self) -> list[bytes]:
        return [p for _, p in self.sent]


class SharingConnection(FakeConnection):
    """Also takes framed spans shared between replicas (as ``ServerConnection`` does); records their packets."""

    def __init__(self) -> None:
        super().__init__()
        self.shared_writes = 0

    def write_shared(self, data: bytes, packets: int) -> None:
        if self.closed:
            raise ConnectionError("closed")
        self.shared_writes += 1
        pos = 0
        payload, first_seq = b"", self.sequence
        for _ in range(packets):
            length = int.from_bytes(data[pos:pos + 3], "little")
            assert data[pos + 3] == self.sequence, "framed with the connection's running sequence id"
            payload += data[pos + 4:pos + 4 + length]
            self.sequence = (self.sequence + 1) & 0xFF
            pos += 4 + length
            if length < 0xFFFFFF:  # the last packet of a payload (split ones are 0xFFFFFF bytes long)
                self.sent.append((first_seq, payload))
                payload, first_seq = b"", self.sequence
        assert not payload, "no payload is left half sent"
        assert pos == len(data), "the span holds exactly the packets announced"


@dataclass
class FakeState:
    user_vars: dict[str, str] = field(default_factory=lambda: dict(CRC_VARS))
    replica_server_id: int = 7
    connection_id: int = 1
    greeted_version: str = ""  # "": the test does not say what the greeting announced


@dataclass
class FakeServer:
    store: StoreReader
    server_id: int = 99
    metrics: ServeMetrics = field(default_factory=ServeMetrics)
    replica_ahead_wait: float = 0.0  # refuse at once, as a primary does (the tests of waiting set it)
    version_string: str = "10.11.0-MariaDB-binhub"


def events(conn: FakeConnection, semisync: bool = False) -> list[bytes]:
    """The events sent (payloads without the 0x00 byte and semi-sync header), stopping at EOF/ERR."""
    out = []
    for p in conn.payloads:
        if p[0] != 0:
            break
        out.append(p[3:] if semisync else p[1:])
    return out


def last_packet(conn: FakeConnection) -> bytes:
    return conn.payloads[-1]


def mariadb_files(tmp: Path, txns: int = 10, files: int = 2) -> list[Path]:
    paths = []
    seq = 0
    for i in range(1, files + 1):
        b = BinlogFileBuilder(f"mariadb-bin.{i:06d}", "mariadb")
        b.gtid_list([MariadbGtid(0, 1, seq)] if seq else [])
        b.checkpoint(b.name)
        for _ in range(txns):
            seq += 1
            b.maria_txn(0, seq, annotate=True)
        if i < files:
            b.rotate(f"mariadb-bin.{i + 1:06d}")
        paths.append(b.save(tmp))
    return paths


def mysql_files(tmp: Path, txns: int = 10, files: int = 2, tagged: bool = False) -> list[Path]:
    paths = []
    gno = 0
    for i in range(1, files + 1):
        b = BinlogFileBuilder(f"mysql-bin.{i:06d}", "mysql")
        b.previous_gtids(MysqlGtidSet.parse(f"{U1}:1-{gno}") if gno else MysqlGtidSet())
        for _ in range(txns):
            gno += 1
            b.mysql_txn(U1, gno)
        if tagged:
            b.mysql_txn(U1, 1, tag="blue")
        if i < files:
            b.rotate(f"mysql-bin.{i + 1:06d}")
        paths.append(b.save(tmp))
    return paths


def make_store(tmp_path: Path, paths: list[Path]) -> BinlogStore:
    store = BinlogStore.open(tmp_path / "store")
    for p in paths:
        store.import_file(p)
    return store


@pytest.fixture
def mariadb_store(tmp_path: Path) -> Iterator[BinlogStore]:
    src = tmp_path / "src"
    src.mkdir()
    store = make_store(tmp_path, mariadb_files(src))
    yield store
    store.close()


@pytest.fixture
def mysql_store(tmp_path: Path) -> Iterator[BinlogStore]:
    src = tmp_path / "src"
    src.mkdir()
    store = make_store(tmp_path, mysql_files(src, tagged=True))
    yield store
    store.close()


@pytest.fixture(autouse=True, params=["writer's view", "another process's view"])
def view(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every dump runs twice: over the writer's own reader view (``binhub run``) and over a view
    opened as another process opens it (``binhub serve`` beside ``binhub relay``)."""
    global VIEW
    VIEW = request.param
    yield VIEW
    VIEW = "writer's view"


VIEW = "writer's view"


def reader_of(store: BinlogStore) -> StoreReader:
    return store.reader if VIEW == "writer's view" else StoreReader.open(store.data_dir)


def dump(store: BinlogStore, command: ComBinlogDump | ComBinlogDumpGtid, user_vars: dict[str, str] | None = None,
         conn: FakeConnection | None = None, timeout: float = 5.0) -> FakeConnection:
    async def go() -> FakeConnection:
        c = conn or SharingConnection()
        state = FakeState(user_vars=dict(CRC_VARS if user_vars is None else user_vars))
        await asyncio.wait_for(serve_dump(DumpContext(c, state, command, FakeServer(reader_of(store)))), timeout)
        return c
    return asyncio.run(go())


def nb(filename: str = "", pos: int = 4, flags: int = 0) -> ComBinlogDump:
    return ComBinlogDump(pos, 7, filename, BinlogDumpFlag(flags | BinlogDumpFlag.NON_BLOCK))


def file_events(path: Path, start: int = 4) -> list[bytes]:
    data = path.read_bytes()
    out, pos = [], start
    while pos < len(data):
        size = struct.unpack_from("<I", data, pos + 9)[0]
        out.append(data[pos:pos + size])
        pos += size
    return out


def crc_ok(ev: bytes) -> bool:
    return bool(struct.unpack_from("<I", ev, len(ev) - 4)[0] == zlib.crc32(ev[:-4]))


# --------------------------------------------------------------------------- preamble

def test_mariadb_file_position_from_start(mariadb_store: BinlogStore) -> None:
    conn = dump(mariadb_store, nb("mariadb-bin.000001", flags=BinlogDumpFlag.SEND_ANNOTATE_ROWS))
    evs = events(conn)
    rotate = evs[0]
    ts, kind, server_id, size, log_pos, flags = struct.unpack_from("<IBIIIH", rotate)
    assert (ts, kind, server_id, log_pos, flags) == (0, EventType.ROTATE, 99, 0, 0x20)
    assert size == len(rotate) and crc_ok(rotate)
    rot = decode_event(rotate)
    assert isinstance(rot, RotateEvent) and (rot.next_file, rot.position) == ("mariadb-bin.000001", 4)
    stored = file_events(mariadb_store.file_path("mariadb-bin.000001"))
    fde = evs[1]
    assert fde[17] & 1 == 0 and crc_ok(fde)
    assert fde[13:17] == stored[0][13:17] and fde[FDE_CREATED_OFFSET:FDE_CREATED_OFFSET + 4] != b"\0\0\0\0"
    # Then the file's events untouched, a fake ROTATE and the next file.
    assert evs[2:2 + len(stored) - 1] == stored[1:]
    nxt = decode_event(evs[1 + len(stored)])
    assert isinstance(nxt, RotateEvent) and nxt.next_file == "mariadb-bin.000002" and nxt.header.flags == 0x20
    stored2 = file_events(mariadb_store.file_path("mariadb-bin.000002"))
    assert evs[-(len(stored2) - 1):] == stored2[1:]
    assert last_packet(conn)[0] == 0xFE  # NON_BLOCK: EOF at the end
    assert [s for s, _ in conn.sent] == list(range(1, len(conn.sent) + 1))


def test_empty_filename_means_first_file(mariadb_store: BinlogStore) -> None:
    conn = dump(mariadb_store, nb(""))
    rot = decode_event(events(conn)[0])
    assert isinstance(rot, RotateEvent) and rot.next_file == "mariadb-bin.000001"


def test_mid_file_start_zeroes_fde_log_pos_and_created(mariadb_store: BinlogStore) -> None:
    stored = file_events(mariadb_store.file_path("mariadb-bin.000001"))
    pos = sum(len(e) for e in stored[:5]) + 4  # a transaction start
    conn = dump(mariadb_store, nb("mariadb-bin.000001", pos))
    evs = events(conn)
    rot = decode_event(evs[0])
    assert isinstance(rot, RotateEvent) and rot.position == pos
    fde = evs[1]
    assert fde[13:17] == b"\0\0\0\0" and fde[FDE_CREATED_OFFSET:FDE_CREATED_OFFSET + 4] == b"\0\0\0\0"
    assert crc_ok(fde)
    assert evs[2] == stored[5]


def _row_based_file(directory: Path) -> tuple[Path, dict[str, int]]:
    """One file: a GTID, BEGIN, TABLE_MAP, a statement of two WRITE_ROWS (the first without
    STMT_END_F, as mariadbd splits a statement past binlog_row_event_max_size), XID; another file."""
    b = BinlogFileBuilder("mariadb-bin.000001", "mariadb")
    b.gtid_list([])
    b.maria_txn(0, 1)
    at = {"gtid": b.maria_gtid(0, 2), "begin": b.query("BEGIN")}
    table_id = struct.pack("<Q", 70)[:6]
    at["table_map"] = b.add(EventType.TABLE_MAP, table_id + b"\1\0" + b"\2db\0" + b"\1t\0" + b"\1\3" + b"\0" + b"\0")
    for name, stmt_end in (("rows", 0), ("last_rows", 1)):
        rows = b"".join(b"\0" + struct.pack("<i", n) for n in range(100))  # null bitmap, INT
        at[name] = b.add(EventType.WRITE_ROWS_V1, table_id + struct.pack("<H", stmt_end) + b"\1\1" + rows)
    at["xid"] = b.xid(2)
    b.rotate("mariadb-bin.000002")
    nxt = BinlogFileBuilder("mariadb-bin.000002", "mariadb")
    nxt.gtid_list([MariadbGtid(0, 1, 2)])
    nxt.maria_txn(0, 3)
    nxt.save(directory)
    return b.save(directory), at


def test_mid_statement_reconnect_gets_the_statement_without_rotate_and_fde(tmp_path: Path) -> None:
    """A file/position replica reconnecting between two row events of one statement (binhub restarted
    mid-stream) gets the rest of the statement first: a ROTATE or FDE there, as mariadbd sends, makes
    a MariaDB replica stop with 1595 (its IO thread's end-of-statement check survives the reconnect)."""
    src = tmp_path / "src"
    src.mkdir()
    path, at = _row_based_file(src)
    store = make_store(tmp_path, [path, src / "mariadb-bin.000002"])
    try:
        stored = {offset: ev for offset, ev in zip(_offsets(path), file_events(path), strict=True)}
        conn = dump(store, nb(path.name, at["last_rows"]))
        evs = events(conn)
        # Exactly the file's events from the requested one on, untouched, then the next file as usual.
        assert evs[:3] == [stored[at["last_rows"]], stored[at["xid"]], stored[at["xid"] + len(stored[at["xid"]])]]
        nxt = decode_event(evs[3])
        assert isinstance(nxt, RotateEvent) and (nxt.next_file, nxt.position) == ("mariadb-bin.000002", 4)
        assert evs[4][4] == EventType.FORMAT_DESCRIPTION
        assert [s for s, _ in conn.sent] == list(range(1, len(conn.sent) + 1))
        # Where the replica's check is satisfied (after a TABLE_MAP, a statement's end, a transaction's
        # end) the start is mariadbd's: the artificial ROTATE naming the position, the FDE, the event.
        for name in ("rows", "xid", "gtid"):
            evs = events(dump(store, nb(path.name, at[name])))
            rot = decode_event(evs[0])
            assert isinstance(rot, RotateEvent) and rot.position == at[name], name
            assert evs[1][4] == EventType.FORMAT_DESCRIPTION and evs[1][13:17] == b"\0\0\0\0", name
            assert evs[2] == stored[at[name]], name
    finally:
        store.close()


def _offsets(path: Path) -> list[int]:
    offsets, pos = [], 4
    for ev in file_events(path):
        offsets.append(pos)
        pos += len(ev)
    return offsets


def test_annotate_rows_only_with_the_dump_flag(mariadb_store: BinlogStore) -> None:
    without = [e[4] for e in events(dump(mariadb_store, nb("mariadb-bin.000001")))]
    with_flag = [e[4] for e in events(dump(mariadb_store, nb("mariadb-bin.000001",
                                                                 flags=BinlogDumpFlag.SEND_ANNOTATE_ROWS)))]
    assert EventType.MARIA_ANNOTATE_ROWS not in without
    assert with_flag.count(EventType.MARIA_ANNOTATE_ROWS) == 20


def test_rotate_crc_follows_negotiation(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    b = BinlogFileBuilder("mariadb-bin.000001", "mariadb", crc=False)
    b.gtid_list([])
    b.maria_txn(0, 1)
    store = make_store(tmp_path, [b.save(src)])
    try:
        conn = dump(store, nb("mariadb-bin.000001"), {"master_binlog_checksum": "NONE",
                                                      "mariadb_slave_capability": "4"})
        rot = events(conn)[0]
        assert len(rot) == 19 + 8 + len("mariadb-bin.000001")
        # Without a declaration a store without CRCs is still served (as mariadbd does).
        conn = dump(store, nb("mariadb-bin.000001"), {"mariadb_slave_capability": "4"})
        assert last_packet(conn)[0] == 0xFE
    finally:
        store.close()


# --------------------------------------------------------------------------- errors

def error_of(conn: FakeConnection) -> ErrPacket:
    payload = last_packet(conn)
    assert payload[0] == 0xFF, payload[:40]
    return ErrPacket.parse(payload)


def test_checksum_not_declared_is_refused(mariadb_store: BinlogStore) -> None:
    err = error_of(dump(mariadb_store, nb("mariadb-bin.000001"), {"mariadb_slave_capability": "4"}))
    assert err.code == 1236 and "Slave can not handle replication events with the checksum" in err.message


def test_unknown_file_impossible_position_and_non_boundary(mariadb_store: BinlogStore) -> None:
    err = error_of(dump(mariadb_store, nb("mariadb-bin.000042")))
    assert err.code == 1236 and "Could not find first log file name" in err.message
    err = error_of(dump(mariadb_store, nb("mariadb-bin.000001", 10**9)))
    assert err.code == 1236 and "impossible position" in err.message
    err = error_of(dump(mariadb_store, nb("mariadb-bin.000001", 300)))
    assert err.code == 1236 and "not the start of an event" in err.message


def test_old_mariadb_capability_is_refused(mariadb_store: BinlogStore) -> None:
    err = error_of(dump(mariadb_store, nb("mariadb-bin.000001"), {"master_binlog_checksum": "CRC32"}))
    assert err.code == 1236 and "mariadb_slave_capability" in err.message


# --------------------------------------------------------------------------- MariaDB GTID

def gtid_vars(state: str, **extra: str) -> dict[str, str]:
    return {**CRC_VARS, "slave_connect_state": state, **extra}


def sent_gtids(evs: list[bytes]) -> list[int]:
    return [struct.unpack_from("<Q", e, 19)[0] for e in evs if e[4] == EventType.MARIA_GTID]


def test_mariadb_gtid_start_skips_and_sends_artificial_gtid_list(mariadb_store: BinlogStore) -> None:
    conn = dump(mariadb_store, nb(), gtid_vars("0-1-5"))
    evs = events(conn)
    kinds = [e[4] for e in evs]
    assert kinds[:4] == [EventType.ROTATE, EventType.FORMAT_DESCRIPTION, EventType.MARIA_GTID_LIST,
                         EventType.MARIA_BINLOG_CHECKPOINT]
    fde = evs[1]
    assert fde[13:17] != b"\0\0\0\0" and fde[FDE_CREATED_OFFSET:FDE_CREATED_OFFSET + 4] == b"\0\0\0\0"
    fake = decode_event(evs[4])
    assert isinstance(fake, MariadbGtidListEvent) and fake.header.flags & 0x20
    assert MariadbGtid(0, 1, 5) in fake.gtids
    stored = file_events(mariadb_store.file_path("mariadb-bin.000001"))
    txn_end = sum(len(e) for e in stored[:3 + 5 * 4]) + 4
    assert fake.header.log_pos == txn_end
    assert sent_gtids(evs) == list(range(6, 21))


def test_mariadb_gtid_in_second_file_and_at_file_end(mariadb_store: BinlogStore) -> None:
    evs = events(dump(mariadb_store, nb(), gtid_vars("0-1-10")))
    rot = decode_event(evs[0])
    assert isinstance(rot, RotateEvent) and rot.next_file == "mariadb-bin.000002"
    assert sent_gtids(evs) == list(range(11, 21))
    assert not any(e[4] == EventType.MARIA_GTID_LIST and e[17] & 0x20 for e in evs)  # nothing skipped


def test_mariadb_gtid_errors(mariadb_store: BinlogStore) -> None:
    err = error_of(dump(mariadb_store, nb(), gtid_vars("0-1-500")))
    assert err.code == 1236 and "0-1-500, which is not in the master's binlog" in err.message
    ok = dump(mariadb_store, nb(), gtid_vars("0-1-500", slave_gtid_ignore_duplicates="1"))
    assert last_packet(ok)[0] == 0xFE


def test_mariadb_purged_gtid(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    store = make_store(tmp_path, mariadb_files(src)[1:])  # GTIDs 1-10 were purged
    try:
        err = error_of(dump(store, nb(), gtid_vars("0-1-3")))
        assert err.code == 1236 and "Could not find GTID state requested by slave" in err.message
        assert sent_gtids(events(dump(store, nb(), gtid_vars("0-1-10")))) == list(range(11, 21))
    finally:
        store.close()


def test_mariadb_strict_mode_refuses_a_hole(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    b = BinlogFileBuilder("mariadb-bin.000001", "mariadb")
    b.gtid_list([MariadbGtid(0, 1, 1)])
    for seq in (2, 3, 5, 6):
        b.maria_txn(0, seq)
    store = make_store(tmp_path, [b.save(src)])
    try:
        err = error_of(dump(store, nb(), gtid_vars("0-1-4", slave_gtid_strict_mode="1")))
        assert err.code == 1236 and "missing the GTID 0-1-4" in err.message
        assert sent_gtids(events(dump(store, nb(), gtid_vars("0-1-4")))) == [5, 6]
    finally:
        store.close()


def test_gtid_index_jump_sends_the_same_stream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_mod, "GTID_INDEX_EVERY", 7)  # the relay's index entries
    monkeypatch.setattr(maintenance_mod, "GTID_INDEX_EVERY", 7)  # an import's index entries
    src = tmp_path / "src"
    src.mkdir()
    store = make_store(tmp_path, mariadb_files(src, txns=60, files=2))
    try:
        from binhub.store.seek import plan_mariadb_gtid

        plan = plan_mariadb_gtid(reader_of(store), MariadbGtidList.parse("0-1-100"), strict=False, ignore_duplicates=False)
        assert plan.jumps and plan.file == "mariadb-bin.000002"
        jumped = events(dump(store, nb(), gtid_vars("0-1-100")))
        store.gtid_index.rewrite([])
        plan = plan_mariadb_gtid(reader_of(store), MariadbGtidList.parse("0-1-100"), strict=False, ignore_duplicates=False)
        assert not plan.jumps
        scanned = events(dump(store, nb(), gtid_vars("0-1-100")))
        assert jumped == scanned
        assert sent_gtids(jumped) == list(range(101, 121))
    finally:
        store.close()


# --------------------------------------------------------------------------- MySQL GTID

def gtid_dump(exclude: str, flags: int = BinlogDumpFlag.USE_HEARTBEAT_EVENT_V2) -> ComBinlogDumpGtid:
    data = MysqlGtidSet.parse(exclude).encode()
    return ComBinlogDumpGtid(7, data, "", 4, BinlogDumpFlag(flags | BinlogDumpFlag.THROUGH_GTID | 1))


def mysql_gnos(evs: list[bytes]) -> list[str]:
    out = []
    for e in evs:
        if e[4] in (EventType.GTID, EventType.GTID_TAGGED):
            g = decode_event(e)
            out.append(str(getattr(g, "gtid", "")))
    return out


def test_mysql_gtid_dump_skips_with_heartbeat(mysql_store: BinlogStore) -> None:
    conn = dump(mysql_store, gtid_dump(f"{U1}:1-13"), {"master_binlog_checksum": "CRC32"})
    evs = events(conn)
    kinds = [e[4] for e in evs]
    assert kinds[:3] == [EventType.ROTATE, EventType.FORMAT_DESCRIPTION, EventType.PREVIOUS_GTIDS]
    rot = decode_event(evs[0])
    assert isinstance(rot, RotateEvent) and rot.next_file == "mysql-bin.000002" and rot.position == 4
    assert evs[1][FDE_CREATED_OFFSET:FDE_CREATED_OFFSET + 4] == b"\0\0\0\0" and evs[1][13:17] != b"\0\0\0\0"
    hb = decode_event(evs[3])
    assert isinstance(hb, HeartbeatEvent) and hb.header.type_code == EventType.HEARTBEAT_V2
    assert hb.log_ident == "mysql-bin.000002"
    stored = file_events(mysql_store.file_path("mysql-bin.000002"))
    assert hb.log_pos == 4 + sum(len(e) for e in stored[:2 + 3 * 4])
    assert mysql_gnos(evs) == [f"{U1}:{n}" for n in range(14, 21)] + [f"{U1}:blue:1"]
    assert last_packet(conn)[0] == 0xFE


def test_mysql_tagged_gtid_is_skipped(mysql_store: BinlogStore) -> None:
    conn = dump(mysql_store, gtid_dump(f"{U1}:1-20,{U1}:blue:1", flags=0), {"master_binlog_checksum": "CRC32"})
    evs = events(conn)
    assert mysql_gnos(evs) == []
    hb = [decode_event(e) for e in evs if e[4] in (EventType.HEARTBEAT, EventType.HEARTBEAT_V2)]
    assert hb and hb[-1].header.type_code == EventType.HEARTBEAT  # v1 without flag bit 1


def test_mysql_purged_gtids_are_refused(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    paths = mysql_files(src)
    store = make_store(tmp_path, paths[1:])  # the store starts after GTIDs 1-10
    try:
        err = error_of(dump(store, gtid_dump(f"{U1}:1-5"), {"master_binlog_checksum": "CRC32"}))
        assert err.code == 1236 and "purged required binary logs" in err.message and f"{U1}:6-10" in err.message
    finally:
        store.close()


# --------------------------------------------------------------------------- live, heartbeats, semi-sync

def append_txns(store: BinlogStore, first: int, n: int) -> None:
    """Append MariaDB transactions as the relay does (positions rewritten for where they land)."""
    b = BinlogFileBuilder("x.000001", "mariadb")
    head = len(b.buf)
    for seq in range(first, first + n):
        b.maria_txn(0, seq)
    shift = store.position - head
    for ev in file_events_bytes(bytes(b.buf))[1:]:
        raw = bytearray(ev)
        struct.pack_into("<I", raw, 13, struct.unpack_from("<I", raw, 13)[0] + shift)
        struct.pack_into("<I", raw, len(raw) - 4, zlib.crc32(raw[:-4]))
        store.append(bytes(raw))
        if raw[4] == EventType.XID:
            store.mark_boundary(MariadbGtid(0, 1, struct.unpack_from("<Q", raw, 19)[0]), 0)
    store.commit()


def file_events_bytes(data: bytes) -> list[bytes]:
    out, pos = [], 4
    while pos < len(data):
        size = struct.unpack_from("<I", data, pos + 9)[0]
        out.append(data[pos:pos + size])
        pos += size
    return out


async def until(predicate: Callable[[], object], what: str, timeout: float = 5.0) -> None:
    """Poll ``predicate`` on the running loop until it holds; fail naming ``what`` after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, f"timed out after {timeout:g}s waiting for {what}"
        await asyncio.sleep(0.005)


def test_replica_ahead_of_the_store_waits_for_the_relay(mariadb_store: BinlogStore,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """The replica has 0-1-22, the store ends at 0-1-20: the dump waits, silent, until the relay has more."""
    async def go() -> None:
        conn = SharingConnection()
        cmd = ComBinlogDump(4, 7, "", BinlogDumpFlag(0))
        server = FakeServer(reader_of(mariadb_store), replica_ahead_wait=10.0)
        task = asyncio.create_task(serve_dump(DumpContext(conn, FakeState(user_vars=gtid_vars("0-1-22")), cmd, server)))
        await until(lambda: "ahead of binhub's store" in caplog.text, "the dump to start waiting for the relay")
        assert not conn.sent and not task.done(), "nothing is sent while the store is behind the replica"
        append_txns(mariadb_store, 21, 3)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        while sent_gtids(events(conn)) != [23]:
            assert loop.time() - t0 < 5.0, "the dump starts once the store has the replica's GTID"
            await asyncio.sleep(0.01)
        conn.incoming.put_nowait(b"")
        await asyncio.wait_for(task, 2)
    asyncio.run(go())


def test_replica_ahead_gets_1236_once_the_wait_is_over(mariadb_store: BinlogStore) -> None:
    async def go(vars_: dict[str, str], cmd: ComBinlogDump) -> FakeConnection:
        conn = SharingConnection()
        server = FakeServer(reader_of(mariadb_store), replica_ahead_wait=0.3)
        t0 = time.monotonic()
        await asyncio.wait_for(serve_dump(DumpContext(conn, FakeState(user_vars=vars_), cmd, server)), 5)
        assert time.monotonic() - t0 >= 0.3, "it waited for the relay first"
        return conn
    err = error_of(asyncio.run(go(gtid_vars("0-1-500"), nb())))
    assert err.code == 1236 and "0-1-500, which is not in the master's binlog" in err.message
    assert "the relay has not reached it" in err.message
    err = error_of(asyncio.run(go(dict(CRC_VARS), nb("mariadb-bin.000003"))))
    assert err.code == 1236 and "the relay has not reached it" in err.message
    end = mariadb_store.position
    err = error_of(asyncio.run(go(dict(CRC_VARS), nb("mariadb-bin.000002", end + 100))))
    assert err.code == 1236 and f"beyond what binhub's store holds ({end})" in err.message


def test_a_dump_before_the_relay_waits_for_its_first_file(tmp_path: Path) -> None:
    """``binhub serve`` started before ``binhub relay``: the store does not even exist when the replica
    asks; its dump waits, and streams once the relay (here: a writer of the same directory, seen the
    way another process sees it) has made the first file durable."""
    src = tmp_path / "src"
    src.mkdir()
    paths = mariadb_files(src)
    data_dir = tmp_path / "later" / "store"
    reader = StoreReader.open(data_dir, must_exist=False)
    assert (reader.files, reader.durable_files(), reader.durable_position, reader.executed_gtids()) == ([], [], None, None)

    async def go() -> SharingConnection:
        conn = SharingConnection()
        state = FakeState(greeted_version="5.5.5-10.11.0-MariaDB-binhub")
        cmd = nb(flags=BinlogDumpFlag.SEND_ANNOTATE_ROWS)
        task = asyncio.create_task(serve_dump(DumpContext(conn, state, cmd, FakeServer(reader, replica_ahead_wait=10))))
        await asyncio.sleep(0.5)
        assert not conn.sent and not task.done(), "nothing is sent before the relay stored anything"
        writer = BinlogStore.open(data_dir)
        try:
            for p in paths:
                writer.import_file(p)
            await asyncio.wait_for(task, 5)
        finally:
            writer.close()
        return conn
    conn = asyncio.run(go())
    sent = events(conn)
    first, second = file_events(paths[0]), file_events(paths[1])
    assert sent[2:1 + len(first)] == first[1:] and sent[-(len(second) - 1):] == second[1:]
    assert last_packet(conn)[0] == 0xFE  # NON_BLOCK: EOF once everything durable was sent
    assert str(reader.executed_gtids()) == "0-1-20"
    reader.close()


def test_a_replica_greeted_as_mariadb_reconnects_to_a_mysql_store(mysql_store: BinlogStore) -> None:
    """Greeted before binhub knew its upstream (as MariaDB), a replica of what turns out to be a MySQL
    store is sent away with an error that makes it reconnect (not 1236, which stops it)."""
    async def go(greeted: str) -> FakeConnection:
        conn = SharingConnection()
        state = FakeState(greeted_version=greeted)
        await asyncio.wait_for(serve_dump(DumpContext(conn, state, gtid_dump(""), FakeServer(reader_of(mysql_store)))), 5)
        return conn
    err = error_of(asyncio.run(go("5.5.5-10.11.0-MariaDB-binhub")))
    assert err.code == 1105 and "reconnect" in err.message
    assert mysql_gnos(events(asyncio.run(go("8.0.40-binhub"))))


def test_live_follow_heartbeat_and_disconnect(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    b = BinlogFileBuilder("mariadb-bin.000001", "mariadb")
    b.gtid_list([])
    b.maria_txn(0, 1)
    store = make_store(tmp_path, [b.save(src)])
    vars_ = {**CRC_VARS, "master_heartbeat_period": str(50_000_000)}

    async def go() -> FakeConnection:
        conn = SharingConnection()
        cmd = ComBinlogDump(4, 7, "mariadb-bin.000001", BinlogDumpFlag(0))
        task = asyncio.create_task(serve_dump(DumpContext(conn, FakeState(user_vars=vars_), cmd, FakeServer(reader_of(store)))))
        await until(lambda: any(p[5] == EventType.HEARTBEAT for p in conn.payloads), "a heartbeat (period 50 ms)")
        assert [lease.holder for lease in live_leases(store.data_dir)], "the dump holds a reader lease"
        hbs = [decode_event(p[1:]) for p in conn.payloads if p[5] == EventType.HEARTBEAT]
        assert hbs and all(isinstance(h, HeartbeatEvent) and h.log_ident == "mariadb-bin.000001"
                           and h.log_pos == store.position for h in hbs)
        before = len(conn.payloads)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        append_txns(store, 2, 3)
        while sent_gtids([p[1:] for p in conn.payloads[before:]]) != [2, 3, 4]:
            await asyncio.sleep(0.001)
            assert loop.time() - t0 < 1.0
        conn.incoming.put_nowait(b"")  # the replica goes away
        await asyncio.wait_for(task, 2)
        assert not live_leases(store.data_dir), "the lease is released when the dump ends"
        return conn
    try:
        asyncio.run(go())
    finally:
        store.close()


@pytest.mark.parametrize("flags", [0, BinlogDumpFlag.SEND_ANNOTATE_ROWS])
def test_shared_spans_equal_packet_by_packet(mariadb_store: BinlogStore, flags: int) -> None:
    """Past the FDE a replica gets framed spans shared with other replicas: the same packets, the
    same sequence ids as framing each event on its own, ANNOTATE_ROWS dropped or kept alike."""
    vars_ = dict(CRC_VARS)
    plain = dump(mariadb_store, nb("mariadb-bin.000001", flags=flags), vars_, conn=FakeConnection())
    shared = dump(mariadb_store, nb("mariadb-bin.000001", flags=flags), vars_, conn=SharingConnection())
    assert isinstance(shared, SharingConnection) and shared.shared_writes >= 2, "one span per file at least"
    assert shared.sent == plain.sent
    annotates = sum(1 for p in plain.payloads if p[0] == 0 and p[5] == EventType.MARIA_ANNOTATE_ROWS)
    assert (annotates > 0) == bool(flags)


def test_semisync_framing_sequence_and_acks(mariadb_store: BinlogStore) -> None:
    vars_ = {**CRC_VARS, "rpl_semi_sync_slave": "1"}
    conn = FakeConnection()
    conn.incoming.put_nowait(SemisyncAck("mariadb-bin.000001", 123).build())
    dump(mariadb_store, nb("mariadb-bin.000001"), vars_, conn=conn)
    data = [(s, p) for s, p in conn.sent if p[0] == 0]
    assert all(p[1] == 0xEF for _, p in data)
    flagged = [i for i, (_, p) in enumerate(data) if p[2] & 1]
    assert flagged, "an ack is requested at a transaction end"
    for i in flagged:
        assert data[i][1][3 + 4] == EventType.XID
        if i + 1 < len(data):
            assert data[i + 1][0] == 1, "after an ack request the primary restarts sequence ids at 1"


def test_large_event_crosses_chunks(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    b = BinlogFileBuilder("mariadb-bin.000001", "mariadb")
    b.gtid_list([])
    b.maria_txn(0, 1, pad=17 * 1024 * 1024)  # > 16 MiB: the connection splits the packet
    b.maria_txn(0, 2)
    path = b.save(src)
    store = make_store(tmp_path, [path])
    try:
        evs = events(dump(store, nb("mariadb-bin.000001")))
        assert evs[2:] == file_events(path)[1:]
        assert max(len(e) for e in evs) + 1 > 0xFFFFFF
    finally:
        store.close()


# --------------------------------------------------------------------------- how the request is read

def test_nul_padded_file_name_starts_at_the_first_file(mariadb_store: BinlogStore) -> None:
    """mysql-replication's MariaDB mode sends "\\0\\0\\0\\0": an empty C string, the first file (as mariadbd)."""
    raw = b"\x12" + struct.pack("<IHI", 4, int(BinlogDumpFlag.NON_BLOCK), 7) + b"\0\0\0\0"
    evs = events(dump(mariadb_store, ComBinlogDump.parse(raw)))
    assert evs == events(dump(mariadb_store, nb("mariadb-bin.000001")))
    rot = decode_event(evs[0])
    assert isinstance(rot, RotateEvent) and rot.next_file == "mariadb-bin.000001"


def test_mysql_gtid_dump_naming_a_file_starts_there_and_skips_the_set(mysql_store: BinlogStore) -> None:
    """mysqld's check_start_file: a named file is the start even in GTID mode (mysqlbinlog --exclude-gtids)."""
    data = MysqlGtidSet.parse(f"{U1}:1-15").encode()
    cmd = ComBinlogDumpGtid(7, data, "mysql-bin.000001", 4, BinlogDumpFlag.THROUGH_GTID | BinlogDumpFlag.NON_BLOCK)
    evs = events(dump(mysql_store, cmd, {"master_binlog_checksum": "CRC32"}))
    rot = decode_event(evs[0])
    assert isinstance(rot, RotateEvent) and rot.next_file == "mysql-bin.000001"
    everything = mysql_gnos(events(dump(mysql_store, nb("mysql-bin.000001"), {"master_binlog_checksum": "CRC32"})))
    assert f"{U1}:3" in everything
    assert mysql_gnos(evs) == [g for g in everything if g not in {f"{U1}:{n}" for n in range(1, 16)}]


def test_mysql_dumps_below_position_4_are_refused(mysql_store: BinlogStore) -> None:
    data = MysqlGtidSet.parse(f"{U1}:1-15").encode()
    for cmd in (ComBinlogDumpGtid(7, data, "", 0, BinlogDumpFlag.THROUGH_GTID | BinlogDumpFlag.NON_BLOCK),
                nb("mysql-bin.000001", pos=3), nb("", pos=0)):
        err = ErrPacket.parse(last_packet(dump(mysql_store, cmd, {"master_binlog_checksum": "CRC32"})))
        assert (err.code, err.message) == (1236, "Client requested master to start replication from position < 4")


def test_mariadb_positions_below_4(mariadb_store: BinlogStore) -> None:
    """mariadbd: "impossible position" by file/position; in GTID mode the position is not read at all."""
    err = ErrPacket.parse(last_packet(dump(mariadb_store, nb("mariadb-bin.000001", pos=0))))
    assert err.code == 1236 and err.message.startswith("Client requested master to start replication from impossible")
    evs = events(dump(mariadb_store, ComBinlogDump(0, 7, "", BinlogDumpFlag.NON_BLOCK), gtid_vars("0-1-5")))
    assert sent_gtids(evs) == list(range(6, 21))


# --------------------------------------------------------------------------- START SLAVE UNTIL master_gtid_pos

def test_until_gtid_ends_with_a_flagged_gtid_list_and_eof(mariadb_store: BinlogStore) -> None:
    """What mariadbd sends at the stop: the stop group, a GTID_LIST with FLAG_UNTIL_REACHED, then EOF.

    Blocking dump (no NON_BLOCK): the EOF is the UNTIL stop's, not the end of the store's.
    """
    conn = dump(mariadb_store, ComBinlogDump(4, 7, "", BinlogDumpFlag(0)),
                gtid_vars("0-1-5", slave_until_gtid="0-1-13"))
    evs = events(conn)
    assert sent_gtids(evs) == list(range(6, 14))
    last = decode_event(evs[-1])
    assert isinstance(last, MariadbGtidListEvent) and last.header.flags & 0x20  # artificial
    count_word = struct.unpack_from("<I", evs[-1], 19)[0]
    assert count_word >> 28 == 1  # Gtid_list_log_event::FLAG_UNTIL_REACHED
    assert [str(g) for g in last.gtids] == ["0-1-13"]
    assert evs[-2][4] == EventType.XID  # right after the stop transaction's end
    assert last_packet(conn)[0] == 0xFE


def test_until_gtid_already_reached_at_the_start(mariadb_store: BinlogStore) -> None:
    """A stop the start file's GTID_LIST covers: the head, the flagged GTID_LIST, EOF; no transaction."""
    conn = dump(mariadb_store, ComBinlogDump(4, 7, "", BinlogDumpFlag(0)),
                gtid_vars("0-1-12", slave_until_gtid="0-1-3"))
    evs = events(conn)
    assert sent_gtids(evs) == []
    assert [e[4] for e in evs] == [EventType.ROTATE, EventType.FORMAT_DESCRIPTION, EventType.MARIA_GTID_LIST,
                                   EventType.MARIA_GTID_LIST]
    assert struct.unpack_from("<I", evs[-1], 19)[0] >> 28 == 1
    assert last_packet(conn)[0] == 0xFE
