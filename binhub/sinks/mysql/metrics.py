"""The MySQL sink's Prometheus metrics: conflicts by kind and rows committed downstream, labelled
``stream`` by name. Sinks sharing a registry (several ``[[stream]]`` to MySQL in one daemon) share
the metric families."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from binhub.metric_families import PerRegistry

__all__ = ["SinkMetrics"]


class _Families:
    def __init__(self, r: CollectorRegistry) -> None:
        self.conflicts = Counter("binhub_apply_conflicts", "Conflicts the MySQL sink met (duplicate key, "
                                 "missing row), by kind.", ("stream", "kind"), registry=r)
        # rate() of it is the sink's rows/s: what the downstream committed, not what was read.
        self.rows = Counter("binhub_apply_rows", "Row changes the MySQL sink committed downstream.", ("stream",),
                            registry=r)


_FAMILIES = PerRegistry(_Families)


class SinkMetrics:
    """One sink's metrics. Without a registry, a private one is made (``binhub stream`` or a test)."""

    def __init__(self, name: str, registry: CollectorRegistry | None = None) -> None:
        families = _FAMILIES(registry if registry is not None else CollectorRegistry())
        self.name = name
        self._conflicts = families.conflicts
        self.rows = families.rows.labels(name)

    def conflict(self, kind: str) -> None:
        self._conflicts.labels(self.name, kind).inc()
