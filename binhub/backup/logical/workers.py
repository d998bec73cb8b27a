"""What the dump and the load share: a pool of threads that each hold a server session, and the
progress they report."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Protocol


class Progress(Protocol):
    """What a dump (rows) or a load (bytes) reports while it runs: a TTY progress bar, a log, nothing."""

    def phase(self, name: str, total: int) -> None: ...

    def advance(self, amount: int) -> None: ...  # called from the worker threads


class NoProgress:
    def phase(self, name: str, total: int) -> None:
        pass

    def advance(self, amount: int) -> None:
        pass


def run_all(tasks: Sequence[Callable[[], None]], threads: int, abort: threading.Event, name: str) -> None:
    """Run ``tasks`` on ``threads`` threads; the first failure sets ``abort`` (tasks not yet started
    then do nothing), cancels what is queued and is raised once the running ones have stopped."""
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name) as pool:
        futures = [pool.submit(task) for task in tasks]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f.exception() for f in done if f.exception() is not None]
        if failed:
            abort.set()
            for future in futures:
                future.cancel()
            raise failed[0]  # type: ignore[misc]
