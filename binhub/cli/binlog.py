"""``binhub binlog ls|show|verify|purge|import``: inspect and manage a store (or loose binlog files)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import re
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console
from rich.table import Table

from binhub.binlog.changes import RowChange
from binhub.binlog.decode import decode_event
from binhub.binlog.file import BinlogFileReader, row_changes, row_json_lines
from binhub.binlog.json_form import dumps_change, format_commit_time, json_default
from binhub.cli.params import DURATION, SIZE
from binhub.errors import BinlogError
from binhub.store import BinlogStore, StoreReader
from binhub.store.archive import SUFFIX as ARCHIVE_SUFFIX
from binhub.store.archive import open_binlog
from binhub.store.catalog import identity_from_file, summarize, verify_files
from binhub.store.retention import PurgeRules
from binhub.store.search import ROW_OPS, find_events
from binhub.store.state import RequestedStart

DATA_DIR = click.option("--data-dir", type=click.Path(path_type=Path), help="The store directory.")


@click.group("binlog")
def binlog() -> None:
    """Inspect, verify, purge and import binlog files (in a store, or given as paths)."""


def _resolve(data_dir: Path | None, files: tuple[str, ...]) -> list[Path]:
    """Paths given directly, or names inside the store, or (none given) every file of the store."""
    out: list[Path] = []
    store = StoreReader.open(data_dir) if data_dir is not None else None
    if not files:
        if store is None:
            raise click.UsageError("give binlog file paths, or --data-dir for a store")
        return [store.file_path(n) for n in store.files]
    for item in files:
        path = Path(item)
        if path.is_file():
            out.append(path)
        elif store is not None and item in store.files:
            out.append(store.file_path(item))
        else:
            where = f"in the store {data_dir}" if store is not None else "(no --data-dir given)"
            raise click.BadParameter(f"{item}: no such file {where}")
    return out


def _time(ts: int) -> str:
    if not ts:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@binlog.command("ls")
@DATA_DIR
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file.")
def ls(data_dir: Path | None, as_json: bool) -> None:
    """List the store's files: size, events, transactions, first/last GTID and time."""
    if data_dir is None:
        raise click.UsageError("--data-dir is required")
    store = StoreReader.open(data_dir)
    summaries = [summarize(store.file_path(n)) for n in store.files]
    if as_json:
        for s in summaries:
            click.echo(json.dumps(dataclasses.asdict(s)))
        return
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)  # piped output: do not squeeze GTIDs into 80 columns
    up = store.state.upstream
    if up is not None:
        console.print(f"upstream: {up.flavour} {up.version} server_id={up.server_id}"
                      + (f" uuid={up.server_uuid}" if up.server_uuid else ""))
    if store.state.encrypted_upstream:
        console.print("[yellow]the upstream encrypts its binlogs: the stored files are decrypted copies, "
                      "not byte-identical to the upstream's[/]")
    durable = store.durable_position
    console.print(f"durable up to: {durable.file}:{durable.position}" if durable else "durable up to: -")
    table = Table(box=None)
    for col in ("file", "size", "events", "txns", "first gtid", "last gtid", "first event", "last event", ""):
        table.add_column(col, justify="right" if col in ("size", "events", "txns") else "left")
    total = 0
    for s in summaries:
        total += s.size
        table.add_row(s.name, f"{s.size:,}", f"{s.events:,}", f"{s.transactions:,}", s.first_gtid or "-",
                      s.last_gtid or "-", _time(s.first_timestamp), _time(s.last_timestamp),
                      "in use" if s.in_use else "")
    console.print(table)
    console.print(f"{len(summaries)} file(s), {total:,} bytes")


