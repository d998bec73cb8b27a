"""The daemon's lifecycle (``binhub run``), in the order DESIGN.md gives:

    load config → logging → metrics registry → open the store (recovers a torn tail) → start the services
    named in the config → start the HTTP admin API → install SIGTERM/SIGINT handlers → run

It runs until a signal arrives or a service fails on its own, then shuts down in stages, in the
reverse order of startup (aiohttp's ``CleanupContext`` pattern): stop the HTTP API accepting, stop
the services (the relay stops reading, flushes, fsyncs and writes its state), close the store.
Each stage has a time limit; a second signal cuts the current stage short instead of killing the
process outright, so the store is still closed.

Exit codes of :func:`run_from_config`: 0 after a signal (or when every service finished by
itself), 1 when a service failed or a shutdown stage did not complete, 2 for invalid config.

``binhub run``, ``binhub relay`` and ``binhub serve`` all run this one lifecycle (the latter two
with a config that names only their service), so SIGTERM means the same graceful stop for each.

The store and the services are reached through the two small protocols below, and created by
factories the caller may replace: the unit tests drive the whole lifecycle with fakes. Each
factory registers its service's metrics on the daemon's one ``CollectorRegistry``; without the
admin API there is none (``None``): nothing would export them, and the relay then runs without
prometheus-client (a tenth of its start-up).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, cast

import binhub
from binhub.errors import BinhubError, ConfigError
from binhub.ops.config import Config, ServiceName, load_config
from binhub.ops.logging import ROOT, setup_logging
from binhub.relay.config import RelayConfig
from binhub.serve.config import ServeConfig
from binhub.store.config import StoreConfig

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    # Imported when used: aiohttp (the admin API) and the stream package (with the schema parser)
    # cost ~0.35 s of imports, a fifth of a short relay run, and most runs need neither.
    from binhub.apply.config import KafkaApplyConfig
    from binhub.ops.http import AdminServer
    from binhub.stream.config import StreamConfig

__all__ = [
    "DEFAULT_STOP_TIMEOUT",
    "Daemon",
    "RelayFactory",
    "ServerFactory",
    "Service",
    "Store",
    "StoreOpener",
    "make_relay",
    "make_server",
    "open_store",
    "open_store_reader",
    "run_daemon",
    "run_from_config",
]

log = logging.getLogger(ROOT)

# Long enough for the relay to finish the transaction in flight, fsync and write state.json even
# on a slow disk; short enough that a stuck stop does not outlast systemd's own TimeoutStopSec (90s).
DEFAULT_STOP_TIMEOUT = 30.0


class Store(Protocol):
    """What the daemon needs of ``binhub.store.BinlogStore``."""

    def close(self) -> None: ...

    def status(self) -> dict[str, Any]: ...


class Service(Protocol):
    """A long-running service (``Relay``, ``BinlogServer``; streams later).

    ``stop()`` must be safe to call after a failed ``start()`` and after the service ended by itself;
    ``wait()`` returns when the service ends by itself and raises its fatal error.
    """

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def wait(self) -> None: ...

    def status(self) -> dict[str, Any]: ...


StoreOpener: TypeAlias = Callable[[StoreConfig, "CollectorRegistry | None"], Store]
RelayFactory: TypeAlias = Callable[[RelayConfig, Store, "CollectorRegistry | None"], Service]
ServerFactory: TypeAlias = Callable[[ServeConfig, Store, "CollectorRegistry | None"], Service]
StreamFactory: TypeAlias = Callable[["StreamConfig", Store, "CollectorRegistry | None"], Service]
ApplyFactory: TypeAlias = Callable[["KafkaApplyConfig", "CollectorRegistry | None"], Service]

# The factories import their service when called, not at module load: ``binhub status`` and
# ``--help`` should not pay for the storage stack, and the unit tests replace them with fakes.


def open_store(config: StoreConfig, registry: CollectorRegistry | None) -> Store:
    """Open (and recover) the store named in the config, for writing."""
    from binhub.store import BinlogStore

    metrics = None
    if registry is not None:  # prometheus-client only where the admin API exports it
        from binhub.store.metrics import StoreMetrics

        metrics = StoreMetrics(registry)
    return BinlogStore.open(config.data_dir, durability=config.durability, metrics=metrics,
                            retention=config.retention.rules(), archive_dir=config.archive_dir)


def open_store_reader(config: StoreConfig, registry: CollectorRegistry | None) -> Store:
    """A store another process writes (a daemon that only serves): no lock, no recovery.

    The store need not exist yet: the relay may start after this daemon.
    """
    from binhub.store import StoreReader

    return StoreReader.open(config.data_dir, must_exist=False)


def make_relay(config: RelayConfig, store: Store, registry: CollectorRegistry | None) -> Service:
    """Create (not start) the relay. ``store`` is the one :func:`open_store` returned."""
    from binhub.relay import Relay
    from binhub.relay.metrics import RelayMetrics
    from binhub.store import BinlogStore

    return Relay(config, cast(BinlogStore, store), metrics=RelayMetrics(registry) if registry is not None else RelayMetrics.off())


def make_server(config: ServeConfig, store: Store, registry: CollectorRegistry | None) -> Service:
    """Create (not start) the binlog server over ``store``.

    With a relay in the same daemon, ``store`` is the relay's writer store: the server reads its
    reader view, whose dumps are woken in-process by the writer's publishes, and may purge.
    """
    from binhub.serve.metrics import ServeMetrics
    from binhub.serve.server import BinlogServer
    from binhub.serve.users import UserDirectory
    from binhub.store import BinlogStore, StoreReader

    writer = store if isinstance(store, BinlogStore) else None
    reader = writer.reader if writer is not None else cast(StoreReader, store)
    return BinlogServer(reader, writer=writer, users=UserDirectory(config.users_file, list(config.users)),
                        server_id=config.server_id, host=config.host, port=config.port, tls=config.tls,
                        tls_cert=config.tls_cert, tls_key=config.tls_key, metrics=ServeMetrics(registry),
                        default_auth=config.default_auth, replica_ahead_wait=config.replica_ahead_wait)


def make_stream(config: StreamConfig, store: Store, registry: CollectorRegistry | None) -> Service:
    """Create (not start) one ``[[stream]]``, reading ``store``'s reader view (woken in-process by the
    relay's publishes when the daemon also relays)."""
    from binhub.ops.schema_seed import stream_seeder
    from binhub.ops.schema_sync import current_history
    from binhub.sinks import open_sink
    from binhub.store import BinlogStore, StoreReader
    from binhub.stream import Stream, StreamMetrics

    reader = store.reader if isinstance(store, BinlogStore) else cast(StoreReader, store)
    seed = stream_seeder(reader, config.seed_from, key=f"stream {config.name}: seed_from") \
        if config.seed_from else None
    sink = open_sink(config.to, config.name, rotate_bytes=config.rotate_bytes, kafka=config.kafka, apply=config.sink_apply,
                     registry=registry)
    return Stream(config, reader, sink,
                  lambda: current_history(reader), metrics=StreamMetrics(config.name, registry), seed_schema=seed)


