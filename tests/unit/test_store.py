"""The store without a server: crash recovery, the in-use flag, the GTID index, the lock, purge rules,
imports, a full disk, and the order of fsync and semi-sync acks.

The events are real: two files recorded once from MariaDB 10.11 (tests/data/binlog/mariadb-10.11,
see the README there), cut, corrupted and replayed through the writer API the relay uses.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from binhub.binlog.constants import EventType
from binhub.binlog.file import BinlogFileReader, RawEvent
from binhub.binlog.gtid import MariadbGtidList
from binhub.binlog.transaction import TransactionTracker
from binhub.errors import DiskFull, FileInUse, StoreLocked
from binhub.store import BinlogStore, DurablePosition, StoreReader
from binhub.store import recovery as store_recovery
from binhub.store.catalog import verify_files
from binhub.store.retention import PurgeRules, ReaderLease, StreamLease, live_leases, plan_purge
from tests.conftest import TEST_DATA

RECORDED = TEST_DATA / "binlog" / "mariadb-10.11"
FILE2, FILE3 = "mysql-bin.000002", "mysql-bin.000003"
FLAGS = 21  # file offset of the FDE's low flags byte


def raw(name: str) -> bytes:
    return (RECORDED / name).read_bytes()


@dataclass
class Walk:
    events: list[RawEvent]
    boundaries: list[int]  # file offsets where a transaction (or a control event) ends
    gtids: list[tuple[int, str]]  # (end offset, gtid) of each transaction


def walk(data: bytes, name: str = FILE3) -> Walk:
    import io

    reader = BinlogFileReader(io.BytesIO(data), name)
    tracker = TransactionTracker()
    events, boundaries, gtids = [], [4], []
    for ev in reader:
        events.append(ev)
        done = tracker.transactions
        if tracker.feed(ev.data, 4):
            boundaries.append(ev.end)
            if tracker.transactions != done and tracker.last_gtid is not None:
                gtids.append((ev.end, str(tracker.last_gtid)))
    return Walk(events, boundaries, gtids)


def seed(data_dir: Path, files: dict[str, bytes], state: dict[str, Any] | None = None) -> None:
    """A store directory as a crash would leave it: binlog files (and perhaps a state file), no index."""
    (data_dir / "binlog").mkdir(parents=True)
    for name, data in files.items():
        (data_dir / "binlog" / name).write_bytes(data)
    if state is not None:
        (data_dir / "state.json").write_text(json.dumps({"format": 1, **state}))


def header_position(name: str) -> MariadbGtidList:
    """What the recorded file's GTID_LIST says came before it."""
    store_walk = walk(raw(name), name)
    for ev in store_walk.events:
        if ev.header.type_code == EventType.MARIA_GTID_LIST:
            from binhub.binlog.decode import decode_event
            from binhub.binlog.events import MariadbGtidListEvent

            event = decode_event(ev.data, None)
            assert isinstance(event, MariadbGtidListEvent)
            return store_recovery.mariadb_position(event.gtids)
    raise AssertionError("no GTID_LIST")


def expected_executed(name: str, upto: int) -> str:
    pos = header_position(name)
    for end, gtid in walk(raw(name), name).gtids:
        if end <= upto:
            pos = pos.union(MariadbGtidList.parse(gtid))
    return str(pos)


# ---------------------------------------------------------------------------------------------
# recovery


def test_recorded_files_are_what_the_tests_assume() -> None:
    w2, w3 = walk(raw(FILE2), FILE2), walk(raw(FILE3))
    assert w2.events[-1].header.type_code == EventType.ROTATE and raw(FILE2)[FLAGS] & 1 == 0
    assert w3.events[-1].header.type_code != EventType.ROTATE and raw(FILE3)[FLAGS] & 1 == 1
    assert len(w2.gtids) >= 15 and len(w3.gtids) >= 6
    assert w3.boundaries[-1] == len(raw(FILE3))


def test_recovery_cuts_every_torn_tail_back_to_the_last_transaction(tmp_path: Path) -> None:
    data = raw(FILE3)
    w = walk(data)
    # Every event end (inside and between transactions) and points inside events.
    cuts = sorted({ev.end for ev in w.events} | {ev.offset + 7 for ev in w.events} | {5, 20, 100})
    for i, cut in enumerate(cuts):
        d = tmp_path / f"s{i}"
        seed(d, {FILE2: raw(FILE2), FILE3: data[:cut]})
        store = BinlogStore.open(d)
        try:
            expected = max(b for b in w.boundaries if b <= cut)
            assert store.position == expected == (d / "binlog" / FILE3).stat().st_size, cut
            assert store.at_boundary and store.current_file == FILE3 and not store.current_finished
            assert str(store.executed_gtids) == expected_executed(FILE3, expected), cut
            assert store.durable_position is not None and store.durable_position.position == expected
        finally:
            store.close()
        assert (d / "binlog" / FILE3).read_bytes() == data[:expected]
        assert verify_files([d / "binlog" / FILE2, d / "binlog" / FILE3]).ok


