"""The daemon lifecycle with a fake store and relay: startup order, signals, staged shutdown, exits.

The real store and relay are exercised end to end against MariaDB by the integration tests; here
the fakes record what the daemon called, in which order.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry

from binhub.cli.run import run as run_command
from binhub.errors import BinhubError, ConfigError
from binhub.ops.config import Config, load_config
from binhub.ops.daemon import Daemon, Service, Store, run_from_config
from binhub.ops.http import AdminServer
from binhub.relay.config import RelayConfig
from binhub.store.config import StoreConfig

CONFIG = """
[store]
data_dir = "data"
durability = "interval:20"

[relay]
source = "mysql://repl:pw@127.0.0.1:1"

[http]
listen = "127.0.0.1:0"
"""


class FakeStore:
    def __init__(self, calls: list[str], config: StoreConfig, registry: CollectorRegistry) -> None:
        self.calls = calls
        self.config = config
        self.registry = registry
        calls.append("store.open")

    def close(self) -> None:
        self.calls.append("store.close")

    def status(self) -> dict[str, Any]:
        return {"data_dir": self.config.data_dir, "files": 1}


class FakeRelay:
    """``fail`` makes wait() raise it; ``stop_hangs`` makes stop() never return; ``finish`` ends it."""

    def __init__(self, calls: list[str], *, fail: BaseException | None = None, start_fails: bool = False,
                 stop_hangs: bool = False, on_wait: Any = None) -> None:
        self.calls = calls
        self.fail = fail
        self.start_fails = start_fails
        self.stop_hangs = stop_hangs
        self.on_wait = on_wait
        self.ended = asyncio.Event()
        self.store: Store | None = None

    async def start(self) -> None:
        self.calls.append("relay.start")
        if self.start_fails:
            raise BinhubError("cannot connect to the upstream")

    async def stop(self) -> None:
        self.calls.append("relay.stop")
        if self.stop_hangs:
            await asyncio.Event().wait()
        self.ended.set()

    async def wait(self) -> None:
        if self.on_wait is not None:
            self.on_wait()
        if self.fail is not None:
            await asyncio.sleep(0.01)
            raise self.fail
        await self.ended.wait()

    def status(self) -> dict[str, Any]:
        return {"connected": True}


class Harness:
    def __init__(self, tmp_path: Path, **relay_options: Any) -> None:
        (tmp_path / "binhub.toml").write_text(CONFIG)
        self.config_path = tmp_path / "binhub.toml"
        self.calls: list[str] = []
        self.relay_options = relay_options
        self.relay: FakeRelay | None = None
        self.store: FakeStore | None = None

    def config(self) -> Config:
        return load_config(self.config_path, env={})

    def open_store(self, config: StoreConfig, registry: CollectorRegistry) -> Store:
        self.store = FakeStore(self.calls, config, registry)
        return self.store

    def make_relay(self, config: RelayConfig, store: Store, registry: CollectorRegistry) -> Service:
        self.calls.append("relay.new")
        self.relay = FakeRelay(self.calls, **self.relay_options)
        self.relay.store = store
        return self.relay

    def daemon(self, **kwargs: Any) -> Daemon:
        return Daemon(self.config(), open_store=self.open_store, make_relay=self.make_relay, **kwargs)


@pytest.fixture(autouse=True)
def _record_http_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Record the admin API's stop into the fakes' call list (set by wait_running), to check the order."""
    real_stop = AdminServer.stop

    async def stop(self: AdminServer) -> None:
        calls = getattr(self, "_test_calls", None)
        if calls is not None and self._runner is not None:
            calls.append("http.stop")
        await real_stop(self)

    monkeypatch.setattr(AdminServer, "stop", stop)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)


async def wait_running(daemon: Daemon, task: asyncio.Task[None]) -> None:
    for _ in range(500):
        if daemon.state == "running" or task.done():
            break
        await asyncio.sleep(0.01)
    assert daemon.state == "running", f"daemon state {daemon.state}"
    assert daemon.http is not None
    daemon.http._test_calls = daemon.store.calls  # type: ignore[attr-defined,union-attr]


async def test_sigterm_stops_gracefully_in_order(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    daemon = h.daemon()
    task = asyncio.create_task(daemon.run())
    await wait_running(daemon, task)

    # While running: the admin API answers with the store's and relay's status.
    assert daemon.http is not None
    async with aiohttp.ClientSession() as session, session.get(
        f"http://127.0.0.1:{daemon.http.port}/status"
    ) as response:
        doc = json.loads(await response.text())
    assert doc["binhub"]["state"] == "running"
    assert doc["binhub"]["source"] == "mysql://repl:***@127.0.0.1:1"
    assert doc["relay"] == {"connected": True} and doc["store"]["files"] == 1
    assert h.store is not None and h.store.config.durability.interval_ms == 20
    assert h.relay is not None and h.relay.store is h.store

    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(task, 5)
    assert h.calls == ["store.open", "relay.new", "relay.start", "http.stop", "relay.stop", "store.close"]
    assert daemon.state == "stopped"
    # The handlers are gone: the loop no longer owns SIGTERM.
    assert not asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)


async def test_fatal_relay_error_is_raised_after_shutdown(tmp_path: Path) -> None:
    h = Harness(tmp_path, fail=BinhubError("the upstream purged the binlog we need"))
    with pytest.raises(BinhubError, match="purged"):
        await asyncio.wait_for(h.daemon().run(), 5)
    assert h.calls[-2:] == ["relay.stop", "store.close"]


