"""The range options ``binhub flashback`` and ``binhub replay`` share, and what both build from them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from binhub.cli.params import TABLE_PATTERNS
from binhub.flashback import ChangeDecoder, RangeBounds
from binhub.schema import SchemaHistory
from binhub.sinks.mysql.connection import Downstream
from binhub.sinks.mysql.dsn import parse_mysql_target
from binhub.stream import ChangeReader, TableFilter

__all__ = ["bounds_of", "change_decoders", "connect_downstream", "range_options"]

F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS = [
    click.option("--start-gtid", metavar="GTID", help="Begin with this transaction (domain-server-seq or uuid:N)."),
    click.option("--start-datetime", metavar="TIME",
                 help="Begin with the first transaction committed at or after TIME ('YYYY-MM-DD HH:MM:SS', in --tz)."),
    click.option("--start-file", metavar="FILE", help="Begin with the first transaction at or after FILE[:--start-pos]."),
    click.option("--start-pos", type=click.IntRange(min=4), metavar="N", help="With --start-file (default 4)."),
    click.option("--stop-gtid", metavar="GTID", help="End with this transaction (inclusive)."),
    click.option("--stop-datetime", metavar="TIME",
                 help="End before the first transaction committed at or after TIME (in --tz)."),
    click.option("--stop-file", metavar="FILE", help="End before the first transaction at or after FILE[:--stop-pos]."),
    click.option("--stop-pos", type=click.IntRange(min=4), metavar="N", help="With --stop-file (default 4)."),
    click.option("--tz", default="UTC", show_default=True, metavar="ZONE",
                 help="Time zone of --start-datetime/--stop-datetime (an IANA name)."),
    click.option("--include", multiple=True, metavar="DB.TABLE", callback=TABLE_PATTERNS,
                 help="Only tables matching this glob (repeatable; e.g. shop.* or *.orders)."),
    click.option("--exclude", multiple=True, metavar="DB.TABLE", callback=TABLE_PATTERNS, help="Leave out tables matching this glob (repeatable)."),
]


def range_options(command: F) -> F:
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def bounds_of(options: dict[str, Any]) -> RangeBounds:
    return RangeBounds.from_options(
        start_gtid=options["start_gtid"], start_datetime=options["start_datetime"],
        start_file=options["start_file"], start_pos=options["start_pos"], stop_gtid=options["stop_gtid"],
        stop_datetime=options["stop_datetime"], stop_file=options["stop_file"], stop_pos=options["stop_pos"],
        tz=options["tz"])


def change_decoders(refresh_schema: Callable[[], SchemaHistory]) -> Callable[[Sequence[str], Sequence[str]], ChangeDecoder]:
    """The stream's decoder (row changes with the schema they were written under), filtered."""
    def make(include: Sequence[str], exclude: Sequence[str]) -> ChangeDecoder:
        return ChangeReader(refresh_schema=refresh_schema, table_filter=TableFilter(include, exclude), executed=None)
    return make


def connect_downstream(url: str, option: str) -> Downstream:
    """A connection to ``mysql://USER:PW@HOST:PORT`` in the MySQL sink's session."""
    downstream = Downstream(parse_mysql_target(url, key=option), label=option)
    downstream.connect()
    return downstream
