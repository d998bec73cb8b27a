"""The schema history: the columns of every table at any position of the store, kept on disk.

On disk (``DATA_DIR/schema/``)::

    ddl.log                    append-only, one checksummed JSON record per DDL (statement, database,
                               position, GTID, session charsets) or per seed (information_schema)
    snapshot.<seq>.<pos>.json  the whole catalog as of a position (every record before it applied)
    progress.json              how far the store has been scanned for QUERY events

The log is the truth; snapshots only save replay time. A snapshot names how many log records
precede it, and one that disagrees with the log (a record was inserted before it, e.g. a seed) is
ignored and removed. Everything but the seeds can be rebuilt by scanning the store again.

Positions: :meth:`SchemaHistory.catalog_at` answers for an event starting at a position, so every
DDL that starts before it applies. A DDL the parsers do not understand is reported loudly (logger
``binhub.schema``, and :attr:`problems`) with its position, GTID and statement, and the tables it
names become unknown until a later CREATE (or a seed) defines them again.

Seeds: a table created before the store's first file is unknown to the DDL log. A seed records
information_schema as read at an upstream position P. Tables and databases that no DDL before P
touches get the seed's definition from the start of the history (they cannot have changed); the
others take it at P, unless the history knows them there already (then a disagreement is a problem).
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from binhub.binlog.charsets import charset_of_collation_name, collation_by_id
from binhub.binlog.columns import TableSchema
from binhub.errors import SchemaHistoryError
from binhub.schema.catalog import Catalog, Charset, StatementContext
from binhub.schema.changes import (
    AlterDatabase,
    AlterTable,
    Change,
    CreateDatabase,
    CreateTable,
    CreateTableLike,
    DropDatabase,
    DropTables,
    Outcome,
    ParsedStatement,
    RenameTable,
    RenameTables,
    TableName,
)
from binhub.schema.ddl import parse_statement
from binhub.schema.files import append_log, atomic_write_json, read_json, read_log
from binhub.schema.scan import Position, QueryRecord

__all__ = ["HistoryEntry", "SchemaCursor", "SchemaHistory", "SchemaProblem"]

log = logging.getLogger("binhub.schema")

SNAPSHOT_EVERY = 200  # log records between snapshots
HISTORY_FORMAT = 1
# Snapshots written before columns kept their defaults and comments (format 1) are dropped and
# rebuilt from the log, which holds every DDL's text.
SNAPSHOT_FORMAT = 2
LOG_NAME = "ddl.log"
PROGRESS_NAME = "progress.json"


@dataclass(frozen=True, slots=True)
class SchemaProblem:
    """A DDL the history could not follow (or a seed that disagrees with it)."""

    position: Position
    gtid: str
    sql: str
    reason: str
    tables: tuple[TableName, ...] = ()

    def __str__(self) -> str:
        gtid = f" (GTID {self.gtid})" if self.gtid else ""
        sql = self.sql if len(self.sql) <= 300 else self.sql[:300] + "..."
        return f"{self.position}{gtid}: {self.reason}; statement: {sql}"


@dataclass(eq=False)
class HistoryEntry:
    """One record of the log: a DDL statement, or a seed from information_schema."""

    kind: str  # "ddl" | "seed"
    position: Position
    gtid: str = ""
    db: str = ""
    sql: str = ""
    flavour: str = "mariadb"
    server_version: tuple[int, int, int] | None = None
    collation_server: str | None = None
    utf8mb4_default: str | None = None
    seed: Catalog | None = None
    _parsed: ParsedStatement | None = field(default=None, repr=False)

    @classmethod
    def from_query(cls, rec: QueryRecord) -> HistoryEntry:
        status = rec.status
        server = collation_by_id(status.collation_server) if status.collation_server is not None else None
        utf8mb4 = (collation_by_id(status.default_collation_for_utf8mb4)
                   if status.default_collation_for_utf8mb4 else None)
        return cls("ddl", rec.position, rec.gtid, rec.db, rec.sql, rec.flavour, rec.server_version, server, utf8mb4)

    @property
    def parsed(self) -> ParsedStatement:
        if self._parsed is None:
            self._parsed = parse_statement(self.sql, self.db, flavour=self.flavour, server_version=self.server_version)
        return self._parsed

    def context(self) -> StatementContext:
        server = Charset(charset_of_collation_name(self.collation_server), self.collation_server) \
            if self.collation_server else Charset()
        return StatementContext(self.flavour, server, self.utf8mb4_default)

    def to_record(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"kind": self.kind, "file": self.position.file, "pos": self.position.pos,
                               "gtid": self.gtid}
        if self.kind == "ddl":
            doc.update(db=self.db, sql=self.sql, flavour=self.flavour,
                       server_version=list(self.server_version) if self.server_version else None,
                       collation_server=self.collation_server, utf8mb4_default=self.utf8mb4_default)
        else:
            assert self.seed is not None
            doc["catalog"] = self.seed.to_json()
        return doc

    @classmethod
    def from_record(cls, doc: dict[str, Any]) -> HistoryEntry:
        position = Position.of(doc["file"], doc["pos"])
        if doc["kind"] == "seed":
            return cls("seed", position, doc.get("gtid", ""), seed=Catalog.from_json(doc["catalog"]))
        version = doc.get("server_version")
        return cls("ddl", position, doc.get("gtid", ""), doc.get("db", ""), doc["sql"], doc.get("flavour", "mariadb"),
                   (version[0], version[1], version[2]) if version else None, doc.get("collation_server"),
                   doc.get("utf8mb4_default"))


class SchemaHistory:
    """One history directory. Single writer (the process that scans the store); any number of
    readers may open it read-only between writes."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.log_path = self.directory / LOG_NAME
        self.entries: list[HistoryEntry] = []
        self.scanned: Position | None = None  # the store is scanned up to (not including) this position
        self._pending: list[HistoryEntry] = []
        self._head: Catalog | None = None  # the catalog after every entry
        self._head_problems: list[SchemaProblem] = []
        self._snapshots: dict[Position, Path] = {}
        self._entries_at_last_snapshot = 0
        self.generation = 0  # bumped when entries change other than by appending: cursors start over

    # ------------------------------------------------------------------------------------ opening

    @classmethod
    def open(cls, directory: Path, *, create: bool = True, salvage: bool = False) -> SchemaHistory:
        """Load the history; ``salvage`` skips damaged log records instead of refusing (then
        :meth:`reset` and a rescan of the store rebuild what they held, seeds that survived kept)."""
        history = cls(directory)
        if create:
            try:
                history.directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise SchemaHistoryError(f"cannot create the schema history at {directory}: {exc.strerror}") from exc
        history._load(salvage)
        return history

    def _load(self, salvage: bool) -> None:
        try:
            records = read_log(self.log_path, salvage=salvage)
            self.entries = sorted((HistoryEntry.from_record(r) for r in records), key=lambda e: e.position)
        except (KeyError, TypeError, ValueError) as exc:
            raise SchemaHistoryError(f"the schema history log {self.log_path} holds a record binhub cannot read: "
                                     f"{exc}", hint="binhub schema rebuild --data-dir DIR") from exc
        progress = read_json(self.directory / PROGRESS_NAME)
        if progress and progress.get("file"):
            self.scanned = Position.of(progress["file"], int(progress["pos"]))
        for tmp in self.directory.glob("*.tmp"):  # a snapshot write that a crash interrupted
            tmp.unlink(missing_ok=True)
        for path in self.directory.glob("snapshot.*.json"):
            doc = read_json(path)
            position = _snapshot_position(doc)
            # Unreadable, or the log has other records before it than when it was written: stale.
            if position is None or doc is None or doc.get("entries") != self._count_before(position):
                path.unlink(missing_ok=True)
                continue
            self._snapshots[position] = path
        self._entries_at_last_snapshot = max((self._count_before(p) for p in self._snapshots), default=0)

    def _count_before(self, position: Position) -> int:
        return bisect.bisect_left(self.entries, position, key=lambda e: e.position)

    # ---------------------------------------------------------------------------------- recording

    def record_query(self, rec: QueryRecord) -> ParsedStatement:
        """Follow one QUERY event of the store; DDL (and DDL not understood) is logged on :meth:`flush`."""
        entry = HistoryEntry.from_query(rec)
        parsed = entry.parsed
        if parsed.outcome == Outcome.IGNORED:
            log.debug("schema history: %s ignored (%s)", rec.position, parsed.reason)
            return parsed
        if any(e.position == entry.position and e.kind == "ddl" for e in self._tail_entries()):
            return parsed  # already recorded (a scan resumed before its progress was saved)
        if rec.error_code:
            log.warning("schema history: %s (GTID %s) is a DDL the primary logged with error %d; following it "
                        "as written: %s", rec.position, rec.gtid or "-", rec.error_code, rec.sql[:300])
        self._insert(entry)
        return parsed

    def record_seed(self, position: Position, seed: Catalog, gtid: str = "") -> None:
        """Record information_schema as read when the upstream stood at ``position``."""
        self._insert(HistoryEntry("seed", position, gtid, seed=seed))

    def _tail_entries(self) -> list[HistoryEntry]:
        return self.entries[-50:]

    def _insert(self, entry: HistoryEntry) -> None:
        at = bisect.bisect_right(self.entries, entry.position, key=lambda e: e.position)
        if at == len(self.entries):
            catalog, head_problems = self._head_state()
            self.entries.append(entry)
            problems = self._apply(catalog, entry)
            head_problems += problems
        else:
            # An entry before others: a DDL the store caught up with after a seed read further on.
            # The head and the snapshots after it no longer hold; they are rebuilt on demand.
            self.entries.insert(at, entry)
            self._head = None
            self.generation += 1
            for position in [p for p in self._snapshots if p > entry.position]:
                self._snapshots.pop(position).unlink(missing_ok=True)
            self._entries_at_last_snapshot = min(self._entries_at_last_snapshot, at)
            problems = self._apply(self._replay_until(entry.position)[0], entry)
        self._pending.append(entry)
        for problem in problems:
            log.error("schema history: cannot follow the DDL at %s", problem)

    def flush(self, scanned: Position | None = None) -> None:
        """Make recorded entries durable, then the scan progress; snapshot now and then."""
        append_log(self.log_path, [e.to_record() for e in self._pending])
        self._pending.clear()
        if scanned is not None:
            self.scanned = scanned
            atomic_write_json(self.directory / PROGRESS_NAME,
                              {"format": HISTORY_FORMAT, "file": scanned.file, "pos": scanned.pos})
        if len(self.entries) - self._entries_at_last_snapshot >= SNAPSHOT_EVERY:
            self.snapshot()

    def snapshot(self) -> None:
        """Write the catalog after every entry, as of just after the last one."""
        if not self.entries:
            return
        catalog, problems = self._head_state()
        last = self.entries[-1].position
        position = Position.of(last.file, last.pos + 1)
        path = self.directory / f"snapshot.{position.seq:08d}.{position.pos:012d}.json"
        atomic_write_json(path, {"format": SNAPSHOT_FORMAT, "file": position.file, "pos": position.pos,
                                 "entries": len(self.entries), "catalog": catalog.to_json(),
                                 "problems": [_problem_json(p) for p in problems]})
        self._snapshots[position] = path
        self._entries_at_last_snapshot = len(self.entries)

    def reset(self) -> None:
        """Forget everything but the seeds (before a rebuild from the store)."""
        seeds = [e for e in self.entries if e.kind == "seed"]
        for path in self._snapshots.values():
            path.unlink(missing_ok=True)
        self._snapshots.clear()
        (self.directory / PROGRESS_NAME).unlink(missing_ok=True)
        tmp = self.log_path.with_name(LOG_NAME + ".new")
        tmp.unlink(missing_ok=True)
        append_log(tmp, [e.to_record() for e in seeds])
        if not seeds:
            tmp.touch()
        tmp.replace(self.log_path)
        self.entries, self._pending, self.scanned = seeds, [], None
        self.generation += 1
        self._head, self._head_problems, self._entries_at_last_snapshot = None, [], 0

    # ---------------------------------------------------------------------------------- answering

    def catalog_at(self, position: Position | None = None) -> tuple[Catalog, list[SchemaProblem]]:
        """The catalog for an event starting at ``position`` (None: after everything recorded),
        with the problems met on the way there."""
        if position is None:
            catalog, problems = self._head_state()
            return catalog.copy(), list(problems)
        return self._replay_until(position)

    def table_at(self, name: TableName, position: Position | None = None) -> TableSchema | None:
        """The table's columns for an event at ``position``; None if the history has no such table."""
        table = self.catalog_at(position)[0].table(name)
        return table.schema() if table is not None else None

    def cursor(self) -> SchemaCursor:
        """A forward-moving view for a reader that walks the store in order (a stream decoding rows)."""
        return SchemaCursor(self)

    @property
    def problems(self) -> list[SchemaProblem]:
        return list(self._head_state()[1])

    def _head_state(self) -> tuple[Catalog, list[SchemaProblem]]:
        if self._head is None:
            catalog, problems = self._replay_until(None)
            self._head, self._head_problems = catalog, problems
        return self._head, self._head_problems

    def _replay_until(self, position: Position | None) -> tuple[Catalog, list[SchemaProblem]]:
        start = None
        for snap in sorted(self._snapshots, reverse=True):
            if position is None or snap <= position:
                start = snap
                break
        if start is not None:
            doc = read_json(self._snapshots[start])
            if doc is not None:
                catalog = Catalog.from_json(doc["catalog"])
                problems = [_problem_from_json(p) for p in doc.get("problems", [])]
                first = self._count_before(start)
                return self._apply_all(catalog, problems, first, position)
        return self._apply_all(self._base(), [], 0, position)

    def _apply_all(self, catalog: Catalog, problems: list[SchemaProblem], first: int,
                   position: Position | None) -> tuple[Catalog, list[SchemaProblem]]:
        for entry in self.entries[first:]:
            if position is not None and entry.position >= position:
                break
            problems += self._apply(catalog, entry)
        return catalog, problems

    def _base(self) -> Catalog:
        """The catalog before the first entry: seeded tables and databases no earlier DDL touched."""
        base = Catalog()
        touched_tables: set[TableName] = set()
        touched_dbs: set[str] = set()
        for entry in self.entries:
            if entry.kind == "ddl":
                tables, dbs = _touched(entry.parsed)
                touched_tables |= tables
                touched_dbs |= dbs
                continue
            seed = entry.seed
            assert seed is not None
            if not base.server.charset:
                base.server = seed.server
            for db, charset in seed.databases.items():
                if db not in touched_dbs:
                    base.databases.setdefault(db, charset)
            for name, table in seed.tables.items():
                if name not in touched_tables and name.db not in touched_dbs:
                    base.tables.setdefault(name, table)
        return base

    def _apply(self, catalog: Catalog, entry: HistoryEntry) -> list[SchemaProblem]:
        if entry.kind == "seed":
            return _apply_seed(catalog, entry)
        parsed = entry.parsed
        if parsed.outcome == Outcome.IGNORED:
            return []
        if parsed.outcome == Outcome.UNKNOWN:
            catalog.mark_unknown(parsed.tables)
            if parsed.tables:
                reason = (f"the statement could not be understood ({parsed.reason}); "
                          f"{', '.join(str(t) for t in parsed.tables)} now unknown")
            else:
                reason = (f"the statement could not be understood ({parsed.reason}) and names no table binhub "
                          f"can extract: a table it changed keeps its old columns in the history")
            return [SchemaProblem(entry.position, entry.gtid, entry.sql, reason, parsed.tables)]
        out = []
        ctx = entry.context()
        for change in parsed.changes:
            for reason in catalog.apply(change, ctx):
                out.append(SchemaProblem(entry.position, entry.gtid, entry.sql, reason, _change_tables(change)))
        return out