@pytest.mark.parametrize("garbage", [b"\x00" * 3, b"\xff" * 40, random.Random(1).randbytes(300),
                                     # a plausible header announcing more bytes than there are
                                     (1700000000).to_bytes(4, "little") + b"\x1e" + b"\x01\x00\x00\x00"
                                     + (5000).to_bytes(4, "little") + b"\x00" * 30])
def test_recovery_drops_trailing_garbage(tmp_path: Path, garbage: bytes) -> None:
    seed(tmp_path, {FILE3: raw(FILE3) + garbage})
    store = BinlogStore.open(tmp_path)
    store.close()
    assert (tmp_path / "binlog" / FILE3).read_bytes() == raw(FILE3)


def test_recovery_of_a_corrupt_event_in_the_tail_cuts_before_it(tmp_path: Path) -> None:
    data = bytearray(raw(FILE3))
    w = walk(bytes(data))
    last_txn_start = w.boundaries[-2]
    data[last_txn_start + 30] ^= 0xFF  # a bit flip in the last transaction: its CRC fails
    seed(tmp_path, {FILE3: bytes(data)})
    store = BinlogStore.open(tmp_path)
    store.close()
    assert (tmp_path / "binlog" / FILE3).stat().st_size == last_txn_start


def test_stale_state_is_only_a_hint(tmp_path: Path) -> None:
    w = walk(raw(FILE3))
    mid = w.boundaries[len(w.boundaries) // 2]
    # The state says "durable up to mid" (it is written at most every second): the scan goes on from there.
    seed(tmp_path, {FILE2: raw(FILE2), FILE3: raw(FILE3)},
         state={"last_file": FILE3, "last_position": mid, "executed_gtids": expected_executed(FILE3, mid)})
    store = BinlogStore.open(tmp_path)
    try:
        assert store.position == len(raw(FILE3))
        assert str(store.executed_gtids) == expected_executed(FILE3, len(raw(FILE3)))
    finally:
        store.close()
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["last_file"] == FILE3 and state["last_position"] == len(raw(FILE3))


def test_state_of_an_older_file_or_beyond_the_end(tmp_path: Path) -> None:
    full = expected_executed(FILE3, len(raw(FILE3)))
    for i, state in enumerate([{"last_file": FILE2, "last_position": 400, "executed_gtids": "0-1-3"},
                               {"last_file": FILE3, "last_position": 10**9, "executed_gtids": "0-1-1"}]):
        d = tmp_path / str(i)
        seed(d, {FILE2: raw(FILE2), FILE3: raw(FILE3)}, state=state)
        store = BinlogStore.open(d)
        try:
            assert store.position == len(raw(FILE3))
            assert str(store.executed_gtids) == full
        finally:
            store.close()


def test_a_file_killed_right_after_its_creation_keeps_the_executed_set(tmp_path: Path) -> None:
    """Killed between begin_file (magic only) and its first event: the GTIDs before it are not forgotten."""
    done = expected_executed(FILE3, len(raw(FILE3)))
    seed(tmp_path, {FILE2: raw(FILE2), FILE3: raw(FILE3), "mysql-bin.000004": b"\xfebin"},
         state={"last_file": FILE3, "last_position": len(raw(FILE3)), "executed_gtids": done})
    store = BinlogStore.open(tmp_path)
    try:
        assert store.current_file == "mysql-bin.000004" and store.position == 4
        assert str(store.executed_gtids) == done
    finally:
        store.close()


# ---------------------------------------------------------------------------------------------
# the in-use flag


def test_recovery_clears_the_flag_of_a_finished_file_and_keeps_it_on_an_open_one(tmp_path: Path) -> None:
    finished = bytearray(raw(FILE2))
    finished[FLAGS] |= 1  # killed between the ROTATE and clearing the flag
    seed(tmp_path / "a", {FILE2: bytes(finished)})
    BinlogStore.open(tmp_path / "a").close()
    assert (tmp_path / "a" / "binlog" / FILE2).read_bytes() == raw(FILE2)
    # An open file (no ROTATE/STOP): the upstream still has it in use, and so does the store.
    seed(tmp_path / "b", {FILE3: raw(FILE3)})
    BinlogStore.open(tmp_path / "b").close()
    assert (tmp_path / "b" / "binlog" / FILE3).read_bytes() == raw(FILE3)


def test_reopening_at_the_end_of_a_finished_file_knows_it_is_finished(tmp_path: Path) -> None:
    seed(tmp_path, {FILE2: raw(FILE2)},
         state={"last_file": FILE2, "last_position": len(raw(FILE2)), "executed_gtids": "0-1-1"})
    store = BinlogStore.open(tmp_path)
    try:
        assert store.current_finished and store.next_file == FILE3
    finally:
        store.close()


def replay(store: BinlogStore, name: str, events: list[RawEvent], *, start: int = 0,
           begin: bool | None = None) -> None:
    """Feed events to the store as the relay does (begin_file at 0, boundaries, rotate)."""
    tracker = TransactionTracker()
    if begin if begin is not None else start == 0:
        store.begin_file(name)
    for ev in events[start:]:
        if ev.header.type_code == EventType.FORMAT_DESCRIPTION:
            store.append_fde(ev.data)
        else:
            store.append(ev.data)
        done = tracker.transactions
        if tracker.feed(ev.data, 4):
            store.mark_boundary(tracker.last_gtid if tracker.transactions != done else None, ev.header.timestamp)
            if ev.header.type_code == EventType.ROTATE:
                store.mark_finished(bytes(ev.data[27:-4]).decode())
        store.flush()


def test_writer_sets_the_flag_on_the_active_file_and_clears_it_at_rotation(tmp_path: Path) -> None:
    store = BinlogStore.open(tmp_path)
    try:
        w2 = walk(raw(FILE2), FILE2)
        replay(store, FILE2, w2.events[:-1])  # all but the ROTATE
        store.commit()
        on_disk = (tmp_path / "binlog" / FILE2).read_bytes()
        assert on_disk[FLAGS] & 1 == 1  # as on the primary while it was active
        assert verify_files([tmp_path / "binlog" / FILE2]).ok  # the CRC masks the flag
        replay(store, FILE2, w2.events, start=len(w2.events) - 1)
        store.close_file()
        assert (tmp_path / "binlog" / FILE2).read_bytes() == raw(FILE2)
        replay(store, FILE3, walk(raw(FILE3)).events)
        store.commit()
    finally:
        store.close()
    assert (tmp_path / "binlog" / FILE3).read_bytes() == raw(FILE3)


# ---------------------------------------------------------------------------------------------
# the GTID index


def test_gtid_index_points_at_the_first_transaction_of_each_file(tmp_path: Path) -> None:
    store = BinlogStore.open(tmp_path)
    try:
        replay(store, FILE2, walk(raw(FILE2), FILE2).events)
        store.close_file()
        replay(store, FILE3, walk(raw(FILE3)).events)
        store.commit()
        entries = store.gtid_index.entries()
    finally:
        store.close()
    assert [e.file for e in entries] == [FILE2, FILE3]
    for entry in entries:
        data = raw(entry.file)
        w = walk(data, entry.file)
        first_end, first_gtid = w.gtids[0]
        assert entry.gtid == first_gtid
        assert data[entry.offset + 4] == EventType.MARIA_GTID  # the transaction's own start
        assert entry.offset in w.boundaries and entry.offset < first_end


def test_recovery_drops_index_entries_past_the_cut(tmp_path: Path) -> None:
    store = BinlogStore.open(tmp_path)
    replay(store, FILE2, walk(raw(FILE2), FILE2).events)
    store.close_file()
    replay(store, FILE3, walk(raw(FILE3)).events)
    store.commit()
    store.close()
    # the last file loses everything after its header (FDE, GTID_LIST, BINLOG_CHECKPOINT)
    first_gtid_at = [e for e in StoreReader.open(tmp_path).gtid_index.entries() if e.file == FILE3][0].offset
    with open(tmp_path / "binlog" / FILE3, "r+b") as f:
        f.truncate(first_gtid_at + 10)
    store = BinlogStore.open(tmp_path)
    try:
        assert [e.file for e in store.gtid_index.entries()] == [FILE2]
        replay(store, FILE3, walk(raw(FILE3)).events, start=_index_of(walk(raw(FILE3)), first_gtid_at))
        store.commit()
        assert [e.file for e in store.gtid_index.entries()] == [FILE2, FILE3]
    finally:
        store.close()
    assert (tmp_path / "binlog" / FILE3).read_bytes() == raw(FILE3)


def _index_of(w: Walk, offset: int) -> int:
    return next(i for i, ev in enumerate(w.events) if ev.offset == offset)


# ---------------------------------------------------------------------------------------------
# one writer


def test_a_second_writer_is_refused(tmp_path: Path) -> None:
    first = BinlogStore.open(tmp_path)
    try:
        with pytest.raises(StoreLocked, match=f"pid {os.getpid()}"):
            BinlogStore.open(tmp_path)
        StoreReader.open(tmp_path)  # readers need no lock
    finally:
        first.close()
    BinlogStore.open(tmp_path).close()  # released on close


def test_a_killed_writer_leaves_no_lock(tmp_path: Path) -> None:
    code = ("import sys, time; from binhub.store import BinlogStore; BinlogStore.open(sys.argv[1]); "
            "print('locked', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        with pytest.raises(StoreLocked):
            BinlogStore.open(tmp_path)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    BinlogStore.open(tmp_path).close()


def test_readers_see_whether_a_writer_holds_the_store(tmp_path: Path) -> None:
    code = ("import sys, time; from binhub.store import BinlogStore; BinlogStore.open(sys.argv[1]); "
            "print('locked', flush=True); time.sleep(60)")
    BinlogStore.open(tmp_path).close()
    reader = StoreReader.open(tmp_path)
    assert not reader.has_writer()
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        assert reader.has_writer()
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert not reader.has_writer()  # the kernel dropped the dead writer's lock
    writer = BinlogStore.open(tmp_path)
    try:
        assert writer.reader.has_writer() and reader.has_writer()  # in the same process too
    finally:
        writer.close()
    assert not reader.has_writer()


def test_a_writer_starting_during_a_probe_still_gets_the_lock(tmp_path: Path) -> None:
    import fcntl
    import threading

    (tmp_path / "binlog").mkdir()
    fd = os.open(tmp_path / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # a reader's probe, caught in the middle
    threading.Timer(0.01, os.close, (fd,)).start()  # well inside PROBE_GRACE
    BinlogStore.open(tmp_path).close()


def test_the_upstream_source_is_kept_in_the_state_without_a_password(tmp_path: Path) -> None:
    from binhub.relay.config import RelayConfig, parse_source_dsn
    from binhub.relay.session_setup import record_source
    from binhub.store.state import StoreState, UpstreamSource

    config = RelayConfig(source=parse_source_dsn("mariadb://repl:s3cret@db1.example:3310"), ssl_mode="verify_ca",
                         reconnect_max_backoff=12.4, heartbeat_period=2.5)
    store = BinlogStore.open(tmp_path)
    try:
        assert store.state.source is None
        record_source(store, config, tls=True)
        saved = (tmp_path / "state.json").read_bytes()
        record_source(store, config, tls=True)
        assert (tmp_path / "state.json").read_bytes() == saved  # unchanged: not rewritten
    finally:
        store.close()
    state = StoreState.load(tmp_path / "state.json")
    assert state.source == UpstreamSource("db1.example", 3310, "repl", ssl=True, ssl_verify_server_cert=True,
                                          connect_retry=12, heartbeat_period=2.5)
    assert b"s3cret" not in (tmp_path / "state.json").read_bytes()
    # A state file written before sources were recorded loads as "no source".
    doc = json.loads((tmp_path / "state.json").read_bytes())
    del doc["source"]
    assert StoreState.from_json(json.dumps(doc).encode(), tmp_path / "state.json").source is None


# ---------------------------------------------------------------------------------------------
# purge rules and reader leases


NAMES = [f"b.{i:06d}" for i in range(1, 7)]
SIZES = dict.fromkeys(NAMES, 100)
NOW = 1_000_000.0
MTIMES = {n: NOW - 3600 * (len(NAMES) - i) for i, n in enumerate(NAMES)}  # oldest: 6 h ago


@pytest.mark.parametrize("rules,expected", [
    (PurgeRules(max_files=2), NAMES[:4]),
    (PurgeRules(max_files=0), NAMES[:5]),  # never the newest file
    (PurgeRules(max_size=250), NAMES[:4]),
    (PurgeRules(max_size=0), NAMES[:5]),
    (PurgeRules(max_age=3 * 3600 - 1), NAMES[:4]),
    (PurgeRules(to=NAMES[2]), NAMES[:2]),
    (PurgeRules(to=NAMES[0]), []),
    (PurgeRules(max_files=10), []),
])
def test_purge_rules(rules: PurgeRules, expected: list[str]) -> None:
    victims, blocked = plan_purge(NAMES, SIZES, MTIMES, rules, leases=[], active=NAMES[-1], now=NOW)
    assert victims == expected and blocked == ""


def test_purge_never_removes_the_active_file() -> None:
    # The writer's file is the last; even an index that (wrongly) lists a later one cannot make it go.
    victims, _ = plan_purge(NAMES, SIZES, MTIMES, PurgeRules(max_files=1), leases=[], active=NAMES[2], now=NOW)
    assert victims == NAMES[:2]


def test_a_live_lease_blocks_purge_and_a_stale_one_does_not(tmp_path: Path) -> None:
    store = BinlogStore.open(tmp_path)
    try:
        for name in NAMES:
            store.begin_file(name)
        lease = ReaderLease(tmp_path, "serve session 7", NAMES[2])
        # PURGE BINARY LOGS: all or nothing, as the servers do, naming the reader.
        with pytest.raises(FileInUse, match="serve session 7"):
            store.purge(PurgeRules(max_files=1), all_or_nothing=True)
        assert store.files == NAMES
        removed, blocked = store.purge(PurgeRules(max_files=1))
        assert removed == NAMES[:2]
        assert NAMES[2] in blocked and "serve session 7" in blocked and str(os.getpid()) in blocked
        lease.release()
        # A reader that was killed: its lease names a pid that no longer exists.
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait(timeout=10)
        stale = tmp_path / "readers" / "stale.json"
        stale.write_text(json.dumps({"holder": "stream x", "pid": dead.pid, "file": NAMES[2], "since": 0}))
        assert live_leases(tmp_path) == [] and not stale.exists()
        stale.write_text(json.dumps({"holder": "stream x", "pid": dead.pid, "file": NAMES[2], "since": 0}))
        removed, blocked = store.purge(PurgeRules(max_files=1))
        assert removed == NAMES[2:5] and blocked == ""
        assert store.files == NAMES[5:] and store.current_file == NAMES[5]
    finally:
        store.close()
    assert sorted(p.name for p in (tmp_path / "binlog").iterdir() if p.suffix != ".index") == NAMES[5:]


def test_a_stopped_streams_durable_lease_blocks_purge_until_forgotten_or_too_old(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = BinlogStore.open(tmp_path, retention=PurgeRules(stream_lease_max_age=3600))
    try:
        for name in NAMES:
            store.begin_file(name)
        lease = StreamLease(tmp_path / "readers", "orders")
        lease.hold(NAMES[2], target="jsonl:/out")
        assert lease.held_file() == NAMES[2]
        # No pid: it holds while the stream is stopped (a pid-less file is not "stale").
        assert [(x.holder, x.pid, x.file) for x in live_leases(tmp_path)] == [("stream orders", None, NAMES[2])]
        with pytest.raises(FileInUse, match="binhub stream --forget orders"):
            store.purge(PurgeRules(max_files=1), all_or_nothing=True)
        removed, blocked = store.purge(PurgeRules(max_files=1))
        assert removed == NAMES[:2] and "checkpoint of stream orders" in blocked
        # Refreshes within STREAM_LEASE_REFRESH rewrite nothing; a move to another file does.
        before = lease.path.stat().st_mtime_ns
        lease.hold(NAMES[2])
        assert lease.path.stat().st_mtime_ns == before
        lease.hold(NAMES[3])
        assert lease.held_file() == NAMES[3]
        # Older than store.retention.stream_lease_max_age: ignored, loudly, and the file is kept.
        doc = json.loads(lease.path.read_text())
        lease.path.write_text(json.dumps({**doc, "since": time.time() - 7200}))
        with caplog.at_level("ERROR", logger="binhub.store"):
            removed, blocked = store.purge(PurgeRules(max_files=2))
        assert removed == NAMES[2:4] and blocked == ""
        assert "ignoring the lease of stream orders" in caplog.text and "stream_lease_max_age" in caplog.text
        assert lease.path.exists(), "an expired lease is ignored, not deleted"
        lease.hold(NAMES[4])
        assert lease.forget() and not lease.forget()
        assert live_leases(tmp_path) == []
    finally:
        store.close()


def test_purge_to_an_unknown_file_is_an_error() -> None:
    from binhub.errors import StorageError

    with pytest.raises(StorageError, match="no such file"):
        plan_purge(NAMES, SIZES, MTIMES, PurgeRules(to="b.999999"), leases=[], active=None, now=NOW)


# ---------------------------------------------------------------------------------------------
# import


def test_import_real_files(tmp_path: Path, shared_binlogs: Path) -> None:
    store = BinlogStore.open(tmp_path / "recorded")
    try:
        for name in (FILE2, FILE3):
            store.import_file(RECORDED / name)
        assert store.files == [FILE2, FILE3] and store.current_file == FILE3
        assert str(store.executed_gtids) == expected_executed(FILE3, len(raw(FILE3)))
        assert [e.file for e in store.gtid_index.entries()] == [FILE2, FILE3]
    finally:
        store.close()
    paths = [tmp_path / "recorded" / "binlog" / n for n in (FILE2, FILE3)]
    assert [p.read_bytes() for p in paths] == [raw(FILE2), raw(FILE3)]
    assert verify_files(paths).ok
    with pytest.raises(Exception, match="comes before|already in the store"):
        reopened = BinlogStore.open(tmp_path / "recorded")
        try:
            reopened.import_file(RECORDED / FILE2)
        finally:
            reopened.close()

    real = next(shared_binlogs.rglob("mariadb-bin.000001"))
    store = BinlogStore.open(tmp_path / "shared")
    try:
        store.import_file(real)
        assert store.files == [real.name]
    finally:
        store.close()
    assert (tmp_path / "shared" / "binlog" / real.name).read_bytes() == real.read_bytes()


# ---------------------------------------------------------------------------------------------
# a full disk


class FlakyDisk:
    """os.pwritev (the store's writes of events) that runs out of space on its ``fail_at``-th call
    (after writing part of the data)."""

    def __init__(self, fail_at: int, rng: random.Random) -> None:
        self.calls = 0
        self.fail_at = fail_at
        self.rng = rng
        self.real = os.pwritev

    def __call__(self, fd: int, buffers: Any, offset: int) -> int:
        self.calls += 1
        data = b"".join(buffers)
        if self.calls == self.fail_at:
            part = self.rng.randint(0, max(0, len(data) - 1))
            if part:
                self.real(fd, [data[:part]], offset)
                return part  # a short write: the retry of the rest then fails
        if self.calls == self.fail_at + 1 and self.fail_at:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.real(fd, buffers, offset)


def test_a_full_disk_never_leaves_a_partial_transaction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At every write of a replay the disk fills once; the writer resumes as the relay does (from the
    store's position) and the file ends up byte-identical, with a sound tail at every failure."""
    w2, w3 = walk(raw(FILE2), FILE2), walk(raw(FILE3))
    total_writes = len(w2.events) + len(w3.events)
    rng = random.Random(3)
    for fail_at in range(1, total_writes + 1, 3):
        d = tmp_path / str(fail_at)
        disk = FlakyDisk(fail_at, rng)
        monkeypatch.setattr(os, "pwritev", disk)
        store = BinlogStore.open(d)
        failures = 0
        try:
            for name, w in ((FILE2, w2), (FILE3, w3)):
                start, begin = 0, True
                while True:
                    try:
                        replay(store, name, w.events, start=start, begin=begin)
                        break
                    except DiskFull:
                        failures += 1
                        store.rollback_to_boundary()
                        # What the relay resumes from: a boundary, on disk exactly as upstream has it.
                        assert store.current_file == name and store.at_boundary
                        assert store.position in w.boundaries
                        on_disk = (d / "binlog" / name).read_bytes()
                        assert len(on_disk) == store.position
                        assert _without_flag(on_disk) == _without_flag(raw(name)[:store.position])
                        start = _index_of(w, store.position) if store.position > 4 else 0
                        begin = False
                        assert failures < 5
                if name == FILE2:
                    store.close_file()
            store.commit()
        finally:
            store.close()
            monkeypatch.setattr(os, "pwritev", disk.real)
        assert failures == 1, fail_at
        assert (d / "binlog" / FILE2).read_bytes() == raw(FILE2), fail_at
        assert (d / "binlog" / FILE3).read_bytes() == raw(FILE3), fail_at
        gtids = [g for _, g in w2.gtids + w3.gtids]
        assert [e.gtid for e in StoreReader.open(d).gtid_index.entries()][0] == gtids[0]


@pytest.mark.parametrize("written_events", [0, 3])
def test_a_rollback_keeps_the_complete_transactions_not_yet_written(tmp_path: Path, written_events: int) -> None:
    """A session that breaks in the middle of a batch: the transactions that completed earlier in that
    batch (appended, not yet flushed) stay; only the incomplete one after the last boundary goes."""
    w2 = walk(raw(FILE2), FILE2)
    store = BinlogStore.open(tmp_path)
    try:
        store.begin_file(FILE2)
        tracker = TransactionTracker()
        boundaries = 0
        for i, ev in enumerate(w2.events):
            if i == written_events:
                store.flush()
            if ev.header.type_code == EventType.FORMAT_DESCRIPTION:
                store.append_fde(ev.data)
            else:
                store.append(memoryview(ev.data))
            done = tracker.transactions
            if tracker.feed(ev.data, 4):
                store.mark_boundary(tracker.last_gtid if tracker.transactions != done else None, ev.header.timestamp)
                boundaries += 1
            elif boundaries >= 3 and store.position not in w2.boundaries:
                break  # inside a transaction, with complete ones before it in the same unwritten batch
        boundary = max(b for b in w2.boundaries if b < store.position)
        store.rollback_to_boundary()
        assert store.position == boundary and store.at_boundary
        store.commit()
        assert _without_flag((tmp_path / "binlog" / FILE2).read_bytes()) == _without_flag(raw(FILE2)[:boundary])
    finally:
        store.close()


def _without_flag(data: bytes) -> bytes:
    return data[:FLAGS] + data[FLAGS + 1:]


# ---------------------------------------------------------------------------------------------
# semi-sync acks only after fsync, and none lost


class FakeConn:
    semisync = True

    def __init__(self, store: BinlogStore, log: list[tuple[str, Any]]) -> None:
        self.store, self.log = store, log

    async def send_semisync_ack(self, file: str, position: int) -> None:
        durable = self.store.durable_position
        self.log.append(("ack", (file, position, durable.position if durable else 0)))


def test_acks_follow_fsync_and_none_is_lost(tmp_path: Path) -> None:
    from binhub.relay import Relay
    from binhub.relay.config import RelayConfig, parse_source_dsn

    store = BinlogStore.open(tmp_path)
    log: list[tuple[str, Any]] = []
    real_fsync = store.fsync

    def slow_fsync(target: DurablePosition | None = None) -> float:
        log.append(("fsync-begin", store.sync_target()))
        time.sleep(0.15)  # the pump goes on receiving meanwhile
        took = real_fsync(target)
        log.append(("fsync-end", None))
        return took

    store.fsync = slow_fsync  # type: ignore[method-assign]
    relay = Relay(RelayConfig(source=parse_source_dsn("mysql://u:p@127.0.0.1:1"), semi_sync=True), store)
    relay._conn = FakeConn(store, log)  # type: ignore[assignment]
    w = walk(raw(FILE3))
    txns = [i for i, ev in enumerate(w.events) if ev.end in {end for end, _ in w.gtids}]

    async def scenario() -> None:
        syncer = asyncio.create_task(relay._sync_loop())
        store.begin_file(FILE3)
        tracker = TransactionTracker()
        done = 0
        for upto in txns:  # one transaction per "batch", each asking for an ack, as semi-sync does
            for ev in w.events[done:upto + 1]:
                store.append_fde(ev.data) if ev.header.type_code == EventType.FORMAT_DESCRIPTION \
                    else store.append(ev.data)
                n = tracker.transactions
                if tracker.feed(ev.data, 4):
                    store.mark_boundary(tracker.last_gtid if tracker.transactions != n else None, 0)
            done = upto + 1
            store.flush()
            relay._ack_wanted = True
            relay._sync_wanted.set()
            await asyncio.sleep(0.05)  # shorter than an fsync: the next one arrives while it runs
        deadline = time.monotonic() + 10
        last_end = w.events[txns[-1]].end
        while not any(k == "ack" and v[1] >= last_end for k, v in log):
            assert time.monotonic() < deadline, f"the last transaction was never acknowledged: {log}"
            await asyncio.sleep(0.02)
        syncer.cancel()

    try:
        asyncio.run(scenario())
    finally:
        store.close()
    acks = [v for k, v in log if k == "ack"]
    assert acks, log
    for file, position, durable in acks:
        assert file == FILE3 and position <= durable  # never ahead of what is on disk
    # each ack comes after the fsync that made its position durable
    for i, (kind, _value) in enumerate(log):
        if kind == "ack":
            assert any(k == "fsync-end" for k, _ in log[:i])


def test_gtid_index_has_an_entry_every_16_mib_of_large_transactions(tmp_path: Path) -> None:
    """A file of few, large transactions still gets index entries (a start deep in it stays fast)."""
    from binhub.binlog.gtid import MariadbGtid
    from binhub.store.index import GTID_INDEX_BYTES, GtidIndex

    store = BinlogStore.open(tmp_path / "store")
    try:
        store.begin_file("mysql-bin.000001")
        big = b"\0" * (GTID_INDEX_BYTES // 4)
        for seq in range(1, 13):  # 12 transactions of 4 MiB: 48 MiB, far fewer than GTID_INDEX_EVERY
            store.append(big)
            store.mark_boundary(MariadbGtid(0, 1, seq), 0)
        store.flush()
    finally:
        store.close()
    entries = GtidIndex(tmp_path / "store" / "gtid.index").entries()
    assert [e.gtid for e in entries] == ["0-1-1", "0-1-5", "0-1-9"]
    assert all(b.offset - a.offset >= GTID_INDEX_BYTES for a, b in zip(entries, entries[1:], strict=False))


def test_state_changes_in_a_batch_are_written_once_at_its_end(tmp_path: Path) -> None:
    from binhub.store.state import RequestedStart

    store = BinlogStore.open(tmp_path)
    try:
        state_file = tmp_path / "state.json"
        before = state_file.read_bytes() if state_file.exists() else b""
        with store.state_batch():
            store.update_state(replica_uuid="4b7c0d6e-0000-4000-8000-000000000001")
            with store.state_batch():  # nested: still one write, at the outer end
                store.update_state(requested_start=RequestedStart("oldest", file="mysql-bin.000001"))
            assert (state_file.read_bytes() if state_file.exists() else b"") == before
        saved = json.loads(state_file.read_bytes())
        assert saved["replica_uuid"] == "4b7c0d6e-0000-4000-8000-000000000001"
        assert saved["requested_start"]["file"] == "mysql-bin.000001"
    finally:
        store.close()


# ---------------------------------------------------------------------------------------------
# a file's end sealed in the background (finish_file / seal_file), as the relay does at ROTATE


def test_a_finished_file_is_sealed_while_the_next_one_is_written(tmp_path: Path) -> None:
    from binhub.store.durable_position import read_durable

    store = BinlogStore.open(tmp_path)
    try:
        w2, w3 = walk(raw(FILE2), FILE2), walk(raw(FILE3))
        replay(store, FILE2, w2.events)
        finished = store.finish_file()
        assert (tmp_path / "binlog" / FILE2).read_bytes()[FLAGS] & 1 == 0  # cleared before its fsync
        store.begin_file(FILE3, listed=False)
        replay(store, FILE3, w3.events[:5], begin=False)
        # Until the seal, the next file is neither listed nor published, and nothing in it can be.
        assert store.files == [FILE2] and store.sync_target() is None
        assert store.commit() is None
        durable = read_durable(tmp_path / "durable")
        assert durable is None or durable.file != FILE3
        store.seal_file(finished, FILE3)
        assert store.files == [FILE2, FILE3]
        assert read_durable(tmp_path / "durable") == DurablePosition(2, FILE2, len(raw(FILE2)))
        assert str(store.executed_gtids) == w2.gtids[-1][1]  # the finished file's GTIDs are folded
        replay(store, FILE3, w3.events, start=5, begin=False)
        store.commit()
    finally:
        store.close()
    assert (tmp_path / "binlog" / FILE2).read_bytes() == raw(FILE2)
    assert (tmp_path / "binlog" / FILE3).read_bytes() == raw(FILE3)
    reopened = BinlogStore.open(tmp_path)
    try:
        assert reopened.files == [FILE2, FILE3] and str(reopened.executed_gtids) == w3.gtids[-1][1]
    finally:
        reopened.close()


def test_a_seal_that_fails_before_listing_the_next_file_is_undone(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from binhub.store import index as store_index

    store = BinlogStore.open(tmp_path)
    try:
        w2, w3 = walk(raw(FILE2), FILE2), walk(raw(FILE3))
        replay(store, FILE2, w2.events)
        finished = store.finish_file()
        store.begin_file(FILE3, listed=False)
        replay(store, FILE3, w3.events[:5], begin=False)

        def full(path: Path, data: bytes, *, mode: int = 0o644) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        with monkeypatch.context() as m:
            m.setattr(store_index, "atomic_write", full)
            with pytest.raises(DiskFull):
                store.seal_file(finished, FILE3)
        store.unfinish_file(finished)
        # As before the ROTATE was stored: the finished file is current, the next one is gone.
        assert store.current_file == FILE2 and store.current_finished and store.next_file == FILE3
        assert store.files == [FILE2] and not (tmp_path / "binlog" / FILE3).exists()
        replay(store, FILE3, w3.events)  # the relay's next session: begin_file closes FILE2 the usual way
        store.commit()
    finally:
        store.close()
    assert store.files == [FILE2, FILE3]
    assert (tmp_path / "binlog" / FILE2).read_bytes() == raw(FILE2)
    assert (tmp_path / "binlog" / FILE3).read_bytes() == raw(FILE3)


def test_recovery_sets_the_flag_again_on_a_file_that_lost_its_end(tmp_path: Path) -> None:
    """finish_file clears the flag before the fsync; a crash may keep the flag and lose the ROTATE."""
    data = bytearray(raw(FILE2))
    w = walk(bytes(data), FILE2)
    cut = w.boundaries[-2]  # before the ROTATE
    data[FLAGS] &= ~1
    seed(tmp_path, {FILE2: bytes(data[:cut])})
    store = BinlogStore.open(tmp_path)
    try:
        assert not store.current_finished and store.position == cut
    finally:
        store.close()
    assert (tmp_path / "binlog" / FILE2).read_bytes()[FLAGS] & 1 == 1


def test_entries_appended_after_a_rewrite_land_in_the_new_gtid_index(tmp_path: Path) -> None:
    """A purge rewrites gtid.index (a new file renamed over the old one); the writer's appends that
    follow must go to that new file, not to the replaced one through a stale descriptor."""
    from binhub.store.index import GtidIndex, GtidIndexEntry

    index = GtidIndex(tmp_path / "gtid.index")
    index.open_for_append()
    index.add("mysql-bin.000001", 256, "0-1-1", 1)
    index.add("mysql-bin.000002", 256, "0-1-2", 2)
    index.flush()
    index.rewrite([e for e in index.entries() if e.file != "mysql-bin.000001"])  # as a purge does
    index.add("mysql-bin.000002", 512, "0-1-3", 3)
    index.close()
    assert GtidIndex(tmp_path / "gtid.index").entries() == [
        GtidIndexEntry("mysql-bin.000002", 256, "0-1-2", 2), GtidIndexEntry("mysql-bin.000002", 512, "0-1-3", 3)]
