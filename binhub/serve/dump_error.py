"""Why a dump cannot start or go on, as the replica is told: an ERR packet, error 1236 mostly.

The store raises its own errors (:class:`~binhub.errors.StartPositionError` for a start it cannot
serve); the dump session turns those into this, with the code a primary would send. Error 1236
(ER_MASTER_FATAL_ERROR_READING_BINLOG) makes a replica stop instead of reconnecting in a loop.
"""

from __future__ import annotations

from binhub.errors import BinhubError

ER_MASTER_FATAL_ERROR_READING_BINLOG = 1236
ER_UNKNOWN_ERROR = 1105


class DumpError(BinhubError):
    """A dump that cannot start or continue: sent to the replica as an ERR packet."""

    def __init__(self, message: str, code: int = ER_MASTER_FATAL_ERROR_READING_BINLOG, sqlstate: str = "HY000") -> None:
        super().__init__(message)
        self.code = code
        self.sqlstate = sqlstate
        self.text = message


__all__ = ["ER_MASTER_FATAL_ERROR_READING_BINLOG", "ER_UNKNOWN_ERROR", "DumpError"]
