"""``binhub serve``: serve a store to replicas (and to other binhubs) until stopped.

The daemon of ``binhub run`` with only the server: the same config loader (flags over
``BINHUB_*`` environment variables over an optional ``--config`` file) and the same lifecycle.
The store is read through a reader view, so a relay may keep writing it from another process;
readers follow it. The store need not exist yet: started before its relay, the server listens,
answers as a server with no binlog yet, and replicas wait (``--replica-ahead-wait``) for the
relay's first durable file. For a relay and a server in one process, use ``binhub run`` with a
``[serve]`` section.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from binhub.cli.daemon_options import common_options, echo_error, flag_overrides
from binhub.ops.daemon import Daemon, run_from_config

FLAG_KEYS = {
    "listen": "serve.listen",
    "user_name": "serve.user",
    "password": "serve.password",
    "users_file": "serve.users_file",
    "server_id": "serve.server_id",
    "tls_cert": "serve.tls_cert",
    "tls_key": "serve.tls_key",
    "default_auth": "serve.default_auth",
    "replica_ahead_wait": "serve.replica_ahead_wait",
    "tls": "serve.tls",
}


@click.command("serve")
@common_options(config_required=False)
@click.option("--listen", default=None, metavar="HOST:PORT",
              help="Address to listen on (default 127.0.0.1:3307; port 0 picks a free one, printed at start).")
@click.option("--user", "user_name", default=None, help="A single user, kept in memory only (with --password).")
@click.option("--password", default=None,
              help="Password of --user (or BINHUB_SERVE_PASSWORD; prompted for when absent).")
@click.option("--users", "users_file", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Users file written by `binhub user add`.")
@click.option("--server-id", type=click.IntRange(1, 2**32 - 1), default=None,
              help="binhub's server_id towards its replicas (must differ from theirs; default: [relay] "
              "server_id, else 1001).")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--default-auth", type=click.Choice(["auto", "mysql_native_password", "caching_sha2_password"]),
              default=None, help="Auth plugin the greeting names (default auto: native for MariaDB stores, "
              "caching_sha2 for MySQL 8+).")
@click.option("--replica-ahead-wait", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help="A replica asking for a GTID or position the store has not reached yet waits this long "
              "for the relay before it gets error 1236 (default 30; 0: at once, as a primary does).")
@click.option("--tls/--no-tls", default=None,
              help="Offer TLS to replicas (default: yes, with --tls-cert/--tls-key or a generated self-signed pair).")
@click.pass_context
def serve(ctx: click.Context, /, config_path: Path | None, **flags: object) -> None:
    """Serve the store in DATA_DIR to MySQL/MariaDB replicas until SIGINT/SIGTERM.

    Settings come from the flags, then BINHUB_SERVE_* / BINHUB_STORE_* environment variables,
    then --config; a [relay] section there is ignored. The admin API runs only when asked for
    (--http-listen or an [http] section). Exit status: 0 after a signal, 1 when the server fails,
    2 for invalid settings.
    """
    users_file = flags["users_file"]
    if isinstance(users_file, Path) and not users_file.exists():
        raise click.UsageError(f"{users_file} does not exist; create it with `binhub user add --users {users_file} NAME`")
    if flags["user_name"] is not None and flags["password"] is None and "BINHUB_SERVE_PASSWORD" not in os.environ:
        flags["password"] = click.prompt(f"password for {flags['user_name']}", hide_input=True)
    ctx.exit(run_from_config(config_path, flag_overrides(flags, FLAG_KEYS), service="serve", echo_error=echo_error,
                             on_running=_announce))


def _announce(daemon: Daemon) -> None:
    # With --listen HOST:0 this is how scripts learn the port.
    click.echo(f"binhub serving on {daemon.services['serve'].status()['listen']}", err=True)
