"""``binhub apply``'s Prometheus metrics: rows and transactions applied, rows per second, and how
many committed messages the source holds that are not applied yet. Labelled ``apply`` by name;
applies sharing a registry (one daemon) share the metric families."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge

from binhub.metric_families import PerRegistry

__all__ = ["ApplyMetrics"]


class _Families:
    def __init__(self, r: CollectorRegistry) -> None:
        labels = ("apply",)
        self.rows = Counter("binhub_kafka_apply_rows", "Row changes binhub apply handed to the MySQL sink.", labels,
                            registry=r)
        self.transactions = Counter("binhub_kafka_apply_transactions", "Upstream transactions binhub apply handed "
                                    "to the MySQL sink.", labels, registry=r)
        self.rows_per_second = Gauge("binhub_kafka_apply_rows_per_second", "Row changes per second over the "
                                     "last interval.", labels, registry=r)
        self.lag = Gauge("binhub_kafka_apply_lag_messages", "Committed messages in the source partitions not "
                         "applied yet.", labels, registry=r)


_FAMILIES = PerRegistry(_Families)


class ApplyMetrics:
    def __init__(self, name: str, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.registry = r
        families = _FAMILIES(r)
        self.rows = families.rows.labels(name)
        self.transactions = families.transactions.labels(name)
        self.rows_per_second = families.rows_per_second.labels(name)
        self.lag = families.lag.labels(name)
        self._at = time.monotonic()
        self._rows = 0

    def tick(self, rows: int, lag: int) -> None:
        """Once a second or so: the rate since the last tick, and the lag."""
        now = time.monotonic()
        if now > self._at:
            self.rows_per_second.set((rows - self._rows) / (now - self._at))
        self._at, self._rows = now, rows
        self.lag.set(lag)
