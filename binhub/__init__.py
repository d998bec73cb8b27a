"""binhub: a binlog hub for MySQL and MariaDB.

The public API: the store, the services, the codecs' main types and the error hierarchy.
Everything else is implementation and may change. Names load on first use (PEP 562), so
``import binhub`` (and every ``binhub`` command's start-up) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

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


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'binhub' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return list(__all__)


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
