"""The relay: connect to the upstream as a replica and store its binlog, durably and byte for byte.

One long-running service. ``_run`` is a reconnect loop with capped exponential backoff around
``_session``: connect → probe → choose the start → register → COM_BINLOG_DUMP → pump events into
the store. Group commit runs beside the pump: while one fsync is in flight, newly arrived
transactions pile up and the next fsync covers them all.

The relay always dumps whole files from the file's start (or resumes where the store ends), so
every stored file is the upstream's file. What is not file content (artificial events,
heartbeats, the FDE the server repeats when a dump resumes mid-file) is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
import zlib
from typing import TYPE_CHECKING, Any

from binhub._speedups import scan_batch
from binhub._speedups.pure import CRC32_RESIDUE
from binhub.binlog.constants import EventType
from binhub.binlog.events import fde_checksum_size
from binhub.binlog.transaction import INERT_IN_EXPLICIT, TransactionTracker
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
from binhub.relay.start import check_identity, prepare_dump, record_source, ssl_context, start_position
from binhub.relay.upstream import UpstreamInfo, probe
from binhub.store.store import BinlogStore, file_seq

if TYPE_CHECKING:
    from binhub.ops.config import RelayConfig
    from binhub.ops.metrics import Metrics

LOG = logging.getLogger("binhub.relay")

_U32 = struct.Struct("<I")
_FDE = EventType.FORMAT_DESCRIPTION
_ROTATE = EventType.ROTATE
_STOP = EventType.STOP
_HEARTBEATS = (EventType.HEARTBEAT, EventType.HEARTBEAT_V2)
_ARTIFICIAL = 0x20
# Events _store_batch leaves to _handle: rare, and each needs more than "append and track".
_SLOW_TYPES = frozenset({_FDE, _ROTATE, _STOP, *_HEARTBEATS})
# zlib.crc32 over data followed by its own little-endian CRC32 always gives this value.
_CRC32_RESIDUE = CRC32_RESIDUE
try:  # ISA-L's CRC32 (zlib's polynomial) takes ~80 ns per event where zlib's takes ~250 (bench/README.md)
    from isal.isal_zlib import crc32
except ImportError:  # the optional "fast" extra is not installed
    crc32 = zlib.crc32
# Lookup tables over a batch's type bytes: 1 marks what to find.
_SLOW_TYPE_TABLE = bytes(1 if t in _SLOW_TYPES else 0 for t in range(256))
_NOT_INERT_TABLE = bytes(0 if t in INERT_IN_EXPLICIT else 1 for t in range(256))
_IN_USE = 0x01
# With durability rotate, an fsync off the event loop every this many bytes keeps the disk busy
# while events arrive, instead of one long fsync that stalls the pump at every rotation.
WRITE_BEHIND_BYTES = 32 * 1024 * 1024

# Upstream errors that no reconnect can fix.
ER_SLAVE_SAME_ID = 4052  # MariaDB: another replica registered with our server_id
ER_MASTER_FATAL_ERROR_READING_BINLOG = 1236
FATAL_CODES = {1045, 1044, 1227, 1142, 1381, ER_MASTER_FATAL_ERROR_READING_BINLOG, ER_SLAVE_SAME_ID}
MYSQL_DUP_SERVER_ID_TEXT = "same server_uuid/server_id"

# How long a relay on a full disk waits at most between attempts: the operator frees space and
# expects the relay to notice soon.
DISK_FULL_MAX_BACKOFF = 5.0
# The shortest silence (no event, no heartbeat, no byte) after which the upstream counts as gone.
MIN_SILENCE_LIMIT = 3.0

ER_ACCESS_DENIED = 1045
ER_SPECIFIC_ACCESS_DENIED = 1227
MARIADB_SEND_ANNOTATE_ROWS = 2


class RelayFatal(BinhubError):
    """The relay stopped for a reason reconnecting cannot fix."""


class Relay:
    """Fill a store from one upstream. ``start()``/``stop()``; ``wait()`` for one-shot runs."""

    def __init__(self, config: RelayConfig, store: BinlogStore, *, metrics: Metrics | None = None,
                 until_caught_up: bool = False) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics
        self.until_caught_up = until_caught_up
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._conn: UpstreamConnection | None = None
        self._tracker = TransactionTracker()
        self._checksum_size = 4
        self._target: tuple[int, int] | None = None  # (file seq, position) for --until-caught-up
        self._caught_up = asyncio.Event()
        self._sync_wanted = asyncio.Event()
        self._sync_lock = asyncio.Lock()
        self._syncer: asyncio.Task[None] | None = None
        self._ack_wanted = False
        self._write_behind_mark = 0  # self.bytes at the last write-behind fsync (durability rotate)
        self._sessions = 0
        self._reconnects = 0
        self._last_event_ts = 0
        self._last_error: str = ""
        self._connected = False
        self._info: UpstreamInfo | None = None
        self.transactions = 0
        self.bytes = 0
        self.events = 0

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="relay")

    async def stop(self) -> None:
        """Stop reading, make everything received durable, write the state."""
        self._stopping = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, BinhubError):
                await self._task
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
            "caught_up": self._caught_up.is_set(),
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
                    if self.metrics is not None:
                        self.metrics.relay_connected.set(0)
                    await self._end_session()
                self._reconnects += 1
                if self.metrics is not None:
                    self.metrics.relay_reconnects.inc()
                await asyncio.sleep(backoff)
                cap = self.config.reconnect_max_backoff
                backoff = min(backoff * 2, min(cap, DISK_FULL_MAX_BACKOFF) if disk_full else cap)
        finally:
            self._finish_durably()

    def _fatal(self, exc: BinhubError) -> BinhubError | None:
        """None if reconnecting may help; otherwise the error to stop with."""
        if isinstance(exc, AuthenticationFailed):
            return exc
        if isinstance(exc, UpstreamError):
            if exc.code == ER_SLAVE_SAME_ID or MYSQL_DUP_SERVER_ID_TEXT in exc.server_message:
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
            ssl_optional=cfg.ssl_mode == "preferred",
            connect_timeout=cfg.connect_timeout, attrs={"program_name": "binhub", "_client_role": "binary_log_listener"})
        self._info = info = await probe(conn, is_mariadb=conn.is_mariadb, user=src.user)
        if info.binlog_format.upper() != "ROW" and self._sessions == 0:
            LOG.warning("the upstream's binlog_format is %s, not ROW: relayed as is, but streams (CDC) need ROW",
                        info.binlog_format)
        check_identity(self.store, info)
        record_source(self.store, cfg, tls=conn.tls)
        if info.encrypted and not self.store.state.encrypted_upstream:
            LOG.warning("the upstream encrypts its binlogs (encrypt_binlog=ON): binhub stores the decrypted events, "
                        "so the stored files are not byte-identical to the upstream's encrypted files")
            self.store.update_state(encrypted_upstream=True)
        file, position = await start_position(cfg, self.store, conn, info)
        if self.until_caught_up and self._target is None:
            self._target = (file_seq(info.current_file), info.current_position)
        self._checksum_size = 4 if info.checksum == "CRC32" else 0
        await prepare_dump(cfg, self.store, conn, info)
        try:
            await conn.register_replica(cfg.server_id)
            if cfg.semi_sync and await conn.enable_semisync():
                LOG.info("semi-sync replication is on: transactions are acknowledged once durable")
            flags = MARIADB_SEND_ANNOTATE_ROWS if info.flavour == "mariadb" else 0
            await conn.start_binlog_dump(file, position, cfg.server_id, flags)
        except UpstreamError as exc:
            # Already authenticated: "access denied" here means a missing privilege, not a password.
            if exc.code in (ER_ACCESS_DENIED, ER_SPECIFIC_ACCESS_DENIED):
                raise RelayFatal(
                    f"the upstream user {src.user!r} lacks the REPLICATION SLAVE privilege needed to read "
                    f"the binlog (server said: {exc.server_message})",
                    hint=f"GRANT REPLICATION SLAVE ON *.* TO {src.user!r}") from exc
            raise
        LOG.info("relaying from %s:%d (%s %s), starting at %s:%d", src.host, src.port, info.flavour, info.version,
                 file, position, extra={"upstream": f"{src.host}:{src.port}", "file": file})
        self._sessions += 1
        self._connected = True
        if self.metrics is not None:
            self.metrics.relay_connected.set(1)
        self._tracker = TransactionTracker()
        self._syncer = asyncio.create_task(self._sync_loop(), name="relay-sync")
        if self._reached_target():
            await self._commit_now()
            self._caught_up.set()
            return
        await self._pump(conn)

    async def _end_session(self) -> None:
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
        while not self._stopping:
            events = await self._read_events(conn)
            done, count = 0, len(events)
            while done < count:
                # One call per batch (not per event): the loop's state stays in locals.
                done, closed = self._store_batch(events, done)
                if closed:
                    # A file ended inside this batch: make it whole on disk before the next one begins.
                    await self._close_finished_file()
            # In this thread: writing the batch from a worker thread while the loop parses the next
            # one was measured slower (GIL hand-offs, fresh buffers), see bench/RESULTS.md.
            store.flush()
            if self.metrics is not None:
                self.metrics.relay_lag.set(self._lag())
            if conn.last_ack_requested:
                self._ack_wanted = True
            if self.config.semi_sync or self.store.durability.mode != "rotate":
                self._sync_wanted.set()
            elif self.bytes - self._write_behind_mark >= WRITE_BEHIND_BYTES:
                # rotate: start writeback now, off the loop, so the fsync at the file's end has little left
                self._write_behind_mark = self.bytes
                self._sync_wanted.set()
            if self._reached_target():
                await self._commit_now()
                self._caught_up.set()
                return

    def _store_batch(self, events: list[memoryview | bytes], start: int) -> tuple[int, bool]:
        """Store ``events[start:]`` until one closes the current file.

        Returns the index after the last event handled, and whether that event closed the file.
        This is the hot path, so the per-event work is done by C-level passes over the batch
        (:func:`binhub._speedups.scan_batch`, ``bytes.find``) and Python code runs per transaction, not per event:
        runs of ordinary events go to :meth:`_store_run`; the rare ones (FDE, ROTATE, STOP,
        heartbeats, artificial events) to :meth:`_handle`, one by one.
        """
        batch = events[start:] if start else events
        count = len(batch)
        # One C-level pass (binhub._speedups) gives the type bytes, where the rare events are (a
        # slow type, or the artificial flag) and the CRCs of the whole batch: only a batch with a
        # mismatch (or without CRCs) is checked event by event.
        types, marks, crc_ok = scan_batch(batch, _SLOW_TYPE_TABLE, crc32 if self._checksum_size else None)
        i = 0
        while i < count:
            slow = marks.find(1, i)
            if slow < 0:
                slow = count
            if slow > i:
                self._store_run(batch[i:slow], types[i:slow], crc_ok)
                i = slow
                if i == count:
                    break
            i += 1
            if self._handle(batch[slow]):
                return start + i, True
        return start + count, False

    def _store_run(self, run: list[memoryview | bytes], types: bytes, crc_ok: bool) -> None:
        """Store events that are all file content (no FDE/ROTATE/STOP, nothing artificial), in order.

        Each event's end position (log_pos) is compared with the stored copy where a transaction
        ends and where the run ends, before the transaction is marked complete: a dropped,
        duplicated or cut event shifts every later position, so it is caught there, and with
        CRCs on a mis-framed event fails its CRC first.
        """
        store = self.store
        crc = self._checksum_size
        if crc and not crc_ok:
            for ev in run:
                if crc32(ev) != _CRC32_RESIDUE:
                    self._verify(ev)  # raises ChecksumMismatch with the details
        position = store.position
        # Transaction boundaries: inside BEGIN..COMMIT, rows, table maps and annotations cannot end
        # the group, so find() jumps over them and feed() sees the few events that matter.
        tracker = self._tracker
        feed = tracker.feed
        marks = types.translate(_NOT_INERT_TABLE)
        unpack = _U32.unpack_from
        append = store.append
        mark_boundary = store.mark_boundary
        join = b"".join
        done = tracker.transactions
        txns = 0
        flushed = k = 0  # events before ``flushed`` are appended to the store
        count = len(run)
        while k < count:
            if tracker.explicit:
                k = marks.find(1, k)
                if k < 0:
                    break
            ev = run[k]
            k += 1
            if feed(ev, crc):
                append(join(run[flushed:k]))  # one append per transaction, not per event
                flushed = k
                self._check_position(ev, store.position)
                ts = unpack(ev, 0)[0]
                if tracker.transactions != done:
                    done = tracker.transactions
                    txns += 1
                    mark_boundary(tracker.last_gtid_event, ts)  # decoded later, only if needed
                else:
                    mark_boundary(None, ts)  # a control event: a boundary, but no transaction
        if flushed < count:
            append(join(run[flushed:]))
            self._check_position(run[-1], store.position)
        nbytes = store.position - position
        self._last_event_ts = unpack(run[-1], 0)[0]
        # Counters and metrics once per run, not per event (a prometheus inc takes a lock).
        self.events += count
        self.bytes += nbytes
        self.transactions += txns
        metrics = self.metrics
        if metrics is not None:
            metrics.relay_events.inc(count)
            metrics.relay_bytes.inc(nbytes)
            if txns:
                metrics.relay_transactions.inc(txns)

    def _check_position(self, ev: memoryview | bytes, position: int) -> None:
        log_pos = _U32.unpack_from(ev, 13)[0]
        if log_pos != position and log_pos:  # log_pos 0: an event without an end position
            self._position_mismatch(ev[4], log_pos, position)

    def _position_mismatch(self, etype: int, log_pos: int, position: int) -> None:
        store = self.store
        raise ProtocolError(
            f"event of type {etype} ends at {log_pos} according to the upstream but at {position} "
            f"in the stored copy of {store.current_file}; refusing to store a file that differs",
            hint="this is a bug or an upstream that rewrites positions; please report it")

    async def _read_events(self, conn: UpstreamConnection) -> list[memoryview | bytes]:
        """The next batch; a connection silent for longer than a few heartbeat periods is dead.

        A network cut need not close the socket (no FIN, no RST reaches us): without this the relay
        would wait forever. Bytes still trickling in (one huge event on a slow link) count as life.
        """
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

    def _handle(self, ev: bytes | memoryview) -> bool:
        """Store one event if it is file content. Returns True when it closed the current file."""
        etype = ev[4]
        if etype in _HEARTBEATS:
            self._last_event_ts = 0
            return False
        flags = ev[17] | (ev[18] << 8)
        if flags & _ARTIFICIAL:
            if etype == _ROTATE:
                self._fake_rotate(ev)
            return False
        store = self.store
        size = len(ev)
        if etype == _FDE:
            if store.position != 4:
                return False  # the server repeats the file's FDE when a dump resumes mid-file
            self._checksum_size = fde_checksum_size(ev)
            if self._checksum_size:
                self._verify(ev, fde=True)
            store.append_fde(ev)
        else:
            if self._checksum_size:
                self._verify(ev)
            store.append(ev)
        log_pos = _U32.unpack_from(ev, 13)[0]
        if log_pos and log_pos != store.position:
            raise ProtocolError(
                f"event of type {etype} ends at {log_pos} according to the upstream but at {store.position} "
                f"in the stored copy of {store.current_file}; refusing to store a file that differs",
                hint="this is a bug or an upstream that rewrites positions; please report it")
        self.events += 1
        self.bytes += size
        if self.metrics is not None:
            self.metrics.relay_events.inc()
            self.metrics.relay_bytes.inc(size)
        self._last_event_ts = _U32.unpack_from(ev, 0)[0]
        tracker = self._tracker
        done = tracker.transactions
        if tracker.feed(ev, self._checksum_size):
            # Control events (ROTATE, FDE, ...) are boundaries too, but complete no transaction.
            gtid = tracker.last_gtid_event if tracker.transactions != done else None
            store.mark_boundary(gtid, self._last_event_ts)
            if tracker.transactions != done:
                self.transactions += 1
                if self.metrics is not None:
                    self.metrics.relay_transactions.inc()
            if etype == _ROTATE:
                end = size - self._checksum_size
                store.mark_finished(bytes(ev[27:end]).decode())
                return True
            if etype == _STOP:
                store.mark_finished("")
                return True
        return False

    def _verify(self, ev: bytes | memoryview, *, fde: bool = False) -> None:
        body = memoryview(ev)[:-4]
        expected = _U32.unpack_from(ev, len(ev) - 4)[0]
        if fde and ev[17] & _IN_USE:
            data = bytearray(body)
            data[17] &= ~_IN_USE
            actual = zlib.crc32(data)
        else:
            actual = zlib.crc32(body)
        if actual != expected:
            raise ChecksumMismatch(
                f"event of type {ev[4]} received with a bad CRC32 (expected {expected:#010x}, got {actual:#010x})",
                file=self.store.current_file, offset=self.store.position)

    def _fake_rotate(self, ev: bytes | memoryview) -> None:
        """The server names the file it is about to send (dump start, or a file switch)."""
        end = len(ev) - self._checksum_size if self._checksum_size else len(ev)
        name = bytes(ev[27:end]).decode()
        store = self.store
        current = store.current_file
        if name == current:
            return
        if current is not None:
            if not store.at_boundary:
                raise ProtocolError(f"the upstream switched to {name} in the middle of a transaction in {current}")
            if file_seq(name) != file_seq(current) + 1:
                LOG.warning("the upstream skipped from %s to %s", current, name)
            if not store.current_finished:
                # The upstream's file ended without ROTATE or STOP (it crashed): it is complete as it is.
                LOG.info("%s ended without a ROTATE or STOP event (the upstream restarted)", current)
        store.begin_file(name)
        self._tracker = TransactionTracker()

    async def _close_finished_file(self) -> None:
        async with self._sync_lock:
            # In a worker thread: the final fsync and the state write must not stop the loop from
            # draining the socket meanwhile (the pump itself waits here, the protocol keeps reading).
            await asyncio.to_thread(self.store.close_file)
            LOG.info("binlog file complete: %s", self.store.files[-1], extra={"file": self.store.files[-1]})

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
                    await asyncio.to_thread(store.fsync)
                    store.publish(target)
                    if self.metrics is not None and store.last_durable_gtid:
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
        if self._target is None or self.store.current_file is None:
            return False
        seq = file_seq(self.store.current_file)
        tseq, tpos = self._target
        if self.store.current_finished and seq >= tseq:
            return True
        return seq > tseq or (seq == tseq and self.store.position >= tpos)

    def _finish_durably(self) -> None:
        with contextlib.suppress(BinhubError, OSError):
            self.store.rollback_to_boundary()
            self.store.commit()

    def _lag(self) -> float:
        if not self._last_event_ts:
            return 0.0
        return max(0.0, time.time() - self._last_event_ts)


__all__ = ["Relay", "RelayFatal"]
