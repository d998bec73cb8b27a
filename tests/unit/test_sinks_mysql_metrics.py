"""The MySQL sink's metrics when several sinks share one registry (several ``[[stream]]`` to MySQL
in one daemon): each counts under its own name; none refuses to register."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from binhub.sinks.mysql.metrics import SinkMetrics


def test_two_sinks_on_one_registry_count_apart() -> None:
    registry = CollectorRegistry()
    first, second = SinkMetrics("a", registry), SinkMetrics("b", registry)
    first.rows.inc(3)
    second.rows.inc(5)
    first.conflict("duplicate")
    second.conflict("missing")
    second.conflict("missing")
    value = registry.get_sample_value
    assert value("binhub_apply_rows_total", {"stream": "a"}) == 3
    assert value("binhub_apply_rows_total", {"stream": "b"}) == 5
    assert value("binhub_apply_conflicts_total", {"stream": "a", "kind": "duplicate"}) == 1
    assert value("binhub_apply_conflicts_total", {"stream": "b", "kind": "missing"}) == 2
