"""``binhub backup --logical``: a consistent, parallel dump of a running server into chunk files.

Order of work:

1. a coordinator session and N worker sessions connect; the target directory gets a manifest
   that says ``complete: false``;
2. the consistent point (``consistent.py``): commits stop, every worker opens its snapshot, the
   binlog position is read; still under the lock the tables are listed with their DDL, and the
   non-transactional tables are dumped (no snapshot protects them); then the lock is released;
3. the transactional tables are split (``chunking.py``) and the chunks read by the N workers, each
   inside its snapshot, between ``SAVEPOINT``/``ROLLBACK TO SAVEPOINT`` so a finished table's
   metadata lock is let go at once (DDL on it need not wait for the whole dump). A chunk is one
   plain ``SELECT`` over its key range, streamed: its row packets become LOAD DATA lines as they
   arrive (``tsv.py``, in C), with no Python object per value;
4. databases, views, routines, triggers, events and users are read; the manifest is rewritten
   with ``complete: true`` only now.

A DDL that changes a table after the consistent point but before its rows are read makes the read
fail (InnoDB: "table definition has changed"); the backup then stops, names the table and stays
incomplete. Nothing is ever recorded that is not on disk.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from binhub.backup.logical import catalog
from binhub.backup.logical.catalog import TableEntry, TableFilter
from binhub.backup.logical.chunking import Job, KeysetJob, RangeJob, keyset_after, plan
from binhub.backup.logical.config import LogicalBackupConfig
from binhub.backup.logical.consistent import consistent_point
from binhub.backup.logical.literals import Layout, literal_expression, quote_name
from binhub.backup.logical.manifest import ChunkRecord, LogicalManifest, TableRecord
from binhub.backup.logical.tsv import ResultLines
from binhub.backup.logical.workers import NoProgress, Progress, run_all
from binhub.backup.logical.writer import ChunkNumbers, chunk_path, write_chunk
from binhub.backup.session import ServerSession
from binhub.errors import BackupError, ConfigError, UpstreamError
from binhub.wire.errors import ErrorCode

log = logging.getLogger("binhub.backup.logical")

# Worker sessions: every value as the bytes the server holds (no conversion), timestamps in UTC.
# A long net_write_timeout: the server waits while a worker compresses and writes a finished chunk.
WORKER_SESSION = ("SET SESSION sql_mode = ''", "SET SESSION time_zone = '+00:00'",
                  "SET SESSION net_write_timeout = 3600", "SET SESSION character_set_results = binary")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Table:
    """A table being dumped: its manifest record, its columns, its chunk numbers."""

    def __init__(self, entry: TableEntry, record: TableRecord) -> None:
        self.entry = entry
        self.record = record
        self.layout = Layout.of(entry.columns)
        # A keyset page's key is read too, as literals, after the loaded columns.
        by_name = {c.name: c for c in self.layout.columns}
        self.key_literals = [literal_expression(by_name[k]) for k in entry.key] if set(entry.key) <= set(by_name) \
            else []
        self.numbers = ChunkNumbers()

    def write_chunk(self, config: LogicalBackupConfig, lines: bytearray, rows: int) -> ChunkRecord:
        """This table's next chunk file, of ``rows`` lines."""
        return write_chunk(config.target, chunk_path(self.entry.db, self.entry.name, self.numbers.take()), lines, rows,
                           level=config.compression_level)


