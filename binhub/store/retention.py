"""Which stored files may go: retention rules, explicit purges, and reader leases that block them.

A reader (a serve session, a stream) holds a lease in ``DATA_DIR/readers/``: a small JSON file with
its pid and the file it reads. Purge never removes that file or any later one. A lease whose pid is
gone is stale and ignored (the reader was killed).

A named stream also holds a *durable* lease (:class:`StreamLease`, ``readers/stream-NAME.json``, no
pid): the file its checkpoint is in, kept while the stream is stopped, so a restart finds every file
it still needs. It goes with ``binhub stream --forget NAME``. So that a stream abandoned for good
cannot fill the disk, a durable lease not refreshed for ``stream_lease_max_age`` is ignored by purge,
with an error in the log naming it (the stream then fails on restart with "older than the store's
retention" rather than resuming with a gap).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from binhub.errors import ConfigError, StorageError
from binhub.store.fsutil import atomic_write

LOG = logging.getLogger("binhub.store")
STREAM_LEASE_REFRESH = 60.0  # seconds: a running stream re-stamps its durable lease at most this often


@dataclass(frozen=True, slots=True)
class Lease:
    holder: str
    pid: int | None  # None: a stream's durable lease, held while the stream is stopped too
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


class StreamLease:
    """A named stream's durable lease on the file its checkpoint is in (module docstring).

    :meth:`hold` is called after each checkpoint is durable: the file is rewritten only when the
    checkpoint moved to another file, or every ``STREAM_LEASE_REFRESH`` seconds to show the stream is
    alive (what ``stream_lease_max_age`` measures), so a busy stream pays no fsync per commit.
    """

    def __init__(self, readers_dir: Path, name: str) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ConfigError("--name", f"{name!r}: use letters, digits, '.', '_' and '-' (it names files)")
        self.name = name
        self.path = readers_dir / f"stream-{name}.json"
        self._file = ""
        self._stamped = 0.0

    def hold(self, file: str, *, target: str = "") -> None:
        now = time.time()
        if file == self._file and now - self._stamped < STREAM_LEASE_REFRESH:
            return
        self.path.parent.mkdir(exist_ok=True)
        doc = {"holder": f"stream {self.name}", "stream": self.name, "to": target, "file": file, "since": int(now)}
        atomic_write(self.path, json.dumps(doc).encode())
        self._file, self._stamped = file, now

    def held_file(self) -> str | None:
        """The file the lease holds now (None: no lease)."""
        try:
            return str(json.loads(self.path.read_text())["file"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError) as exc:
            raise StorageError(f"the stream lease {self.path} cannot be read: {exc}",
                               hint=f"remove it with `binhub stream --forget {self.name}`") from exc

    def forget(self) -> bool:
        """Remove the lease (``binhub stream --forget``): True if there was one."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True


def live_leases(data_dir: Path, *, stream_lease_max_age: float | None = None,
                now: float | None = None) -> list[Lease]:
    """The leases purge must honour: live readers', and streams' durable leases not older than
    ``stream_lease_max_age`` (an older one is ignored, and logged as an error)."""
    now = time.time() if now is None else now
    out = []
    for path in sorted((data_dir / "readers").glob("*.json")):
        try:
            doc = json.loads(path.read_text())
            if "stream" in doc:
                since = float(doc["since"])
                if stream_lease_max_age is not None and since < now - stream_lease_max_age:
                    LOG.error("ignoring the lease of stream %s on %s: not refreshed for %.0f s, longer than "
                              "store.retention.stream_lease_max_age (%.0f s); files it needs may be purged and "
                              "the stream will not resume from its checkpoint", doc["stream"], doc["file"],
                              now - since, stream_lease_max_age)
                    continue
                out.append(Lease(f"stream {doc['stream']}", None, str(doc["file"]), path))
                continue
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
    # Seconds after which a stopped stream's durable lease stops holding files (None: never).
    stream_lease_max_age: float | None = None

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
            if holder.pid is None:
                name = holder.holder.removeprefix("stream ")
                blocked = (f"{names[first_leased]} holds the checkpoint of {holder.holder}, which may be stopped; "
                           f"it and later files are kept (`binhub stream --forget {name}` releases them)")
            else:
                blocked = (f"{names[first_leased]} is being read by {holder.holder} (pid {holder.pid}); "
                           f"it and later files are kept")
            candidates = candidates[:first_leased]
    if active in candidates:
        candidates = candidates[: candidates.index(active)]
    return candidates, blocked
