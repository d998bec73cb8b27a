"""How the MySQL sink applies: workers, conflicts, safe mode, renames, transactions to skip."""

from __future__ import annotations

import enum
import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from binhub.errors import ConfigError

__all__ = ["ApplyOptions", "OnConflict", "Renames", "table_passes"]


def table_passes(include: Sequence[str], exclude: Sequence[str], db: str, table: str) -> bool:
    """``--include``/``--exclude`` globs on ``db.table``: a table passes when it matches an include
    (every table, with none given) and no exclude."""
    name = f"{db}.{table}"
    return (not include or any(fnmatch.fnmatchcase(name, p) for p in include)) \
        and not any(fnmatch.fnmatchcase(name, p) for p in exclude)


class OnConflict(enum.Enum):
    STOP = "stop"  # name the row, the table and the GTID, and stop (the default)
    OVERWRITE = "overwrite"  # make the downstream row what the upstream says
    SKIP = "skip"  # leave the downstream row as it is


class Renames:
    """``db.t=db2.t2`` (one table) and ``db=db2`` (a whole database); a table rule wins."""

    def __init__(self, rules: Iterable[str] = ()) -> None:
        self.rules = tuple(rules)
        self.tables: dict[tuple[str, str], tuple[str, str]] = {}
        self.databases: dict[str, str] = {}
        for rule in self.rules:
            source, sep, target = rule.partition("=")
            if not sep or not source or not target or source.count(".") != target.count(".") \
                    or source.count(".") > 1:
                raise ConfigError("--rename", f"{rule!r}: use DB.TABLE=DB2.TABLE2 or DB=DB2")
            if "." in source:
                (db, _, table), (db2, _, table2) = source.partition("."), target.partition(".")
                self.tables[(db, table)] = (db2, table2)
            else:
                self.databases[source] = target

    def __call__(self, db: str, table: str) -> tuple[str, str]:
        found = self.tables.get((db, table))
        if found is not None:
            return found
        return self.databases.get(db, db), table

    def database(self, db: str) -> str:
        return self.databases.get(db, db)

    def __bool__(self) -> bool:
        return bool(self.rules)


@dataclass(frozen=True, slots=True)
class ApplyOptions:
    workers: int = 1
    ordered: bool = False  # commit in the upstream's order even with several workers
    on_conflict: OnConflict = OnConflict.STOP
    safe_mode: bool = False  # INSERT -> REPLACE, UPDATE -> DELETE + REPLACE: for a target that holds some rows
    rename: tuple[str, ...] = ()
    skip_gtids: tuple[str, ...] = ()  # transactions never applied (e.g. a DDL the downstream cannot run)
    # The stream's table filters: rows arrive filtered, but a DDL naming kept and left-out tables is refused.
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    connect_timeout: float = 10.0
    reconnect_for: float = 300.0  # how long a lost downstream is retried before the stream stops
    # Where the user lists transactions to skip: the command line's flag, or a config file's key
    # (``stream[1].skip_gtids``) under ``binhub run``; the hints of refused transactions name it (not
    # compared: two configs that differ only there apply alike).
    skip_key: str | None = field(default=None, compare=False)

    def restart_skipping(self, ident: str) -> str:
        """How to restart past transaction ``ident``, in the terms of where the sink runs."""
        if self.skip_key is None:
            return f"restart with --skip-gtid {ident}"
        return f"add {ident!r} to {self.skip_key} and restart"

    def __post_init__(self) -> None:
        if not 1 <= self.workers <= 256:
            raise ConfigError("workers", f"{self.workers}: use 1 to 256")
        Renames(self.rename)  # the rules are checked here, once