def _plain(value: Any) -> Any:
    """Event fields as JSON values: bytes as hex, UUIDs/GTIDs/enums as text, nested dataclasses flattened."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, uuid.UUID):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)
                if f.name not in ("raw", "header")}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def _events(path: Path, start: int) -> Iterator[dict[str, Any]]:
    with open(path, "rb") as f:
        reader = BinlogFileReader(f, path.name, start=start, verify_checksums=False)
        for ev in reader:
            h = ev.header
            event = decode_event(ev.data, reader.fde)
            fields = _plain(event)
            yield {"file": path.name, "pos": ev.offset, "type": h.type_name, "type_code": h.type_code,
                   "timestamp": h.timestamp, "server_id": h.server_id, "length": h.event_size,
                   "end_log_pos": h.log_pos, "flags": h.flags, "fields": fields}


@binlog.command("show")
@DATA_DIR
@click.argument("files", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option("--start-pos", type=int, default=4, help="Offset of the first event to print (in the first file).")
@click.option("--limit", type=int, help="Print at most N events (with --rows: row changes).")
@click.option("--rows", is_flag=True,
              help="Print decoded row changes instead of events (like mysqlbinlog -v); with --format json, "
                   "one binhub JSON object per row change.")
def show(data_dir: Path | None, files: tuple[str, ...], fmt: str, start_pos: int, limit: int | None,
         rows: bool) -> None:
    """Print the events of binlog files (store names or paths), as text or one JSON object per event."""
    paths = _resolve(data_dir, files)
    if rows:
        _show_rows(paths, fmt, start_pos, limit)
        return
    printed = 0
    for i, path in enumerate(paths):
        for event in _events(path, start_pos if i == 0 else 4):
            if limit is not None and printed >= limit:
                return
            printed += 1
            if fmt == "json":
                click.echo(json.dumps(event, separators=(",", ":")))
                continue
            detail = " ".join(f"{k}={_short(v)}" for k, v in event["fields"].items())
            click.echo(f"{event['file']}:{event['pos']:<10} {event['type']:<22} server_id={event['server_id']} "
                       f"end_log_pos={event['end_log_pos']} {_time(event['timestamp'])}  {detail}")


def _show_rows(paths: list[Path], fmt: str, start_pos: int, limit: int | None) -> None:
    out = sys.stdout.buffer
    if fmt == "json" and limit is None:
        # The fast path: each rows event becomes its JSON lines at once (C when built).
        for i, path in enumerate(paths):
            for lines in row_json_lines(path, start=start_pos if i == 0 else 4):
                out.write(lines)
        out.flush()
        return
    printed = 0
    batch: list[bytes] = []
    for i, path in enumerate(paths):
        for change in row_changes(path, start=start_pos if i == 0 else 4):
            if limit is not None and printed >= limit:
                break
            printed += 1
            if fmt == "json":
                batch.append(dumps_change(change))
                batch.append(b"\n")
            else:
                batch.append(_row_text(change).encode("utf-8", "surrogateescape"))
            if len(batch) >= 2048:
                out.write(b"".join(batch))
                batch.clear()
    out.write(b"".join(batch))
    out.flush()


_VERBS = {"insert": ("INSERT INTO", None, "SET"), "delete": ("DELETE FROM", "WHERE", None),
          "update": ("UPDATE", "WHERE", "SET")}


def _row_text(change: RowChange) -> str:
    """A row change the way ``mysqlbinlog -v`` shows one, values in binhub JSON."""
    verb, before_clause, after_clause = _VERBS[change.op]
    lines = [f"# {change.file}:{change.pos} gtid {change.gtid or '-'} {format_commit_time(change.commit_us)}",
             f"### {verb} `{change.db}`.`{change.table}`"]
    for clause, image in ((before_clause, change.before), (after_clause, change.after)):
        if clause is None or image is None:
            continue
        lines.append(f"### {clause}")
        for name, value in image.items():
            lines.append(f"###   {name}={orjson.dumps(value, default=json_default).decode()}")
    return "\n".join(lines) + "\n"


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 120 else text[:117] + "..."


@binlog.command("verify")
@DATA_DIR
@click.argument("files", nargs=-1)
def verify(data_dir: Path | None, files: tuple[str, ...]) -> None:
    """Check every event's CRC32, its position and the ROTATE chain; name the first bad file and offset."""
    paths = _resolve(data_dir, files)
    report = verify_files(paths)
    if report.ok:
        click.echo(f"OK: {report.files} file(s), {report.events:,} events, {report.bytes:,} bytes, every CRC valid")
        return
    for problem in report.problems:
        click.echo(f"BAD: {problem}", err=True)
    raise SystemExit(1)


@binlog.command("purge")
@DATA_DIR
@click.option("--to", "to_file", metavar="FILE", help="Remove the files before FILE (like PURGE BINARY LOGS TO).")
@click.option("--before", metavar="'YYYY-MM-DD HH:MM:SS'", help="Remove files last written before this time (UTC).")
@click.option("--max-age", callback=DURATION, metavar="AGE", help="Remove files older than AGE, e.g. 7d, 12h.")
@click.option("--max-size", callback=SIZE, metavar="SIZE", help="Keep at most SIZE in all, e.g. 50GiB.")
@click.option("--max-files", type=int, help="Keep at most N files.")
def purge(data_dir: Path | None, to_file: str | None, before: str | None, max_age: float | None,
          max_size: int | None, max_files: int | None) -> None:
    """Remove the oldest stored files by rule; never the active file or one a reader holds."""
    if data_dir is None:
        raise click.UsageError("--data-dir is required")
    before_ts = None
    if before is not None:
        try:
            before_ts = dt.datetime.fromisoformat(before).replace(tzinfo=dt.UTC).timestamp()
        except ValueError as exc:
            raise click.BadParameter(f"{before!r} is not a time like '2026-01-31 12:00:00'") from exc
    rules = PurgeRules(to=to_file, before=before_ts, max_age=max_age,
                       max_size=max_size, max_files=max_files)
    if rules.empty:
        raise click.UsageError("give a rule: --to, --before, --max-age, --max-size or --max-files")
    store = BinlogStore.open(data_dir, create=False)
    try:
        removed, blocked = store.purge(rules)
    finally:
        store.close()
    click.echo(f"purged {len(removed)} file(s)" + (f": {removed[0]} … {removed[-1]}" if removed else ""))
    if blocked:
        click.echo(f"kept: {blocked}", err=True)


