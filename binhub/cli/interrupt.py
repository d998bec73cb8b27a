"""Ctrl-C for the one-shot commands that run an event loop (replay, flashback, history).

``asyncio.run`` answers the first SIGINT by cancelling its main task, which happens only once the
loop runs again: a command blocked in synchronous work (the MySQL driver connecting, a sink backing
off from an unreachable downstream) ignored Ctrl-C until that work ended, minutes later. These
commands keep Python's own behaviour instead: KeyboardInterrupt is raised wherever the command is,
its cleanups run, and ``binhub`` exits with status 130. (``binhub stream`` and the daemons stop
gracefully on SIGINT through their own handlers.)
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Coroutine
from types import FrameType
from typing import Any, TypeVar

__all__ = ["run_interruptible"]

T = TypeVar("T")


def run_interruptible(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``, with Ctrl-C raising KeyboardInterrupt even inside blocking calls."""
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return asyncio.run(main)  # SIGINT ignored (a background job) or handled by the caller: leave it
    previous = signal.signal(signal.SIGINT, _interrupt)  # not the default handler: asyncio leaves it alone
    try:
        return asyncio.run(main)
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