class LogicalBackup:
    """One run of ``binhub backup --logical``. :meth:`run` returns the final manifest or raises;
    either way the target's ``manifest.json`` says whether the backup is complete."""

    def __init__(self, config: LogicalBackupConfig, progress: Progress | None = None) -> None:
        self.config = config
        self.progress: Progress = progress or NoProgress()  # counts rows
        self._lock = threading.Lock()
        self._sessions: queue.Queue[ServerSession] = queue.Queue()
        self._abort = threading.Event()

    def run(self) -> LogicalManifest:
        config = self.config
        _prepare_target(config.target)
        with ServerSession(config.source, lock_wait_timeout=config.lock_wait_timeout) as coordinator:
            version = str(coordinator.query("SELECT @@version")[0][0])
            flavour = "mariadb" if "mariadb" in version.lower() else "mysql"
            manifest = LogicalManifest(server_version=version, flavour=flavour, started_at=_now(), options={
                "parallel": config.parallel, "chunk_rows": config.chunk_rows, "include": list(config.include),
                "exclude": list(config.exclude), "format": "tsv", "compression": "zstd"})
            manifest.write(config.target)
            workers: list[ServerSession] = []
            try:
                workers = [self._worker_session() for _ in range(config.parallel)]
                self._dump(coordinator, workers, manifest)
            except BaseException as exc:
                self._abort.set()
                manifest.error = str(exc) or type(exc).__name__
                manifest.finished_at = _now()
                manifest.write(config.target)
                raise
            finally:
                for worker in workers:
                    worker.close()
        return manifest

    def _worker_session(self) -> ServerSession:
        session = ServerSession(self.config.source, lock_wait_timeout=self.config.lock_wait_timeout)
        for statement in WORKER_SESSION:
            session.execute(statement)
        return session

    def _dump(self, coordinator: ServerSession, workers: list[ServerSession], manifest: LogicalManifest) -> None:
        config = self.config
        filters = TableFilter(config.include, config.exclude)
        for worker in workers:
            self._sessions.put(worker)
        with consistent_point(coordinator, workers, version=manifest.server_version,
                              flavour=manifest.flavour) as point:
            entries = catalog.list_tables(coordinator, filters)
            tables = [_Table(e, catalog.table_record(coordinator, e)) for e in entries]
            manifest.set_binlog(point.position)
            manifest.lock = point.lock
            manifest.tables = [t.record for t in tables]
            for table in tables:
                if table.record.is_sequence:
                    catalog.read_sequence(coordinator, table.record)
            held = [t for t in tables if not t.entry.transactional and not t.record.is_sequence]
            if held:
                self.progress.phase("non-transactional tables (under the lock)",
                                    sum(t.entry.estimated_rows for t in held))
                self._run([RangeJob(t.entry) for t in held], {id(t.entry): t for t in held})
        manifest.lock_seconds = round(point.lock_seconds, 4)
        log.info("consistent point %s:%s GTID %s; writers held %.3fs", manifest.binlog_file,
                 manifest.binlog_position, manifest.gtid, manifest.lock_seconds)
        manifest.write(config.target)

        snapshot = [t for t in tables if t.entry.transactional and not t.record.is_sequence]
        jobs: list[Job] = []
        for table in sorted(snapshot, key=lambda t: -t.entry.estimated_rows):
            jobs.extend(plan(coordinator, table.entry, config.chunk_rows))
        self.progress.phase("tables", sum(t.entry.estimated_rows for t in snapshot))
        self._run(jobs, {id(t.entry): t for t in snapshot})
        for worker in workers:
            # ROLLBACK, not COMMIT: MariaDB caches the SAVEPOINTs for the binlog, and a COMMIT would write
            # them there as a transaction of the backup's own.
            worker.execute("ROLLBACK")

        manifest.databases = catalog.databases(coordinator, filters, entries)
        manifest.objects = catalog.schema_objects(coordinator, filters, [d.name for d in manifest.databases])
        if config.users:
            manifest.users = catalog.users(coordinator)
        for table in tables:
            table.record.chunks.sort(key=lambda c: c.file)
        manifest.complete = True
        manifest.finished_at = _now()
        manifest.write(config.target)

    # --- the workers --------------------------------------------------------------------------------

    def _run(self, jobs: Iterable[Job], tables: dict[int, _Table]) -> None:
        """Run every job on the worker sessions; the first failure stops the rest and is raised."""
        run_all([functools.partial(self._job, job, tables[id(job.table)]) for job in jobs], self._sessions.qsize(),
                self._abort, "dump")

    def _job(self, job: Job, table: _Table) -> None:
        if self._abort.is_set():
            return
        session = self._sessions.get()
        try:
            session.execute("SAVEPOINT binhub_chunk")
            try:
                records = self._chunks(session, job, table)
            except UpstreamError as exc:
                if exc.code in (ErrorCode.TABLE_DEF_CHANGED, ErrorCode.NO_SUCH_TABLE):
                    raise BackupError(f"{table.record.qualified} was changed by DDL during the backup "
                                      f"({exc.server_message})",
                                      hint="take the backup again when no ALTER/DROP/RENAME runs on it") from exc
                raise
            session.execute("ROLLBACK TO SAVEPOINT binhub_chunk")  # lets go of the table's metadata lock
        finally:
            self._sessions.put(session)
        with self._lock:
            table.record.chunks.extend(records)
            table.record.rows += sum(r.rows for r in records)
            table.record.sql_bytes += sum(r.sql_bytes for r in records)

    def _chunks(self, session: ServerSession, job: Job, table: _Table) -> list[ChunkRecord]:
        """Read ``job``'s rows into chunk files."""
        written: list[ChunkRecord] = []
        if isinstance(job, KeysetJob):
            self._keyset(session, job, table, written)
        else:
            self._read(session, table, job.where(), "", written)
        return written

    def _keyset(self, session: ServerSession, job: KeysetJob, table: _Table, written: list[ChunkRecord]) -> None:
        after = ""
        order = ",".join(quote_name(k) for k in table.entry.key)
        while not self._abort.is_set():
            before = len(written)
            last = self._read(session, table, after, f" ORDER BY {order} LIMIT {job.page_rows}", written)
            if sum(r.rows for r in written[before:]) < job.page_rows or last is None:
                break
            after = keyset_after(table.entry.key, [v or b"NULL" for v in last])

    def _read(self, session: ServerSession, table: _Table, where: str, tail: str,
              written: list[ChunkRecord]) -> tuple[bytes | None, ...] | None:
        """Stream one SELECT into chunk files (a new file every chunk_rows rows or chunk_bytes bytes),
        appended to ``written``; returns the key literals of the last row read (None: no row, or
        not a keyset page)."""
        config = self.config
        entry = table.entry
        keys = table.key_literals if tail else []
        sql = (f"SELECT {','.join([table.layout.select(), *keys])} FROM {entry.source}"
               + (f" WHERE {where}" if where else "") + tail)
        fields, read = session.query_packets(sql)
        result = ResultLines(read, len(table.layout.columns), fields)
        lines = bytearray()  # the next chunk's
        rows = 0
        while True:
            if self._abort.is_set():
                raise BackupError("stopped: another part of the backup failed")
            taken = result.take(config.chunk_rows - rows, lines)
            rows += taken
            self.progress.advance(taken)
            if rows and (not taken or rows >= config.chunk_rows or len(lines) >= config.chunk_bytes):
                written.append(table.write_chunk(config, lines, rows))
                lines, rows = bytearray(), 0
            if not taken:
                return result.last if keys else None


def _prepare_target(target: Path) -> None:
    if target.exists() and any(target.iterdir()):
        raise ConfigError("--to", f"{target} is not empty; a backup goes into a new or empty directory")
    target.mkdir(mode=0o700, parents=True, exist_ok=True)


__all__ = ["LogicalBackup"]
