"""``binhub serve``: serve a store to replicas (and to other binhubs) until stopped.

The store is read through a reader view, so a relay may keep writing it from another process;
readers follow it. The store need not exist yet: started before its relay, the server listens,
answers as a server with no binlog yet, and replicas wait (``--replica-ahead-wait``) for the
relay's first durable file. For a relay and a server in one process, use ``binhub run`` with a
``[serve]`` section.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import click

from binhub.ops.config import DEFAULT_SERVE_LISTEN, DEFAULT_SERVER_ID
from binhub.ops.logging import setup_logging
from binhub.ops.parsers import parse_listen
from binhub.serve.dump import REPLICA_AHEAD_WAIT
from binhub.serve.server import BinlogServer
from binhub.serve.users import UserDirectory, make_user
from binhub.store import StoreReader


@click.command("serve")
@click.option("--data-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The store to serve (it need not exist yet).")
@click.option("--listen", default=DEFAULT_SERVE_LISTEN, show_default=True, metavar="HOST:PORT",
              help="Address to listen on (port 0 picks a free one, printed at start).")
@click.option("--user", "user_name", default=None, help="A single user, kept in memory only (with --password).")
@click.option("--password", default=None, envvar="BINHUB_SERVE_PASSWORD",
              help="Password of --user (or BINHUB_SERVE_PASSWORD; prompted for when absent).")
@click.option("--users", "users_file", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Users file written by `binhub user add`.")
@click.option("--server-id", type=click.IntRange(1, 2**32 - 1), default=DEFAULT_SERVER_ID, show_default=True,
              help="binhub's server_id towards its replicas (must differ from theirs).")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--default-auth", type=click.Choice(["auto", "mysql_native_password", "caching_sha2_password"]),
              default="auto", show_default=True,
              help="Auth plugin the greeting names (auto: native for MariaDB stores, caching_sha2 for MySQL 8+).")
@click.option("--replica-ahead-wait", type=click.FloatRange(min=0), default=REPLICA_AHEAD_WAIT, show_default=True,
              metavar="SECONDS", help="A replica asking for a GTID or position the store has not reached yet "
              "waits this long for the relay before it gets error 1236 (0: at once, as a primary does).")
@click.option("--no-tls", is_flag=True, help="Do not offer TLS (by default a self-signed pair is generated).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text")
def serve(data_dir: Path, listen: str, user_name: str | None, password: str | None, users_file: Path | None,
          server_id: int, tls_cert: Path | None, tls_key: Path | None, default_auth: str, replica_ahead_wait: float,
          no_tls: bool, log_level: str, log_format: str) -> None:
    """Serve the store in DATA_DIR to MySQL/MariaDB replicas until SIGINT/SIGTERM.

    The relay (`binhub relay`) may run beside it, and may start later: on a missing or empty store
    the server listens, and replicas wait --replica-ahead-wait seconds for the relay's first file.
    """
    if (user_name is None) == (users_file is None):
        raise click.UsageError("give either --user (and --password) or --users FILE")
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    host, port = parse_listen(listen, key="--listen")
    if user_name is not None:
        if password is None:
            password = click.prompt(f"password for {user_name}", hide_input=True)
        users = UserDirectory(users=[make_user(user_name, password)])
    else:
        assert users_file is not None
        if not users_file.exists():
            raise click.UsageError(f"{users_file} does not exist; create it with `binhub user add --users {users_file} NAME`")
        users = UserDirectory(users_file)
    setup_logging(log_level, log_format)
    store = StoreReader.open(data_dir, must_exist=False)
    server = BinlogServer(store, users=users, server_id=server_id, host=host, port=port, tls=not no_tls,
                          default_auth=None if default_auth == "auto" else default_auth,
                          replica_ahead_wait=replica_ahead_wait,
                          tls_cert=tls_cert, tls_key=tls_key)
    asyncio.run(_run(server))


async def _run(server: BinlogServer) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    click.echo(f"binhub serving on {server.host}:{server.port}", err=True)
    try:
        await stop.wait()
    finally:
        await server.stop()
