"""The flags ``binhub run``, ``binhub relay`` and ``binhub serve`` share, and how flags become config.

The three commands run the same daemon (:mod:`binhub.ops.daemon`) from the same config loader:
their flags are the top layer over ``BINHUB_<SECTION>_<KEY>`` environment variables and an
optional ``--config`` file. Each flag maps to one config key; a flag that was not passed is ``None``
and overrides nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click

__all__ = ["COMMON_KEYS", "common_options", "echo_error", "flag_overrides"]

F = TypeVar("F", bound=Callable[..., Any])

# flag (click's parameter name) → config key
COMMON_KEYS = {
    "data_dir": "store.data_dir",
    "log_level": "log.level",
    "log_format": "log.format",
    "http_listen": "http.listen",
}


def common_options(*, config_required: bool) -> Callable[[F], F]:
    """``--config``, ``--data-dir``, ``--http-listen``, ``--log-level``, ``--log-format``."""
    config_help = ("TOML config file (see examples/binhub.toml)." if config_required else
                   "Optional TOML config file (see examples/binhub.toml); the flags override it.")
    options = [
        click.option("--config", "config_path", required=config_required, default=None,
                     type=click.Path(exists=True, dir_okay=False, path_type=Path), help=config_help),
        click.option("--data-dir", type=click.Path(file_okay=False), default=None,
                     help="The store directory ([store] data_dir)."),
        click.option("--http-listen", default=None, metavar="HOST:PORT",
                     help="The admin API ([http] listen: /metrics, /status, /healthz)."),
        click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default=None,
                     help="[log] level (default info)."),
        click.option("--log-format", type=click.Choice(["text", "json"]), default=None,
                     help="[log] format (default text); json writes one object per line to stderr."),
    ]

    def decorate(command: F) -> F:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def flag_overrides(flags: Mapping[str, Any], keys: Mapping[str, str]) -> dict[str, Any]:
    """Config overrides from the flags that were given (on/off flags too default to ``None``, so
    the file and the environment decide whatever the command line leaves out)."""
    table = {**COMMON_KEYS, **keys}
    return {table[name]: value for name, value in flags.items() if value is not None}


def echo_error(text: str) -> None:
    click.echo(text, err=True)
