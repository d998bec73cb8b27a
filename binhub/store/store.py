"""The binlog store: real binlog files, byte-identical to the upstream's, written crash-safely.

Layout (see DESIGN.md)::

    DATA_DIR/LOCK                 one writer at a time
    DATA_DIR/binlog/<base>.NNNNNN real binlog files and <base>.index
    DATA_DIR/gtid.index           GTID -> (file, offset), append-only
    DATA_DIR/state.json           identity, requested start, GTID sets (atomic writes)
    DATA_DIR/durable              the durable position, for readers in other processes
    DATA_DIR/readers/             a lease per live reader; purge never removes a leased file

The writer appends whole events and marks transaction boundaries. ``flush`` hands the bytes to the
kernel with one ``pwritev`` per batch (the events themselves, uncopied); ``fsync`` makes them durable; only then does ``publish`` move
the durable position that readers (and semi-sync acks) may use. On open, a torn or partial last
transaction is truncated, so the store always ends at a transaction boundary. The file being
written, and every write to it, is :class:`~binhub.store.active_file.ActiveFile`.

:class:`BinlogStore` is the writer (one per store, the relay's). Readers, in this process or
another, use a :class:`~binhub.store.reader.StoreReader`: ``store.reader`` is the writer's own
view, ``StoreReader.open(data_dir)`` the view from anywhere else.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from binhub.binlog.checksum import set_in_use_flag
from binhub.binlog.constants import BINLOG_MAGIC
from binhub.binlog.gtid import MariadbGtid, parse_gtid_set
from binhub.binlog.header import EventHeader
from binhub.binlog.transaction import GtidEvent, decode_gtid_event, gtid_event_domain
from binhub.errors import StorageError
from binhub.store import maintenance
from binhub.store.active_file import ActiveFile
from binhub.store.durability_policy import Durability
from binhub.store.durable_position import DurableMarker, DurablePosition
from binhub.store.fsutil import storage_error
from binhub.store.index import (
    GTID_INDEX_BYTES,
    GTID_INDEX_EVERY,
    BinlogIndex,
    GtidIndex,
    GtidIndexEntry,
    file_seq,
)
from binhub.store.lock import StoreLock
from binhub.store.reader import StoreReader, WriterView
from binhub.store.recovery import Gtid, GtidSet, TailScan, add_gtid, recover_tail
from binhub.store.retention import PurgeRules
from binhub.store.state import StoreState, UpstreamIdentity

if TYPE_CHECKING:
    from binhub.store.metrics import StoreMetrics

LOG = logging.getLogger("binhub.store")


STATE_SAVE_INTERVAL = 1.0  # seconds between state.json rewrites while relaying


@dataclass
class FinishedFile:
    """A complete file taken off the writer by :meth:`BinlogStore.finish_file`, until :meth:`~BinlogStore.seal_file`."""

    file: ActiveFile
    unsynced: list[tuple[int, Gtid | GtidEvent]]  # its transactions not yet durable (boundary offset, gtid)
    next_listed: bool = False  # seal_file listed the next file: the seal can no longer be undone


def fde_fingerprint(fde: bytes) -> str:
    """sha256 of an FDE with its in-use flag cleared: the same for the active and the closed file."""
    return hashlib.sha256(set_in_use_flag(bytes(fde), False)).hexdigest()


class BinlogStore:
    """The writer of one store directory (open with :meth:`open`); :attr:`reader` is its reader view."""

    def __init__(self, data_dir: Path, durability: Durability, metrics: StoreMetrics | None,
                 retention: PurgeRules | None = None, archive_dir: Path | None = None) -> None:
        self.data_dir = data_dir
        self.archive_dir = archive_dir
        self.retention = retention if retention is not None and not retention.empty else None
        # Honoured by every purge of this store, explicit ones (PURGE BINARY LOGS) included.
        self.stream_lease_max_age = retention.stream_lease_max_age if retention is not None else None
        self.last_durable_gtid = ""  # GTID of the last durable transaction
        self.binlog_dir = data_dir / "binlog"
        self.readers_dir = data_dir / "readers"
        self.state_path = data_dir / "state.json"
        self.durability = durability
        self.metrics = metrics
        self.index = BinlogIndex(self.binlog_dir)
        self.gtid_index = GtidIndex(data_dir / "gtid.index")
        self.state = StoreState()
        self._lock: StoreLock | None = None
        self._marker: DurableMarker | None = None
        self._active: ActiveFile | None = None
        self._durable: DurablePosition | None = None
        self._executed: GtidSet | None = None
        self._unsynced: list[tuple[int, Gtid | GtidEvent]] = []  # (boundary offset, gtid) not yet durable
        self._sealing: FinishedFile | None = None  # the previous file, until it is durable (see finish_file)
        self._txn_since_index = GTID_INDEX_EVERY
        self._last_index_offset = 0  # file offset of the last GTID index entry in the active file
        self._first_txn_in_file = True
        self._last_state_save = 0.0
        self._state_batches = 0  # > 0 inside state_batch(): forced saves wait for its end
        self._state_deferred = False
        self._fsync_lock = threading.Lock()
        self._listeners: list[Any] = []
        self._reader: WriterView | None = None

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, data_dir: Path, *, durability: Durability | None = None, metrics: StoreMetrics | None = None,
             create: bool = True, retention: PurgeRules | None = None,
             archive_dir: Path | None = None) -> BinlogStore:
        """Open the store for writing: take the lock, load state, recover a torn tail.

        ``retention`` is applied whenever a file is complete, as a primary expires its logs at rotation;
        with ``archive_dir``, purged files are compressed there first.
        """
        data_dir = Path(data_dir)
        if not data_dir.exists():
            if not create:
                raise StorageError(f"no store at {data_dir}", hint="check --data-dir")
            try:
                data_dir.mkdir(parents=True)
            except OSError as exc:
                raise storage_error(exc, f"cannot create the store at {data_dir}") from exc
        store = cls(data_dir, durability or Durability(), metrics, retention=retention, archive_dir=archive_dir)
        try:
            store.binlog_dir.mkdir(exist_ok=True)
            store.readers_dir.mkdir(exist_ok=True)
        except OSError as exc:
            raise storage_error(exc, f"cannot create the store at {data_dir}") from exc
        store._lock = StoreLock(data_dir / "LOCK")
        store._lock.acquire()
        try:
            store.state = StoreState.load(store.state_path)
            store.index.load()
            store._marker = DurableMarker(data_dir / "durable")
            store._recover()
            store.gtid_index.open_for_append()
            store._update_gauges()
        except BaseException:
            store._lock.release()
            raise
        return store

    def _recover(self) -> None:
        """Truncate a torn or partial last transaction; rebuild what the state file did not cover."""
        names = self.index.names
        if names and (self.index.path is None or not self.index.path.exists()):
            self.index.save()
        for name in names:
            if not (self.binlog_dir / name).exists():
                raise StorageError(f"{name} is listed in the store's index but missing from {self.binlog_dir}",
                                   hint="restore the file, or remove the store and relay again")
        executed = parse_gtid_set(self.state.executed_gtids) if self.state.executed_gtids else None
        if not names:
            self._executed = executed
            return
        name = names[-1]
        path = self.binlog_dir / name
        size = path.stat().st_size
        start = 4
        if self.state.last_file == name and 4 <= self.state.last_position <= size:
            start = self.state.last_position
        tail, self._executed = recover_tail(self.binlog_dir, names, start, size, executed)
        try:
            self._active = ActiveFile.reopen(name, path, size, tail.boundary, finished=tail.finished,
                                             next_name=tail.next_name)
        except OSError as exc:
            raise storage_error(exc, f"cannot recover {path}") from exc
        boundary = self._active.boundary  # the magic alone, if even that was torn
        all_entries = self.gtid_index.entries()
        entries = [e for e in all_entries if e.file in names and not (e.file == name and e.offset >= boundary)]
        if len(entries) != len(all_entries):
            self.gtid_index.rewrite(entries)
        self._first_txn_in_file = not any(e.file == name for e in entries)
        self._last_index_offset = max((e.offset for e in entries if e.file == name), default=0)
        self._publish(DurablePosition(file_seq(name), name, boundary))
        self._save_state(force=True)

    # ------------------------------------------------------------------ read side

    @property
    def reader(self) -> StoreReader:
        """The reader view of this store (serve and streams in this process read through it)."""
        if self._reader is None:
            self._reader = WriterView(self)
        return self._reader

    @property
    def files(self) -> list[str]:
        return list(self.index.names)

    def file_path(self, name: str) -> Path:
        return self.binlog_dir / name

    @property
    def durable_position(self) -> DurablePosition | None:
        return self._durable

    @property
    def executed_gtids(self) -> GtidSet | None:
        """Every GTID up to the durable position (plus what came before the first file)."""
        return self._executed

    # ------------------------------------------------------------------ write side

    @property
    def current_file(self) -> str | None:
        return self._active.name if self._active else None

    @property
    def position(self) -> int:
        """The offset where the next appended event will start in the current file."""
        return self._active.position if self._active else 0

    @property
    def current_finished(self) -> bool:
        return bool(self._active and self._active.finished)

    @property
    def next_file(self) -> str:
        return self._active.next_name if self._active else ""

    @property
    def at_boundary(self) -> bool:
        return self._active is None or self._active.boundary == self._active.position

    def begin_file(self, name: str, *, listed: bool = True) -> None:
        """Start a new binlog file (magic only); the previous one must have been finished.

        ``listed=False`` (after :meth:`finish_file`): the index lists it once :meth:`seal_file` has
        made the previous file durable; nothing in it is published before.
        """
        file_seq(name)
        if name in self.index.names:
            raise StorageError(f"{name} is already in the store", hint="the upstream's binlog numbering went back; "
                               "was RESET MASTER run on it? Use a new --data-dir")
        if self._active is not None:
            self.close_file()
        path = self.binlog_dir / name
        try:
            active = ActiveFile.create(name, path)
            if listed:
                self.index.append(name)  # its atomic write fsyncs binlog/, which holds the new file's entry too
        except OSError as exc:
            raise storage_error(exc, f"cannot create {path}") from exc
        self._active = active
        self._first_txn_in_file = True
        self._last_index_offset = 0
        LOG.info("new binlog file %s", name, extra={"file": name})

    def append(self, event: bytes | memoryview) -> None:
        """Append one whole event (header..CRC), kept by reference until :meth:`flush`: it must not change."""
        self.append_events((event,))

    def append_events(self, events: Sequence[bytes | memoryview]) -> None:
        """Append whole events, by reference (no copy) until :meth:`flush` writes them: they must not change."""
        active = self._active
        if active is None:
            raise StorageError("no binlog file is open for writing (the upstream sent an event before any file)")
        active.add(events, sum(map(len, events)))

    def append_fde(self, fde: bytes | memoryview) -> None:
        """Append the file's FORMAT_DESCRIPTION with the in-use flag set, as the upstream has it on disk."""
        data = set_in_use_flag(bytes(fde), True)
        if self.state.upstream is not None and not self.state.upstream.first_fde_sha256:
            self.state = self.state.with_(upstream=_replace_identity(self.state.upstream,
                                                                       first_fde_sha256=fde_fingerprint(data)))
        self.append(data)

    def mark_boundary(self, gtid: Gtid | GtidEvent | None, timestamp: int, *, gtid_text: str | None = None) -> None:
        """The appended events so far form complete transactions.

        ``gtid`` may be the raw GTID event (:attr:`TransactionTracker.last_gtid_event`): it is then
        decoded only where needed (an index entry, the durable position), not per transaction.
        """
        active = self._active
        assert active is not None
        end = active.written + active.pending_bytes  # active.position, without a property call per transaction
        if gtid is not None:
            self._unsynced.append((end, gtid))
            self._txn_since_index += 1
            if (self._first_txn_in_file or self._txn_since_index >= GTID_INDEX_EVERY
                    or active.boundary - self._last_index_offset >= GTID_INDEX_BYTES):
                self._last_index_offset = active.boundary
                self.gtid_index.add(active.name, active.boundary, gtid_text or str(_as_gtid(gtid)), timestamp)
                self._txn_since_index = 0
                self._first_txn_in_file = False
        active.boundary = end

    def mark_finished(self, next_name: str) -> None:
        """The current file ended with ROTATE (next_name) or STOP (empty)."""
        assert self._active is not None
        self._active.finished = True
        self._active.next_name = next_name

    def flush(self) -> None:
        """Hand the pending bytes to the kernel: one write per batch."""
        active = self._active
        if active is None or not active.pending:
            return
        before = active.written
        try:
            active.write_pending()
        except OSError as exc:
            # Leave the file at the last boundary: a half-written batch must not stay behind.
            self._rollback_after_error(before)
            raise storage_error(exc, f"cannot write {active.path}") from exc
        self.gtid_index.flush()

    def sync_target(self) -> DurablePosition | None:
        """The boundary an fsync started now would make durable (None if nothing new)."""
        active = self._active
        if active is None or active.boundary > active.written or active.boundary <= active.synced:
            return None
        if self._sealing is not None:
            return None  # the file before it is not durable yet (seal_file publishes it first)
        return DurablePosition(file_seq(active.name), active.name, active.boundary)

    def fsync(self, target: DurablePosition | None = None) -> float:
        """fsync the current file, or the one ``target`` is in; safe to call from a worker thread while the
        loop keeps appending (and moves on to the next file: ``target`` may then be in the one sealing)."""
        active = self._active
        if target is not None and (active is None or active.name != target.file):
            sealing = self._sealing
            if sealing is not None and sealing.file.name == target.file:
                active = sealing.file
        if active is None:
            return 0.0
        began = time.perf_counter()
        with self._fsync_lock:
            try:
                os.fsync(active.fd)
            except OSError as exc:
                raise storage_error(exc, f"cannot fsync {active.path}") from exc
        took = time.perf_counter() - began
        if self.metrics is not None:
            self.metrics.fsync_seconds.observe(took)
        return took

    def publish(self, target: DurablePosition) -> None:
        """Make ``target`` (already fsynced) visible to readers and record it."""
        if self._active is not None and self._active.name == target.file:
            self._active.synced = max(self._active.synced, target.position)
            self._fold_gtids(self._unsynced, target.position)
        self._publish(target)
        self._save_state()

    def commit(self) -> DurablePosition | None:
        """flush + fsync + publish in the calling thread (tools, tests, shutdown)."""
        self.flush()
        target = self.sync_target()
        if target is None:
            return None
        self.fsync(target)
        self.gtid_index.fsync()
        self.publish(target)
        return target

    def close_file(self) -> None:
        """Finish the current file: flush, clear the in-use flag if it ended, fsync, close."""
        active = self._active
        if active is None:
            return
        self.commit()
        try:
            if active.finished:
                active.clear_in_use_flag()
            active.close()
        except OSError as exc:
            raise storage_error(exc, f"cannot close {active.path}") from exc
        self._active = None
        self._save_state(force=True)
        if self.retention is not None:
            try:
                self.purge(self.retention)
            except StorageError as exc:  # retention must never stop the relay
                LOG.error("retention could not purge: %s", exc)
        self._update_gauges()

    def finish_file(self) -> FinishedFile:
        """Take the current file, complete (it ended with ROTATE), off the writer, so that the next one
        can begin at once (``begin_file(next, listed=False)``) while :meth:`seal_file` makes this one
        durable in a worker thread: the fsyncs of a file's end no longer hold up the events after it.

        Its last bytes are written and its in-use flag cleared here, so one fsync covers both.
        """
        active = self._active
        assert active is not None and active.finished and self._sealing is None
        self.flush()
        try:
            active.clear_in_use_flag()
        except OSError as exc:
            raise storage_error(exc, f"cannot write {active.path}") from exc
        finished = FinishedFile(active, self._unsynced)
        self._active = None
        self._unsynced = []
        self._sealing = finished
        return finished

    def seal_file(self, finished: FinishedFile, next_name: str) -> None:
        """Make a file from :meth:`finish_file` durable, list ``next_name`` after it, then publish its end.

        Safe in a worker thread while the writer appends to ``next_name``: it touches neither the
        current file nor its pending GTIDs. If it fails before the next file is listed,
        :meth:`unfinish_file` undoes the rotation.
        """
        active = finished.file
        try:
            os.fsync(active.fd)
            self.gtid_index.fsync()
        except OSError as exc:
            raise storage_error(exc, f"cannot fsync {active.path}") from exc
        if next_name:
            try:
                self.index.append(next_name)  # only now: a listed file's predecessor must be whole on disk
            except OSError as exc:
                raise storage_error(exc, f"cannot list {next_name} in the store's index") from exc
        finished.next_listed = True
        try:
            active.synced = active.boundary
            self._fold_gtids(finished.unsynced, active.boundary)
            self._sealing = None
            self._publish(DurablePosition(file_seq(active.name), active.name, active.boundary))
            self._save_state(force=True)
        finally:
            with contextlib.suppress(OSError):
                os.close(active.fd)
        self._update_gauges()

    def unfinish_file(self, finished: FinishedFile) -> None:
        """After :meth:`seal_file` failed early: the finished file is current again and the file begun
        after it is dropped (never listed, never published), so the relay fetches it again."""
        if finished.next_listed:
            self._sealing = None
            return
        begun = self._active
        if begun is not None:
            with contextlib.suppress(OSError):
                os.close(begun.fd)
                begun.path.unlink()
            self.gtid_index.drop_pending(begun.name, 0)
        self._active = finished.file
        self._unsynced = finished.unsynced
        self._sealing = None

    def _update_gauges(self) -> None:
        if self.metrics is None:
            return
        self.metrics.files.set(len(self.index.names))
        total = 0
        for name in self.index.names:
            with contextlib.suppress(OSError):
                total += (self.binlog_dir / name).stat().st_size
        self.metrics.bytes.set(total)

    def rollback_to_boundary(self) -> None:
        """Drop a partial transaction (the upstream connection broke inside it)."""
        active = self._active
        if active is None or active.boundary == active.position:
            return
        self._unsynced = [(end, g) for end, g in self._unsynced if end <= active.boundary]
        LOG.info("dropping %d bytes of an incomplete transaction in %s", active.position - active.boundary,
                 active.name, extra={"file": active.name})
        try:
            active.cut(active.boundary)  # complete transactions still pending stay
        except OSError as exc:
            raise storage_error(exc, f"cannot truncate {active.path}") from exc

    def _rollback_after_error(self, before: int) -> None:
        """After a failed write: cut the file back to the last boundary that was on disk before it.

        ``boundary`` may lie inside the batch that failed, so it cannot be the target; the last
        boundary at or before ``before`` (where this write began) can. Everything after it is
        forgotten, and the caller's session ends: the relay fetches it again from there.
        """
        active = self._active
        if active is None:
            return
        known = [active.synced, len(BINLOG_MAGIC)] + [end for end, _ in self._unsynced if end <= before]
        if active.boundary <= before:
            known.append(active.boundary)
        target = max(known)
        self._unsynced = [(end, g) for end, g in self._unsynced if end <= target]
        self.gtid_index.drop_pending(active.name, target)
        # The entry of the file's first transaction may be among the dropped: index the next one.
        self._txn_since_index = GTID_INDEX_EVERY
        active.boundary = target
        with contextlib.suppress(OSError):
            os.ftruncate(active.fd, target)
        active.written = target

    def set_identity(self, identity: UpstreamIdentity) -> None:
        self.state = self.state.with_(upstream=identity)
        self._save_state(force=True)

    def update_state(self, **changes: Any) -> None:
        self.state = self.state.with_(**changes)
        self._save_state(force=True)

    @contextlib.contextmanager
    def state_batch(self) -> Iterator[None]:
        """Several state changes, one write: what changes inside is saved once, at the end.

        A relay session records the identity, the source, the variables and the start one after
        the other; each write is a temporary file, a rename and two fsyncs (~10 ms on a real disk).
        """
        self._state_batches += 1
        try:
            yield
        finally:
            self._state_batches -= 1
            if not self._state_batches and self._state_deferred:
                self._state_deferred = False
                self._save_state(force=True)

    def close(self) -> None:
        """Flush, fsync, write the state; release the lock."""
        if self._reader is not None:
            self._reader.close()
        try:
            if self._active is not None:
                self.flush()
                self.commit()
                self._active.close()
                self._active = None
            self.gtid_index.close()
            self._save_state(force=True)
        finally:
            if self._marker is not None:
                self._marker.close()
                self._marker = None
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    # ------------------------------------------------------------------ retention and import

    def purge(self, rules: PurgeRules, *, all_or_nothing: bool = False) -> tuple[list[str], str]:
        """Remove the oldest files the rules allow (never the active or a leased one); see maintenance.purge."""
        return maintenance.purge(self, rules, all_or_nothing=all_or_nothing)

    def import_file(self, source: Path) -> str:
        """Copy a binlog file into the store after its last one; see maintenance.import_file."""
        return maintenance.import_file(self, source)

    def adopt_file(self, name: str, tail: TailScan) -> None:
        """Make ``name`` the current file: a whole file just placed in ``binlog/`` and listed in the index.

        ``tail`` is its scan from offset 4: its GTIDs join the executed set (its header gives the set
        before it, in an empty store) and it is durable up to its last transaction boundary.
        """
        path = self.binlog_dir / name
        if self._executed is None:
            self._executed = tail.header_set
            if tail.header_set is not None and not self.state.purged_gtids:
                self.state = self.state.with_(purged_gtids=str(tail.header_set))
        for gtid in tail.gtids:
            self._executed = add_gtid(self._executed, gtid)
        try:
            size = path.stat().st_size
            fd = os.open(path, os.O_RDWR)
        except OSError as exc:
            raise storage_error(exc, f"cannot open {path}") from exc
        self._active = ActiveFile(name, path, fd, size, tail.boundary, size, finished=tail.finished,
                                  next_name=tail.next_name)
        self._publish(DurablePosition(file_seq(name), name, tail.boundary))
        self._save_state(force=True)

    # ------------------------------------------------------------------ readers

    def add_listener(self, callback: Any) -> None:
        """In-process readers: ``callback(DurablePosition)`` after every publish."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Any) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(callback)

    def status(self) -> dict[str, Any]:
        durable = self.durable_position
        executed = self.executed_gtids
        up = self.state.upstream
        return {
            "data_dir": str(self.data_dir),
            "files": len(self.index.names),
            "current_file": self.current_file,
            "durable": {"file": durable.file, "position": durable.position} if durable else None,
            "executed_gtids": str(executed) if executed is not None else "",
            "upstream": {"flavour": up.flavour, "server_id": up.server_id, "version": up.version} if up else None,
            "durability": str(self.durability),
        }

    # ------------------------------------------------------------------ internals

    def _publish(self, pos: DurablePosition) -> None:
        self._durable = pos
        if self._marker is not None:
            self._marker.publish(pos)
        for callback in list(self._listeners):
            callback(pos)

    def _fold_gtids(self, pending: list[tuple[int, Gtid | GtidEvent]], upto: int) -> None:
        """Move GTIDs of transactions that are now durable (``pending`` up to ``upto``) into the executed set."""
        if not pending or pending[0][0] > upto:
            return
        executed = self._executed
        done = 0
        last: Gtid | GtidEvent | None = None
        newest: dict[int, Gtid | GtidEvent] = {}
        for end, gtid in pending:
            if end > upto:
                break
            # MariaDB keeps one GTID per domain: fold only the last (and decode only that one).
            domain = gtid.domain_id if isinstance(gtid, MariadbGtid) else \
                gtid_event_domain(gtid) if isinstance(gtid, tuple) else None
            if domain is not None:
                newest[domain] = gtid
            else:
                executed = add_gtid(executed, _as_gtid(gtid))
            last = gtid
            done += 1
        for gtid in newest.values():
            executed = add_gtid(executed, _as_gtid(gtid))
        self._executed = executed
        if last is not None:
            self.last_durable_gtid = str(_as_gtid(last))
        del pending[:done]

    def _save_state(self, *, force: bool = False) -> None:
        if self._state_batches:
            self._state_deferred = True
            return
        now = time.monotonic()
        if not force and now - self._last_state_save < STATE_SAVE_INTERVAL:
            return
        self._last_state_save = now
        durable = self._durable
        changes: dict[str, Any] = {"executed_gtids": str(self._executed) if self._executed is not None else ""}
        if durable is not None:
            changes.update(last_file=durable.file, last_position=durable.position)
        self.state = self.state.with_(**changes)
        self.state.save(self.state_path)


def _as_gtid(gtid: Gtid | GtidEvent) -> Gtid:
    if not isinstance(gtid, tuple):
        return gtid
    decoded = decode_gtid_event(gtid)
    assert decoded is not None  # the tracker hands out no anonymous GTID events
    return decoded


def _replace_identity(identity: UpstreamIdentity, **changes: Any) -> UpstreamIdentity:
    from dataclasses import replace

    return replace(identity, **changes)


__all__ = ["BinlogStore", "DurablePosition", "EventHeader", "GtidIndexEntry", "file_seq", "fde_fingerprint"]
