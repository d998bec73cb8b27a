"""The MySQL sink's Prometheus metrics: conflicts by kind and rows committed downstream, labelled
``stream`` by name. Sinks sharing a registry (several ``[[stream]]`` to MySQL in one daemon) share
the metric families. Without a registry (no admin API exports them) the updates are discarded and
prometheus-client is not imported."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from binhub.metric_families import Discard, PerRegistry

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter

__all__ = ["SinkMetrics"]


class _Families:
    def __init__(self, r: CollectorRegistry) -> None:
        from prometheus_client import Counter

        self.conflicts = Counter("binhub_apply_conflicts", "Conflicts the MySQL sink met (duplicate key, "
                                 "missing row), by kind.", ("stream", "kind"), registry=r)
        # rate() of it is the sink's rows/s: what the downstream committed, not what was read.
        self.rows = Counter("binhub_apply_rows", "Row changes the MySQL sink committed downstream.", ("stream",),
                            registry=r)


_FAMILIES = PerRegistry(_Families)


class SinkMetrics:
    """One sink's metrics; without a registry every update is discarded (``binhub stream``,
    ``binhub replay``, a daemon without the admin API)."""

    rows: Counter

    def __init__(self, name: str, registry: CollectorRegistry | None = None) -> None:
        self.name = name
        self._families = _FAMILIES(registry) if registry is not None else None
        self.rows = self._families.rows.labels(name) if self._families is not None else cast(Any, Discard())

    def conflict(self, kind: str) -> None:
        if self._families is not None:
            self._families.conflicts.labels(self.name, kind).inc()
