"""``binhub run --config binhub.toml``: the daemon, with every service its config enables.

The flags override single config keys, on top of the file and the ``BINHUB_<SECTION>_<KEY>``
environment variables; everything else is in the file (see ``examples/binhub.toml``). The
lifecycle itself lives in :mod:`binhub.ops.daemon`, so this module only maps flags to keys.
"""

from __future__ import annotations

from pathlib import Path

import click

from binhub.cli.daemon_options import common_options, echo_error, flag_overrides
from binhub.ops.daemon import run_from_config

FLAG_KEYS = {"source": "relay.source", "server_id": "relay.server_id", "durability": "store.durability"}


@click.command("run")
@common_options(config_required=True)
@click.option("--source", default=None, metavar="DSN",
              help="Override [relay] source, e.g. mysql://repl:pw@db1:3306.")
@click.option("--server-id", type=click.IntRange(1, 2**32 - 1), default=None,
              help="Override [relay] server_id (binhub's own id towards the upstream).")
@click.option("--durability", default=None, metavar="txn|interval:MS|rotate",
              help="Override [store] durability.")
@click.pass_context
def run(ctx: click.Context, /, config_path: Path, **flags: object) -> None:
    """Run the binhub daemon until SIGTERM/SIGINT.

    Config precedence: the file, then BINHUB_<SECTION>_<KEY> environment variables (e.g.
    BINHUB_RELAY_PASSWORD), then these flags. Exit status: 0 after a signal, 1 when a service
    fails, 2 for invalid config.
    """
    ctx.exit(run_from_config(config_path, flag_overrides(flags, FLAG_KEYS), echo_error=echo_error))
