"""``binhub restore BACKUP --to mysql://...`` of a logical backup: schema, then the chunks in parallel,
then (optionally) the secondary indexes, then users, views, routines, triggers and events.

Before anything is touched on the target: the manifest must say ``complete: true``, every chunk
file must have its recorded size and CRC-32C (a bad one is named), the databases of the backup
must not exist there with tables in them. A chunk is loaded by ``LOAD DATA LOCAL INFILE``, its
lines streamed from memory (no file on the target's side, none written here), in parts of about
``part_bytes``: each part is one transaction, which also counts it in the target's
``binhub.logical_restore_chunks`` (``ledger.py``), in a session with ``foreign_key_checks=0``,
``unique_checks=0``, ``check_constraint_checks=0``, the binlog off (unless asked), UTC and
``NO_AUTO_VALUE_ON_ZERO`` (the rows were read under the same settings). Triggers are created after
the rows are in, so none fires during the load. A backup of format 1 (INSERT statements in
``.sql.zst`` chunks) loads as it was written: statement by statement, each a transaction, and the
target's ``max_allowed_packet`` must hold the longest.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

from binhub.backup.config import ServerAddress
from binhub.backup.logical.config import DEFAULT_PARALLEL, LogicalRestoreConfig
from binhub.backup.logical.ledger import RestoreLedger, RestoreState
from binhub.backup.logical.literals import Layout, in_list, quote_name
from binhub.backup.logical.manifest import ChunkRecord, LogicalManifest, SchemaObject, TableRecord
from binhub.backup.logical.tsv import split_parts
from binhub.backup.logical.workers import NoProgress, Progress, run_all
from binhub.backup.session import ServerSession
from binhub.errors import BackupError, UpstreamError
from binhub.innodb import crc32c
from binhub.wire.errors import ErrorCode

log = logging.getLogger("binhub.backup.logical")

_LOAD_ATTEMPTS = 5  # a chunk a deadlock or lock wait rolled back is loaded again, this many times in all
_RETRIED = frozenset({ErrorCode.LOCK_DEADLOCK, ErrorCode.LOCK_WAIT_TIMEOUT})

RESTORE_SQL_MODE = "NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION"
# Format 1's chunks: INSERT statements, each ending a line with ";"; the first sets the session.
SQL_SUFFIX = ".sql.zst"
STATEMENT_END = b";\n"
LOCAL_INFILE_REFUSED = frozenset({1148, 4166})  # ER_NOT_ALLOWED_COMMAND, ER_LOAD_INFILE_CAPABILITY_DISABLED
# Secondary index lines of SHOW CREATE TABLE that can be added after the rows (FULLTEXT and SPATIAL stay).
DEFERRABLE_KEYS = ("  KEY ", "  UNIQUE KEY ")
VIEW_RETRY_ERRORS = (ErrorCode.NO_SUCH_TABLE, ErrorCode.VIEW_INVALID)  # a view over a view not created yet
PYTHON_CODECS = {"utf8mb4": "utf-8", "utf8mb3": "utf-8", "utf8": "utf-8", "latin1": "cp1252", "ascii": "ascii",
                 "binary": "utf-8"}


@dataclass(slots=True)
class LogicalRestoreResult:
    """What a restore did, and where the restored data stands in the source's binlog."""

    tables: int
    rows: int
    chunks: int
    objects: int
    users: int
    seconds: float
    gtid: str | None
    binlog_file: str | None
    binlog_position: int | None
    skipped_users: list[str] = field(default_factory=list)  # accounts the target already had


def restore_logical(backup: Path, target: ServerAddress, *, parallel: int = DEFAULT_PARALLEL,
                    indexes_after: bool = True, binlog: bool = False, users: bool = True, resume: bool = False,
                    progress: Progress | None = None) -> LogicalRestoreResult:
    """Restore the logical backup in ``backup`` into the server at ``target`` (see the module docstring)."""
    config = LogicalRestoreConfig(backup, target, parallel=parallel, indexes_after=indexes_after, binlog=binlog,
                                  users=users, resume=resume)
    return LogicalRestore(config, progress).run()