def make_apply(config: KafkaApplyConfig, registry: CollectorRegistry | None) -> Service:
    """Create (not start) one ``[[apply]]``: Kafka topics applied to MySQL (no store involved)."""
    from binhub.apply import ApplyMetrics, KafkaApply
    from binhub.sinks.mysql.dsn import parse_mysql_target
    from binhub.sinks.mysql.sink import MysqlSink

    # The sink's conflict counter stays its own: it has no apply label to tell several sinks apart.
    sink = MysqlSink(parse_mysql_target(config.to), config.name, config.apply)
    try:
        return KafkaApply(config, sink, metrics=ApplyMetrics(config.name, registry))
    except BaseException:
        sink.close()
        raise


_Cleanup = tuple[str, Callable[[], Awaitable[None]]]


class Daemon:
    """One run of the daemon. ``await run()`` returns after a signal and raises a service's fatal
    error (after shutting down) when one fails."""

    def __init__(
        self,
        config: Config,
        *,
        registry: CollectorRegistry | None = None,
        open_store: StoreOpener = open_store,
        make_relay: RelayFactory = make_relay,
        make_server: ServerFactory = make_server,
        make_stream: StreamFactory = make_stream,
        make_apply: ApplyFactory = make_apply,
        stop_timeout: float = DEFAULT_STOP_TIMEOUT,
        on_running: Callable[[Daemon], None] | None = None,
    ) -> None:
        self.config = config
        # The daemon's own registry, not prometheus-client's global one: tests (and several daemons
        # in one process) never see "Duplicated timeseries", and /metrics shows exactly what ran.
        # None when no admin API would export it (see the module's docstring).
        if registry is None and config.http.enabled:
            from prometheus_client import CollectorRegistry

            registry = CollectorRegistry()
        self.registry = registry
        self._on_running = on_running
        self._open_store = open_store
        self._make_relay = make_relay
        self._make_server = make_server
        self._make_stream = make_stream
        self._make_apply = make_apply
        self._stop_timeout = stop_timeout
        self.store: Store | None = None
        self.services: dict[str, Service] = {}
        self.http: AdminServer | None = None
        self.state = "new"  # new → starting → running → stopping → stopped
        self._started_at = time.monotonic()
        self._stop_requested = asyncio.Event()
        self._force = asyncio.Event()
        self._wait_tasks: dict[asyncio.Task[Any], str] = {}
        self._signals: list[signal.Signals] = []

    # -- lifecycle ------------------------------------------------------------------------------

    async def run(self) -> None:
        if self.config.relay is None and self.config.serve is None and not self.config.streams \
                and not self.config.applies:
            raise ConfigError("", "the config has nothing to run: it has none of the sections that start a "
                                  "service ([relay], [serve], [[stream]], [[apply]])",
                              hint="add a [relay] section with a source, a [serve] section, a [[stream]] or an "
                                   "[[apply]]")
        cleanups: list[_Cleanup] = []
        fatal: BaseException | None = None
        try:
            await self._start(cleanups)
            fatal = await self._wait_until_done()
        finally:
            shutdown_error = await self._shutdown(cleanups)
        if fatal is not None:
            raise fatal
        if shutdown_error is not None:
            raise shutdown_error

    async def _start(self, cleanups: list[_Cleanup]) -> None:
        self.state = "starting"
        config = self.config
        log.info("binhub %s starting", binhub.__version__, extra={"pid": os.getpid(), "data_dir": str(config.store.data_dir)})

        # Serving alone, the daemon only reads: a relay in another process keeps the writer's lock.
        opener = self._open_store
        if config.relay is None and opener is open_store:
            opener = open_store_reader
        store = opener(config.store, self.registry)
        self.store = store
        cleanups.append(("store", _as_async(lambda: _close_store(store))))

        if config.relay is not None:
            relay = self._make_relay(config.relay, store, self.registry)
            self.services["relay"] = relay
            # Registered before start(): a start that fails halfway still gets its stop().
            cleanups.append(("relay", relay.stop))
            await relay.start()
        if config.serve is not None:
            # Started after the relay and, cleanups running in reverse, stopped before it: replicas
            # are let go first, then the relay flushes the store they were reading.
            server = self._make_server(config.serve, store, self.registry)
            self.services["serve"] = server
            cleanups.append(("serve", server.stop))
            await server.start()
        for stream_config in config.streams:
            # Stopped first (cleanups run in reverse): each commits its last batch while the store is open.
            name = f"stream:{stream_config.name}"
            stream = self._make_stream(stream_config, store, self.registry)
            self.services[name] = stream
            cleanups.append((name, stream.stop))
            await stream.start()
        for apply_config in config.applies:
            name = f"apply:{apply_config.name}"
            applier = self._make_apply(apply_config, self.registry)
            self.services[name] = applier
            cleanups.append((name, applier.stop))
            await applier.start()

        if config.http.enabled:
            from binhub.ops.http import AdminServer

            assert self.registry is not None  # made in __init__ for an enabled [http]
            http = AdminServer(self.registry, self.status)
            try:
                await http.start(config.http.host, config.http.port)
            except OSError as exc:
                raise ConfigError("http.listen", f"cannot listen on {config.http.host}:{config.http.port}: "
                                  f"{exc.strerror or exc}", hint="pick a free port or set [http] enabled = false") from exc
            self.http = http
            cleanups.append(("http", http.stop))

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
            self._signals.append(sig)

        for name, service in self.services.items():
            self._wait_tasks[asyncio.create_task(service.wait(), name=f"binhub-{name}-wait")] = name
        self.state = "running"
        log.info("binhub running", extra={"services": ",".join(self.services)})
        if self._on_running is not None:
            self._on_running(self)

    async def _wait_until_done(self) -> BaseException | None:
        """Block until a stop is requested, a service fails (returned), or every service finished."""
        stop = asyncio.create_task(self._stop_requested.wait())
        pending: set[asyncio.Task[Any]] = set(self._wait_tasks)
        try:
            while pending:
                done, _ = await asyncio.wait(pending | {stop}, return_when=asyncio.FIRST_COMPLETED)
                if stop in done:
                    return None
                for task in done:
                    pending.discard(task)
                    name = self._wait_tasks[task]
                    exc = None if task.cancelled() else task.exception()
                    if exc is not None:
                        # Not logged with its message here: run() raises it after the shutdown and
                        # the caller reports it once, as the process's last word.
                        log.warning("%s failed; shutting down", name)
                        return exc
                    log.info("%s finished", name)
            log.info("every service finished; stopping")
            return None
        finally:
            stop.cancel()

    def _on_signal(self, sig: signal.Signals) -> None:
        if not self._stop_requested.is_set():
            log.info("received %s; shutting down", sig.name)
            self._stop_requested.set()
        else:
            log.warning("received %s again; cutting the current shutdown stage short", sig.name)
            self._force.set()

    def request_stop(self) -> None:
        """Ask the daemon to shut down, as SIGTERM does (for tests and embedding)."""
        self._stop_requested.set()

    async def _shutdown(self, cleanups: list[_Cleanup]) -> BaseException | None:
        """Run the cleanups in reverse order; each gets the stop timeout. Returns the first failure."""
        self.state = "stopping"
        first_error: BaseException | None = None
        for name, cleanup in reversed(cleanups):
            try:
                await self._stage(name, cleanup)
            except Exception as exc:
                log.error("stopping %s failed: %s", name, exc, exc_info=None if isinstance(exc, BinhubError) else exc)
                first_error = first_error or exc
            if name != "store":
                await self._reap_waits(name)
        # Removed last: until the store is closed, a second signal must force a stage, not kill us.
        self._remove_signal_handlers()
        self.state = "stopped"
        log.info("binhub stopped", extra={"uptime_s": round(time.monotonic() - self._started_at, 3)})
        return first_error

    async def _stage(self, name: str, cleanup: Callable[[], Awaitable[None]]) -> None:
        log.debug("stopping %s", name)
        task = asyncio.ensure_future(cleanup())
        force = asyncio.create_task(self._force.wait())
        try:
            done, _ = await asyncio.wait({task, force}, timeout=self._stop_timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            force.cancel()
        if task in done:
            task.result()
            return
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
        why = "a second signal arrived" if self._force.is_set() else f"it took longer than {self._stop_timeout:g}s"
        raise BinhubError(f"stopping {name} was cut short because {why}",
                          hint="the store recovers a torn tail on the next start")

    async def _reap_waits(self, name: str) -> None:
        """Collect the wait() task of a stopped service, so its result is never left unretrieved."""
        for task, task_name in list(self._wait_tasks.items()):
            if task_name != name:
                continue
            del self._wait_tasks[task]
            done, _ = await asyncio.wait({task}, timeout=1.0)
            if not done:
                task.cancel()
                await asyncio.wait({task}, timeout=1.0)
            elif not task.cancelled() and task.exception() is not None:
                # Ending with an error while being stopped is expected of some services: debug only.
                log.debug("%s ended with %r while stopping", name, task.exception())

    def _remove_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._signals:
            loop.remove_signal_handler(sig)
        self._signals.clear()

    # -- status ---------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The ``GET /status`` document. A failing part reports its error instead of hiding the rest."""
        out: dict[str, Any] = {
            "binhub": {
                "version": binhub.__version__,
                "pid": os.getpid(),
                "state": self.state,
                "uptime_seconds": round(time.monotonic() - self._started_at, 3),
                "data_dir": str(self.config.store.data_dir),
            },
        }
        if self.config.relay is not None:
            out["binhub"]["source"] = str(self.config.relay.source)  # password redacted by SourceDSN
        parts: dict[str, Callable[[], dict[str, Any]]] = {name: svc.status for name, svc in self.services.items()}
        if self.store is not None:
            parts["store"] = self.store.status
        for name, provider in parts.items():
            try:
                out[name] = provider()
            except Exception as exc:
                log.debug("status of %s failed", name, exc_info=True)
                out[name] = {"error": str(exc)}
        return out


def _close_store(store: Store) -> None:
    """Close the store and say where it ends (what ``binhub relay --until-caught-up`` leaves behind)."""
    try:
        summary = store.status()
    except Exception:  # the summary is a courtesy: it must never keep the store open
        log.debug("store status failed before closing", exc_info=True)
        summary = {}
    store.close()
    durable = summary.get("durable") or {}
    log.info("store closed: %s file(s), durable up to %s:%s", summary.get("files", "?"),
             durable.get("file", "-"), durable.get("position", 0), extra={"data_dir": summary.get("data_dir")})


def _as_async(fn: Callable[[], None]) -> Callable[[], Awaitable[None]]:
    async def call() -> None:
        fn()

    return call


def run_from_config(
    config_path: Path | None,
    overrides: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    service: ServiceName | None = None,
    open_store: StoreOpener = open_store,
    make_relay: RelayFactory = make_relay,
    make_server: ServerFactory = make_server,
    echo_error: Callable[[str], None] | None = None,
    on_running: Callable[[Daemon], None] | None = None,
) -> int:
    """The whole of ``binhub run`` (and of ``binhub relay``/``binhub serve``, with ``service``): load
    the config, set up logging, run the daemon; returns the exit code.

    Config errors are reported through ``echo_error`` (stderr by default), because logging is not
    set up yet; later errors go through the configured log format, so ``--log-format json`` keeps
    stderr machine-readable.
    """
    try:
        config = load_config(config_path, env=env, overrides=overrides, service=service)
    except ConfigError as exc:
        (echo_error or _stderr)(f"binhub: {exc}")
        return 2
    setup_logging(config.log.level, config.log.format)
    return run_daemon(Daemon(config, open_store=open_store, make_relay=make_relay, make_server=make_server,
                             on_running=on_running))


def run_daemon(daemon: Daemon) -> int:
    """Run ``daemon`` in a fresh event loop until it stops; returns the exit code (see the module)."""
    try:
        asyncio.run(daemon.run())
    except ConfigError as exc:  # found at startup, e.g. the HTTP port is taken
        log.error("binhub cannot start: %s", exc)
        return 2
    except BinhubError as exc:
        log.error("binhub stopped with an error: %s", exc)
        return 1
    except KeyboardInterrupt:
        # SIGINT before the handlers were installed (during store recovery or a service's start).
        log.info("interrupted during startup")
        return 130
    except Exception as exc:
        log.error("binhub stopped with an unexpected error: %s", exc, exc_info=exc)
        return 1
    return 0


def _stderr(text: str) -> None:
    print(text, file=sys.stderr)
