"""binhub: a binlog hub for MySQL and MariaDB.

The public API: the store, the services, the codecs' main types and the error hierarchy.
Everything else is implementation and may change. Names load on first use (PEP 562), so
``import binhub`` (and every ``binhub`` command's start-up) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from binhub.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "binhub.binlog.decode": ["decode_event"],
    "binhub.binlog.file": ["BinlogFileReader", "RawEvent"],
    "binhub.binlog.gtid": ["MariadbGtid", "MariadbGtidList", "MysqlGtid", "MysqlGtidSet", "parse_gtid_set"],
    "binhub.binlog.transaction": ["TransactionTracker"],
    "binhub.errors": ["AuthenticationFailed", "BinhubError", "BinlogError", "ChecksumMismatch", "ConfigError",
                      "ConnectionFailed", "GtidError", "IdentityMismatch", "ProtocolError", "StartPositionError",
                      "StorageError", "StoreLocked", "TruncatedEvent", "UpstreamError"],
    "binhub.relay": ["Relay"],
    "binhub.serve.server": ["BinlogServer"],
    "binhub.store": ["BinlogStore", "Durability", "DurablePosition", "StoreReader"],
}

__all__ = [
    "AuthenticationFailed",
    "BinhubError",
    "BinlogError",
    "BinlogFileReader",
    "BinlogServer",
    "BinlogStore",
    "ChecksumMismatch",
    "ConfigError",
    "ConnectionFailed",
    "Durability",
    "DurablePosition",
    "GtidError",
    "IdentityMismatch",
    "MariadbGtid",
    "MariadbGtidList",
    "MysqlGtid",
    "MysqlGtidSet",
    "ProtocolError",
    "RawEvent",
    "Relay",
    "StartPositionError",
    "StorageError",
    "StoreLocked",
    "StoreReader",
    "TransactionTracker",
    "TruncatedEvent",
    "UpstreamError",
    "__version__",
    "decode_event",
    "parse_gtid_set",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

if TYPE_CHECKING:
    from binhub.binlog.decode import decode_event
    from binhub.binlog.file import BinlogFileReader, RawEvent
    from binhub.binlog.gtid import MariadbGtid, MariadbGtidList, MysqlGtid, MysqlGtidSet, parse_gtid_set
    from binhub.binlog.transaction import TransactionTracker
    from binhub.errors import (
        AuthenticationFailed,
        BinhubError,
        BinlogError,
        ChecksumMismatch,
        ConfigError,
        ConnectionFailed,
        GtidError,
        IdentityMismatch,
        ProtocolError,
        StartPositionError,
        StorageError,
        StoreLocked,
        TruncatedEvent,
        UpstreamError,
    )
    from binhub.relay import Relay
    from binhub.serve.server import BinlogServer
    from binhub.store import BinlogStore, Durability, DurablePosition, StoreReader
