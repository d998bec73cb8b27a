"""How a table is split into chunks that threads read at once.

- a single integer key: ranges between its MIN and MAX, as many as the row estimate over
  ``chunk_rows`` (the first and last ranges are open-ended, so rows outside the MIN/MAX read before
  the snapshot are still taken); every range is a job of its own, in parallel;
- any other primary or NOT NULL unique key (composite, VARCHAR, ...): keyset pages of ``chunk_rows``
  in key order, each page continuing after the last key of the previous one (one job: the pages of
  a table are read in turn);
- no usable key: one scan of the whole table, cut into files every ``chunk_rows`` rows.

A job's rows may also be cut into several files by size (``chunk_bytes``): wide rows stay in bounded memory.

A range is read in *groups*: narrower key ranges of about ``GROUP_BYTES`` of SQL each, which the
server packs into one result row (``GROUP_CONCAT``, see ``dump.py``), so the client handles a few
big strings instead of a Python object per row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from binhub.backup.logical.catalog import TableEntry
from binhub.backup.logical.literals import quote_name
from binhub.backup.session import ServerSession

# A group's SQL, about: big enough that the per-result-row cost vanishes, small enough to stay well
# under any max_allowed_packet and group_concat_max_len.
GROUP_BYTES = 512 * 1024
MAX_GROUP_ROWS = 4096
# Literal bytes per stored byte, roughly (hex doubles binary; quotes, commas, escapes).
LITERAL_EXPANSION = 2


@dataclass(frozen=True, slots=True)
class RangeJob:
    """Rows of ``table`` with ``low <= key < high`` (an open end is None).

    ``first``..``stop`` are the key values the range covered when it was planned (the open ends
    clamped to the table's MIN and MAX then) and ``group_width`` how many key values a group spans;
    0: the job is not read in groups.
    """

    table: TableEntry
    low: int | None = None
    high: int | None = None
    first: int = 0
    stop: int = 0
    group_width: int = 0

    def groups(self) -> list[RangeJob]:
        """The range cut into groups of ``group_width`` key values; the outer ends stay as open as the job's."""
        if not self.group_width:
            return [self]
        edges: list[int | None] = [*range(self.first, self.stop, self.group_width)][1:]
        edges = [self.low, *edges, self.high]
        return [RangeJob(self.table, edges[i], edges[i + 1]) for i in range(len(edges) - 1)]

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


def plan(session: ServerSession, table: TableEntry, chunk_rows: int, group_bytes: int = GROUP_BYTES) -> list[Job]:
    if table.key_is_integer:
        return integer_ranges(session, table, chunk_rows, group_bytes)
    if table.key:
        return [KeysetJob(table, chunk_rows)]
    return [RangeJob(table)]  # no key: one scan


def integer_ranges(session: ServerSession, table: TableEntry, chunk_rows: int,
                   group_bytes: int = GROUP_BYTES) -> list[Job]:
    key = quote_name(table.key[0])
    low, high = session.query(f"SELECT MIN({key}), MAX({key}) FROM {table.source}")[0]
    if low is None or high is None:
        return [RangeJob(table)]
    low, high = int(low), int(high)
    count = max(1, min(math.ceil(table.estimated_rows / chunk_rows), high - low + 1))
    bounds = [low + (high - low + 1) * i // count for i in range(1, count)]
    edges: list[int | None] = [None, *bounds, None]
    width = group_width(table, high - low + 1, group_bytes)
    spans = [low, *bounds, high + 1]
    return [RangeJob(table, edges[i], edges[i + 1], spans[i], spans[i + 1], width) for i in range(count)]


def group_width(table: TableEntry, key_values: int, group_bytes: int = GROUP_BYTES) -> int:
    """How many key values a group spans for about ``group_bytes`` of SQL, by the table's row estimates."""
    rows_per_value = max(table.estimated_rows, 1) / key_values
    literal_bytes = max(table.average_row_bytes * LITERAL_EXPANSION, 16)
    rows = max(1, min(MAX_GROUP_ROWS, group_bytes // literal_bytes))
    return max(1, int(rows / rows_per_value))


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
