"""The HTTP admin API: ``/metrics`` for Prometheus (every metric the services registered on the
daemon's registry), ``/status`` for ``binhub status``, ``/healthz``.

An aiohttp ``AppRunner`` + ``TCPSite`` owned by one :class:`AdminServer` object (no module state),
so tests can start several on port 0. It listens on loopback by default because it has no
authentication; exposing it is an explicit ``[http] listen`` choice.

``/healthz`` is a liveness check: it answers 200 while the event loop runs. It does not turn 503
when the upstream is down, because an orchestrator restarting binhub would not bring the upstream
back; ``/status`` (and the ``binhub_relay_connected`` metric) say whether the relay is connected.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from binhub.ops.logging import HTTP

__all__ = ["AdminServer", "StatusProvider"]

StatusProvider = Callable[[], dict[str, Any]]

log = logging.getLogger(HTTP)

# Requests are tiny and local; a stuck scraper must not hold the daemon's shutdown for long.
SHUTDOWN_TIMEOUT = 2.0


class AdminServer:
    """``await start(host, port)`` … ``await stop()``; ``port`` is the bound port (useful with 0)."""

    def __init__(self, registry: CollectorRegistry, status_provider: StatusProvider) -> None:
        self._registry = registry
        self._status_provider = status_provider
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.host = ""
        self.port = 0

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._handle_metrics)
        app.router.add_get("/status", self._handle_status)
        app.router.add_get("/healthz", self._handle_healthz)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 9307) -> None:
        """Bind and start serving. Raises ``OSError`` if the address is taken."""
        if self._runner is not None:
            raise RuntimeError("AdminServer already started")
        # No per-request access log: a Prometheus scrape every few seconds would drown the log.
        runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner, self._site = runner, site
        addresses = runner.addresses  # getsockname() of each bound socket: resolves port 0
        self.host = host
        self.port = int(addresses[0][1]) if addresses else port
        log.info("admin API listening on http://%s:%d", _url_host(host), self.port,
                 extra={"listen": f"{host}:{self.port}"})

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (briefly), release the socket. Idempotent."""
        runner, self._runner, self._site = self._runner, None, None
        if runner is not None:
            await runner.cleanup()
            log.debug("admin API stopped")

    async def _handle_metrics(self, request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(self._registry))
        # Set the header directly: web.Response(content_type=...) refuses the "; charset" parameter.
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def _handle_status(self, request: web.Request) -> web.Response:
        try:
            status = self._status_provider()
        except Exception as exc:
            log.exception("status provider failed")
            return _json({"error": f"status unavailable: {exc}"}, status=500)
        return _json(status)

    async def _handle_healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")


def _json(obj: Any, *, status: int = 200) -> web.Response:
    # default=str: statuses hold Paths, datetimes and GTID objects; the API shows their text form.
    body = json.dumps(obj, default=str, indent=2, sort_keys=False) + "\n"
    return web.Response(text=body, status=status, content_type="application/json")


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
