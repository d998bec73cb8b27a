"""The MySQL sink's flags, shared by the commands that apply changes to a server (``binhub stream``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from binhub.errors import ConfigError
from binhub.sinks.mysql.options import ApplyOptions, OnConflict

__all__ = ["apply_config", "apply_options"]

F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS = (
    click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True,
                 help="mysql://: apply on N connections in parallel; transactions touching a common key "
                 "(primary or unique) stay in upstream order, others may commit out of it (see --ordered). "
                 "The default of 1 commits in upstream order; 4 were not consistently faster (docs/apply.md)."),
    click.option("--ordered", is_flag=True, help="mysql://: with --workers, commit in exactly the upstream's order."),
    click.option("--on-conflict", type=click.Choice([c.value for c in OnConflict]), default="stop",
                 show_default=True, help="mysql://: a duplicate key or a missing row downstream: stop naming the "
                 "row, table and GTID; overwrite with the upstream's row; or skip the change."),
    click.option("--safe-mode", is_flag=True, help="mysql://: INSERT as REPLACE and UPDATE as DELETE + REPLACE, "
                 "for a target that already holds some of the rows."),
    click.option("--rename", multiple=True, metavar="DB.T=DB2.T2|DB=DB2",
                 help="mysql://: apply a table's (or a database's) changes to another one (repeatable)."),
    click.option("--skip-gtid", "skip_gtids", multiple=True, metavar="GTID",
                 help="mysql://: never apply this transaction (e.g. a DDL the downstream refuses; repeatable)."),
)


def apply_options(f: F) -> F:
    for option in reversed(_OPTIONS):
        f = option(f)
    return f


def apply_config(*, workers: int, ordered: bool, on_conflict: str, safe_mode: bool, rename: tuple[str, ...],
                 skip_gtids: tuple[str, ...], include: tuple[str, ...] = (),
                 exclude: tuple[str, ...] = ()) -> ApplyOptions:
    try:
        return ApplyOptions(workers=workers, ordered=ordered, on_conflict=OnConflict(on_conflict),
                            safe_mode=safe_mode, rename=rename, skip_gtids=skip_gtids, include=include,
                            exclude=exclude)
    except ConfigError as exc:
        raise click.UsageError(exc.message) from None
