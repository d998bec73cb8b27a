"""The stream's Prometheus metrics, registered on the registry the daemon passes in.

Several streams may run in one daemon: every metric carries the stream's name as the label
``stream``, bound once, so the hot path does no label lookup.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["StreamMetrics"]


class StreamMetrics:
    """Without a registry, a private one is made (a stream run by ``binhub stream`` or a test)."""

    def __init__(self, name: str, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.registry = r
        labels = ("stream",)
        self.lines = Counter("binhub_stream_lines", "Lines (row changes and DDL) the stream delivered.", labels,
                             registry=r).labels(name)
        self.transactions = Counter("binhub_stream_transactions", "Store transactions the stream read through.",
                                    labels, registry=r).labels(name)
        self.commits = Counter("binhub_stream_commits", "Checkpoints committed with their lines.", labels,
                               registry=r).labels(name)
        self.lag = Gauge("binhub_stream_lag_seconds",
                         "Seconds between the last delivered transaction's commit and now.", labels,
                         registry=r).labels(name)
