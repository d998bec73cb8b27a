"""Follow a store from (file, position): whole events, only up to the durable position, live.

A :class:`StoreFollower` is what a dump session, a stream or any other reader iterates: ``read()``
returns the next batch of complete events of one file, as raw bytes with their offsets, waiting for
the relay to make more durable when it has sent everything. It never returns a byte past the
durable position, so nobody downstream sees a transaction that a crash could take back. It reads
through a :class:`~binhub.store.reader.StoreReader`, so it works the same in the relay's process
and in another one.

Waking up: the reader's watch (:mod:`binhub.store.watch`) wakes waiting followers when the writer
publishes, in-process or across processes. One :class:`StoreHub` per reader holds it, shared by
every follower of that reader.

Fan-out: replicas at the tail are all woken by the same publish and all ask for the same bytes
``[old durable, new durable)``. The hub keeps the most recent chunks in one shared window keyed
by ``(file, start, end)``, so N tail replicas cost one ``pread``, not N, and a memo of what was
derived from a span (its parsed events, a dump's framed packets). Catch-up reads are MiB sized and
done in a worker thread, so a cold disk never stalls the event loop (and the other sessions on it).

Each follower holds a :class:`~binhub.store.retention.ReaderLease` that moves with it from file
to file: purge never removes a file it is reading or will read next.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar, cast

from binhub.binlog.constants import HEADER_SIZE
from binhub.errors import StorageError
from binhub.store.index import file_seq
from binhub.store.reader import StoreReader
from binhub.store.retention import ReaderLease
from binhub.store.watch import Watch

CHUNK_SIZE = 1 << 20  # catch-up reads: one MiB per pread
THREAD_READ_MIN = 64 * 1024  # smaller reads (the live tail) are cheaper inline than in a thread
WINDOW_BYTES = 64 << 20  # the shared window of recent chunks
WINDOW_CHUNKS = 256
MEMO_BYTES = 128 << 20  # parsed and framed spans kept for other followers of the same span

_SIZE = struct.Struct("<I")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Batch:
    """Complete events of one file, in order: ``(offset, event bytes)``; ``end`` follows the last."""

    file: str
    events: list[tuple[int, memoryview]]
    end: int


class FollowerClosed(Exception):
    """Raised by ``read()`` after ``close()``."""


class _BuilderGone(Exception):
    """A shared build was cancelled with the task running it; whoever waited on it builds again."""


# --------------------------------------------------------------------------- the per-reader hub

class StoreHub:
    """Wake-ups and the shared window of one reader, for every follower of it in this process."""

    def __init__(self, reader: StoreReader) -> None:
        self.reader = reader
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._watch: Watch | None = None
        self._window: collections.OrderedDict[tuple[str, int, int], bytes] = collections.OrderedDict()
        self._window_bytes = 0
        self._pending: dict[tuple[object, ...], asyncio.Future[object]] = {}
        # Work derived from a chunk (its parsed events, a dump's framing template), shared by every
        # follower reading the same span: fan-out replicas then parse and frame each chunk once.
        self._memo: collections.OrderedDict[tuple[object, ...], tuple[object, int]] = collections.OrderedDict()
        self._memo_bytes = 0
        self.window_hits = 0
        self.window_misses = 0

    # -- wake-ups -------------------------------------------------------------------------------
    def _attach(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        if self._watch is not None:
            self._watch.close()  # a watch of a previous loop (tests run one loop after another)
        self._loop = loop
        self._waiter = None
        self._watch = self.reader.watch(self.notify)

    def notify(self) -> None:
        waiter = self._waiter
        self._waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, timeout: float | None) -> None:
        """Until the durable position may have moved, or ``timeout`` seconds."""
        self._attach()
        assert self._watch is not None
        cap = self._watch.cap()
        if cap is not None:
            timeout = cap if timeout is None else min(timeout, cap)
        if self._waiter is None or self._waiter.done():
            self._waiter = asyncio.get_running_loop().create_future()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._waiter), timeout)

    def close(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        self._loop = None

    # -- the shared window ----------------------------------------------------------------------
    async def read(self, fd: int, file: str, start: int, end: int, *, remember: bool = True) -> bytes:
        """``pread`` of ``[start, end)`` of ``file``, shared with every follower asking for the same span
        (kept in the window for later ones unless ``remember`` is false)."""
        key = (file, start, end)
        data = self._window.get(key)
        if data is not None:
            self._window.move_to_end(key)
            self.window_hits += 1
            return data
        return await self._once(("read", *key), lambda: self._load(key, fd, remember))

    async def _load(self, key: tuple[str, int, int], fd: int, remember: bool) -> bytes:
        self.window_misses += 1
        _, start, end = key
        size = end - start
        if size >= THREAD_READ_MIN:
            data = await asyncio.to_thread(_pread_all, fd, size, start)
        else:
            data = _pread_all(fd, size, start)
        if remember:
            self._remember(key, data)
        return data

    async def memo_build(self, key: tuple[object, ...], build: Callable[[], Awaitable[tuple[T, int]]]) -> T:
        """The value kept under ``key``, or ``build()``'s: ``(value, bytes it pins)``, kept unless None.

        Followers asking for the same key while it is being built wait for that one build: replicas
        of a fan-out arrive at a chunk together, and each would otherwise read and parse it itself.
        """
        hit = self.memo_get(key)
        if hit is not None:
            return cast(T, hit)

        async def make() -> T:
            value, cost = await build()
            if value is not None:
                self.memo_put(key, value, cost)
            return value

        return await self._once(("memo", *key), make)

    async def _once(self, key: tuple[object, ...], build: Callable[[], Awaitable[T]]) -> T:
        """``build()`` run once for every caller asking for ``key`` while it runs (single flight)."""
        while True:
            pending = self._pending.get(key)
            if pending is None:
                break
            try:
                return cast(T, await asyncio.shield(pending))
            except _BuilderGone:
                continue  # its task was cancelled (a replica left): build it here instead
        fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._pending[key] = fut
        try:
            value = await build()
        except BaseException as exc:
            fut.set_exception(exc if isinstance(exc, Exception) else _BuilderGone())
            fut.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            self._pending.pop(key, None)
        fut.set_result(value)
        return value

    def memo_get(self, key: tuple[object, ...]) -> object | None:
        """What ``memo_put`` stored under ``key`` (if still there)."""
        hit = self._memo.get(key)
        if hit is None:
            return None
        self._memo.move_to_end(key)
        return hit[0]

    def memo_put(self, key: tuple[object, ...], value: object, cost: int) -> None:
        """Keep ``value`` (pinning about ``cost`` bytes) for other followers of the same span; LRU, bounded."""
        if cost > MEMO_BYTES // 2 or key in self._memo:
            return
        self._memo[key] = (value, cost)
        self._memo_bytes += cost
        while self._memo_bytes > MEMO_BYTES or len(self._memo) > 2 * WINDOW_CHUNKS:
            _, (_, old) = self._memo.popitem(last=False)
            self._memo_bytes -= old

    def _remember(self, key: tuple[str, int, int], data: bytes) -> None:
        if len(data) > WINDOW_BYTES // 4:
            return  # one huge event would evict everything else
        self._window[key] = data
        self._window_bytes += len(data)
        while self._window_bytes > WINDOW_BYTES or len(self._window) > WINDOW_CHUNKS:
            _, old = self._window.popitem(last=False)
            self._window_bytes -= len(old)


def _pread_all(fd: int, size: int, offset: int) -> bytes:
    data = os.pread(fd, size, offset)
    if len(data) == size:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = os.pread(fd, size - got, offset + got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


# --------------------------------------------------------------------------- the follower

class StoreFollower:
    """Read a store's events from ``(file, position)`` on, following the durable position live."""

    def __init__(self, reader: StoreReader, file: str, position: int, *, holder: str, lease: bool = True,
                 share: bool = True) -> None:
        if position < 4:
            raise ValueError(f"position {position} is inside the binlog magic; use 4 or more")
        self.reader = reader
        self.hub = reader.hub
        self.file = file
        self.position = position
        self.holder = holder
        # ``share=False`` (a stream): what it reads is not kept in the hub's window and memo for other
        # followers. Those exist for replicas reading the same tail together; a reader on its own
        # would only fill them (up to WINDOW_BYTES + MEMO_BYTES of chunks it never reads again).
        self.share = share
        self._fd: int | None = None
        self._closed_size: int | None = None  # the size of the current file once it is complete
        self._ready_end = 0  # how far the current file was readable at the last ready()
        self._closed = False
        self._lease: ReaderLease | None = None
        if lease:
            with contextlib.suppress(OSError):
                reader.readers_dir.mkdir(exist_ok=True)
            self._lease = ReaderLease(reader.data_dir, holder, file)
        self._open(file)

    # -- public ---------------------------------------------------------------------------------
    def seek(self, position: int) -> None:
        """Continue in the same file at ``position`` (which must be an event boundary)."""
        self.position = position

    async def ready(self, timeout: float | None = None) -> bool:
        """Wait until there is something to read at ``position`` (moving on to the next file once this
        one is read to its end); False when ``timeout`` passed first (``timeout=0`` never waits)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            if self._closed:
                raise FollowerClosed(f"follower of {self.file} was closed")
            end, complete = self._readable_end()
            if self.position < end:
                self._ready_end = end  # read()/read_raw() reuse it: a serve-only process reads it from disk
                return True
            if complete and self._advance():
                continue
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return False
            await self.hub.wait(remaining)

    async def read(self, timeout: float | None = None, *, max_bytes: int = CHUNK_SIZE) -> Batch:
        """The next events (at least one), or an empty batch when ``timeout`` passes with nothing new.

        ``timeout=0`` never waits: an empty batch then means "everything durable has been read".
        """
        if not await self.ready(timeout):
            return Batch(self.file, [], self.position)
        end = self._ready_end
        return await self._read_events(min(end, self.position + max_bytes), end)

    async def read_raw(self, max_bytes: int = CHUNK_SIZE) -> bytes:
        """Up to ``max_bytes`` from ``position`` on, never past the durable end, not cut at an event
        boundary: for a caller that parses them itself and then ``seek``s. Call after ``ready()``."""
        assert self._fd is not None and self.position < self._ready_end
        return await self.hub.read(self._fd, self.file, self.position, min(self._ready_end, self.position + max_bytes))

    def caught_up(self) -> bool:
        """True when everything durable has been read (the next ``read`` would wait)."""
        end, complete = self._readable_end()
        if self.position < end:
            return False
        return not (complete and self._next_name() is not None)

    def close(self) -> None:
        self._closed = True
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        if self._lease is not None:
            self._lease.release()
            self._lease = None

    # -- internals ------------------------------------------------------------------------------
    def _open(self, name: str) -> None:
        try:
            fd = os.open(self.reader.file_path(name), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise StorageError(f"{name} is not in the store (purged, or never stored)") from None
        except OSError as exc:
            raise StorageError(f"cannot open {name}: {exc}") from exc
        if self._fd is not None:
            os.close(self._fd)
        self._fd = fd
        self._closed_size = None
        self._ready_end = 0

    def _readable_end(self) -> tuple[int, bool]:
        """(how far this file may be read, whether the file is complete)."""
        durable = self.reader.durable_position
        if durable is None:
            return 0, False
        seq = file_seq(self.file)
        if durable.file == self.file:
            return durable.position, False
        if durable.file_seq > seq:
            # A later file is durable: this one was closed (fsynced) before it began.
            if self._closed_size is None:
                assert self._fd is not None
                self._closed_size = os.fstat(self._fd).st_size
            return self._closed_size, True
        return 0, False

    def _next_name(self) -> str | None:
        names = self.reader.files
        if self.file in names:
            i = names.index(self.file)
            return names[i + 1] if i + 1 < len(names) else None
        later = [n for n in names if file_seq(n) > file_seq(self.file)]
        return later[0] if later else None

    def _advance(self) -> bool:
        name = self._next_name()
        if name is None:
            return False
        if self._lease is not None:
            self._lease.move(name)
        self._open(name)
        self.file = name
        self.position = 4
        return True

    async def _read_events(self, stop: int, limit: int) -> Batch:
        """Whole events in ``[position, stop)``; extends past ``stop`` (up to ``limit``) for a large event."""
        file, start, fd = self.file, self.position, self._fd
        assert fd is not None
        if not self.share:
            (events, self.position), _ = await self._parse(fd, file, start, stop, limit)
            return Batch(file, events, self.position)
        # Followers at the same span share one (immutable) parsed event list.
        events, self.position = await self.hub.memo_build(
            ("events", file, start, stop), lambda: self._parse(fd, file, start, stop, limit))
        return Batch(file, events, self.position)

    async def _parse(self, fd: int, file: str, start: int, stop: int,
                     limit: int) -> tuple[tuple[list[tuple[int, memoryview]], int], int]:
        """((events, end), bytes pinned) of the span, as ``memo_build`` wants it."""
        data = await self.hub.read(fd, file, start, stop, remember=self.share)
        view = memoryview(data)
        events: list[tuple[int, memoryview]] = []
        pos = 0
        n = len(view)
        while n - pos >= HEADER_SIZE:
            size = _SIZE.unpack_from(view, pos + 9)[0]
            if size < HEADER_SIZE:
                raise StorageError(f"{file} holds a corrupt event header at offset {start + pos} "
                                   f"(declared size {size})", hint="run `binhub binlog verify` on the store")
            if pos + size > n:
                break
            events.append((start + pos, view[pos:pos + size]))
            pos += size
        if not events:
            # One event larger than the chunk: read exactly that event.
            if n < HEADER_SIZE:
                head = _pread_all(fd, HEADER_SIZE, start)
                if len(head) < HEADER_SIZE:
                    raise StorageError(f"{file} ends inside an event header at offset {start}")
                size = _SIZE.unpack_from(head, 9)[0]
            if start + size > limit:
                raise StorageError(f"{file}: the event at offset {start} ({size} bytes) runs past the "
                                   f"durable end {limit}", hint="run `binhub binlog verify` on the store")
            if size < THREAD_READ_MIN:
                data = _pread_all(fd, size, start)
            else:
                data = await asyncio.to_thread(_pread_all, fd, size, start)
            if len(data) < size:
                raise StorageError(f"{file} ends inside an event at offset {start}")
            events.append((start, memoryview(data)))
            pos = size
        return (events, start + pos), max(n, pos)

    def __enter__(self) -> StoreFollower:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Batch", "FollowerClosed", "StoreFollower", "StoreHub"]
