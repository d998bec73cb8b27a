"""Replay: apply a range of row changes and DDL into a database, in commit order (``binhub
replay``, what TiDB's reparo does).

The changes come from the store (decoded with the schema history) or from the binhub JSON lines a
``binhub stream`` wrote (``jsonl`` files, grouped into transactions by GTID). They are applied
through the MySQL sink (:class:`binhub.sinks.mysql.sink.MysqlSink`: exactly once, with its
checkpoint in the target, so a replay started again with the same name resumes after what the
target holds), or printed as SQL (``--dry-run``, statements by :mod:`binhub.flashback.statements`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TextIO

import orjson

from binhub.errors import RangeError
from binhub.flashback.bounds import RangeBounds, TransactionHead
from binhub.flashback.reading import TransactionMark
from binhub.flashback.statements import SESSION_SQL, ColumnLookup, change_sql
from binhub.sinks.base import Checkpoint, Sink
from binhub.sinks.mysql.ddl_names import UncertainDdl, rename_ddl
from binhub.sinks.mysql.options import Renames
from binhub.sinks.mysql.sql import SqlColumn, quote_name
from binhub.store.index import file_seq

__all__ = ["Replay", "ReplayOutput", "SinkOutput", "SqlPrinter", "jsonl_pieces"]

# (db, table) -> the target table's columns in their order (to name a positional row's values)
TargetColumns = Callable[[str, str], Mapping[str, SqlColumn]]


class ReplayOutput(Protocol):
    def change(self, change: dict[str, Any], line: bytes) -> None:
        """One row change or DDL (``line``: its JSON, when the change is as the source wrote it)."""

    def end(self, mark: TransactionMark) -> None: ...

    def finish(self) -> None: ...


class SqlPrinter:
    """``--dry-run``: the SQL the replay would run, BEGIN … COMMIT per transaction, with the
    tables and databases ``--rename`` maps elsewhere renamed as the sink renames them."""

    def __init__(self, out: TextIO, columns: ColumnLookup, renames: Renames | None = None) -> None:
        self.out = out
        self.columns = columns
        self.renames = renames if renames is not None else Renames()
        self._open = False
        out.write("".join(setting + ";\n" for setting in SESSION_SQL))

    def change(self, change: dict[str, Any], line: bytes) -> None:
        if change["op"] == "ddl":
            self._commit()  # DDL commits implicitly: what came before it is a transaction of its own
            session_db = (change.get("session") or {}).get("db") or ""
            db = session_db or (change["db"] if change["table"] else None)
            if db:
                self.out.write(f"USE {quote_name(self.renames.database(db))};\n")
            try:
                self.out.write(rename_ddl(change["sql"], session_db, self.renames) + ";\n")
            except UncertainDdl as exc:
                self.out.write(f"-- the replay stops here: binhub cannot rename this DDL with certainty ({exc})\n"
                               f"-- {change['sql']}\n")
            return
        columns = self.columns(change["db"], change["table"], change["file"], change["pos"])
        if self.renames:
            db, table = self.renames(change["db"], change["table"])
            change = {**change, "db": db, "table": table}
        sql = change_sql(change, columns)
        if sql is None:
            return
        if not self._open:
            self.out.write("BEGIN;\n")
            self._open = True
        self.out.write(sql + ";\n")

    def end(self, mark: TransactionMark) -> None:
        self._commit()

    def finish(self) -> None:
        self._commit()

    def _commit(self) -> None:
        if self._open:
            self.out.write("COMMIT;\n")
            self._open = False


class SinkOutput:
    """Into the MySQL sink: each transaction's lines, then its end as the sink's checkpoint."""

    COMMIT_EVERY = 1000  # transactions between the sink's commits (each worker commits as it goes)

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self._ended = 0

    def change(self, change: dict[str, Any], line: bytes) -> None:
        self.sink.write(line if line else orjson.dumps(change) + b"\n")

    def end(self, mark: TransactionMark) -> None:
        self.sink.transaction_end(Checkpoint(mark.file, mark.end, mark.gtid or ""))
        self._ended += 1
        if self._ended % self.COMMIT_EVERY == 0:
            self.sink.commit()

    def finish(self) -> None:
        self.sink.commit()


class Replay:
    """Feed ``pieces`` (chunks of binhub JSON lines, each transaction's followed by its mark) to an
    output, after ``resume`` (a checkpoint of an earlier run: what lies at or before it is skipped)."""

    def __init__(self, output: ReplayOutput, target_columns: TargetColumns, *, resume: Checkpoint | None = None) -> None:
        self.output = output
        self.target_columns = target_columns
        self.resume = (file_seq(resume.file), resume.pos) if resume is not None and resume.file else None
        self.transactions = 0
        self.changes = 0
        self.ddl = 0
        self.skipped = 0

    async def run(self, pieces: AsyncIterator[bytes | TransactionMark]) -> None:
        resume = self.resume
        pending = False
        async for piece in pieces:
            if isinstance(piece, TransactionMark):
                if resume is not None and (file_seq(piece.file), piece.end) <= resume:
                    self.skipped += 1
                    continue
                self.output.end(piece)
                self.transactions += pending
                pending = False
                continue
            for line in piece.splitlines(keepends=True):
                change = orjson.loads(line)
                if resume is not None and (file_seq(change["file"]), change["pos"]) < resume:
                    continue
                if change.get("positional"):
                    change, line = self._named(change), b""
                self.output.change(change, line)
                pending = True
                if change["op"] == "ddl":
                    self.ddl += 1
                else:
                    self.changes += 1
        self.output.finish()

    def _named(self, change: dict[str, Any]) -> dict[str, Any]:
        """A change of a table whose columns the source does not name (``@1`` …): named by the
        target's columns in their order, as ``mysqlbinlog | mysql`` would apply it."""
        names = list(self.target_columns(change["db"], change["table"]))

        def name(key: str) -> str:
            index = int(key[1:]) - 1
            if not 0 <= index < len(names):
                raise RangeError(f"{change['db']}.{change['table']} at {change['file']}:{change['pos']} has a "
                                 f"column {key}, but the target's table has {len(names)} columns")
            return names[index]

        def rename(image: dict[str, Any] | None) -> dict[str, Any] | None:
            return None if image is None else {name(k): v for k, v in image.items()}
        named = {**change, "before": rename(change["before"]), "after": rename(change["after"]),
                 "pk": rename(change["pk"])}
        named.pop("positional")
        return named


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
    of one GTID (of one file and position where the lines have no GTID). A mark's ``end`` is just
    past its last line's position (the store position of the next transaction is not in the lines)."""
    start, stop = bounds.start, bounds.stop
    started = start is None
    stopped = False
    group: list[bytes] = []
    group_head: TransactionHead | None = None
    last_pos = 0
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
            yield TransactionMark(group_head.gtid, group_head.time, group_head.file, group_head.pos, last_pos + 1)
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
        last_pos = head.pos
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
