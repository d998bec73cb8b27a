"""``binhub schema show|seed|rebuild``: the columns of a table at any position of a store."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from binhub.binlog.columns import TableSchema
from binhub.binlog.gtid import MariadbGtid, MysqlGtid
from binhub.ops.schema_seed import seed_history
from binhub.ops.schema_sync import find_gtid_end, open_history, update_history
from binhub.relay.config import parse_source_dsn
from binhub.schema import Position, SchemaHistory, SchemaProblem, TableName
from binhub.store import StoreReader

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(:[A-Za-z_][\w]*)?")
DATA_DIR = click.option("--data-dir", required=True, type=click.Path(path_type=Path), help="The store directory.")
SOURCE_HELP = ("Upstream to read information_schema from, e.g. mysql://user:pw@127.0.0.1:3306 (the store "
               "keeps no password, so it is given here).")


@click.group("schema")
def schema() -> None:
    """The schema history: a table's columns at any position of the store.

    Kept in DATA_DIR/schema/ and brought up to date from the store's DDL on every use. Tables
    created before the store began come from the upstream's information_schema (`schema seed`).
    """


def _parse_table(text: str) -> TableName:
    db, dot, table = text.partition(".")
    if not dot or not db or not table:
        raise click.BadParameter(f"{text!r}: name the table as db.table", param_hint="TABLE")
    return TableName(db, table)


def _parse_at(store: StoreReader, at: str | None) -> tuple[Position | None, str]:
    """``FILE:POS`` or a GTID → the position to answer for, and how to describe it."""
    if at is None:
        return None, "the end of the store"
    file, colon, pos = at.rpartition(":")
    if colon and pos.isdigit() and not _UUID.fullmatch(file):  # uuid:N is a MySQL GTID
        return Position.of(file, int(pos)), f"{file}:{pos}"
    try:
        (MysqlGtid if ":" in at else MariadbGtid).parse(at.strip())
    except ValueError:
        raise click.BadParameter(f"{at!r} is neither a GTID (0-1-42, uuid:42) nor FILE:POS "
                                 "(mysql-bin.000042:1234)", param_hint="--at") from None
    position = find_gtid_end(store, at)
    return position, f"GTID {at} ({position})"


def _sync(data_dir: Path, source: str | None) -> SchemaHistory:
    store = StoreReader.open(data_dir)
    with open_history(data_dir) as history:
        update_history(store, history)
        if source is not None and not any(e.kind == "seed" for e in history.entries):
            _seed_into(store, history, source)
        return history


def _seed_into(store: StoreReader, history: SchemaHistory, source: str) -> None:
    seed = seed_history(store, history, parse_source_dsn(source, key="--source"))
    click.echo(f"seeded {len(seed.catalog.tables)} tables from information_schema at {seed.position} "
               f"(GTID {seed.gtid or '-'})", err=True)
    if history.scanned is not None and history.scanned < seed.position:
        click.echo(f"note: the store ends at {history.scanned}, before the seed; a DDL the relay brings from "
                   f"between the two leaves its tables unknown until {seed.position}", err=True)


@schema.command("show")
@click.argument("table", metavar="DB.TABLE")
@DATA_DIR
@click.option("--at", metavar="GTID|FILE:POS",
              help="For an event at FILE:POS (DDL starting before it applies), or just after the transaction "
                   "GTID. Default: the end of the store.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--source", metavar="DSN", help=SOURCE_HELP + " Seeds the history on first use.")
def show(table: str, data_dir: Path, at: str | None, fmt: str, source: str | None) -> None:
    """Print TABLE's columns as the schema history knows them at a position."""
    name = _parse_table(table)
    history = _sync(data_dir, source)
    position, where = _parse_at(StoreReader.open(data_dir), at)
    catalog, problems = history.catalog_at(position)
    found = catalog.table(name)
    mine = [p for p in problems if name in p.tables or not p.tables]
    if fmt == "json":
        click.echo(json.dumps(_json(name, found.schema() if found else None, position, at, mine)))
    elif found is not None and found.known:
        _print_table(found.schema(), where)
    for problem in mine:
        click.echo(f"warning: {problem}", err=True)
    if found is None:
        hint = "" if any(e.kind == "seed" for e in history.entries) else (
            "; if it was created before the store began, seed the history: binhub schema seed --source DSN")
        raise click.ClickException(f"{name} does not exist at {where} in the schema history{hint}")
    if not found.known:
        click.echo(f"warning: the columns of {name} at {where} are unknown: a DDL before it could not be "
                   f"followed (rows decode with positional names @1, @2, ...)", err=True)


def _print_table(table: TableSchema, where: str) -> None:
    console = Console() if sys.stdout.isatty() else Console(width=200)
    out = Table(title=f"{table.db}.{table.table} at {where}", title_justify="left")
    for heading in ("#", "column", "type", "charset", "collation", "null", "key", "default", "extra"):
        out.add_column(heading)
    for i, c in enumerate(table.columns, 1):
        key = "PRI" if c.name in table.primary_key else ""
        out.add_row(str(i), c.name or f"@{i}", c.sql_type or "?", c.charset or "", c.collation or "",
                    "YES" if c.nullable else "NO", key, c.default or "", "" if c.visible else "INVISIBLE")
    console.print(out)


def _json(name: TableName, table: TableSchema | None, position: Position | None, at: str | None,
          problems: list[SchemaProblem]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "db": name.db, "table": name.table, "at": at,
        "position": {"file": position.file, "pos": position.pos} if position else None,
        "exists": table is not None, "known": bool(table and table.known),
        "primary_key": list(table.primary_key) if table else [],
        "columns": [{"name": c.name, "type": c.sql_type, "unsigned": c.unsigned, "charset": c.charset,
                     "collation": c.collation, "nullable": c.nullable, "visible": c.visible,
                     "default": c.default, "comment": c.comment,
                     "enum_values": list(c.enum_values) if c.enum_values is not None else None,
                     "set_values": list(c.set_values) if c.set_values is not None else None}
                    for c in (table.columns if table else ())],
        "problems": [{"file": p.position.file, "pos": p.position.pos, "gtid": p.gtid, "reason": p.reason,
                      "sql": p.sql} for p in problems],
    }
    return doc


@schema.command("seed")
@DATA_DIR
@click.option("--source", required=True, metavar="DSN", help=SOURCE_HELP)
def seed(data_dir: Path, source: str) -> None:
    """Record the upstream's information_schema in the history (for tables older than the store)."""
    store = StoreReader.open(data_dir)
    with open_history(data_dir) as history:
        update_history(store, history)
        _seed_into(store, history, source)


@schema.command("rebuild")
@DATA_DIR
def rebuild(data_dir: Path) -> None:
    """Rebuild the history from the store's QUERY events (keeps the seeds), e.g. after damage."""
    store = StoreReader.open(data_dir)
    with open_history(data_dir, salvage=True) as history:
        history.reset()
        count = update_history(store, history)
        click.echo(f"rebuilt the schema history from {count} QUERY events; {len(history.problems)} problem(s)",
                   err=True)
