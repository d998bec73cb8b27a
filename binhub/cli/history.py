"""``binhub history DB.TABLE --pk V``: every change to one row, oldest first ("who changed this row, and when")."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson

from binhub.cli.interrupt import run_interruptible
from binhub.ops.schema_sync import current_history
from binhub.schema import Position, TableName
from binhub.schema.lineage import TableIdentity, TableLineage
from binhub.sinks import Checkpoint, CheckpointSource
from binhub.store import StoreReader
from binhub.stream import Stream, StreamConfig


class RowHistorySink:
    """A sink that prints only the changes of one row: those of the table (under any name it had,
    see :class:`~binhub.schema.lineage.TableLineage`) whose before or after image has the key.

    ``key`` is ``{column: value}`` (values as text), or the text of ``--pk`` without names: one value
    for a one-column key, or the values of a key of several columns in key order (``1,x``)."""

    def __init__(self, table: str, key: dict[str, str] | str, fmt: str, lineage: TableLineage,
                 tables: set[TableIdentity]) -> None:
        self.label = table
        self.key = key
        self.fmt = fmt
        self.lineage = lineage
        self.tables = tables
        self.found = 0

    def _key_for(self, change: dict[str, Any]) -> dict[str, str]:
        if isinstance(self.key, dict):
            known = [*dict.fromkeys([*(change["pk"] or {}), *(change["after"] or change["before"] or {})])]
            unknown = [name for name in self.key if name not in known]
            if unknown and not change.get("partial"):  # a partial image may just leave the column out
                raise click.UsageError(f"{self.label} has no column {', '.join(unknown)} (its key: "
                                       f"{', '.join(change['pk'] or {}) or 'none'}; its columns: {', '.join(known)})")
            return self.key
        columns = list(change["pk"] or {})
        values = [self.key] if len(columns) == 1 else self.key.split(",")
        if not columns or len(values) != len(columns):
            raise click.UsageError(f"{self.label} has a key of {len(columns)} columns "
                                   f"({', '.join(columns) or 'none: the whole row'}): give --pk as "
                                   f"{','.join(f'{c}=V' for c in columns) or 'col=value,...'}"
                                   + (f" or {','.join('V' * len(columns))} in key order" if columns else ""))
        return dict(zip(columns, values, strict=True))

    def _ours(self, change: dict[str, Any]) -> bool:
        self.lineage.advance(Position.of(change["file"], change["pos"]))
        return self.lineage.identity(TableName(change["db"], change["table"])) in self.tables

    def resume_point(self) -> Checkpoint | None:
        return None

    def write(self, data: bytes) -> None:
        for line in data.splitlines():
            change = orjson.loads(line)
            if change["op"] == "ddl" or not self._ours(change):
                continue
            key = self._key_for(change)
            if not (_has_key(change["before"], key) or _has_key(change["after"], key)):
                continue
            self.found += 1
            if self.fmt == "json":
                sys.stdout.buffer.write(line + b"\n")
            else:
                click.echo(f"{change['ts']}  {change['gtid'] or '-'}  {change['file']}:{change['pos']}  "
                           f"{change['op']:<6}  {change['db']}.{change['table']}  before={_row(change['before'])}  "
                           f"after={_row(change['after'])}")

    def transaction_end(self, end: CheckpointSource) -> None:
        pass

    def commit(self) -> None:
        sys.stdout.flush()

    def close(self) -> None:
        pass


def _has_key(row: dict[str, Any] | None, key: dict[str, str]) -> bool:
    return row is not None and all(name in row and _text(row[name]) == value for name, value in key.items())


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _row(row: dict[str, Any] | None) -> str:
    return "null" if row is None else orjson.dumps(row).decode()


def _parse_key(pk: str) -> dict[str, str] | str:
    """``42`` or ``42,x`` (the key's values in key order: its columns are found in each change) or ``a=1,b=x``."""
    if "=" not in pk:
        return pk
    parts = dict(p.split("=", 1) for p in pk.split(","))
    return {k.strip(): v for k, v in parts.items()}


@click.command("history")
@click.argument("table", metavar="DB.TABLE")
@click.option("--pk", required=True, metavar="V|V,V,...|COL=V,...",
              help="The row's primary key: its value; for a key of several columns, the values in key order "
              "(1,x) or col=value pairs (a=1,b=x).")
@click.option("--data-dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="The store.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def history(table: str, pk: str, data_dir: Path, fmt: str) -> None:
    """Every change to one row of DB.TABLE in the store, oldest first, with its GTID, commit time,
    file:pos and before/after images (JSON: the binhub JSON lines of those changes).

    The table is followed through RENAME TABLE (and ALTER TABLE ... RENAME): DB.TABLE may be any name
    it had, and its changes under every name are shown. A table dropped or renamed away and then
    created again under the name is shown too (each change line names the table it was made under)."""
    if "." not in table:
        raise click.UsageError("name the table as DB.TABLE")
    reader = StoreReader.open(data_dir)
    history_now = current_history(reader)
    lineage = TableLineage((e.position, e.parsed) for e in history_now.entries if e.kind == "ddl")
    db, _, name = table.partition(".")
    tables, names = lineage.names_of(TableName(db, name))
    sink = RowHistorySink(table, _parse_key(pk), fmt, lineage, tables)
    config = StreamConfig(name="history", include=tuple(sorted(_glob_escape(str(n)) for n in names)),
                          until_caught_up=True)
    run_interruptible(Stream(config, reader, sink, lambda: current_history(reader)).run())
    if not sink.found and fmt == "text":
        click.echo(f"no change to {table} with key {pk} in the store", err=True)


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)
