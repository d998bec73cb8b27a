"""The store's reader side: one read-only view, the same whether this process writes the store or not.

::

    reader = StoreReader.open(data_dir)   # any process: follows a relay running elsewhere
    reader = store.reader                 # the writer's own view (``binhub run``): answers from memory

Serve, stream, apply and backup read through this view and never learn which one they hold.
Everything a reader sees is *durable* (DESIGN.md, "durability and visibility"): a file the writer
has begun but not yet made durable is hidden, and the last file ends at the durable position.
Every answer is fresh: the view opened on another process's store re-reads the index, the state
file and the durable marker when they changed on disk (one ``stat`` when they did not).

A reader may be opened before the store exists (``binhub serve`` started before ``binhub relay``):
it then has no files, no durable position and no upstream, and waits for the relay like a reader
at the tail waits for the next transaction.

What a reader offers:

* :attr:`files`, :attr:`durable_position`, :meth:`durable_files`, :attr:`state`,
  :meth:`executed_gtids` (live at the durable position, both flavours), :meth:`file_head`;
* :meth:`wait` until the durable position may have moved: woken in-process by the writer's
  publish, or by inotify on ``DATA_DIR/durable`` from another process (:mod:`binhub.store.watch`);
* reading events: :class:`~binhub.store.follower.StoreFollower` (with the reader lease that keeps
  purge away from the files it reads), started where :mod:`binhub.store.seek` says.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from binhub.binlog.file import BinlogFileReader
from binhub.binlog.gtid import MariadbGtidList, parse_gtid_set
from binhub.binlog.transaction import TransactionTracker
from binhub.errors import BinhubError, GtidError, StorageError
from binhub.store.durable_position import DurablePosition, read_durable
from binhub.store.file_head import FileHead, read_file_head
from binhub.store.index import BinlogIndex, GtidIndex, file_seq
from binhub.store.lock import writer_holds
from binhub.store.recovery import Gtid, GtidSet, add_gtid, mariadb_position
from binhub.store.state import StoreState
from binhub.store.watch import DirectoryWatch, PublishWatch, Watch

if TYPE_CHECKING:
    from binhub.store.follower import StoreHub
    from binhub.store.store import BinlogStore

_FileStamp = tuple[int, int, int]  # (inode, mtime_ns, size): changes with every atomic rewrite


def _stamp(path: Path | None) -> _FileStamp | None:
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


class StoreReader:
    """A read-only view of one store (see the module docstring). Open with :meth:`open`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.binlog_dir = data_dir / "binlog"
        self.readers_dir = data_dir / "readers"
        self.state_path = data_dir / "state.json"
        self.gtid_index = GtidIndex(data_dir / "gtid.index")  # only ever read here
        self._index = BinlogIndex(self.binlog_dir)
        self._index_stamp: _FileStamp | None = None
        self._state = StoreState()
        self._state_stamp: _FileStamp | None = None
        self._heads: dict[str, FileHead] = {}
        self._executed: tuple[DurablePosition, GtidSet | None] | None = None
        self._hub: StoreHub | None = None

    @classmethod
    def open(cls, data_dir: Path, *, must_exist: bool = True) -> StoreReader:
        """A view of the store in ``data_dir``, written by a relay in any process.

        ``must_exist=False`` accepts a store that does not exist yet (a server started before its
        relay): the view is empty until the relay creates it.
        """
        data_dir = Path(data_dir)
        if must_exist and not (data_dir / "binlog").is_dir():
            raise StorageError(f"no store at {data_dir} (no binlog/ folder)", hint="check --data-dir")
        reader = cls(data_dir)
        reader._load_state()
        return reader

    # ------------------------------------------------------------------ what the store holds now

    @property
    def files(self) -> list[str]:
        """Every file of the store, oldest first (the last one may not be durable yet)."""
        stamp = _stamp(self._index.path) if self._index.path is not None else None
        if stamp is None or stamp != self._index_stamp:
            with contextlib.suppress(FileNotFoundError):  # no binlog/ folder yet
                self._index.load()
            self._index_stamp = _stamp(self._index.path)
        return list(self._index.names)

    @property
    def durable_position(self) -> DurablePosition | None:
        """Everything up to here is durable; None before the first publish."""
        return read_durable(self.data_dir / "durable")

    @property
    def state(self) -> StoreState:
        """The state file: upstream identity and source, requested start, purged GTIDs."""
        self._load_state()
        return self._state

    def has_writer(self) -> bool:
        """Whether a relay holds the store open for writing now (in any process)."""
        return writer_holds(self.data_dir / "LOCK")

    def file_path(self, name: str) -> Path:
        return self.binlog_dir / name

    def durable_files(self) -> list[tuple[str, int]]:
        """(name, durable size) of every file readers may see, oldest first."""
        durable = self.durable_position
        if durable is None:
            return []
        out: list[tuple[str, int]] = []
        for name in self.files:
            seq = file_seq(name)
            if seq > durable.file_seq:
                break
            if seq == durable.file_seq:
                out.append((name, durable.position))
                continue
            try:
                out.append((name, self.file_path(name).stat().st_size))
            except FileNotFoundError:
                continue  # purged between listing and stat
        return out

    def durable_end(self, name: str) -> int:
        """How far ``name`` may be read: its size once a later file is durable, else the durable position."""
        durable = self.durable_position
        if durable is None:
            return 4
        if durable.file == name:
            return durable.position
        if durable.file_seq > file_seq(name):
            return os.path.getsize(self.file_path(name))
        return 4

    def file_head(self, name: str) -> FileHead:
        """The events before the first transaction of ``name`` (cached once complete)."""
        head = self._heads.get(name)
        if head is None:
            head = read_file_head(self.file_path(name), name)
            if head.complete:
                self._heads[name] = head
        return head

    def executed_gtids(self) -> GtidSet | None:
        """Every GTID up to the durable position (and before the first file); None if nothing is known.

        A MySQL store answers a GTID set, a MariaDB store its binlog state (the last GTID per
        domain).
        """
        return self.executed_snapshot()[1]

    def executed_snapshot(self) -> tuple[DurablePosition | None, GtidSet | None]:
        """The durable position and the executed GTIDs there, consistent with each other.

        Computed from the state file's snapshot (written at most once a second) or the durable
        file's head, plus the transactions between there and the durable position.
        """
        durable = self.durable_position
        if durable is None:
            state = self.state
            return None, _parse_set(state.executed_gtids, state)
        cached = self._executed
        if cached is not None and cached[0] == durable:
            return cached
        executed, start = self._executed_base(durable)
        if start < durable.position:
            for gtid in _transaction_gtids(self.file_path(durable.file), durable.file, start, durable.position):
                executed = add_gtid(executed, gtid)
        self._executed = (durable, executed)
        return self._executed

    def mariadb_state(self) -> MariadbGtidList:
        """The MariaDB binlog state at the durable position (empty for a MySQL or an empty store)."""
        executed = self.executed_gtids()
        return executed if isinstance(executed, MariadbGtidList) else MariadbGtidList()

    def _executed_base(self, durable: DurablePosition) -> tuple[GtidSet | None, int]:
        """A known (executed set, offset) in the durable file, at or before the durable position."""
        cached = self._executed
        if cached is not None and cached[0].file == durable.file and cached[0].position <= durable.position:
            return cached[1], cached[0].position
        state = self.state
        if state.last_file == durable.file and 4 <= state.last_position <= durable.position:
            snapshot = _parse_set(state.executed_gtids, state)
            if snapshot is not None:
                return snapshot, state.last_position
        try:
            head = self.file_head(durable.file)
        except BinhubError:
            return _parse_set(state.executed_gtids, state), durable.position
        if head.previous_gtids is not None:
            return head.previous_gtids, 4
        if head.gtid_list is not None:
            return mariadb_position(head.gtid_list), 4
        return None, 4

    # ------------------------------------------------------------------ waiting for the writer

    @property
    def hub(self) -> StoreHub:
        """Wake-ups and the window of recent reads, shared by every follower of this view."""
        if self._hub is None:
            from binhub.store.follower import StoreHub

            self._hub = StoreHub(self)
        return self._hub

    async def wait(self, timeout: float | None) -> None:
        """Until the durable position may have moved, or ``timeout`` seconds."""
        await self.hub.wait(timeout)

    def watch(self, notify: Callable[[], None]) -> Watch:
        """Call ``notify`` (in the running loop) whenever the writer may have published."""
        return DirectoryWatch(self.data_dir, notify)

    def close(self) -> None:
        if self._hub is not None:
            self._hub.close()

    def status(self) -> dict[str, Any]:
        durable = self.durable_position
        executed = self.executed_gtids()
        up = self.state.upstream
        return {
            "data_dir": str(self.data_dir),
            "files": len(self.files),
            "durable": {"file": durable.file, "position": durable.position} if durable else None,
            "executed_gtids": str(executed) if executed is not None else "",
            "upstream": {"flavour": up.flavour, "server_id": up.server_id, "version": up.version} if up else None,
            "writer": self.has_writer(),
        }

    # ------------------------------------------------------------------ internals

    def _load_state(self) -> None:
        stamp = _stamp(self.state_path)
        if stamp == self._state_stamp:
            return
        self._state = StoreState.load(self.state_path)
        self._state_stamp = stamp