class SchemaCursor:
    """The catalog at a position that moves forward: each step applies only the entries passed
    since the last one, so a reader asking for every TABLE_MAP pays nothing per lookup. Moving
    backwards, or the history changing other than by appending, starts over from a snapshot."""

    def __init__(self, history: SchemaHistory) -> None:
        self.history = history
        self._catalog: Catalog | None = None
        self._next = 0  # index of the first entry not applied
        self._position: Position | None = None
        self._generation = -1

    def table(self, name: TableName, position: Position) -> TableSchema | None:
        """The table's columns for an event starting at ``position``; None if it does not exist there."""
        h = self.history
        if (self._catalog is None or self._generation != h.generation
                or (self._position is not None and position < self._position)):
            self._catalog = h._replay_until(position)[0]
            self._next = h._count_before(position)
            self._generation = h.generation
        else:
            while self._next < len(h.entries) and h.entries[self._next].position < position:
                h._apply(self._catalog, h.entries[self._next])
                self._next += 1
        self._position = position
        table = self._catalog.table(name)
        return table.schema() if table is not None else None


def _apply_seed(catalog: Catalog, entry: HistoryEntry) -> list[SchemaProblem]:
    seed = entry.seed
    assert seed is not None
    if not catalog.server.charset:
        catalog.server = seed.server
    for db, charset in seed.databases.items():
        catalog.databases.setdefault(db, charset)
    problems = []
    for name, table in seed.tables.items():
        current = catalog.tables.get(name)
        if current is None or not current.known:
            catalog.tables[name] = table
            continue
        ours = [(c.name or "").casefold() for c in current.columns]
        theirs = [(c.name or "").casefold() for c in table.columns]
        if ours != theirs:
            problems.append(SchemaProblem(
                entry.position, entry.gtid, "(information_schema seed)",
                f"information_schema says {name} has columns ({', '.join(theirs)}) but the history has "
                f"({', '.join(ours)}); the history's columns are kept", (name,)))
    return problems


