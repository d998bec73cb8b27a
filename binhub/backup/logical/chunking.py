"""How a table is split into chunks that threads read at once.

- a single integer key: ranges between its MIN and MAX, as many as the row estimate over
  ``chunk_rows`` (the first and last ranges are open-ended, so rows outside the MIN/MAX read before
  the snapshot are still taken); every range is a job of its own, in parallel;
- any other primary or NOT NULL unique key (composite, VARCHAR, ...): keyset pages of ``chunk_rows``
  in key order, each page continuing after the last key of the previous one (one job: the pages of
  a table are read in turn);
- no usable key: one scan of the whole table, cut into files every ``chunk_rows`` rows.

A job's rows may also be cut into several files by size (``chunk_bytes``): wide rows stay in bounded memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from binhub.backup.logical.catalog import TableEntry
from binhub.backup.logical.literals import quote_name
from binhub.backup.session import ServerSession


@dataclass(frozen=True, slots=True)
class RangeJob:
    """Rows of ``table`` with ``low <= key < high`` (an open end is None)."""

    table: TableEntry
    low: int | None = None
    high: int | None = None

    def where(self) -> str:
        key = quote_name(self.table.key[0]) if self.table.key else ""
        parts = []
        if self.low is not None:
            parts.append(f"{key} >= {self.low}")
        if self.high is not None:
            parts.append(f"{key} < {self.high}")
        return " AND ".join(parts)


@dataclass(frozen=True, slots=True)
class KeysetJob:
    """All rows of ``table``, in pages of ``page_rows`` in key order."""

    table: TableEntry
    page_rows: int


Job = RangeJob | KeysetJob


def plan(session: ServerSession, table: TableEntry, chunk_rows: int) -> list[Job]:
    if table.key_is_integer:
        return integer_ranges(session, table, chunk_rows)
    if table.key:
        return [KeysetJob(table, chunk_rows)]
    return [RangeJob(table)]  # no key: one scan


def integer_ranges(session: ServerSession, table: TableEntry, chunk_rows: int) -> list[Job]:
    key = quote_name(table.key[0])
    low, high = session.query(f"SELECT MIN({key}), MAX({key}) FROM {table.source}")[0]
    if low is None or high is None:
        return [RangeJob(table)]
    low, high = int(low), int(high)
    count = max(1, min(math.ceil(table.estimated_rows / chunk_rows), high - low + 1))
    bounds = [low + (high - low + 1) * i // count for i in range(1, count)]
    edges: list[int | None] = [None, *bounds, None]
    return [RangeJob(table, edges[i], edges[i + 1]) for i in range(count)]


def keyset_after(key: list[str], last: list[bytes]) -> str:
    """``(a, b) > (x, y)`` spelled out so MariaDB's range optimizer uses the index:
    ``a > x OR (a = x AND b > y)``. ``last`` are the key's SQL literals from the previous page."""
    names = [quote_name(k) for k in key]
    values = [v.decode() for v in last]
    terms = []
    for i in range(len(names)):
        equal = [f"{names[j]} = {values[j]}" for j in range(i)]
        terms.append("(" + " AND ".join([*equal, f"{names[i]} > {values[i]}"]) + ")")
    return " OR ".join(terms)