def verify_chunks(backup: Path, manifest: LogicalManifest, progress: Progress | None = None) -> None:
    """Every chunk file has its recorded size and CRC-32C; the first that does not is named."""
    for table in manifest.tables:
        for chunk in table.chunks:
            read_chunk(backup, chunk)
            if progress is not None:
                progress.advance(chunk.bytes)


def read_chunk(backup: Path, chunk: ChunkRecord) -> bytes:
    path = backup / chunk.file
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BackupError(f"chunk {chunk.file} is missing from {backup}", hint="the backup is damaged") from None
    if len(data) != chunk.bytes or f"{crc32c(data):08x}" != chunk.crc32c:
        raise BackupError(f"chunk {chunk.file} is corrupted: {len(data)} bytes with CRC-32C {crc32c(data):08x}, "
                          f"the manifest says {chunk.bytes} bytes with {chunk.crc32c}",
                          hint="the backup is damaged; restore another one")
    return data


def key_name(definition: str) -> str:
    """The name of a key definition from :func:`split_secondary_keys` (``UNIQUE KEY `a``b` (...)``: a`b)."""
    match = re.match(r"(?:UNIQUE )?KEY `((?:[^`]|``)*)`", definition)
    if match is None:
        raise ValueError(f"not a key definition: {definition}")
    return match.group(1).replace("``", "`")


def split_secondary_keys(create: str) -> tuple[str, list[str]]:
    """``CREATE TABLE`` without its plain and unique secondary keys, and those key definitions."""
    lines = create.split("\n")
    end = max(i for i, line in enumerate(lines) if line.startswith(")"))
    body = [line.rstrip(",") for line in lines[1:end]]
    keys = [line.strip() for line in body if line.startswith(DEFERRABLE_KEYS)]
    kept = [line for line in body if not line.startswith(DEFERRABLE_KEYS)]
    return "\n".join([lines[0], ",\n".join(kept), *lines[end:]]), keys


