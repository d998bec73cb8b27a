"""The relay's Prometheus metrics, registered on the registry the daemon passes in.

Pre-built metrics without labels: the pump updates them once per batch, one ``inc`` each.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Info

__all__ = ["RelayMetrics"]


class RelayMetrics:
    """Counter names get ``_total`` appended by prometheus-client. Without a registry, a private one
    is made (a relay built outside the daemon, in tests and tools)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.registry = r
        self.bytes = Counter("binhub_relay_bytes", "Binlog bytes received from the upstream and stored.", registry=r)
        self.events = Counter("binhub_relay_events", "Binlog events received from the upstream and stored.",
                              registry=r)
        self.transactions = Counter("binhub_relay_transactions",
                                    "Complete transactions received from the upstream and stored.", registry=r)
        self.lag = Gauge("binhub_relay_lag_seconds",
                         "Seconds between the newest stored event's timestamp and now (0 when caught up).", registry=r)
        self.last_gtid = Info("binhub_relay_last_gtid", "GTID of the last stored transaction.", registry=r)
        self.reconnects = Counter("binhub_relay_reconnects", "Times the relay reconnected to the upstream.",
                                  registry=r)
        self.connected = Gauge("binhub_relay_connected", "1 while the relay is connected to the upstream.", registry=r)

    def set_last_gtid(self, gtid: str) -> None:
        """Shorthand for ``last_gtid.info({"gtid": gtid})``."""
        self.last_gtid.info({"gtid": gtid})
