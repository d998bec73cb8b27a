"""The relay service: upstream primary → store. ``Relay(RelayConfig(...), store, metrics=RelayMetrics(registry))``.

The relay itself (and the store and network code under it) is imported when first named, so that
commands which only parse a source DSN with :mod:`binhub.relay.config` (backup, restore) start fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from binhub.relay.config import RelayConfig, SourceDSN, parse_source_dsn

if TYPE_CHECKING:
    from binhub.relay.metrics import RelayMetrics
    from binhub.relay.relay import Relay, RelayFatal

__all__ = ["Relay", "RelayConfig", "RelayFatal", "RelayMetrics", "SourceDSN", "parse_source_dsn"]
_LAZY = {"Relay": "binhub.relay.relay", "RelayFatal": "binhub.relay.relay", "RelayMetrics": "binhub.relay.metrics"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
