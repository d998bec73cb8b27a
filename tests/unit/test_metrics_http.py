"""Metrics, logging formats, the HTTP admin API (on port 0) and `binhub status` against it."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry, generate_latest

from binhub.cli.status import DEFAULT_API, status
from binhub.ops.config import DEFAULT_HTTP_LISTEN
from binhub.ops.http import AdminServer
from binhub.ops.logging import LOGGER_NAMES, RELAY, setup_logging
from binhub.relay.metrics import RelayMetrics
from binhub.serve.metrics import ServeMetrics
from binhub.store.metrics import StoreMetrics


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    binhub_level = logging.getLogger("binhub").level
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)
    logging.getLogger("binhub").setLevel(binhub_level)


# -- metrics -----------------------------------------------------------------------------------


def test_metrics_names_and_render() -> None:
    registry = CollectorRegistry()
    relay, store = RelayMetrics(registry), StoreMetrics(registry)
    relay.bytes.inc(100)
    relay.events.inc(3)
    relay.transactions.inc()
    relay.lag.set(1.5)
    relay.set_last_gtid("0-1-42")
    relay.reconnects.inc()
    relay.connected.set(1)
    store.fsync_seconds.observe(0.002)
    store.bytes.set(4096)
    store.files.set(2)
    text = generate_latest(registry).decode()
    for line in (
        "binhub_relay_bytes_total 100.0",
        "binhub_relay_events_total 3.0",
        "binhub_relay_transactions_total 1.0",
        "binhub_relay_lag_seconds 1.5",
        'binhub_relay_last_gtid_info{gtid="0-1-42"} 1.0',
        "binhub_relay_reconnects_total 1.0",
        "binhub_relay_connected 1.0",
        'binhub_store_fsync_seconds_bucket{le="0.0001"} 0.0',
        'binhub_store_fsync_seconds_bucket{le="1.0"} 1.0',
        "binhub_store_bytes 4096.0",
        "binhub_store_files 2.0",
    ):
        assert line in text, line


def test_serve_metrics_are_all_registered() -> None:
    """Every counter the server, its sessions and its dumps update is a registered metric."""
    registry = CollectorRegistry()
    serve = ServeMetrics(registry)
    for counter in (serve.dump_errors, serve.heartbeats, serve.semisync_requests, serve.semisync_acks):
        counter.inc()
    text = generate_latest(registry).decode()
    for name in ("dump_errors", "heartbeats", "semisync_requests", "semisync_acks"):
        assert f"binhub_serve_{name}_total 1.0" in text, name


def test_metrics_registries_are_independent() -> None:
    a, b = CollectorRegistry(), CollectorRegistry()
    relay_a, _ = RelayMetrics(a), RelayMetrics(b)  # one registry would refuse the second set
    relay_a.events.inc(5)
    assert "binhub_relay_events_total 5.0" in generate_latest(a).decode()
    assert "binhub_relay_events_total 0.0" in generate_latest(b).decode()
    assert "binhub_relay_events_total 0.0" in generate_latest(RelayMetrics().registry).decode()  # a private one


# -- logging -----------------------------------------------------------------------------------


def test_json_lines_parse_with_extra_fields() -> None:
    out = io.StringIO()
    setup_logging("info", "json", stream=out)
    log = logging.getLogger(RELAY)
    log.info("connected to %s", "db1", extra={"upstream": "db1:3306", "file": "mysql-bin.000042"})
    log.debug("not shown at info")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed", extra={"msg_id": 7})
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == 2
    first = lines[0]
    assert {"ts", "level", "logger", "msg"} <= first.keys()
    assert (first["level"], first["logger"], first["msg"]) == ("info", "binhub.relay", "connected to db1")
    assert (first["upstream"], first["file"]) == ("db1:3306", "mysql-bin.000042")
    assert first["ts"].endswith("Z")
    assert lines[1]["msg_id"] == 7 and "ValueError: boom" in lines[1]["exc"]


def test_text_format_shows_extra_fields() -> None:
    out = io.StringIO()
    setup_logging("debug", "text", stream=out)
    logging.getLogger("binhub.store").debug("fsync", extra={"file": "b.000001", "note": "two words"})
    line = out.getvalue().strip()
    assert "DEBUG binhub.store: fsync" in line
    assert 'file=b.000001 note="two words"' in line


def test_setup_logging_replaces_its_handler_and_quiets_others() -> None:
    out1, out2 = io.StringIO(), io.StringIO()
    setup_logging("debug", "text", stream=out1)
    setup_logging("debug", "json", stream=out2)
    logging.getLogger("binhub.http").info("once")
    logging.getLogger("aiohttp.server").info("library chatter stays at warning")
    assert out1.getvalue() == ""
    assert [json.loads(line)["msg"] for line in out2.getvalue().splitlines()] == ["once"]
    assert set(LOGGER_NAMES) >= {"binhub.relay", "binhub.store", "binhub.serve", "binhub.http", "binhub.access"}


def test_setup_logging_refuses_bad_values() -> None:
    with pytest.raises(ValueError):
        setup_logging("loud", "text")
    with pytest.raises(ValueError):
        setup_logging("info", "xml")


# -- HTTP admin API ---------------------------------------------------------------------------


async def _get(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, response.headers.get("Content-Type", ""), await response.text()


async def test_http_serves_metrics_status_healthz() -> None:
    registry = CollectorRegistry()
    RelayMetrics(registry).events.inc(9)
    server = AdminServer(registry, lambda: {"relay": {"connected": True, "file": "b.000001"}})
    await server.start("127.0.0.1", 0)
    try:
        assert server.port != 0
        base = f"http://127.0.0.1:{server.port}"
        code, ctype, body = await _get(base + "/metrics")
        assert code == 200 and ctype.startswith("text/plain") and "binhub_relay_events_total 9.0" in body
        code, ctype, body = await _get(base + "/status")
        assert code == 200 and ctype.startswith("application/json")
        assert json.loads(body) == {"relay": {"connected": True, "file": "b.000001"}}
        assert (await _get(base + "/healthz"))[0] == 200
        assert (await _get(base + "/nothing"))[0] == 404
    finally:
        await server.stop()
    await server.stop()  # idempotent
    with pytest.raises(aiohttp.ClientConnectionError):
        await _get(base + "/healthz")


async def test_http_status_provider_failure_is_a_500() -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("store is closed")

    server = AdminServer(CollectorRegistry(), broken)
    await server.start("127.0.0.1", 0)
    try:
        code, _, body = await _get(f"http://127.0.0.1:{server.port}/status")
    finally:
        await server.stop()
    assert code == 500 and "store is closed" in json.loads(body)["error"]


async def test_http_port_taken_raises_oserror() -> None:
    first = AdminServer(CollectorRegistry(), dict)
    await first.start("127.0.0.1", 0)
    try:
        second = AdminServer(CollectorRegistry(), dict)
        with pytest.raises(OSError):
            await second.start("127.0.0.1", first.port)
    finally:
        await first.stop()


# -- binhub status -------------------------------------------------------------------------------


def test_status_default_api_matches_config_default() -> None:
    assert f"http://{DEFAULT_HTTP_LISTEN}" == DEFAULT_API


async def test_status_command_prints_the_document() -> None:
    doc = {"binhub": {"state": "running", "pid": 1}, "relay": {"connected": True, "upstream": {"host": "db1"}}}
    server = AdminServer(CollectorRegistry(), lambda: doc)
    await server.start("127.0.0.1", 0)
    runner = CliRunner()
    try:
        api = f"http://127.0.0.1:{server.port}"
        # The command is synchronous (urllib): run it off the loop that serves the request.
        result = await asyncio.to_thread(runner.invoke, status, ["--api", api])
        raw = await asyncio.to_thread(runner.invoke, status, ["--api", api, "--json"])
    finally:
        await server.stop()
    assert result.exit_code == 0, result.output
    assert "running" in result.output and "upstream.host" in result.output and "db1" in result.output
    assert json.loads(raw.output) == doc


async def test_status_command_unreachable() -> None:
    server = AdminServer(CollectorRegistry(), dict)
    await server.start("127.0.0.1", 0)
    port = server.port
    await server.stop()  # a port that was just free: nothing listens there now
    result = await asyncio.to_thread(CliRunner().invoke, status, ["--api", f"http://127.0.0.1:{port}"])
    assert result.exit_code == 1
    assert "cannot reach the binhub admin API" in result.output


def test_relay_metrics_off_take_every_update_the_relay_makes() -> None:
    metrics = RelayMetrics.off()
    assert metrics.registry is None
    for counter in (metrics.bytes, metrics.events, metrics.transactions, metrics.reconnects):
        counter.inc()
        counter.inc(7)
    metrics.lag.set(1.5)
    metrics.connected.set(1)
    metrics.set_last_gtid("0-1-2")
