"""Click callbacks for the sizes and durations operators write on the command line
(``callback=SIZE``, ``callback=DURATION``).

A bad value is a usage error naming the flag (exit 2), as for every other flag, instead of a
``ValueError`` traceback from the parser deep inside the command.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

from binhub.ops.parsers import parse_duration, parse_size, parse_table_pattern

__all__ = ["DURATION", "SIZE", "TABLE_PATTERNS"]

T = TypeVar("T")


def _parsed(parse: Callable[[str], T]) -> Callable[[click.Context, click.Parameter, str | None], T | None]:
    def convert(ctx: click.Context, param: click.Parameter, value: str | None) -> T | None:
        if value is None:
            return None
        try:
            return parse(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), ctx, param) from None
    return convert


SIZE = _parsed(parse_size)  # bytes: "50GiB", "500MiB", "10GB", a bare number of bytes
DURATION = _parsed(parse_duration)  # seconds: "7d", "12h", "1h30m", "250ms"


def _table_patterns(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    try:
        return tuple(parse_table_pattern(value) for value in values)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


TABLE_PATTERNS = _table_patterns  # a repeatable --include/--exclude: DB.TABLE globs, each with its dot
