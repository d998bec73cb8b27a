"""The relay service: upstream primary → store. ``Relay(RelayConfig(...), store, metrics=RelayMetrics(registry))``."""

from binhub.relay.config import RelayConfig, SourceDSN, parse_source_dsn
from binhub.relay.metrics import RelayMetrics
from binhub.relay.relay import Relay, RelayFatal

__all__ = ["Relay", "RelayConfig", "RelayFatal", "RelayMetrics", "SourceDSN", "parse_source_dsn"]
