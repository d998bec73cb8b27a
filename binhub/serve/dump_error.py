"""Why a dump cannot start or go on, as the replica is told: an ERR packet, error 1236 mostly.

The store raises its own errors (:class:`~binhub.errors.StartPositionError` for a start it cannot
serve); the dump session turns those into this, with the code a primary would send. Error 1236
(ER_MASTER_FATAL_ERROR_READING_BINLOG) makes a replica stop instead of reconnecting in a loop.
"""

from __future__ import annotations

from binhub.wire.errors import ErrorCode, MysqlError

__all__ = ["DumpError"]


class DumpError(MysqlError):
    """A dump that cannot start or go on: error 1236, which makes a replica stop, not retry."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.MASTER_FATAL_ERROR_READING_BINLOG, message)
