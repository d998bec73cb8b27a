"""Store maintenance: purging old files (retention, PURGE BINARY LOGS, the CLI) and importing binlog files.

Functions over the writer, :class:`~binhub.store.store.BinlogStore`, through its public methods;
its ``purge`` and ``import_file`` delegate here. Every purge, whoever asks for it, is planned
here once (:func:`~binhub.store.retention.plan_purge`) against the reader leases of that moment.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from binhub.binlog.constants import EventType
from binhub.binlog.transaction import TransactionTracker
from binhub.errors import FileInUse, StorageError
from binhub.store.archive import archive_file
from binhub.store.fsutil import fsync_dir, storage_error
from binhub.store.index import GTID_INDEX_BYTES, GTID_INDEX_EVERY, file_seq
from binhub.store.recovery import GtidSet, header_gtid_set, scan_tail
from binhub.store.retention import PurgeRules, live_leases, plan_purge

if TYPE_CHECKING:
    from binhub.store.store import BinlogStore

LOG = logging.getLogger("binhub.store")


def purge(store: BinlogStore, rules: PurgeRules, *, all_or_nothing: bool = False) -> tuple[list[str], str]:
    """Remove the oldest files the rules allow (never the active or a leased one).

    Returns the removed names and, if a reader lease stopped the purge early, why. With
    ``all_or_nothing`` (PURGE BINARY LOGS, as the servers do), a lease in the way removes nothing
    and raises :class:`~binhub.errors.FileInUse` instead.
    """
    names = store.files
    if not names:
        return [], ""
    paths = {n: store.binlog_dir / n for n in names}
    sizes = {n: p.stat().st_size for n, p in paths.items()}
    mtimes = {n: p.stat().st_mtime for n, p in paths.items()}
    lease_max_age = rules.stream_lease_max_age if rules.stream_lease_max_age is not None \
        else store.stream_lease_max_age
    leases = live_leases(store.data_dir, stream_lease_max_age=lease_max_age)
    victims, blocked = plan_purge(names, sizes, mtimes, rules, leases=leases, active=store.current_file)
    if blocked and all_or_nothing:
        raise FileInUse(blocked)
    if not victims:
        return [], blocked
    if store.archive_dir is not None:
        for name in victims:  # archived before anything is removed: a failure here removes nothing
            archive_file(paths[name], store.archive_dir)
    gone = set(victims)
    store.index.remove(gone)
    purged = header_set_of(store, store.index.names[0]) if store.index.names else None
    store.update_state(purged_gtids=str(purged) if purged is not None else "")
    store.gtid_index.flush()
    store.gtid_index.rewrite([e for e in store.gtid_index.entries() if e.file not in gone])
    for name in victims:
        paths[name].unlink(missing_ok=True)
    fsync_dir(store.binlog_dir)
    LOG.info("purged %d binlog file(s): %s … %s", len(victims), victims[0], victims[-1])
    if blocked:
        LOG.info("purge stopped early: %s", blocked)
    return victims, blocked

def header_set_of(store: BinlogStore, name: str) -> GtidSet | None:
    from binhub.binlog.file import BinlogFileReader  # loads the event classes: not with the store

    with open(store.binlog_dir / name, "rb") as f:
        reader = BinlogFileReader(f, name, verify_checksums=False)
        for ev in reader:
            if ev.header.type_code in (EventType.PREVIOUS_GTIDS, EventType.MARIA_GTID_LIST):
                return header_gtid_set(ev.data, reader)
            if ev.offset > 4 and ev.header.type_code not in (EventType.FORMAT_DESCRIPTION,):
                break
    return None

def import_file(store: BinlogStore, source: Path) -> str:
    """Copy a binlog file into the store (after the files it already has), indexing it as the relay would.

    The caller verifies the file first; here it is copied durably, scanned for GTIDs and indexed.
    """
    name = source.name
    file_seq(name)
    if store.current_file is not None:
        if not store.current_finished:
            LOG.info("%s did not end with ROTATE or STOP; importing %s after it", store.current_file, name)
        store.close_file()
    if name in store.index.names:
        raise StorageError(f"{name} is already in the store")
    if store.index.names and file_seq(name) <= file_seq(store.index.names[-1]):
        raise StorageError(f"{name} comes before the store's last file {store.index.names[-1]}",
                           hint="import files in order, oldest first, into an empty store or after its last file")
    target = store.binlog_dir / name
    tmp = target.with_name(name + ".import")
    try:
        with open(source, "rb") as src, open(tmp, "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, target)
        stat = source.stat()
        os.utime(target, (stat.st_atime, stat.st_mtime))
        store.index.append(name)
        fsync_dir(store.binlog_dir)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise storage_error(exc, f"cannot import {source}") from exc
    tail = scan_tail(target, 4, target.stat().st_size)
    index_file_gtids(store, target)
    store.adopt_file(name, tail)
    return name

def index_file_gtids(store: BinlogStore, path: Path) -> None:
    tracker = TransactionTracker()
    count = GTID_INDEX_EVERY
    txn_start = 4  # a GTID index entry points at the start of its transaction
    last_entry = 0
    from binhub.binlog.file import BinlogFileReader  # loads the event classes: not with the store

    with open(path, "rb") as f:
        reader = BinlogFileReader(f, path.name, verify_checksums=False)
        for ev in reader:
            done = tracker.transactions
            if tracker.feed(ev.data, reader.fde.checksum_size if reader.fde else 4):
                gtid = tracker.last_gtid if tracker.transactions != done else None
                if gtid is not None:
                    count += 1
                    if count >= GTID_INDEX_EVERY or txn_start - last_entry >= GTID_INDEX_BYTES:
                        store.gtid_index.add(path.name, txn_start, str(gtid), ev.header.timestamp)
                        count, last_entry = 0, txn_start
                txn_start = ev.offset + ev.header.event_size
    store.gtid_index.flush()
