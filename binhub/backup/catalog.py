"""The backups under a root directory: what exists (``ls``), whether it is intact (``verify``), and
which may go (``prune``).

Everything comes from each backup's ``manifest.json``: a directory without one is not a backup, and
a backup whose manifest does not say ``complete`` is never counted as good.

Prune keeps, whatever the rules say:

* the newest complete backup;
* with the store given, the oldest complete backup the store can extend: the store's oldest file
  begins at or before its GTID, so it is the base of a point-in-time restore to the earliest
  moment the store still reaches (removing it would leave that stretch of the store unreachable);
* an incomplete backup that has not finished (no ``finished_at``): a backup may be running there.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from binhub.backup.compression import open_stored
from binhub.backup.datafiles import CHUNK
from binhub.backup.metadata import BACKUP_MY_CNF, MANIFEST
from binhub.backup.recovery_server import RecoveryServer, innodb_settings
from binhub.backup.restore import PhysicalRestore, RestoreConfig, owner_of
from binhub.binlog.gtid import MariadbGtidList
from binhub.errors import GtidError, InnodbFormatError
from binhub.innodb import TablespaceFlags, crc32c, page_corruption


@dataclass(frozen=True, slots=True)
class BackupEntry:
    """One backup of the catalogue, as its manifest describes it."""

    path: Path
    kind: str
    complete: bool
    started_at: str
    finished_at: str | None
    gtid: str | None
    binlog: str | None  # file:pos
    size: int
    server_version: str
    error: str | None

    @property
    def started(self) -> datetime:
        return datetime.fromisoformat(self.started_at.replace("Z", "+00:00"))

    @property
    def running(self) -> bool:
        """Incomplete and never finished: a backup may still be writing here."""
        return not self.complete and self.finished_at is None

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "kind": self.kind, "complete": self.complete, "started_at": self.started_at,
                "finished_at": self.finished_at, "gtid": self.gtid, "binlog": self.binlog, "size": self.size,
                "server_version": self.server_version, "error": self.error}


def _entry(path: Path, data: dict[str, Any]) -> BackupEntry:
    binlog = f"{data['binlog_file']}:{data.get('binlog_position')}" if data.get("binlog_file") else None
    kind = str(data.get("kind", "physical"))
    size = sum(int(c["bytes"]) for c in _chunks(data)) if kind == "logical" else int(data.get("total_bytes", 0))
    return BackupEntry(path, kind, bool(data.get("complete")),
                       str(data.get("started_at", "")), data.get("finished_at"), data.get("gtid") or None, binlog,
                       size, str(data.get("server_version", "")), data.get("error"))


def _chunks(data: dict[str, Any]) -> list[dict[str, Any]]:
    """A logical backup's chunk entries (file, bytes, crc32c), from its manifest."""
    return [c for t in data.get("tables", []) for c in t.get("chunks", [])]


def list_backups(root: Path) -> list[BackupEntry]:
    """Every backup directly under ``root`` (or ``root`` itself), oldest first."""
    candidates = [root] if (root / MANIFEST).is_file() else sorted(p for p in root.iterdir() if p.is_dir())
    entries = []
    for path in candidates:
        try:
            data = json.loads((path / MANIFEST).read_text())
        except (OSError, ValueError):
            continue  # not a backup (or a manifest being replaced: it is written atomically)
        if isinstance(data, dict):
            entries.append(_entry(path, data))
    return sorted(entries, key=lambda e: (e.started_at, e.path.name))


@dataclass(frozen=True, slots=True)
class FileProblem:
    """A file of a backup that is missing or differs from its manifest; ``offset`` of the first bad
    page when the file is an InnoDB tablespace whose pages say where."""

    relpath: str
    reason: str
    offset: int | None = None

    def __str__(self) -> str:
        where = f" at offset {self.offset}" if self.offset is not None else ""
        return f"{self.relpath}{where}: {self.reason}"


def verify_backup(path: Path, on_bytes: Callable[[int], None] | None = None) -> list[FileProblem]:
    """Re-read every file of the backup at ``path`` and compare it with its manifest entry."""
    data = json.loads((path / MANIFEST).read_text())
    if data.get("kind") == "logical":
        return _verify_chunks(path, data, on_bytes)
    problems = []
    for entry in data.get("files", []):
        relpath = str(entry["relpath"])
        try:
            size, crc = _measure(path, entry, on_bytes)
        except FileNotFoundError:
            problems.append(FileProblem(relpath, "missing"))
            continue
        if size != int(entry["size"]):
            problems.append(FileProblem(relpath, f"{size} bytes, the manifest says {entry['size']}"))
        elif crc != entry["crc32c"]:
            problems.append(FileProblem(relpath, f"CRC-32C {crc}, the manifest says {entry['crc32c']}",
                                        _first_bad_page(path, entry)))
    return problems


