"""``binhub run --config binhub.toml``: the daemon (relay now; serve and streams later).

The flags override single config keys, on top of the file and the ``BINHUB_<SECTION>_<KEY>``
environment variables; everything else is in the file (see ``examples/binhub.toml``). The
lifecycle itself lives in :mod:`binhub.ops.daemon`, so this module only maps flags to keys.
"""

from __future__ import annotations

from pathlib import Path

import click

from binhub.ops.daemon import run_from_config

# flag name → config key; click gives None for a flag that was not passed, which load_config skips.
FLAG_KEYS = {
    "data_dir": "store.data_dir",
    "durability": "store.durability",
    "source": "relay.source",
    "server_id": "relay.server_id",
    "log_level": "log.level",
    "log_format": "log.format",
    "http_listen": "http.listen",
}


@click.command("run")
@click.option("--config", "config_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TOML config file (see examples/binhub.toml).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Override [store] data_dir.")
@click.option("--source", default=None, metavar="DSN",
              help="Override [relay] source, e.g. mysql://repl:pw@db1:3306.")
@click.option("--server-id", type=click.IntRange(1, 2**32 - 1), default=None,
              help="Override [relay] server_id (binhub's own id towards the upstream).")
@click.option("--durability", default=None, metavar="txn|interval:MS|rotate",
              help="Override [store] durability.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default=None,
              help="Override [log] level.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default=None,
              help="Override [log] format; json writes one object per line to stderr.")
@click.option("--http-listen", default=None, metavar="HOST:PORT",
              help="Override [http] listen (the admin API: /metrics, /status, /healthz).")
@click.pass_context
def run(ctx: click.Context, /, config_path: Path, **flags: object) -> None:
    """Run the binhub daemon until SIGTERM/SIGINT.

    Config precedence: the file, then BINHUB_<SECTION>_<KEY> environment variables (e.g.
    BINHUB_RELAY_PASSWORD), then these flags. Exit status: 0 after a signal, 1 when a service
    fails, 2 for invalid config.
    """
    overrides = {FLAG_KEYS[name]: value for name, value in flags.items()}
    ctx.exit(run_from_config(config_path, overrides, echo_error=lambda text: click.echo(text, err=True)))
