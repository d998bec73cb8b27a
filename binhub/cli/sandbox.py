"""``binhub sandbox start|stop|status``: a throwaway local MariaDB for demos and tests.

``start`` prints two lines on stdout, the replication DSN then the root DSN, so a script can do
``DSN=$(binhub sandbox start | head -n1)``; everything meant for people goes to stderr.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from binhub.errors import SandboxError
from binhub.sandbox import Sandbox, SandboxSpec, default_base_dir

# `status` exit code for "exists but not running", as LSB init scripts and systemctl use it.
EXIT_NOT_RUNNING = 3

_name_option = click.option("--name", default="default", show_default=True, help="Sandbox name.")
_base_dir_option = click.option(
    "--base-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Where sandboxes live [default: $BINHUB_SANDBOX_DIR or ~/.local/share/binhub/sandboxes].",
)


def _fail(exc: SandboxError) -> click.ClickException:
    # BinhubError.__str__ already reads "message (hint)": one sentence saying what to do.
    return click.ClickException(str(exc))


def _open(name: str, base_dir: Path | None) -> Sandbox:
    try:
        return Sandbox.open(name, base_dir)
    except SandboxError as exc:
        raise _fail(exc) from exc


@click.group("sandbox")
def sandbox() -> None:
    """Throwaway local MariaDB servers (mariadbd --no-defaults on 127.0.0.1) for demos and tests."""


@sandbox.command("start")
@_name_option
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="TCP port [default: the previous one, else a free one].")
@click.option("--server-id", type=click.IntRange(1, 2**32 - 1), default=1, show_default=True)
@click.option("--gtid-domain-id", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True)
@click.option("--timeout", type=click.FloatRange(min=1), default=30.0, show_default=True,
              help="Seconds to wait for the server to accept connections.")
@_base_dir_option
def start(name: str, port: int | None, server_id: int, gtid_domain_id: int, timeout: float,
          base_dir: Path | None) -> None:
    """Create (first time) and start a sandbox; print its replication DSN and root DSN."""
    try:
        spec = SandboxSpec(name=name, port=port, server_id=server_id, gtid_domain_id=gtid_domain_id,
                           base_dir=base_dir if base_dir is not None else default_base_dir())
        sb = Sandbox.create(spec)
        if sb.is_running() and port is not None and port != sb.port:
            raise SandboxError(f"sandbox {name!r} already runs on port {sb.port}, not {port}",
                               hint=f"stop it first: binhub sandbox stop --name {name}")
        was_running = sb.is_running()
        sb.start(timeout=timeout)
    except SandboxError as exc:
        raise _fail(exc) from exc
    verb = "already running" if was_running else "started"
    click.echo(f"sandbox {name!r} {verb} on 127.0.0.1:{sb.port} (pid {sb.pid}, datadir {sb.datadir})",
               err=True)
    click.echo(sb.dsn)
    click.echo(sb.root_dsn)


@sandbox.command("stop")
@_name_option
@click.option("--destroy", is_flag=True, help="Also remove the sandbox's datadir and state.")
@click.option("--timeout", type=click.FloatRange(min=1), default=30.0, show_default=True,
              help="Seconds to wait for a clean shutdown before killing the server.")
@_base_dir_option
def stop(name: str, destroy: bool, timeout: float, base_dir: Path | None) -> None:
    """Shut a sandbox down cleanly (SIGTERM); --destroy also deletes its data."""
    sb = _open(name, base_dir)
    try:
        was_running = sb.is_running()
        if destroy:
            sb.stop(timeout=timeout)
            sb.destroy()
        else:
            sb.stop(timeout=timeout)
    except SandboxError as exc:
        raise _fail(exc) from exc
    if destroy:
        click.echo(f"sandbox {name!r} destroyed", err=True)
    else:
        click.echo(f"sandbox {name!r} {'stopped' if was_running else 'was not running'}", err=True)


@sandbox.command("status")
@_name_option
@_base_dir_option
def status(name: str, base_dir: Path | None) -> None:
    """Print a sandbox's details as JSON; exit 3 when it exists but is not running."""
    sb = _open(name, base_dir)
    try:
        info = sb.status()
    except SandboxError as exc:
        raise _fail(exc) from exc
    click.echo(json.dumps(info, indent=2))
    if not info["running"]:
        raise click.exceptions.Exit(EXIT_NOT_RUNNING)
