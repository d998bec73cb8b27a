"""The binlog server's Prometheus metrics, registered on the registry the daemon passes in.

Typed attributes, no lookup by name: a metric the code counts must exist, and mypy says so.
The session, the server and the dump update them directly (no labels on hot paths).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["ServeMetrics"]


class ServeMetrics:
    """Counter names get ``_total`` appended by prometheus-client. Without a registry, a private one
    is made (a server built outside the daemon, in tests and tools)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.registry = r
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
        # For the dump (binhub.serve.dump and its selector): what it sends, and the semi-sync exchange.
        self.dump_bytes = Counter("binhub_serve_dump_bytes", "Binlog bytes sent to replicas.", registry=r)
        self.dump_events = Counter("binhub_serve_dump_events", "Binlog events sent to replicas.", registry=r)
        self.dump_errors = Counter("binhub_serve_dump_errors",
                                   "Dumps refused or ended with an error packet (error 1236 and the like).",
                                   registry=r)
        self.heartbeats = Counter("binhub_serve_heartbeats", "Heartbeat events sent to replicas.", registry=r)
        self.semisync_requests = Counter("binhub_serve_semisync_requests",
                                         "Semi-sync ack requests sent to replicas (one per batch that ends a "
                                         "transaction).", registry=r)
        self.semisync_acks = Counter("binhub_serve_semisync_acks", "Semi-sync acks received from replicas.",
                                     registry=r)
