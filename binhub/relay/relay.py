"""The relay: connect to the upstream as a replica and store its binlog, durably and byte for byte.

One long-running service. ``_run`` is a reconnect loop with capped exponential backoff around
``_session``: connect → probe → choose the start → register → COM_BINLOG_DUMP → pump events into
the store. The per-event work on each batch (CRCs, transaction boundaries, appends) is
:class:`~binhub.relay.ingest.Ingest`'s. Group commit runs beside the pump: while one fsync is in
flight, newly arrived transactions pile up and the next fsync covers them all.

The relay always dumps whole files from the file's start (or resumes where the store ends), so
every stored file is the upstream's file. What is not file content (artificial events,
heartbeats, the FDE the server repeats when a dump resumes mid-file) is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from binhub.binlog.transaction import TransactionTracker
from binhub.errors import (
    AuthenticationFailed,
    BinhubError,
    ChecksumMismatch,
    ConnectionFailed,
    DiskFull,
    EndOfDump,
    ProtocolError,
    UpstreamError,
)
from binhub.net.client import UpstreamConnection
from binhub.relay.config import RelayConfig
from binhub.relay.ingest import EventBatch, Ingest
from binhub.relay.metrics import RelayMetrics
from binhub.relay.session_setup import (
    check_identity,
    prepare_dump,
    record_source,
    record_variables,
    ssl_context,
    start_position,
)
from binhub.relay.upstream import UpstreamInfo, probe
from binhub.store.store import BinlogStore, FinishedFile, file_seq
from binhub.wire.errors import ErrorCode

LOG = logging.getLogger("binhub.relay")

# With durability rotate, an fsync off the event loop every this many bytes keeps the disk busy
# while events arrive, instead of one long fsync that stalls the pump at every rotation.
WRITE_BEHIND_BYTES = 32 * 1024 * 1024

# Upstream errors that no reconnect can fix.
FATAL_CODES = frozenset((ErrorCode.ACCESS_DENIED_ERROR, ErrorCode.DBACCESS_DENIED_ERROR,
                         ErrorCode.SPECIFIC_ACCESS_DENIED_ERROR, ErrorCode.TABLEACCESS_DENIED_ERROR,
                         ErrorCode.NO_BINARY_LOGGING, ErrorCode.MASTER_FATAL_ERROR_READING_BINLOG,
                         ErrorCode.SLAVE_SAME_ID))
MYSQL_DUP_SERVER_ID_TEXT = "same server_uuid/server_id"

# How long a relay on a full disk waits at most between attempts: the operator frees space and
# expects the relay to notice soon.
DISK_FULL_MAX_BACKOFF = 5.0
# The shortest silence (no event, no heartbeat, no byte) after which the upstream counts as gone.
MIN_SILENCE_LIMIT = 3.0

MARIADB_SEND_ANNOTATE_ROWS = 2


class RelayFatal(BinhubError):
    """The relay stopped for a reason reconnecting cannot fix."""


class Relay:
    """Fill a store from one upstream. ``start()``/``stop()``; ``wait()`` for one-shot runs."""

    def __init__(self, config: RelayConfig, store: BinlogStore, *, metrics: RelayMetrics | None = None) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics if metrics is not None else RelayMetrics()
        self.until_caught_up = config.until_caught_up
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._conn: UpstreamConnection | None = None
        self._ingest = Ingest(store, self.metrics)
        self._target: tuple[int, int] | None = None  # (file seq, position) for --until-caught-up
        self._caught_up = asyncio.Event()
        self._sync_wanted = asyncio.Event()
        self._sync_lock = asyncio.Lock()
        self._syncer: asyncio.Task[None] | None = None
        self._sealing: asyncio.Task[None] | None = None  # the last finished file's seal (see _close_finished_file)
        self._seal_error: BaseException | None = None
        self._ack_wanted = False
        self._write_behind_mark = 0  # self.bytes at the last write-behind fsync (durability rotate)
        self._sessions = 0
        self._reconnects = 0
        self._last_error: str = ""
        self._connected = False
        self._info: UpstreamInfo | None = None

    # ------------------------------------------------------------------ lifecycle

    # What was stored so far, counted by the ingest (read by status() and the tests).
    @property
    def transactions(self) -> int:
        return self._ingest.transactions

    @property
    def bytes(self) -> int:
        return self._ingest.bytes

    @property
    def events(self) -> int:
        return self._ingest.events

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="relay")

    async def stop(self) -> None:
        """Stop reading, make everything received durable, write the state."""
        self._stopping = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, BinhubError):
                await self._task
        await self._wait_sealed()
        self._finish_durably()

    async def wait(self) -> None:
        """Until the relay ends by itself (caught up, or a fatal error, which is raised)."""
        assert self._task is not None
        await self._task

    def status(self) -> dict[str, Any]:
        info = self._info
        return {
            "connected": self._connected,
            "upstream": {"version": info.version, "flavour": info.flavour, "server_id": info.server_id}
            if info else None,
            "file": self.store.current_file,
            "position": self.store.position,
            "transactions": self.transactions,
            "events": self.events,
            "bytes": self.bytes,
            "reconnects": self._reconnects,
            "lag_seconds": self._lag(),
            "last_gtid": self.store.last_durable_gtid,
            "last_error": self._last_error,
            "caught_up": self._caught_up.is_set() or (self._connected and self._reached(self._ingest.upstream_end)),
        }

    # ------------------------------------------------------------------ reconnect loop

    async def _run(self) -> None:
        initial_backoff = backoff = 0.2
        try:
            while not self._stopping:
                sessions_before = self._sessions
                disk_full = False
                try:
                    await self._session()
                    if self._caught_up.is_set():
                        return
                    raise ConnectionFailed("the upstream ended the binlog dump")
                except asyncio.CancelledError:
                    raise
                except BinhubError as exc:
                    fatal = self._fatal(exc)
                    if fatal is not None:
                        self._last_error = str(fatal)
                        raise fatal from exc
                    self._last_error = str(exc)
                    # A full disk is not fixed by a quick retry: keep backing off (every session
                    # gets going before its first write fails), but not so far that freed space
                    # is noticed late.
                    disk_full = isinstance(exc, DiskFull)
                    if self._sessions > sessions_before and not disk_full:
                        backoff = initial_backoff  # the last session got going: start the backoff again
                    level = logging.ERROR if disk_full else logging.WARNING
                    LOG.log(level, "relay interrupted: %s; reconnecting in %.1fs", exc, backoff)
                except OSError as exc:
                    self._last_error = str(exc)
                    if self._sessions > sessions_before:
                        backoff = initial_backoff
                    LOG.warning("relay interrupted: %s; reconnecting in %.1fs", exc, backoff)
                finally:
                    self._connected = False
                    self.metrics.connected.set(0)
                    await self._end_session()
                self._reconnects += 1
                self.metrics.reconnects.inc()
                await asyncio.sleep(backoff)
                cap = self.config.reconnect_max_backoff
                backoff = min(backoff * 2, min(cap, DISK_FULL_MAX_BACKOFF) if disk_full else cap)
        finally:
            await self._wait_sealed()
            self._finish_durably()

    def _fatal(self, exc: BinhubError) -> BinhubError | None:
        """None if reconnecting may help; otherwise the error to stop with."""
        if isinstance(exc, AuthenticationFailed):
            return exc
        if isinstance(exc, UpstreamError):
            if exc.code == ErrorCode.SLAVE_SAME_ID or MYSQL_DUP_SERVER_ID_TEXT in exc.server_message:
                return RelayFatal(
                    f"another replica connected to the upstream with binhub's server_id "
                    f"{self.config.server_id}, and the upstream ended binhub's dump (error {exc.code}: "
                    f"{exc.server_message})",
                    hint="give binhub a server_id no other replica uses (--server-id / relay.server_id)")
            if exc.code in FATAL_CODES:
                return exc
            return None
        if isinstance(exc, ConnectionFailed):
            if self.until_caught_up and self._sessions == 0:
                return exc  # a one-shot run fails fast when the upstream cannot be reached at all
            return None
        if isinstance(exc, DiskFull | ChecksumMismatch):
            return None
        if isinstance(exc, EndOfDump):
            # The relay never asks for a non-blocking dump: an EOF means the upstream is shutting
            # down (a clean restart), and it will be back.
            return None
        if isinstance(exc, ProtocolError) and self._sessions:
            return None
        return exc

    # ------------------------------------------------------------------ one session

    async def _session(self) -> None:
        cfg = self.config
        src = cfg.source
        self._conn = conn = await UpstreamConnection.connect(
            src.host, src.port, src.user, src.password, ssl=ssl_context(cfg),
            ssl_optional=cfg.ssl_mode == "preferred", compress=cfg.compress,
            connect_timeout=cfg.connect_timeout, attrs={"program_name": "binhub", "_client_role": "binary_log_listener"})
        if cfg.compress and conn.compression is None:
            LOG.warning("compress is on but the upstream %s:%d offers no compressed protocol: relaying uncompressed",
                        src.host, src.port)
        self._info = info = await probe(conn, is_mariadb=conn.is_mariadb, user=src.user)
        if info.binlog_format.upper() != "ROW" and self._sessions == 0:
            LOG.warning("the upstream's binlog_format is %s, not ROW: relayed as is, but streams (CDC) need ROW",
                        info.binlog_format)
        with self.store.state_batch():  # one state write for all of the session's records, before the dump
            check_identity(self.store, info)
            record_source(self.store, cfg, tls=conn.tls)
            record_variables(self.store, info)
            if info.encrypted and not self.store.state.encrypted_upstream:
                LOG.warning("the upstream encrypts its binlogs (encrypt_binlog=ON): binhub stores the decrypted "
                            "events, so the stored files are not byte-identical to the upstream's encrypted files")
                self.store.update_state(encrypted_upstream=True)
            file, position = await start_position(cfg, self.store, conn, info)
            await prepare_dump(cfg, self.store, conn, info)
        self._ingest.upstream_end = (file_seq(info.current_file), info.current_position)
        if self.until_caught_up and self._target is None:
            self._target = self._ingest.upstream_end
        self._ingest.checksum_size = 4 if info.checksum == "CRC32" else 0
        try:
            await conn.register_replica(cfg.server_id)
            if cfg.semi_sync and await conn.enable_semisync():
                LOG.info("semi-sync replication is on: transactions are acknowledged once durable")
            flags = MARIADB_SEND_ANNOTATE_ROWS if info.flavour == "mariadb" else 0
            await conn.start_binlog_dump(file, position, cfg.server_id, flags)
        except UpstreamError as exc:
            # Already authenticated: "access denied" here means a missing privilege, not a password.
            if exc.code in (ErrorCode.ACCESS_DENIED_ERROR, ErrorCode.SPECIFIC_ACCESS_DENIED_ERROR):
                raise RelayFatal(
                    f"the upstream user {src.user!r} lacks the REPLICATION SLAVE privilege needed to read "
                    f"the binlog (server said: {exc.server_message})",
                    hint=f"GRANT REPLICATION SLAVE ON *.* TO {src.user!r}") from exc
            raise
        LOG.info("relaying from %s:%d (%s %s%s), starting at %s:%d", src.host, src.port, info.flavour, info.version,
                 f", compressed {conn.compression}" if conn.compression else "", file, position,
                 extra={"upstream": f"{src.host}:{src.port}", "file": file})
        self._sessions += 1
        self._connected = True
        self.metrics.connected.set(1)
        self._ingest.tracker = TransactionTracker()
        self._syncer = asyncio.create_task(self._sync_loop(), name="relay-sync")
        if self._reached_target():
            await self._commit_now()
            self._caught_up.set()
            return
        await self._pump(conn)

    async def _end_session(self) -> None:
        await self._wait_sealed()
        self._seal_error = None  # this session ends anyway; the store is back where a new one starts
        if self._syncer is not None:
            self._syncer.cancel()
            with contextlib.suppress(asyncio.CancelledError, BinhubError):
                await self._syncer
            self._syncer = None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None
        with contextlib.suppress(BinhubError, OSError):
            self.store.rollback_to_boundary()

    # ------------------------------------------------------------------ the pump

    async def _pump(self, conn: UpstreamConnection) -> None:
        store = self.store
        ingest = self._ingest
        while not self._stopping:
            events = await self._read_events(conn)
            if self._seal_error is not None:
                raise self._seal_error  # the previous file could not be made durable: start again from it
            done, count = 0, len(events)
            while done < count:
                # One call per batch (not per event): the loop's state stays in locals.
                done, closed = ingest.store_batch(events, done)
                if closed:
                    # A file ended inside this batch: make it whole on disk before the next one begins.
                    await self._close_finished_file()
            # In this thread: writing the batch from a worker thread while the loop parses the next
            # one was measured slower (GIL hand-offs, fresh buffers), see bench/RESULTS.md.
            store.flush()
            self.metrics.lag.set(self._lag())
            if conn.last_ack_requested:
                self._ack_wanted = True
            if self.config.semi_sync or self.store.durability.mode != "rotate":
                self._sync_wanted.set()
            elif ingest.bytes - self._write_behind_mark >= WRITE_BEHIND_BYTES:
                # rotate: start writeback now, off the loop, so the fsync at the file's end has little left
                self._write_behind_mark = ingest.bytes
                self._sync_wanted.set()
            if self._reached_target():
                await self._commit_now()
                if self._seal_error is not None:
                    raise self._seal_error
                self._caught_up.set()
                return

    async def _read_events(self, conn: UpstreamConnection) -> EventBatch:
        """The next batch; a connection silent for longer than a few heartbeat periods is dead.

        A network cut need not close the socket (no FIN, no RST reaches us): without this the relay
        would wait forever. Bytes still trickling in (one huge event on a slow link) count as life.
        """
        if conn.events_ready:
            return await conn.read_events()  # nothing to wait for: no timer to arm and cancel (per batch)
        limit = max(3 * self.config.heartbeat_period, MIN_SILENCE_LIMIT)
        while True:
            seen = conn.received_bytes
            try:
                async with asyncio.timeout(limit):
                    return await conn.read_events()
            except TimeoutError:
                if conn.received_bytes == seen:
                    raise ConnectionFailed(
                        f"the upstream sent nothing, not even a heartbeat, for {limit:g}s",
                        hint="the network or the upstream hangs; binhub reconnects by itself") from None

    async def _close_finished_file(self) -> None:
        store = self.store
        closed, next_file = store.current_file, store.next_file
        await self._wait_sealed()  # the previous file's: long done, but after a file of a few events
        if self._seal_error is not None:
            raise self._seal_error
        if not next_file or store.retention is not None:
            # After STOP (no next file), or when a purge follows (it rewrites gtid.index, which the
            # pump appends to): closed in a worker thread while the pump waits and the protocol keeps reading.
            async with self._sync_lock:
                await asyncio.to_thread(self._close_and_begin, next_file)
            LOG.info("binlog file complete: %s", closed, extra={"file": closed})
            return
        # The file's end costs ~6 fsyncs (the file, gtid.index, the index listing the next file,
        # state.json and their directories): made in a worker thread while the pump goes on into the
        # next file. Nothing in the next file is published before (the store's sync_target says so).
        finished = store.finish_file()
        store.begin_file(next_file, listed=False)
        self._sealing = asyncio.create_task(self._seal(finished, next_file), name="relay-seal")

    async def _seal(self, finished: FinishedFile, next_file: str) -> None:
        """Make a finished file durable; a failure is kept for the pump, which raises it next."""
        name = finished.file.name
        # After a group commit in flight: it may still publish a position in the finished file.
        async with self._sync_lock:
            try:
                await asyncio.to_thread(self.store.seal_file, finished, next_file)
            except (BinhubError, OSError) as exc:
                # Back to before the ROTATE, in the loop's thread while the pump waits: the next
                # session fetches the file after the finished one again.
                self.store.unfinish_file(finished)
                self._seal_error = exc
                return
        LOG.info("binlog file complete: %s", name, extra={"file": name})

    async def _wait_sealed(self) -> None:
        """Until the last finished file's seal is over (it never raises: its error is kept for the pump)."""
        sealing = self._sealing
        if sealing is not None:
            await asyncio.shield(sealing)  # a stop that cancels this wait leaves it for the next one
            if self._sealing is sealing:
                self._sealing = None

    def _close_and_begin(self, next_file: str) -> None:
        self.store.close_file()
        if next_file:  # empty after a STOP event: the upstream shut down, its next file is unknown
            self.store.begin_file(next_file)

    # ------------------------------------------------------------------ group commit

    async def _sync_loop(self) -> None:
        """One fsync at a time; each covers every transaction that arrived while the previous one ran."""
        store = self.store
        mode = store.durability
        while True:
            await self._sync_wanted.wait()
            self._sync_wanted.clear()
            if mode.mode == "interval":
                await asyncio.sleep(mode.interval_ms / 1000)
            async with self._sync_lock:
                if mode.mode == "rotate" and not self.config.semi_sync:
                    # Write-behind only: nothing becomes visible before the file is complete.
                    await asyncio.to_thread(store.fsync)
                    continue
                # Take the ack request together with the target, with no await between: a request
                # that arrives during this fsync belongs to bytes after this target and must wait
                # for the next one, or its transaction would never be acknowledged.
                ack = self._ack_wanted
                self._ack_wanted = False
                target = store.sync_target()
                if target is not None:
                    await asyncio.to_thread(store.fsync, target)
                    store.publish(target)
                    if store.last_durable_gtid:
                        self.metrics.set_last_gtid(store.last_durable_gtid)
                else:
                    # Already durable (a file closed at ROTATE is fsynced by the pump itself).
                    target = store.durable_position
            if ack and target is not None and self._conn is not None:
                await self._conn.send_semisync_ack(target.file, target.position)

    async def _commit_now(self) -> None:
        async with self._sync_lock:
            await asyncio.to_thread(self.store.commit)

    def _reached_target(self) -> bool:
        return self._reached(self._target)

    def _reached(self, target: tuple[int, int] | None) -> bool:
        """Whether the store holds the upstream's binlog up to ``target`` (file seq, position)."""
        if target is None or self.store.current_file is None:
            return False
        seq = file_seq(self.store.current_file)
        tseq, tpos = target
        if self.store.current_finished and seq >= tseq:
            return True
        return seq > tseq or (seq == tseq and self.store.position >= tpos)

    def _finish_durably(self) -> None:
        with contextlib.suppress(BinhubError, OSError):
            self.store.rollback_to_boundary()
            self.store.commit()

    def _lag(self) -> float:
        last_event_ts = self._ingest.last_event_ts
        if not last_event_ts:
            return 0.0
        return max(0.0, time.time() - last_event_ts)


__all__ = ["Relay", "RelayFatal"]
