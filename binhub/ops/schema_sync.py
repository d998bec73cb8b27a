"""Keeping a store's schema history up to date: scan the store's QUERY events into ``DATA_DIR/schema/``.

The schema layer sits below the store and reads no binlog file itself; this module walks the
store's files (durable part only: a reader never sees what the relay may still cut back), hands
each QUERY event to :class:`binhub.schema.SchemaHistory`, and records how far it got. It also
turns a GTID into the store position just after that transaction, for ``--at GTID``.

One process updates a history at a time (an exclusive flock on ``schema/LOCK``); others wait.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from binhub.binlog.file import BinlogFileReader
from binhub.binlog.transaction import TransactionTracker
from binhub.errors import SchemaHistoryError, StartPositionError
from binhub.schema import Position, QueryScanner, SchemaHistory
from binhub.schema.scan import file_sequence
from binhub.store import StoreReader

__all__ = ["current_history", "find_gtid_end", "history_dir", "open_history", "update_history"]

LOCK_WAIT = 60.0  # seconds to wait for another process updating the same history


def history_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "schema"


@contextlib.contextmanager
def open_history(data_dir: Path, *, salvage: bool = False) -> Iterator[SchemaHistory]:
    """The store's history, opened for writing under its lock (``salvage``: see SchemaHistory.open)."""
    directory = history_dir(data_dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise SchemaHistoryError(f"cannot open the schema history at {directory}: {exc.strerror or exc}") from exc
    try:
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SchemaHistoryError(
                        f"another process has been updating the schema history at {directory} for "
                        f"{LOCK_WAIT:.0f} s", hint="wait for it to finish, or check for a stuck binhub") from None
                time.sleep(0.05)
        yield SchemaHistory.open(directory, salvage=salvage)
    finally:
        os.close(fd)


def update_history(store: StoreReader, history: SchemaHistory) -> int:
    """Scan what the history has not seen yet; returns the number of QUERY events read."""
    start = history.scanned
    seen = 0
    for name, end in store.durable_files():  # nothing before the first publish: a torn tail is no DDL
        seq = file_sequence(name)
        if start is not None and seq < start.seq:
            continue
        offset = start.pos if start is not None and seq == start.seq else 4
        last = offset
        with open(store.file_path(name), "rb") as f:
            reader = BinlogFileReader(f, name, start=offset)
            scanner = QueryScanner(name)
            scanner.fde = reader.fde
            for event in reader:
                if event.end > end:
                    break
                record = scanner.feed(event)
                if record is not None:
                    history.record_query(record)
                    seen += 1
                last = event.end
        history.flush(Position.of(name, last))
    return seen


def current_history(store: StoreReader) -> SchemaHistory:
    """The history brought up to what the store holds durably now, for a reader (a stream) to
    consult; the lock is held only while updating, so other processes are not kept waiting."""
    with open_history(store.data_dir) as history:
        update_history(store, history)
    return history


def find_gtid_end(store: StoreReader, gtid: str) -> Position:
    """The position just after the transaction ``gtid`` (``0-1-42``, ``uuid:42``) in the store."""
    wanted = gtid.strip()
    for name, end in store.durable_files():
        tracker = TransactionTracker()
        with open(store.file_path(name), "rb") as f:
            reader = BinlogFileReader(f, name)
            for event in reader:
                if event.end > end:
                    break
                crc = reader.fde.checksum_size if reader.fde is not None else 4
                if tracker.feed(event.data, crc) and str(tracker.last_gtid) == wanted:
                    return Position.of(name, event.end)
    raise StartPositionError(f"GTID {wanted} is not in the store",
                             hint="binhub binlog ls --data-dir DIR shows the GTIDs each stored file holds")
