"""Replay: apply a range of row changes and DDL into a database, in commit order, one transaction
per transaction of the range (``binhub replay``, what TiDB's reparo does).

The changes come from the store (decoded with the schema history) or from the binhub JSON lines a
``binhub stream`` wrote (``jsonl`` files, grouped into transactions by GTID). Statements are
rendered by :mod:`binhub.sinks.mysql.sql` and run on one connection, or printed (``--dry-run``).
"""

from __future__ import annotations

import fnmatch
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TextIO

import orjson

from binhub.errors import RangeError
from binhub.flashback.bounds import RangeBounds, TransactionHead
from binhub.flashback.downstream import SESSION_SQL
from binhub.flashback.reading import TransactionMark
from binhub.flashback.statements import ColumnLookup, change_sql
from binhub.sinks.mysql.sql import SqlColumn, quote_name

__all__ = ["Replay", "ReplayTarget", "SqlPrinter", "jsonl_pieces"]


class ReplayTarget(Protocol):
    def begin(self) -> None: ...
    def execute(self, statements: list[str]) -> int: ...
    def commit(self) -> None: ...
    def use(self, db: str) -> None: ...


class SqlPrinter:
    """A target that prints what would run (``--dry-run``)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        for sql in SESSION_SQL:
            out.write(sql + ";\n")

    def begin(self) -> None:
        self.out.write("BEGIN;\n")

    def execute(self, statements: list[str]) -> int:
        for sql in statements:
            self.out.write(sql + ";\n")
        return 0

    def commit(self) -> None:
        self.out.write("COMMIT;\n")

    def use(self, db: str) -> None:
        self.out.write(f"USE {quote_name(db)};\n")


class Replay:
    """Apply ``pieces`` (chunks of binhub JSON lines, each transaction's followed by its mark)."""

    def __init__(self, target: ReplayTarget, columns: ColumnLookup) -> None:
        self.target = target
        self.columns = columns
        self.transactions = 0
        self.statements = 0
        self.ddl = 0

    async def run(self, pieces: AsyncIterator[bytes | TransactionMark]) -> None:
        open_ = False
        async for piece in pieces:
            if isinstance(piece, TransactionMark):
                if open_:
                    self.target.commit()
                    self.transactions += 1
                    open_ = False
                continue
            for line in piece.splitlines():
                change = orjson.loads(line)
                if change.get("positional"):
                    change = self._named(change)
                if change["op"] == "ddl":
                    if open_:  # DDL commits implicitly: what came before it is one transaction
                        self.target.commit()
                        open_ = False
                    self._ddl(change)
                    continue
                sql = change_sql(change, self._columns_of(change))
                if sql is None:
                    continue
                if not open_:
                    self.target.begin()
                    open_ = True
                self.target.execute([sql])
                self.statements += 1
        if open_:
            self.target.commit()
            self.transactions += 1

    def _columns_of(self, change: dict[str, Any]) -> Mapping[str, SqlColumn]:
        return self.columns(change["db"], change["table"], change["file"], change["pos"])

    def _named(self, change: dict[str, Any]) -> dict[str, Any]:
        """A change of a table whose columns the source does not name (``@1`` …): named by the
        target's columns in their order, as ``mysqlbinlog | mysql`` would apply it."""
        names = list(self._columns_of(change))

        def name(key: str) -> str:
            index = int(key[1:]) - 1
            if not 0 <= index < len(names):
                raise RangeError(f"{change['db']}.{change['table']} at {change['file']}:{change['pos']} has a "
                                 f"column {key}, but the target's table has {len(names)} columns")
            return names[index]

        def rename(image: dict[str, Any] | None) -> dict[str, Any] | None:
            return None if image is None else {name(k): v for k, v in image.items()}
        return {**change, "before": rename(change["before"]), "after": rename(change["after"]),
                "pk": rename(change["pk"])}

    def _ddl(self, change: dict[str, Any]) -> None:
        if change["db"] and change["table"]:  # CREATE/DROP DATABASE name a database that may not exist
            self.target.use(change["db"])
        self.target.execute([change["sql"]])
        self.ddl += 1
        forget = getattr(self.target, "forget_columns", None)
        if forget is not None:
            forget()


# -- binhub JSON lines written by `binhub stream` -------------------------------------------------

def _jsonl_files(directory: Path) -> list[Path]:
    files = sorted(directory.glob("*.jsonl"))
    if not files:
        raise RangeError(f"{directory} holds no .jsonl file written by binhub stream")
    return files


def _lines(files: Sequence[Path]) -> Iterator[bytes]:
    for path in files:
        with open(path, "rb") as f:
            for line in f:
                if line.endswith(b"\n"):  # a stream never leaves half a line; a copy might
                    yield line


def _head(change: dict[str, Any]) -> TransactionHead:
    ts = datetime.fromisoformat(change["ts"].replace("Z", "+00:00"))
    return TransactionHead(change["file"], change["pos"], change["gtid"], int(ts.timestamp()))


async def jsonl_pieces(directory: Path, bounds: RangeBounds, include: Sequence[str] = (),
                       exclude: Sequence[str] = ()) -> AsyncIterator[bytes | TransactionMark]:
    """The lines of a jsonl directory within ``bounds``, a transaction being the consecutive lines
    of one GTID (of one file and position where the lines have no GTID)."""
    start, stop = bounds.start, bounds.stop
    started = start is None
    stopped = False
    group: list[bytes] = []
    group_head: TransactionHead | None = None
    matched = 0

    def passes(change: dict[str, Any]) -> bool:
        name = f"{change['db']}.{change['table'] or ''}"
        return (not include or any(fnmatch.fnmatchcase(name, p) for p in include)) and \
            not any(fnmatch.fnmatchcase(name, p) for p in exclude)

    def flush() -> Iterator[bytes | TransactionMark]:
        nonlocal group, group_head
        if group_head is not None:
            if group:
                yield b"".join(group)
            yield TransactionMark(group_head.gtid, group_head.time, group_head.file, group_head.pos, group_head.pos)
        group, group_head = [], None

    for line in _lines(_jsonl_files(directory)):
        change = orjson.loads(line)
        head = _head(change)
        same = group_head is not None and (head.gtid == group_head.gtid if head.gtid is not None
                                           else (head.file, head.pos) == (group_head.file, group_head.pos))
        if not same:
            for piece in flush():
                yield piece
            if stopped:
                break
            if not started:
                if start is None or not start.reached_by(head):
                    continue
                started = True
            if stop is not None and stop.gtid is None and stop.reached_by(head):
                stopped = True
                break
            group_head = head
            matched += 1
            if stop is not None and stop.gtid is not None and stop.reached_by(head):
                stopped = True  # this transaction is the last
        elif group_head is None:
            continue
        if passes(change):
            group.append(line)
    for piece in flush():
        yield piece
    if not started:
        raise RangeError(f"no transaction in {directory} matches the start ({bounds.describe()})")
    if stop is not None and stop.gtid is not None and not stopped:
        raise RangeError(f"--stop-gtid {stop.gtid} is not in {directory} after the start")
    if matched == 0:
        raise RangeError(f"no transaction in {directory} lies {bounds.describe()}")
