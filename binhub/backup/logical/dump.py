"""``binhub backup --logical``: a consistent, parallel dump of a running server into chunk files.

Order of work:

1. a coordinator session and N worker sessions connect; the target directory gets a manifest
   that says ``complete: false``;
2. the consistent point (``consistent.py``): commits stop, every worker opens its snapshot, the
   binlog position is read; still under the lock the tables are listed with their DDL, and the
   non-transactional tables are dumped (no snapshot protects them); then the lock is released;
3. the transactional tables are split (``chunking.py``) and the chunks read by the N workers, each
   inside its snapshot, between ``SAVEPOINT``/``ROLLBACK TO SAVEPOINT`` so a finished table's
   metadata lock is let go at once (DDL on it need not wait for the whole dump);
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
from typing import Any

import pymysql  # type: ignore[import-untyped, unused-ignore]

from binhub.backup.logical import catalog
from binhub.backup.logical.catalog import TableEntry, TableFilter
from binhub.backup.logical.chunking import GROUP_BYTES, Job, KeysetJob, RangeJob, keyset_after, plan
from binhub.backup.logical.config import LogicalBackupConfig
from binhub.backup.logical.consistent import consistent_point
from binhub.backup.logical.literals import RowReader, RowTooLong, insert_head, quote_name
from binhub.backup.logical.manifest import ChunkRecord, LogicalManifest, TableRecord
from binhub.backup.logical.workers import NoProgress, Progress, run_all
from binhub.backup.logical.writer import ChunkNumbers, ChunkWriter, chunk_path
from binhub.backup.session import ServerSession
from binhub.errors import BackupError, ConfigError, UpstreamError
from binhub.wire.errors import ErrorCode

log = logging.getLogger("binhub.backup.logical")

# Worker sessions read every value as the bytes the server sent: no decoding, no conversion.
RAW_VALUES: dict[str, Any] = {
    "use_unicode": False,
    "max_allowed_packet": 2**30,  # the client's limit is never the one that matters: the server's is
    "conv": {k: v for k, v in pymysql.converters.conversions.items() if not isinstance(k, int)},
}
# What the literals are read under (and restored under): UTC, no NO_BACKSLASH_ESCAPES.
# A long net_write_timeout: the server waits while a worker compresses and writes a finished chunk.
# group_concat_max_len: far above a group's planned size (GROUP_BYTES), never above what the server
# sends in one packet; a group cut there is read again by row.
WORKER_SESSION = ("SET SESSION sql_mode = ''", "SET SESSION time_zone = '+00:00'",
                  "SET SESSION net_write_timeout = 3600",
                  f"SET SESSION group_concat_max_len = LEAST(@@GLOBAL.max_allowed_packet, {64 * GROUP_BYTES})")
GROUPS_PER_QUERY = 16  # groups read by one query: fewer round trips, a bounded result


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Table:
    """A table being dumped: its manifest record, its INSERT head, its chunk numbers."""

    def __init__(self, entry: TableEntry, record: TableRecord) -> None:
        self.entry = entry
        self.record = record
        self.head = insert_head(entry.name, entry.columns)
        self.reader = RowReader.for_table(record.qualified, entry.columns, entry.key, whole_row=True)
        self.numbers = ChunkNumbers()

    def new_writer(self, config: LogicalBackupConfig) -> ChunkWriter:
        """The writer of this table's next chunk file."""
        return ChunkWriter(config.target, chunk_path(self.entry.db, self.entry.name, self.numbers.take()), self.head,
                           statement_bytes=config.statement_bytes, level=config.compression_level)

    def read_by_column(self) -> None:
        """A row was too long for the server to build as one literal: from now on, read this table's
        values one column each (Python joins them)."""
        self.reader = RowReader.for_table(self.record.qualified, self.entry.columns, self.entry.key, whole_row=False)


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
                "exclude": list(config.exclude), "format": "sql-insert", "compression": "zstd"})
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
        session = ServerSession(self.config.source, lock_wait_timeout=self.config.lock_wait_timeout,
                                connect_options=RAW_VALUES)
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
            # A group is one INSERT of its own at most (half a statement: two share one, mostly).
            jobs.extend(plan(coordinator, table.entry, config.chunk_rows, min(GROUP_BYTES, config.statement_bytes // 2)))
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
                try:
                    records = self._chunks(session, job, table)
                except RowTooLong:
                    log.info("%s has a row longer than max_allowed_packet as one literal: reading it by column",
                             table.record.qualified)
                    table.read_by_column()
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
        """Read ``job``'s rows into chunk files; if a row is too long as one literal, the files of this
        attempt are removed and RowTooLong raised (the job is read again by column)."""
        written: list[ChunkRecord] = []
        try:
            if isinstance(job, KeysetJob):
                return self._keyset(session, job, table, written)
            if job.group_width and table.reader.whole_row:
                self._read_groups(session, table, job, written)
            else:
                self._read(session, table, job.where(), "", written)
            return written
        except RowTooLong:
            for record in written:
                (self.config.target / record.file).unlink(missing_ok=True)
            raise

    def _keyset(self, session: ServerSession, job: KeysetJob, table: _Table,
                written: list[ChunkRecord]) -> list[ChunkRecord]:
        after = ""
        order = ",".join(quote_name(k) for k in table.entry.key)
        while not self._abort.is_set():
            before = len(written)
            last = self._read(session, table, after, f" ORDER BY {order} LIMIT {job.page_rows}", written)
            if sum(r.rows for r in written[before:]) < job.page_rows or last is None:
                break
            after = keyset_after(table.entry.key, table.reader.key(last))
        return written

    def _read(self, session: ServerSession, table: _Table, where: str, tail: str,
              written: list[ChunkRecord]) -> tuple[bytes | None, ...] | None:
        """Stream one SELECT into chunk files (a new file every chunk_rows rows or chunk_bytes bytes),
        appended to ``written``; returns the last row read (None: no row)."""
        config = self.config
        entry = table.entry
        reader = table.reader
        sql = (f"SELECT {reader.select} FROM {entry.source}"
               + (f" WHERE {where}" if where else "") + tail)
        writer: ChunkWriter | None = None
        last: tuple[bytes | None, ...] | None = None
        for batch in session.stream(sql):
            if self._abort.is_set():
                raise BackupError("stopped: another part of the backup failed")
            for row in batch:
                if writer is None:
                    writer = table.new_writer(config)
                writer.add(reader.literal(row))
                if writer.rows >= config.chunk_rows or writer.size >= config.chunk_bytes:
                    written.append(writer.close())
                    writer = None
            last = batch[-1]
            self.progress.advance(len(batch))
        if writer is not None:
            written.append(writer.close())
        return last

    def _read_groups(self, session: ServerSession, table: _Table, job: RangeJob,
                     written: list[ChunkRecord]) -> None:
        """Read a key range in groups the server packs into one result row each:
        ``SELECT COUNT(*), GROUP_CONCAT(<row literal> SEPARATOR ',\\n') ... WHERE <group>``, a few
        groups per query (UNION ALL). A group whose string does not hold exactly COUNT(*) rows (a
        row longer than max_allowed_packet is left out as NULL; a string past group_concat_max_len
        is cut) is read again row by row (:meth:`_read`)."""
        config = self.config
        entry = table.entry
        writer: ChunkWriter | None = None
        groups = job.groups()
        for start in range(0, len(groups), GROUPS_PER_QUERY):
            if self._abort.is_set():
                raise BackupError("stopped: another part of the backup failed")
            batch = groups[start:start + GROUPS_PER_QUERY]
            sql = " UNION ALL ".join(
                f"(SELECT {i}, COUNT(*), GROUP_CONCAT({table.reader.row} SEPARATOR ',\\n') FROM {entry.source}"
                + (f" WHERE {group.where()}" if group.where() else "") + ")" for i, group in enumerate(batch))
            for i, count, rows in session.query(sql):
                count = int(count)
                if not count:
                    continue
                if rows is None or not rows.endswith(b")") or rows.count(b"\n") != count - 1:
                    if writer is not None:
                        written.append(writer.close())
                        writer = None
                    self._read(session, table, batch[int(i)].where(), "", written)
                    continue
                if writer is None:
                    writer = table.new_writer(config)
                writer.add(rows, count)
                if writer.rows >= config.chunk_rows or writer.size >= config.chunk_bytes:
                    written.append(writer.close())
                    writer = None
                self.progress.advance(count)
        if writer is not None:
            written.append(writer.close())


def _prepare_target(target: Path) -> None:
    if target.exists() and any(target.iterdir()):
        raise ConfigError("--to", f"{target} is not empty; a backup goes into a new or empty directory")
    target.mkdir(mode=0o700, parents=True, exist_ok=True)


__all__ = ["LogicalBackup"]