async def test_relay_finishing_by_itself_ends_the_daemon(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    def finish() -> None:
        assert h.relay is not None
        h.relay.ended.set()

    h.relay_options["on_wait"] = finish
    await asyncio.wait_for(h.daemon().run(), 5)
    assert h.calls[-2:] == ["relay.stop", "store.close"]


async def test_failed_start_still_cleans_up(tmp_path: Path) -> None:
    h = Harness(tmp_path, start_fails=True)
    with pytest.raises(BinhubError, match="cannot connect"):
        await h.daemon().run()
    assert h.calls == ["store.open", "relay.new", "relay.start", "relay.stop", "store.close"]


async def test_http_port_taken_is_a_config_error(tmp_path: Path) -> None:
    blocker = AdminServer(CollectorRegistry(), dict)
    await blocker.start("127.0.0.1", 0)
    try:
        h = Harness(tmp_path)
        config = h.config()
        config = Config(config.store, config.relay, config.serve,
                        type(config.http)(True, "127.0.0.1", blocker.port), config.log)
        daemon = Daemon(config, open_store=h.open_store, make_relay=h.make_relay)
        with pytest.raises(ConfigError) as info:
            await daemon.run()
    finally:
        await blocker.stop()
    assert info.value.key == "http.listen"
    assert h.calls[-2:] == ["relay.stop", "store.close"]


async def test_stuck_stop_times_out_and_store_still_closes(tmp_path: Path) -> None:
    h = Harness(tmp_path, stop_hangs=True)
    daemon = h.daemon(stop_timeout=0.1)
    task = asyncio.create_task(daemon.run())
    await wait_running(daemon, task)
    daemon.request_stop()
    with pytest.raises(BinhubError, match="cut short because it took longer than 0.1s"):
        await asyncio.wait_for(task, 5)
    assert h.calls[-2:] == ["relay.stop", "store.close"]


async def test_second_signal_cuts_the_stage_short(tmp_path: Path) -> None:
    h = Harness(tmp_path, stop_hangs=True)
    daemon = h.daemon(stop_timeout=30)
    task = asyncio.create_task(daemon.run())
    await wait_running(daemon, task)
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(200):
        if "relay.stop" in h.calls:
            break
        await asyncio.sleep(0.01)
    os.kill(os.getpid(), signal.SIGINT)
    with pytest.raises(BinhubError, match="second signal"):
        await asyncio.wait_for(task, 5)
    assert h.calls[-1] == "store.close"


async def test_nothing_to_run(tmp_path: Path) -> None:
    config = load_config(None, env={}, overrides={"store.data_dir": str(tmp_path)})
    with pytest.raises(ConfigError) as info:
        await Daemon(config).run()
    message = str(info.value)
    assert message.startswith("the config has nothing to run"), message  # not "invalid config relay"
    assert all(section in message for section in ("[relay]", "[serve]", "[[stream]]", "[[apply]]"))


# -- run_from_config: the whole `binhub run` with its exit codes ---------------------------------


def test_run_from_config_sigterm_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    h = Harness(tmp_path, on_wait=lambda: asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(),
                                                                               signal.SIGTERM))
    code = run_from_config(h.config_path, {"log.format": "json"}, env={},
                           open_store=h.open_store, make_relay=h.make_relay)
    assert code == 0
    assert h.calls[-2:] == ["relay.stop", "store.close"]
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert any(line["msg"] == "binhub running" for line in lines)


def test_run_from_config_fatal_error_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    h = Harness(tmp_path, fail=BinhubError("binlog file purged upstream", hint="start from a backup"))
    code = run_from_config(h.config_path, {}, env={}, open_store=h.open_store, make_relay=h.make_relay)
    assert code == 1
    assert "binlog file purged upstream (start from a backup)" in capsys.readouterr().err
    assert h.calls[-1] == "store.close"


def test_run_from_config_bad_config_exits_2(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    messages: list[str] = []
    code = run_from_config(h.config_path, {"relay.server_id": 0}, env={}, echo_error=messages.append,
                           open_store=h.open_store, make_relay=h.make_relay)
    assert code == 2
    assert messages and "relay.server_id" in messages[0]
    assert h.calls == []  # nothing was opened


def test_cli_run_reports_config_errors(tmp_path: Path) -> None:
    (tmp_path / "binhub.toml").write_text(CONFIG + "\n[log]\nlevle = 'debug'\n")
    result = CliRunner().invoke(run_command, ["--config", str(tmp_path / "binhub.toml")])
    assert result.exit_code == 2
    assert "log.levle" in result.output and "did you mean level?" in result.output


def test_cli_run_flags_reach_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_run(path: Path, overrides: dict[str, Any], **_: Any) -> int:
        seen.update(overrides)
        return 0

    monkeypatch.setattr("binhub.cli.run.run_from_config", fake_run)
    (tmp_path / "binhub.toml").write_text(CONFIG)
    result = CliRunner().invoke(run_command, [
        "--config", str(tmp_path / "binhub.toml"), "--server-id", "99", "--durability", "rotate",
        "--log-format", "json", "--http-listen", "127.0.0.1:0",
    ])
    assert result.exit_code == 0, result.output
    assert seen["relay.server_id"] == 99 and seen["store.durability"] == "rotate"
    assert seen["log.format"] == "json" and "relay.source" not in seen  # a flag not given overrides nothing
    load_config(tmp_path / "binhub.toml", env={}, overrides=seen)  # every flag maps to a real key


def test_a_registry_only_where_the_admin_api_exports_it(tmp_path: Path) -> None:
    # Without [http] nothing reads the metrics: no registry, and the relay's metrics discard updates
    # (the relay then starts without importing prometheus-client, see test_imports.py).
    with_http = Harness(tmp_path).daemon()
    assert isinstance(with_http.registry, CollectorRegistry)
    (tmp_path / "binhub.toml").write_text(CONFIG.replace('listen = "127.0.0.1:0"', "enabled = false"))
    assert Daemon(load_config(tmp_path / "binhub.toml", env={})).registry is None
