"""The relay's Prometheus metrics, registered on the registry the daemon passes in.

Pre-built metrics without labels: the pump updates them once per batch, one ``inc`` each.
Without an admin API nothing exports them: :meth:`RelayMetrics.off` takes the updates and keeps
nothing, and prometheus-client (a tenth of the relay's start-up) is then never imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from binhub.metric_families import Discard

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Info

__all__ = ["RelayMetrics"]


class RelayMetrics:
    """Counter names get ``_total`` appended by prometheus-client. Without a registry, a private one
    is made (a relay built outside the daemon, in tests and tools)."""

    registry: CollectorRegistry | None
    bytes: Counter
    events: Counter
    transactions: Counter
    lag: Gauge
    last_gtid: Info
    reconnects: Counter
    connected: Gauge

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Info

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

    @classmethod
    def off(cls) -> RelayMetrics:
        """Metrics nobody exports (no admin API): same attributes, every update discarded."""
        metrics = cls.__new__(cls)
        metrics.registry = None
        discard = cast(Any, Discard())
        metrics.bytes = metrics.events = metrics.transactions = metrics.reconnects = discard
        metrics.lag = metrics.connected = metrics.last_gtid = discard
        return metrics

    def set_last_gtid(self, gtid: str) -> None:
        """Shorthand for ``last_gtid.info({"gtid": gtid})``."""
        self.last_gtid.info({"gtid": gtid})
