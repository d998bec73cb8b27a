"""``--to mysql://USER:PW@HOST:PORT``: the stream's changes applied to a MySQL/MariaDB server, exactly once.

:class:`MysqlSink` takes a stream's row changes as the decoder's records (a
:class:`~binhub.sinks.ChangeSink`: values in binhub form, no JSON in between) or binhub JSON lines
(Kafka, a jsonl directory, DDL), builds each upstream transaction's statements
(:mod:`~binhub.sinks.mysql.transaction`) against the downstream's own tables (:mod:`~binhub.sinks.mysql.catalog`) and hands the transaction to the workers through the
causality scheduler (:mod:`~binhub.sinks.mysql.scheduler`); each worker commits what it applies
together with its row of ``binhub.stream_checkpoint`` (:mod:`~binhub.sinks.mysql.checkpoint`), so a
restart resumes exactly after what the downstream holds, whatever moment it was killed at.

In the stream's own thread, on a connection of its own, the sink runs what must not overlap
anything: DDL (after every worker has drained; see :mod:`~binhub.sinks.mysql.ddl`) and
transactions too large to hold in memory (statements executed as they come, committed at the end
with slot 0 of the checkpoint).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson
import pymysql  # type: ignore[import-untyped, unused-ignore]

from binhub.binlog.changes import RowChange
from binhub.errors import ApplyError, DdlRejected
from binhub.sinks.base import Checkpoint, CheckpointSource
from binhub.sinks.mysql.catalog import Catalog
from binhub.sinks.mysql.checkpoint import (
    Resume,
    ensure_checkpoint_table,
    fold_checkpoints,
    read_resume,
    slot_sql,
)
from binhub.sinks.mysql.connection import Downstream, error_code, is_lost
from binhub.sinks.mysql.ddl import ALREADY_DONE, run_ddl
from binhub.sinks.mysql.dsn import MysqlTarget
from binhub.sinks.mysql.metrics import SinkMetrics
from binhub.sinks.mysql.options import ApplyOptions, Renames, table_passes
from binhub.sinks.mysql.scheduler import Scheduler
from binhub.sinks.mysql.transaction import Ddl, Transaction, TransactionBuilder
from binhub.sinks.mysql.worker import Worker, run_statement

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["MysqlSink"]

log = logging.getLogger(__name__)

LARGE_TRANSACTION = 32 << 20  # bytes of SQL held before a transaction is applied as it comes
_IDLE_MARK_EVERY = 1.0  # seconds: how often a mark moved by transactions with nothing to apply is saved


class MysqlSink:
    """Apply a stream to a MySQL/MariaDB server (module docstring)."""

    def __init__(self, target: MysqlTarget, name: str, options: ApplyOptions | None = None, *,
                 registry: CollectorRegistry | None = None) -> None:
        self.target = target
        self.name = name
        self.options = options = options if options is not None else ApplyOptions()
        self.renames = Renames(options.rename)
        self.skip_gtids = frozenset(options.skip_gtids)
        self.conflicts: dict[str, int] = {}
        self.metrics = SinkMetrics(name, registry)
        self.main = Downstream(target, connect_timeout=options.connect_timeout, label="main")
        self.main.reconnect(options.reconnect_for)  # the downstream may be (re)starting: wait for it a while
        ensure_checkpoint_table(self.main)
        resume = read_resume(self.main, name)
        if resume is not None:
            fold_checkpoints(self.main, name, resume)
        self._resume: Resume | None = resume
        self._already_applied = set(resume.applied) if resume is not None else set()
        self._pending_ddl = resume.pending_ddl if resume is not None else None
        self.catalog = Catalog(self.main, reconnect_for=options.reconnect_for)
        self.builder = TransactionBuilder(self.catalog, renames=self.renames, safe_mode=options.safe_mode,
                                          max_packet=self.main.max_allowed_packet)
        self.workers = [Worker(i, Downstream(target, connect_timeout=options.connect_timeout, label=f"worker {i}"),
                               options, name, self._count_conflict, self.metrics.rows.inc)
                        for i in range(options.workers)]
        self.scheduler = Scheduler(self.workers, resume.checkpoint if resume is not None else None)
        for worker in self.workers:
            worker.start(self.scheduler)
        self._skipping = False
        self._large = False  # the current transaction is being applied as it comes
        self._large_rows = 0  # its rows run so far (counted once it commits)
        self._saved_mark = self.scheduler.mark
        self._saved_at = time.monotonic()
        self.transactions = 0

    def _count_conflict(self, kind: str) -> None:
        self.conflicts[kind] = self.conflicts.get(kind, 0) + 1
        self.metrics.conflict(kind)

    # -- Sink ---------------------------------------------------------------------------------------
    def resume_point(self) -> Checkpoint | None:
        return self._resume.checkpoint if self._resume is not None else None

    def write(self, data: bytes) -> None:
        """binhub JSON lines: a stream's DDL, or changes from Kafka or a jsonl directory."""
        self.scheduler.check()
        builder = self.builder
        for line in data.splitlines():
            doc = orjson.loads(line)
            if not self._skips(doc.get("gtid")):
                if builder.txn.ddl is not None and doc["op"] != "ddl":
                    self._ddl_before_rows(doc["file"], doc["pos"])
                builder.add(doc)
        self._bound()

    def write_changes(self, changes: Sequence[RowChange]) -> None:
        """A stream's row changes, straight from the decoder."""
        self.scheduler.check()
        builder = self.builder
        for change in changes:
            if not self._skips(change.gtid):
                if builder.txn.ddl is not None:
                    self._ddl_before_rows(change.file, change.pos)
                builder.add_change(change)
        self._bound()

    def _skips(self, gtid: str | None) -> bool:
        """Whether the transaction a change belongs to is skipped (decided at its first change)."""
        txn = self.builder.txn
        if not txn.statements and txn.ddl is None and not self._large and not self._skipping:
            self._skipping = gtid is not None and (gtid in self.skip_gtids or gtid in self._already_applied)
        return self._skipping

    def _bound(self) -> None:
        if self.builder.txn.size > LARGE_TRANSACTION:
            self._apply_as_it_comes(self.builder.take())

    def transaction_end(self, end: CheckpointSource) -> None:
        txn = self.builder.take()
        self.builder.reset()
        txn.checkpoint = end.checkpoint()  # every transaction's: the workers write the marks they reach
        self.scheduler.number(txn)
        self.transactions += 1
        skipping, self._skipping = self._skipping, False
        if self._large:
            self._large = False
            self._finish_large(txn)
        elif skipping or txn.ident in self._already_applied or txn.ident in self.skip_gtids:
            self._already_applied.discard(txn.ident)
            self.scheduler.skip(txn)
        elif txn.ddl is not None:
            self._run_ddl(txn, txn.ddl)
        elif not txn.statements:
            self.scheduler.skip(txn)
        else:
            self.scheduler.submit(txn)

    def commit(self) -> None:
        """Workers commit as they go; here their errors surface, and a mark moved only by
        transactions with nothing to apply is saved now and then."""
        self.scheduler.check()
        if time.monotonic() - self._saved_at >= _IDLE_MARK_EVERY:
            self._save_idle_mark()

    def close(self) -> None:
        try:
            # A worker's error that came after the stream last looked is raised here (drain raises
            # it): the stream must not end as if everything had been applied.
            if not self.scheduler.error_raised:
                self.scheduler.drain()
                self._save_idle_mark()
        finally:
            for worker in self.workers:
                worker.stop()
            self.main.rollback()
            self.main.close()

    # -- what runs in the stream's thread -------------------------------------------------------------
    def _save_idle_mark(self) -> None:
        self._saved_at = time.monotonic()
        if self._large or any(w.load for w in self.workers):
            return  # a large transaction holds the main connection: slot 0 commits with its end
        mark = self.scheduler.mark
        if mark is None or mark == self._saved_mark:
            return
        self._commit_slot0(mark)

    def _apply_as_it_comes(self, part: Transaction) -> None:
        """A transaction past LARGE_TRANSACTION: everything before it drains, then its statements
        run here as they are built; it commits at its end (``_finish_large``)."""
        if not self._large:
            self.scheduler.drain()
            self._large = True
            log.info("a transaction of more than %d MiB (GTID %s): applied as it is read", LARGE_TRANSACTION >> 20,
                     part.gtid)
        self._run_here(part)
        self._large_rows += part.rows

    def _run_here(self, txn: Transaction) -> None:
        try:
            for st in txn.statements:
                run_statement(self.main, st, self.options.on_conflict, self._count_conflict)
        except pymysql.err.MySQLError as exc:
            self.main.rollback()
            raise ApplyError(f"the downstream refused a change of GTID {txn.gtid}: {exc}",
                             hint="the stream resumes from the downstream's checkpoint when started again") from exc

    def _finish_large(self, txn: Transaction) -> None:
        self._run_here(txn)
        self._commit_slot0(txn.checkpoint)
        self.metrics.rows.inc(self._large_rows + txn.rows)
        self._large_rows = 0
        self.scheduler.skip(txn)

    def _commit_slot0(self, mark: Checkpoint | None, pending_ddl: str | None = None) -> None:
        """Slot 0's row in a transaction of its own (the main connection holds nothing else then)."""
        # Transactions of the previous run applied past the mark and not reached yet stay listed.
        applied = sorted(self._already_applied)

        def upsert() -> None:
            self.main.execute(slot_sql(self.name, 0, mark, applied, pending_ddl))
            self.main.commit()
        try:
            self.main.retrying(upsert, self.options.reconnect_for)
        except pymysql.err.MySQLError as exc:
            self.main.rollback()
            raise ApplyError(f"cannot write the checkpoint to the downstream {self.target}: {exc}") from exc
        if pending_ddl is None:
            self._saved_mark = mark

    def _run_ddl(self, txn: Transaction, ddl: Ddl) -> None:
        self._execute_ddl(ddl, txn.ident)
        self._commit_slot0(txn.checkpoint)
        self.scheduler.skip(txn)

    def _ddl_before_rows(self, first_file: str, first_pos: int) -> None:
        """A transaction whose DDL is followed by rows: CREATE … SELECT logged row-based (a CREATE
        TABLE, then the rows, one GTID). The DDL runs now, so the rows find their table; the rows
        are then applied as they come and committed with the checkpoint at the transaction's end
        (``_finish_large``), which also clears the DDL's pending mark."""
        txn = self.builder.txn
        ddl, txn.ddl = txn.ddl, None
        assert ddl is not None
        if txn.statements:
            raise ApplyError(f"the transaction {txn.gtid} holds row changes before its DDL, which binhub cannot "
                             f"apply in order (the DDL commits implicitly): {ddl.sql}",
                             hint=f"apply it by hand, then {self.options.restart_skipping(str(txn.gtid))}")
        # Without a GTID the end position is not known yet: the first row's place names it, run after run.
        self._execute_ddl(ddl, txn.gtid or f"{first_file}:{first_pos}")
        self._large = True

    def _execute_ddl(self, ddl: Ddl, ident: str) -> None:
        """Every worker drained, the DDL recorded as pending in slot 0, then run (renamed)."""
        self.scheduler.drain()
        if not self._kept(ddl, ident):
            return
        sql = self._statement(ddl, ident)
        self._commit_slot0(self.scheduler.mark, pending_ddl=ident)
        default_db = self.renames.database(str(ddl.session.get("db") or ""))
        try:
            try:
                run_ddl(self.main, sql, ddl.session, default_db)
            except pymysql.err.MySQLError as exc:
                if not is_lost(exc):
                    raise
                # Whether it ran is unknown: it is pending, so run again it may find itself done.
                self._pending_ddl = ident
                self.main.reconnect(self.options.reconnect_for)
                run_ddl(self.main, sql, ddl.session, default_db)
        except pymysql.err.MySQLError as exc:
            if ident == self._pending_ddl and error_code(exc) in ALREADY_DONE:
                log.warning("the DDL of %s had already run before the sink stopped (%s): counted as done", ident, exc)
            else:
                raise DdlRejected(f"the downstream refused the DDL of GTID {ident}: {exc}; the statement: {sql}",
                                  hint=f"make the downstream accept it (or run an equivalent by hand), then restart; "
                                       f"or skip the transaction: {self.options.restart_skipping(ident)}") from exc
        finally:
            self.builder.forget_tables()
        self._pending_ddl = None

    def _kept(self, ddl: Ddl, ident: str) -> bool:
        """Whether the DDL concerns the tables --include/--exclude keep: the stream passes a DDL that
        names any of them; one that also names tables left out cannot be applied in part."""
        include, exclude = self.options.include, self.options.exclude
        if not include and not exclude:
            return True
        from binhub.sinks.mysql.ddl_names import UncertainDdl, ddl_names  # sqlglot: loaded when needed only

        try:
            names = ddl_names(ddl.sql, str(ddl.session.get("db") or ""))
        except UncertainDdl:
            return True  # the stream judged it by the tables the schema parser found
        tables = sorted({(r.db, r.table) for r in names if r.table is not None})
        out = [f"{db}.{table}" for db, table in tables if not table_passes(include, exclude, db, table)]
        if not out:
            return True
        if len(out) == len(tables):
            log.info("the DDL of %s names only tables --include/--exclude leave out: not applied", ident)
            return False
        raise DdlRejected(f"the DDL of {ident} names tables --include/--exclude leave out ({', '.join(out)}) "
                          f"beside tables they keep, and binhub does not apply part of a statement: {ddl.sql}",
                          hint=f"run its part for the kept tables downstream by hand, then "
                               f"{self.options.restart_skipping(ident)}")

    def _statement(self, ddl: Ddl, ident: str) -> str:
        """The DDL's text with the tables and databases --rename maps elsewhere renamed."""
        if not self.renames:
            return ddl.sql
        from binhub.sinks.mysql.ddl_names import UncertainDdl, rename_ddl  # sqlglot: loaded when needed only

        try:
            return rename_ddl(ddl.sql, str(ddl.session.get("db") or ""), self.renames)
        except UncertainDdl as exc:
            raise DdlRejected(f"the DDL of {ident} may name a table or database that --rename maps elsewhere, and "
                              f"binhub cannot rename it with certainty: {exc}; the statement: {ddl.sql}",
                              hint=f"run the equivalent DDL downstream by hand, then "
                                   f"{self.options.restart_skipping(ident)}") from None

    def stats(self) -> dict[str, Any]:
        return {"transactions": self.transactions, "conflicts": dict(self.conflicts)}
