"""How a reader learns that the writer may have made more durable: the two kinds of watch.

* :class:`PublishWatch`: the writer is in this process (``binhub run``); its ``publish`` calls
  the reader back directly, within the same loop iteration (or, from a worker thread, through
  ``call_soon_threadsafe``).
* :class:`DirectoryWatch`: the writer is another process (``binhub serve`` beside ``binhub
  relay``). The relay ``pwrite``s ``DATA_DIR/durable`` after every group commit, so an inotify
  watch on the store directory wakes the reader; where inotify is missing, a short poll does.
  The directory may not exist yet (the server started first): the watch then polls slowly for it
  and attaches once the relay has created it.

Both call ``notify`` in the event loop that created them; ``cap()`` bounds how long a waiter may
sleep before it looks again (a wake-up lost to a race costs at most that).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import errno
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from binhub.store.durable_position import DurablePosition
    from binhub.store.store import BinlogStore

LOG = logging.getLogger("binhub.store.watch")

POLL_INTERVAL = 0.005  # without inotify: how often another process's publish is looked for
INOTIFY_SAFETY_POLL = 0.25  # with inotify: a missed wake-up costs at most this
MISSING_DIR_POLL = 0.25  # no store yet: how often to look whether the relay created it

_IN_MODIFY = 0x002
_IN_CLOSE_WRITE = 0x008
_IN_MOVED_TO = 0x080
_IN_CREATE = 0x100
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000


class Watch(Protocol):
    def cap(self) -> float | None:
        """The longest a waiter should sleep before looking again (None: only when woken)."""

    def close(self) -> None: ...


class PublishWatch:
    """In-process: the writer's publish listeners."""

    def __init__(self, store: BinlogStore, notify: Callable[[], None]) -> None:
        self._store = store
        self._notify = notify
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        store.add_listener(self._on_publish)

    def _on_publish(self, _pos: DurablePosition) -> None:
        # The relay publishes from the loop thread, but ``commit()`` may run in a worker thread.
        if threading.get_ident() == self._thread:
            self._notify()
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._notify)

    def cap(self) -> float | None:
        return None

    def close(self) -> None:
        self._store.remove_listener(self._on_publish)


class DirectoryWatch:
    """Another process writes: inotify on the store directory, else a poll."""

    def __init__(self, directory: Path, notify: Callable[[], None]) -> None:
        self._directory = directory
        self._notify = notify
        self._loop = asyncio.get_running_loop()
        self._inotify: _Inotify | None = None
        self._unavailable = False
        self._attach()

    def _attach(self) -> None:
        try:
            inotify = _Inotify(self._directory)
        except FileNotFoundError:
            return  # no store yet: cap() polls until the relay creates it
        except (OSError, AttributeError) as exc:
            LOG.info("inotify unavailable (%s); polling the durable position every %d ms",
                     exc, int(POLL_INTERVAL * 1000))
            self._unavailable = True
            return
        self._inotify = inotify
        self._loop.add_reader(inotify.fd, self._on_event)

    def _on_event(self) -> None:
        if self._inotify is not None:
            self._inotify.drain()
        self._notify()

    def cap(self) -> float | None:
        if self._inotify is None and not self._unavailable:
            self._attach()
            if self._inotify is not None:
                return 0.0  # just attached: whatever happened before is not signalled, so look now
        if self._inotify is not None:
            return INOTIFY_SAFETY_POLL
        return POLL_INTERVAL if self._unavailable else MISSING_DIR_POLL

    def close(self) -> None:
        if self._inotify is not None:
            if not self._loop.is_closed():
                with contextlib.suppress(Exception):
                    self._loop.remove_reader(self._inotify.fd)
            self._inotify.close()
            self._inotify = None


class _Inotify:
    """A tiny ctypes wrapper: one watch on a directory, a readable fd for ``loop.add_reader``."""

    def __init__(self, directory: Path) -> None:
        name = ctypes.util.find_library("c")
        libc = ctypes.CDLL(name or "libc.so.6", use_errno=True)
        fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self.fd = int(fd)
        mask = _IN_MODIFY | _IN_CLOSE_WRITE | _IN_MOVED_TO | _IN_CREATE
        if libc.inotify_add_watch(self.fd, os.fsencode(directory), mask) < 0:
            err = ctypes.get_errno()
            os.close(self.fd)
            if err == errno.ENOENT:
                raise FileNotFoundError(err, f"{directory} does not exist")
            raise OSError(err, f"inotify_add_watch({directory}) failed")

    def drain(self) -> None:
        """Consume pending notifications; which file changed does not matter, only that one did."""
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while os.read(self.fd, 65536):
                pass

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


__all__ = ["INOTIFY_SAFETY_POLL", "POLL_INTERVAL", "DirectoryWatch", "PublishWatch", "Watch"]