class WriterView(StoreReader):
    """The reader view of the store this process writes: its answers come from the writer's memory."""

    def __init__(self, store: BinlogStore) -> None:
        super().__init__(store.data_dir)
        self._store = store

    @property
    def files(self) -> list[str]:
        return self._store.files

    @property
    def durable_position(self) -> DurablePosition | None:
        return self._store.durable_position

    @property
    def state(self) -> StoreState:
        return self._store.state

    def has_writer(self) -> bool:
        return True

    def executed_snapshot(self) -> tuple[DurablePosition | None, GtidSet | None]:
        return self._store.durable_position, self._store.executed_gtids

    def watch(self, notify: Callable[[], None]) -> Watch:
        return PublishWatch(self._store, notify)


def _parse_set(text: str, state: StoreState) -> GtidSet | None:
    if not text:
        return None
    try:
        return parse_gtid_set(text, state.upstream.flavour if state.upstream else None)
    except GtidError:
        return None


def _transaction_gtids(path: Path, name: str, start: int, stop: int) -> list[Gtid]:
    """GTIDs of the transactions that end in ``[start, stop)`` of ``path`` (``start`` a boundary)."""
    out: list[Gtid] = []
    tracker = TransactionTracker()
    try:
        with open(path, "rb") as f:
            reader = BinlogFileReader(f, name, start=max(start, 4), verify_checksums=False)
            for ev in reader:
                if ev.offset >= stop:
                    break
                done = tracker.transactions
                if tracker.feed(ev.data, reader.fde.checksum_size if reader.fde else 4) and \
                        tracker.transactions != done and tracker.last_gtid is not None:
                    out.append(tracker.last_gtid)
    except (BinhubError, OSError):
        pass  # past the durable position (a torn tail), or purged meanwhile: not ours to read
    return out


__all__ = ["StoreReader", "WriterView"]