def _verify_chunks(path: Path, data: dict[str, Any], on_bytes: Callable[[int], None] | None) -> list[FileProblem]:
    """A logical backup's chunks against the sizes and CRC-32Cs its manifest records."""
    problems = []
    for chunk in _chunks(data):
        name = str(chunk["file"])
        try:
            stored = (path / name).read_bytes()
        except FileNotFoundError:
            problems.append(FileProblem(name, "missing"))
            continue
        if on_bytes is not None:
            on_bytes(len(stored))
        crc = f"{crc32c(stored):08x}"
        if len(stored) != int(chunk["bytes"]) or crc != chunk["crc32c"]:
            problems.append(FileProblem(name, f"{len(stored)} bytes with CRC-32C {crc}, the manifest says "
                                              f"{chunk['bytes']} bytes with {chunk['crc32c']}"))
    return problems


def _measure(root: Path, entry: dict[str, Any], on_bytes: Callable[[int], None] | None) -> tuple[int, str]:
    crc = size = 0
    with open_stored(root, entry) as f:
        while chunk := f.read(CHUNK):
            crc = crc32c(chunk, crc)
            size += len(chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))
    return size, f"{crc:08x}"


def _first_bad_page(root: Path, entry: dict[str, Any]) -> int | None:
    """The offset of the first page of an InnoDB file that fails its checksum (None: not InnoDB, or
    every page checks out and the damage is elsewhere)."""
    relpath = str(entry["relpath"])
    if not (relpath.endswith(".ibd") or relpath.startswith(("ibdata", "undo"))):
        return None
    with open_stored(root, entry) as f:
        page0 = f.read(16384)
        try:
            flags = TablespaceFlags.from_page0(page0)
        except InnodbFormatError:
            return 0
        size = flags.physical_size
        page = page0[:size]
        rest = page0[size:]
        offset = 0
        while len(page) == size:
            if page_corruption(page, flags) is not None:
                return offset
            offset += size
            page = rest + f.read(size - len(rest)) if rest else f.read(size)
            rest = b""
    return None


def prune_plan(entries: list[BackupEntry], *, keep: int | None, older_than: datetime | None,
               store_start: MariadbGtidList | None) -> list[BackupEntry]:
    """The backups the rules remove, after the protections of the module docstring."""
    complete = [e for e in entries if e.complete]
    protected: set[Path] = set()
    if complete:
        protected.add(complete[-1].path)
    if store_start is not None:
        for e in complete:
            if e.gtid is not None and _extends(store_start, e.gtid):
                protected.add(e.path)
                break
    doomed: list[BackupEntry] = []
    if keep is not None:
        kept = {e.path for e in complete[-keep:]} if keep > 0 else set()
        doomed += [e for e in entries if e.path not in kept and not e.running]
    if older_than is not None:
        doomed += [e for e in entries if e.started < older_than and not e.running and e not in doomed]
    return [e for e in doomed if e.path not in protected]


def _extends(store_start: MariadbGtidList, gtid: str) -> bool:
    try:
        return MariadbGtidList.parse(gtid).covers(store_start)
    except GtidError:
        return False


def remove_backup(entry: BackupEntry) -> None:
    """Delete a backup: its manifest first, so a half-removed directory is never taken for a good backup."""
    (entry.path / MANIFEST).unlink(missing_ok=True)
    shutil.rmtree(entry.path)
    parent = os.open(entry.path.parent, os.O_RDONLY)
    try:
        os.fsync(parent)
    finally:
        os.close(parent)


def verify_by_restore(path: Path, mariadbd: Path, scratch: Path) -> tuple[int, list[str]]:
    """The restore test nobody automates: restore the backup at ``path`` into ``scratch`` (a new
    directory, removed afterwards), start a throwaway server on it and ``CHECK TABLE`` every table.
    Returns (tables checked, what CHECK TABLE found wrong)."""
    try:
        PhysicalRestore(RestoreConfig(backup=path, target=scratch, mariadbd=mariadbd)).run()
        with RecoveryServer(mariadbd, scratch, innodb_settings(path / BACKUP_MY_CNF),
                            owner=owner_of(scratch)) as server:
            tables = server.query(
                "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
                "AND table_schema NOT IN ('information_schema', 'performance_schema', 'sys')")
            problems = []
            for schema, table in tables:
                name = f"`{str(schema).replace('`', '``')}`.`{str(table).replace('`', '``')}`"
                for row in server.query(f"CHECK TABLE {name}"):
                    kind, text = str(row[2]), str(row[3])
                    if kind == "error" or (kind == "status" and text != "OK"):
                        problems.append(f"{schema}.{table}: {kind}: {text}")
            server.shutdown()
        return len(tables), problems
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
