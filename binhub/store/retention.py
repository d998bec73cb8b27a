"""Which stored files may go: retention rules, explicit purges, and reader leases that block them.

A reader (a serve session, a stream) holds a lease in ``DATA_DIR/readers/``: a small JSON file with
its pid and the file it reads. Purge never removes that file or any later one. A lease whose pid is
gone is stale and ignored (the reader was killed).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from binhub.errors import StorageError
from binhub.store.fsutil import atomic_write


@dataclass(frozen=True, slots=True)
class Lease:
    holder: str
    pid: int
    file: str
    path: Path


class ReaderLease:
    """Held by a live reader; ``move(file)`` as it advances, ``release()`` when done."""

    def __init__(self, data_dir: Path, holder: str, file: str) -> None:
        self.path = data_dir / "readers" / f"{uuid.uuid4().hex}.json"
        self.holder = holder
        self.move(file)

    def move(self, file: str) -> None:
        self.file = file
        doc = {"holder": self.holder, "pid": os.getpid(), "file": file, "since": int(time.time())}
        atomic_write(self.path, json.dumps(doc).encode())

    def release(self) -> None:
        self.path.unlink(missing_ok=True)


def live_leases(data_dir: Path) -> list[Lease]:
    out = []
    for path in sorted((data_dir / "readers").glob("*.json")):
        try:
            doc = json.loads(path.read_text())
            pid = int(doc["pid"])
        except (OSError, ValueError, KeyError):
            continue
        if _alive(pid):
            out.append(Lease(str(doc.get("holder", "?")), pid, str(doc["file"]), path))
        else:
            path.unlink(missing_ok=True)
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True, slots=True)
class PurgeRules:
    to: str | None = None  # purge files before this one (PURGE BINARY LOGS TO)
    before: float | None = None  # purge files whose last event is older than this unix time
    max_age: float | None = None  # seconds
    max_size: int | None = None  # bytes, all files together
    max_files: int | None = None

    @property
    def empty(self) -> bool:
        return all(v is None for v in (self.to, self.before, self.max_age, self.max_size, self.max_files))


def plan_purge(names: list[str], sizes: dict[str, int], mtimes: dict[str, float], rules: PurgeRules,
               *, leases: list[Lease], active: str | None, now: float | None = None) -> tuple[list[str], str]:
    """The oldest files the rules allow to remove, and why the plan stops where it does ("" if it doesn't).

    Files are only ever removed from the front; the newest file always stays.
    """
    now = time.time() if now is None else now
    if rules.to is not None and rules.to not in names:
        raise StorageError(f"purge to {rules.to!r}: no such file in the store")
    candidates: list[str] = []
    total = sum(sizes.values())
    count = len(names)
    for name in names[:-1]:
        wanted = False
        if rules.to is not None and names.index(name) < names.index(rules.to):
            wanted = True
        if rules.before is not None and mtimes[name] < rules.before:
            wanted = True
        if rules.max_age is not None and mtimes[name] < now - rules.max_age:
            wanted = True
        if rules.max_size is not None and total > rules.max_size:
            wanted = True
        if rules.max_files is not None and count > rules.max_files:
            wanted = True
        if not wanted:
            break
        candidates.append(name)
        total -= sizes[name]
        count -= 1
    blocked = ""
    leased = [lease for lease in leases if lease.file in names]
    if leased:
        first_leased = min(names.index(lease.file) for lease in leased)
        if len(candidates) > first_leased:
            holder = next(lease for lease in leased if names.index(lease.file) == first_leased)
            blocked = (f"{names[first_leased]} is being read by {holder.holder} (pid {holder.pid}); "
                       f"it and later files are kept")
            candidates = candidates[:first_leased]
    if active in candidates:
        candidates = candidates[: candidates.index(active)]
    return candidates, blocked
