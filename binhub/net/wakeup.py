"""One task waiting for the event loop to say "go on": a connection's reads and drains."""

from __future__ import annotations

import asyncio

__all__ = ["Wakeup"]


class Wakeup:
    """At most one waiter; :meth:`wake` releases it (and is a no-op when nobody waits)."""

    __slots__ = ("_future",)

    def __init__(self) -> None:
        self._future: asyncio.Future[None] | None = None

    async def wait(self) -> None:
        self._future = future = asyncio.get_running_loop().create_future()
        try:
            await future
        finally:
            if self._future is future:
                self._future = None

    def wake(self) -> None:
        future, self._future = self._future, None
        if future is not None and not future.done():
            future.set_result(None)
