"""Prometheus metrics for the daemon, in a registry of their own.

Each :class:`Metrics` owns a ``CollectorRegistry`` instead of using prometheus-client's global one:
tests (and, later, several stores in one process) can create as many as they like without
"Duplicated timeseries" errors, and ``/metrics`` shows exactly what this daemon registered.

``Metrics()`` is cheap, so there is no null object: services always receive one, and a service
built without one creates its own private instance.

The relay and the store update the attributes directly (``metrics.relay_bytes.inc(n)``). Keep the
per-event work to one ``inc`` on a pre-built metric: no labels are created on the hot path.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

__all__ = ["CONTENT_TYPE", "FSYNC_BUCKETS", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST

# fsync on an SSD takes 0.1–5 ms, on a busy or network disk 10–500 ms; above 1 s is an incident.
FSYNC_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class Metrics:
    """Every metric binhub exports. Counter names get ``_total`` appended by prometheus-client."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.relay_bytes = Counter("binhub_relay_bytes", "Binlog bytes received from the upstream and stored.", registry=r)
        self.relay_events = Counter("binhub_relay_events", "Binlog events received from the upstream and stored.", registry=r)
        self.relay_transactions = Counter(
            "binhub_relay_transactions", "Complete transactions received from the upstream and stored.", registry=r
        )
        self.relay_lag = Gauge(
            "binhub_relay_lag_seconds",
            "Seconds between the newest stored event's timestamp and now (0 when caught up).",
            registry=r,
        )
        self.relay_last_gtid = Info("binhub_relay_last_gtid", "GTID of the last stored transaction.", registry=r)
        self.relay_reconnects = Counter("binhub_relay_reconnects", "Times the relay reconnected to the upstream.", registry=r)
        self.relay_connected = Gauge("binhub_relay_connected", "1 while the relay is connected to the upstream.", registry=r)
        self.store_fsync = Histogram(
            "binhub_store_fsync_seconds", "Time spent in fsync of binlog files.", buckets=FSYNC_BUCKETS, registry=r
        )
        self.store_bytes = Gauge("binhub_store_bytes", "Bytes in the store's binlog files.", registry=r)
        self.store_files = Gauge("binhub_store_files", "Binlog files in the store.", registry=r)

    def set_last_gtid(self, gtid: str) -> None:
        """Shorthand for ``relay_last_gtid.info({"gtid": gtid})``."""
        self.relay_last_gtid.info({"gtid": gtid})

    def render(self) -> bytes:
        """The Prometheus text exposition of this registry, for ``GET /metrics``."""
        return generate_latest(self.registry)
