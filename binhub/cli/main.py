"""The ``binhub`` command: dispatch only. One module per subcommand."""

from __future__ import annotations

import gc
import sys
from typing import Any

import click

from binhub import __version__
from binhub.errors import BinhubError

# name -> "module:attribute"; imported on use so `binhub --help` stays fast.
COMMANDS = {
    "demo": "binhub.cli.demo:demo",
    "sandbox": "binhub.cli.sandbox:sandbox",
    "relay": "binhub.cli.relay:relay",
    "run": "binhub.cli.run:run",
    "status": "binhub.cli.status:status",
    "binlog": "binhub.cli.binlog:binlog",
    "serve": "binhub.cli.serve:serve",
    "user": "binhub.cli.user:user",
    "backup": "binhub.cli.backup_catalog:backup",
    "restore": "binhub.cli.restore:restore",
    "schema": "binhub.cli.schema:schema",
    "stream": "binhub.cli.stream:stream",
    "history": "binhub.cli.history:history",
    "flashback": "binhub.cli.flashback:flashback",
    "replay": "binhub.cli.replay:replay",
    "apply": "binhub.cli.apply:apply",
}


class LazyGroup(click.Group):
    """Loads subcommands on demand and turns binhub errors into one clear line on stderr."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        module = __import__(module_name, fromlist=[attr])
        command: click.Command = getattr(module, attr)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BinhubError as exc:
            # click adds "Error: "; some messages quote the server's own text, which starts with it
            raise click.ClickException(str(exc).removeprefix("Error: ")) from exc
        except KeyboardInterrupt:
            # click would print "Aborted!" and exit 1; Ctrl-C's conventional status is 128 + SIGINT.
            click.echo("binhub: interrupted", err=True)
            raise click.exceptions.Exit(130) from None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="binhub")
def cli() -> None:
    """binhub: a binlog hub for MySQL and MariaDB.

    Relay a primary's binlog into a durable store of real binlog files, inspect and verify it,
    and run it all as a daemon.
    """


def main() -> None:
    # The relay and the dump allocate many short-lived tracked objects (memoryviews, batch lists):
    # the default gen-0 threshold of 700 runs a collection every few hundred events.
    gc.set_threshold(100_000, 50, 100)
    try:
        cli.main(prog_name="binhub")
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
