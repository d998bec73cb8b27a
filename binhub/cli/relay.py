"""``binhub relay``: fill a store from an upstream primary (one-shot or until stopped).

The daemon of ``binhub run`` with only the relay: the same config loader (flags over
``BINHUB_*`` environment variables over an optional ``--config`` file) and the same lifecycle.
"""

from __future__ import annotations

from pathlib import Path

import click

from binhub.cli.daemon_options import common_options, echo_error, flag_overrides
from binhub.ops.daemon import run_from_config

FLAG_KEYS = {
    "source": "relay.source",
    "server_id": "relay.server_id",
    "start_gtid": "relay.start_gtid",
    "start_file": "relay.start_file",
    "start_pos": "relay.start_pos",
    "from_now": "relay.from_now",
    "durability": "store.durability",
    "semi_sync": "relay.semi_sync",
    "compress": "relay.compress",
    "until_caught_up": "relay.until_caught_up",
}


@click.command("relay")
@click.option("--source", metavar="DSN",
              help="Upstream, e.g. mysql://repl:pw@127.0.0.1:3306 ([relay] source; required somewhere).")
@common_options(config_required=False)
@click.option("--server-id", type=click.IntRange(1, 2**32 - 1),
              help="binhub's server_id towards the upstream (unique among its replicas).")
@click.option("--start-gtid", metavar="SET", help="Start at this GTID set (MySQL) or GTID list (MariaDB).")
@click.option("--start-file", metavar="FILE", help="Start at this upstream binlog file.")
@click.option("--start-pos", type=int, metavar="N", help="With --start-file: the requested position in it.")
@click.option("--from-now", is_flag=True, default=None, help="Start at the upstream's current position.")
@click.option("--durability", metavar="txn|interval:MS|rotate", help="When events become durable (default txn).")
@click.option("--semi-sync", is_flag=True, default=None, help="Acknowledge transactions to a semi-sync primary once durable.")
@click.option("--compress", is_flag=True, default=None,
              help="Use the compressed protocol (zstd, else zlib) if the upstream offers it: for a WAN, not a LAN.")
@click.option("--until-caught-up", is_flag=True, default=None,
              help="Exit 0 once the store holds everything the upstream had when the relay started.")
@click.pass_context
def relay(ctx: click.Context, /, config_path: Path | None, **flags: object) -> None:
    """Relay an upstream primary's binlog into a store of real binlog files.

    With an empty store and no start option, the relay starts at the oldest file the upstream
    still has; with a store, where the store ends. It reconnects by itself until stopped
    (SIGINT/SIGTERM: it finishes the transaction in hand, fsyncs and exits 0), unless
    --until-caught-up. Settings come from the flags, then BINHUB_RELAY_* / BINHUB_STORE_*
    environment variables (e.g. BINHUB_RELAY_PASSWORD), then --config; a [serve] section there is
    ignored. The admin API runs only when asked for (--http-listen or an [http] section).
    Exit status: 0 when stopped or caught up, 1 when the relay fails, 2 for invalid settings.
    """
    if sum(bool(flags[name]) for name in ("start_gtid", "start_file", "from_now")) > 1:
        raise click.UsageError("use only one of --start-gtid, --start-file, --from-now")
    if flags["start_pos"] is not None and not flags["start_file"]:
        raise click.UsageError("--start-pos needs --start-file")
    ctx.exit(run_from_config(config_path, flag_overrides(flags, FLAG_KEYS), service="relay", echo_error=echo_error))
