"""The stream's Prometheus metrics, registered on the registry the daemon passes in.

Several streams may run in one daemon: every metric carries the stream's name as the label
``stream``, bound once, so the hot path does no label lookup.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from binhub.metric_families import PerRegistry

__all__ = ["StreamMetrics"]


class _Families:
    """The labelled metrics of every stream, registered once per registry."""

    def __init__(self, r: CollectorRegistry) -> None:
        labels = ("stream",)
        self.lines = Counter("binhub_stream_lines", "Lines (row changes and DDL) the stream delivered.", labels,
                             registry=r)
        self.transactions = Counter("binhub_stream_transactions", "Store transactions the stream read through.",
                                    labels, registry=r)
        self.commits = Counter("binhub_stream_commits", "Checkpoints committed with their lines.", labels,
                               registry=r)
        self.lag = Gauge("binhub_stream_lag_seconds", "Seconds between the last delivered transaction's commit "
                         "and now.", labels, registry=r)


_FAMILIES = PerRegistry(_Families)


class StreamMetrics:
    """One stream's metrics. Without a registry, a private one is made (a stream run by ``binhub
    stream`` or a test); streams sharing a registry (one daemon) share the metric families."""

    def __init__(self, name: str, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.registry = r
        families = _FAMILIES(r)
        self.lines = families.lines.labels(name)
        self.transactions = families.transactions.labels(name)
        self.commits = families.commits.labels(name)
        self.lag = families.lag.labels(name)