def _touched(parsed: ParsedStatement) -> tuple[set[TableName], set[str]]:
    tables: set[TableName] = set(parsed.tables)
    dbs: set[str] = set()
    for change in parsed.changes:
        tables |= set(_change_tables(change))
        if isinstance(change, RenameTables):
            tables |= {old for old, _ in change.pairs}
        if isinstance(change, CreateDatabase | DropDatabase | AlterDatabase):
            dbs.add(change.name)
    return tables, dbs


def _change_tables(change: Change) -> tuple[TableName, ...]:
    if isinstance(change, CreateTable | CreateTableLike):
        return (change.name,)
    if isinstance(change, AlterTable):
        return (change.name, *(a.new for a in change.actions if isinstance(a, RenameTable)))
    if isinstance(change, RenameTables):
        return tuple(new for _, new in change.pairs)
    if isinstance(change, DropTables):
        return change.names
    return ()


def _snapshot_position(doc: dict[str, Any] | None) -> Position | None:
    if doc is None or doc.get("format") != SNAPSHOT_FORMAT or "catalog" not in doc:
        return None
    try:
        return Position.of(str(doc["file"]), int(doc["pos"]))
    except (KeyError, TypeError, ValueError):
        return None


def _problem_json(p: SchemaProblem) -> dict[str, Any]:
    doc = dataclasses.asdict(p)
    doc["position"] = {"file": p.position.file, "pos": p.position.pos}
    doc["tables"] = [[t.db, t.table] for t in p.tables]
    return doc


def _problem_from_json(doc: dict[str, Any]) -> SchemaProblem:
    return SchemaProblem(Position.of(doc["position"]["file"], doc["position"]["pos"]), doc["gtid"], doc["sql"],
                         doc["reason"], tuple(TableName(d, t) for d, t in doc["tables"]))
