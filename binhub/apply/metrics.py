"""``binhub apply``'s Prometheus metrics: rows and transactions applied, rows per second, and how
many committed messages the source holds that are not applied yet. Labelled by the apply's name."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["ApplyMetrics"]


class ApplyMetrics:
    def __init__(self, name: str, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.registry = r
        labels = ("apply",)
        self.rows = Counter("binhub_kafka_apply_rows", "Row changes binhub apply handed to the MySQL sink.", labels,
                            registry=r).labels(name)
        self.transactions = Counter("binhub_kafka_apply_transactions", "Upstream transactions binhub apply handed "
                                    "to the MySQL sink.", labels, registry=r).labels(name)
        self.rows_per_second = Gauge("binhub_kafka_apply_rows_per_second", "Row changes per second over the "
                                     "last interval.", labels, registry=r).labels(name)
        self.lag = Gauge("binhub_kafka_apply_lag_messages", "Committed messages in the source partitions not "
                         "applied yet.", labels, registry=r).labels(name)
        self._at = time.monotonic()
        self._rows = 0

    def tick(self, rows: int, lag: int) -> None:
        """Once a second or so: the rate since the last tick, and the lag."""
        now = time.monotonic()
        if now > self._at:
            self.rows_per_second.set((rows - self._rows) / (now - self._at))
        self._at, self._rows = now, rows
        self.lag.set(lag)
