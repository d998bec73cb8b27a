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

from binhub.binlog.gtid import MariadbGtidList
from binhub.errors import StorageError
from binhub.store.durable_position import DurablePosition, read_durable
from binhub.store.file_head import FileHead, read_file_head
from binhub.store.gtid_state import GtidSnapshot, LiveGtidState
from binhub.store.index import BinlogIndex, GtidIndex, file_seq
from binhub.store.lock import writer_holds
from binhub.store.recovery import GtidSet
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
        self._gtids: LiveGtidState | None = None
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
        """The durable position and the executed GTIDs there, consistent with each other."""
        snapshot = self.gtid_snapshot()
        return snapshot.durable, snapshot.executed

    def gtid_snapshot(self) -> GtidSnapshot:
        """The GTID state at the durable position, with MariaDB's binlog state (one GTID per domain
        and server): from the state file's snapshot or the durable file's head, plus the GTIDs read
        since (only those that became durable since the last question)."""
        if self._gtids is None:
            self._gtids = LiveGtidState(self)
        return self._gtids.snapshot()

    def mariadb_state(self) -> MariadbGtidList:
        """The MariaDB binlog position at the durable position (empty for a MySQL or an empty store)."""
        executed = self.executed_gtids()
        return executed if isinstance(executed, MariadbGtidList) else MariadbGtidList()

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
