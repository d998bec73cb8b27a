"""Prometheus metrics of the binlog server, registered in the daemon's own registry.

They live here rather than in :mod:`binhub.ops.metrics` because only the server updates them;
``ServeMetrics(metrics)`` adds them to an existing :class:`~binhub.ops.metrics.Metrics` registry
(once per registry: the server creates one and the dump reads it as ``server.metrics``).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge

from binhub.ops.metrics import Metrics

__all__ = ["ServeMetrics", "inc_if_registered"]


def inc_if_registered(metrics: Any, name: str, amount: float = 1) -> None:
    """Add ``amount`` to the counter ``name`` of ``metrics``; one that is absent (or no metrics) is skipped."""
    counter = getattr(metrics, name, None) if metrics is not None else None
    if counter is not None:
        counter.inc(amount)


class ServeMetrics:
    """Counters the session, the server and the dump update directly (no labels on hot paths)."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self.base = metrics if metrics is not None else Metrics()
        r = self.base.registry
        self.connections = Counter("binhub_serve_connections", "Client connections accepted by the binlog server.",
                                   registry=r)
        self.connections_active = Gauge("binhub_serve_connections_active", "Open client connections.", registry=r)
        self.connections_refused = Counter("binhub_serve_connections_refused",
                                           "Connections refused because max_connections was reached.", registry=r)
        self.logins = Counter("binhub_serve_logins", "Successful logins.", registry=r)
        self.login_failures = Counter("binhub_serve_login_failures",
                                      "Failed logins (unknown user or wrong password): error 1045.", registry=r)
        self.commands = Counter("binhub_serve_commands", "Commands received after login.", registry=r)
        self.dumps = Counter("binhub_serve_dumps", "COM_BINLOG_DUMP / COM_BINLOG_DUMP_GTID requests.", registry=r)
        self.replicas = Gauge("binhub_serve_replicas", "Replicas registered (COM_REGISTER_SLAVE or a dump).",
                              registry=r)
        self.zombies_killed = Counter("binhub_serve_zombie_dumps_killed",
                                      "Older dumps ended by a new registration with the same server_id or UUID.",
                                      registry=r)
        # For the dump (binhub.serve.dump): what it sends and the semi-sync acks it reads.
        self.dump_bytes = Counter("binhub_serve_dump_bytes", "Binlog bytes sent to replicas.", registry=r)
        self.dump_events = Counter("binhub_serve_dump_events", "Binlog events sent to replicas.", registry=r)
        self.semisync_acks = Counter("binhub_serve_semisync_acks", "Semi-sync acks received from replicas.",
                                     registry=r)