@binlog.command("import")
@click.option("--data-dir", required=True, type=click.Path(path_type=Path), help="The store directory.")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_(data_dir: Path, files: tuple[Path, ...]) -> None:
    """Import binlog files (e.g. an archive of a primary's binlogs, plain or .zst) into a store, oldest first."""
    for path in import_binlog_files(data_dir, files):
        click.echo(f"imported {path.name} ({path.stat().st_size:,} bytes)")


def import_binlog_files(data_dir: Path, files: Sequence[Path]) -> Iterator[Path]:
    """Verify binlog files and import them into the store at ``data_dir`` (created if need be), oldest
    first; yields each file once imported (``binhub replay`` of loose files uses it too)."""
    with tempfile.TemporaryDirectory(prefix="binhub-import-") as tmp:
        paths = sorted((_plain_copy(p, Path(tmp)) for p in files), key=lambda p: p.name)
        report = verify_files(paths)
        if not report.ok:
            raise BinlogError("refusing to import: " + "; ".join(report.problems[:3]))
        store = BinlogStore.open(data_dir)
        try:
            if store.state.upstream is None and not store.files:
                store.set_identity(identity_from_file(paths[0]))
                store.update_state(requested_start=RequestedStart("import", file=paths[0].name))
            for path in paths:
                store.import_file(path)
                yield path
        finally:
            store.close()


def _plain_copy(path: Path, tmp: Path) -> Path:
    """An archived ``NAME.zst`` is decompressed to ``tmp/NAME`` first; plain files are used as they are."""
    if not path.name.endswith(ARCHIVE_SUFFIX):
        return path
    name, stream = open_binlog(path)
    target = tmp / name
    with stream as src, open(target, "wb") as dst:  # type: ignore[attr-defined]
        shutil.copyfileobj(src, dst, 1 << 20)
    return target


@binlog.command("find")
@click.argument("regex", required=False, metavar="[REGEX]")
@click.option("--data-dir", type=click.Path(path_type=Path), required=True, help="The store directory.")
@click.option("--grep", "pattern", metavar="REGEX",
              help="Statements matching this regular expression (case-insensitive), e.g. 'DROP TABLE' "
              "(or give it as the argument).")
@click.option("--table", metavar="DB.TABLE",
              help="Only events about this table; alone, also its row changes.")
@click.option("--op", "ops", multiple=True, type=click.Choice(sorted(set(ROW_OPS.values()))),
              help="With --table: only its changes of this kind (repeatable): rows events, one line per "
              "transaction, and statements beginning with INSERT/REPLACE, UPDATE or DELETE.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def find(regex: str | None, data_dir: Path, pattern: str | None, table: str | None, ops: tuple[str, ...],
         fmt: str) -> None:
    """Find transactions in the store by statement and table: GTID, file:pos, time (UTC) and
    statement of each matching event, oldest first. The GTID is what `binhub restore
    --until-before-gtid` takes to stop just before it.

    \b
    binhub binlog find --data-dir STORE 'DROP TABLE'
    binhub binlog find --data-dir STORE --table shop.orders --op delete"""
    if regex is not None and pattern is not None:
        raise click.UsageError("give the REGEX as the argument or as --grep, not both")
    pattern = pattern if regex is None else regex
    if ops and table is None:
        raise click.UsageError("--op goes with --table DB.TABLE")
    if pattern is None and table is None:
        raise click.UsageError("give a REGEX (or --grep REGEX), --table DB.TABLE or both")
    try:
        compiled = re.compile(pattern, re.IGNORECASE) if pattern is not None else None
    except re.error as exc:
        raise click.BadParameter(f"{pattern!r}: {exc}", param_hint="--grep") from None
    where: tuple[str, str] | None = None
    if table is not None:
        db, dot, name = table.partition(".")
        if not dot or not db or not name:
            raise click.BadParameter(f"{table!r}: give DB.TABLE", param_hint="--table")
        where = (db, name)
    store = StoreReader.open(data_dir)
    try:
        for match in find_events(store, compiled, where, frozenset(ops) or None):
            gtid = str(match.gtid) if match.gtid is not None else "-"
            if fmt == "json":
                click.echo(json.dumps({"gtid": gtid, "file": match.file, "pos": match.pos,
                                       "timestamp": match.timestamp, "time": _time(match.timestamp),
                                       "statement": match.statement}))
            else:
                click.echo(f"{gtid}  {match.file}:{match.pos}  {_time(match.timestamp)}  "
                           f"{' '.join(match.statement.split())}")
    finally:
        store.close()
