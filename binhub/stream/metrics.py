"""The stream's Prometheus metrics, registered on the registry the daemon passes in.

Several streams may run in one daemon: every metric carries the stream's name as the label
``stream``, bound once, so the hot path does no label lookup. Without an admin API nothing exports
them: :meth:`StreamMetrics.off` takes the updates and keeps nothing, and prometheus-client (a
tenth of ``binhub stream``'s start-up) is then never imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from binhub.metric_families import Discard, PerRegistry

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["StreamMetrics"]


class _Families:
    """The labelled metrics of every stream, registered once per registry."""

    def __init__(self, r: CollectorRegistry) -> None:
        from prometheus_client import Counter, Gauge

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
    """One stream's metrics. Without a registry, a private one is made (a stream run by a test);
    streams sharing a registry (one daemon) share the metric families."""

    registry: CollectorRegistry | None
    lines: Counter
    transactions: Counter
    commits: Counter
    lag: Gauge

    def __init__(self, name: str, registry: CollectorRegistry | None = None) -> None:
        if registry is None:
            from prometheus_client import CollectorRegistry

            registry = CollectorRegistry()
        self.registry = registry
        families = _FAMILIES(registry)
        self.lines = families.lines.labels(name)
        self.transactions = families.transactions.labels(name)
        self.commits = families.commits.labels(name)
        self.lag = families.lag.labels(name)

    @classmethod
    def off(cls) -> StreamMetrics:
        """Metrics nobody exports (``binhub stream``, no admin API): every update discarded."""
        metrics = cls.__new__(cls)
        metrics.registry = None
        metrics.lines = metrics.transactions = metrics.commits = metrics.lag = cast(Any, Discard())
        return metrics
