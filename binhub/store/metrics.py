"""The store's Prometheus metrics, registered on the registry the daemon passes in."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, Histogram

__all__ = ["FSYNC_BUCKETS", "StoreMetrics"]

# fsync on an SSD takes 0.1–5 ms, on a busy or network disk 10–500 ms; above 1 s is an incident.
FSYNC_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class StoreMetrics:
    """fsync latency and the store's size. Without a registry, a private one is made."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.registry = r
        self.fsync_seconds = Histogram("binhub_store_fsync_seconds", "Time spent in fsync of binlog files.",
                                       buckets=FSYNC_BUCKETS, registry=r)
        self.bytes = Gauge("binhub_store_bytes", "Bytes in the store's binlog files.", registry=r)
        self.files = Gauge("binhub_store_files", "Binlog files in the store.", registry=r)
