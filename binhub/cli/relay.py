"""``binhub relay``: fill a store from an upstream primary (one-shot or until stopped)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Any

import click

from binhub.ops.config import load_config
from binhub.ops.logging import setup_logging
from binhub.ops.metrics import Metrics
from binhub.relay import Relay
from binhub.store import BinlogStore


@click.command("relay")
@click.option("--source", required=True, metavar="DSN", help="Upstream, e.g. mysql://repl:pw@127.0.0.1:3306")
@click.option("--data-dir", required=True, type=click.Path(path_type=Path), help="The store directory.")
@click.option("--server-id", type=int, help="binhub's server_id towards the upstream (unique among its replicas).")
@click.option("--start-gtid", metavar="SET", help="Start at this GTID set (MySQL) or GTID list (MariaDB).")
@click.option("--start-file", metavar="FILE", help="Start at this upstream binlog file.")
@click.option("--start-pos", type=int, metavar="N", help="With --start-file: the requested position in it.")
@click.option("--from-now", is_flag=True, help="Start at the upstream's current position.")
@click.option("--durability", metavar="txn|interval:MS|rotate", help="When events become durable (default txn).")
@click.option("--semi-sync", is_flag=True, help="Acknowledge transactions to a semi-sync primary once durable.")
@click.option("--compress", is_flag=True,
              help="Use the compressed protocol (zstd, else zlib) if the upstream offers it: for a WAN, not a LAN.")
@click.option("--until-caught-up", is_flag=True,
              help="Exit 0 once the store holds everything the upstream had when the relay started.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text")
def relay(source: str, data_dir: Path, server_id: int | None, start_gtid: str | None, start_file: str | None,
          start_pos: int | None, from_now: bool, durability: str | None, semi_sync: bool, compress: bool,
          until_caught_up: bool, log_level: str, log_format: str) -> None:
    """Relay an upstream primary's binlog into a store of real binlog files.

    With an empty store and no start option, the relay starts at the oldest file the upstream
    still has; with a store, where the store ends. It reconnects by itself until stopped
    (SIGINT/SIGTERM), unless --until-caught-up.
    """
    if sum(bool(x) for x in (start_gtid, start_file, from_now)) > 1:
        raise click.UsageError("use only one of --start-gtid, --start-file, --from-now")
    if start_pos is not None and not start_file:
        raise click.UsageError("--start-pos needs --start-file")
    overrides: dict[str, Any] = {"store.data_dir": str(data_dir), "relay.source": source,
                                 "log.level": log_level, "log.format": log_format}
    for key, value in (("relay.server_id", server_id), ("relay.start_gtid", start_gtid),
                       ("relay.start_file", start_file), ("relay.start_pos", start_pos),
                       ("store.durability", durability)):
        if value is not None:
            overrides[key] = value
    if from_now:
        overrides["relay.from_now"] = True
    if semi_sync:
        overrides["relay.semi_sync"] = True
    if compress:
        overrides["relay.compress"] = True
    config = load_config(None, overrides=overrides)
    setup_logging(config.log.level, config.log.format)
    assert config.relay is not None
    metrics = Metrics()
    store = BinlogStore.open(config.store.data_dir, durability=config.store.durability, metrics=metrics)
    try:
        asyncio.run(_run(Relay(config.relay, store, metrics=metrics, until_caught_up=until_caught_up)))
    finally:
        store.close()
    click.echo(f"stored {len(store.files)} file(s) in {data_dir}; durable up to "
               f"{store.durable_position.file if store.durable_position else '-'}:"
               f"{store.durable_position.position if store.durable_position else 0}", err=True)


async def _run(relay: Relay) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await relay.start()
    waiter = asyncio.create_task(relay.wait())
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if stopper in done:
        await relay.stop()
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter
    else:
        stopper.cancel()
        waiter.result()