class LogicalRestore:
    """One run of ``binhub restore`` for a logical backup: :meth:`run` checks, loads and reports."""

    def __init__(self, config: LogicalRestoreConfig, progress: Progress | None = None) -> None:
        self.config = config
        self.progress: Progress = progress or NoProgress()  # counts chunk bytes
        self._sessions: queue.Queue[ServerSession] = queue.Queue()
        self._abort = threading.Event()
        self._lock = threading.Lock()
        self._left: dict[int, int] = {}  # chunks still to load, by id(table)
        self._deferred: dict[int, list[str]] = {}  # secondary keys to add once the table is loaded
        self._ledger = RestoreLedger(config.backup)
        # What the restore this one resumes committed: chunk file -> INSERTs of it in (None: all).
        self._loaded: dict[str, int | None] = {}

    def run(self) -> LogicalRestoreResult:
        config = self.config
        started = time.monotonic()
        manifest = LogicalManifest.read(config.backup)
        if not manifest.complete:
            raise BackupError(f"{config.backup} is an incomplete backup "
                              f"({manifest.error or 'it never finished'}): it cannot be restored",
                              hint="restore a complete backup, or take a new one")
        self.progress.phase("verify", manifest.chunk_bytes)
        verify_chunks(config.backup, manifest, self.progress)
        with ServerSession(config.target, lock_wait_timeout=config.lock_wait_timeout) as admin:
            self._prepare_session(admin)
            state = self._ledger.state(admin)
            if config.resume:
                self._check_resumable(admin, manifest, state)
            else:
                self._check_target(admin, manifest, state)
                self._ledger.begin(admin, manifest.gtid)
            self._create_schema(admin, manifest)
            if config.resume:
                self._loaded = self._ledger.loaded(admin)
                self._reload_non_transactional(admin, manifest)
                log.info("resuming the restore of %s: %d of %d chunks were loaded", config.backup, len(self._whole()),
                         sum(len(t.chunks) for t in manifest.tables))
            history = any(t.is_versioned for t in manifest.tables)
            workers = [self._worker_session(history) for _ in range(config.parallel)]
            try:
                for worker in workers:
                    self._sessions.put(worker)
                self.progress.phase("load", manifest.chunk_bytes)
                self._load(manifest)
            finally:
                for worker in workers:
                    worker.close()
            skipped = self._create_users(admin, manifest) if config.users else []
            self._create_objects(admin, manifest.objects)
            self._ledger.finish(admin)
        return LogicalRestoreResult(
            tables=len(manifest.tables), rows=manifest.rows, chunks=sum(len(t.chunks) for t in manifest.tables),
            objects=len(manifest.objects), users=len(manifest.users) - len(skipped) if config.users else 0,
            seconds=time.monotonic() - started, gtid=manifest.gtid, binlog_file=manifest.binlog_file,
            binlog_position=manifest.binlog_position, skipped_users=skipped)

    # --- sessions and checks ------------------------------------------------------------------------

    def _prepare_session(self, session: ServerSession) -> None:
        statements = [f"SET SESSION sql_mode = '{RESTORE_SQL_MODE}'", "SET SESSION time_zone = '+00:00'",
                      "SET SESSION foreign_key_checks = 0", "SET SESSION unique_checks = 0"]
        if not self.config.binlog:
            statements.append("SET SESSION sql_log_bin = 0")
        for statement in statements:
            try:
                session.execute(statement)
            except UpstreamError as exc:
                if "sql_log_bin" in statement and exc.code in (ErrorCode.SPECIFIC_ACCESS_DENIED_ERROR,
                                                                ErrorCode.DBACCESS_DENIED_ERROR):
                    raise BackupError("the restore user may not turn the binlog off (SET sql_log_bin needs "
                                      "BINLOG ADMIN or SUPER)", hint="grant it, or restore with --binlog") from exc
                raise
        with contextlib.suppress(UpstreamError):  # MariaDB's: the rows passed their CHECKs on the source
            session.execute("SET SESSION check_constraint_checks = 0")

    def _worker_session(self, history: bool) -> ServerSession:
        session = ServerSession(self.config.target, lock_wait_timeout=self.config.lock_wait_timeout,
                                connect_options={"max_allowed_packet": 2**30, "local_infile": True})
        self._prepare_session(session)
        session.execute("SET SESSION autocommit = 0")
        if history:
            session.execute("SET SESSION system_versioning_insert_history = 1")
        return session

    def _check_target(self, admin: ServerSession, manifest: LogicalManifest, state: RestoreState | None) -> None:
        names = [d.name for d in manifest.databases]
        busy = [(str(db), int(n)) for db, n in admin.query(
            "SELECT TABLE_SCHEMA, COUNT(*) FROM information_schema.TABLES GROUP BY TABLE_SCHEMA")
            if str(db) in names]
        if busy:
            listed = ", ".join(f"{db} ({n} tables and views)" for db, n in busy)
            hint = "drop them or restore into another server"
            if state is not None and state.finished_at is None:
                hint = (f"a restore of this backup began there at {state.started_at} and did not finish: "
                        "add --resume to go on with it, or drop them to start again")
            raise BackupError(f"the target already has {listed}: a restore goes into databases that do not exist "
                              "or are empty", hint=hint)
        self._check_capacity(admin, manifest)

    def _check_resumable(self, admin: ServerSession, manifest: LogicalManifest, state: RestoreState | None) -> None:
        if state is None:
            raise BackupError(f"nothing to resume: no restore of {self.config.backup} was begun on the target "
                              "(binhub.logical_restores does not list it)", hint="restore it without --resume")
        if state.finished_at is not None:
            raise BackupError(f"nothing to resume: {self.config.backup} was restored into the target completely "
                              f"(finished at {state.finished_at})")
        self._check_capacity(admin, manifest)

    def _check_capacity(self, admin: ServerSession, manifest: LogicalManifest) -> None:
        """What the target must support: the history of versioned tables, LOAD DATA LOCAL, the longest
        INSERT (format 1)."""
        versioned = [t.qualified for t in manifest.tables if t.is_versioned]
        if versioned and not admin.query("SHOW VARIABLES LIKE 'system_versioning_insert_history'"):
            version = admin.query("SELECT @@version")[0][0]
            raise BackupError(f"the backup holds system-versioned tables ({', '.join(versioned)}) whose history needs "
                              f"system_versioning_insert_history, which MariaDB 10.11 introduced; the target is {version}",
                              hint="restore into MariaDB 10.11 or later, or take the backup without those tables "
                                   "(--exclude)")
        if versioned and str(admin.query("SELECT @@GLOBAL.secure_timestamp")[0][0]).upper() == "YES":
            raise BackupError(f"the backup holds system-versioned tables ({', '.join(versioned)}) whose history the "
                              "target cannot take: it runs with secure_timestamp = YES, which forbids writing "
                              "row_start/row_end", hint="restart it with secure_timestamp = NO for the restore, or take "
                                                       "the backup without those tables (--exclude)")
        if any(not c.file.endswith(SQL_SUFFIX) for t in manifest.tables for c in t.chunks) \
                and not int(admin.query("SELECT @@GLOBAL.local_infile")[0][0]):
            raise BackupError("the target has local_infile = OFF: the restore loads the chunks with LOAD DATA LOCAL "
                              "INFILE (streamed from binhub, no file on the target)",
                              hint="SET GLOBAL local_infile = ON on the target for the restore")
        longest = max((c.max_statement for t in manifest.tables for c in t.chunks), default=0)
        allowed = int(admin.query("SELECT @@GLOBAL.max_allowed_packet")[0][0])
        if longest > allowed:
            raise BackupError(f"the backup holds an INSERT of {longest} bytes but the target's max_allowed_packet is "
                              f"{allowed}", hint=f"SET GLOBAL max_allowed_packet = {longest + 1024} on the target")

    # --- schema -------------------------------------------------------------------------------------

    def _create_schema(self, admin: ServerSession, manifest: LogicalManifest) -> None:
        """Databases and tables; on a resume, those the restore cut short had not created yet. The keys
        to add after the rows: with --indexes-after, and on a resume whatever key a table still lacks."""
        for database in manifest.databases:
            admin.execute(database.create.replace("CREATE DATABASE ", "CREATE DATABASE IF NOT EXISTS ", 1)
                          if "IF NOT EXISTS" not in database.create else database.create)
        where = in_list(d.name for d in manifest.databases)
        existing = {(str(db), str(name)) for db, name in admin.query(
            f"SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA IN {where}")}
        keys_there: dict[tuple[str, str], set[str]] = {}
        for db, name, index in admin.query("SELECT TABLE_SCHEMA, TABLE_NAME, INDEX_NAME FROM information_schema."
                                           f"STATISTICS WHERE TABLE_SCHEMA IN {where}"):
            keys_there.setdefault((str(db), str(name)), set()).add(str(index))
        # Sequences first: a table's DEFAULT NEXTVAL(s) needs its sequence.
        for table in sorted(manifest.tables, key=lambda t: not t.is_sequence):
            create = table.create
            there = (table.db, table.name) in existing
            if table.chunks and _defers_keys(table) and (self.config.indexes_after or there):
                stripped, keys = split_secondary_keys(create)
                if there:
                    keys = [k for k in keys if key_name(k) not in keys_there.get((table.db, table.name), set())]
                else:
                    create = stripped
                if keys:
                    self._deferred[id(table)] = keys
            admin.execute(f"USE {quote_name(table.db)}")
            if not there:
                admin.execute(create)
            if table.is_sequence and table.sequence_next is not None:
                # mariadb-dump's DO SETVAL(s, next_not_cached_value, 0), and the cycle count it leaves out.
                admin.execute(f"DO SETVAL({quote_name(table.name)}, {table.sequence_next}, 0, "
                              f"{table.sequence_round or 0})")

    def _reload_non_transactional(self, admin: ServerSession, manifest: LogicalManifest) -> None:
        """A MyISAM/Aria table keeps the rows of a chunk cut short (no rollback): unless every chunk of
        it is listed as loaded, it is emptied and loaded again whole."""
        for table in manifest.tables:
            files = [c.file for c in table.chunks]
            if table.transactional or not files or set(files) <= self._whole():
                continue
            log.info("%s is not transactional and was loaded in part: emptied, loaded again", table.qualified)
            admin.execute(f"TRUNCATE TABLE {quote_name(table.db, table.name)}")
            self._ledger.forget(admin, files)
            for file in files:
                self._loaded.pop(file, None)

    def _create_objects(self, admin: ServerSession, objects: list[SchemaObject]) -> None:
        pending = [o for o in objects if o.kind == "VIEW"]
        while pending:  # views over views: create what can be, until nothing is left or nothing moves
            failed: list[tuple[SchemaObject, UpstreamError]] = []
            for view in pending:
                try:
                    self._create_object(admin, view)
                except UpstreamError as exc:
                    if exc.code not in VIEW_RETRY_ERRORS:
                        raise
                    failed.append((view, exc))
            if len(failed) == len(pending):
                view, error = failed[0]
                raise BackupError(f"view {view.db}.{view.name} cannot be created: {error.server_message}")
            pending = [view for view, _ in failed]
        for obj in objects:
            if obj.kind != "VIEW":
                self._create_object(admin, obj)
        admin.execute(f"SET SESSION sql_mode = '{RESTORE_SQL_MODE}'")
        admin.execute("SET NAMES utf8mb4")

    def _create_object(self, admin: ServerSession, obj: SchemaObject) -> None:
        """Create ``obj`` in the session it was made in: its sql_mode, client charset and (events) time zone."""
        admin.execute(f"USE {quote_name(obj.db)}")
        admin.execute("SET SESSION sql_mode = '" + obj.sql_mode.replace("'", "''") + "'")
        if obj.time_zone is not None:
            admin.execute("SET SESSION time_zone = '" + obj.time_zone.replace("'", "''") + "'")
        admin.execute(f"SET SESSION character_set_client = {obj.character_set_client}")
        admin.execute(f"SET SESSION collation_connection = {obj.collation_connection}")
        create = obj.create
        if self.config.resume:  # the restore cut short may have made it already
            create = re.sub(r"^CREATE ", "CREATE OR REPLACE ", create, count=1)
        try:
            admin.execute(create.encode(PYTHON_CODECS.get(obj.character_set_client.lower(), "utf-8")))
        finally:
            admin.execute("SET NAMES utf8mb4")
            admin.execute("SET SESSION time_zone = '+00:00'")

    def _create_users(self, admin: ServerSession, manifest: LogicalManifest) -> list[str]:
        existing = {(str(u), str(h)) for u, h in admin.query("SELECT User, Host FROM mysql.user")}
        created = []
        skipped = []
        for user in manifest.users:
            name = user.user if user.is_role else f"'{user.user}'@'{user.host}'"
            if (user.user, user.host) in existing:
                skipped.append(name)
                continue
            admin.execute(user.create)
            created.append(user)
        for user in created:
            for grant in user.grants:
                admin.execute(grant)
        return skipped

    # --- data ---------------------------------------------------------------------------------------

    def _load(self, manifest: LogicalManifest) -> None:
        whole = self._whole()
        jobs = [(table, chunk) for table in manifest.tables for chunk in table.chunks if chunk.file not in whole]
        jobs.sort(key=lambda job: -job[1].sql_bytes)  # the biggest first: the last ones to finish are small
        self._left = {id(t): 0 for t in manifest.tables}
        for table, _ in jobs:
            self._left[id(table)] += 1
        self.progress.advance(sum(c.bytes for t in manifest.tables for c in t.chunks if c.file in whole))
        # A table whose rows were all in before a resume still needs the keys it lacks.
        tasks = [functools.partial(self._finish_table, table) for table in manifest.tables
                 if self._left[id(table)] == 0 and id(table) in self._deferred]
        tasks += [functools.partial(self._load_chunk, table, chunk) for table, chunk in jobs]
        run_all(tasks, self.config.parallel, self._abort, "load")

    def _commit(self, session: ServerSession, table: TableRecord, chunk: ChunkRecord, load: Callable[[], None],
                done: int | None) -> None:
        """One part of ``chunk`` (``load`` runs it) and its count in the ledger, in one transaction."""
        for attempt in range(1, _LOAD_ATTEMPTS + 1):
            try:
                load()
                session.execute(self._ledger.record_sql(chunk.file, done))  # committed with the rows, or not at all
                session.execute("COMMIT")
                return
            except UpstreamError as exc:
                if exc.code in LOCAL_INFILE_REFUSED:
                    raise BackupError(f"the target refuses LOAD DATA LOCAL INFILE ({exc.server_message})",
                                      hint="SET GLOBAL local_infile = ON on the target for the restore") from exc
                # Chunks of one table load side by side: InnoDB may pick one as a deadlock victim (its
                # next-key locks meet a neighbour's). Roll the statement back and run it again.
                if exc.code not in _RETRIED or attempt == _LOAD_ATTEMPTS:
                    raise BackupError(f"loading {chunk.file} into {table.qualified} failed: {exc}") from exc
                session.execute("ROLLBACK")
                time.sleep(0.05 * attempt)

    def _whole(self) -> set[str]:
        """The chunks the restore this one resumes loaded whole."""
        return {file for file, done in self._loaded.items() if done is None}

    def _finish_table(self, table: TableRecord) -> None:
        session = self._sessions.get()
        try:
            self._add_keys(session, table)
        finally:
            self._sessions.put(session)

    def _add_keys(self, session: ServerSession, table: TableRecord) -> None:
        keys = self._deferred.get(id(table))
        if keys:
            session.execute(f"ALTER TABLE {quote_name(table.db, table.name)} " + ", ".join(f"ADD {key}" for key in keys))

    def _load_chunk(self, table: TableRecord, chunk: ChunkRecord) -> None:
        if self._abort.is_set():
            return
        data = zstandard.ZstdDecompressor().decompress(read_chunk(self.config.backup, chunk))
        session = self._sessions.get()
        try:
            session.execute(f"USE {quote_name(table.db)}")
            if chunk.file.endswith(SQL_SUFFIX):
                # The file's first statement is the session it was written for (SET NAMES ...): run each time.
                header, *inserts = [s for s in data.split(STATEMENT_END) if s]
                session.execute(header)
                parts = [functools.partial(session.execute, insert) for insert in inserts]
            else:
                statement = Layout.of(table.columns).load_data(quote_name(table.db, table.name))
                parts = [functools.partial(self._load_part, session, statement, part, chunk)
                         for part in split_parts(data, self.config.part_bytes)]
            for number in range(self._loaded.get(chunk.file) or 0, len(parts)):
                done = None if number + 1 == len(parts) else number + 1
                self._commit(session, table, chunk, parts[number], done)
            with self._lock:
                self._left[id(table)] -= 1
                last = self._left[id(table)] == 0
            if last:
                self._add_keys(session, table)
        finally:
            self._sessions.put(session)
        self.progress.advance(chunk.bytes)

    @staticmethod
    def _load_part(session: ServerSession, statement: bytes, part: memoryview, chunk: ChunkRecord) -> None:
        warnings = session.load_local(statement, part)
        if warnings:  # LOCAL turns data errors into warnings: say what they were
            shown = "; ".join(str(row[2]) for row in session.query("SHOW WARNINGS LIMIT 3"))
            log.warning("loading %s: %d warnings, e.g. %s", chunk.file, warnings, shown)


def _defers_keys(table: TableRecord) -> bool:
    return table.engine.lower() == "innodb" and "FOREIGN KEY" not in table.create


__all__ = ["LogicalRestore", "LogicalRestoreResult", "restore_logical", "verify_chunks"]
